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

/**
 * The controller side of one remoting channel: chunk framing (§4.2), one serialization stream
 * per command (§4.3), UserRequest / Response matching (§5.2).
 */
final class SimChannel {
    static final long MULTI_CLASSLOADER = 0x2;
    static final long PROXY_EXCEPTION_FALLBACK = 0x100;
    static final long CONTROLLER_CAPABILITY = 0x1FE;
    static final int FRAME_SIZE = 8192;
    static final int MAX_COMMAND = 64 << 20;
    /** Export id of the simulator's class loader in this channel's export table (1 = the channel). */
    static final int LOADER_OID = 2;

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

    /** Writes into an OutputStream the agent exported (ProxyOutputStream$Chunk). */
    void writeRemote(int oid, byte[] data, int off, int len) throws IOException {
        sendCommand(new hudson.remoting.ProxyOutputStream.Chunk(ioIds.getAndIncrement(), oid, 0,
                java.util.Arrays.copyOfRange(data, off, off + len)));
    }

    /** Closes an OutputStream the agent exported (ProxyOutputStream$EOF). */
    void closeRemote(int oid) throws IOException {
        sendCommand(new hudson.remoting.ProxyOutputStream.EOF(ioIds.getAndIncrement(), oid, 0, null));
    }

    private void streamCommand(Object o) throws IOException {
        if (o instanceof hudson.remoting.ProxyOutputStream.Chunk) {
            hudson.remoting.ProxyOutputStream.Chunk c = (hudson.remoting.ProxyOutputStream.Chunk) o;
            java.io.OutputStream os = exports.get(c.oid);
            if (os == null) {
                Events.emit("event", "check_failed", "node", node, "what", "Chunk for unknown or closed stream " + c.oid);
            } else {
                os.write(c.buf);
            }
        } else if (o instanceof hudson.remoting.ProxyOutputStream.Flush) {
            java.io.OutputStream os = exports.get(((hudson.remoting.ProxyOutputStream.Flush) o).oid);
            if (os != null) os.flush();
        } else if (o instanceof hudson.remoting.ProxyOutputStream.EOF) {
            hudson.remoting.ProxyOutputStream.EOF eof = (hudson.remoting.ProxyOutputStream.EOF) o;
            if (eof.error != null) {
                Events.emit("event", "stream_error", "node", node, "oid", eof.oid, "error", eof.error.toString());
            }
            java.io.OutputStream os = exports.remove(eof.oid);
            if (os != null) os.close();
        } else if (o instanceof hudson.remoting.ProxyOutputStream.Unexport) {
            exports.remove(((hudson.remoting.ProxyOutputStream.Unexport) o).oid);
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
        byte[] nested = agentMulti() ? Nested.annotated(callable, LOADER_OID) : Nested.plain(callable);
        RemoteClassLoader.IClassLoader proxy = RemoteInvocationHandler.wrap(RemoteClassLoader.IClassLoader.class,
                LOADER_OID, false, false, false, false);
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

    static String callableName(Object callable) {
        String n = callable.getClass().getName();
        return n;
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
            byte[] raw = agentMulti() ? Nested.annotated(ex, LOADER_OID) : Nested.plain(ex);
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
        if (rpc.getOid() == LOADER_OID && "getName".equals(rpc.getMethodName())) {
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
        if (r.getLastIoId() != 0) notes.add("Response.lastIoId = " + r.getLastIoId() + " although no stream was involved");
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
