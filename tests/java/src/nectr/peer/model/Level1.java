package nectr.peer.model;

import java.io.Serializable;

/** Top of a three-level serializable hierarchy whose subclasses shadow field names. */
public class Level1 implements Serializable {
    private static final long serialVersionUID = 11L;

    public int value;
    public String name;
}
