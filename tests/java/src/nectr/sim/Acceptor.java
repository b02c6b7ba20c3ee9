package nectr.sim;

import java.io.IOException;
import java.net.ServerSocket;
import java.net.Socket;
import java.util.function.Consumer;

/** The accept loop shared by the simulator's listeners: one daemon thread per connection. */
final class Acceptor {
    private Acceptor() {
    }

    /** Accepts on {@code server} until it is closed, handing each socket to {@code handler}. */
    static void start(ServerSocket server, String name, Consumer<Socket> handler) {
        Thread t = new Thread(() -> {
            while (!server.isClosed()) {
                try {
                    Socket s = server.accept();
                    Thread h = new Thread(() -> handler.accept(s), name + "-" + s.getPort());
                    h.setDaemon(true);
                    h.start();
                } catch (IOException e) {
                    if (!server.isClosed()) Events.emit("event", "note", "what", name + " accept: " + e);
                }
            }
        }, name + "-accept");
        t.setDaemon(true);
        t.start();
    }

    /** Closes {@code server}, ignoring errors. */
    static void stop(ServerSocket server) {
        try {
            server.close();
        } catch (IOException e) {
            // already closed
        }
    }
}
