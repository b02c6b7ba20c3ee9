package nectr.peer.model;

import java.io.Serializable;

/** An int and an arbitrary object; handy for cycles and shared references. */
public class Pair implements Serializable {
    private static final long serialVersionUID = 8L;

    public int a;
    public Object b;

    public Pair() {
    }

    public Pair(int a, Object b) {
        this.a = a;
        this.b = b;
    }
}
