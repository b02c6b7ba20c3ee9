package hudson.remoting;

import java.io.Serializable;

/** remoting's Capability (SUID 1, one field: long mask). */
public final class Capability implements Serializable {
    private static final long serialVersionUID = 1L;
    private final long mask;

    public Capability(long mask) { this.mask = mask; }
    public long getMask() { return mask; }
}
