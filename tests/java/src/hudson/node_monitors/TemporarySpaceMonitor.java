package hudson.node_monitors;

import jenkins.MasterToSlaveFileCallable;

/** Holder of TemporarySpaceMonitor$GetTempSpace (SUID 1, no fields). */
public final class TemporarySpaceMonitor {
    private TemporarySpaceMonitor() {
    }

    public static final class GetTempSpace extends MasterToSlaveFileCallable<DiskSpaceMonitorDescriptor.DiskSpace> {
        private static final long serialVersionUID = 1L;
    }
}
