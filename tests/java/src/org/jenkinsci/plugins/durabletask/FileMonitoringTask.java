package org.jenkinsci.plugins.durabletask;

import java.io.OutputStream;

/**
 * Holder of the durable-task polling callables. None of them declares a serialVersionUID in
 * the plugin: the values here are the ones the real classes (durable-task 555.v6802fe0f0b_82)
 * write, read from the capture of Jenkins 2.460.
 */
public final class FileMonitoringTask {
    private FileMonitoringTask() {
    }

    public static final class FileMonitoringController {
        private FileMonitoringController() {
        }

        /** `$WriteLog` (lastLocation, sink): copy the log from lastLocation into sink (then Unexport it). */
        public static final class WriteLog extends jenkins.MasterToSlaveFileCallable<Void> {
            private static final long serialVersionUID = 9158495538758751160L;
            private final long lastLocation;
            private final OutputStream sink;

            /** {@code sink} is a hudson.remoting.RemoteOutputStream (declared OutputStream, as in the plugin). */
            public WriteLog(long lastLocation, hudson.remoting.RemoteOutputStream sink) {
                this.lastLocation = lastLocation;
                this.sink = sink;
            }
        }

        /** `$StatusCheck` (no fields): the exit code in jenkins-result.txt, or null. */
        public static final class StatusCheck extends jenkins.MasterToSlaveFileCallable<Integer> {
            private static final long serialVersionUID = 5735394101254645562L;
        }

        /** `$GetOutput` (charset): output.txt, for returnStdout. */
        public static final class GetOutput extends jenkins.MasterToSlaveFileCallable<byte[]> {
            private static final long serialVersionUID = 2278910510741686376L;
            private final String charset;

            public GetOutput(String charset) {
                this.charset = charset;
            }
        }

        /** `$TranscodingCharsetForSystemDefault` (sent raw): null if the agent's charset is UTF-8. */
        public static final class TranscodingCharsetForSystemDefault
                extends jenkins.security.MasterToSlaveCallable<String, RuntimeException> {
            private static final long serialVersionUID = -4652530080013464339L;
        }
    }

}
