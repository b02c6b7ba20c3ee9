package jenkins;

/** Abstract base of most FileCallables (SUID 1, no fields). */
public abstract class MasterToSlaveFileCallable<T> implements jenkins.agents.ControllerToAgentFileCallable<T> {
    private static final long serialVersionUID = 1L;
}
