package hudson.slaves;

import java.io.IOException;
import jenkins.security.MasterToSlaveCallable;

/** Holder of ChannelPinger$SetUpRemotePing. */
public final class ChannelPinger {
    private ChannelPinger() {
    }

    /** SUID -2702219700841759872; pingIntervalSeconds, pingTimeoutSeconds; transient pingInterval. */
    public static final class SetUpRemotePing extends MasterToSlaveCallable<Void, IOException> {
        private static final long serialVersionUID = -2702219700841759872L;
        @Deprecated
        private transient int pingInterval;
        private final int pingIntervalSeconds;
        private final int pingTimeoutSeconds;

        public SetUpRemotePing(int pingIntervalSeconds, int pingTimeoutSeconds) {
            this.pingIntervalSeconds = pingIntervalSeconds;
            this.pingTimeoutSeconds = pingTimeoutSeconds;
        }
    }
}
