package nectr.peer;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.TimeUnit;
import nectr.peer.model.AllPrims;
import nectr.peer.model.Color;
import nectr.peer.model.Holder;
import nectr.peer.model.Item;
import nectr.peer.model.Node;
import nectr.peer.model.Point;

/**
 * Deterministic random values from a seeded java.util.Random, built only from model classes
 * and JDK classes whose iteration order does not depend on identity hash codes
 * (maps are keyed by strings).
 */
final class RandomObjects {
    /** Code points strings are drawn from: ASCII, 2- and 3-byte UTF-8, NUL and an emoji. */
    private static final int[] ALPHABET = {
        'a', 'b', 'c', 'x', 'y', 'z', ' ', '0', '9', '-', 0, 0xe9, 0x3a9, 0x20ac, 0x65e5, 0xfffd, 0x1f600,
    };

    private final Random rnd;

    RandomObjects(long seed) {
        rnd = new Random(seed);
    }

    /** A string, usually short, sometimes a few hundred or a few thousand characters. */
    String string() {
        int roll = rnd.nextInt(100);
        int length = roll < 80 ? rnd.nextInt(24) : roll < 97 ? rnd.nextInt(400) : rnd.nextInt(5000);
        StringBuilder sb = new StringBuilder(length);
        boolean asciiOnly = rnd.nextBoolean();
        for (int i = 0; i < length; i++) {
            sb.appendCodePoint(ALPHABET[rnd.nextInt(asciiOnly ? 10 : ALPHABET.length)]);
        }
        return sb.toString();
    }

    /** A value without nested model objects. */
    Object leaf() {
        switch (rnd.nextInt(12)) {
            case 0:
            case 1:
            case 2:
                return string();
            case 3:
                return rnd.nextInt();
            case 4:
                return rnd.nextLong();
            case 5:
                return rnd.nextDouble() * 1e6;
            case 6:
                return Color.values()[rnd.nextInt(3)];
            case 7:
                return ints(rnd.nextInt(64));
            case 8:
                byte[] bytes = new byte[rnd.nextInt(256)];
                rnd.nextBytes(bytes);
                return bytes;
            case 9:
                return new Point(rnd.nextInt(), rnd.nextInt(1000));
            case 10:
                return new AllPrims(rnd.nextBoolean(), (byte) rnd.nextInt(), (char) rnd.nextInt(0x10000),
                        (short) rnd.nextInt(), rnd.nextInt(), rnd.nextLong(), rnd.nextFloat(), rnd.nextGaussian());
            default:
                return TimeUnit.values()[rnd.nextInt(TimeUnit.values().length)];
        }
    }

    /** A value, nesting containers and model objects up to depth levels. */
    Object value(int depth) {
        if (depth <= 0 || rnd.nextInt(3) == 0) {
            return rnd.nextInt(20) == 0 ? null : leaf();
        }
        switch (rnd.nextInt(6)) {
            case 0:
                return new Item(rnd.nextLong(), rnd.nextDouble(), rnd.nextBoolean(), string(),
                        rnd.nextBoolean() ? Color.values()[rnd.nextInt(3)] : null, ints(rnd.nextInt(8)),
                        value(depth - 1));
            case 1:
                return new Node(string(), rnd.nextBoolean() ? new Node(string(), null, leaf()) : null,
                        value(depth - 1));
            case 2:
                return new Holder(value(depth - 1), Color.values()[rnd.nextInt(3)], ints(rnd.nextInt(5)),
                        new String[] {string(), null, string()});
            case 3:
                Map<String, Object> map = new HashMap<>();
                for (int i = rnd.nextInt(6); i > 0; i--) {
                    map.put(string(), value(depth - 1));
                }
                return map;
            case 4:
                List<Object> list = new ArrayList<>();
                for (int i = rnd.nextInt(6); i > 0; i--) {
                    list.add(value(depth - 1));
                }
                return list;
            default:
                Object[] array = new Object[rnd.nextInt(5)];
                for (int i = 0; i < array.length; i++) {
                    array[i] = value(depth - 1);
                }
                return array;
        }
    }

    /**
     * A graph of n nodes whose next and payload fields point at random other nodes (shared
     * references and cycles), lists of nodes or random values; returns an array of all nodes.
     */
    Node[] graph(int n) {
        Node[] nodes = new Node[n];
        for (int i = 0; i < n; i++) {
            nodes[i] = new Node("n" + i, null, null);
        }
        for (Node node : nodes) {
            node.next = rnd.nextInt(4) == 0 ? null : nodes[rnd.nextInt(n)];
            switch (rnd.nextInt(4)) {
                case 0:
                    node.payload = nodes[rnd.nextInt(n)];
                    break;
                case 1:
                    List<Object> list = new ArrayList<>();
                    for (int i = rnd.nextInt(4); i > 0; i--) {
                        list.add(nodes[rnd.nextInt(n)]);
                    }
                    node.payload = list;
                    break;
                default:
                    node.payload = value(2);
            }
        }
        return nodes;
    }

    private int[] ints(int n) {
        int[] ints = new int[n];
        for (int i = 0; i < n; i++) {
            ints[i] = rnd.nextInt();
        }
        return ints;
    }
}
