package hudson;

import hudson.model.TaskListener;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.io.Serializable;
import java.util.List;
import java.util.Map;
import jenkins.security.MasterToSlaveCallable;
import jenkins.tasks.filters.EnvVarsFilterRuleWrapper;

/** Holder of the `hudson.Launcher` classes a build sends and receives (as in Jenkins 2.460). */
public abstract class Launcher {
    private Launcher() {
    }

    /**
     * `Launcher$RemoteLaunchCallable`: in 2.460 a class (SUID 1) extending MasterToSlaveCallable
     * (a record since 2.485). The agent starts the process and returns an exported
     * {@link RemoteProcess}.
     */
    public static final class RemoteLaunchCallable extends MasterToSlaveCallable<RemoteProcess, IOException> {
        private static final long serialVersionUID = 1L;
        private final List<String> cmd;
        private final boolean[] masks;
        private final String[] env;
        private final InputStream in;
        private final OutputStream out;
        private final OutputStream err;
        private final String workDir;
        private final TaskListener listener;
        private final TaskListener stdoutListener;
        private final boolean reverseStdin;
        private final boolean reverseStdout;
        private final boolean reverseStderr;
        private final boolean quiet;
        private final EnvVarsFilterRuleWrapper envVarsFilterRuleWrapper = new EnvVarsFilterRuleWrapper();

        /** Only the combinations Jenkins uses are needed: no in/out/err streams of our own. */
        public RemoteLaunchCallable(List<String> cmd, String[] env, String workDir, TaskListener listener,
                TaskListener stdoutListener, boolean reverseStdout, boolean reverseStderr, boolean quiet) {
            this.cmd = cmd;
            this.masks = null;
            this.env = env;
            this.in = null;
            this.out = null;
            this.err = null;
            this.workDir = workDir;
            this.listener = listener;
            this.stdoutListener = stdoutListener;
            this.reverseStdin = false;
            this.reverseStdout = reverseStdout;
            this.reverseStderr = reverseStderr;
            this.quiet = quiet;
        }
    }

    /** `Launcher$RemoteProcess`: the interface of the process proxy the agent exports. */
    public interface RemoteProcess {
        int join() throws InterruptedException, IOException;

        void kill() throws IOException, InterruptedException;

        boolean isAlive() throws IOException, InterruptedException;

        IOTriplet getIOtriplet();
    }

    /** `Launcher$IOTriplet` (SUID 1): the process's streams when reversed (RemoteInputStreams). */
    public static class IOTriplet implements Serializable {
        private static final long serialVersionUID = 1L;
        InputStream stdout;
        InputStream stderr;
        OutputStream stdin;

        public InputStream getStdout() { return stdout; }
        public InputStream getStderr() { return stderr; }
        public OutputStream getStdin() { return stdin; }
    }

    /** Holder of `Launcher$RemoteLauncher$KillTask`. */
    public static final class RemoteLauncher {
        private RemoteLauncher() {
        }

        /**
         * `KillTask` (SUID 1; modelEnvVars): kill every process whose environment has all these
         * pairs. Freestyle sends an {@link EnvVars}; Pipeline a Collections$SingletonMap.
         */
        public static final class KillTask extends MasterToSlaveCallable<Void, RuntimeException> {
            private static final long serialVersionUID = 1L;
            private final Map<String, String> modelEnvVars;

            public KillTask(Map<String, String> modelEnvVars) {
                this.modelEnvVars = modelEnvVars;
            }
        }
    }
}
