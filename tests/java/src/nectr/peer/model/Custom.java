package nectr.peer.model;

import java.io.IOException;
import java.io.ObjectInputStream;
import java.io.ObjectOutput;
import java.io.ObjectOutputStream;
import java.io.Serializable;

/**
 * Custom writeObject: default fields, then the int n * 2 and the string "tail".
 * Like every model class with a writeObject method, the data written after the default
 * fields is produced by a private {@code writeData(ObjectOutput)} method which the oracle
 * dumper also calls (with a recording ObjectOutput) to learn what was written.
 */
public class Custom implements Serializable {
    private static final long serialVersionUID = 7L;

    public int n;

    public Custom() {
    }

    public Custom(int n) {
        this.n = n;
    }

    private void writeObject(ObjectOutputStream out) throws IOException {
        out.defaultWriteObject();
        writeData(out);
    }

    private void writeData(ObjectOutput out) throws IOException {
        out.writeInt(n * 2);
        out.writeObject("tail");
    }

    private void readObject(ObjectInputStream in) throws IOException, ClassNotFoundException {
        in.defaultReadObject();
        if (in.readInt() != n * 2 || !"tail".equals(in.readObject())) {
            throw new IOException("Custom: unexpected custom data");
        }
    }
}
