package nectr.sim;

/** A callable class no agent can know (--scenario unknown). */
public final class UnknownCallable extends jenkins.security.MasterToSlaveCallable<String, java.io.IOException> {
    private static final long serialVersionUID = 1L;
    private final String payload;
    private final int number;

    public UnknownCallable(String payload, int number) {
        this.payload = payload;
        this.number = number;
    }
}
