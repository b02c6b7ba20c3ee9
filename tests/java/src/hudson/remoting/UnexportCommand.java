package hudson.remoting;

/** UnexportCommand (SUID 1; oid). */
public final class UnexportCommand extends Command {
    private static final long serialVersionUID = 1L;
    private final int oid;

    public UnexportCommand(int oid) { super(false); this.oid = oid; }
    public int getOid() { return oid; }
}
