package hudson.node_monitors;

import java.io.IOException;
import java.io.Serializable;
import jenkins.MasterToSlaveFileCallable;

/** Holder of DiskSpaceMonitorDescriptor$GetUsableSpace and $DiskSpace. */
public final class DiskSpaceMonitorDescriptor {
    private DiskSpaceMonitorDescriptor() {
    }

    /** GetUsableSpace (SUID 1, no fields). */
    public static final class GetUsableSpace extends MasterToSlaveFileCallable<DiskSpace> {
        private static final long serialVersionUID = 1L;
    }

    /**
     * DiskSpace (SUID 2). Its superclasses (MonitorOfflineCause, OfflineCause) are not
     * serializable, so only its own fields are on the wire: size, threshold, totalSize,
     * warningThreshold, path, trigger.
     */
    public static final class DiskSpace implements Serializable {
        private static final long serialVersionUID = 2L;
        private final String path;
        private Class<?> trigger;
        private long threshold;
        private long totalSize;
        private long warningThreshold;
        public final long size;

        public DiskSpace(String path, long size) {
            this.path = path;
            this.size = size;
        }

        public String getPath() { return path; }
        public long getSize() { return size; }
        public long getTotalSize() { return totalSize; }
        public long getThreshold() { return threshold; }
        public long getWarningThreshold() { return warningThreshold; }
        public Class<?> getTrigger() { return trigger; }

        @Override
        public String toString() {
            return "DiskSpace{path=" + path + ",size=" + size + ",totalSize=" + totalSize + ",threshold=" + threshold
                    + ",warningThreshold=" + warningThreshold + ",trigger=" + trigger + "}";
        }
    }
}
