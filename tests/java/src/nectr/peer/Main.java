package nectr.peer;

import java.nio.file.Path;

/**
 * Java peer of the nectr interop tests. Commands (see tests/java/README.md):
 * <pre>
 *   gen DIR              write the corpus of streams and oracles
 *   check DIR            read DIR/*.bin with ObjectInputStream, write DIR/*.actual.json
 *   suid DIR             write class files and their default serialVersionUIDs
 *   bench FILE SECONDS   benchmark JDK decoding and encoding of FILE
 *   big FILE MB          write a large deterministic stream
 * </pre>
 * Exits 0 on success; otherwise prints one line to stderr and exits 1.
 */
public final class Main {
    /** Deep object graphs recurse deeply in ObjectOutputStream, ObjectInputStream and the dumper. */
    private static final long STACK_SIZE = 512L * 1024 * 1024;

    private Main() {
    }

    public static void main(String[] args) throws InterruptedException {
        int[] status = {0};
        Thread worker = new Thread(null, () -> status[0] = run(args), "nectr-peer", STACK_SIZE);
        worker.start();
        worker.join();
        System.exit(status[0]);
    }

    private static int run(String[] args) {
        try {
            String command = args.length > 0 ? args[0] : "";
            switch (command) {
                case "gen":
                    requireArgs(args, 2, "gen DIR");
                    int n = Corpus.generate(Path.of(args[1]));
                    System.out.println("wrote " + n + " streams to " + args[1]);
                    break;
                case "check":
                    requireArgs(args, 2, "check DIR");
                    int files = Check.checkAll(Path.of(args[1]));
                    System.out.println("checked " + files + " streams in " + args[1]);
                    break;
                case "suid":
                    requireArgs(args, 2, "suid DIR");
                    int classes = Suid.write(Path.of(args[1]));
                    System.out.println("wrote " + classes + " classes to " + args[1]);
                    break;
                case "bench":
                    requireArgs(args, 3, "bench FILE SECONDS");
                    System.out.println(Bench.run(Path.of(args[1]), Double.parseDouble(args[2])));
                    break;
                case "big":
                    requireArgs(args, 3, "big FILE MB");
                    long bytes = Big.write(Path.of(args[1]), Integer.parseInt(args[2]));
                    System.out.println("wrote " + bytes + " bytes to " + args[1]);
                    break;
                case "describe":
                    if (args.length < 3) {
                        throw new IllegalArgumentException("usage: describe JARDIR CLASS...");
                    }
                    Describe.run(args[1], java.util.Arrays.asList(args).subList(2, args.length));
                    break;
                default:
                    throw new IllegalArgumentException(
                            "usage: gen DIR | check DIR | suid DIR | bench FILE SECONDS | big FILE MB | describe JARDIR CLASS...");
            }
            return 0;
        } catch (Throwable t) {
            System.err.println("nectr.peer: " + oneLine(t));
            return 1;
        }
    }

    private static void requireArgs(String[] args, int count, String usage) {
        if (args.length != count) {
            throw new IllegalArgumentException("usage: " + usage);
        }
    }

    /** The exception and its causes on one line. */
    private static String oneLine(Throwable t) {
        StringBuilder sb = new StringBuilder(t.toString());
        for (Throwable c = t.getCause(); c != null && c != c.getCause(); c = c.getCause()) {
            sb.append(" (caused by ").append(c).append(')');
        }
        return sb.toString().replace('\n', ' ');
    }
}
