package nectr.peer.model;

import java.io.Serializable;

/** SUID test: a static initializer block (the hash includes <clinit>). */
public class SuidStaticInit implements Serializable {
    static int counter;

    static {
        counter = Integer.getInteger("nectr.counter", 3);
    }

    public int id;
}
