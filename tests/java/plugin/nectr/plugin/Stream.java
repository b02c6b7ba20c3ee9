package nectr.plugin;

import hudson.remoting.Callable;
import java.io.IOException;
import java.io.OutputStream;
import org.jenkinsci.remoting.RoleChecker;

/**
 * Writes {@code mib} MiB (byte i = i % 251) into the controller's stream, closes it, returns the
 * count. The stream is declared {@code Object} so that the simulator, which has only a wire twin
 * of {@code RemoteOutputStream}, can build an instance; on the agent it is the real one.
 */
public final class Stream implements Callable<Long, IOException> {
    private static final long serialVersionUID = 1L;
    private final Object sink;
    private final int mib;

    public Stream(Object sink, int mib) {
        this.sink = sink;
        this.mib = mib;
    }

    @Override
    public Long call() throws IOException {
        OutputStream out = (OutputStream) sink;
        byte[] buf = new byte[65536];
        long sent = 0;
        long total = (long) mib << 20;
        while (sent < total) {
            for (int k = 0; k < buf.length; k++) buf[k] = (byte) ((sent + k) % 251);
            out.write(buf);
            sent += buf.length;
        }
        out.close();
        return sent;
    }

    @Override
    public void checkRoles(RoleChecker checker) {
    }
}
