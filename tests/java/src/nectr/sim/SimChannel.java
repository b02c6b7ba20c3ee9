package nectr.sim;

import hudson.remoting.Capability;
import hudson.remoting.Channel;
import hudson.remoting.Command;
import hudson.remoting.GCCommand;
import hudson.remoting.RemoteClassLoader;
import hudson.remoting.RemoteInvocationHandler;
import hudson.remoting.Request;
import hudson.remoting.Response;
import hudson.remoting.UnexportCommand;
import hudson.remoting.UserRequest;
import hudson.remoting.UserResponse;
import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.ObjectInputStream;
import java.io.ObjectOutputStream;
import java.io.Serializable;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;

/**
 * The controller side of one remoting channel: chunk framing (§4.2), one serialization stream
 * per command (§4.3), UserRequest / Response matching (§5.2), streams, windows and pipes
 * (§5.6, §5.7). Public only so that the RemoteInputStream wire twin can export through it.
 */
public final class SimChannel {
    static final long MULTI_CLASSLOADER = 0x2;
    static final long PIPE_THROTTLING = 0x4;
    static final long GREEDY_REMOTE_INPUTSTREAM = 0x20;
    static final long PROXY_EXCEPTION_FALLBACK = 0x100;
    static final long CONTROLLER_CAPABILITY = 0x1FE;
    static final int FRAME_SIZE = 8192;
    static final int MAX_COMMAND = 64 << 20;
    /** Export id of the simulator's class loader in this channel's export table (1 = the channel). */
    static final int LOADER_OID = 2;
    /**
     * Jenkins exports one class loader per component: core's (2) and a plugin's for classes
     * of that plugin. The capture shows durable-task's callables with classLoaderProxy oid 4;
     * workflow plugins get 5 (their classes travel only inside core callables there).
     */
    static final int DURABLE_TASK_LOADER_OID = 4;
    static final int WORKFLOW_LOADER_OID = 5;
    static final java.util.Set<Integer> LOADER_OIDS = java.util.Set.of(LOADER_OID, DURABLE_TASK_LOADER_OID, WORKFLOW_LOADER_OID);

    /** The (played) class loader of {@code c}: its export oid. */
    static int loaderOid(Class<?> c) {
        String n = c.getName();
        if (n.startsWith("org.jenkinsci.plugins.durabletask.")) return DURABLE_TASK_LOADER_OID;
        if (n.startsWith("org.jenkinsci.plugins.workflow.")) return WORKFLOW_LOADER_OID;
        return LOADER_OID;
    }

    static boolean isLoaderOid(int oid) {
        return LOADER_OIDS.contains(oid);
    }

    /**
     * The class whose loader names a UserRequest's classLoaderProxy: the FileCallable inside a
     * FileCallableWrapper (a DelegatingCallable), otherwise the callable itself.
     */
    static Class<?> requestClass(Object callable) {
        if (callable instanceof hudson.FilePath.FileCallableWrapper) {
            Object inner = ((hudson.FilePath.FileCallableWrapper<?>) callable).getCallable();
            if (inner != null) return inner.getClass();
        }
        return callable.getClass();
    }

    /** Request ids: one JVM-wide counter, as remoting's Request.nextId. */
    private static final AtomicInteger NEXT_ID = new AtomicInteger(1);

    final String node;
    final Transport transport;
    final long agentCapability;
    final String cookie;
    private final Map<Integer, PendingCall> pending = new ConcurrentHashMap<>();
    private final AtomicBoolean terminated = new AtomicBoolean();
    private final AtomicBoolean closeSent = new AtomicBoolean();
    private final Object writeLock = new Object();
    final CompletableFuture<String> termination = new CompletableFuture<>();
    /** The node's remote FS as resolved by SlaveComputer$AbsolutePath (null when --remote-fs is absolute). */
    volatile String rootPath;
    /** Called (once) when the channel terminates. */
    volatile Runnable onTerminate;
    /** The agent's environment from EnvVars$GetEnvVars (Jenkins caches it per connection). */
    volatile Map<String, String> agentEnv;
    /** The error of each ProxyOutputStream$EOF that carried one, by oid (for the stream's reader). */
    final Map<Integer, Throwable> eofErrors = new ConcurrentHashMap<>();

    // chunk parser state (reader thread only)
    private final byte[] hdr = new byte[2];
    private int hdrHave;
    private int chunkLeft = -1;
    private boolean chunkLast;
    private final ByteArrayOutputStream command = new ByteArrayOutputStream();

    SimChannel(String node, Transport transport, long agentCapability, String cookie) {
        this.node = node;
        this.transport = transport;
        this.agentCapability = agentCapability;
        this.cookie = cookie;
    }

    boolean agentMulti() {
        return (agentCapability & MULTI_CLASSLOADER) != 0;
    }

    /** The agent advertised PIPE_THROTTLING: it acks our chunks and we ack its chunks. */
    boolean agentThrottles() {
        return (agentCapability & PIPE_THROTTLING) != 0;
    }

    /** The agent advertised GREEDY_REMOTE_INPUTSTREAM: RemoteInputStream carries a leading boolean. */
    public boolean agentSupportsGreedyInput() {
        return (agentCapability & GREEDY_REMOTE_INPUTSTREAM) != 0;
    }

    boolean isOpen() {
        return !terminated.get();
    }

    // ------------------------------------------------------------------ sending

    static byte[] serialize(Object o) throws IOException {
        ByteArrayOutputStream bos = new ByteArrayOutputStream();
        try (ObjectOutputStream oos = new ObjectOutputStream(bos)) {
            oos.writeObject(o);
        }
        return bos.toByteArray();
    }

    /** Splits one command payload into frames of at most FRAME_SIZE bytes. */
    static List<byte[]> frames(byte[] payload) {
        List<byte[]> out = new ArrayList<>();
        int off = 0;
        do {
            int n = Math.min(FRAME_SIZE, payload.length - off);
            boolean last = off + n == payload.length;
            byte[] f = new byte[n + 2];
            int h = n | (last ? 0 : 0x8000);
            f[0] = (byte) (h >>> 8);
            f[1] = (byte) h;
            System.arraycopy(payload, off, f, 2, n);
            out.add(f);
            off += n;
        } while (off < payload.length);
        return out;
    }

    // ------------------------------------------------------------------ streams (§5.6)

    /** Controller-side OutputStreams exported to the agent (RemoteOutputStream oids). */
    final Map<Integer, java.io.OutputStream> exports = new ConcurrentHashMap<>();
    private final AtomicInteger nextExport = new AtomicInteger(10);
    private final AtomicInteger ioIds = new AtomicInteger(1);

    /** Exports {@code os} for the agent to write into; returns its oid. */
    int export(java.io.OutputStream os) {
        int oid = nextExport.getAndIncrement();
        exports.put(oid, os);
        return oid;
    }

    // ------------------------------------------------------------------ windows (§5.6, PIPE_THROTTLING)

    /** remoting's hudson.remoting.Channel.pipeWindowSize default. */
    static final int PIPE_WINDOW = 1 << 20;
    /** A writer waits until at least this much (or what it has left) fits. */
    static final int MIN_WINDOW_WAIT = PIPE_WINDOW / 10;
    /** Largest chunk sent at once. */
    static final int MAX_CHUNK = PIPE_WINDOW / 2;
    static final long ACK_TIMEOUT_MS = 30_000;

    /** Send window of one stream the agent exported (keyed by the agent's oid). */
    static final class Window {
        /** Bytes that may still be sent without an Ack (guarded by this). */
        long available = PIPE_WINDOW;
        boolean dead;
        Throwable deadCause;
        long lastAckNanos = System.nanoTime();
    }

    private final Map<Integer, Window> windows = new ConcurrentHashMap<>();
    /** Acks the simulator sent for the agent's chunks / received for its own chunks. */
    final AtomicLong acksSent = new AtomicLong();
    final AtomicLong acksReceived = new AtomicLong();

    private Window window(int oid) {
        return windows.computeIfAbsent(oid, k -> new Window());
    }

    /**
     * Writes into an OutputStream the agent exported (ProxyOutputStream$Chunk). When the agent
     * advertised PIPE_THROTTLING the stream's window applies: wait until min(remaining, 10% of
     * the window) fits, send min(available, remaining, half the window), repeat. Fails with
     * "Pipe is already closed" once the agent sent NotifyDeadWriter for {@code oid}, and after
     * 30 s without an Ack while waiting (check_failed).
     */
    void writeRemote(int oid, byte[] data, int off, int len) throws IOException {
        if (!agentThrottles()) {
            Window w = windows.get(oid);
            if (w != null && w.dead) throw deadPipe(w);
            byte[] b = java.util.Arrays.copyOfRange(data, off, off + len);
            sendIo(io -> new hudson.remoting.ProxyOutputStream.Chunk(io, oid, 0, b));
            return;
        }
        Window w = window(oid);
        while (len > 0) {
            int n;
            synchronized (w) {
                int need = Math.min(len, MIN_WINDOW_WAIT);
                long waitStart = System.nanoTime();
                while (!w.dead && w.available < need) {
                    if (!isOpen()) throw new IOException("channel to " + node + " is closed");
                    long idleMs = (System.nanoTime() - Math.max(waitStart, w.lastAckNanos)) / 1_000_000;
                    if (idleMs >= ACK_TIMEOUT_MS) {
                        Events.emit("event", "check_failed", "node", node, "what",
                                "no Ack from the agent for stream " + oid + " for 30 s");
                        throw new IOException("no Ack from the agent for stream " + oid + " for 30 s (window "
                                + w.available + " bytes)");
                    }
                    try {
                        w.wait(Math.max(1, Math.min(1000, ACK_TIMEOUT_MS - idleMs)));
                    } catch (InterruptedException e) {
                        Thread.currentThread().interrupt();
                        throw new java.io.InterruptedIOException("interrupted while waiting for an Ack on stream " + oid);
                    }
                }
                if (w.dead) throw deadPipe(w);
                n = (int) Math.min(Math.min(w.available, len), MAX_CHUNK);
                w.available -= n;
            }
            byte[] b = java.util.Arrays.copyOfRange(data, off, off + n);
            sendIo(io -> new hudson.remoting.ProxyOutputStream.Chunk(io, oid, 0, b));
            off += n;
            len -= n;
        }
    }

    /** Sends a stream command with the next I/O id; ids go out in increasing order. */
    private void sendIo(java.util.function.IntFunction<Command> make) throws IOException {
        synchronized (writeLock) {
            sendCommand(make.apply(ioIds.getAndIncrement()));
        }
    }

    /**
     * Sends {@code c} from the acker thread, in call order. Like remoting's pipe writer, this
     * keeps the reader thread reading while a send blocks (no deadlock when both sides stream).
     */
    private void sendLater(Command c) {
        sendLater(c, null);
    }

    /**
     * Bytes of each agent stream received, and acked with an Ack about to be or already written
     * to the transport (so possibly seen by the agent): the agent may never have more than its window
     * unacked, which the simulator checks on every chunk.
     */
    private final Map<Integer, long[]> received = new ConcurrentHashMap<>();
    /** Delay before each Ack (--ack-delay-ms): slow acks make a window overrun visible. */
    volatile long ackDelayMs;

    private void sendLater(Command c, Runnable beforeSend) {
        java.util.concurrent.ExecutorService ex;
        synchronized (this) {
            if (acker == null) {
                acker = java.util.concurrent.Executors.newSingleThreadExecutor(r -> {
                    Thread t = new Thread(r, "sim-acker-" + node);
                    t.setDaemon(true);
                    return t;
                });
            }
            ex = acker;
        }
        try {
            ex.execute(() -> {
                try {
                    if (beforeSend != null && ackDelayMs > 0) Thread.sleep(ackDelayMs);
                    // Counted before the write: once written, the agent may act on it before
                    // this thread runs again.
                    if (beforeSend != null) beforeSend.run();
                    sendCommand(c);
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                } catch (IOException e) {
                    if (isOpen()) Events.emit("event", "note", "node", node, "what", "could not send " + c.getClass().getName() + ": " + e);
                }
            });
        } catch (java.util.concurrent.RejectedExecutionException e) {
            // channel terminated
        }
    }

    private java.util.concurrent.ExecutorService acker;

    private static IOException deadPipe(Window w) {
        return new IOException("Pipe is already closed", w.deadCause);
    }

    /** Closes an OutputStream the agent exported (ProxyOutputStream$EOF). */
    void closeRemote(int oid) throws IOException {
        closeRemote(oid, null);
    }

    /** Closes an OutputStream the agent exported, passing {@code error} on (ProxyOutputStream$EOF.error). */
    void closeRemote(int oid, Throwable error) throws IOException {
        Window w = windows.get(oid);
        if (w != null && w.dead) throw deadPipe(w);
        sendIo(io -> new hudson.remoting.ProxyOutputStream.EOF(io, oid, 0, error));
        windows.remove(oid);
    }

    private void streamCommand(Object o) throws IOException {
        if (o instanceof hudson.remoting.ProxyOutputStream.Chunk) {
            hudson.remoting.ProxyOutputStream.Chunk c = (hudson.remoting.ProxyOutputStream.Chunk) o;
            java.io.OutputStream os = exports.get(c.oid);
            if (os == null) {
                Events.emit("event", "check_failed", "node", node, "what", "Chunk for unknown or closed stream " + c.oid);
                return;
            }
            if (agentThrottles()) {
                long[] acct = received.computeIfAbsent(c.oid, k -> new long[2]);
                long unacked;
                synchronized (acct) {
                    acct[0] += c.buf.length;
                    unacked = acct[0] - acct[1];
                }
                if (unacked > PIPE_WINDOW) {
                    Events.emit("event", "check_failed", "node", node, "what", "the agent has " + unacked
                            + " bytes of stream " + c.oid + " unacked, more than its " + PIPE_WINDOW + "-byte window");
                }
            }
            try {
                os.write(c.buf);
            } catch (IOException e) {
                // As remoting: tell the writer its stream is dead (the Ack still follows).
                Events.emit("event", "note", "node", node, "what", "writing a chunk of stream " + c.oid + " failed: " + e);
                sendLater(new hudson.remoting.ProxyOutputStream.NotifyDeadWriter(c.oid, e));
            } finally {
                if (agentThrottles()) {
                    long[] acct = received.get(c.oid);
                    int size = c.buf.length;
                    sendLater(new hudson.remoting.ProxyOutputStream.Ack(c.oid, size), () -> {
                        synchronized (acct) {
                            acct[1] += size;
                        }
                    });
                    acksSent.incrementAndGet();
                }
            }
        } else if (o instanceof hudson.remoting.ProxyOutputStream.Flush) {
            java.io.OutputStream os = exports.get(((hudson.remoting.ProxyOutputStream.Flush) o).oid);
            if (os != null) os.flush();
        } else if (o instanceof hudson.remoting.ProxyOutputStream.EOF) {
            hudson.remoting.ProxyOutputStream.EOF eof = (hudson.remoting.ProxyOutputStream.EOF) o;
            if (eof.error != null) {
                Events.emit("event", "stream_error", "node", node, "oid", eof.oid, "error", eof.error.toString());
                eofErrors.put(eof.oid, eof.error);
            }
            java.io.OutputStream os = exports.remove(eof.oid);
            if (os != null) os.close();
        } else if (o instanceof hudson.remoting.ProxyOutputStream.Unexport) {
            exports.remove(((hudson.remoting.ProxyOutputStream.Unexport) o).oid);
        } else if (o instanceof hudson.remoting.ProxyOutputStream.Ack) {
            hudson.remoting.ProxyOutputStream.Ack ack = (hudson.remoting.ProxyOutputStream.Ack) o;
            acksReceived.incrementAndGet();
            if (!agentThrottles()) return; // no windows without PIPE_THROTTLING: counted, otherwise ignored
            Window w = window(ack.oid);
            synchronized (w) {
                w.available += ack.size;
                w.lastAckNanos = System.nanoTime();
                w.notifyAll();
            }
        } else if (o instanceof hudson.remoting.ProxyOutputStream.NotifyDeadWriter) {
            hudson.remoting.ProxyOutputStream.NotifyDeadWriter d = (hudson.remoting.ProxyOutputStream.NotifyDeadWriter) o;
            Events.emit("event", "dead_writer", "node", node, "oid", d.oid);
            if (d.getCause() != null) {
                Events.emit("event", "note", "node", node, "what", "stream " + d.oid + " died on the agent: " + d.getCause());
            }
            Window w = window(d.oid);
            synchronized (w) {
                w.dead = true;
                w.deadCause = d.getCause();
                w.notifyAll();
            }
        } else {
            Events.emit("event", "check_failed", "node", node, "what", "unexpected command from agent: " + o.getClass().getName());
        }
    }

    // ------------------------------------------------------------------ input streams (§5.3, §5.7)

    /** Largest ProxyInputStream$Chunk length the simulator serves. */
    static final int MAX_PULL = 16 << 20;
    /** Read size of the greedy pump. */
    static final int PUMP_READ = 64 << 10;

    /** An InputStream the simulator exported inside a RemoteInputStream (either form). */
    static final class InputExport {
        final int oid;
        final InputStream in;
        final boolean greedy;
        /** Bytes handed to the agent (pulled, or pushed by the pump). */
        final AtomicLong bytes = new AtomicLong();
        /** Greedy form: completes with oidPos when the agent's Pipe$ConnectCommand arrives. */
        final CompletableFuture<Integer> connected = new CompletableFuture<>();
        /** The input side finished: the pump ended (greedy) or the agent sent ProxyInputStream$EOF (pull). */
        final CompletableFuture<String> finished = new CompletableFuture<>();

        InputExport(int oid, InputStream in, boolean greedy) {
            this.oid = oid;
            this.in = in;
            this.greedy = greedy;
        }

        void closeQuietly() {
            try {
                in.close();
            } catch (IOException e) {
                // ignore
            }
        }
    }

    /** Pull-form exports, by oid (removed by ProxyInputStream$EOF or releaseInput). */
    private final Map<Integer, InputExport> inputs = new ConcurrentHashMap<>();
    /** Greedy pipes waiting for Pipe$ConnectCommand, by oidRos. */
    private final Map<Integer, InputExport> pendingPipes = new ConcurrentHashMap<>();
    /** Every input export made on this channel, for reports. */
    private final Map<Integer, InputExport> allInputs = new ConcurrentHashMap<>();
    /** ProxyInputStream$Chunk requests served. */
    final AtomicLong pulls = new AtomicLong();
    /** Runs the agent's pulls and input EOFs in arrival order, off the reader thread. */
    private volatile java.util.concurrent.ExecutorService inputExecutor;

    /** Exports {@code in} for ProxyInputStream$Chunk pulls; returns its oid. */
    public int exportInput(InputStream in) {
        InputExport ix = new InputExport(nextExport.getAndIncrement(), in, false);
        allInputs.put(ix.oid, ix);
        inputs.put(ix.oid, ix);
        return ix.oid;
    }

    /** Registers {@code in} as the pending writer of a local-to-remote Pipe; returns its oidRos. */
    public int exportGreedyInput(InputStream in) {
        InputExport ix = new InputExport(nextExport.getAndIncrement(), in, true);
        allInputs.put(ix.oid, ix);
        pendingPipes.put(ix.oid, ix);
        return ix.oid;
    }

    InputExport inputExport(int oid) {
        return allInputs.get(oid);
    }

    /** Drops an input export that is no longer needed (remoting's auto-unexport after the call) and closes it. */
    void releaseInput(int oid) {
        InputExport ix = allInputs.get(oid);
        if (ix == null) return;
        boolean wasPending = inputs.remove(oid) != null | pendingPipes.remove(oid) != null;
        if (wasPending) ix.closeQuietly();
        ix.connected.completeExceptionally(new IOException("released"));
    }

    private synchronized java.util.concurrent.ExecutorService inputExecutor() {
        if (inputExecutor == null) {
            inputExecutor = java.util.concurrent.Executors.newSingleThreadExecutor(r -> {
                Thread t = new Thread(r, "sim-input-" + node);
                t.setDaemon(true);
                return t;
            });
        }
        return inputExecutor;
    }

    /** ProxyInputStream$Chunk: one read of at most len bytes, answered with a Buffer (len -1 at EOF). */
    private void pull(hudson.remoting.ProxyInputStream.Chunk c) {
        pulls.incrementAndGet();
        hudson.remoting.ProxyInputStream.Buffer buf = null;
        IOException ex = null;
        InputExport ix = inputs.get(c.oid);
        if (c.len < 0 || c.len > MAX_PULL) {
            ex = new IOException("ProxyInputStream$Chunk length " + c.len + " is out of range (0.." + MAX_PULL + ")");
            Events.emit("event", "note", "node", node, "what", "refused a pull: " + ex.getMessage());
        } else if (ix == null) {
            ex = new IOException("Invalid object ID " + c.oid + ": no InputStream exported under that oid");
            Events.emit("event", "check_failed", "node", node, "what", "ProxyInputStream$Chunk for unknown or closed input " + c.oid);
        } else {
            byte[] b = new byte[c.len];
            try {
                int n = ix.in.read(b, 0, b.length);
                if (n > 0) ix.bytes.addAndGet(n);
                buf = new hudson.remoting.ProxyInputStream.Buffer(n, b);
            } catch (IOException e) {
                ex = e;
            }
        }
        try {
            sendCommand(new Response<>(c.getId(), 0, buf, ex));
        } catch (IOException e) {
            if (isOpen()) Events.emit("event", "note", "node", node, "what", "could not answer a pull: " + e);
        }
    }

    /** ProxyInputStream$EOF: the agent closed its reader; unexport and close ours. */
    private void inputEof(hudson.remoting.ProxyInputStream.EOF eof) {
        InputExport ix = inputs.remove(eof.oid);
        if (ix == null) {
            Events.emit("event", "note", "node", node, "what", "ProxyInputStream$EOF for unknown or released input " + eof.oid);
            return;
        }
        ix.closeQuietly();
        ix.finished.complete("closed by the agent");
        Events.emit("event", "input_closed", "node", node, "oid", eof.oid);
    }

    /** Pipe$ConnectCommand: the agent exported oidPos for our pending writer oidRos; start pushing. */
    private void connectPipe(hudson.remoting.Pipe.ConnectCommand cc) {
        InputExport ix = pendingPipes.remove(cc.oidRos);
        if (ix == null) {
            Events.emit("event", "check_failed", "node", node, "what",
                    "Pipe$ConnectCommand for unknown pipe " + cc.oidRos + " (oidPos " + cc.oidPos + ")");
            return;
        }
        ix.connected.complete(cc.oidPos);
        Thread t = new Thread(() -> pump(ix, cc.oidPos), "sim-pump-" + node + "-" + cc.oidRos);
        t.setDaemon(true);
        t.start();
    }

    /** Greedy RemoteInputStream: read {@code ix} in 64 KiB reads and write it to the agent's oidPos, then EOF. */
    private void pump(InputExport ix, int oidPos) {
        byte[] buf = new byte[PUMP_READ];
        try {
            while (true) {
                int n;
                try {
                    n = ix.in.read(buf);
                } catch (IOException e) {
                    Events.emit("event", "note", "node", node, "what", "reading the input of pipe " + ix.oid + " failed: " + e);
                    closeRemote(oidPos, e);
                    ix.finished.complete("read error");
                    return;
                }
                if (n < 0) break;
                if (n == 0) continue;
                writeRemote(oidPos, buf, 0, n);
                ix.bytes.addAndGet(n);
            }
            closeRemote(oidPos);
            ix.finished.complete("eof");
        } catch (IOException e) {
            // dead writer, closed channel, or no Ack (already reported): stop quietly
            Events.emit("event", "note", "node", node, "what", "pump of pipe " + ix.oid + " to agent stream " + oidPos
                    + " stopped after " + ix.bytes.get() + " bytes: " + e.getMessage());
            ix.finished.complete("stopped");
        } catch (RuntimeException e) {
            Events.emit("event", "check_failed", "node", node, "what", "pump of pipe " + ix.oid + ": " + e);
            ix.finished.complete("failed");
        } finally {
            ix.closeQuietly();
        }
    }

    void sendCommand(Command c) throws IOException {
        sendRaw(serialize(c));
    }

    void sendRaw(byte[] payload) throws IOException {
        if (terminated.get()) throw new IOException("channel to " + node + " is closed");
        synchronized (writeLock) {
            for (byte[] f : frames(payload)) transport.sendFrame(f);
        }
    }

    /** Builds the UserRequest for {@code callable} as the controller does. */
    UserRequest<?, ?> userRequest(int id, Object callable) throws IOException {
        byte[] nested = agentMulti() ? Nested.annotated(callable) : Nested.plain(callable);
        RemoteClassLoader.IClassLoader proxy = RemoteInvocationHandler.wrap(RemoteClassLoader.IClassLoader.class,
                loaderOid(requestClass(callable)), false, false, false, false);
        return new UserRequest<>(id, proxy, nested, callable.toString());
    }

    static final class PendingCall {
        final int id;
        final String callable;
        final CompletableFuture<Answer> future = new CompletableFuture<>();

        PendingCall(int id, String callable) {
            this.id = id;
            this.callable = callable;
        }
    }

    /** Sends a UserRequest without waiting. */
    PendingCall callAsync(Object callable, boolean quiet) {
        int id = NEXT_ID.getAndIncrement();
        String name = callableName(callable);
        PendingCall pc = new PendingCall(id, name);
        pending.put(id, pc);
        if (!quiet) Events.emit("event", "call", "node", node, "id", id, "callable", name);
        try {
            sendCommand(userRequest(id, callable));
        } catch (IOException e) {
            pending.remove(id);
            pc.future.complete(Answer.failure(id, name, "send failed: " + e));
        }
        return pc;
    }

    /**
     * The callable's name as /work/captures/sequence.txt writes it: the class, or for the two
     * wrappers "hudson.FilePath$FileCallableWrapper -> inner class" and
     * "hudson.remoting.RemoteInvocationHandler$UserRPCRequest -> interface.method".
     */
    static String callableName(Object callable) {
        String n = callable.getClass().getName();
        if (callable instanceof hudson.FilePath.FileCallableWrapper) {
            Object inner = ((hudson.FilePath.FileCallableWrapper<?>) callable).getCallable();
            return n + " -> " + (inner == null ? "null" : inner.getClass().getName());
        }
        if (callable instanceof RemoteInvocationHandler.RPCRequest) {
            RemoteInvocationHandler.RPCRequest r = (RemoteInvocationHandler.RPCRequest) callable;
            return n + " -> " + r.getDeclaringClassName() + "." + r.getMethodName();
        }
        return n;
    }

    /** The next request id of the JVM-wide counter (RPCRequests inside a UserRequest take one too). */
    static int nextRequestId() {
        return NEXT_ID.getAndIncrement();
    }

    /** Waits for the answer of {@code pc}; emits the answer event. */
    Answer await(PendingCall pc, long timeoutMs, boolean quiet) {
        Answer a;
        try {
            a = pc.future.get(timeoutMs, TimeUnit.MILLISECONDS);
        } catch (TimeoutException e) {
            pending.remove(pc.id);
            a = Answer.failure(pc.id, pc.callable, "no answer within " + timeoutMs + " ms");
            a.timedOut = true;
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            a = Answer.failure(pc.id, pc.callable, "interrupted");
        } catch (ExecutionException e) {
            a = Answer.failure(pc.id, pc.callable, String.valueOf(e.getCause()));
        }
        if (!quiet) a.emit(node);
        return a;
    }

    Answer call(Object callable, long timeoutMs) {
        return await(callAsync(callable, false), timeoutMs, false);
    }

    // ------------------------------------------------------------------ receiving

    /** Feeds raw transport bytes (chunk frames, boundaries need not match). */
    void feed(byte[] b, int off, int len) {
        int end = off + len;
        while (off < end && !terminated.get()) {
            if (chunkLeft < 0) {
                hdr[hdrHave++] = b[off++];
                if (hdrHave == 2) {
                    int h = ((hdr[0] & 0xFF) << 8) | (hdr[1] & 0xFF);
                    chunkLeft = h & 0x7FFF;
                    chunkLast = (h & 0x8000) == 0;
                    hdrHave = 0;
                    if (chunkLeft == 0) {
                        if (chunkLast) {
                            Events.emit("event", "note", "node", node, "what", "empty final chunk received");
                            commandComplete();
                        } else {
                            Events.emit("event", "note", "node", node, "what", "empty non-final chunk received (Java never sends these)");
                        }
                        chunkLeft = -1;
                    }
                }
            } else {
                int n = Math.min(chunkLeft, end - off);
                command.write(b, off, n);
                off += n;
                chunkLeft -= n;
                if (command.size() > MAX_COMMAND) {
                    terminate("command larger than " + MAX_COMMAND + " bytes", true);
                    return;
                }
                if (chunkLeft == 0) {
                    chunkLeft = -1;
                    if (chunkLast) commandComplete();
                }
            }
        }
    }

    private void commandComplete() {
        byte[] payload = command.toByteArray();
        command.reset();
        Object o;
        try (ObjectInputStream in = new ObjectInputStream(new ByteArrayInputStream(payload))) {
            o = in.readObject();
            if (in.read() != -1) {
                Events.emit("event", "check_failed", "node", node, "what", "trailing bytes after the command object");
            }
        } catch (Exception e) {
            Events.emit("event", "check_failed", "node", node, "what",
                    "undeserializable command (" + payload.length + " bytes): " + e);
            return;
        }
        try {
            dispatch(o);
        } catch (Exception e) {
            Events.emit("event", "check_failed", "node", node, "what", "handling " + o.getClass().getName() + ": " + e);
        }
    }

    private void dispatch(Object o) throws IOException {
        if (o instanceof Response) {
            Response<?, ?> r = (Response<?, ?>) o;
            PendingCall pc = pending.remove(r.getId());
            if (pc == null) {
                Events.emit("event", "note", "node", node, "what", "response for unknown request id " + r.getId());
                return;
            }
            pc.future.complete(decode(pc, r));
        } else if (o instanceof UserRequest) {
            handleAgentRequest((UserRequest<?, ?>) o);
        } else if (o instanceof RemoteInvocationHandler.RPCRequest) {
            handleRpc((RemoteInvocationHandler.RPCRequest) o);
        } else if (o instanceof Channel.CloseCommand) {
            Events.emit("event", "close_command", "node", node);
            sendClose();
            terminate("agent sent CloseCommand", false);
        } else if (o instanceof UnexportCommand) {
            Events.emit("event", "unexport", "node", node, "oid", ((UnexportCommand) o).getOid());
        } else if (o instanceof GCCommand) {
            // ignored, as remoting does
        } else if (o instanceof Request.Cancel) {
            Events.emit("event", "note", "node", node, "what", "agent sent Request$Cancel id " + ((Request.Cancel) o).getId());
        } else if (o.getClass().getEnclosingClass() == hudson.remoting.ProxyOutputStream.class) {
            streamCommand(o);
        } else if (o instanceof hudson.remoting.ProxyInputStream.Chunk) {
            hudson.remoting.ProxyInputStream.Chunk c = (hudson.remoting.ProxyInputStream.Chunk) o;
            inputExecutor().execute(() -> pull(c));
        } else if (o instanceof hudson.remoting.ProxyInputStream.EOF) {
            hudson.remoting.ProxyInputStream.EOF eof = (hudson.remoting.ProxyInputStream.EOF) o;
            inputExecutor().execute(() -> inputEof(eof));
        } else if (o instanceof hudson.remoting.Pipe.ConnectCommand) {
            connectPipe((hudson.remoting.Pipe.ConnectCommand) o);
        } else {
            Events.emit("event", "check_failed", "node", node, "what", "unexpected command from agent: " + o.getClass().getName());
        }
    }

    /** Agent → controller UserRequest: only PingThread$Ping (and Channel$IOSyncer) are answered. */
    private void handleAgentRequest(UserRequest<?, ?> ur) throws IOException {
        List<String> problems = new ArrayList<>();
        List<String> notes = new ArrayList<>();
        Object callable;
        Object clp = ur.getClassLoaderProxy();
        if (clp == null) problems.add("agent UserRequest has a null classLoaderProxy");
        try {
            callable = Nested.read(ur.getRequestBytes(), agentMulti(), LOADER_OID, problems, notes);
        } catch (Exception e) {
            callable = null;
            problems.add("agent UserRequest: undeserializable callable: " + e);
        }
        for (String p : problems) Events.emit("event", "check_failed", "node", node, "what", p);
        for (String p : notes) Events.emit("event", "note", "node", node, "what", p);
        String name = callable == null ? "null" : callable.getClass().getName();
        Events.emit("event", "agent_call", "node", node, "id", ur.getId(), "callable", name);
        Serializable rv;
        boolean fallback = (agentCapability & PROXY_EXCEPTION_FALLBACK) != 0;
        if (callable instanceof hudson.remoting.PingThread.Ping) {
            byte[] nul = Nested.plain(null);
            rv = fallback ? new UserRequest.NormalResponse<>(nul) : new UserResponse<>(nul, false);
        } else {
            IOException ex = new IOException("simulator: " + name + " is not accepted from the agent");
            ex.setStackTrace(new StackTraceElement[0]);
            byte[] raw = agentMulti() ? Nested.annotated(ex) : Nested.plain(ex);
            rv = fallback ? new UserRequest.ExceptionResponse<>(raw, raw) : new UserResponse<>(raw, true);
            if (callable != null) {
                Events.emit("event", "check_failed", "node", node, "what", "agent sent unexpected callable " + name);
            }
        }
        sendCommand(new Response<>(ur.getId(), 0, rv, null));
    }

    /**
     * A direct RPC from the agent on one of the controller's exports: oid 1 (the channel,
     * IChannel.getProperty / waitForProperty → null) or oid 2 (our class loader; getName).
     * A JVM-free agent should never need these; they are answered as remoting would and noted.
     */
    private void handleRpc(RemoteInvocationHandler.RPCRequest rpc) throws IOException {
        Events.emit("event", "note", "node", node, "what", "agent sent RPCRequest oid=" + rpc.getOid() + " "
                + rpc.getDeclaringClassName() + "." + rpc.getMethodName());
        Serializable rv = null;
        Throwable ex = null;
        if (rpc.getOid() == LOADER_OID && HelperScenarios.classLoading(rpc.getMethodName())) {
            try {
                rv = HelperScenarios.answerClassLoading(LOADER_OID, rpc.getMethodName(), rpc.getArguments());
            } catch (Exception e) {
                ex = e;
            }
        } else if (isLoaderOid(rpc.getOid()) && "getName".equals(rpc.getMethodName())) {
            rv = "nectr controller simulator class loader";
        } else if (rpc.getOid() == 1 && ("getProperty".equals(rpc.getMethodName()) || "waitForProperty".equals(rpc.getMethodName()))) {
            rv = null;
        } else {
            IllegalStateException e = new IllegalStateException("Unable to call " + rpc.getMethodName()
                    + ". No matching method found in the simulator for oid " + rpc.getOid());
            e.setStackTrace(new StackTraceElement[0]);
            ex = e;
        }
        sendCommand(new Response<>(rpc.getId(), 0, rv, ex));
    }

    private Answer decode(PendingCall pc, Response<?, ?> r) {
        List<String> problems = new ArrayList<>();
        List<String> notes = new ArrayList<>();
        Answer a;
        Object rv = r.getReturnValue();
        try {
            if (r.getException() != null) {
                a = Answer.error(pc.id, pc.callable, r.getException());
                notes.add("answer carried Response.exception (transport-level failure form)");
            } else if (rv instanceof UserRequest.NormalResponse) {
                byte[] b = ((UserRequest.NormalResponse<?, ?>) rv).getResponse();
                if (b == null) throw new IOException("NormalResponse.response is null");
                a = Answer.ok(pc.id, pc.callable, Nested.read(b, agentMulti(), LOADER_OID, problems, notes));
            } else if (rv instanceof UserRequest.ExceptionResponse) {
                UserRequest.ExceptionResponse<?, ?> er = (UserRequest.ExceptionResponse<?, ?>) rv;
                Object t = null;
                Exception rawFailure = null;
                if (er.getRawResponse() != null) {
                    try {
                        t = Nested.read(er.getRawResponse(), agentMulti(), LOADER_OID, problems, notes);
                    } catch (Exception e) {
                        rawFailure = e;
                    }
                }
                if (t == null) {
                    if (er.getProxyResponse() == null) throw new IOException("ExceptionResponse without raw or proxy response" + (rawFailure != null ? " (raw: " + rawFailure + ")" : ""));
                    t = Nested.read(er.getProxyResponse(), agentMulti(), LOADER_OID, problems, notes);
                    notes.add("used proxyResponse" + (rawFailure != null ? " (rawResponse failed: " + rawFailure + ")" : ""));
                }
                if (!(t instanceof Throwable)) throw new IOException("ExceptionResponse holds a " + (t == null ? "null" : t.getClass().getName()));
                a = Answer.error(pc.id, pc.callable, (Throwable) t);
            } else if (rv instanceof UserResponse) {
                UserResponse<?, ?> ur = (UserResponse<?, ?>) rv;
                Object v = Nested.read(ur.getResponse(), agentMulti(), LOADER_OID, problems, notes);
                if (ur.isException()) {
                    if (!(v instanceof Throwable)) throw new IOException("UserResponse(isException) holds a non-Throwable");
                    a = Answer.error(pc.id, pc.callable, (Throwable) v);
                } else {
                    a = Answer.ok(pc.id, pc.callable, v);
                }
                notes.add("agent used the legacy UserResponse form");
            } else {
                throw new IOException("unexpected Response.returnValue " + (rv == null ? "null" : rv.getClass().getName()));
            }
        } catch (Exception e) {
            a = Answer.failure(pc.id, pc.callable, "undecodable answer: " + e);
        }
        for (String p : problems) Events.emit("event", "check_failed", "node", node, "id", pc.id, "what", pc.callable + ": " + p);
        for (String p : notes) Events.emit("event", "note", "node", node, "id", pc.id, "what", pc.callable + ": " + p);
        return a;
    }

    // ------------------------------------------------------------------ closing

    void sendClose() {
        if (closeSent.compareAndSet(false, true) && !terminated.get()) {
            try {
                sendCommand(new Channel.CloseCommand(null));
            } catch (IOException e) {
                // ignore
            }
        }
    }

    /** Orderly close as Jenkins does: CloseCommand, then close the transport. */
    void close(String reason) {
        sendClose();
        terminate(reason, false);
    }

    /** Terminates the channel (once). abrupt = drop TCP without closing handshakes. */
    void terminate(String reason, boolean abrupt) {
        if (!terminated.compareAndSet(false, true)) return;
        if (abrupt) transport.abort();
        else transport.close();
        for (PendingCall pc : pending.values()) {
            pc.future.complete(Answer.failure(pc.id, pc.callable, "channel closed: " + reason));
        }
        pending.clear();
        for (Window w : windows.values()) {
            synchronized (w) {
                w.notifyAll();
            }
        }
        for (InputExport ix : allInputs.values()) {
            ix.connected.completeExceptionally(new IOException("channel closed"));
            if (inputs.remove(ix.oid) != null | pendingPipes.remove(ix.oid) != null) {
                ix.closeQuietly();
            }
        }
        java.util.concurrent.ExecutorService ex = inputExecutor;
        if (ex != null) ex.shutdown();
        synchronized (this) {
            if (acker != null) acker.shutdown();
        }
        Events.emit("event", "disconnected", "node", node, "reason", reason);
        termination.complete(reason);
        Runnable r = onTerminate;
        if (r != null) r.run();
    }

    static Capability parseCapability(byte[] base64ascii) throws IOException {
        byte[] raw = java.util.Base64.getDecoder().decode(base64ascii);
        try (ObjectInputStream in = new ObjectInputStream(new ByteArrayInputStream(raw)) {
            @Override
            protected Class<?> resolveClass(java.io.ObjectStreamClass desc) throws IOException, ClassNotFoundException {
                String n = desc.getName();
                if (!n.equals("hudson.remoting.Capability") && !n.equals("java.lang.String") && !n.equals("[Ljava.lang.String;")) {
                    throw new java.io.InvalidClassException(n, "not allowed in a capability");
                }
                return super.resolveClass(desc);
            }
        }) {
            Object o = in.readObject();
            if (!(o instanceof Capability)) throw new IOException("capability stream holds " + o);
            return (Capability) o;
        } catch (ClassNotFoundException e) {
            throw new IOException(e);
        }
    }

    static String capabilityBase64(long mask) throws IOException {
        return java.util.Base64.getEncoder().encodeToString(serialize(new Capability(mask)));
    }
}
