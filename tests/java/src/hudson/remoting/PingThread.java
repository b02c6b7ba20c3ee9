package hudson.remoting;

/** Holder of PingThread$Ping (SUID 1, no fields). */
public final class PingThread {
    private PingThread() {
    }

    public static final class Ping implements Callable<Void, java.io.IOException> {
        private static final long serialVersionUID = 1L;

        @Override
        public Void call() {
            return null;
        }
    }
}
