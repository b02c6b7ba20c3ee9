package nectr.peer.model;

import java.io.Serializable;

/** SUID test: an assert statement adds the synthetic static field $assertionsDisabled and <clinit>. */
public class SuidAssert implements Serializable {
    public int checked(int x) {
        assert x > 0 : "positive";
        return x;
    }
}
