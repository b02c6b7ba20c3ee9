package hudson.slaves;

import java.io.IOException;
import java.util.List;
import jenkins.security.MasterToSlaveCallable;

/** Holder of the SlaveComputer callables the controller sends while connecting. */
public final class SlaveComputer {
    private SlaveComputer() {
    }

    /**
     * No SUID is declared in Jenkins for these four; the values are the JVM-computed ones of
     * Jenkins 2.460's classes, as its controller writes them (read from the capture).
     */
    public static final class SlaveVersion extends MasterToSlaveCallable<String, IOException> {
        private static final long serialVersionUID = -1836292471078227186L;
    }

    public static final class CommunicationProtocol extends MasterToSlaveCallable<String, IOException> {
        private static final long serialVersionUID = 5456434590258227786L;
    }

    public static final class DetectOS extends MasterToSlaveCallable<Boolean, IOException> {
        private static final long serialVersionUID = -2305095165897831376L;
    }

    public static final class DetectDefaultCharset extends MasterToSlaveCallable<String, IOException> {
        private static final long serialVersionUID = -5851131978410997033L;
    }

    /** SUID 1; relativePath. Sent only when the node's remote FS is relative. */
    public static final class AbsolutePath extends MasterToSlaveCallable<String, IOException> {
        private static final long serialVersionUID = 1L;
        private final String relativePath;

        public AbsolutePath(String relativePath) { this.relativePath = relativePath; }
    }

    /** SUID 1; ringBufferSize (256). */
    public static final class SlaveInitializer extends MasterToSlaveCallable<Void, RuntimeException> {
        private static final long serialVersionUID = 1L;
        private final int ringBufferSize;

        public SlaveInitializer(int ringBufferSize) { this.ringBufferSize = ringBufferSize; }
    }

    public static final class SlaveLogFetcher extends MasterToSlaveCallable<List<?>, RuntimeException> {
    }
}
