package jenkins.util;

import java.util.Map;
import jenkins.security.MasterToSlaveCallable;

/** Holder of SystemProperties$AgentCopier$CopySystemProperties. */
public final class SystemProperties {
    private SystemProperties() {
    }

    public static final class AgentCopier {
        private AgentCopier() {
        }

        /** SUID 1; snapshot (a HashMap<String,String>). */
        public static final class CopySystemProperties extends MasterToSlaveCallable<Void, RuntimeException> {
            private static final long serialVersionUID = 1L;
            private final Map<String, String> snapshot;

            public CopySystemProperties(Map<String, String> snapshot) { this.snapshot = snapshot; }
        }
    }
}
