package hudson.remoting;

import java.io.Serializable;

/** Wire twin of remoting's ResourceImageRef (SUID 1, no fields): where a class or resource image is. */
public abstract class ResourceImageRef implements Serializable {
    private static final long serialVersionUID = 1L;
}
