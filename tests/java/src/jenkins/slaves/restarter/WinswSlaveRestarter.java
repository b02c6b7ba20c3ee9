package jenkins.slaves.restarter;

/** WinswSlaveRestarter (SUID 1, only transient fields): Jenkins lists it after UnixSlaveRestarter. */
public class WinswSlaveRestarter extends SlaveRestarter {
    private static final long serialVersionUID = 1L;
    private transient String exe;
}
