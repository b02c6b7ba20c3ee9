package nectr.peer.model;

import java.io.Serializable;

/** SUID test: a record (serialized with SUID 0 unless declared; the default hash still exists). */
public record SuidRecord(int x, String y, long[] z) implements Serializable {
    public SuidRecord {
        if (x < 0) {
            throw new IllegalArgumentException("x");
        }
    }

    public static SuidRecord of(int x) {
        return new SuidRecord(x, "", new long[0]);
    }
}
