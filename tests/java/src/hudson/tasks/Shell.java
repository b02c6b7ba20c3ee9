package hudson.tasks;

import java.io.IOException;
import jenkins.security.MasterToSlaveCallable;

/** Holder of `hudson.tasks.Shell$DescriptorImpl$Shellinterpreter`. */
public final class Shell {
    private Shell() {
    }

    public static final class DescriptorImpl {
        private DescriptorImpl() {
        }

        /** SUID 1, no fields: the agent's default shell ("/bin/sh" on Unix). */
        public static final class Shellinterpreter extends MasterToSlaveCallable<String, IOException> {
            private static final long serialVersionUID = 1L;
        }
    }
}
