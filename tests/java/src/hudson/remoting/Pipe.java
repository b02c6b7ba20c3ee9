package hudson.remoting;

import java.io.IOException;
import java.io.InputStream;
import java.io.ObjectInputStream;
import java.io.ObjectOutputStream;
import java.io.OutputStream;
import java.io.Serializable;

/**
 * Wire twin of remoting's Pipe (SUID 1). It declares the fields {@code in} and {@code out} but
 * its writeObject skips defaultWriteObject and writes a boolean and an int (§5.7): here always
 * the remote-to-local form (true + the oid of a stream the simulator exported).
 */
public final class Pipe implements Serializable {
    private static final long serialVersionUID = 1L;
    @SuppressWarnings("unused") private InputStream in;
    @SuppressWarnings("unused") private OutputStream out;
    private transient int oid;

    /** Pipe.createRemoteToLocal: the receiver writes into our export {@code oid}. */
    public Pipe(int oid) {
        this.oid = oid;
    }

    private void writeObject(ObjectOutputStream oos) throws IOException {
        oos.writeBoolean(true);
        oos.writeInt(oid);
    }

    private void readObject(ObjectInputStream ois) throws IOException {
        ois.readBoolean();
        oid = ois.readInt();
    }
}
