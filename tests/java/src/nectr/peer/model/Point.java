package nectr.peer.model;

import java.io.Serializable;

/** A plain two-int value class (required by the Rust side with exactly these fields and SUID). */
public class Point implements Serializable {
    private static final long serialVersionUID = 1L;

    public int x;
    public int y;

    public Point() {
    }

    public Point(int x, int y) {
        this.x = x;
        this.y = y;
    }
}
