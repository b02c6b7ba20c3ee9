package hudson.model;

/** `hudson.model.TaskListener` (an interface: only the field type signatures name it). */
public interface TaskListener extends java.io.Serializable {
}
