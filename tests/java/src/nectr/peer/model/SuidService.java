package nectr.peer.model;

import java.io.Serializable;
import java.util.List;

/** SUID test: an interface with abstract, default and static methods and a non-constant field. */
public interface SuidService extends Serializable, Comparable<SuidService> {
    /** Not a compile-time constant: the interface gets a static initializer. */
    List<String> NAMES = List.of("a", "b");

    /** A compile-time constant. */
    int LIMIT = 10;

    String name();

    default String describe() {
        return name() + LIMIT;
    }

    static SuidService none() {
        return null;
    }
}
