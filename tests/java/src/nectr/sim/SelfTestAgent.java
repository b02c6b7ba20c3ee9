package nectr.sim;

import hudson.model.Slave;
import hudson.node_monitors.DiskSpaceMonitorDescriptor;
import hudson.node_monitors.ResponseTimeMonitor;
import hudson.node_monitors.SwapSpaceMonitor;
import hudson.remoting.Channel;
import hudson.remoting.Response;
import hudson.remoting.UserRequest;
import java.io.BufferedInputStream;
import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.DataOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.ObjectInputStream;
import java.io.ObjectOutputStream;
import java.io.OutputStream;
import java.io.Serializable;
import java.lang.reflect.Field;
import java.net.Socket;
import java.net.URI;
import java.nio.charset.StandardCharsets;
import java.security.SecureRandom;
import java.security.cert.X509Certificate;
import java.util.ArrayList;
import java.util.Base64;
import javax.net.ssl.SSLContext;
import javax.net.ssl.SSLSocket;
import javax.net.ssl.TrustManager;
import javax.net.ssl.X509TrustManager;

/**
 * A tiny Java stand-in for nectr-agent, used only to self-test the simulator: it speaks
 * WebSocket or JNLP4 and answers the bring-up and monitor callables, plus the stream callables
 * of the streams / bigwrite / untar scenarios: FilePath$WritePipe (chunks applied and acked
 * when it advertised 0x4), FilePath$CopyTo (chunks + EOF into the simulator's stream),
 * Channel$IOSyncer, and FilePath$UntarRemote, whose RemoteInputStream it consumes either as a
 * greedy Pipe (Pipe$ConnectCommand, pushed chunks acked) or by ProxyInputStream$Chunk pulls and
 * ProxyInputStream$EOF. It does not extract anything: it counts the bytes and, if the
 * environment variable NECTR_SELFTEST_UNTAR_BYTES is set, answers with an IOException when the
 * count differs.
 *
 * <pre>java -cp OUT nectr.sim.SelfTestAgent URL NAME SECRET ws|jnlp4 [capabilityHex] [seconds] [reconnects] [fault]</pre>
 *
 * Faults: bad-version, no-annotations, dead-writer (NotifyDeadWriter on the first chunk of each
 * stream it exported, later chunks dropped), no-acks (never acks), no-connect (answers an
 * UntarRemote with an exception without sending Pipe$ConnectCommand).
 */
public final class SelfTestAgent {
    private final String url;
    private final String name;
    private final String secret;
    private final boolean ws;
    private final long capability;
    private String cookie;
    private InputStream in;
    private OutputStream out;
    private final Object writeLock = new Object();
    private final SecureRandom random = new SecureRandom();
    private int controllerLoaderOid = -1;
    /** Fault injection for negative self-tests: "", "bad-version", "no-annotations", "dead-writer", "no-acks", "no-connect". */
    private String fault = "";
    /** OutputStreams this agent exported (WritePipe results, pipe sinks), by oid. */
    private final java.util.Map<Integer, OutputStream> exports = new java.util.concurrent.ConcurrentHashMap<>();
    /** Exports declared dead (fault dead-writer). */
    private final java.util.Set<Integer> dead = java.util.concurrent.ConcurrentHashMap.newKeySet();
    private final java.util.concurrent.atomic.AtomicInteger nextOid = new java.util.concurrent.atomic.AtomicInteger(100);
    private final java.util.concurrent.atomic.AtomicInteger ioIds = new java.util.concurrent.atomic.AtomicInteger(1);
    /** This agent's own requests (ProxyInputStream$Chunk pulls) waiting for a Response. */
    private final java.util.Map<Integer, java.util.concurrent.CompletableFuture<Response<?, ?>>> myRequests =
            new java.util.concurrent.ConcurrentHashMap<>();
    private final java.util.concurrent.atomic.AtomicInteger nextRequestId = new java.util.concurrent.atomic.AtomicInteger(2_000_000);
    /** The id of the UserRequest being answered on the loop thread (requestId of CopyTo chunks). */
    private int currentRequest;

    private SelfTestAgent(String url, String name, String secret, boolean ws, long capability) {
        this.url = url.endsWith("/") ? url : url + "/";
        this.name = name;
        this.secret = secret;
        this.ws = ws;
        this.capability = capability;
    }

    public static void main(String[] args) throws Exception {
        long cap = args.length > 4 ? Long.parseLong(args[4], 16) : 0x1FE;
        long seconds = args.length > 5 ? Long.parseLong(args[5]) : 10;
        int reconnects = args.length > 6 ? Integer.parseInt(args[6]) : 0;
        SelfTestAgent a = new SelfTestAgent(args[0], args[1], args[2], args[3].equals("ws"), cap);
        // How a RemoteInputStream reads depends on the reader's own capability (agent-callables §1.3).
        hudson.remoting.RemoteInputStream.readerAdvertisedGreedy = (cap & SimChannel.GREEDY_REMOTE_INPUTSTREAM) != 0;
        if (args.length > 7) a.fault = args[7];
        long deadline = System.currentTimeMillis() + seconds * 1000;
        Thread timer = new Thread(() -> {
            Controller.sleep(Math.max(1, deadline - System.currentTimeMillis()));
            System.exit(0);
        });
        timer.setDaemon(true);
        timer.start();
        for (int i = 0; i <= reconnects && System.currentTimeMillis() < deadline; i++) {
            try {
                a.connect();
                a.loop();
            } catch (IOException e) {
                log("connection ended: " + e);
            }
            Controller.sleep(500);
        }
        System.exit(0);
    }

    static void log(String s) {
        System.err.println("[selftest-agent] " + s);
    }

    // ---------------------------------------------------------------- transports

    private void connect() throws Exception {
        URI u = URI.create(url);
        if (ws) {
            Socket s = new Socket(u.getHost(), u.getPort());
            in = new BufferedInputStream(s.getInputStream());
            out = s.getOutputStream();
            byte[] k = new byte[16];
            random.nextBytes(k);
            StringBuilder sb = new StringBuilder();
            sb.append("GET ").append(u.getPath()).append("wsagents/ HTTP/1.1\r\nHost: ").append(u.getHost()).append(':')
                    .append(u.getPort()).append("\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n")
                    .append("Sec-WebSocket-Key: ").append(Base64.getEncoder().encodeToString(k)).append("\r\n")
                    .append("Node-Name: ").append(name).append("\r\nSecret-Key: ").append(secret).append("\r\n")
                    .append("X-Remoting-Capability: ").append(SimChannel.capabilityBase64(capability)).append("\r\n");
            if (cookie != null) sb.append("Connection-Cookie: ").append(cookie).append("\r\n");
            sb.append("\r\n");
            out.write(sb.toString().getBytes(StandardCharsets.ISO_8859_1));
            out.flush();
            String status = HttpServer.readLine(in);
            log("upgrade: " + status);
            for (int i = 0; i < 100; i++) {
                String h = HttpServer.readLine(in);
                if (h == null || h.isEmpty()) break;
                if (h.toLowerCase().startsWith("connection-cookie:")) cookie = h.substring(18).trim();
            }
            if (status == null || !status.contains(" 101 ")) throw new IOException("upgrade refused: " + status);
        } else {
            Socket s = new Socket(u.getHost(), jnlpPort(u));
            InputStream pin = s.getInputStream();
            OutputStream pout = s.getOutputStream();
            DataOutputStream d = new DataOutputStream(pout);
            d.writeUTF("Protocol:JNLP4-connect");
            d.write(Jnlp4Server.ACK);
            d.flush();
            byte[] ack = pin.readNBytes(5);
            if (ack.length != 5) throw new IOException("no ACK");
            SSLContext ctx = SSLContext.getInstance("TLS");
            ctx.init(null, new TrustManager[] {new X509TrustManager() {
                @Override public void checkClientTrusted(X509Certificate[] c, String a) { }
                @Override public void checkServerTrusted(X509Certificate[] c, String a) { }
                @Override public X509Certificate[] getAcceptedIssuers() { return new X509Certificate[0]; }
            }}, null);
            SSLSocket tls = (SSLSocket) ctx.getSocketFactory().createSocket(s, u.getHost(), s.getPort(), true);
            tls.setUseClientMode(true);
            tls.startHandshake();
            in = tls.getInputStream();
            out = tls.getOutputStream();
            String hdr = "{\"Node-Name\":\"" + name + "\",\"Secret-Key\":\"" + secret + "\""
                    + (cookie != null ? ",\"JnlpAgentProtocol.cookie\":\"" + cookie + "\"" : "") + "}";
            Jnlp4Server.writeMessage(out, hdr);
            String theirs = Jnlp4Server.readMessage(in);
            cookie = Jnlp4Server.parseHeaders(theirs).get("JnlpAgentProtocol.cookie");
            Jnlp4Server.writeMessage(out, "OK");
            String verdict = Jnlp4Server.readMessage(in);
            log("jnlp4 verdict: " + verdict);
            if (!verdict.equals("OK")) {
                out.write(Jnlp4Server.BYE);
                out.flush();
                throw new IOException("refused: " + verdict);
            }
            Jnlp4Server.writeMessage(out, SimChannel.capabilityBase64(capability));
            String cap = Jnlp4Server.readMessage(in);
            log("controller capability 0x" + Long.toHexString(SimChannel.parseCapability(cap.getBytes(StandardCharsets.US_ASCII)).getMask()));
        }
    }

    private static int jnlpPort(URI u) throws IOException {
        try (Socket s = new Socket(u.getHost(), u.getPort())) {
            s.getOutputStream().write(("GET " + u.getPath() + "tcpSlaveAgentListener/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                    .getBytes(StandardCharsets.US_ASCII));
            InputStream i = new BufferedInputStream(s.getInputStream());
            for (int n = 0; n < 100; n++) {
                String h = HttpServer.readLine(i);
                if (h == null) break;
                if (h.startsWith("X-Jenkins-JNLP-Port:")) return Integer.parseInt(h.substring(20).trim());
            }
        }
        throw new IOException("no X-Jenkins-JNLP-Port");
    }

    private void sendFrame(byte[] f) throws IOException {
        synchronized (writeLock) {
            if (ws) wsWrite(0x2, f);
            else out.write(f);
            out.flush();
        }
    }

    private void wsWrite(int opcode, byte[] p) throws IOException {
        ByteArrayOutputStream b = new ByteArrayOutputStream();
        b.write(0x80 | opcode);
        if (p.length < 126) b.write(0x80 | p.length);
        else if (p.length < 65536) {
            b.write(0x80 | 126);
            b.write(p.length >>> 8);
            b.write(p.length);
        } else {
            b.write(0x80 | 127);
            for (int i = 0; i < 8; i++) b.write((int) ((long) p.length >>> (56 - 8 * i)));
        }
        byte[] m = new byte[4];
        random.nextBytes(m);
        b.write(m);
        for (int i = 0; i < p.length; i++) b.write(p[i] ^ m[i & 3]);
        out.write(b.toByteArray());
    }

    /** Returns the next chunk-stream bytes (WS: one data frame payload; control frames handled). */
    private byte[] nextBytes() throws IOException {
        if (!ws) {
            byte[] b = new byte[8192];
            int n = in.read(b);
            if (n < 0) throw new IOException("EOF");
            return java.util.Arrays.copyOf(b, n);
        }
        for (int guard = 0; guard < 1000; guard++) {
            int b0 = in.read();
            int b1 = in.read();
            if (b0 < 0 || b1 < 0) throw new IOException("EOF");
            long len = b1 & 0x7F;
            if (len == 126) len = (in.read() << 8) | in.read();
            else if (len == 127) {
                len = 0;
                for (int i = 0; i < 8; i++) len = (len << 8) | in.read();
            }
            byte[] p = in.readNBytes((int) len);
            int op = b0 & 0xF;
            if (op == 0x9) {
                synchronized (writeLock) {
                    wsWrite(0xA, p);
                    out.flush();
                }
            } else if (op == 0x8) {
                throw new IOException("WebSocket closed by the controller");
            } else if (op == 0x2 || op == 0x0) {
                return p;
            }
        }
        throw new IOException("too many control frames");
    }

    // ---------------------------------------------------------------- channel

    private void loop() throws IOException {
        ByteArrayOutputStream cmd = new ByteArrayOutputStream();
        byte[] pending = new byte[0];
        for (long n = 0; n < 100_000_000L; n++) {
            byte[] b = nextBytes();
            byte[] all = new byte[pending.length + b.length];
            System.arraycopy(pending, 0, all, 0, pending.length);
            System.arraycopy(b, 0, all, pending.length, b.length);
            int off = 0;
            while (all.length - off >= 2) {
                int h = ((all[off] & 0xFF) << 8) | (all[off + 1] & 0xFF);
                int len = h & 0x7FFF;
                if (all.length - off - 2 < len) break;
                cmd.write(all, off + 2, len);
                off += 2 + len;
                if ((h & 0x8000) == 0) {
                    byte[] payload = cmd.toByteArray();
                    cmd.reset();
                    if (!onCommand(payload)) return;
                }
            }
            pending = java.util.Arrays.copyOfRange(all, off, all.length);
        }
    }

    private boolean onCommand(byte[] payload) throws IOException {
        Object o;
        try (ObjectInputStream oin = new ObjectInputStream(new ByteArrayInputStream(payload))) {
            o = oin.readObject();
        } catch (Exception e) {
            log("dropping undeserializable command: " + e);
            return true;
        }
        if (o instanceof Channel.CloseCommand) {
            send(new Channel.CloseCommand(null));
            return false;
        }
        if (o instanceof Response) {
            Response<?, ?> r = (Response<?, ?>) o;
            java.util.concurrent.CompletableFuture<Response<?, ?>> f = myRequests.remove(r.getId());
            if (f != null) f.complete(r);
            else log("controller answered agent request " + r.getId());
            return true;
        }
        if (o instanceof hudson.remoting.ProxyOutputStream.Chunk) {
            onChunk((hudson.remoting.ProxyOutputStream.Chunk) o);
            return true;
        }
        if (o instanceof hudson.remoting.ProxyOutputStream.Flush) {
            OutputStream os = exports.get(((hudson.remoting.ProxyOutputStream.Flush) o).oid);
            if (os != null) os.flush();
            return true;
        }
        if (o instanceof hudson.remoting.ProxyOutputStream.EOF) {
            OutputStream os = exports.remove(((hudson.remoting.ProxyOutputStream.EOF) o).oid);
            if (os != null) os.close();
            return true;
        }
        if (o instanceof hudson.remoting.ProxyOutputStream.Ack) {
            return true; // this stand-in never waits for its window
        }
        if (!(o instanceof UserRequest)) {
            log("ignoring " + o.getClass().getName());
            return true;
        }
        UserRequest<?, ?> ur = (UserRequest<?, ?>) o;
        if (controllerLoaderOid < 0) {
            Object h = java.lang.reflect.Proxy.getInvocationHandler(ur.getClassLoaderProxy());
            controllerLoaderOid = ((hudson.remoting.RemoteInvocationHandler) h).getOid();
        }
        Serializable rv;
        try {
            Object callable;
            try (ObjectInputStream oin = new ObjectInputStream(new ByteArrayInputStream(ur.getRequestBytes()))) {
                callable = oin.readObject();
            }
            if (callable instanceof hudson.FilePath.FileCallableWrapper
                    && field(callable, "callable") instanceof hudson.FilePath.UntarRemote) {
                startUntar(ur.getId(), (hudson.FilePath.UntarRemote) field(callable, "callable"));
                return true;
            }
            currentRequest = ur.getId();
            Object value = answer(callable);
            rv = new UserRequest.NormalResponse<>(nested(value));
        } catch (Exception e) {
            rv = exceptionResponse(e);
        }
        send(new Response<>(ur.getId(), 0, rv, null));
        if (rv instanceof UserRequest.NormalResponse && ur.getToString() != null
                && ur.getToString().startsWith("hudson.slaves.ChannelPinger$SetUpRemotePing")) {
            // Like a Java agent after SetUpRemotePing: ping the controller (agent → controller UserRequest).
            send(new UserRequest<>(1_000_000, new hudson.remoting.RemoteClassLoader.RemoteIClassLoader(controllerLoaderOid),
                    nested(new hudson.remoting.PingThread.Ping()), "hudson.remoting.PingThread$Ping"));
        }
        return true;
    }

    private Serializable exceptionResponse(Exception e) throws IOException {
        IOException io = new IOException(e.getMessage());
        io.setStackTrace(new StackTraceElement[0]);
        byte[] b = nested(io);
        return new UserRequest.ExceptionResponse<>(b, b);
    }

    /** A ProxyOutputStream$Chunk for one of our exports: write, or die (fault), then Ack (0x4). */
    private void onChunk(hudson.remoting.ProxyOutputStream.Chunk c) throws IOException {
        OutputStream os = exports.get(c.oid);
        try {
            if (os == null) {
                log("chunk for unknown stream " + c.oid);
            } else if (dead.contains(c.oid)) {
                // dropped
            } else if (fault.equals("dead-writer")) {
                dead.add(c.oid);
                send(new hudson.remoting.ProxyOutputStream.NotifyDeadWriter(c.oid, new IOException("selftest: simulated write failure")));
            } else {
                os.write(c.buf);
            }
        } finally {
            if ((capability & SimChannel.PIPE_THROTTLING) != 0 && !fault.equals("no-acks")) {
                send(new hudson.remoting.ProxyOutputStream.Ack(c.oid, c.buf.length));
            }
        }
    }

    /** Counts what a pipe delivers; completes {@code closed} with the count at EOF. */
    static final class CountingSink extends OutputStream {
        final java.util.concurrent.atomic.AtomicLong count = new java.util.concurrent.atomic.AtomicLong();
        final java.util.concurrent.CompletableFuture<Long> closed = new java.util.concurrent.CompletableFuture<>();

        @Override public void write(int b) { count.incrementAndGet(); }
        @Override public void write(byte[] b, int off, int len) { count.addAndGet(len); }
        @Override public void close() { closed.complete(count.get()); }
    }

    /**
     * FilePath$UntarRemote: consume the RemoteInputStream (greedy: ConnectCommand now, as a Java
     * agent does while deserializing the Pipe; pull: Chunk requests) on a worker thread, then
     * answer null, or an IOException when the count differs from NECTR_SELFTEST_UNTAR_BYTES.
     */
    private void startUntar(int requestId, hudson.FilePath.UntarRemote u) throws IOException {
        if (fault.equals("no-connect")) {
            send(new Response<>(requestId, 0, exceptionResponse(new IOException("selftest: refusing " + u.getName())), null));
            return;
        }
        hudson.remoting.RemoteInputStream rin = u.getIn();
        String env = System.getenv("NECTR_SELFTEST_UNTAR_BYTES");
        long expected = env == null ? -1 : Long.parseLong(env);
        java.util.concurrent.Callable<Long> consume;
        if (rin.getPipe() != null) {
            if (rin.getPipe().isRemoteToLocal()) throw new IOException("greedy RemoteInputStream with a remote-to-local Pipe");
            int oidPos = nextOid.getAndIncrement();
            CountingSink sink = new CountingSink();
            exports.put(oidPos, sink);
            send(new hudson.remoting.Pipe.ConnectCommand(rin.getPipe().getOid(), oidPos));
            consume = () -> sink.closed.get(60, java.util.concurrent.TimeUnit.SECONDS);
        } else {
            int oid = rin.getOid();
            consume = () -> {
                long total = 0;
                while (true) {
                    int id = nextRequestId.getAndIncrement();
                    java.util.concurrent.CompletableFuture<Response<?, ?>> f = new java.util.concurrent.CompletableFuture<>();
                    myRequests.put(id, f);
                    send(new hudson.remoting.ProxyInputStream.Chunk(id, oid, 65536));
                    Response<?, ?> r = f.get(30, java.util.concurrent.TimeUnit.SECONDS);
                    if (r.getException() != null) throw new IOException("pull failed: " + r.getException());
                    hudson.remoting.ProxyInputStream.Buffer b = (hudson.remoting.ProxyInputStream.Buffer) r.getReturnValue();
                    if (b.len < 0) break;
                    total += b.len;
                }
                send(new hudson.remoting.ProxyInputStream.EOF(oid));
                return total;
            };
        }
        Thread t = new Thread(() -> {
            Serializable rv;
            try {
                long got = consume.call();
                log("untar " + u.getName() + " (" + u.getCompression() + "): " + got + " bytes");
                if (expected >= 0 && got != expected) throw new IOException("selftest: received " + got + " bytes, expected " + expected);
                rv = new UserRequest.NormalResponse<>(nested(null));
            } catch (Exception e) {
                try {
                    rv = exceptionResponse(e);
                } catch (IOException x) {
                    return;
                }
            }
            try {
                send(new Response<>(requestId, 0, rv, null));
            } catch (IOException e) {
                log("could not answer UntarRemote: " + e);
            }
        }, "selftest-untar");
        t.setDaemon(true);
        t.start();
    }

    /** FilePath$WritePipe / $CopyTo on {@code path}. */
    private Object fileCallable(Object inner, String path) throws Exception {
        String n = inner.getClass().getName();
        switch (n) {
            case "hudson.FilePath$WritePipe": {
                int oid = nextOid.getAndIncrement();
                exports.put(oid, new java.io.BufferedOutputStream(new java.io.FileOutputStream(path), 1 << 16));
                return new hudson.remoting.RemoteOutputStream(oid);
            }
            case "hudson.FilePath$CopyTo": {
                int oid = ((hudson.remoting.RemoteOutputStream) field(inner, "out")).getOid();
                try (InputStream fin = new java.io.FileInputStream(path)) {
                    byte[] buf = new byte[65536];
                    for (int k; (k = fin.readNBytes(buf, 0, buf.length)) > 0;) {
                        send(new hudson.remoting.ProxyOutputStream.Chunk(ioIds.getAndIncrement(), oid, currentRequest,
                                java.util.Arrays.copyOf(buf, k)));
                    }
                }
                send(new hudson.remoting.ProxyOutputStream.EOF(ioIds.getAndIncrement(), oid, currentRequest, null));
                return null;
            }
            default: throw new IOException(n + " is not supported by this agent");
        }
    }

    private static Object field(Object o, String name) throws ReflectiveOperationException {
        Field f = o.getClass().getDeclaredField(name);
        f.setAccessible(true);
        return f.get(o);
    }

    private Object answer(Object c) throws Exception {
        String n = c.getClass().getName();
        switch (n) {
            case "hudson.slaves.SlaveComputer$SlaveVersion":
                return fault.equals("bad-version") ? "3000.vdeadbeef" : "3386.v353e57a_1b_ea_0";
            case "hudson.slaves.SlaveComputer$CommunicationProtocol": return ws ? "WebSocket" : "JNLP4-connect";
            case "hudson.slaves.SlaveComputer$DetectOS": return Boolean.TRUE;
            case "hudson.slaves.SlaveComputer$DetectDefaultCharset": return "UTF-8";
            case "jenkins.slaves.StandardOutputSwapper$ChannelSwapper": return Boolean.FALSE;
            case "hudson.slaves.SlaveComputer$SlaveInitializer":
            case "hudson.slaves.ChannelPinger$SetUpRemotePing":
            case "jenkins.util.SystemProperties$AgentCopier$CopySystemProperties":
            case "hudson.logging.LogRecorder$SetLevel":
            case "jenkins.slaves.restarter.JnlpSlaveRestarterInstaller$FindEffectiveRestarters":
            case "hudson.remoting.PingThread$Ping":
                return null;
            case "hudson.slaves.SlaveComputer$AbsolutePath":
                return new java.io.File((String) field(c, "relativePath")).getAbsolutePath();
            case "hudson.node_monitors.ArchitectureMonitor$GetArchTask": return "Linux (amd64)";
            case "hudson.model.Slave$GetClockDifference2":
                return new Slave.GetClockDifference3((Long) field(c, "startTime"), System.currentTimeMillis());
            case "hudson.FilePath$CallableWith": {
                String path = ((hudson.FilePath) field(c, "this$0")).getRemote();
                java.io.File f = new java.io.File(path);
                DiskSpaceMonitorDescriptor.DiskSpace d = new DiskSpaceMonitorDescriptor.DiskSpace(f.getCanonicalPath(), f.getUsableSpace());
                Field t = d.getClass().getDeclaredField("totalSize");
                t.setAccessible(true);
                t.setLong(d, f.getTotalSpace());
                return d;
            }
            case "hudson.node_monitors.SwapSpaceMonitor$MonitorTask":
                return new SwapSpaceMonitor.MemoryUsage2(8L << 30, 4L << 30, -1, -1);
            case "hudson.node_monitors.ResponseTimeMonitor$Step2":
                return new ResponseTimeMonitor.Step3((ResponseTimeMonitor.Data) field(c, "cur"), (Long) field(c, "start"));
            case "hudson.slaves.SlaveComputer$SlaveLogFetcher": return new ArrayList<>();
            case "hudson.remoting.Channel$IOSyncer": return null; // stream commands are applied in arrival order
            case "hudson.FilePath$FileCallableWrapper":
                return fileCallable(field(c, "callable"), ((hudson.FilePath) field(c, "filePath")).getRemote());
            default: throw new IOException(n + " is not supported by this agent");
        }
    }

    /** Result stream: -3 for bootstrap classes, -1 + the controller's loader oid otherwise. */
    private byte[] nested(Object value) throws IOException {
        ByteArrayOutputStream bos = new ByteArrayOutputStream();
        boolean multi = (capability & SimChannel.MULTI_CLASSLOADER) != 0 && !fault.equals("no-annotations");
        try (ObjectOutputStream oos = multi ? new ObjectOutputStream(bos) {
            @Override
            protected void annotateClass(Class<?> cl) throws IOException {
                if (cl.getClassLoader() == null) writeInt(-3);
                else {
                    writeInt(-1);
                    writeInt(controllerLoaderOid);
                }
            }
        } : new ObjectOutputStream(bos)) {
            oos.writeObject(value);
        }
        return bos.toByteArray();
    }

    /** Sends one command; its frames are never interleaved with another thread's. */
    private void send(Object command) throws IOException {
        byte[] payload = SimChannel.serialize(command);
        synchronized (writeLock) {
            for (byte[] f : SimChannel.frames(payload)) sendFrame(f);
        }
    }
}
