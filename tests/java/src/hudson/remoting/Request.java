package hudson.remoting;

/** Minimal wire twin of remoting's Request (SUID 1; id, lastIoId, response). */
public abstract class Request<RSP extends java.io.Serializable, EXC extends Throwable> extends Command {
    private static final long serialVersionUID = 1L;

    protected int id;
    int lastIoId;
    /** Always null on the wire. */
    volatile Response<RSP, EXC> response;

    protected Request() {
        super();
    }

    /** remoting's Request(boolean recordCreatedAt): RPCs of proxies that do not record createdAt. */
    protected Request(boolean recordCreatedAt) {
        super(recordCreatedAt);
    }

    public int getId() {
        return id;
    }

    public void setId(int id) {
        this.id = id;
    }

    public int getLastIoId() {
        return lastIoId;
    }

    /** Request$Cancel: asks the peer to interrupt request {@code id}. Explicit SUID. */
    public static final class Cancel extends Command {
        private static final long serialVersionUID = -1709992419006993208L;
        final int id;

        public Cancel(int id) {
            super();
            this.id = id;
        }

        public int getId() {
            return id;
        }
    }
}
