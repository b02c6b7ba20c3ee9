package jenkins.security;

/** Abstract base of most core callables (SUID 1, no fields). */
public abstract class MasterToSlaveCallable<V, T extends Throwable> implements jenkins.agents.ControllerToAgentCallable<V, T> {
    private static final long serialVersionUID = 1L;

    @Override
    public V call() throws T {
        throw new UnsupportedOperationException("simulator: callables are never run here");
    }
}
