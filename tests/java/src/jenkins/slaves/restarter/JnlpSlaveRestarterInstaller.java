package jenkins.slaves.restarter;

import java.io.IOException;
import java.util.List;
import jenkins.security.MasterToSlaveCallable;

/** Holder of JnlpSlaveRestarterInstaller$FindEffectiveRestarters (no SUID declared; restarters). */
public final class JnlpSlaveRestarterInstaller {
    private JnlpSlaveRestarterInstaller() {
    }

    public static final class FindEffectiveRestarters extends MasterToSlaveCallable<List<SlaveRestarter>, IOException> {
        private final List<SlaveRestarter> restarters;

        public FindEffectiveRestarters(List<SlaveRestarter> restarters) { this.restarters = restarters; }
    }
}
