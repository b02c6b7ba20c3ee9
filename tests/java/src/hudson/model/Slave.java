package hudson.model;

import java.io.IOException;
import java.io.Serializable;
import jenkins.security.MasterToSlaveCallable;

/** Holder of the clock-difference callables. */
public final class Slave {
    private Slave() {
    }

    /** Slave$GetClockDifference2 (SUID 1; startTime). */
    public static final class GetClockDifference2 extends MasterToSlaveCallable<GetClockDifference3, IOException> {
        private static final long serialVersionUID = 1L;
        private final long startTime;

        public GetClockDifference2(long startTime) { this.startTime = startTime; }
    }

    /** Slave$GetClockDifference3: computed SUID -6655128034486338777; remoteTime, startTime; no superclass data. */
    public static final class GetClockDifference3 implements Serializable {
        private static final long serialVersionUID = -6655128034486338777L;
        private final long remoteTime;
        private final long startTime;

        public GetClockDifference3(long startTime, long remoteTime) {
            this.startTime = startTime;
            this.remoteTime = remoteTime;
        }

        public long getRemoteTime() { return remoteTime; }
        public long getStartTime() { return startTime; }

        @Override
        public String toString() {
            return "GetClockDifference3{startTime=" + startTime + ",remoteTime=" + remoteTime + "}";
        }
    }
}
