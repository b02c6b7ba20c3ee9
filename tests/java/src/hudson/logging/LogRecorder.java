package hudson.logging;

import java.util.logging.Level;
import jenkins.security.MasterToSlaveCallable;

/** Holder of LogRecorder$SetLevel. */
public final class LogRecorder {
    private LogRecorder() {
    }

    /** No SUID declared in Jenkins; fields level (the JDK's Level) and name. */
    public static final class SetLevel extends MasterToSlaveCallable<Void, Error> {
        private final String name;
        private final Level level;

        public SetLevel(String name, Level level) {
            this.name = name;
            this.level = level;
        }
    }
}
