package nectr.sim;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.nio.charset.StandardCharsets;

/**
 * A minimal HTTP CONNECT proxy on 127.0.0.1 (--proxy), so tests can check that the agent
 * honours https_proxy / http_proxy. It tunnels only to 127.0.0.1 and reports each tunnel as
 * {"event":"proxied","target":"host:port"}.
 */
final class ConnectProxy {
    private final ServerSocket server;

    ConnectProxy() throws IOException {
        server = new ServerSocket(0, 50, InetAddress.getByName("127.0.0.1"));
    }

    int port() {
        return server.getLocalPort();
    }

    void start() {
        Acceptor.start(server, "proxy", this::handle);
    }

    void stop() {
        Acceptor.stop(server);
    }

    private static String readHead(InputStream in) throws IOException {
        ByteArrayOutputStream b = new ByteArrayOutputStream();
        int c;
        while ((c = in.read()) >= 0) {
            b.write(c);
            byte[] a = b.toByteArray();
            int n = a.length;
            if (n >= 4 && a[n - 4] == '\r' && a[n - 3] == '\n' && a[n - 2] == '\r' && a[n - 1] == '\n') break;
            if (n > 16384) throw new IOException("proxy request head too long");
        }
        return b.toString(StandardCharsets.ISO_8859_1);
    }

    private void handle(Socket client) {
        try (client) {
            InputStream in = client.getInputStream();
            OutputStream out = client.getOutputStream();
            String first = readHead(in).split("\r\n", 2)[0];
            String[] parts = first.split(" ");
            if (parts.length < 2 || !parts[0].equals("CONNECT")) {
                out.write("HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n".getBytes(StandardCharsets.ISO_8859_1));
                return;
            }
            String target = parts[1];
            int colon = target.lastIndexOf(':');
            String host = target.substring(0, colon);
            int port = Integer.parseInt(target.substring(colon + 1));
            if (!host.equals("127.0.0.1") && !host.equals("localhost")) {
                out.write("HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n".getBytes(StandardCharsets.ISO_8859_1));
                return;
            }
            try (Socket upstream = new Socket(InetAddress.getByName("127.0.0.1"), port)) {
                Events.emit("event", "proxied", "target", target);
                out.write("HTTP/1.1 200 Connection established\r\n\r\n".getBytes(StandardCharsets.ISO_8859_1));
                out.flush();
                Thread up = new Thread(() -> pump(in, upstream), "proxy-up");
                up.setDaemon(true);
                up.start();
                pump(upstream.getInputStream(), client);
                up.join(1000);
            }
        } catch (Exception e) {
            // the tunnel ended
        }
    }

    /** Copies until EOF, then half-closes the other side. */
    private static void pump(InputStream from, Socket to) {
        byte[] buf = new byte[16384];
        try {
            OutputStream out = to.getOutputStream();
            int n;
            while ((n = from.read(buf)) >= 0) {
                out.write(buf, 0, n);
                out.flush();
            }
            to.shutdownOutput();
        } catch (IOException e) {
            // closed
        }
    }
}
