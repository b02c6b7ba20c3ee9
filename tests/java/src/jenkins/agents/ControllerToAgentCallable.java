package jenkins.agents;

/** Marker interface (since Jenkins 2.485). */
public interface ControllerToAgentCallable<V, T extends Throwable> extends hudson.remoting.Callable<V, T> {
}
