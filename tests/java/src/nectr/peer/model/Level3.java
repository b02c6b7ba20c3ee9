package nectr.peer.model;

/** Bottom level: shadows {@code value} with a different type and {@code name} again. */
public class Level3 extends Level2 {
    private static final long serialVersionUID = 13L;

    public String value;
    public String name;

    /** Sets every level's fields, including the shadowed ones. */
    public Level3 fill(int v1, String n1, int v2, long extra, String v3, String n3) {
        ((Level1) this).value = v1;
        ((Level1) this).name = n1;
        ((Level2) this).value = v2;
        this.extra = extra;
        this.value = v3;
        this.name = n3;
        return this;
    }
}
