package jenkins.tasks.filters;

/** `jenkins.tasks.filters.EnvVarsFilterRuleWrapper` (SUID -8647970104978388598; rules). */
public class EnvVarsFilterRuleWrapper implements java.io.Serializable {
    private static final long serialVersionUID = -8647970104978388598L;
    private final java.util.List<Object> rules = new java.util.ArrayList<>();
}
