package nectr.peer.model;

import java.io.Serializable;

/** Serializable subclass of the non-serializable {@link PlainBase}: one level of class data. */
public class OnPlain extends PlainBase implements Serializable {
    private static final long serialVersionUID = 14L;

    public int own;
    public String label;

    public OnPlain() {
    }

    public OnPlain(int plain, int own, String label) {
        this.plain = plain;
        this.own = own;
        this.label = label;
    }
}
