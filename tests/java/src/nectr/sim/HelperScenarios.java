package nectr.sim;

import hudson.remoting.RemoteClassLoader;
import hudson.remoting.RemoteInvocationHandler;
import hudson.remoting.RemoteOutputStream;
import hudson.remoting.ResourceImageDirect;
import hudson.slaves.SlaveComputer;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.io.Serializable;
import java.lang.reflect.Proxy;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.ZoneOffset;
import java.time.format.DateTimeFormatter;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * The JVM helper scenarios (issue 10): plugin callables the agent cannot run natively, which
 * nectr-agent hands to the controller's own agent.jar running behind it. For them the
 * simulator
 * <ul>
 * <li>serves {@code --agent-jar FILE} at {@code /jnlpJars/agent.jar} ({@code Last-Modified} from
 *     the file's time, so a test can present an older or newer jar);</li>
 * <li>plays the controller's class loader (export oid 2) for remote class loading: the
 *     {@code IClassLoader} RPCs ({@code fetch3}, {@code fetch2}, {@code fetch},
 *     {@code getResource2}, {@code getResources2}, {@code getResource}, {@code getResources})
 *     are answered with the class files under {@code --plugin-classes DIR} (compiled against the
 *     real remoting jar, and also on the simulator's class path so it can write instances);</li>
 * <li>accepts the class loader the agent's JVM exports for its own classes ({@code -2} tags):
 *     a Java agent does that.</li>
 * </ul>
 * Scenarios: {@code helper-calls} (a value, an exported object and its three methods, one of
 * which throws an IOException, an 8 MiB stream into a simulator stream), {@code helper-mixed}
 * (500 native and 500 delegated calls at once, every answer checked against its request),
 * {@code helper-kill} (a call the test kills the helper under; then a call on a new helper),
 * {@code helper-idle} (an exported object, the helper's idle stop signalled by the test with
 * {@code --go-file}, a call on the stale object, then a call on a new helper),
 * {@code helper-off} (the agent runs with --jvm off), {@code helper-jar} (one call) and
 * {@code helper-bench} (timings for scripts/bench-agent).
 */
final class HelperScenarios {
    static final Set<String> SCENARIOS = Set.of("helper-calls", "helper-mixed", "helper-kill", "helper-idle",
            "helper-off", "helper-jar", "helper-bench");
    static final long CALL_TIMEOUT_MS = 180_000;

    /** --agent-jar, --plugin-classes, --go-file. */
    static volatile Path agentJar;
    static volatile Path pluginClasses;
    static volatile Path goFile;

    private HelperScenarios() {
    }

    // ------------------------------------------------------------------ /jnlpJars/agent.jar

    /** Answers GET/HEAD /jnlpJars/agent.jar; false for any other path or without --agent-jar. */
    static boolean serve(String method, String path, OutputStream out, boolean close) throws IOException {
        Path jar = agentJar;
        if (jar == null || !path.equals("/jnlpJars/agent.jar")) return false;
        byte[] body = Files.readAllBytes(jar);
        String modified = DateTimeFormatter.RFC_1123_DATE_TIME
                .format(Files.getLastModifiedTime(jar).toInstant().atZone(ZoneOffset.UTC));
        StringBuilder sb = new StringBuilder("HTTP/1.1 200 OK\r\n");
        sb.append("Content-Type: application/java-archive\r\n");
        sb.append("Last-Modified: ").append(modified).append("\r\n");
        sb.append("Content-Length: ").append(body.length).append("\r\n");
        if (close) sb.append("Connection: close\r\n");
        sb.append("\r\n");
        out.write(sb.toString().getBytes(java.nio.charset.StandardCharsets.ISO_8859_1));
        if (!method.equals("HEAD")) out.write(body);
        out.flush();
        Events.emit("event", "agent_jar_served", "bytes", body.length, "last_modified", modified);
        return true;
    }

    // ------------------------------------------------------------------ remote class loading

    /** True for the IClassLoader methods answered from --plugin-classes. */
    static boolean classLoading(String method) {
        return pluginClasses != null && Set.of("fetch", "fetch2", "fetch3", "getResource", "getResources",
                "getResource2", "getResources2").contains(method);
    }

    private static byte[] classFile(String name) {
        Path dir = pluginClasses;
        if (dir == null) return null;
        Path p = dir.resolve(name.replace('.', '/') + ".class");
        try {
            return Files.isRegularFile(p) ? Files.readAllBytes(p) : null;
        } catch (IOException e) {
            return null;
        }
    }

    /**
     * The value of an IClassLoader RPC, as remoting's ClassLoaderProxy computes it for classes
     * of one loader (export oid {@code loader}); throws what the RPC throws.
     */
    static Serializable answerClassLoading(int loader, String method, Object[] args) throws Exception {
        String name = args != null && args.length > 0 ? String.valueOf(args[0]) : "";
        Events.emit("event", "class_loading", "method", method, "name", name);
        boolean resource = method.startsWith("getResource");
        byte[] image = resource
                ? (name.endsWith(".class") ? classFile(name.substring(0, name.length() - 6).replace('/', '.')) : null)
                : classFile(name);
        switch (method) {
            case "fetch":
                if (image == null) throw notFound(name);
                return image;
            case "fetch2":
                if (image == null) throw notFound(name);
                return new RemoteClassLoader.ClassFile(loader, image);
            case "fetch3": {
                if (image == null) throw notFound(name);
                HashMap<String, RemoteClassLoader.ClassFile2> all = new HashMap<>();
                all.put(name, new RemoteClassLoader.ClassFile2(loader, new ResourceImageDirect(image), null));
                return all;
            }
            case "getResource":
                return image;
            case "getResources":
                return image == null ? new byte[0][] : new byte[][] {image};
            case "getResource2":
                return image == null ? null : new RemoteClassLoader.ResourceFile(new ResourceImageDirect(image));
            case "getResources2":
                return image == null ? new RemoteClassLoader.ResourceFile[0]
                        : new RemoteClassLoader.ResourceFile[] {new RemoteClassLoader.ResourceFile(new ResourceImageDirect(image))};
            default:
                throw new IllegalStateException("not a class-loading method: " + method);
        }
    }

    private static ClassNotFoundException notFound(String name) {
        ClassNotFoundException e = new ClassNotFoundException(name + " (not under --plugin-classes)");
        e.setStackTrace(new StackTraceElement[0]);
        return e;
    }

    // ------------------------------------------------------------------ scenarios

    /** An instance of plugin class {@code name} (on our class path too) built with {@code args}. */
    private static Object plugin(String name, Object... args) {
        try {
            Class<?> c = Class.forName("nectr.plugin." + name);
            for (java.lang.reflect.Constructor<?> k : c.getConstructors()) {
                if (k.getParameterCount() == args.length) return k.newInstance(args);
            }
            throw new IllegalStateException("no constructor of " + c.getName() + " takes " + args.length + " arguments");
        } catch (ReflectiveOperationException e) {
            throw new IllegalStateException("the plugin classes must be on the simulator's class path: " + e, e);
        }
    }

    private static void fail(Controller.Node n, String what) {
        Events.emit("event", "check_failed", "node", n.name, "what", what);
    }

    /** Calls {@code method} on the agent's exported object {@code oid}, as a user proxy does. */
    private static Answer rpc(SimChannel ch, int oid, String method, String[] types, Object[] args) {
        return ch.call(new RemoteInvocationHandler.UserRPCRequest(oid, "nectr.plugin.Greeter", method, types, args),
                CALL_TIMEOUT_MS);
    }

    static void run(Controller.Node n, SimChannel ch, String scenario) {
        Nested.acceptAgentLoaders = true;
        switch (scenario) {
            case "helper-calls":
                calls(n, ch);
                break;
            case "helper-mixed":
                mixed(n, ch);
                break;
            case "helper-kill":
                kill(n, ch);
                break;
            case "helper-idle":
                idle(n, ch);
                break;
            case "helper-off": {
                Answer a = ch.call(plugin("Value", 1), CALL_TIMEOUT_MS);
                String msg = a.error == null ? null : a.error.getMessage();
                if (a.ok || msg == null || !msg.contains("nectr.plugin.Value") || !msg.contains("--jvm")) {
                    fail(n, "helper-off: expected an exception naming nectr.plugin.Value and --jvm, got "
                            + (a.ok ? Answer.render(a.value) : a.errorText()));
                } else {
                    Events.emit("event", "helper_off_ok", "node", n.name, "message", msg);
                }
                break;
            }
            case "helper-bench":
                bench(n, ch);
                break;
            case "helper-jar": {
                Answer a = ch.call(plugin("Value", 5), CALL_TIMEOUT_MS);
                if (a.ok && "value-10".equals(a.value)) Events.emit("event", "helper_value_ok", "node", n.name);
                else fail(n, "helper-jar: Value(5) answered " + (a.ok ? Answer.render(a.value) : a.errorText()));
                break;
            }
            default:
                break;
        }
    }

    /** Microseconds of one call, or -1 after a check_failed. */
    private static long timed(Controller.Node n, SimChannel ch, Object callable, Object expect) {
        long t0 = System.nanoTime();
        Answer a = ch.await(ch.callAsync(callable, true), CALL_TIMEOUT_MS, true);
        long us = (System.nanoTime() - t0) / 1000;
        if (!a.ok || (expect != null && !expect.equals(a.value))) {
            fail(n, "bench: " + a.callable + " answered " + (a.ok ? Answer.render(a.value) : a.errorText()));
            return -1;
        }
        return us;
    }

    /**
     * For scripts/bench-agent: the first delegated call (the helper's cold start), then 1000
     * sequential delegated calls and 1000 native ones (PingThread$Ping) after 200 warm-up calls
     * each: {"event":"helper_bench","first_ms":F,"delegated_p50_us":…,"delegated_p99_us":…,
     * "native_p50_us":…,"native_p99_us":…}.
     */
    private static void bench(Controller.Node n, SimChannel ch) {
        long first = timed(n, ch, plugin("Value", 1), "value-2");
        if (first < 0) return;
        int warmup = 200;
        int count = 1000;
        long[] delegated = new long[count];
        long[] nat = new long[count];
        for (int i = 0; i < warmup + count; i++) {
            long us = timed(n, ch, plugin("Value", i), "value-" + (2 * i));
            if (us < 0) return;
            if (i >= warmup) delegated[i - warmup] = us;
        }
        for (int i = 0; i < warmup + count; i++) {
            long us = timed(n, ch, new hudson.remoting.PingThread.Ping(), null);
            if (us < 0) return;
            if (i >= warmup) nat[i - warmup] = us;
        }
        java.util.Arrays.sort(delegated);
        java.util.Arrays.sort(nat);
        Events.emit("event", "helper_bench", "node", n.name, "first_ms", first / 1000.0,
                "delegated_p50_us", delegated[count / 2], "delegated_p99_us", delegated[count * 99 / 100],
                "native_p50_us", nat[count / 2], "native_p99_us", nat[count * 99 / 100]);
    }

    /** Value, exported object, stream. */
    private static void calls(Controller.Node n, SimChannel ch) {
        Answer a = ch.call(plugin("Value", 21), CALL_TIMEOUT_MS);
        if (!a.ok || !"value-42".equals(a.value)) {
            fail(n, "Value(21) answered " + (a.ok ? Answer.render(a.value) : a.errorText()));
            return;
        }
        Events.emit("event", "helper_value_ok", "node", n.name);
        Integer oid = export(n, ch);
        if (oid == null) return;
        Answer greet = rpc(ch, oid, "greet", new String[] {"java.lang.String"}, new Object[] {"world"});
        Answer add = rpc(ch, oid, "add", new String[] {"int", "int"}, new Object[] {40, 2});
        Answer failed = rpc(ch, oid, "fail", new String[0], new Object[0]);
        if (!greet.ok || !"hello world".equals(greet.value)) {
            fail(n, "greet answered " + (greet.ok ? Answer.render(greet.value) : greet.errorText()));
        } else if (!add.ok || !Integer.valueOf(42).equals(add.value)) {
            fail(n, "add answered " + (add.ok ? Answer.render(add.value) : add.errorText()));
        } else if (failed.ok || failed.error == null || failed.error.getClass() != IOException.class
                || !"refused on purpose".equals(failed.error.getMessage())) {
            fail(n, "fail() must throw java.io.IOException: refused on purpose, got "
                    + (failed.ok ? Answer.render(failed.value) : failed.errorText()));
        } else {
            Events.emit("event", "helper_export_ok", "node", n.name, "oid", oid);
        }
        ByteArrayOutputStream sink = new ByteArrayOutputStream();
        int sinkOid = ch.export(sink);
        Answer s = ch.call(plugin("Stream", new RemoteOutputStream(sinkOid), 8), CALL_TIMEOUT_MS);
        byte[] got = sink.toByteArray();
        boolean same = got.length == 8 << 20;
        for (int i = 0; same && i < got.length; i++) same = got[i] == (byte) (i % 251);
        if (!s.ok || !Long.valueOf(8L << 20).equals(s.value)) {
            fail(n, "Stream answered " + (s.ok ? Answer.render(s.value) : s.errorText()));
        } else if (!same) {
            fail(n, "Stream: received " + got.length + " bytes that are not the 8 MiB written");
        } else if (ch.exports.containsKey(sinkOid)) {
            fail(n, "Stream: the agent did not close (EOF) the stream");
        } else {
            Events.emit("event", "helper_stream_ok", "node", n.name, "bytes", got.length,
                    "acks_sent", ch.acksSent.get());
        }
    }

    /** Calls ExportGreeter; returns the oid of the exported Greeter (null after a check_failed). */
    private static Integer export(Controller.Node n, SimChannel ch) {
        Answer e = ch.call(plugin("ExportGreeter"), CALL_TIMEOUT_MS);
        if (!e.ok || e.value == null || !Proxy.isProxyClass(e.value.getClass())
                || !(Proxy.getInvocationHandler(e.value) instanceof RemoteInvocationHandler)) {
            fail(n, "ExportGreeter answered " + (e.ok ? Answer.render(e.value) : e.errorText()));
            return null;
        }
        RemoteInvocationHandler h = (RemoteInvocationHandler) Proxy.getInvocationHandler(e.value);
        if (h.isGoingHome()) {
            fail(n, "the exported Greeter came back with goingHome set");
            return null;
        }
        Events.emit("event", "helper_exported", "node", n.name, "oid", h.getOid());
        return h.getOid();
    }

    /** 1000 calls at once, native and delegated interleaved; each answer must be its own. */
    private static void mixed(Controller.Node n, SimChannel ch) {
        int count = 1000;
        List<SimChannel.PendingCall> calls = new ArrayList<>();
        Map<Integer, Integer> values = new LinkedHashMap<>();
        for (int i = 0; i < count && ch.isOpen(); i++) {
            if (i % 2 == 0) {
                calls.add(ch.callAsync(new SlaveComputer.SlaveVersion(), true));
            } else {
                SimChannel.PendingCall pc = ch.callAsync(plugin("Value", i), true);
                values.put(pc.id, i);
                calls.add(pc);
            }
        }
        int good = 0;
        int reported = 0;
        long deadline = System.currentTimeMillis() + 300_000;
        for (SimChannel.PendingCall pc : calls) {
            Answer a = ch.await(pc, Math.max(1, deadline - System.currentTimeMillis()), true);
            Integer i = values.get(pc.id);
            String problem;
            if (i == null) {
                problem = a.ok ? Controller.checkVersion(a.value) : a.errorText();
            } else {
                String want = "value-" + (2 * i);
                problem = a.ok && want.equals(a.value) ? null
                        : "Value(" + i + ") answered " + (a.ok ? Answer.render(a.value) : a.errorText()) + ", not " + want;
            }
            if (problem == null) good++;
            else if (reported++ < 10) fail(n, "mixed call " + pc.id + ": " + problem);
        }
        if (good == count) {
            Events.emit("event", "helper_mixed_ok", "node", n.name, "count", good, "delegated", values.size());
        } else {
            fail(n, "mixed: only " + good + " of " + count + " answers were right");
        }
    }

    /** A long call; the test kills the helper under it; then a call on a new helper. */
    private static void kill(Controller.Node n, SimChannel ch) {
        Answer a = ch.call(plugin("Sleep", 600), CALL_TIMEOUT_MS + 600_000);
        String msg = a.error == null ? null : a.error.getMessage();
        if (a.ok || msg == null || !msg.contains("nectr.plugin.Sleep") || !msg.contains("died")) {
            fail(n, "helper-kill: the interrupted call must fail saying the helper died while running "
                    + "nectr.plugin.Sleep, got " + (a.ok ? Answer.render(a.value) : a.errorText()));
            return;
        }
        Events.emit("event", "helper_died_answered", "node", n.name, "message", msg);
        Answer b = ch.call(plugin("Value", 7), CALL_TIMEOUT_MS);
        if (b.ok && "value-14".equals(b.value)) Events.emit("event", "helper_kill_ok", "node", n.name);
        else fail(n, "helper-kill: the call after the helper died answered " + (b.ok ? Answer.render(b.value) : b.errorText()));
    }

    /** An exported object, the helper's idle stop, the stale object, a new helper. */
    private static void idle(Controller.Node n, SimChannel ch) {
        Integer oid = export(n, ch);
        if (oid == null) return;
        Answer greet = rpc(ch, oid, "greet", new String[] {"java.lang.String"}, new Object[] {"idle"});
        if (!greet.ok || !"hello idle".equals(greet.value)) {
            fail(n, "greet answered " + (greet.ok ? Answer.render(greet.value) : greet.errorText()));
            return;
        }
        Events.emit("event", "helper_waiting_for_idle", "node", n.name);
        Path go = goFile;
        long deadline = System.currentTimeMillis() + 300_000;
        while (go != null && !Files.exists(go) && System.currentTimeMillis() < deadline) Controller.sleep(100);
        if (go == null || !Files.exists(go)) {
            fail(n, "helper-idle: the test never signalled the idle stop (--go-file)");
            return;
        }
        Answer stale = rpc(ch, oid, "greet", new String[] {"java.lang.String"}, new Object[] {"stale"});
        String msg = stale.error == null ? null : stale.error.getMessage();
        if (stale.ok || msg == null || !msg.contains("stopped")) {
            fail(n, "helper-idle: a call on an object of the stopped helper must fail saying so, got "
                    + (stale.ok ? Answer.render(stale.value) : stale.errorText()));
            return;
        }
        Answer b = ch.call(plugin("Value", 3), CALL_TIMEOUT_MS);
        if (!b.ok || !"value-6".equals(b.value)) {
            fail(n, "helper-idle: the call after the idle stop answered " + (b.ok ? Answer.render(b.value) : b.errorText()));
            return;
        }
        // The new helper runs: the old object id must still be refused, not reach its objects.
        Answer again = rpc(ch, oid, "greet", new String[] {"java.lang.String"}, new Object[] {"stale"});
        String msg2 = again.error == null ? null : again.error.getMessage();
        if (again.ok || msg2 == null || !msg2.contains("stopped")) {
            fail(n, "helper-idle: with a new helper running, a call on an object of the old one must fail saying so, got "
                    + (again.ok ? Answer.render(again.value) : again.errorText()));
            return;
        }
        Events.emit("event", "helper_idle_ok", "node", n.name, "stale", msg, "stale_with_new_helper", msg2);
    }
}
