package jenkins.slaves.restarter;

/** UnixSlaveRestarter (SUID 1, only transient fields). */
public class UnixSlaveRestarter extends SlaveRestarter {
    private static final long serialVersionUID = 1L;
    private transient String exe;
    private transient String[] args;
}
