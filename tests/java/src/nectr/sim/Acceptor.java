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

    /**
     * A listening socket on 127.0.0.1:{@code port} (0 = any free port), TLS when {@code tls} is
     * given. SO_REUSEADDR is set before binding, so a fixed port can be bound again right after
     * a previous simulator on it was killed (the restart scenario).
     */
    static ServerSocket listen(int port, javax.net.ssl.SSLContext tls) throws IOException {
        ServerSocket s = tls == null ? new ServerSocket() : tls.getServerSocketFactory().createServerSocket();
        s.setReuseAddress(true);
        s.bind(new java.net.InetSocketAddress(java.net.InetAddress.getByName("127.0.0.1"), port), 50);
        return s;
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
