package nectr.peer.model;

import java.io.Serializable;

/** SUID test: overloaded constructors with every access level. */
public class SuidConstructors implements Serializable {
    public int a;
    public String b;

    public SuidConstructors() {
    }

    protected SuidConstructors(int a) {
        this.a = a;
    }

    SuidConstructors(String b) {
        this.b = b;
    }

    private SuidConstructors(int a, String b) {
        this.a = a;
        this.b = b;
    }

    public SuidConstructors(long a, Object... rest) {
        this((int) a, String.valueOf(rest.length));
    }
}
