package nectr.peer.model;

import java.io.IOException;
import java.io.ObjectInputStream;
import java.io.ObjectOutput;
import java.io.ObjectOutputStream;
import java.io.Serializable;

/** Superclass with its own writeObject; {@link CustomSub} adds another. */
public class CustomBase implements Serializable {
    private static final long serialVersionUID = 20L;

    public long stamp;

    private void writeObject(ObjectOutputStream out) throws IOException {
        out.defaultWriteObject();
        writeData(out);
    }

    private void writeData(ObjectOutput out) throws IOException {
        out.writeLong(~stamp);
        out.writeObject("base-" + stamp);
    }

    private void readObject(ObjectInputStream in) throws IOException, ClassNotFoundException {
        in.defaultReadObject();
        if (in.readLong() != ~stamp || !("base-" + stamp).equals(in.readObject())) {
            throw new IOException("CustomBase: unexpected custom data");
        }
    }
}
