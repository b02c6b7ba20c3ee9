package nectr.peer.model;

import java.io.Serializable;

/** One field of every primitive type. */
public class AllPrims implements Serializable {
    private static final long serialVersionUID = 2L;

    public boolean z;
    public byte b;
    public char c;
    public short s;
    public int i;
    public long j;
    public float f;
    public double d;

    public AllPrims() {
    }

    public AllPrims(boolean z, byte b, char c, short s, int i, long j, float f, double d) {
        this.z = z;
        this.b = b;
        this.c = c;
        this.s = s;
        this.i = i;
        this.j = j;
        this.f = f;
        this.d = d;
    }
}
