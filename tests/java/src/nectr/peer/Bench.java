package nectr.peer;

import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.EOFException;
import java.io.IOException;
import java.io.ObjectInputStream;
import java.io.ObjectOutputStream;
import java.io.OptionalDataException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * The `bench` command: times JDK decoding (ObjectInputStream, all top-level objects) and
 * encoding (ObjectOutputStream, reset every 1000 objects) of the objects in a stream.
 */
final class Bench {
    private Bench() {
    }

    /** One timed operation; returns a value derived from its result so it cannot be optimized away. */
    private interface Operation {
        long run() throws Exception;
    }

    static String run(Path file, double seconds) throws Exception {
        if (Files.isDirectory(file)) {
            return runCorpus(file, seconds);
        }
        byte[] stream = Files.readAllBytes(file);
        List<Object> objects = decode(stream);
        int encodedBytes = encode(objects, stream.length).length;

        long[] decode = measure(() -> decode(stream).size(), seconds);
        long[] encode = measure(() -> encode(objects, stream.length).length, seconds);
        return "decode_ns_per_iter=" + decode[0] + " encode_ns_per_iter=" + encode[0] + " bytes=" + stream.length
                + " encoded_bytes=" + encodedBytes + " iters_decode=" + decode[1] + " iters_encode=" + encode[1];
    }

    /**
     * A directory: every `*.bin` whose top-level items are all objects (no top-level block
     * data, no aborted writes) is decoded, then its objects re-encoded, once per iteration.
     */
    private static String runCorpus(Path dir, double seconds) throws Exception {
        List<byte[]> streams = new ArrayList<>();
        List<List<Object>> objects = new ArrayList<>();
        long bytes = 0;
        List<Path> files = new ArrayList<>();
        try (var listing = Files.list(dir)) {
            listing.filter(p -> p.toString().endsWith(".bin")).sorted().forEach(files::add);
        }
        for (Path f : files) {
            byte[] stream = Files.readAllBytes(f);
            try {
                objects.add(decode(stream));
            } catch (IOException e) {
                continue; // top-level block data or an aborted write: not an object stream
            }
            streams.add(stream);
            bytes += stream.length;
        }
        long[] decode = measure(() -> {
            long n = 0;
            for (byte[] s : streams) {
                n += decode(s).size();
            }
            return n;
        }, seconds);
        long[] encode = measure(() -> {
            long n = 0;
            for (int i = 0; i < objects.size(); i++) {
                n += encode(objects.get(i), streams.get(i).length).length;
            }
            return n;
        }, seconds);
        return "decode_ns_per_iter=" + decode[0] + " encode_ns_per_iter=" + encode[0] + " bytes=" + bytes
                + " files=" + streams.size() + " iters_decode=" + decode[1] + " iters_encode=" + encode[1];
    }

    /** Reads all top-level objects until the end of the stream. */
    private static List<Object> decode(byte[] stream) throws IOException, ClassNotFoundException {
        List<Object> objects = new ArrayList<>();
        try (ObjectInputStream in = new ObjectInputStream(new ByteArrayInputStream(stream))) {
            while (true) {
                try {
                    objects.add(in.readObject());
                } catch (EOFException e) {
                    return objects;
                } catch (OptionalDataException e) {
                    if (e.eof) {
                        return objects;
                    }
                    throw new IOException("unexpected top-level block data in benchmark stream");
                }
            }
        }
    }

    /** Writes the objects, resetting every Big.RESET_INTERVAL objects. */
    private static byte[] encode(List<Object> objects, int sizeHint) throws IOException {
        ByteArrayOutputStream bytes = new ByteArrayOutputStream(sizeHint);
        try (ObjectOutputStream out = new ObjectOutputStream(bytes)) {
            for (int i = 0; i < objects.size(); i++) {
                out.writeObject(objects.get(i));
                if ((i + 1) % Big.RESET_INTERVAL == 0) {
                    out.reset();
                }
            }
        }
        return bytes.toByteArray();
    }

    /**
     * Warms up for seconds/3, then runs op for at least seconds and at least 3 iterations;
     * returns {nanoseconds per iteration, iterations}.
     */
    private static long[] measure(Operation op, double seconds) throws Exception {
        long sink = 0;
        long warmupEnd = System.nanoTime() + (long) (seconds / 3 * 1e9);
        do {
            sink += op.run();
        } while (System.nanoTime() < warmupEnd);
        long minimum = (long) (seconds * 1e9);
        long start = System.nanoTime();
        long elapsed;
        long iterations = 0;
        do {
            sink += op.run();
            iterations++;
            elapsed = System.nanoTime() - start;
        } while (elapsed < minimum || iterations < 3);
        if (sink == 42) {
            System.err.print("");
        }
        return new long[] {elapsed / iterations, iterations};
    }
}
