package nectr.peer;

import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.DataInputStream;
import java.io.IOException;
import java.io.StreamCorruptedException;
import java.util.ArrayList;
import java.util.IdentityHashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * An independent reader of the stream bytes (no ObjectInputStream, no classes loaded) that
 * renders the oracle JSON straight from the wire format. `gen` compares it with the oracle
 * rendered from the Java objects, so an oracle that does not describe the bytes written is
 * caught when the corpus is generated.
 *
 * It knows only what a decoder without the classes can know, plus the same conventions as
 * the oracle: the semantic levels of HashMap, TreeMap, ArrayList, HashSet and LinkedList
 * (objects of their custom data), and that nectr.peer.model.NoDefaultFields writes no
 * default fields.
 */
final class StreamParser {
    private static final int BASE_HANDLE = 0x7e0000;
    private static final String NO_DEFAULT_FIELDS = "nectr.peer.model.NoDefaultFields";

    /** Parsed values: each instance stands for one handle (identity matters for refs). */
    private record Str(String text) {
    }

    private record EnumConstant(String className, String name) {
    }

    private record ClassObject(Descriptor descriptor) {
    }

    private static final class Descriptor {
        String name;
        List<String> proxyInterfaces;
        int flags;
        final List<Character> fieldTypes = new ArrayList<>();
        final List<String> fieldNames = new ArrayList<>();
        Descriptor superclass;
    }

    private static final class ArrayValue {
        String className;
        List<Object> items = new ArrayList<>();
        byte[] bytes;
    }

    private static final class ObjectValue {
        String className;
        List<String> proxyInterfaces;
        Object handler;
        List<Object> external;
        final List<Level> levels = new ArrayList<>();
    }

    private static final class Level {
        String className;
        final Map<String, Object> fields = new LinkedHashMap<>();
        List<Object> data;
    }

    /** Primitive data between objects; also used for primitive field values, pre-rendered. */
    private record Block(byte[] bytes) {
    }

    private record Primitive(String json) {
    }

    /** TC_RESET at the top level. */
    private static final Object RESET = new Object();

    /** TC_EXCEPTION, wherever it occurs, ends the current top-level object. */
    private static final class Aborted extends RuntimeException {
        private static final long serialVersionUID = 1L;
        final transient Object exception;

        Aborted(Object exception) {
            super(null, null, false, false);
            this.exception = exception;
        }
    }

    private record AbortedItem(Object exception) {
    }

    private final DataInputStream in;
    private final List<Object> handles = new ArrayList<>();

    private StreamParser(byte[] stream) {
        in = new DataInputStream(new ByteArrayInputStream(stream));
    }

    /** The oracle JSON of a stream. */
    static String render(byte[] stream) throws IOException {
        StreamParser parser = new StreamParser(stream);
        return new Renderer().topLevel(parser.topLevel());
    }

    // ------------------------------------------------------------------ parsing

    private List<Object> topLevel() throws IOException {
        if (in.readUnsignedShort() != 0xaced || in.readUnsignedShort() != 5) {
            throw new StreamCorruptedException("bad stream header");
        }
        List<Object> items = new ArrayList<>();
        ByteArrayOutputStream block = new ByteArrayOutputStream();
        for (int tag = in.read(); tag >= 0; tag = in.read()) {
            if (readBlock(tag, block)) {
                continue;
            }
            endBlock(items, block);
            if (tag == 0x79) {
                handles.clear();
                items.add(RESET);
                continue;
            }
            try {
                items.add(content(tag));
            } catch (Aborted a) {
                items.add(new AbortedItem(a.exception));
            }
        }
        endBlock(items, block);
        return items;
    }

    /** If tag starts a block data record, appends its bytes to block and returns true. */
    private boolean readBlock(int tag, ByteArrayOutputStream block) throws IOException {
        if (tag != 0x77 && tag != 0x7a) {
            return false;
        }
        byte[] bytes = new byte[tag == 0x77 ? in.readUnsignedByte() : in.readInt()];
        in.readFully(bytes);
        block.write(bytes);
        return true;
    }

    private static void endBlock(List<Object> items, ByteArrayOutputStream block) {
        if (block.size() > 0) {
            items.add(new Block(block.toByteArray()));
            block.reset();
        }
    }

    /** Blocks and objects up to TC_ENDBLOCKDATA (custom data, external data, annotations). */
    private List<Object> blockItems() throws IOException {
        List<Object> items = new ArrayList<>();
        ByteArrayOutputStream block = new ByteArrayOutputStream();
        for (int tag = in.readUnsignedByte(); tag != 0x78; tag = in.readUnsignedByte()) {
            if (!readBlock(tag, block)) {
                endBlock(items, block);
                items.add(content(tag));
            }
        }
        endBlock(items, block);
        return items;
    }

    private Object content(int tag) throws IOException {
        switch (tag) {
            case 0x70: // TC_NULL
                return null;
            case 0x71: // TC_REFERENCE
                return handles.get(in.readInt() - BASE_HANDLE);
            case 0x74: // TC_STRING
                return assign(new Str(modifiedUtf8(in.readUnsignedShort())));
            case 0x7c: // TC_LONGSTRING
                return assign(new Str(modifiedUtf8(in.readLong())));
            case 0x76: // TC_CLASS
                return assign(new ClassObject(descriptor(in.readUnsignedByte())));
            case 0x75: // TC_ARRAY
                return array(descriptor(in.readUnsignedByte()));
            case 0x7e: { // TC_ENUM
                Descriptor d = descriptor(in.readUnsignedByte());
                int handle = handles.size();
                handles.add(null);
                EnumConstant e = new EnumConstant(d.name, ((Str) content(in.readUnsignedByte())).text());
                handles.set(handle, e);
                return e;
            }
            case 0x73: // TC_OBJECT
                return object(descriptor(in.readUnsignedByte()));
            case 0x7b: { // TC_EXCEPTION: the handle table is cleared before and after
                handles.clear();
                Object exception = content(in.readUnsignedByte());
                handles.clear();
                throw new Aborted(exception);
            }
            default:
                throw new StreamCorruptedException("unexpected tag 0x" + Integer.toHexString(tag));
        }
    }

    private <T> T assign(T value) {
        handles.add(value);
        return value;
    }

    private Descriptor descriptor(int tag) throws IOException {
        if (tag == 0x70) {
            return null;
        }
        if (tag == 0x71) {
            return (Descriptor) handles.get(in.readInt() - BASE_HANDLE);
        }
        Descriptor d = assign(new Descriptor());
        if (tag == 0x7d) { // TC_PROXYCLASSDESC
            d.proxyInterfaces = new ArrayList<>();
            for (int i = in.readInt(); i > 0; i--) {
                d.proxyInterfaces.add(in.readUTF());
            }
        } else if (tag == 0x72) { // TC_CLASSDESC
            d.name = in.readUTF();
            in.readLong(); // serialVersionUID
            d.flags = in.readUnsignedByte();
            for (int i = in.readUnsignedShort(); i > 0; i--) {
                char type = (char) in.readUnsignedByte();
                d.fieldTypes.add(type);
                d.fieldNames.add(in.readUTF());
                if (type == 'L' || type == '[') {
                    content(in.readUnsignedByte()); // the field's type signature string
                }
            }
        } else {
            throw new StreamCorruptedException("unexpected class descriptor tag 0x" + Integer.toHexString(tag));
        }
        blockItems(); // class annotations are not part of the oracle
        d.superclass = descriptor(in.readUnsignedByte());
        return d;
    }

    private ArrayValue array(Descriptor d) throws IOException {
        ArrayValue a = assign(new ArrayValue());
        a.className = d.name;
        int length = in.readInt();
        char component = d.name.charAt(1);
        if (component == 'B') {
            a.bytes = new byte[length];
            in.readFully(a.bytes);
        } else {
            for (int i = 0; i < length; i++) {
                a.items.add(value(component));
            }
        }
        return a;
    }

    private ObjectValue object(Descriptor d) throws IOException {
        ObjectValue o = assign(new ObjectValue());
        if (d.proxyInterfaces != null) {
            // the class data is that of java.lang.reflect.Proxy: the field h
            o.proxyInterfaces = d.proxyInterfaces;
            o.handler = content(in.readUnsignedByte());
            return o;
        }
        o.className = d.name;
        if ((d.flags & 0x04) != 0) { // SC_EXTERNALIZABLE (block data mode)
            o.external = blockItems();
            return o;
        }
        List<Descriptor> hierarchy = new ArrayList<>();
        for (Descriptor k = d; k != null; k = k.superclass) {
            hierarchy.add(0, k);
        }
        for (Descriptor k : hierarchy) {
            Level level = new Level();
            level.className = k.name;
            if (!k.name.equals(NO_DEFAULT_FIELDS)) {
                for (int i = 0; i < k.fieldNames.size(); i++) {
                    level.fields.put(k.fieldNames.get(i), value(k.fieldTypes.get(i)));
                }
            }
            if ((k.flags & 0x01) != 0) { // SC_WRITE_METHOD
                level.data = blockItems();
            }
            o.levels.add(level);
        }
        return o;
    }

    /** A field or array element of the given type code: an object or a rendered primitive. */
    private Object value(char type) throws IOException {
        switch (type) {
            case 'L':
            case '[':
                return content(in.readUnsignedByte());
            case 'Z':
                return new Primitive(Boolean.toString(in.readBoolean()));
            case 'B':
                return new Primitive(Byte.toString(in.readByte()));
            case 'C':
                return new Primitive(Integer.toString(in.readChar()));
            case 'S':
                return new Primitive(Short.toString(in.readShort()));
            case 'I':
                return new Primitive(Integer.toString(in.readInt()));
            case 'J':
                return new Primitive(Long.toString(in.readLong()));
            case 'F': {
                StringBuilder sb = new StringBuilder("\"f:");
                Json.fixedHex(sb, in.readInt(), 8);
                return new Primitive(sb.append('"').toString());
            }
            case 'D': {
                StringBuilder sb = new StringBuilder("\"d:");
                Json.fixedHex(sb, in.readLong(), 16);
                return new Primitive(sb.append('"').toString());
            }
            default:
                throw new StreamCorruptedException("bad type code " + type);
        }
    }

    /** Decodes length bytes of modified UTF-8 into UTF-16 code units (one to three bytes each). */
    private String modifiedUtf8(long length) throws IOException {
        byte[] b = new byte[Math.toIntExact(length)];
        in.readFully(b);
        StringBuilder sb = new StringBuilder(b.length);
        for (int i = 0; i < b.length;) {
            int c = b[i] & 0xff;
            if (c < 0x80) {
                sb.append((char) c);
                i += 1;
            } else if (c < 0xe0) {
                sb.append((char) (((c & 0x1f) << 6) | (b[i + 1] & 0x3f)));
                i += 2;
            } else {
                sb.append((char) (((c & 0x0f) << 12) | ((b[i + 1] & 0x3f) << 6) | (b[i + 2] & 0x3f)));
                i += 3;
            }
        }
        return sb.toString();
    }

    // ------------------------------------------------------------------ rendering

    /** Renders parsed values with the same ids, refs and key order as {@link Dumper}. */
    private static final class Renderer {
        private final IdentityHashMap<Object, Integer> ids = new IdentityHashMap<>();
        private int nextId = 1;
        private final StringBuilder sb = new StringBuilder();

        String topLevel(List<Object> items) {
            sb.append('[');
            for (int i = 0; i < items.size(); i++) {
                if (i > 0) {
                    sb.append(',');
                }
                Object item = items.get(i);
                if (item == RESET) {
                    sb.append("{\"reset\":true}");
                    ids.clear();
                } else if (item instanceof AbortedItem aborted) {
                    ids.clear();
                    sb.append("{\"aborted\":");
                    value(aborted.exception());
                    sb.append('}');
                    ids.clear();
                } else {
                    item(item);
                }
            }
            return sb.append(']').toString();
        }

        private void item(Object item) {
            if (item instanceof Block block) {
                Json.block(sb, block.bytes());
            } else {
                value(item);
            }
        }

        private void items(List<Object> items) {
            sb.append('[');
            for (int i = 0; i < items.size(); i++) {
                if (i > 0) {
                    sb.append(',');
                }
                item(items.get(i));
            }
            sb.append(']');
        }

        /** The objects of custom data, skipping blocks (sizes, capacities). */
        private static List<Object> objectsOf(List<Object> data) {
            List<Object> objects = new ArrayList<>();
            for (Object item : data) {
                if (!(item instanceof Block)) {
                    objects.add(item);
                }
            }
            return objects;
        }

        private void value(Object v) {
            if (v == null) {
                sb.append("null");
            } else if (v instanceof Primitive p) {
                sb.append(p.json());
            } else if (v instanceof Str s) {
                Json.stringValue(sb, s.text());
            } else if (v instanceof EnumConstant e) {
                sb.append("{\"enum\":");
                Json.string(sb, e.className());
                sb.append(",\"name\":");
                Json.string(sb, e.name());
                sb.append('}');
            } else if (v instanceof ClassObject c) {
                Descriptor d = c.descriptor();
                if (d.proxyInterfaces != null) {
                    sb.append("{\"class_of_proxy\":");
                    strings(d.proxyInterfaces);
                } else {
                    sb.append("{\"class_of\":");
                    Json.string(sb, d.name);
                }
                sb.append('}');
            } else if (ids.containsKey(v)) {
                sb.append("{\"ref\":").append(ids.get(v)).append('}');
            } else {
                ids.put(v, nextId);
                sb.append("{\"id\":").append(nextId++).append(',');
                if (v instanceof ArrayValue a) {
                    array(a);
                } else {
                    object((ObjectValue) v);
                }
                sb.append('}');
            }
        }

        private void strings(List<String> names) {
            sb.append('[');
            for (int i = 0; i < names.size(); i++) {
                if (i > 0) {
                    sb.append(',');
                }
                Json.string(sb, names.get(i));
            }
            sb.append(']');
        }

        private void array(ArrayValue a) {
            sb.append("\"array\":");
            Json.string(sb, a.className);
            if (a.bytes != null) {
                sb.append(",\"hex\":\"");
                Json.hex(sb, a.bytes);
                sb.append('"');
            } else {
                sb.append(",\"items\":");
                values(a.items);
            }
        }

        private void values(List<Object> values) {
            sb.append('[');
            for (int i = 0; i < values.size(); i++) {
                if (i > 0) {
                    sb.append(',');
                }
                value(values.get(i));
            }
            sb.append(']');
        }

        private void object(ObjectValue o) {
            if (o.proxyInterfaces != null) {
                sb.append("\"proxy\":");
                strings(o.proxyInterfaces);
                sb.append(",\"h\":");
                value(o.handler);
                return;
            }
            sb.append("\"class\":");
            Json.string(sb, o.className);
            if (o.external != null) {
                sb.append(",\"external\":");
                items(o.external);
                return;
            }
            sb.append(",\"levels\":[");
            for (int i = 0; i < o.levels.size(); i++) {
                if (i > 0) {
                    sb.append(',');
                }
                level(o.levels.get(i));
            }
            sb.append(']');
        }

        private void level(Level level) {
            sb.append("{\"class\":");
            Json.string(sb, level.className);
            switch (level.className) {
                case "java.util.HashMap":
                case "java.util.TreeMap": {
                    List<Object> objects = objectsOf(level.data);
                    sb.append(",\"entries\":[");
                    for (int i = 0; i + 1 < objects.size(); i += 2) {
                        sb.append(i > 0 ? ",[" : "[");
                        value(objects.get(i));
                        sb.append(',');
                        value(objects.get(i + 1));
                        sb.append(']');
                    }
                    sb.append("]}");
                    return;
                }
                case "java.util.ArrayList":
                case "java.util.HashSet":
                case "java.util.LinkedList":
                    sb.append(",\"elements\":");
                    values(objectsOf(level.data));
                    sb.append('}');
                    return;
                default:
                    break;
            }
            sb.append(",\"fields\":{");
            int i = 0;
            for (Map.Entry<String, Object> field : level.fields.entrySet()) {
                if (i++ > 0) {
                    sb.append(',');
                }
                Json.string(sb, field.getKey());
                sb.append(':');
                value(field.getValue());
            }
            sb.append('}');
            if (level.data != null) {
                sb.append(",\"data\":");
                items(level.data);
            }
            sb.append('}');
        }
    }
}
