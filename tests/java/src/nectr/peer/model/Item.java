package nectr.peer.model;

import java.io.Serializable;

/** A record-like class with mixed field types; used by the random graphs and big streams. */
public class Item implements Serializable {
    private static final long serialVersionUID = 27L;

    public long id;
    public double weight;
    public boolean active;
    public String name;
    public Color color;
    public int[] data;
    public Object extra;

    public Item() {
    }

    public Item(long id, double weight, boolean active, String name, Color color, int[] data,
            Object extra) {
        this.id = id;
        this.weight = weight;
        this.active = active;
        this.name = name;
        this.color = color;
        this.data = data;
        this.extra = extra;
    }
}
