package nectr.peer.model;

import java.io.Serializable;
import java.util.function.Function;

/** SUID test: generic overrides that make javac emit bridge methods. */
public class SuidBridge implements Serializable, Comparable<SuidBridge>, Function<String, Integer> {
    public int rank;

    @Override
    public int compareTo(SuidBridge other) {
        return Integer.compare(rank, other.rank);
    }

    @Override
    public Integer apply(String s) {
        return s.length() + rank;
    }

    /** Covariant return type: another bridge method. */
    @Override
    public SuidBridge clone() {
        SuidBridge copy = new SuidBridge();
        copy.rank = rank;
        return copy;
    }
}
