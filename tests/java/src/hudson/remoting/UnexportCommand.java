package hudson.remoting;

/** UnexportCommand (SUID 1; oid). createdAt is recorded, as remoting's UnexportCommand(int) does. */
public final class UnexportCommand extends Command {
    private static final long serialVersionUID = 1L;
    private final int oid;

    public UnexportCommand(int oid) { super(); this.oid = oid; }
    public int getOid() { return oid; }
}
