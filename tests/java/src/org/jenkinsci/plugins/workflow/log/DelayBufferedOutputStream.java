package org.jenkinsci.plugins.workflow.log;

/** Holder of `DelayBufferedOutputStream$Tuning`. */
public final class DelayBufferedOutputStream {
    private DelayBufferedOutputStream() {
    }

    /** `$Tuning` (SUID -722764062640914069) with workflow-api's defaults, as captured. */
    public static final class Tuning implements java.io.Serializable {
        private static final long serialVersionUID = -722764062640914069L;
        long minRecurrencePeriod = 1000;
        long maxRecurrencePeriod = 10000;
        float recurrencePeriodBackoff = 1.05f;
        int bufferSize = 1 << 16;
    }
}
