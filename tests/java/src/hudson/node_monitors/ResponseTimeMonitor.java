package hudson.node_monitors;

import java.io.IOException;
import java.io.Serializable;
import java.util.Arrays;
import jenkins.security.MasterToSlaveCallable;

/** Holder of ResponseTimeMonitor$Step2, $Step3 and $Data. */
public final class ResponseTimeMonitor {
    private ResponseTimeMonitor() {
    }

    /** Step2 (SUID 1; start, cur). */
    public static final class Step2 extends MasterToSlaveCallable<Step3, IOException> {
        private static final long serialVersionUID = 1L;
        private final Data cur;
        private final long start;

        public Step2(Data cur, long start) {
            this.cur = cur;
            this.start = start;
        }
    }

    /** Step3 (SUID 1, flags 0x02, no superclass; start, cur). */
    public static final class Step3 implements Serializable {
        private static final long serialVersionUID = 1L;
        private final Data cur;
        private final long start;

        public Step3(Data cur, long start) {
            this.cur = cur;
            this.start = start;
        }

        public Data getCur() { return cur; }
        public long getStart() { return start; }

        @Override
        public String toString() {
            return "Step3{start=" + start + ",cur=" + cur + "}";
        }
    }

    /** Data (SUID 1; past5). */
    public static final class Data implements Serializable {
        private static final long serialVersionUID = 1L;
        private final long[] past5;

        public Data(long[] past5) { this.past5 = past5; }
        public long[] getPast5() { return past5; }

        @Override
        public String toString() {
            return "Data{past5=" + Arrays.toString(past5) + "}";
        }
    }
}
