package nectr.peer;

import java.io.IOException;
import java.io.ObjectOutputStream;
import java.lang.reflect.Proxy;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.Date;
import java.util.HashMap;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.LinkedList;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.Vector;
import java.util.concurrent.TimeUnit;
import nectr.peer.model.AllPrims;
import nectr.peer.model.AppException;
import nectr.peer.model.Base;
import nectr.peer.model.Color;
import nectr.peer.model.Counter;
import nectr.peer.model.Custom;
import nectr.peer.model.CustomSub;
import nectr.peer.model.Derived;
import nectr.peer.model.ExtEmpty;
import nectr.peer.model.ExtRecord;
import nectr.peer.model.Greeter;
import nectr.peer.model.Handler;
import nectr.peer.model.Holder;
import nectr.peer.model.Item;
import nectr.peer.model.Level1;
import nectr.peer.model.Level3;
import nectr.peer.model.Mixed;
import nectr.peer.model.NoDefaultFields;
import nectr.peer.model.Node;
import nectr.peer.model.NotSerializable;
import nectr.peer.model.OnPlain;
import nectr.peer.model.Operation;
import nectr.peer.model.Pair;
import nectr.peer.model.Persistent;
import nectr.peer.model.Point;
import nectr.peer.model.PutFieldsObj;
import nectr.peer.model.ReverseOrder;
import nectr.peer.model.Span;
import nectr.peer.model.WithTransient;

/** The `gen` command: writes the corpus of streams and their oracles. */
final class Corpus {
    /** Writes the contents of one stream. */
    private interface Body {
        void write(StreamWriter w) throws Exception;
    }

    private record Entry(String name, StreamWriter.Factory factory, Body body) {
    }

    private final List<Entry> entries = new ArrayList<>();

    private void add(String name, Body body) {
        entries.add(new Entry(name, ObjectOutputStream::new, body));
    }

    private void add(String name, StreamWriter.Factory factory, Body body) {
        entries.add(new Entry(name, factory, body));
    }

    /** Writes every stream and oracle into dir; returns the number of streams. */
    static int generate(Path dir) throws Exception {
        Corpus corpus = new Corpus();
        corpus.define();
        Files.createDirectories(dir);
        for (int i = 0; i < corpus.entries.size(); i++) {
            Entry e = corpus.entries.get(i);
            String base = String.format("%03d-%s", i, e.name());
            StreamWriter w = new StreamWriter(e.factory());
            try {
                e.body().write(w);
            } catch (Exception ex) {
                throw new IllegalStateException("stream " + base + ": " + ex, ex);
            }
            byte[] stream = w.streamBytes();
            String oracle = w.oracle();
            if (!StreamParser.render(stream).equals(oracle)) {
                throw new IllegalStateException("stream " + base + ": the oracle does not match an independent parse"
                        + " of the bytes written");
            }
            Files.write(dir.resolve(base + ".bin"), stream);
            Files.writeString(dir.resolve(base + ".json"), oracle, StandardCharsets.UTF_8);
        }
        return corpus.entries.size();
    }

    private void define() {
        basics();
        primitives();
        strings();
        boxed();
        enums();
        primitiveArrays();
        objectArrays();
        graphs();
        hierarchies();
        customSerialization();
        externalizable();
        proxies();
        classObjects();
        annotations();
        collections();
        exceptions();
        topLevelMix();
        resetsAndUnshared();
        aborts();
        randomGraphs();
    }

    // ---------------------------------------------------------------- basics

    private void basics() {
        add("empty-stream", w -> { });
        add("null", w -> w.object((Object) null));
        add("point", w -> w.object(new Point(3, -4)));
        add("pair-self", w -> {
            Pair p = new Pair(5, null);
            p.b = p;
            w.object(p).primitives(out -> out.writeInt(7));
        });
    }

    // ---------------------------------------------------------------- primitives

    private void primitives() {
        add("allprims-zero", w -> w.object(new AllPrims()));
        add("allprims-max", w -> w.object(new AllPrims(true, Byte.MAX_VALUE, Character.MAX_VALUE,
                Short.MAX_VALUE, Integer.MAX_VALUE, Long.MAX_VALUE, Float.MAX_VALUE, Double.MAX_VALUE)));
        add("allprims-min", w -> w.object(new AllPrims(false, Byte.MIN_VALUE, Character.MIN_VALUE,
                Short.MIN_VALUE, Integer.MIN_VALUE, Long.MIN_VALUE, Float.MIN_VALUE, Double.MIN_VALUE)));
        add("allprims-minus-one", w -> w.object(new AllPrims(true, (byte) -1, '\u00ff', (short) -1, -1, -1L,
                -1f, -1d)));
        add("allprims-nan", w -> w.object(new AllPrims(false, (byte) 1, '\ud800', (short) 1, 1, 1L,
                Float.NaN, Double.NaN)));
        add("allprims-inf", w -> w.object(new AllPrims(true, (byte) 2, '\udfff', (short) 256, 65536,
                1L << 32, Float.POSITIVE_INFINITY, Double.NEGATIVE_INFINITY)));
        add("allprims-neg-inf-neg-zero", w -> w.object(new AllPrims(false, (byte) 0x80, '\udbff',
                (short) 0x8000, 0x80000000, 0x8000000000000000L, Float.NEGATIVE_INFINITY, -0.0d)));
        add("allprims-neg-zero-float", w -> w.object(new AllPrims(true, (byte) 0x7f, '\uffff', (short) 0x7fff,
                0x7fffffff, 0x7fffffffffffffffL, -0.0f, Double.POSITIVE_INFINITY)));
        add("allprims-subnormal", w -> w.object(new AllPrims(true, (byte) 10, '\u0000', (short) -2, -2, -2L,
                Float.MIN_NORMAL, Double.MIN_NORMAL)));
        add("allprims-fractions", w -> w.object(new AllPrims(false, (byte) -128, 'A', (short) 12345, 123456789,
                1234567890123456789L, 1f / 3, 1d / 3)));
        add("allprims-many", w -> {
            char[] chars = {'\u0000', 'a', '\u00e9', '\u20ac', '\ud83d', '\ude00', '\ufffe', '\uffff'};
            for (int i = 0; i < chars.length; i++) {
                w.object(new AllPrims(i % 2 == 0, (byte) (i * 37), chars[i], (short) (i * -4099), i * -123457,
                        (long) i * -1234567890123L, i * 0.1f, i * -1e300));
            }
        });
        add("top-primitives-each-type", w -> w.primitives(out -> {
            out.writeBoolean(true);
            out.writeBoolean(false);
            out.writeByte(Byte.MIN_VALUE);
            out.writeByte(-1);
            out.writeShort(Short.MIN_VALUE);
            out.writeChar('\ud83d');
            out.writeInt(Integer.MIN_VALUE);
            out.writeLong(Long.MAX_VALUE);
            out.writeFloat(Float.NaN);
            out.writeFloat(-0.0f);
            out.writeDouble(Double.NEGATIVE_INFINITY);
            out.writeDouble(Double.MIN_VALUE);
        }));
        add("top-primitives-utf", w -> w.primitives(out -> {
            out.writeUTF("");
            out.writeUTF("h\u00e9llo \u20ac \ud83d\ude00 \u0000");
            out.writeBytes("bytes");
            out.writeChars("chars\u20ac");
        }));
        add("top-primitives-nan-bits", w -> w.primitives(out -> {
            out.writeFloat(Float.intBitsToFloat(0x7f800001));
            out.writeDouble(Double.longBitsToDouble(0x7ff0000000000001L));
            out.writeDouble(Double.longBitsToDouble(0xfff8000000000000L));
        }));
    }

    // ---------------------------------------------------------------- strings

    private void strings() {
        String[][] small = {
            {"empty", ""},
            {"ascii", "Hello, World!"},
            {"nul", "\u0000"},
            {"nuls", "a\u0000b\u0000\u0000c"},
            {"escapes", "tab\t nl\n cr\r quote\" backslash\\ slash/"},
            {"controls", "\u0001\u0002\u0003\u0008\u000b\u000c\u000e\u001f\u007f"},
            {"latin1", "caf\u00e9 na\u00efve \u00ff\u0080"},
            {"two-byte-edges", "\u0080\u07ff\u0100\u03a9"},
            {"three-byte-edges", "\u0800\u20ac\ufffd\uffff"},
            {"cjk", "\u65e5\u672c\u8a9e\u4e2d\u6587"},
            {"emoji", "\ud83d\ude00"},
            {"emoji-mixed", "a\u00e9\u20ac\ud83d\ude00\ud83c\udf89z"},
            {"max-code-point", "\udbff\udfff"},
            {"lone-high", "\ud800"},
            {"lone-low", "\udc00"},
            {"lone-high-inside", "x\ud83dy"},
            {"reversed-pair", "\ude00\ud83d"},
            {"high-at-end", "abc\ud83d"},
            {"bom-separators", "\ufeff\u2028\u2029"},
            {"nul-and-emoji", "\u0000\ud83d\ude00\u0000"},
        };
        for (String[] s : small) {
            add("string-" + s[0], w -> w.object(s[1]));
        }
        add("string-65535-ascii", w -> w.object("a".repeat(65535)));
        add("string-65536-ascii-long", w -> w.object("b".repeat(65536)));
        add("string-65535-three-byte", w -> w.object("\u20ac".repeat(21845)));
        add("string-65536-two-byte-long", w -> w.object("c".repeat(65534) + "\u00e9"));
        add("string-65535-nul", w -> w.object("\u0000".repeat(32767) + "a"));
        add("string-65536-nul-long", w -> w.object("\u0000".repeat(32768)));
        add("string-65535-emoji", w -> w.object("\ud83d\ude00".repeat(10922) + "abc"));
        add("string-100k-ascii", w -> w.object("0123456789".repeat(10000)));
        add("string-150k-mixed", w -> w.object("a\u00e9\u20ac\ud83d\ude00".repeat(30000)));
        add("string-200k-cjk", w -> w.object("\u65e5\u672c".repeat(100000)));
        add("string-120k-lone-surrogates", w -> w.object("x\ud800".repeat(60000)));
        add("strings-long-in-object", w -> w.object(new Node("n".repeat(70000), null, "\u00e9".repeat(40000))));
        add("string-same-instance-twice", w -> {
            String s = "shared string";
            w.object(s, s, new Object[] {s, s});
        });
        add("string-equal-distinct", w -> w.object(new String("equal"), new String("equal"),
                new Object[] {new String("equal"), new String("equal")}));
        add("string-array-repeats", w -> {
            String s = "rep";
            w.object((Object) new String[] {s, s, "", null, s, "\ud83d\ude00", "\ud800"});
        });
        add("string-shared-in-fields", w -> {
            String s = "shared";
            w.object(new Node(s, new Node(s, null, s), s), s);
        });
    }

    // ---------------------------------------------------------------- boxed

    private void boxed() {
        add("boxed-integer", w -> w.object(Integer.MIN_VALUE, Integer.MAX_VALUE, 0, -1, 1000));
        add("boxed-long", w -> w.object(Long.MIN_VALUE, Long.MAX_VALUE, 0L, -1L));
        add("boxed-short", w -> w.object(Short.MIN_VALUE, Short.MAX_VALUE, (short) 0, (short) -1));
        add("boxed-byte", w -> w.object(Byte.MIN_VALUE, Byte.MAX_VALUE, (byte) 0, (byte) -1));
        add("boxed-character", w -> w.object('a', '\u0000', '\uffff', '\ud800', '\u20ac'));
        add("boxed-boolean", w -> w.object(true, false, Boolean.TRUE));
        add("boxed-float", w -> w.object(0f, -0f, Float.NaN, Float.POSITIVE_INFINITY, Float.NEGATIVE_INFINITY,
                Float.MIN_VALUE, Float.MAX_VALUE, 3.14f));
        add("boxed-double", w -> w.object(0d, -0d, Double.NaN, Double.POSITIVE_INFINITY,
                Double.NEGATIVE_INFINITY, Double.MIN_VALUE, Double.MAX_VALUE, Math.PI));
        add("boxed-mixed-array", w -> w.object((Object) new Object[] {1, 2L, (short) 3, (byte) 4, '5', true,
                6.5f, 7.25d, null}));
        add("boxed-cached-vs-distinct", w -> w.object(new Object[] {Integer.valueOf(7), Integer.valueOf(7),
                Integer.valueOf(100000), Integer.valueOf(100000)}));
        add("boxed-in-holder", w -> w.object(new Holder(Long.valueOf(-5), Color.GREEN, new int[] {1},
                new String[] {"x"})));
    }

    // ---------------------------------------------------------------- enums

    private void enums() {
        for (Color c : Color.values()) {
            add("enum-color-" + c.name().toLowerCase(), w -> w.object(c));
        }
        add("enum-constant-bodies", w -> w.object(Operation.PLUS, Operation.MINUS, Operation.NOOP, Operation.PLUS));
        add("enum-in-field", w -> w.object(new Holder(Color.BLUE, Color.RED, null, null)));
        add("enum-array", w -> w.object((Object) new Color[] {Color.RED, Color.GREEN, null, Color.RED}));
        add("enum-array-bodies", w -> w.object((Object) new Operation[] {Operation.MINUS, Operation.NOOP}));
        add("enum-timeunit", w -> w.object((Object[]) TimeUnit.values()));
        add("enum-mixed-object-array", w -> w.object((Object) new Object[] {Color.RED, TimeUnit.SECONDS,
                Operation.PLUS, Color.RED}));
    }

    // ---------------------------------------------------------------- primitive arrays

    private void primitiveArrays() {
        add("array-boolean", w -> w.object(new boolean[0], new boolean[] {true, false, true}));
        add("array-byte", w -> w.object(new byte[0], new byte[] {0, -1, 127, -128, 1}));
        add("array-char", w -> w.object(new char[0], new char[] {'a', '\u0000', '\ud800', '\uffff', '\u20ac'}));
        add("array-short", w -> w.object(new short[0], new short[] {Short.MIN_VALUE, -1, 0, Short.MAX_VALUE}));
        add("array-int", w -> w.object(new int[0], new int[] {Integer.MIN_VALUE, -1, 0, 1, Integer.MAX_VALUE}));
        add("array-long", w -> w.object(new long[0], new long[] {Long.MIN_VALUE, -1, 0, Long.MAX_VALUE}));
        add("array-float", w -> w.object(new float[0], new float[] {Float.NaN, -0f, 0f, Float.MIN_VALUE,
                Float.NEGATIVE_INFINITY, Float.intBitsToFloat(0x7f800001)}));
        add("array-double", w -> w.object(new double[0], new double[] {Double.NaN, -0d, Double.MAX_VALUE,
                Double.POSITIVE_INFINITY, Double.longBitsToDouble(0xfff8000000000001L)}));
        add("array-byte-100k", w -> {
            byte[] b = new byte[100_000];
            new java.util.Random(1).nextBytes(b);
            w.object((Object) b);
        });
        add("array-boolean-100k", w -> {
            boolean[] a = new boolean[100_000];
            for (int i = 0; i < a.length; i++) {
                a[i] = i % 3 == 0;
            }
            w.object((Object) a);
        });
        add("array-char-50k", w -> {
            char[] a = new char[50_000];
            for (int i = 0; i < a.length; i++) {
                a[i] = (char) (i * 7919);
            }
            w.object((Object) a);
        });
        add("array-short-50k", w -> {
            short[] a = new short[50_000];
            for (int i = 0; i < a.length; i++) {
                a[i] = (short) (i * 7919);
            }
            w.object((Object) a);
        });
        add("array-int-25k", w -> {
            int[] a = new int[25_000];
            for (int i = 0; i < a.length; i++) {
                a[i] = i * 1_000_003;
            }
            w.object((Object) a);
        });
        add("array-long-13k", w -> {
            long[] a = new long[13_000];
            for (int i = 0; i < a.length; i++) {
                a[i] = i * 1_000_000_007L * 1_000_003L;
            }
            w.object((Object) a);
        });
        add("array-float-25k", w -> {
            float[] a = new float[25_000];
            for (int i = 0; i < a.length; i++) {
                a[i] = Float.intBitsToFloat(i * 171_717);
            }
            w.object((Object) a);
        });
        add("array-double-13k", w -> {
            double[] a = new double[13_000];
            for (int i = 0; i < a.length; i++) {
                a[i] = Double.longBitsToDouble(i * 7_777_777_777_777L);
            }
            w.object((Object) a);
        });
        add("array-same-twice", w -> {
            int[] a = {1, 2, 3};
            w.object(a, a, new Object[] {a, a});
        });
    }

    // ---------------------------------------------------------------- object arrays

    private void objectArrays() {
        add("array-object-mixed", w -> w.object((Object) new Object[] {null, "s", 1, new Point(1, 2),
                new int[] {1}, Color.BLUE, new Object[0]}));
        add("array-string", w -> w.object(new String[0], new String[] {"a", null, "", "\u20ac"}));
        add("array-point", w -> w.object((Object) new Point[] {new Point(1, 1), null, new Point(2, 2)}));
        add("array-int-2d", w -> w.object((Object) new int[][] {{1, 2}, {}, null, {3, 4, 5}}));
        add("array-object-2d-jagged", w -> w.object((Object) new Object[][] {{"a"}, {1, 2, null}, {},
                null, {new Object[] {"deep"}}}));
        add("array-3-levels", w -> {
            int[][][] cube = new int[3][][];
            for (int i = 0; i < 3; i++) {
                cube[i] = new int[i + 1][];
                for (int j = 0; j <= i; j++) {
                    cube[i][j] = new int[] {i, j, i * j};
                }
            }
            w.object(cube, new String[][][] {{{"x", null}}, {}});
        });
        add("array-contains-itself", w -> {
            Object[] a = new Object[3];
            a[0] = a;
            a[1] = "mid";
            a[2] = new Object[] {a};
            w.object((Object) a);
        });
        add("array-shared-elements", w -> {
            Point p = new Point(9, 9);
            int[] ints = {7};
            w.object((Object) new Object[] {p, ints, p, ints, new Point[] {p}});
        });
        add("array-object-10k", w -> {
            Object[] a = new Object[10_000];
            for (int i = 0; i < a.length; i++) {
                a[i] = i % 3 == 0 ? Integer.valueOf(i) : i % 3 == 1 ? "e" + i : new Point(i, -i);
            }
            w.object((Object) a);
        });
        add("array-of-arrays-typed", w -> w.object((Object) new Object[] {new long[][] {{1L}},
                new Color[][] {{Color.RED}}, new boolean[][] {{true}, {}}}));
    }

    // ---------------------------------------------------------------- graphs

    private void graphs() {
        add("node-single", w -> w.object(new Node("solo", null, null)));
        add("node-chain-3", w -> w.object(new Node("a", new Node("b", new Node("c", null, 3), 2), 1)));
        add("deep-node-chain-500", w -> {
            Node head = null;
            for (int i = 0; i < 500; i++) {
                head = new Node("n" + i, head, i % 50 == 0 ? Integer.valueOf(i) : null);
            }
            w.object(head);
        });
        add("cycle-a-b-a", w -> {
            Node a = new Node("a", null, null);
            Node b = new Node("b", a, null);
            a.next = b;
            w.object(a);
        });
        add("cycle-self", w -> {
            Node a = new Node("self", null, null);
            a.next = a;
            a.payload = a;
            w.object(a);
        });
        add("cycle-list-contains-itself", w -> {
            List<Object> list = new ArrayList<>();
            list.add("first");
            list.add(list);
            list.add(new Node("in-list", null, list));
            w.object(list);
        });
        add("shared-subobject", w -> {
            Point shared = new Point(1, 1);
            w.object(new Node("x", new Node("y", null, shared), shared), shared);
        });
        add("diamond", w -> {
            Node bottom = new Node("bottom", null, null);
            Node left = new Node("left", bottom, null);
            Node right = new Node("right", bottom, null);
            w.object(new Node("top", left, right));
        });
        add("holder-everything", w -> w.object(new Holder(new Node("v", null, new int[0]), Color.GREEN,
                new int[] {-1, 0, 1}, new String[] {"n1", null})));
        add("pair-cycle-through-array", w -> {
            Pair p = new Pair(1, null);
            p.b = new Object[] {p, new Pair(2, p)};
            w.object(p);
        });
    }

    // ---------------------------------------------------------------- hierarchies

    private void hierarchies() {
        add("base", w -> {
            Base b = new Base();
            b.baseField = -9;
            w.object(b);
        });
        add("derived", w -> w.object(new Derived(11, "derived"), new Derived(0, null)));
        add("level3-shadowed-fields", w -> w.object(new Level3().fill(1, "one", 2, 3L, "three", "three-name")));
        add("level-mixed-hierarchy-array", w -> {
            Level1 l1 = new Level1();
            l1.value = 10;
            l1.name = "l1";
            w.object((Object) new Level1[] {l1, new Level3().fill(-1, null, -2, -3L, null, "n")});
        });
        add("non-serializable-superclass", w -> w.object(new OnPlain(1234, 5, "on plain")));
        add("transient-and-static", w -> w.object(new WithTransient(1, 2, "not written", "written")));
        add("record", w -> w.object(new Span(-3, 9, "span"), new Span(0, 0, null)));
    }

    // ---------------------------------------------------------------- custom writeObject

    private void customSerialization() {
        for (int n : new int[] {0, 21, -1, Integer.MAX_VALUE}) {
            add("custom-" + n, w -> w.object(new Custom(n)));
        }
        add("custom-shared", w -> {
            Custom c = new Custom(5);
            w.object((Object) new Object[] {c, c});
        });
        for (int len : new int[] {0, 10, 255, 256, 1000, 1024, 1025, 3000, 70000}) {
            add("mixed-block-" + len, w -> w.object(new Mixed(len, "label-" + len, new Point(len, 1))));
        }
        add("mixed-nested-mixed", w -> w.object(new Mixed(5, null, new Mixed(300, "inner", "str"))));
        add("mixed-nested-external-and-proxy", w -> w.object(new Mixed(1, "ext",
                new Object[] {new ExtRecord(9, 9, "nested", null), proxy(new Handler("m", null), Greeter.class)})));
        add("mixed-nested-string-shared", w -> {
            String s = "shared-label";
            w.object(new Mixed(2, s, s));
        });
        add("putfields", w -> w.object(new PutFieldsObj(3, "three", new Point(3, 3))));
        add("putfields-nulls", w -> w.object(new PutFieldsObj(-7, null, null)));
        add("serial-persistent-fields", w -> w.object(new Persistent(41, "title"), new Persistent(-1, null)));
        add("no-default-fields", w -> w.object(new NoDefaultFields(77, "b-value")));
        add("no-default-fields-nested", w -> {
            NoDefaultFields inner = new NoDefaultFields(1, null);
            w.object(new NoDefaultFields(2, new Object[] {inner, inner}));
        });
        add("custom-hierarchy", w -> w.object(new CustomSub(123456789L, new Point(4, 4))));
        add("custom-hierarchy-shared-self", w -> {
            CustomSub s = new CustomSub(-1L, null);
            s.shared = s;
            w.object(s);
        });
    }

    // ---------------------------------------------------------------- Externalizable

    private void externalizable() {
        add("external-record", w -> w.object(new ExtRecord(1, 2.5, "title", new Point(1, 2))));
        add("external-null-child", w -> w.object(new ExtRecord(-1, Double.NaN, "", null)));
        add("external-nested", w -> w.object(new ExtRecord(2, 0, "outer",
                new ExtRecord(3, -0.0, "inner\u20ac", new ExtEmpty()))));
        add("external-empty", w -> w.object(new ExtEmpty(), new ExtEmpty()));
        add("external-shared", w -> {
            ExtRecord r = new ExtRecord(4, 1, "s", null);
            w.object((Object) new Object[] {r, r, new ExtRecord(5, 1, "t", r)});
        });
    }

    // ---------------------------------------------------------------- proxies

    private static Object proxy(Handler h, Class<?>... interfaces) {
        return Proxy.newProxyInstance(Corpus.class.getClassLoader(), interfaces, h);
    }

    private void proxies() {
        add("proxy-one-interface", w -> w.object(proxy(new Handler("hi ", null), Greeter.class)));
        add("proxy-two-interfaces", w -> w.object(proxy(new Handler("two", 2), Greeter.class, Counter.class)));
        add("proxy-twice", w -> {
            Object p = proxy(new Handler("again", null), Counter.class);
            w.object(p, new Object[] {p, p});
        });
        add("proxy-in-collections", w -> {
            Object p = proxy(new Handler("in map", null), Counter.class);
            Map<String, Object> m = new HashMap<>();
            m.put("proxy", p);
            m.put("list", new ArrayList<>(List.of(p, Greeter.class)));
            w.object(m);
        });
        add("proxy-shared-handler", w -> {
            Handler h = new Handler("shared", new Point(0, 0));
            w.object((Object) new Object[] {proxy(h, Greeter.class), proxy(h, Greeter.class, Counter.class)});
        });
    }

    // ---------------------------------------------------------------- Class objects

    private void classObjects() {
        add("class-string", w -> w.object(String.class));
        add("class-int-array", w -> w.object(int[].class, String[][].class));
        add("class-model", w -> w.object(Point.class, Derived.class));
        add("class-enum", w -> w.object(Color.class, Operation.class, TimeUnit.class));
        add("class-non-serializable", w -> w.object(Object.class, Runnable.class, Class.class));
        add("class-primitive", w -> w.object(int.class, double.class));
        add("class-proxy", w -> w.object(proxy(new Handler("c", null), Greeter.class, Counter.class).getClass()));
        add("class-in-fields", w -> w.object(new Holder(Point.class, Color.RED, null, null),
                new Object[] {Point.class, Point.class, new Point(0, 0)}));
    }

    // ---------------------------------------------------------------- class annotations

    private void annotations() {
        String marker = "annotation-marker";
        StreamWriter.Factory annotating = sink -> new AnnotatingOutputStream(sink, marker);
        add("annotated-point", annotating, w -> w.object(new Point(1, 2), new Point(3, 4)));
        add("annotated-hierarchy", annotating, w -> w.object(new Derived(1, "d"), new Level3().fill(1, "a", 2,
                3L, "b", "c")));
        add("annotated-proxy", annotating, w -> w.object(proxy(new Handler("ann", null), Greeter.class,
                Counter.class)));
        add("annotated-string-backref", annotating, w -> w.object(new Node(marker, null, marker), marker));
        add("annotated-collections", annotating, w -> {
            Map<String, Object> m = new HashMap<>();
            m.put("list", new ArrayList<>(List.of(1, 2)));
            m.put("color", Color.GREEN);
            w.object(m, new int[] {1}, String.class);
        });
    }

    // ---------------------------------------------------------------- java.util

    private void collections() {
        add("hashmap-empty", w -> w.object(new HashMap<>()));
        add("hashmap-small", w -> {
            Map<String, Object> m = new HashMap<>();
            m.put("one", 1);
            m.put("two", "zwei");
            m.put("three", new Point(3, 3));
            w.object(m);
        });
        add("hashmap-1000", w -> {
            Map<Integer, String> m = new HashMap<>();
            for (int i = 0; i < 1000; i++) {
                m.put(i * 7919, "v" + i);
            }
            w.object(m);
        });
        add("hashmap-null-key-value", w -> {
            Map<String, Object> m = new HashMap<>();
            m.put(null, "null key");
            m.put("null value", null);
            w.object(m);
        });
        add("hashmap-colliding-keys", w -> {
            Map<String, Integer> m = new HashMap<>();
            m.put("Aa", 1);
            m.put("BB", 2);
            m.put("AaAa", 3);
            m.put("BBBB", 4);
            m.put("AaBB", 5);
            w.object(m);
        });
        add("hashmap-nested", w -> {
            Map<String, Object> inner = new HashMap<>();
            inner.put("k", 0);
            Map<String, Object> outer = new HashMap<>();
            outer.put("inner", inner);
            outer.put("again", inner);
            outer.put("self", outer);
            w.object(outer);
        });
        add("linkedhashmap", w -> {
            Map<String, Integer> m = new LinkedHashMap<>();
            for (String k : new String[] {"zeta", "alpha", "mu", "beta"}) {
                m.put(k, k.length());
            }
            w.object(m);
        });
        add("linkedhashmap-access-order", w -> {
            Map<Integer, String> m = new LinkedHashMap<>(16, 0.75f, true);
            for (int i = 0; i < 5; i++) {
                m.put(i, "v" + i);
            }
            m.get(1);
            m.get(0);
            w.object(m);
        });
        add("treemap-natural", w -> {
            Map<String, Integer> m = new TreeMap<>();
            for (String k : new String[] {"pear", "apple", "fig", "banana"}) {
                m.put(k, k.length());
            }
            w.object(m);
        });
        add("treemap-integers", w -> {
            Map<Integer, Object> m = new TreeMap<>();
            for (int i = 20; i > -20; i -= 3) {
                m.put(i, i % 2 == 0 ? null : new Point(i, i));
            }
            w.object(m);
        });
        add("treemap-comparator", w -> {
            Map<String, Integer> m = new TreeMap<>(new ReverseOrder());
            for (String k : new String[] {"pear", "apple", "fig", "banana"}) {
                m.put(k, k.length());
            }
            w.object(m);
        });
        add("arraylist-empty", w -> w.object(new ArrayList<>()));
        add("arraylist-small", w -> w.object(new ArrayList<>(Arrays.asList(1, "two", null, 3.0, Color.RED))));
        add("arraylist-nested", w -> {
            List<Object> inner = new ArrayList<>(List.of("x", "y"));
            w.object(new ArrayList<>(List.of(inner, new ArrayList<>(List.of(inner, new ArrayList<>())))));
        });
        add("arraylist-10k", w -> {
            List<Object> list = new ArrayList<>();
            for (int i = 0; i < 10_000; i++) {
                list.add(i % 2 == 0 ? Integer.valueOf(i) : "s" + (i % 100));
            }
            w.object(list);
        });
        add("hashset-strings", w -> w.object(new HashSet<>(List.of("red", "green", "blue", "cyan"))));
        add("hashset-integers-100", w -> {
            HashSet<Integer> set = new HashSet<>();
            for (int i = 0; i < 100; i++) {
                set.add(i * 31);
            }
            w.object(set);
        });
        add("linkedhashset", w -> w.object(new LinkedHashSet<>(List.of("z", "a", "m"))));
        add("linkedlist", w -> w.object(new LinkedList<>(List.of("a", 1, new Point(1, 1)))));
        add("vector", w -> w.object(new Vector<>(List.of("v1", 2))));
        add("vector-capacity", w -> {
            Vector<Object> v = new Vector<>(4, 3);
            v.add(null);
            v.add("x");
            w.object(v);
        });
        add("collections-empty-list", w -> w.object(Collections.emptyList(), Collections.emptyList()));
        add("collections-unmodifiable-list", w -> w.object(Collections.unmodifiableList(
                new LinkedList<>(List.of("u", "v")))));
        add("arrays-aslist", w -> w.object(Arrays.asList("a", "b"), Arrays.asList(1, 2, 3)));
        add("dates", w -> w.object(new Date(0), new Date(1_700_000_000_123L), new Date(-1)));
        add("date-shared", w -> {
            Date d = new Date(86_400_000L);
            w.object(new Object[] {d, d}, d);
        });
        add("collections-mix", w -> {
            Map<String, Object> m = new TreeMap<>();
            m.put("list", new LinkedList<>(List.of(new Date(5), "x")));
            m.put("set", new HashSet<>(List.of(1, 2, 3)));
            m.put("map", new LinkedHashMap<>(Map.of("k", "v")));
            w.object(m);
        });
    }

    // ---------------------------------------------------------------- exceptions

    private static Exception nested(int depth, String message) {
        return depth == 0 ? new IllegalStateException(message) : nested(depth - 1, message);
    }

    private void exceptions() {
        add("exception-ioexception", w -> w.object(new IOException("disk full")));
        add("exception-null-message", w -> w.object(new RuntimeException()));
        add("exception-cause-chain", w -> w.object(new RuntimeException("top",
                new IllegalStateException("middle", new IllegalArgumentException("root")))));
        add("exception-suppressed", w -> {
            Exception e = new Exception("main");
            e.addSuppressed(new IOException("close failed"));
            e.addSuppressed(new ArithmeticException("/ by zero"));
            w.object(e);
        });
        add("exception-deep-stack", w -> w.object(nested(20, "deep")));
        add("exception-custom-fields", w -> w.object(new AppException("app failed", new IOException("io"), 42,
                "detail one", "detail two")));
        add("exception-twice-and-shared", w -> {
            Exception e = new UnsupportedOperationException("shared");
            w.object(e, new Object[] {e, new RuntimeException("wrapper", e)});
        });
        add("exceptions-in-list", w -> w.object(new ArrayList<>(List.of(new IOException("a"),
                new IOException("b")))));
    }

    // ---------------------------------------------------------------- top-level mixes

    private void topLevelMix() {
        add("top-objects-and-ints", w -> w.object(new Point(1, 1))
                .primitives(out -> out.writeInt(42))
                .object("between")
                .primitives(out -> {
                    out.writeLong(-1L);
                    out.writeByte(3);
                })
                .object(Color.RED, null));
        add("top-bytes-short-long", w -> w.primitives(out -> out.write(new byte[] {1, 2, 3}))
                .object(1)
                .primitives(out -> out.write(new byte[300]))
                .object(2)
                .primitives(out -> {
                    byte[] b = new byte[5000];
                    Arrays.fill(b, (byte) 0x5a);
                    out.write(b);
                }));
        add("top-block-255-256", w -> w.primitives(out -> out.write(new byte[255]))
                .object("x")
                .primitives(out -> out.write(new byte[256])));
        add("top-block-1024-1025", w -> w.primitives(out -> out.write(new byte[1024]))
                .object("x")
                .primitives(out -> out.write(new byte[1025])));
        add("top-block-only", w -> w.primitives(out -> out.writeUTF("only block data")));
        add("top-many-objects", w -> {
            for (int i = 0; i < 50; i++) {
                w.object(new Point(i, i * i));
                if (i % 10 == 0) {
                    int v = i;
                    w.primitives(out -> out.writeShort(v));
                }
            }
        });
        add("top-2000-objects", w -> {
            RandomObjects r = new RandomObjects(5);
            for (int i = 0; i < 2000; i++) {
                w.object(i % 2 == 0 ? new Point(i, -i) : r.leaf());
            }
        });
        add("handles-beyond-65536", w -> {
            String[] strings = new String[70_000];
            for (int i = 0; i < strings.length; i++) {
                strings[i] = "s" + i;
            }
            Point last = new Point(-1, -1);
            w.object(strings, last, new Object[] {strings[69_999], last, strings});
        });
        add("top-same-object-repeated", w -> {
            Node n = new Node("again", null, null);
            w.object(n, n, n).primitives(out -> out.writeInt(0)).object(n);
        });
    }

    // ---------------------------------------------------------------- reset and writeUnshared

    private void resetsAndUnshared() {
        add("reset-between-objects", w -> w.object(new Point(1, 2)).reset().object(new Point(3, 4)));
        add("reset-same-object", w -> {
            Node n = new Node("kept", null, "payload");
            w.object(n, n).reset().object(n, n);
        });
        add("reset-with-blocks", w -> w.primitives(out -> out.writeInt(1)).reset()
                .primitives(out -> out.writeInt(2)).object(Color.GREEN).reset().reset().object(Color.GREEN));
        add("reset-first", w -> w.reset().object("after reset"));
        add("unshared-then-shared", w -> {
            Point p = new Point(5, 5);
            w.object(p).unshared(p).object(p);
        });
        add("unshared-first", w -> {
            int[] a = {1, 2};
            w.unshared(a).object(a, a);
        });
        add("unshared-string-and-array", w -> {
            String s = "unshared";
            w.unshared(s).unshared(new Object[] {s, s}).object(s);
        });
    }

    // ---------------------------------------------------------------- aborted writes

    private void aborts() {
        add("abort-field", w -> w.aborting(new Node("bad", null, new NotSerializable())));
        add("abort-after-objects", w -> w.object(new Point(1, 1), "s").primitives(out -> out.writeInt(9))
                .aborting(new Pair(1, new Object[] {new Point(2, 2), new NotSerializable()})));
        add("abort-in-list", w -> w.aborting(new ArrayList<>(List.of("ok", new NotSerializable()))));
    }

    // ---------------------------------------------------------------- random graphs

    private void randomGraphs() {
        for (int seed = 1; seed <= 16; seed++) {
            long s = seed;
            add("random-values-" + seed, w -> {
                RandomObjects r = new RandomObjects(s);
                for (int i = 0; i < 20; i++) {
                    w.object(r.value(4));
                }
            });
        }
        for (int seed = 1; seed <= 8; seed++) {
            long s = seed;
            int size = 15 + seed * 10;
            add("random-graph-" + size, w -> w.object((Object) new RandomObjects(1000 + s).graph(size)));
        }
        add("deep-random-graph-400", w -> w.object((Object) new RandomObjects(999).graph(400)));
        add("random-items-with-resets", w -> {
            RandomObjects r = new RandomObjects(77);
            for (int i = 1; i <= 60; i++) {
                w.object(new Item(i, i / 3.0, i % 2 == 0, r.string(), Color.values()[i % 3], new int[] {i},
                        r.value(2)));
                if (i % 20 == 0) {
                    w.reset();
                }
            }
        });
    }
}
