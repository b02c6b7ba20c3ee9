package nectr.sim;

import hudson.FilePath;
import hudson.logging.LogRecorder;
import hudson.model.Slave;
import hudson.node_monitors.ArchitectureMonitor;
import hudson.node_monitors.DiskSpaceMonitorDescriptor;
import hudson.node_monitors.ResponseTimeMonitor;
import hudson.node_monitors.SwapSpaceMonitor;
import hudson.node_monitors.TemporarySpaceMonitor;
import hudson.remoting.PingThread;
import hudson.remoting.Request;
import hudson.slaves.ChannelPinger;
import hudson.slaves.SlaveComputer;
import java.nio.charset.Charset;
import java.security.SecureRandom;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.ScheduledFuture;
import java.util.concurrent.TimeUnit;
import java.util.function.Function;
import java.util.logging.Level;
import jenkins.slaves.StandardOutputSwapper;
import jenkins.slaves.restarter.JnlpSlaveRestarterInstaller;
import jenkins.slaves.restarter.SlaveRestarter;
import jenkins.slaves.restarter.UnixSlaveRestarter;
import jenkins.util.SystemProperties;

/** Controller state (nodes, options) and the per-connection session logic (§7.3, §7.4, scenarios). */
final class Controller {
    static final String MIN_VERSION = "3107.v665000b_51092";
    static final int MIN_VERSION_MAJOR = 3107;
    static final long BRINGUP_TIMEOUT_MS = 60_000;
    static final long MONITOR_TIMEOUT_MS = 30_000;
    static final long PING_TIMEOUT_MS = 240_000;
    private static final SecureRandom RANDOM = new SecureRandom();

    static final class Node {
        final String name;
        final String secret;
        volatile SimChannel current;
        /** The channel that finished its bring-up (the node is online while it is current and open). */
        volatile SimChannel online;
        volatile String lastCookie;
        int connections;
        boolean restartDone;
        int step2Failures;

        Node(String name, String secret) {
            this.name = name;
            this.secret = secret;
        }
    }

    static final class Refusal {
        final int status;
        final String message;

        Refusal(int status, String message) {
            this.status = status;
            this.message = message;
        }
    }

    /** Synchronized: in REST mode ({@link Rest}) nodes come and go while agents connect. */
    final Map<String, Node> nodes = java.util.Collections.synchronizedMap(new LinkedHashMap<>());
    /** REST mode (--rest): the fleet's and the demo's Jenkins API; null otherwise. */
    volatile Rest rest;
    /** The simulator's root URL (set by Main once listening). */
    volatile String url;
    String scenario = "online";
    int pingSeconds = 300;
    /** The ping timeout SetUpRemotePing asks the agent to use (Jenkins: 240 s). */
    int agentPingTimeoutSeconds = (int) (PING_TIMEOUT_MS / 1000);
    int monitorSeconds = 3600;
    String remoteFs = "/tmp";
    /** Scenario untar: archive on the simulator's disk, destination directory on the agent. */
    String untarSource;
    String untarDest;
    String untarCompression = "GZIP";
    /** Scenario untar: ask for a greedy RemoteInputStream (the pull form when false or without 0x20). */
    boolean greedy = true;
    /** Scenario bigwrite: MiB written into the agent's WritePipe stream. */
    int writeMib = 64;
    /** Runs of the bigstream copy (--repeat). */
    int repeat = 1;
    /** Length of the soak scenario (--soak-seconds). */
    int soakSeconds = 20;
    /** Delay before each Ack the simulator sends (--ack-delay-ms). */
    int ackDelayMs;
    /** Options of the freestyle and pipeline scenarios. */
    final Builds.Options build = new Builds.Options();
    /** The build of those scenarios runs once per simulator process (not again on a reconnect). */
    private final java.util.concurrent.atomic.AtomicBoolean buildStarted = new java.util.concurrent.atomic.AtomicBoolean();
    static final long UNTAR_ANSWER_TIMEOUT_MS = 120_000;
    static final long CONNECT_TIMEOUT_MS = 30_000;
    static final long INPUT_SETTLE_MS = 2_000;
    final ScheduledExecutorService scheduler = Executors.newScheduledThreadPool(16, r -> {
        Thread t = new Thread(r, "sim-scheduler");
        t.setDaemon(true);
        return t;
    });

    static String newCookie() {
        byte[] b = new byte[32];
        RANDOM.nextBytes(b);
        StringBuilder sb = new StringBuilder();
        for (byte x : b) sb.append(String.format("%02x", x & 0xFF));
        return sb.toString();
    }

    static boolean constantTimeEquals(String a, String b, Charset cs) {
        return java.security.MessageDigest.isEqual(a.getBytes(cs), b.getBytes(cs));
    }

    /**
     * Admission checks shared by both transports. Returns null when the agent may connect. The
     * WebSocket status codes are used by the HTTP side; JNLP4 uses the message.
     */
    synchronized Refusal admit(String name, String secret, String agentCookie, Charset secretCharset) {
        Node n = nodes.get(name);
        if (n == null) return new Refusal(400, "Unknown client name: " + name);
        if (scenario.equals("refuse") || !constantTimeEquals(n.secret, secret, secretCharset)) {
            return new Refusal(403, "Authorization failure");
        }
        SimChannel cur = n.current;
        if (cur != null && cur.isOpen()) {
            if (agentCookie != null && agentCookie.equals(n.lastCookie)) {
                cur.close("we are reconnected from the current peer");
            } else {
                return new Refusal(400, name + " is already connected to this controller. Rejecting this connection.");
            }
        }
        return null;
    }

    /** Called once the transport is up and the agent's capability is known. */
    void start(Node n, SimChannel ch, String agentCookie) {
        ch.ackDelayMs = ackDelayMs;
        boolean reconnect;
        synchronized (this) {
            reconnect = n.connections > 0;
            n.connections++;
            n.current = ch;
        }
        Events.emit("event", "connected", "node", n.name, "transport", ch.transport.name(), "cookie", ch.cookie,
                "capability", "0x" + Long.toHexString(ch.agentCapability));
        if (reconnect) {
            boolean matches = agentCookie != null && agentCookie.equals(n.lastCookie);
            Events.emit("event", "reconnected", "node", n.name, "cookie_matches", matches);
            if (!matches && scenario.equals("restart")) {
                Events.emit("event", "check_failed", "node", n.name, "what",
                        "agent reconnected without the previous cookie (sent " + agentCookie + ")");
            }
        }
        n.lastCookie = ch.cookie;
        Thread t = new Thread(() -> session(n, ch), "session-" + n.name);
        t.setDaemon(true);
        t.start();
    }

    // ------------------------------------------------------------------ bring-up

    private static String expect(Answer a, Function<Object, String> check) {
        if (!a.ok) return a.callable + " failed: " + a.errorText();
        return check.apply(a.value);
    }

    static String checkVersion(Object v) {
        if (!(v instanceof String)) return "SlaveVersion: expected a String, got " + type(v);
        String s = (String) v;
        if (!s.matches("[0-9]+([.\\-_][0-9A-Za-z_\\-]+)*")) return "SlaveVersion: not a valid version: " + s;
        String lead = s.split("[^0-9]", 2)[0];
        try {
            if (Long.parseLong(lead) < MIN_VERSION_MAJOR) {
                return "Rejecting the connection because the Remoting version is older than the minimum required version ("
                        + MIN_VERSION + "): " + s;
            }
        } catch (NumberFormatException e) {
            return "SlaveVersion: leading number too large: " + s;
        }
        return null;
    }

    static String type(Object v) {
        return v == null ? "null" : v.getClass().getName();
    }

    private boolean step(Node n, SimChannel ch, Object callable, Function<Object, String> check, boolean fatal) {
        Answer a = ch.call(callable, BRINGUP_TIMEOUT_MS);
        String problem = expect(a, check);
        if (problem == null) return true;
        Events.emit("event", "check_failed", "node", n.name, "what", problem);
        if (fatal) {
            ch.close("connection failed during bring-up: " + problem);
            return false;
        }
        return ch.isOpen();
    }

    private boolean bringUp(Node n, SimChannel ch) {
        if (!step(n, ch, new SlaveComputer.SlaveVersion(), Controller::checkVersion, true)) return false;
        if (!step(n, ch, new SlaveComputer.CommunicationProtocol(),
                v -> v == null || v instanceof String ? null : "CommunicationProtocol: expected String or null, got " + type(v), true)) return false;
        if (!step(n, ch, new SlaveComputer.DetectOS(),
                v -> Boolean.TRUE.equals(v) ? null : "DetectOS: expected Boolean true, got " + type(v) + " " + v, true)) return false;
        if (!step(n, ch, new SlaveComputer.DetectDefaultCharset(), v -> {
            if (!(v instanceof String)) return "DetectDefaultCharset: expected String, got " + type(v);
            try {
                Charset.forName((String) v);
                return null;
            } catch (Exception e) {
                return "DetectDefaultCharset: Charset.forName rejects " + v + ": " + e;
            }
        }, true)) return false;
        if (!remoteFs.startsWith("/")) {
            // Jenkins asks the agent to resolve a relative remote FS (SlaveComputer$AbsolutePath).
            Answer a = ch.call(new SlaveComputer.AbsolutePath(remoteFs), BRINGUP_TIMEOUT_MS);
            String problem = expect(a, v -> v instanceof String && ((String) v).startsWith("/") ? null
                    : "AbsolutePath: expected an absolute path String, got " + type(v) + " " + Answer.render(v));
            if (problem != null) {
                Events.emit("event", "check_failed", "node", n.name, "what", problem);
                ch.close("connection failed during bring-up: " + problem);
                return false;
            }
            ch.rootPath = (String) a.value;
        }
        if (!step(n, ch, new SlaveComputer.SlaveInitializer(256), Controller::expectNull, true)) return false;
        // preOnline listeners
        if (!step(n, ch, new ChannelPinger.SetUpRemotePing(pingSeconds, agentPingTimeoutSeconds),
                Controller::expectNull, false)) return false;
        if (!step(n, ch, new StandardOutputSwapper.ChannelSwapper(),
                v -> v instanceof Boolean ? null : "ChannelSwapper: expected Boolean, got " + type(v), false)) return false;
        HashMap<String, String> snapshot = new HashMap<>();
        snapshot.put("hudson.consoleTailKB", "150");
        snapshot.put("nectr.sim.property", "copied to agents");
        if (!step(n, ch, new SystemProperties.AgentCopier.CopySystemProperties(snapshot), Controller::expectNull, true)) return false;
        if (!step(n, ch, new LogRecorder.SetLevel("hudson", Level.FINE), Controller::expectNull, true)) return false;
        // onOnline
        ArrayList<SlaveRestarter> restarters = new ArrayList<>();
        restarters.add(new UnixSlaveRestarter());
        restarters.add(new jenkins.slaves.restarter.WinswSlaveRestarter());
        if (!step(n, ch, new JnlpSlaveRestarterInstaller.FindEffectiveRestarters(restarters),
                v -> v == null || v instanceof List ? null : "FindEffectiveRestarters: expected List or null, got " + type(v), false)) return false;
        return ch.isOpen();
    }

    static String expectNull(Object v) {
        return v == null ? null : "expected null, got " + type(v) + " " + Answer.render(v);
    }

    // ------------------------------------------------------------------ session

    private void session(Node n, SimChannel ch) {
        List<ScheduledFuture<?>> tasks = new ArrayList<>();
        ch.onTerminate = () -> {
            synchronized (tasks) {
                for (ScheduledFuture<?> f : tasks) f.cancel(false);
            }
        };
        try {
            if (!bringUp(n, ch)) return;
            n.online = ch;
            Events.emit("event", "online", "node", n.name);
            int[] round = {0};
            synchronized (tasks) {
                if (!ch.isOpen()) return;
                tasks.add(scheduler.scheduleWithFixedDelay(() -> monitorRound(n, ch, ++round[0]), 1000,
                        monitorSeconds * 1000L, TimeUnit.MILLISECONDS));
                tasks.add(scheduler.scheduleWithFixedDelay(() -> ping(n, ch), pingSeconds * 1000L,
                        pingSeconds * 1000L, TimeUnit.MILLISECONDS));
            }
            scenario(n, ch);
        } catch (RuntimeException e) {
            Events.emit("event", "check_failed", "node", n.name, "what", "simulator error: " + e);
        }
    }

    private boolean ping(Node n, SimChannel ch) {
        if (!ch.isOpen()) return false;
        Answer a = ch.call(new PingThread.Ping(), PING_TIMEOUT_MS);
        if (a.ok && a.value == null) {
            Events.emit("event", "ping_ok", "node", n.name, "id", a.id);
            return true;
        }
        if (!ch.isOpen()) return false;
        Events.emit("event", "check_failed", "node", n.name, "what",
                "PingThread$Ping: " + (a.ok ? "expected null, got " + type(a.value) : a.errorText()));
        ch.close("Ping failed; the agent is considered dead");
        return false;
    }

    // ------------------------------------------------------------------ monitors

    private void monitorRound(Node n, SimChannel ch, int round) {
        if (!ch.isOpen()) return;
        long now = System.currentTimeMillis();
        FilePath root = new FilePath(ch.rootPath != null ? ch.rootPath : remoteFs, false);
        long[] past5 = {1, 2, 3};
        List<SimChannel.PendingCall> calls = new ArrayList<>();
        List<Function<Object, String>> checks = new ArrayList<>();
        calls.add(ch.callAsync(new ArchitectureMonitor.GetArchTask(), false));
        checks.add(v -> v instanceof String && ((String) v).matches(".+ \\(.+\\)") ? null
                : "GetArchTask: expected a String like \"Linux (amd64)\", got " + type(v) + " " + Answer.render(v));
        calls.add(ch.callAsync(new Slave.GetClockDifference2(now), false));
        checks.add(v -> {
            if (!(v instanceof Slave.GetClockDifference3)) return "GetClockDifference2: expected Slave$GetClockDifference3, got " + type(v);
            Slave.GetClockDifference3 d = (Slave.GetClockDifference3) v;
            if (d.getStartTime() != now) return "GetClockDifference3.startTime " + d.getStartTime() + " != sent " + now;
            long diff = Math.abs(d.getRemoteTime() - System.currentTimeMillis());
            if (diff > 10_000) return "GetClockDifference3.remoteTime is " + diff + " ms away from now";
            return null;
        });
        calls.add(ch.callAsync(root.asCallableWith(new DiskSpaceMonitorDescriptor.GetUsableSpace()), false));
        checks.add(v -> checkDiskSpace("GetUsableSpace", v));
        calls.add(ch.callAsync(root.asCallableWith(new TemporarySpaceMonitor.GetTempSpace()), false));
        checks.add(v -> checkDiskSpace("GetTempSpace", v));
        calls.add(ch.callAsync(new SwapSpaceMonitor.MonitorTask(), false));
        checks.add(v -> {
            if (!(v instanceof SwapSpaceMonitor.MemoryUsage2)) return "MonitorTask: expected SwapSpaceMonitor$MemoryUsage2, got " + type(v);
            return ((SwapSpaceMonitor.MemoryUsage2) v).totalPhysicalMemory > 0 ? null : "MemoryUsage2.totalPhysicalMemory <= 0";
        });
        int step2Index = calls.size();
        calls.add(ch.callAsync(new ResponseTimeMonitor.Step2(new ResponseTimeMonitor.Data(past5), now), false));
        checks.add(v -> {
            if (!(v instanceof ResponseTimeMonitor.Step3)) return "Step2: expected ResponseTimeMonitor$Step3, got " + type(v);
            ResponseTimeMonitor.Step3 s = (ResponseTimeMonitor.Step3) v;
            if (s.getStart() != now) return "Step3.start " + s.getStart() + " != sent " + now;
            if (s.getCur() == null || !Arrays.equals(s.getCur().getPast5(), past5)) return "Step3.cur is not the Data that was sent: " + s.getCur();
            return null;
        });
        calls.add(ch.callAsync(new SlaveComputer.SlaveLogFetcher(), false));
        checks.add(v -> {
            if (!(v instanceof List)) return "SlaveLogFetcher: expected a List, got " + type(v);
            int records = 0;
            for (Object o : (List<?>) v) {
                if (!(o instanceof java.util.logging.LogRecord)) return "SlaveLogFetcher: element is " + type(o) + ", not a LogRecord";
                java.util.logging.LogRecord r = (java.util.logging.LogRecord) o;
                if (r.getLevel() == null || r.getMessage() == null) return "SlaveLogFetcher: LogRecord without level or message";
                records++;
            }
            Events.emit("event", "agent_log", "node", n.name, "records", records);
            return null;
        });
        boolean allOk = true;
        for (int i = 0; i < calls.size(); i++) {
            Answer a = ch.await(calls.get(i), MONITOR_TIMEOUT_MS, false);
            String problem = expect(a, checks.get(i));
            if (problem != null) {
                allOk = false;
                if (ch.isOpen()) Events.emit("event", "check_failed", "node", n.name, "what", problem);
            }
            if (i == step2Index) {
                if (problem != null) {
                    if (++n.step2Failures >= 5 && ch.isOpen()) {
                        ch.close("ResponseTimeMonitor: 5 consecutive failures");
                    }
                } else {
                    n.step2Failures = 0;
                }
            }
        }
        if (allOk && ch.isOpen()) Events.emit("event", "monitors_ok", "node", n.name, "round", round);
    }

    static String checkDiskSpace(String what, Object v) {
        if (!(v instanceof DiskSpaceMonitorDescriptor.DiskSpace)) {
            return what + ": expected DiskSpaceMonitorDescriptor$DiskSpace, got " + type(v);
        }
        DiskSpaceMonitorDescriptor.DiskSpace d = (DiskSpaceMonitorDescriptor.DiskSpace) v;
        if (d.getSize() <= 0) return what + ": size <= 0: " + d;
        if (d.getTotalSize() < d.getSize()) return what + ": totalSize < size: " + d;
        if (d.getPath() == null || d.getPath().isEmpty()) return what + ": empty path: " + d;
        return null;
    }

    // ------------------------------------------------------------------ scenarios

    private void scenario(Node n, SimChannel ch) {
        switch (scenario) {
            case "unknown": {
                Answer a = ch.call(new UnknownCallable("you cannot run me ".repeat(1200), 42), BRINGUP_TIMEOUT_MS);
                String cls = UnknownCallable.class.getName();
                if (a.ok) {
                    Events.emit("event", "check_failed", "node", n.name, "what", "unknown callable answered normally: " + Answer.render(a.value));
                } else if (a.error == null) {
                    Events.emit("event", "check_failed", "node", n.name, "what", "unknown callable: " + a.errorText());
                } else if (a.error.getMessage() == null || !a.error.getMessage().contains(cls)) {
                    Events.emit("event", "check_failed", "node", n.name, "what", "unknown callable: exception message does not mention " + cls + ": " + a.errorText());
                } else {
                    Events.emit("event", "unknown_ok", "node", n.name);
                }
                if (ping(n, ch)) Events.emit("event", "still_up", "node", n.name);
                break;
            }
            case "cancel": {
                SimChannel.PendingCall pc = ch.callAsync(new LogRecorder.SetLevel("hudson.model", Level.FINEST), false);
                try {
                    ch.sendCommand(new Request.Cancel(pc.id));
                    Events.emit("event", "cancel_sent", "node", n.name, "id", pc.id);
                } catch (java.io.IOException e) {
                    Events.emit("event", "check_failed", "node", n.name, "what", "sending Request$Cancel: " + e);
                }
                // The agent may answer the cancelled request (result or exception) or drop it.
                Answer a = ch.await(pc, 10_000, false);
                if (a.timedOut) Events.emit("event", "note", "node", n.name, "what", "cancelled request " + pc.id + " got no answer (allowed)");
                if (ping(n, ch)) Events.emit("event", "cancel_ok", "node", n.name);
                break;
            }
            case "concurrent": {
                int count = 1000;
                List<SimChannel.PendingCall> calls = new ArrayList<>();
                for (int i = 0; i < count && ch.isOpen(); i++) calls.add(ch.callAsync(new SlaveComputer.SlaveVersion(), true));
                int good = 0;
                int reported = 0;
                long deadline = System.currentTimeMillis() + 120_000;
                for (SimChannel.PendingCall pc : calls) {
                    Answer a = ch.await(pc, Math.max(1, deadline - System.currentTimeMillis()), true);
                    String problem = expect(a, Controller::checkVersion);
                    if (problem == null) good++;
                    else if (reported++ < 10) Events.emit("event", "check_failed", "node", n.name, "id", pc.id, "what", "concurrent: " + problem);
                }
                if (good == count) Events.emit("event", "concurrent_ok", "node", n.name, "count", good);
                else Events.emit("event", "check_failed", "node", n.name, "what", "concurrent: only " + good + " of " + count + " answers were correct");
                break;
            }
            case "restart": {
                synchronized (this) {
                    if (n.restartDone) return;
                    n.restartDone = true;
                }
                sleep(500);
                Events.emit("event", "restart", "node", n.name);
                ch.terminate("scenario restart: connection dropped by the controller", true);
                break;
            }
            case "garbage": {
                byte[] junk = new byte[64];
                RANDOM.nextBytes(junk);
                junk[0] = 0x13; // never a stream header
                try {
                    ch.sendRaw(junk);
                    Events.emit("event", "garbage_sent", "node", n.name, "bytes", junk.length);
                } catch (java.io.IOException e) {
                    Events.emit("event", "note", "node", n.name, "what", "garbage could not be sent: " + e);
                }
                sleep(1000);
                if (ch.isOpen() && ping(n, ch)) Events.emit("event", "still_up", "node", n.name);
                break;
            }
            case "streams": {
                // Both directions with real FilePath callables: WritePipe (the controller writes into
                // a stream the agent exported), then CopyTo (the agent writes into ours and closes it).
                FilePath fp = new FilePath(remoteFs + "/nectr-stream-test.bin", false);
                Answer a = ch.call(new FilePath.FileCallableWrapper<>(new FilePath.WritePipe(), fp), BRINGUP_TIMEOUT_MS);
                if (!a.ok || !(a.value instanceof hudson.remoting.RemoteOutputStream)) {
                    Events.emit("event", "check_failed", "node", n.name, "what", "WritePipe: expected a RemoteOutputStream, got " + (a.ok ? type(a.value) : a.errorText()));
                    return;
                }
                int agentOid = ((hudson.remoting.RemoteOutputStream) a.value).getOid();
                byte[] data = new byte[4 << 20];
                new java.util.Random(42).nextBytes(data);
                try {
                    for (int off = 0; off < data.length; off += 65536) ch.writeRemote(agentOid, data, off, Math.min(65536, data.length - off));
                    ch.closeRemote(agentOid);
                } catch (java.io.IOException e) {
                    Events.emit("event", "check_failed", "node", n.name, "what", "writing to the agent's stream: " + e);
                    return;
                }
                java.io.ByteArrayOutputStream sink = new java.io.ByteArrayOutputStream();
                int sinkOid = ch.export(sink);
                Answer b = ch.call(new FilePath.FileCallableWrapper<>(new FilePath.CopyTo(new hudson.remoting.RemoteOutputStream(sinkOid)), fp), BRINGUP_TIMEOUT_MS);
                if (!b.ok) {
                    Events.emit("event", "check_failed", "node", n.name, "what", "CopyTo: " + b.errorText());
                } else if (!Arrays.equals(sink.toByteArray(), data)) {
                    Events.emit("event", "check_failed", "node", n.name, "what", "CopyTo returned " + sink.size() + " bytes that differ from the " + data.length + " written");
                } else if (ch.exports.containsKey(sinkOid)) {
                    Events.emit("event", "check_failed", "node", n.name, "what", "CopyTo did not close (EOF) its stream");
                } else {
                    Events.emit("event", "streams_ok", "node", n.name, "bytes", data.length,
                            "acks_sent", ch.acksSent.get(), "acks_received", ch.acksReceived.get());
                }
                break;
            }
            case "bigstream": {
                // CopyTo of a large file the test prepared (remote-fs/big.bin), --repeat times
                // (a real controller is a warm JVM: benchmarks drop the first runs): bytes and
                // throughput of each.
                FilePath fp = new FilePath(remoteFs + "/big.bin", false);
                for (int run = 1; run <= repeat && ch.isOpen(); run++) {
                    long[] count = {0};
                    java.io.OutputStream sink = new java.io.OutputStream() {
                        @Override public void write(int b) { count[0]++; }
                        @Override public void write(byte[] b, int off, int len) { count[0] += len; }
                    };
                    int sinkOid = ch.export(sink);
                    long t0 = System.nanoTime();
                    Answer b = ch.call(new FilePath.FileCallableWrapper<>(new FilePath.CopyTo(new hudson.remoting.RemoteOutputStream(sinkOid)), fp), 600_000);
                    double secs = (System.nanoTime() - t0) / 1e9;
                    if (!b.ok) {
                        Events.emit("event", "check_failed", "node", n.name, "what", "CopyTo: " + b.errorText());
                        break;
                    }
                    Events.emit("event", "copied", "node", n.name, "run", run, "bytes", count[0],
                            "mb_per_s", Math.round(count[0] / 1e6 / secs),
                            "acks_sent", ch.acksSent.get(), "acks_received", ch.acksReceived.get());
                }
                break;
            }
            case "rpc": {
                // getRemoteProperty: an RPC on the agent's channel export (oid 1), wrapped in a
                // UserRequest; then a call on an export the agent does not have.
                Answer a = ch.call(new hudson.remoting.RemoteInvocationHandler.RPCRequest(1, "hudson.remoting.IChannel",
                        "getProperty", new String[] {"java.lang.Object"}, new Object[] {"foo"}), BRINGUP_TIMEOUT_MS);
                if (!a.ok || a.value != null) {
                    Events.emit("event", "check_failed", "node", n.name, "what", "getProperty on oid 1: " + (a.ok ? type(a.value) : a.errorText()));
                    return;
                }
                Answer b = ch.call(new hudson.remoting.RemoteInvocationHandler.UserRPCRequest(99, "x.Y", "doIt",
                        new String[0], new Object[0]), BRINGUP_TIMEOUT_MS);
                if (b.ok || b.error == null || b.error.getMessage() == null || !b.error.getMessage().contains("99")) {
                    Events.emit("event", "check_failed", "node", n.name, "what", "RPC on a missing export: " + (b.ok ? "answered " + type(b.value) : b.errorText()));
                    return;
                }
                Events.emit("event", "rpc_ok", "node", n.name);
                break;
            }
            case "read": {
                // readFile: FilePath$Read through a remote-to-local Pipe, sent with actAsync.
                for (String name : new String[] {"read-me.txt", "missing.txt"}) {
                    java.io.ByteArrayOutputStream buf = new java.io.ByteArrayOutputStream();
                    boolean[] closed = {false};
                    java.io.OutputStream sink = new java.io.OutputStream() {
                        @Override public void write(int b) { buf.write(b); }
                        @Override public void write(byte[] b, int off, int len) { buf.write(b, off, len); }
                        @Override public void close() { closed[0] = true; }
                    };
                    int oid = ch.export(sink);
                    ch.callAsync(new FilePath.FileCallableWrapper<>(new FilePath.Read(new hudson.remoting.Pipe(oid)),
                            new FilePath(remoteFs + "/" + name, false)), false);
                    for (int i = 0; i < 100 && !closed[0]; i++) sleep(100);
                    if (!closed[0]) {
                        Events.emit("event", "check_failed", "node", n.name, "what", "Read of " + name + ": the pipe was never closed");
                        return;
                    }
                    Events.emit("event", "read_done", "node", n.name, "file", name,
                            "text", buf.toString(java.nio.charset.StandardCharsets.UTF_8));
                }
                break;
            }
            case "cancel-stream": {
                // Cancel a long CopyTo: the agent must stop streaming and still close (EOF) the sink.
                FilePath fp = new FilePath(remoteFs + "/big.bin", false);
                long[] count = {0};
                boolean[] closed = {false};
                java.io.OutputStream sink = new java.io.OutputStream() {
                    @Override public void write(int b) { count[0]++; }
                    @Override public void write(byte[] b, int off, int len) { count[0] += len; }
                    @Override public void close() { closed[0] = true; }
                };
                int sinkOid = ch.export(sink);
                SimChannel.PendingCall pc = ch.callAsync(new FilePath.FileCallableWrapper<>(
                        new FilePath.CopyTo(new hudson.remoting.RemoteOutputStream(sinkOid)), fp), false);
                sleep(300);
                try {
                    ch.sendCommand(new Request.Cancel(pc.id));
                } catch (java.io.IOException e) {
                    Events.emit("event", "check_failed", "node", n.name, "what", "sending Request$Cancel: " + e);
                    return;
                }
                ch.await(pc, 10_000, false);
                sleep(1000);
                long settled = count[0];
                sleep(1000);
                if (count[0] != settled) {
                    Events.emit("event", "check_failed", "node", n.name, "what", "the agent kept streaming after Request$Cancel");
                } else if (!closed[0]) {
                    Events.emit("event", "check_failed", "node", n.name, "what", "the agent did not close (EOF) the stream after Request$Cancel");
                } else if (count[0] >= (1L << 30)) {
                    Events.emit("event", "note", "node", n.name, "what", "the copy finished before the cancel arrived");
                } else {
                    Events.emit("event", "cancel_stream_ok", "node", n.name, "bytes", count[0]);
                }
                break;
            }
            case "bench": {
                // Round trips of sequential PingThread$Ping calls, timed here (send to answer).
                int warmup = 200;
                int count = 2000;
                long[] micros = new long[count];
                for (int i = 0; i < warmup + count && ch.isOpen(); i++) {
                    long t0 = System.nanoTime();
                    Answer a = ch.call(new PingThread.Ping(), PING_TIMEOUT_MS);
                    long us = (System.nanoTime() - t0) / 1000;
                    if (!a.ok) {
                        Events.emit("event", "check_failed", "node", n.name, "what", "bench ping: " + a.errorText());
                        return;
                    }
                    if (i >= warmup) micros[i - warmup] = us;
                }
                java.util.Arrays.sort(micros);
                Events.emit("event", "rtt", "node", n.name, "count", count, "p50_us", micros[count / 2],
                        "p99_us", micros[count * 99 / 100]);
                break;
            }
            case "untar":
                untar(n, ch);
                break;
            case "soak":
                soak(n, ch);
                break;
            case "bigwrite":
                bigwrite(n, ch);
                break;
            case "freestyle":
            case "pipeline": {
                if (!buildStarted.compareAndSet(false, true)) break;
                Builds b = new Builds(n, ch, build, ch.rootPath != null ? ch.rootPath : remoteFs);
                if (scenario.equals("freestyle")) b.freestyle();
                else b.pipeline();
                break;
            }
            default:
                if (HelperScenarios.SCENARIOS.contains(scenario)) HelperScenarios.run(n, ch, scenario);
                break;
        }
    }

    /**
     * Scenario soak: for --soak-seconds, rounds of 50 concurrent pings; every 5th round a
     * 256 KiB WritePipe + CopyTo round trip (bytes compared), every 10th a monitor round.
     * Progress every 50 rounds ({"event":"soak_progress","rounds":R,"calls":C}), then
     * {"event":"soak_done","rounds":R,"calls":C,"copies":K}. The test samples the agent's
     * memory between the two to catch leaks.
     */
    private void soak(Node n, SimChannel ch) {
        long deadline = System.nanoTime() + soakSeconds * 1_000_000_000L;
        byte[] data = new byte[256 << 10];
        new java.util.Random(7).nextBytes(data);
        FilePath fp = new FilePath(remoteFs + "/nectr-soak.bin", false);
        int rounds = 0;
        long calls = 0;
        int copies = 0;
        while (System.nanoTime() < deadline && ch.isOpen()) {
            rounds++;
            List<SimChannel.PendingCall> pcs = new ArrayList<>();
            for (int i = 0; i < 50; i++) pcs.add(ch.callAsync(new PingThread.Ping(), true));
            for (SimChannel.PendingCall pc : pcs) {
                Answer a = ch.await(pc, PING_TIMEOUT_MS, true);
                if (!a.ok || a.value != null) {
                    Events.emit("event", "check_failed", "node", n.name, "what", "soak ping: " + (a.ok ? "expected null" : a.errorText()));
                    return;
                }
                calls++;
            }
            if (rounds % 5 == 0) {
                Answer w = ch.call(new FilePath.FileCallableWrapper<>(new FilePath.WritePipe(), fp), BRINGUP_TIMEOUT_MS);
                if (!w.ok || !(w.value instanceof hudson.remoting.RemoteOutputStream)) {
                    Events.emit("event", "check_failed", "node", n.name, "what", "soak WritePipe: " + (w.ok ? type(w.value) : w.errorText()));
                    return;
                }
                int agentOid = ((hudson.remoting.RemoteOutputStream) w.value).getOid();
                java.io.ByteArrayOutputStream sink = new java.io.ByteArrayOutputStream();
                try {
                    ch.writeRemote(agentOid, data, 0, data.length);
                    ch.closeRemote(agentOid);
                } catch (java.io.IOException e) {
                    Events.emit("event", "check_failed", "node", n.name, "what", "soak write: " + e);
                    return;
                }
                int sinkOid = ch.export(sink);
                Answer c = ch.call(new FilePath.FileCallableWrapper<>(new FilePath.CopyTo(new hudson.remoting.RemoteOutputStream(sinkOid)), fp), BRINGUP_TIMEOUT_MS);
                if (!c.ok || !Arrays.equals(sink.toByteArray(), data)) {
                    Events.emit("event", "check_failed", "node", n.name, "what", "soak CopyTo: " + (c.ok ? sink.size() + " bytes that differ" : c.errorText()));
                    return;
                }
                calls += 2;
                copies++;
            }
            if (rounds % 10 == 0) monitorRound(n, ch, rounds);
            if (rounds % 50 == 0) Events.emit("event", "soak_progress", "node", n.name, "rounds", rounds, "calls", calls);
        }
        Events.emit("event", "soak_done", "node", n.name, "rounds", rounds, "calls", calls, "copies", copies);
    }

    /**
     * Scenario untar (unstash): FilePath$UntarRemote of --untar-source into --untar-dest, its
     * bytes sent through a RemoteInputStream (greedy pipe, or pulls), then untar_done.
     */
    private void untar(Node n, SimChannel ch) {
        java.nio.file.Path src = java.nio.file.Path.of(untarSource);
        java.io.InputStream in;
        try {
            in = java.nio.file.Files.newInputStream(src);
        } catch (java.io.IOException e) {
            Events.emit("event", "check_failed", "node", n.name, "what", "untar: cannot open the source " + src + ": " + e);
            return;
        }
        hudson.remoting.RemoteInputStream rin = new hudson.remoting.RemoteInputStream(ch, in, greedy);
        SimChannel.InputExport ix = ch.inputExport(rin.getOid());
        String mode = rin.isGreedyForm() ? "greedy" : "pull";
        FilePath.UntarRemote untar = new FilePath.UntarRemote(src.getFileName().toString(),
                FilePath.TarCompression.valueOf(untarCompression), rin);
        long sent = System.nanoTime();
        SimChannel.PendingCall pc = ch.callAsync(new FilePath.FileCallableWrapper<>(untar, new FilePath(untarDest, false)), false);
        if (rin.isGreedyForm()) {
            try {
                ix.connected.get(CONNECT_TIMEOUT_MS, TimeUnit.MILLISECONDS);
            } catch (java.util.concurrent.TimeoutException e) {
                Events.emit("event", "check_failed", "node", n.name, "what", "untar: no Pipe$ConnectCommand from the agent within "
                        + CONNECT_TIMEOUT_MS / 1000 + " s for the greedy RemoteInputStream (pipe " + rin.getOid() + ")");
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                return;
            } catch (java.util.concurrent.ExecutionException e) {
                // channel closed: the answer below reports it
            }
        }
        long left = UNTAR_ANSWER_TIMEOUT_MS - (System.nanoTime() - sent) / 1_000_000;
        Answer a = ch.await(pc, Math.max(1, left), false);
        try {
            ix.finished.get(INPUT_SETTLE_MS, TimeUnit.MILLISECONDS);
        } catch (Exception e) {
            // not finished within 2 s: reported as input_closed false
        }
        boolean inputClosed = ix.finished.isDone();
        ch.releaseInput(ix.oid); // remoting auto-unexports the stream when the call returns
        if (a.ok && a.value != null) {
            Events.emit("event", "check_failed", "node", n.name, "what", "UntarRemote: expected null, got " + type(a.value) + " " + Answer.render(a.value));
        }
        Events.emit("event", "untar_done", "node", n.name, "ok", a.ok, "error", a.ok ? null : a.errorText(), "mode", mode,
                "bytes_sent", ix.bytes.get(), "pulls", ch.pulls.get(), "acks_received", ch.acksReceived.get(),
                "input_closed", inputClosed);
    }

    /**
     * Scenario bigwrite: FilePath$WritePipe on remote-fs/bigwrite.bin, --write-mib MiB written
     * into the returned stream in 64 KiB writes (byte at offset i = (i % 251) ^ (i >>> 20)), EOF,
     * then Channel$IOSyncer; bigwrite_done.
     */
    private void bigwrite(Node n, SimChannel ch) {
        String root = ch.rootPath != null ? ch.rootPath : remoteFs;
        FilePath fp = new FilePath(root + "/bigwrite.bin", false);
        Answer a = ch.call(new FilePath.FileCallableWrapper<>(new FilePath.WritePipe(), fp), BRINGUP_TIMEOUT_MS);
        if (!a.ok || !(a.value instanceof hudson.remoting.RemoteOutputStream)) {
            Events.emit("event", "check_failed", "node", n.name, "what", "WritePipe: expected a RemoteOutputStream, got " + (a.ok ? type(a.value) : a.errorText()));
            return;
        }
        int agentOid = ((hudson.remoting.RemoteOutputStream) a.value).getOid();
        long total = (long) writeMib << 20;
        byte[] buf = new byte[65536];
        long t0 = System.nanoTime();
        try {
            for (long off = 0; off < total; off += buf.length) {
                int len = (int) Math.min(buf.length, total - off);
                fillPattern(buf, off, len);
                ch.writeRemote(agentOid, buf, 0, len);
            }
            ch.closeRemote(agentOid);
        } catch (java.io.IOException e) {
            Events.emit("event", "check_failed", "node", n.name, "what", "writing to the agent's stream: " + e);
            return;
        }
        Answer s = ch.call(new hudson.remoting.Channel.IOSyncer(), 300_000);
        double secs = (System.nanoTime() - t0) / 1e9;
        if (!s.ok || s.value != null) {
            Events.emit("event", "check_failed", "node", n.name, "what", "Channel$IOSyncer: " + (s.ok ? "expected null, got " + type(s.value) : s.errorText()));
            return;
        }
        Events.emit("event", "bigwrite_done", "node", n.name, "bytes", total, "mb_per_s", Math.round(total / 1e6 / secs),
                "acks_received", ch.acksReceived.get());
    }

    /** buf[j] = byte at offset off + j of the bigwrite pattern: (byte) ((i % 251) ^ (i >>> 20)). */
    static void fillPattern(byte[] buf, long off, int len) {
        int r = (int) (off % 251);
        for (int j = 0; j < len; j++) {
            long i = off + j;
            buf[j] = (byte) (r ^ (i >>> 20));
            if (++r == 251) r = 0;
        }
    }

    static void sleep(long ms) {
        try {
            Thread.sleep(ms);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }
}
