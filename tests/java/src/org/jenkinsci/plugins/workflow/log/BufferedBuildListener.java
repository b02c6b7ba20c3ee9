package org.jenkinsci.plugins.workflow.log;

/** Holder of `BufferedBuildListener$Replacement`, what a Pipeline build listener becomes on the wire. */
public final class BufferedBuildListener {
    private BufferedBuildListener() {
    }

    /**
     * `BufferedBuildListener$Replacement` (SUID 1; ros, tuning; no serializable superclass).
     * In Jenkins it is not itself a TaskListener (its readResolve returns one); the stub
     * implements the interface so that it can sit in TaskListener fields. Interfaces are not
     * part of the stream.
     */
    public static final class Replacement implements hudson.model.TaskListener {
        private static final long serialVersionUID = 1L;
        private final hudson.remoting.RemoteOutputStream ros;
        private final DelayBufferedOutputStream.Tuning tuning = new DelayBufferedOutputStream.Tuning();

        public Replacement(hudson.remoting.RemoteOutputStream ros) {
            this.ros = ros;
        }
    }
}
