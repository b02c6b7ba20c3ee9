package nectr.peer.model;

import java.io.Serializable;

/** A linked node used for chains, cycles and random graphs. */
public class Node implements Serializable {
    private static final long serialVersionUID = 3L;

    public String name;
    public Node next;
    public Object payload;

    public Node() {
    }

    public Node(String name, Node next, Object payload) {
        this.name = name;
        this.next = next;
        this.payload = payload;
    }
}
