package jenkins.agents;

/** Marker interface (since Jenkins 2.485). */
public interface ControllerToAgentFileCallable<T> extends hudson.FilePath.FileCallable<T> {
}
