package nectr.sim;

import java.io.ByteArrayInputStream;
import java.io.DataInputStream;
import java.io.EOFException;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.io.SequenceInputStream;
import java.net.ServerSocket;
import java.net.Socket;
import java.net.SocketTimeoutException;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.Map;
import javax.net.ssl.SSLSocket;

/** The TCP agent port: Ping, GET probe and JNLP4-connect (§1.3, §2). */
final class Jnlp4Server {
    static final byte[] ACK = {0, 3, 'A', 'C', 'K'};
    static final byte[] BYE = {0, 3, 'B', 'Y', 'E'};
    private final Controller controller;
    private final Identity identity;
    private final ServerSocket server;
    volatile boolean wrongIdentity;

    /** {@code port} 0 = any free port (--jnlp-port fixes it, e.g. across a simulated restart). */
    Jnlp4Server(Controller controller, Identity identity, int port) throws IOException {
        this.controller = controller;
        this.identity = identity;
        this.server = Acceptor.listen(port, null);
    }

    int port() {
        return server.getLocalPort();
    }

    void start() {
        Acceptor.start(server, "jnlp", this::handle);
    }

    void stop() {
        Acceptor.stop(server);
    }

    static void closeQuietly(Socket s) {
        try {
            s.close();
        } catch (IOException e) {
            // ignore
        }
    }

    private static void readFully(InputStream in, byte[] b) throws IOException {
        int off = 0;
        while (off < b.length) {
            int n = in.read(b, off, b.length - off);
            if (n < 0) throw new EOFException("connection closed by the agent");
            off += n;
        }
    }

    /** u16 length + UTF-8 message (the header layer framing, also used for OK/ERROR/BYE). */
    static String readMessage(InputStream in) throws IOException {
        byte[] l = new byte[2];
        readFully(in, l);
        byte[] b = new byte[((l[0] & 0xFF) << 8) | (l[1] & 0xFF)];
        readFully(in, b);
        return new String(b, StandardCharsets.UTF_8);
    }

    static void writeMessage(OutputStream out, String s) throws IOException {
        byte[] b = s.getBytes(StandardCharsets.UTF_8);
        if (b.length > 65535) throw new IOException("message too long");
        out.write(new byte[] {(byte) (b.length >>> 8), (byte) b.length});
        out.write(b);
        out.flush();
    }

    private void handle(Socket s) {
        boolean handedOver = false;
        try {
            s.setSoTimeout(30_000);
            s.setTcpNoDelay(true);
            InputStream in = s.getInputStream();
            OutputStream out = s.getOutputStream();
            byte[] first = new byte[10];
            readFully(in, first);
            if (new String(first, 0, 4, StandardCharsets.ISO_8859_1).equals("GET ")) {
                probe(first, in, out);
                return;
            }
            DataInputStream din = new DataInputStream(new SequenceInputStream(new ByteArrayInputStream(first), in));
            String header = din.readUTF();
            if (!header.startsWith("Protocol:")) {
                Events.emit("event", "note", "what", "TCP port: unexpected preamble " + header);
                return;
            }
            String protocol = header.substring("Protocol:".length());
            if (protocol.equals("Ping")) {
                out.write("Ping\n".getBytes(StandardCharsets.US_ASCII));
                out.flush();
                return;
            }
            if (!protocol.equals("JNLP4-connect")) {
                Events.emit("event", "refused", "transport", "jnlp4", "reason", "unknown protocol " + protocol);
                out.write(("Unknown protocol:" + System.lineSeparator()).getBytes(StandardCharsets.UTF_8));
                out.flush();
                return;
            }
            handedOver = jnlp4(s, din, out);
        } catch (IOException e) {
            Events.emit("event", "note", "transport", "jnlp4", "what", "TCP connection ended: " + e);
        } finally {
            if (!handedOver) closeQuietly(s);
        }
    }

    private void probe(byte[] first, InputStream in, OutputStream out) throws IOException {
        StringBuilder line = new StringBuilder(new String(first, StandardCharsets.ISO_8859_1));
        for (int i = 0; i < 4096; i++) {
            int c = in.read();
            if (c < 0 || c == '\n') break;
            line.append((char) c);
        }
        String[] parts = line.toString().trim().split(" ");
        if (parts.length >= 2 && parts[1].equals("/")) {
            String nl = "\r\n";
            String body = "HTTP/1.0 200 OK" + nl + nl + "Jenkins-Agent-Protocols: JNLP4-connect, Ping" + nl
                    + "Jenkins-Version: 2.479.3" + nl + "Jenkins-Session: 00000000" + nl + "Client: 127.0.0.1" + nl
                    + "Server: 127.0.0.1" + nl + "Remoting-Minimum-Version: " + Controller.MIN_VERSION + nl;
            out.write(body.getBytes(StandardCharsets.US_ASCII));
        } else {
            out.write("HTTP/1.0 404 Not Found\r\n\r\nNot Found\r\n".getBytes(StandardCharsets.US_ASCII));
        }
        out.flush();
    }

    /** §2.2-§2.5. Returns true when the socket now belongs to a channel. */
    private boolean jnlp4(Socket s, InputStream in, OutputStream out) throws IOException {
        out.write(ACK);
        out.flush();
        byte[] ack = new byte[5];
        s.setSoTimeout(10_000);
        try {
            readFully(in, ack);
        } catch (SocketTimeoutException e) {
            Events.emit("event", "refused", "transport", "jnlp4", "reason", "Timeout waiting for ACK");
            return false;
        }
        if (!Arrays.equals(ack, ACK)) {
            Events.emit("event", "refused", "transport", "jnlp4", "reason", "Incorrect acknowledgement received");
            return false;
        }
        SSLSocket tls = (SSLSocket) identity.sslContext.getSocketFactory().createSocket(s, "127.0.0.1", s.getPort(), true);
        tls.setUseClientMode(false);
        tls.setWantClientAuth(true);
        tls.setSoTimeout(30_000);
        try {
            tls.startHandshake();
        } catch (IOException e) {
            Events.emit("event", "tls_failed", "transport", "jnlp4", "reason", String.valueOf(e));
            return false;
        }
        Events.emit("event", "tls", "transport", "jnlp4", "protocol", tls.getSession().getProtocol(), "cipher",
                tls.getSession().getCipherSuite());
        InputStream tin = tls.getInputStream();
        OutputStream tout = tls.getOutputStream();
        String cookie = Controller.newCookie();
        writeMessage(tout, "{\"JnlpAgentProtocol.cookie\":\"" + cookie + "\"}");
        String raw = readMessage(tin);
        Map<String, String> headers;
        try {
            headers = parseHeaders(raw);
        } catch (IOException e) {
            Events.emit("event", "refused", "transport", "jnlp4", "reason", "Malformed connection header: " + raw);
            refuse(tls, tin, tout, "ERROR: Malformed connection header");
            return false;
        }
        String name = headers.get("Node-Name");
        String secret = headers.get("Secret-Key");
        String agentCookie = headers.get("JnlpAgentProtocol.cookie");
        if (wrongIdentity) {
            // The agent must have rejected our certificate (its key differs from X-Instance-Identity).
            Events.emit("event", "secret_received", "node", name, "has_secret", secret != null);
            Events.emit("event", "check_failed", "node", name, "what", "agent completed TLS and sent its headers although the server key differs from X-Instance-Identity");
            Events.emit("event", "refused", "node", name, "transport", "jnlp4", "reason", "wrong-identity scenario: an impostor never accepts");
            refuse(tls, tin, tout, "ERROR: Authorization failure");
            return false;
        }
        if (name == null || secret == null) {
            Events.emit("event", "refused", "node", name, "transport", "jnlp4", "reason", "missing Node-Name or Secret-Key");
            refuse(tls, tin, tout, "ERROR: Malformed connection header");
            return false;
        }
        Controller.Refusal r = controller.admit(name, secret, agentCookie, StandardCharsets.UTF_8);
        if (r != null) {
            Events.emit("event", "refused", "node", name, "transport", "jnlp4", "reason", r.message);
            refuse(tls, tin, tout, "ERROR: " + r.message);
            return false;
        }
        writeMessage(tout, "OK");
        String verdict = readMessage(tin);
        if (!verdict.equals("OK")) {
            Events.emit("event", "refused", "node", name, "transport", "jnlp4", "reason", "agent answered " + verdict);
            if (verdict.startsWith("ERROR") || verdict.startsWith("FATAL")) {
                tout.write(BYE);
                tout.flush();
            }
            return false;
        }
        writeMessage(tout, SimChannel.capabilityBase64(SimChannel.CONTROLLER_CAPABILITY));
        String cap = readMessage(tin);
        long agentCap;
        try {
            agentCap = SimChannel.parseCapability(cap.getBytes(StandardCharsets.US_ASCII)).getMask();
        } catch (Exception e) {
            Events.emit("event", "refused", "node", name, "transport", "jnlp4", "reason", "bad capability frame: " + e);
            return false;
        }
        tls.setSoTimeout(0);
        TlsTransport t = new TlsTransport(tls, tin, tout, name);
        SimChannel ch = new SimChannel(name, t, agentCap, cookie);
        t.channel = ch;
        controller.start(controller.nodes.get(name), ch, agentCookie);
        t.startReader();
        return true;
    }

    /** Sends ERROR and waits up to 10 s for the agent's BYE (skipping its OK). */
    private static void refuse(SSLSocket tls, InputStream tin, OutputStream tout, String message) {
        try {
            writeMessage(tout, message);
            tls.setSoTimeout(10_000);
            long deadline = System.currentTimeMillis() + 10_000;
            for (int i = 0; i < 10 && System.currentTimeMillis() < deadline; i++) {
                String m = readMessage(tin);
                if (m.equals("BYE")) {
                    Events.emit("event", "bye_received", "transport", "jnlp4");
                    break;
                }
            }
        } catch (IOException e) {
            // timeout or close
        }
    }

    /** The JSON-like header map of §2.4: a flat object of strings or null. */
    static Map<String, String> parseHeaders(String s) throws IOException {
        Map<String, String> m = new LinkedHashMap<>();
        int[] p = {0};
        ws(s, p);
        expectChar(s, p, '{');
        ws(s, p);
        if (peek(s, p) == '}') {
            p[0]++;
            return m;
        }
        for (int i = 0; i < 1000; i++) {
            ws(s, p);
            String k = str(s, p);
            ws(s, p);
            expectChar(s, p, ':');
            ws(s, p);
            String v;
            if (s.startsWith("null", p[0])) {
                v = null;
                p[0] += 4;
            } else {
                v = str(s, p);
            }
            m.put(k, v);
            ws(s, p);
            char c = peek(s, p);
            p[0]++;
            if (c == '}') {
                ws(s, p);
                if (p[0] != s.length()) throw new IOException("trailing data");
                return m;
            }
            if (c != ',') throw new IOException("expected , or }");
        }
        throw new IOException("too many headers");
    }

    private static char peek(String s, int[] p) throws IOException {
        if (p[0] >= s.length()) throw new IOException("unexpected end");
        return s.charAt(p[0]);
    }

    private static void ws(String s, int[] p) {
        while (p[0] < s.length() && Character.isWhitespace(s.charAt(p[0]))) p[0]++;
    }

    private static void expectChar(String s, int[] p, char c) throws IOException {
        if (peek(s, p) != c) throw new IOException("expected " + c);
        p[0]++;
    }

    private static String str(String s, int[] p) throws IOException {
        expectChar(s, p, '"');
        StringBuilder sb = new StringBuilder();
        while (true) {
            char c = peek(s, p);
            p[0]++;
            if (c == '"') return sb.toString();
            if (c != '\\') {
                sb.append(c);
                continue;
            }
            char e = peek(s, p);
            p[0]++;
            switch (e) {
                case '"': sb.append('"'); break;
                case '\\': sb.append('\\'); break;
                case '/': sb.append('/'); break;
                case 'b': sb.append('\b'); break;
                case 'f': sb.append('\f'); break;
                case 'n': sb.append('\n'); break;
                case 'r': sb.append('\r'); break;
                case 't': sb.append('\t'); break;
                case 'u':
                    if (p[0] + 4 > s.length()) throw new IOException("bad \\u escape");
                    sb.append((char) Integer.parseInt(s.substring(p[0], p[0] + 4), 16));
                    p[0] += 4;
                    break;
                default: throw new IOException("bad escape \\" + e);
            }
        }
    }

    /** Chunk frames over the TLS socket. */
    static final class TlsTransport implements Transport {
        private final SSLSocket socket;
        private final InputStream in;
        private final OutputStream out;
        private final String node;
        volatile SimChannel channel;

        TlsTransport(SSLSocket socket, InputStream in, OutputStream out, String node) {
            this.socket = socket;
            this.in = in;
            this.out = out;
            this.node = node;
        }

        @Override
        public String name() {
            return "jnlp4";
        }

        @Override
        public void sendFrame(byte[] frame) throws IOException {
            synchronized (this) {
                out.write(frame);
                out.flush();
            }
        }

        void startReader() {
            Thread t = new Thread(() -> {
                String reason = "connection closed by the agent";
                byte[] buf = new byte[16384];
                try {
                    while (channel.isOpen()) {
                        int n = in.read(buf);
                        if (n < 0) break;
                        channel.feed(buf, 0, n);
                    }
                } catch (IOException e) {
                    reason = "read failed: " + e;
                }
                channel.terminate(reason, false);
            }, "jnlp4-read-" + node);
            t.setDaemon(true);
            t.start();
        }

        @Override
        public void close() {
            try {
                socket.shutdownOutput();
            } catch (IOException | UnsupportedOperationException e) {
                // ignore
            }
            Thread t = new Thread(() -> {
                Controller.sleep(1000);
                abort();
            }, "jnlp4-close-" + node);
            t.setDaemon(true);
            t.start();
        }

        @Override
        public void abort() {
            try {
                socket.close();
            } catch (IOException e) {
                // ignore
            }
        }
    }
}
