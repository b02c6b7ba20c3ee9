package hudson.remoting;

/** GCCommand (SUID 1, no fields). */
public final class GCCommand extends Command {
    private static final long serialVersionUID = 1L;

    public GCCommand() { super(false); }
}
