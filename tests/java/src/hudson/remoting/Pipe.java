package hudson.remoting;

import java.io.IOException;
import java.io.InputStream;
import java.io.ObjectInputStream;
import java.io.ObjectOutputStream;
import java.io.OutputStream;
import java.io.Serializable;

/**
 * Wire twin of remoting's Pipe (SUID 1). It declares the fields {@code in} and {@code out} but
 * its writeObject skips defaultWriteObject and writes a boolean and an int (§5.7):
 * <ul>
 * <li>{@code true + oid} (Pipe.createRemoteToLocal): the receiver writes into our export
 *     {@code oid} with ProxyOutputStream commands;</li>
 * <li>{@code false + oidRos} (Pipe.createLocalToRemote): we will write to the receiver; it
 *     exports a sink under a new oid {@code oidPos} and answers with
 *     {@link ConnectCommand}(oidPos, oidRos), after which our chunks go to oidPos.</li>
 * </ul>
 */
public final class Pipe implements Serializable {
    private static final long serialVersionUID = 1L;
    @SuppressWarnings("unused") private InputStream in;
    @SuppressWarnings("unused") private OutputStream out;
    /** The boolean on the wire: true = remote-to-local form. */
    private transient boolean remoteToLocal;
    private transient int oid;

    /** Pipe.createRemoteToLocal: the receiver writes into our export {@code oid}. */
    public Pipe(int oid) {
        this(true, oid);
    }

    private Pipe(boolean remoteToLocal, int oid) {
        this.remoteToLocal = remoteToLocal;
        this.oid = oid;
    }

    /** Pipe.createLocalToRemote: {@code oidRos} names our pending writer until ConnectCommand arrives. */
    public static Pipe localToRemote(int oidRos) {
        return new Pipe(false, oidRos);
    }

    /** true = remote-to-local form (the reader of this object writes), false = local-to-remote. */
    public boolean isRemoteToLocal() {
        return remoteToLocal;
    }

    /** The oid on the wire (the sink in the remote-to-local form, oidRos in the local-to-remote form). */
    public int getOid() {
        return oid;
    }

    private void writeObject(ObjectOutputStream oos) throws IOException {
        oos.writeBoolean(remoteToLocal);
        oos.writeInt(oid);
    }

    private void readObject(ObjectInputStream ois) throws IOException {
        remoteToLocal = ois.readBoolean();
        oid = ois.readInt();
    }

    /**
     * `Pipe$ConnectCommand` (explicit SUID -9128735897846418140, extends Command): sent by the
     * side that read a local-to-remote Pipe: "send the data of your writer {@code oidRos} to my
     * export {@code oidPos}".
     */
    public static final class ConnectCommand extends Command {
        private static final long serialVersionUID = -9128735897846418140L;
        public final int oidRos;
        public final int oidPos;

        public ConnectCommand(int oidRos, int oidPos) {
            super();
            this.oidRos = oidRos;
            this.oidPos = oidPos;
        }
    }
}
