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

        /** createdAt is recorded, as remoting's EOF does (the capture of Jenkins 2.460 shows a Source). */
        public EOF(int ioId, int oid, int requestId, Throwable error) {
            super();
            this.ioId = ioId;
            this.oid = oid;
            this.requestId = requestId;
            this.error = error;
        }
    }

    /**
     * `$Ack` (SUID 1, built with {@code super(false)}): the receiver of the chunks of stream
     * {@code oid} freed {@code size} bytes of the writer's window (PIPE_THROTTLING, §5.6).
     */
    public static final class Ack extends Command {
        private static final long serialVersionUID = 1L;
        public final int oid;
        public final int size;

        public Ack(int oid, int size) {
            super(false);
            this.oid = oid;
            this.size = size;
        }
    }

    /**
     * `$NotifyDeadWriter` (SUID 1): the receiver of stream {@code oid} could not write; the
     * writer must fail later writes. remoting records the cause in {@code createdAt}
     * (a {@code Command$Source} whose cause is the write error); it may also arrive as null.
     */
    public static final class NotifyDeadWriter extends Command {
        private static final long serialVersionUID = 1L;
        public final int oid;

        /** With {@code createdAt} = null. */
        public NotifyDeadWriter(int oid) {
            super(false);
            this.oid = oid;
        }

        /** With {@code createdAt} = a Source carrying {@code cause}, as remoting sends it. */
        public NotifyDeadWriter(int oid, Throwable cause) {
            super(cause);
            this.oid = oid;
        }

        /** The write error carried by createdAt, or null. */
        public Throwable getCause() {
            return createdAt == null ? null : createdAt.getCause();
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
