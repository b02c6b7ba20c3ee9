package nectr.plugin;

import hudson.remoting.Callable;
import java.io.IOException;
import org.jenkinsci.remoting.RoleChecker;

/** Says so on standard error, then sleeps: for killing the helper in the middle of a call. */
public final class Sleep implements Callable<String, IOException> {
    private static final long serialVersionUID = 1L;
    private final int seconds;

    public Sleep(int seconds) {
        this.seconds = seconds;
    }

    @Override
    public String call() throws IOException {
        System.err.println("nectr-plugin: sleeping " + seconds + "s in pid " + ProcessHandle.current().pid());
        try {
            Thread.sleep(seconds * 1000L);
        } catch (InterruptedException e) {
            throw new IOException("interrupted", e);
        }
        return "woke";
    }

    @Override
    public void checkRoles(RoleChecker checker) {
    }
}
