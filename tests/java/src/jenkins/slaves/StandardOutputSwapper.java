package jenkins.slaves;

import jenkins.security.MasterToSlaveCallable;

/** Holder of StandardOutputSwapper$ChannelSwapper (no SUID declared, no fields). */
public final class StandardOutputSwapper {
    private StandardOutputSwapper() {
    }

    public static final class ChannelSwapper extends MasterToSlaveCallable<Boolean, Exception> {
    }
}
