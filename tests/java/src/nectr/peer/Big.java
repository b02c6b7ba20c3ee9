package nectr.peer;

import java.io.BufferedOutputStream;
import java.io.FilterOutputStream;
import java.io.IOException;
import java.io.ObjectOutputStream;
import java.io.OutputStream;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * The `big` command: a deterministic stream of mixed top-level objects, at least MB * 10^6
 * bytes long, with oos.reset() after every 1000 top-level objects.
 */
final class Big {
    /** Top-level objects between two resets. */
    static final int RESET_INTERVAL = 1000;

    private Big() {
    }

    /** Counts the bytes written through it. */
    private static final class CountingStream extends FilterOutputStream {
        long count;

        CountingStream(OutputStream out) {
            super(out);
        }

        @Override
        public void write(int b) throws IOException {
            out.write(b);
            count++;
        }

        @Override
        public void write(byte[] b, int off, int len) throws IOException {
            out.write(b, off, len);
            count += len;
        }
    }

    /** Writes the stream; returns its length. */
    static long write(Path file, int megabytes) throws IOException {
        long target = megabytes * 1_000_000L;
        RandomObjects random = new RandomObjects(20240601L);
        try (CountingStream counter = new CountingStream(new BufferedOutputStream(Files.newOutputStream(file)));
                ObjectOutputStream out = new ObjectOutputStream(counter)) {
            int written = 0;
            while (counter.count < target) {
                out.writeObject(random.value(3));
                if (++written % RESET_INTERVAL == 0) {
                    out.reset();
                }
                // the ObjectOutputStream buffers block data only; flushing keeps the count exact
                out.flush();
            }
        }
        return Files.size(file);
    }
}
