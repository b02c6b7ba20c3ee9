package hudson.node_monitors;

import java.io.IOException;
import jenkins.security.MasterToSlaveCallable;
import org.jvnet.hudson.MemoryUsage;

/** Holder of SwapSpaceMonitor$MonitorTask and $MemoryUsage2. */
public final class SwapSpaceMonitor {
    private SwapSpaceMonitor() {
    }

    /** MonitorTask (SUID 1, no fields). */
    public static final class MonitorTask extends MasterToSlaveCallable<MemoryUsage, IOException> {
        private static final long serialVersionUID = 1L;
    }

    /** MemoryUsage2 (SUID 2216994637932270352, no own fields). */
    public static final class MemoryUsage2 extends MemoryUsage {
        private static final long serialVersionUID = 2216994637932270352L;

        public MemoryUsage2(long totalPhysicalMemory, long availablePhysicalMemory, long totalSwapSpace,
                long availableSwapSpace) {
            super(totalPhysicalMemory, availablePhysicalMemory, totalSwapSpace, availableSwapSpace);
        }
    }
}
