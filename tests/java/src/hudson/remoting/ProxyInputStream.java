package hudson.remoting;

import java.io.IOException;
import java.io.Serializable;

/**
 * Wire twins of remoting's ProxyInputStream commands (all SUID 1): reads from an InputStream
 * exported by the receiver, i.e. the pull form of a RemoteInputStream (remoting-protocol.md
 * §5.3, §5.7; agent-callables.md §1.7).
 */
public final class ProxyInputStream {
    private ProxyInputStream() {
    }

    /**
     * `$Chunk` (extends Request): "read up to {@code len} bytes from your export {@code oid}".
     * Answered with a Response whose returnValue is a {@link Buffer}.
     */
    public static final class Chunk extends Request<Buffer, IOException> {
        private static final long serialVersionUID = 1L;
        public final int oid;
        public final int len;

        public Chunk(int id, int oid, int len) {
            super();
            this.id = id;
            this.oid = oid;
            this.len = len;
        }
    }

    /** `$Buffer` (Serializable): {@code buf} has the requested size, {@code len} bytes were read, -1 at EOF. */
    public static final class Buffer implements Serializable {
        private static final long serialVersionUID = 1L;
        public final int len;
        public final byte[] buf;

        public Buffer(int len, byte[] buf) {
            this.len = len;
            this.buf = buf;
        }
    }

    /** `$EOF` (extends Command): the reader closed export {@code oid}. */
    public static final class EOF extends Command {
        private static final long serialVersionUID = 1L;
        public final int oid;

        public EOF(int oid) {
            super();
            this.oid = oid;
        }
    }
}
