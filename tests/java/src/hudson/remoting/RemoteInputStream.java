package hudson.remoting;

import java.io.IOException;
import java.io.InputStream;
import java.io.ObjectInputStream;
import java.io.ObjectOutputStream;
import java.io.Serializable;

/**
 * Wire twin of remoting's RemoteInputStream (SUID 1). It declares the serial fields
 * {@code autoUnexport} and {@code greedy} (so the class descriptor lists them) but its
 * writeObject does NOT call defaultWriteObject (§5.7). The custom data is:
 * <ul>
 * <li>if the agent advertised GREEDY_REMOTE_INPUTSTREAM (0x20): a boolean {@code greedy};</li>
 * <li>then, when greedy (only possible with 0x20), a {@link Pipe} in its local-to-remote form
 *     (the agent answers with Pipe$ConnectCommand and the simulator pushes the bytes);</li>
 * <li>otherwise an int: the oid of the InputStream the simulator exported for pulls
 *     (ProxyInputStream$Chunk requests, then ProxyInputStream$EOF).</li>
 * </ul>
 * The form is decided at construction, from the channel the object is meant for.
 */
public final class RemoteInputStream extends InputStream implements Serializable {
    private static final long serialVersionUID = 1L;

    /** Declared serial fields: listed in the class descriptor, never written as field data. */
    private boolean autoUnexport;
    private boolean greedy;

    /** Whether the leading boolean is written (the agent advertised 0x20). */
    private transient boolean withGreedyFlag;
    /** Greedy form: the local-to-remote pipe; null in the pull form. */
    private transient Pipe pipe;
    /** Pull form: the exported InputStream; greedy form: the pipe's oidRos. */
    private transient int oid;

    /**
     * What a reader assumes about its own capability when it deserializes one of these (only the
     * stand-in agent reads them): true = a leading boolean is present. Set once per process.
     */
    public static volatile boolean readerAdvertisedGreedy = true;

    /**
     * Exports {@code in} on {@code ch} and fixes the wire form: greedy (a Pipe) when
     * {@code greedy} is asked for and the agent advertised 0x20, the pull form (an oid) otherwise.
     */
    public RemoteInputStream(nectr.sim.SimChannel ch, InputStream in, boolean greedy) {
        this.autoUnexport = true;
        this.greedy = greedy;
        this.withGreedyFlag = ch.agentSupportsGreedyInput();
        if (greedy && withGreedyFlag) {
            this.oid = ch.exportGreedyInput(in);
            this.pipe = Pipe.localToRemote(oid);
        } else {
            this.oid = ch.exportInput(in);
        }
    }

    /** true: the bytes are pushed through a Pipe; false: the agent pulls them. */
    public boolean isGreedyForm() {
        return pipe != null;
    }

    /** The oid on the wire: the pipe's oidRos (greedy form) or the exported InputStream (pull form). */
    public int getOid() {
        return oid;
    }

    /** The pipe of the greedy form (as read by the stand-in agent), or null. */
    public Pipe getPipe() {
        return pipe;
    }

    /** Only its oid matters here: the simulator never reads through this object. */
    @Override
    public int read() {
        throw new UnsupportedOperationException("simulator: read through the channel");
    }

    private void writeObject(ObjectOutputStream oos) throws IOException {
        if (withGreedyFlag) oos.writeBoolean(pipe != null);
        if (pipe != null) oos.writeObject(pipe);
        else oos.writeInt(oid);
    }

    private void readObject(ObjectInputStream ois) throws IOException, ClassNotFoundException {
        withGreedyFlag = readerAdvertisedGreedy;
        greedy = withGreedyFlag && ois.readBoolean();
        autoUnexport = true;
        if (greedy) {
            Object p = ois.readObject();
            if (!(p instanceof Pipe)) throw new java.io.InvalidObjectException("greedy RemoteInputStream without a Pipe: " + p);
            pipe = (Pipe) p;
            oid = pipe.getOid();
        } else {
            oid = ois.readInt();
        }
    }
}
