package jenkins.slaves.restarter;

import java.io.Serializable;

/** SlaveRestarter base (SUID 1, no serial fields). */
public abstract class SlaveRestarter implements Serializable {
    private static final long serialVersionUID = 1L;
}
