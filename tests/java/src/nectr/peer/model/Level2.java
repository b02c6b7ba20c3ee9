package nectr.peer.model;

/** Middle level: shadows {@code value} with a field of the same type. */
public class Level2 extends Level1 {
    private static final long serialVersionUID = 12L;

    public int value;
    public long extra;
}
