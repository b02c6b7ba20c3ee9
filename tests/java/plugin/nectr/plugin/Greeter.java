package nectr.plugin;

import java.io.IOException;

/** The interface of an object the helper exports; the controller calls it over RPC. */
public interface Greeter {
    String greet(String who);

    int add(int a, int b);

    void fail() throws IOException;
}
