package nectr.peer.model;

import java.io.Serializable;

/** Serializable superclass of {@link Derived}. */
public class Base implements Serializable {
    private static final long serialVersionUID = 5L;

    public int baseField;
}
