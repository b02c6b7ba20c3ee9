package hudson.util;

import java.io.IOException;
import java.io.ObjectOutputStream;

/**
 * `hudson.util.StreamTaskListener` (SUID 1). Its descriptor lists the fields {@code charset}
 * (java.nio.charset.Charset) and {@code out} (java.io.PrintStream), but its writeObject writes
 * two objects instead of them: a RemoteOutputStream (the controller's close-proof copy of the
 * build log) and the charset name.
 */
public class StreamTaskListener extends AbstractTaskListener {
    private static final long serialVersionUID = 1L;
    /** Declared only for the descriptor (never written as field data). */
    @SuppressWarnings("unused") private java.io.PrintStream out;
    @SuppressWarnings("unused") private java.nio.charset.Charset charset;
    private final transient int rosOid;
    private final transient String charsetName;

    public StreamTaskListener(int rosOid, String charsetName) {
        this.rosOid = rosOid;
        this.charsetName = charsetName;
    }

    private void writeObject(ObjectOutputStream oos) throws IOException {
        oos.writeObject(new hudson.remoting.RemoteOutputStream(rosOid));
        oos.writeObject(charsetName);
    }
}
