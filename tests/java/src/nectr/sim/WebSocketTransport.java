package nectr.sim;

import java.io.EOFException;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.ScheduledFuture;
import java.util.concurrent.TimeUnit;

/** RFC 6455 server side: one chunk frame per binary message out; any fragmentation in. */
final class WebSocketTransport implements Transport {
    static final long MAX_MESSAGE = 64L << 20;
    static final int PING_FIRST_MS = 15_000;
    static final int PING_EVERY_MS = 30_000;
    static ScheduledExecutorService pinger;

    private final Socket socket;
    private final InputStream in;
    private final OutputStream out;
    private final String node;
    final Object writeLock = new Object();
    volatile SimChannel channel;
    private volatile boolean closeSent;
    private volatile boolean pongPending;
    private ScheduledFuture<?> pingTask;

    WebSocketTransport(Socket socket, InputStream in, OutputStream out, String node) {
        this.socket = socket;
        this.in = in;
        this.out = out;
        this.node = node;
    }

    @Override
    public String name() {
        return "websocket";
    }

    private void writeFrame(int opcode, byte[] payload, int off, int len) throws IOException {
        byte[] h;
        if (len < 126) {
            h = new byte[] {(byte) (0x80 | opcode), (byte) len};
        } else if (len < 65536) {
            h = new byte[] {(byte) (0x80 | opcode), 126, (byte) (len >>> 8), (byte) len};
        } else {
            h = new byte[10];
            h[0] = (byte) (0x80 | opcode);
            h[1] = 127;
            for (int i = 0; i < 8; i++) h[2 + i] = (byte) ((long) len >>> (56 - 8 * i));
        }
        synchronized (writeLock) {
            out.write(h);
            out.write(payload, off, len);
            out.flush();
        }
    }

    @Override
    public void sendFrame(byte[] frame) throws IOException {
        if (closeSent) throw new IOException("WebSocket closed");
        writeFrame(0x2, frame, 0, frame.length);
    }

    void startReader() {
        if (pinger != null) {
            pingTask = pinger.scheduleAtFixedRate(this::ping, PING_FIRST_MS, PING_EVERY_MS, TimeUnit.MILLISECONDS);
        }
        Thread t = new Thread(this::readLoop, "ws-read-" + node);
        t.setDaemon(true);
        t.start();
    }

    private void ping() {
        if (closeSent || !channel.isOpen()) return;
        if (pongPending) {
            Events.emit("event", "check_failed", "node", node, "what", "no WebSocket pong for the ping sent " + PING_EVERY_MS / 1000 + " s ago");
        }
        pongPending = true;
        try {
            writeFrame(0x9, new byte[0], 0, 0);
        } catch (IOException e) {
            // the reader notices
        }
    }

    private void readFully(byte[] b, int len) throws IOException {
        int off = 0;
        while (off < len) {
            int n = in.read(b, off, len - off);
            if (n < 0) throw new EOFException("WebSocket connection closed by the agent");
            off += n;
        }
    }

    private void protocolError(String what) {
        Events.emit("event", "check_failed", "node", node, "what", "WebSocket protocol error: " + what);
        sendClose(1002, what);
        channel.terminate("WebSocket protocol error: " + what, false);
    }

    private void readLoop() {
        String reason = "WebSocket connection closed by the agent";
        boolean inMessage = false;
        long messageSize = 0;
        byte[] two = new byte[2];
        try {
            while (channel.isOpen()) {
                readFully(two, 2);
                boolean fin = (two[0] & 0x80) != 0;
                int rsv = two[0] & 0x70;
                int opcode = two[0] & 0x0F;
                boolean masked = (two[1] & 0x80) != 0;
                long len = two[1] & 0x7F;
                if (len == 126) {
                    byte[] b = new byte[2];
                    readFully(b, 2);
                    len = ((b[0] & 0xFF) << 8) | (b[1] & 0xFF);
                } else if (len == 127) {
                    byte[] b = new byte[8];
                    readFully(b, 8);
                    len = 0;
                    for (int i = 0; i < 8; i++) len = (len << 8) | (b[i] & 0xFF);
                }
                if (rsv != 0) {
                    protocolError("RSV bits set without a negotiated extension");
                    return;
                }
                if (!masked) {
                    protocolError("client frame is not masked");
                    return;
                }
                if (len < 0 || len > MAX_MESSAGE) {
                    protocolError("frame too large: " + len);
                    return;
                }
                byte[] mask = new byte[4];
                readFully(mask, 4);
                byte[] payload = new byte[(int) len];
                readFully(payload, (int) len);
                unmask(payload, mask);
                if (opcode >= 0x8) {
                    if (!fin || len > 125) {
                        protocolError("fragmented or oversized control frame");
                        return;
                    }
                    if (opcode == 0x8) {
                        int code = len >= 2 ? ((payload[0] & 0xFF) << 8) | (payload[1] & 0xFF) : 1005;
                        String text = len > 2 ? new String(payload, 2, payload.length - 2, StandardCharsets.UTF_8) : "";
                        reason = "WebSocket close from the agent: " + code + (text.isEmpty() ? "" : " " + text);
                        sendClose(code == 1005 ? 1000 : code, "");
                        break;
                    } else if (opcode == 0x9) {
                        writeFrame(0xA, payload, 0, payload.length);
                    } else if (opcode == 0xA) {
                        pongPending = false;
                    } else {
                        protocolError("unknown control opcode " + opcode);
                        return;
                    }
                    continue;
                }
                if (opcode == 0x0) {
                    if (!inMessage) {
                        protocolError("continuation frame without a message");
                        return;
                    }
                } else if (opcode == 0x1 || opcode == 0x2) {
                    if (inMessage) {
                        protocolError("new data frame inside a fragmented message");
                        return;
                    }
                    inMessage = true;
                    messageSize = 0;
                    if (opcode == 0x1) {
                        Events.emit("event", "note", "node", node, "what", "text WebSocket frame ignored (as Jenkins does)");
                    }
                } else {
                    protocolError("unknown data opcode " + opcode);
                    return;
                }
                messageSize += len;
                if (messageSize > 65536 && messageSize - len <= 65536) {
                    Events.emit("event", "note", "node", node, "what", "binary message larger than 64 KiB (" + messageSize + " bytes); Jetty may reject it");
                }
                if (opcode != 0x1 && !(opcode == 0 && textMessage)) {
                    channel.feed(payload, 0, payload.length);
                }
                if (opcode == 0x1) textMessage = true;
                if (fin) {
                    inMessage = false;
                    textMessage = false;
                }
            }
        } catch (IOException e) {
            reason = e instanceof EOFException ? e.getMessage() : "WebSocket read failed: " + e;
        }
        channel.terminate(reason, false);
    }

    private boolean textMessage;

    private void sendClose(int code, String text) {
        if (closeSent) return;
        byte[] t = text.getBytes(StandardCharsets.UTF_8);
        int n = Math.min(t.length, 120);
        byte[] p = new byte[2 + n];
        p[0] = (byte) (code >>> 8);
        p[1] = (byte) code;
        System.arraycopy(t, 0, p, 2, n);
        try {
            writeFrame(0x8, p, 0, p.length);
        } catch (IOException e) {
            // ignore
        }
        closeSent = true;
    }

    @Override
    public void close() {
        if (pingTask != null) pingTask.cancel(false);
        sendClose(1000, "");
        // give the agent a moment to answer the close frame, then drop the socket
        Thread t = new Thread(() -> {
            Controller.sleep(1000);
            abort();
        }, "ws-close-" + node);
        t.setDaemon(true);
        t.start();
    }

    @Override
    public void abort() {
        if (pingTask != null) pingTask.cancel(false);
        closeSent = true;
        try {
            socket.close();
        } catch (IOException e) {
            // ignore
        }
    }

    private static final java.lang.invoke.VarHandle LONGS =
            java.lang.invoke.MethodHandles.byteArrayViewVarHandle(long[].class, java.nio.ByteOrder.BIG_ENDIAN);

    /** XORs {@code p} with the 4-byte {@code mask}, eight bytes at a time (as Jetty does word-wise). */
    static void unmask(byte[] p, byte[] mask) {
        long m4 = ((mask[0] & 0xFFL) << 24) | ((mask[1] & 0xFFL) << 16) | ((mask[2] & 0xFFL) << 8) | (mask[3] & 0xFFL);
        long m = (m4 << 32) | m4;
        int i = 0;
        for (; i + 8 <= p.length; i += 8) LONGS.set(p, i, (long) LONGS.get(p, i) ^ m);
        for (; i < p.length; i++) p[i] ^= mask[i & 3];
    }
}
