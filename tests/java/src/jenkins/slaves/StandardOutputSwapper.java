package jenkins.slaves;

import jenkins.security.MasterToSlaveCallable;

/** Holder of StandardOutputSwapper$ChannelSwapper (no SUID declared in Jenkins, no fields). */
public final class StandardOutputSwapper {
    private StandardOutputSwapper() {
    }

    /** The JVM-computed SUID of Jenkins 2.460's class (from the capture). */
    public static final class ChannelSwapper extends MasterToSlaveCallable<Boolean, Exception> {
        private static final long serialVersionUID = 451125196505759342L;
    }
}
