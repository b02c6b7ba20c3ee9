package nectr.plugin;

import hudson.remoting.Callable;
import hudson.remoting.Channel;
import java.io.IOException;
import org.jenkinsci.remoting.RoleChecker;

/** Returns an exported Greeter: the controller gets a proxy and calls its methods. */
public final class ExportGreeter implements Callable<Greeter, IOException> {
    private static final long serialVersionUID = 1L;

    @Override
    public Greeter call() {
        return Channel.currentOrFail().export(Greeter.class, new Greeter() {
            @Override
            public String greet(String who) {
                return "hello " + who;
            }

            @Override
            public int add(int a, int b) {
                return a + b;
            }

            @Override
            public void fail() throws IOException {
                throw new IOException("refused on purpose");
            }
        });
    }

    @Override
    public void checkRoles(RoleChecker checker) {
    }
}
