package hudson.remoting;

/** Holder of the Channel nested commands used on the wire. */
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
}
