package nectr.peer.model;

import java.io.Serializable;

/** SUID test: only compile-time constant statics, so no static initializer. */
public class SuidConstantsOnly implements Serializable {
    public static final int ANSWER = 42;
    static final String NAME = "constants";
    private static final long HIDDEN = 7L;

    public int id;
}
