package nectr.peer.model;

import java.io.Serializable;

/** Object, enum and array fields. */
public class Holder implements Serializable {
    private static final long serialVersionUID = 4L;

    public Object value;
    public Color color;
    public int[] ints;
    public String[] names;

    public Holder() {
    }

    public Holder(Object value, Color color, int[] ints, String[] names) {
        this.value = value;
        this.color = color;
        this.ints = ints;
        this.names = names;
    }
}
