package nectr.plugin;

import hudson.remoting.Callable;
import java.io.IOException;
import org.jenkinsci.remoting.RoleChecker;

/** A plugin callable the agent cannot run natively: returns "value-" + 2n. */
public final class Value implements Callable<String, IOException> {
    private static final long serialVersionUID = 1L;
    private final int n;

    public Value(int n) {
        this.n = n;
    }

    @Override
    public String call() {
        return "value-" + (2 * n);
    }

    @Override
    public void checkRoles(RoleChecker checker) {
        // any direction: the helper runs it
    }

    @Override
    public String toString() {
        return "Value(" + n + ")";
    }
}
