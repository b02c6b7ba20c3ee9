package hudson.remoting;

/**
 * Wire twins of remoting's ProxyOutputStream commands (all SUID 1, extending Command): writes
 * to an OutputStream exported by the receiver (remoting-protocol.md §5.6).
 */
public final class ProxyOutputStream {
    private ProxyOutputStream() {
    }

    /** `$Chunk`: write {@code buf} to export {@code oid}. */
    public static final class Chunk extends Command {
        private static final long serialVersionUID = 1L;
        public final int ioId;
        public final int oid;
        public final int requestId;
        public final byte[] buf;

        public Chunk(int ioId, int oid, int requestId, byte[] buf) {
            super(false);
            this.ioId = ioId;
            this.oid = oid;
            this.requestId = requestId;
            this.buf = buf;
        }
    }

    /** `$Flush`. */
    public static final class Flush extends Command {
        private static final long serialVersionUID = 1L;
        public final int ioId;
        public final int oid;
        public final int requestId;

        public Flush(int ioId, int oid, int requestId) {
            super(false);
            this.ioId = ioId;
            this.oid = oid;
            this.requestId = requestId;
        }
    }

    /** `$EOF`: close and unexport {@code oid}. */
    public static final class EOF extends Command {
        private static final long serialVersionUID = 1L;
        public final int ioId;
        public final int oid;
        public final int requestId;
        public final Throwable error;

        public EOF(int ioId, int oid, int requestId, Throwable error) {
            super(false);
            this.ioId = ioId;
            this.oid = oid;
            this.requestId = requestId;
            this.error = error;
        }
    }

    /** `$Unexport`: release {@code oid} without closing it. */
    public static final class Unexport extends Command {
        private static final long serialVersionUID = 1L;
        public final int ioId;
        public final int oid;

        public Unexport(int ioId, int oid) {
            super(false);
            this.ioId = ioId;
            this.oid = oid;
        }
    }
}
