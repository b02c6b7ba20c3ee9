package hudson.util;

/** `hudson.util.AbstractTaskListener` (SUID 7217626701881006422, no fields). */
public abstract class AbstractTaskListener implements hudson.model.TaskListener {
    private static final long serialVersionUID = 7217626701881006422L;
}
