package hudson;

import java.io.IOException;
import jenkins.security.MasterToSlaveCallable;

/**
 * Wire twin of `hudson.EnvVars` (SUID 4320331661987259022, field `platform`): a TreeMap ordered
 * with String.CASE_INSENSITIVE_ORDER, as Jenkins builds it. The controller sends one in the
 * freestyle KillTask; the agent answers GetEnvVars with one.
 */
public class EnvVars extends java.util.TreeMap<String, String> {
    private static final long serialVersionUID = 4320331661987259022L;
    @SuppressWarnings("unused") private Platform platform;

    public EnvVars() {
        super(String.CASE_INSENSITIVE_ORDER);
    }

    public EnvVars(java.util.Map<String, String> m) {
        this();
        putAll(m);
    }

    /** `hudson.EnvVars$GetEnvVars` (SUID 1): the agent's own environment. */
    public static final class GetEnvVars extends MasterToSlaveCallable<EnvVars, IOException> {
        private static final long serialVersionUID = 1L;
    }
}
