package nectr.sim;

import java.io.BufferedInputStream;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.ServerSocket;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.util.Base64;
import java.util.LinkedHashMap;
import java.util.Locale;
import java.util.Map;

/** Raw HTTP/1.1 on 127.0.0.1: discovery (§1.1), /wsagents/ WebSocket upgrade (§3), /login, and with --rest the REST API ({@link Rest}). */
final class HttpServer {
    static final String WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
    private final Controller controller;
    private final ServerSocket server;
    private final int jnlpPort;
    private final String identityBase64;

    HttpServer(Controller controller, int port, int jnlpPort, String identityBase64, javax.net.ssl.SSLContext tls) throws IOException {
        this.controller = controller;
        this.jnlpPort = jnlpPort;
        this.identityBase64 = identityBase64;
        // With --https the whole HTTP side (discovery and /wsagents/) is TLS, as behind nginx.
        this.server = Acceptor.listen(port, tls);
    }

    int port() {
        return server.getLocalPort();
    }

    void start() {
        Acceptor.start(server, "http", this::handle);
    }

    void stop() {
        Acceptor.stop(server);
    }

    static String readLine(InputStream in) throws IOException {
        ByteArrayOutputStream b = new ByteArrayOutputStream();
        for (int i = 0; i < 16384; i++) {
            int c = in.read();
            if (c < 0) return b.size() == 0 ? null : b.toString(StandardCharsets.ISO_8859_1);
            if (c == '\n') {
                String s = b.toString(StandardCharsets.ISO_8859_1);
                return s.endsWith("\r") ? s.substring(0, s.length() - 1) : s;
            }
            b.write(c);
        }
        throw new IOException("HTTP line too long");
    }

    private void handle(Socket s) {
        boolean upgraded = false;
        try {
            s.setSoTimeout(60_000);
            s.setTcpNoDelay(true);
            InputStream in = new BufferedInputStream(s.getInputStream());
            OutputStream out = s.getOutputStream();
            // keep-alive: serve requests until an upgrade or close (bounded)
            for (int req = 0; req < 100 && !upgraded; req++) {
                String line = readLine(in);
                if (line == null) break;
                if (line.isEmpty()) continue;
                String[] parts = line.split(" ");
                if (parts.length < 3) {
                    respond(out, 400, "Bad Request", new LinkedHashMap<>(), "bad request line", true);
                    break;
                }
                Map<String, String> headers = new LinkedHashMap<>();
                for (int i = 0; i < 200; i++) {
                    String h = readLine(in);
                    if (h == null || h.isEmpty()) break;
                    int c = h.indexOf(':');
                    if (c > 0) headers.putIfAbsent(h.substring(0, c).trim().toLowerCase(Locale.ROOT), h.substring(c + 1).trim());
                }
                byte[] body = new byte[0];
                if (headers.containsKey("content-length")) {
                    long n = Long.parseLong(headers.get("content-length"));
                    ByteArrayOutputStream kept = new ByteArrayOutputStream();
                    for (long i = 0; i < n && i < (1 << 20); i++) {
                        int c = in.read();
                        if (c < 0) break;
                        kept.write(c);
                    }
                    body = kept.toByteArray();
                }
                String method = parts[0];
                String path = parts[1];
                int q = path.indexOf('?');
                if (q >= 0) path = path.substring(0, q);
                boolean close = "close".equalsIgnoreCase(headers.get("connection")) || parts[2].equals("HTTP/1.0");
                Events.emit("event", "http", "method", method, "path", path);
                if (parts[2].equals("HTTP/1.1") && !headers.containsKey("host")) {
                    // Jetty answers 400 to an HTTP/1.1 request without Host (RFC 7230 §5.4).
                    Events.emit("event", "check_failed", "what", "HTTP/1.1 request without a Host header: " + line);
                    respond(out, 400, "Bad Request", new LinkedHashMap<>(), "No Host", true);
                    break;
                }
                if (path.equals("/wsagents/") || path.equals("/wsagents")) {
                    upgraded = wsagents(s, in, out, headers);
                    if (!upgraded) break;
                } else if (path.equals("/tcpSlaveAgentListener/") || path.equals("/tcpSlaveAgentListener")) {
                    Map<String, String> h = new LinkedHashMap<>();
                    h.put("X-Jenkins-JNLP-Port", String.valueOf(jnlpPort));
                    h.put("X-Hudson-JNLP-Port", String.valueOf(jnlpPort));
                    h.put("X-Jenkins-Agent-Protocols", "JNLP4-connect");
                    h.put("X-Instance-Identity", identityBase64);
                    h.put("X-Remoting-Minimum-Version", Controller.MIN_VERSION);
                    h.put("Content-Type", "text/plain;charset=utf-8");
                    respond(out, 200, "OK", h, method.equals("HEAD") ? null : "Jenkins\n", close);
                } else if (HelperScenarios.serve(method, path, out, close)) {
                    // the JVM helper's agent.jar
                } else if (controller.rest != null && controller.rest.serve(method, parts[1], headers, body, out, close)) {
                    // REST mode: the Jenkins API of the fleet and the demo (Rest)
                } else if (path.equals("/login") || path.equals("/")) {
                    Map<String, String> h = new LinkedHashMap<>();
                    h.put("X-Jenkins", "2.479.3");
                    h.put("Content-Type", "text/html;charset=utf-8");
                    respond(out, 200, "OK", h, "<html><body>nectr controller simulator</body></html>\n", close);
                } else {
                    respond(out, 404, "Not Found", new LinkedHashMap<>(), "Not Found\n", close);
                }
                if (close) break;
            }
        } catch (IOException e) {
            // connection dropped
        } finally {
            if (!upgraded) {
                try {
                    s.close();
                } catch (IOException e) {
                    // ignore
                }
            }
        }
    }

    static void respond(OutputStream out, int status, String reason, Map<String, String> headers, String body,
            boolean close) throws IOException {
        byte[] b = body == null ? new byte[0] : body.getBytes(StandardCharsets.UTF_8);
        StringBuilder sb = new StringBuilder();
        sb.append("HTTP/1.1 ").append(status).append(' ').append(reason).append("\r\n");
        for (Map.Entry<String, String> e : headers.entrySet()) sb.append(e.getKey()).append(": ").append(e.getValue()).append("\r\n");
        if (!headers.containsKey("Content-Type")) sb.append("Content-Type: text/plain;charset=utf-8\r\n");
        sb.append("Content-Length: ").append(b.length).append("\r\n");
        if (close) sb.append("Connection: close\r\n");
        sb.append("\r\n");
        out.write(sb.toString().getBytes(StandardCharsets.ISO_8859_1));
        if (body != null) out.write(b);
        out.flush();
    }

    /** §3: checks, then the 101 answer and the channel. Returns true when upgraded. */
    private boolean wsagents(Socket s, InputStream in, OutputStream out, Map<String, String> h) throws IOException {
        String name = h.get("node-name");
        String secret = h.get("secret-key");
        String capability = h.get(("X-Remoting-Capability").toLowerCase(Locale.ROOT));
        String cookie = h.get("connection-cookie");
        if (name == null || secret == null || capability == null) {
            Events.emit("event", "refused", "node", name, "transport", "websocket", "reason",
                    "missing " + (name == null ? "Node-Name " : "") + (secret == null ? "Secret-Key " : "")
                            + (capability == null ? "X-Remoting-Capability" : ""));
            respond(out, 400, "Bad Request", new LinkedHashMap<>(), "This endpoint is only for use from agent.jar in WebSocket mode", true);
            return false;
        }
        long agentCap;
        try {
            agentCap = SimChannel.parseCapability(capability.getBytes(StandardCharsets.US_ASCII)).getMask();
        } catch (Exception e) {
            Events.emit("event", "refused", "node", name, "transport", "websocket", "reason", "bad X-Remoting-Capability: " + e);
            respond(out, 500, "Server Error", new LinkedHashMap<>(), "bad X-Remoting-Capability: " + e, true);
            return false;
        }
        if (cookie != null && !cookie.matches("([0-9a-fA-F]{2})+")) {
            Events.emit("event", "refused", "node", name, "transport", "websocket", "reason", "Connection-Cookie is not hex: " + cookie);
            respond(out, 500, "Server Error", new LinkedHashMap<>(), "invalid Connection-Cookie", true);
            return false;
        }
        Controller.Node node = controller.nodes.get(name);
        if (node == null) {
            Events.emit("event", "refused", "node", name, "transport", "websocket", "reason", "no such agent");
            respond(out, 400, "Bad Request", new LinkedHashMap<>(), "no such agent", true);
            return false;
        }
        Controller.Refusal r = controller.admit(name, secret, cookie, StandardCharsets.US_ASCII);
        if (r != null) {
            Events.emit("event", "refused", "node", name, "transport", "websocket", "reason", r.message);
            respond(out, r.status, r.status == 403 ? "Forbidden" : "Bad Request", new LinkedHashMap<>(),
                    r.status == 403 ? "" : r.message, true);
            return false;
        }
        String upgrade = h.get("upgrade");
        String key = h.get("sec-websocket-key");
        String connection = h.get("connection");
        boolean connectionUpgrade = false;
        if (connection != null) {
            for (String tok : connection.split(",")) connectionUpgrade |= tok.trim().equalsIgnoreCase("upgrade");
        }
        boolean keyOk = false;
        try {
            keyOk = key != null && Base64.getDecoder().decode(key.trim()).length == 16;
        } catch (IllegalArgumentException e) {
            keyOk = false;
        }
        if (upgrade == null || !upgrade.equalsIgnoreCase("websocket") || !connectionUpgrade || !keyOk
                || !"13".equals(h.get("sec-websocket-version"))) {
            Events.emit("event", "refused", "node", name, "transport", "websocket", "reason", "not a WebSocket upgrade request (Upgrade=" + upgrade
                    + ", Connection=" + connection + ", Sec-WebSocket-Key valid=" + keyOk + ", Sec-WebSocket-Version="
                    + h.get("sec-websocket-version") + ")");
            respond(out, 400, "Bad Request", new LinkedHashMap<>(), "only WS connections accepted here", true);
            return false;
        }
        String myCookie = cookie != null ? cookie : Controller.newCookie();
        String accept;
        try {
            accept = Base64.getEncoder().encodeToString(MessageDigest.getInstance("SHA-1")
                    .digest((key + WS_GUID).getBytes(StandardCharsets.US_ASCII)));
        } catch (java.security.NoSuchAlgorithmException e) {
            throw new IOException(e);
        }
        WebSocketTransport ws = new WebSocketTransport(s, in, out, name);
        SimChannel ch = new SimChannel(name, ws, agentCap, myCookie);
        ws.channel = ch;
        StringBuilder sb = new StringBuilder();
        sb.append("HTTP/1.1 101 Switching Protocols\r\n");
        sb.append("Upgrade: websocket\r\nConnection: Upgrade\r\n");
        sb.append("Sec-WebSocket-Accept: ").append(accept).append("\r\n");
        sb.append("X-Remoting-Capability: ").append(SimChannel.capabilityBase64(SimChannel.CONTROLLER_CAPABILITY)).append("\r\n");
        sb.append("X-Remoting-Minimum-Version: ").append(Controller.MIN_VERSION).append("\r\n");
        sb.append("Connection-Cookie: ").append(myCookie).append("\r\n\r\n");
        synchronized (ws.writeLock) {
            out.write(sb.toString().getBytes(StandardCharsets.ISO_8859_1));
            out.flush();
        }
        s.setSoTimeout(0);
        controller.start(node, ch, cookie);
        ws.startReader();
        return true;
    }
}
