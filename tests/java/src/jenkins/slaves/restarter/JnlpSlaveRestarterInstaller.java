package jenkins.slaves.restarter;

import java.io.IOException;
import java.util.List;
import jenkins.security.MasterToSlaveCallable;

/** Holder of JnlpSlaveRestarterInstaller$FindEffectiveRestarters (no SUID declared; restarters). */
public final class JnlpSlaveRestarterInstaller {
    private JnlpSlaveRestarterInstaller() {
    }

    /** The JVM-computed SUID of Jenkins 2.460's class (from the capture). */
    public static final class FindEffectiveRestarters extends MasterToSlaveCallable<List<SlaveRestarter>, IOException> {
        private static final long serialVersionUID = 9015462457743404715L;
        private final List<SlaveRestarter> restarters;

        public FindEffectiveRestarters(List<SlaveRestarter> restarters) { this.restarters = restarters; }
    }
}
