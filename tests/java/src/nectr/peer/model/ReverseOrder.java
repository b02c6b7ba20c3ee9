package nectr.peer.model;

import java.io.Serializable;
import java.util.Comparator;

/** Serializable comparator for TreeMap: reverse natural order of strings. */
public class ReverseOrder implements Comparator<String>, Serializable {
    private static final long serialVersionUID = 25L;

    @Override
    public int compare(String a, String b) {
        return b.compareTo(a);
    }
}
