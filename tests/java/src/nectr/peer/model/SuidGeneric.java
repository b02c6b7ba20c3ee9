package nectr.peer.model;

import java.io.Serializable;
import java.util.Map;

/** SUID test: a generic class (signatures use erasures) with a throws clause. */
public class SuidGeneric<K extends Comparable<K>, V> implements Serializable {
    public K key;
    public Map<K, V> map;

    public <T extends Number> T convert(T t, V v) throws java.io.IOException {
        return t;
    }

    public K[] keys(K[] into) {
        return into;
    }
}
