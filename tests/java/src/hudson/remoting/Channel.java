package hudson.remoting;

/** Holder of the Channel nested commands and callables used on the wire. */
public final class Channel {
    private Channel() {
    }

    /** Channel$CloseCommand: explicit SUID 972857271608138115, no fields of its own. */
    public static final class CloseCommand extends Command {
        private static final long serialVersionUID = 972857271608138115L;

        public CloseCommand(Throwable cause) {
            super(cause);
        }
    }

    /**
     * Channel$IOSyncer (SUID 1, no fields): a callable that answers null once the receiver has
     * applied every stream command that arrived before it.
     */
    public static final class IOSyncer implements Callable<Object, InterruptedException> {
        private static final long serialVersionUID = 1L;

        @Override
        public Object call() {
            throw new UnsupportedOperationException("simulator: callables are never run here");
        }
    }
}
