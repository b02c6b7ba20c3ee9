package hudson.remoting;

import java.io.IOException;
import java.io.ObjectInputStream;
import java.io.ObjectOutputStream;
import java.io.Serializable;

/**
 * Wire twin of remoting's RemoteOutputStream (an OutputStream; SUID 1, no serial fields): its writeObject data
 * is one int, the oid of an OutputStream exported by the writer (§5.7).
 */
public final class RemoteOutputStream extends java.io.OutputStream implements Serializable {
    private static final long serialVersionUID = 1L;
    private transient int oid;

    public RemoteOutputStream(int oid) {
        this.oid = oid;
    }

    public int getOid() {
        return oid;
    }

    /** Only its oid matters here: the simulator writes with SimChannel.writeRemote. */
    @Override
    public void write(int b) {
        throw new UnsupportedOperationException("simulator: write through SimChannel.writeRemote");
    }

    private void writeObject(ObjectOutputStream oos) throws IOException {
        oos.writeInt(oid);
    }

    private void readObject(ObjectInputStream ois) throws IOException {
        oid = ois.readInt();
    }
}
