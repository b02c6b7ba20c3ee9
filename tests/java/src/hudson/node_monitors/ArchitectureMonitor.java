package hudson.node_monitors;

import java.io.IOException;
import jenkins.security.MasterToSlaveCallable;

/** Holder of ArchitectureMonitor$GetArchTask (SUID 1). */
public final class ArchitectureMonitor {
    private ArchitectureMonitor() {
    }

    public static final class GetArchTask extends MasterToSlaveCallable<String, IOException> {
        private static final long serialVersionUID = 1L;
    }
}
