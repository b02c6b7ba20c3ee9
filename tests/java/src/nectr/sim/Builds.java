package nectr.sim;

import hudson.EnvVars;
import hudson.FilePath;
import hudson.Launcher;
import hudson.remoting.RemoteInvocationHandler.UserRPCRequest;
import hudson.remoting.RemoteOutputStream;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Base64;
import java.util.Collections;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.TreeMap;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import org.jenkinsci.plugins.durabletask.AgentInfo;
import org.jenkinsci.plugins.durabletask.FileMonitoringTask.FileMonitoringController;
import org.jenkinsci.plugins.workflow.log.BufferedBuildListener;
import org.jenkinsci.plugins.workflow.log.TaskListenerDecorator;

/**
 * The build scenarios: a freestyle "Execute shell" build and a scripted Pipeline
 * {@code node { … }} block, played as Jenkins 2.460 plays them. Every callable, its fields and
 * the order they are sent in follow the capture of the real controller driving nectr-agent
 * (/work/captures/sequence.txt: fs1 #17–#39, p1 #40–#136, p2 #137–#200, fs2 #201–#211); where a
 * Jenkins timer decides (polling, heartbeat) the timers are Jenkins' defaults unless shortened
 * by options.
 *
 * <p>Each command the build sends is reported as {@code {"event":"seq","what":…,"short":…}}
 * (sequence.txt's naming), the build log as it arrives as {@code {"event":"log",…}}, steps as
 * {@code step_done} / {@code step_failed}, and the end as {@code build_done} with the result and
 * the whole log.
 */
final class Builds {
    /** Options of the build scenarios (set by Main). */
    static final class Options {
        String job;
        /** Freestyle: the "Execute shell" command (a file on the simulator's disk). */
        String scriptFile;
        Integer unstableReturn;
        /** Pipeline: the steps, one per line, fields separated by tabs (see README). */
        String programFile;
        String abortOn;
        String releaseOn;
        String releaseFile;
        String restartOn;
        String buildState;
        String saveDir;
        int heartbeatSeconds = 300;
        int heartbeatMinDeltaSeconds = 2;
        int pollMaxMs = 15_000;
        /** The build's number (BUILD_NUMBER; REST mode counts per job). */
        int number = 1;
        /**
         * Extra KEY=VALUE entries of the build's environment, sent as they are (as a build
         * wrapper or tool installer contributes `PATH+X=…`): the agent applies Jenkins'
         * override rules (PATH+X prepends, an empty value removes, ${X} expands).
         */
        final List<String> env = new ArrayList<>();
    }

    /** durable-task's version in ../shared/jenkins (GetAgentInfo.binaryVersion). */
    static final String DURABLE_TASK_VERSION = "555.v6802fe0f0b_82";
    /** DurableTaskStep's MIN_RECURRENCE_PERIOD and RECURRENCE_PERIOD_BACKOFF. */
    static final long MIN_RECURRENCE_MS = 250;
    static final float RECURRENCE_BACKOFF = 1.2f;
    /** DurableTaskStep.REMOTE_TIMEOUT: one polling round's calls (then Request$Cancel). */
    static final long REMOTE_TIMEOUT_MS = 20_000;
    static final long CALL_TIMEOUT_MS = 60_000;
    static final long JOIN_TIMEOUT_MS = 600_000;
    static final String JENKINS_HOME = "/var/lib/nectr-sim/jenkins-home";

    /** The default Pipeline: /work/captures/p1.groovy. */
    static final String P1 = String.join("\n",
            "sh\techo hello from sh; uname -a",
            "sh:status\texit 3",
            "sh:stdout\techo captured",
            "writeFile\ta/b.txt\twritten",
            "readFile\ta/b.txt",
            "fileExists\ta/b.txt",
            "fileExists\tnope",
            "dir\tsub\tsh\tpwd; echo x > y.txt",
            "stash\ts1\ta/**,sub/**",
            "deleteDir",
            "unstash\ts1",
            "sh\tls -R",
            "archive\ta/*.txt");

    /** The controller's per-run cookie (Jenkins' JENKINS_SERVER_COOKIE of freestyle builds). */
    private static final String SERVER_COOKIE = Controller.newCookie().substring(0, 16);

    private final Controller.Node node;
    private final SimChannel ch;
    private final Options opt;
    private final String root;
    private final BuildLog log = new BuildLog();
    private final ExecutorService actions = Executors.newSingleThreadExecutor(r -> {
        Thread t = new Thread(r, "sim-build-actions");
        t.setDaemon(true);
        return t;
    });
    private String result = "SUCCESS";
    private String serverCookie = SERVER_COOKIE;
    private int number = 1;
    private volatile boolean abortRequested;
    private volatile boolean restartRequested;
    private volatile SimChannel.PendingCall joinCall;
    private volatile boolean cancelSent;
    /** Exports made for this build that the agent must release (oid → what). */
    private final Map<Integer, String> mustRelease = new java.util.concurrent.ConcurrentHashMap<>();
    /** When the build started (for the t_ms of events: arrival times, never asserted by tests). */
    private final long startNanos = System.nanoTime();

    private long tMs() {
        return (System.nanoTime() - startNanos) / 1_000_000;
    }

    Builds(Controller.Node node, SimChannel ch, Options opt, String root) {
        this.node = node;
        this.ch = ch;
        this.opt = opt;
        this.root = root;
        this.number = opt.number;
        if (opt.abortOn != null) log.triggers.add(new Trigger(opt.abortOn, "abort"));
        if (opt.releaseOn != null) log.triggers.add(new Trigger(opt.releaseOn, "release"));
        if (opt.restartOn != null) log.triggers.add(new Trigger(opt.restartOn, "restart"));
    }

    /** The build's result (SUCCESS, FAILURE, UNSTABLE, ABORTED) once it ran. */
    String result() {
        return result;
    }

    /** The console so far (the whole of it once the build ran). */
    String console() {
        return log.text();
    }

    /** A step failed: the Pipeline stops (or the freestyle build fails) with this message. */
    static final class StepError extends Exception {
        private static final long serialVersionUID = 1L;

        StepError(String message) {
            super(message);
        }
    }

    // ------------------------------------------------------------------ the build log

    static final class Trigger {
        final String text;
        final String action;
        boolean fired;

        Trigger(String text, String action) {
            this.text = text;
            this.action = action;
        }
    }

    /** The build's console: agent data as it arrives (log events) plus the controller's own lines. */
    final class BuildLog {
        private final ByteArrayOutputStream bytes = new ByteArrayOutputStream();
        final List<Trigger> triggers = new ArrayList<>();

        synchronized void agentData(byte[] b, int off, int len) {
            bytes.write(b, off, len);
            Events.emit("event", "log", "node", node.name, "bytes", len,
                    "text", new String(b, off, len, StandardCharsets.UTF_8), "total", bytes.size(), "t_ms", tMs());
            checkTriggers();
        }

        synchronized void controllerLine(String line) {
            byte[] b = (line + "\n").getBytes(StandardCharsets.UTF_8);
            bytes.write(b, 0, b.length);
        }

        synchronized byte[] bytes() {
            return bytes.toByteArray();
        }

        synchronized String text() {
            return bytes.toString(StandardCharsets.UTF_8);
        }

        synchronized void restore(byte[] b) {
            bytes.reset();
            bytes.write(b, 0, b.length);
        }

        synchronized void checkTriggers() {
            String t = null;
            for (Trigger tr : triggers) {
                if (tr.fired) continue;
                if (t == null) t = bytes.toString(StandardCharsets.UTF_8);
                if (!t.contains(tr.text)) continue;
                tr.fired = true;
                Events.emit("event", "trigger", "node", node.name, "action", tr.action, "text", tr.text);
                fire(tr.action);
            }
        }

        /**
         * A stream the agent writes build output into (a listener's or a WriteLog sink). Jenkins
         * never lets it be closed by the agent: an EOF is a check failure (Unexport is expected).
         */
        CountingSink sink(String what) {
            return new CountingSink(what);
        }
    }

    final class CountingSink extends OutputStream {
        final String what;
        long count;

        CountingSink(String what) {
            this.what = what;
        }

        @Override
        public void write(int b) {
            write(new byte[] {(byte) b}, 0, 1);
        }

        @Override
        public void write(byte[] b, int off, int len) {
            synchronized (this) {
                count += len;
            }
            log.agentData(b, off, len);
        }

        synchronized long count() {
            return count;
        }

        @Override
        public void close() {
            Events.emit("event", "check_failed", "node", node.name, "what", what
                    + " was closed with ProxyOutputStream$EOF: Jenkins expects it released with Unexport"
                    + " (EOF would close the controller's build log)");
        }
    }

    private void fire(String action) {
        switch (action) {
            case "abort":
                abortRequested = true;
                actions.execute(this::cancelJoin);
                break;
            case "release":
                actions.execute(() -> {
                    String path = opt.releaseFile;
                    Answer a = call(wrap(new FilePath.Write("go", null), path), CALL_TIMEOUT_MS);
                    Events.emit("event", "released", "node", node.name, "file", path, "ok", a.ok, "error", a.errorText());
                });
                break;
            case "restart":
                restartRequested = true;
                break;
            default:
                break;
        }
    }

    /** Freestyle abort: Request$Cancel of the pending RemoteProcess.join (Jenkins interrupts it). */
    private synchronized void cancelJoin() {
        SimChannel.PendingCall j = joinCall;
        if (j == null || cancelSent) return;
        cancelSent = true;
        seq("hudson.remoting.Request$Cancel", "Request$Cancel");
        try {
            ch.sendCommand(new hudson.remoting.Request.Cancel(j.id));
        } catch (IOException e) {
            Events.emit("event", "check_failed", "node", node.name, "what", "sending Request$Cancel: " + e);
        }
    }

    // ------------------------------------------------------------------ calls

    private static FilePath fp(String path) {
        return new FilePath(path, false);
    }

    private static <T> FilePath.FileCallableWrapper<T> wrap(FilePath.FileCallable<T> c, String path) {
        return new FilePath.FileCallableWrapper<>(c, fp(path));
    }

    private void seq(String what, String shortName) {
        Events.emit("event", "seq", "node", node.name, "what", what, "short", shortName);
    }

    /** sequence.txt's short name of a callable: the inner FileCallable, the RPC method, or the class. */
    static String shortName(Object callable) {
        if (callable instanceof FilePath.FileCallableWrapper) {
            callable = ((FilePath.FileCallableWrapper<?>) callable).getCallable();
        }
        if (callable instanceof UserRPCRequest) return ((UserRPCRequest) callable).getMethodName();
        String n = callable.getClass().getName();
        return n.substring(Math.max(n.lastIndexOf('$'), n.lastIndexOf('.')) + 1);
    }

    private SimChannel.PendingCall send(Object callable) {
        seq("UserRequest " + SimChannel.callableName(callable), shortName(callable));
        return ch.callAsync(callable, false);
    }

    /** Sends {@code callable} and waits; past {@code timeoutMs} the request is cancelled as Jenkins' Timeout does. */
    private Answer call(Object callable, long timeoutMs) {
        SimChannel.PendingCall pc = send(callable);
        Answer a = ch.await(pc, timeoutMs, false);
        if (a.timedOut && ch.isOpen()) {
            Events.emit("event", "check_failed", "node", node.name, "id", pc.id, "what",
                    pc.callable + ": no answer within " + timeoutMs / 1000 + " s; cancelled as Jenkins' Timeout would");
            try {
                ch.sendCommand(new hudson.remoting.Request.Cancel(pc.id));
            } catch (IOException e) {
                // the channel is closing
            }
        }
        return a;
    }

    private Object must(Object callable) throws StepError {
        return must(callable, CALL_TIMEOUT_MS);
    }

    private Object must(Object callable, long timeoutMs) throws StepError {
        Answer a = call(callable, timeoutMs);
        if (!a.ok) throw new StepError(a.errorText());
        return a.value;
    }

    private <T> T mustBe(Class<T> type, Object callable, long timeoutMs) throws StepError {
        Object v = must(callable, timeoutMs);
        if (v != null && !type.isInstance(v)) {
            Events.emit("event", "check_failed", "node", node.name, "what", shortName(callable) + ": expected "
                    + type.getName() + ", got " + Controller.type(v));
            throw new StepError(shortName(callable) + " answered a " + Controller.type(v));
        }
        return type.cast(v);
    }

    private UserRPCRequest rpc(int oid, String method) {
        return UserRPCRequest.of(SimChannel.nextRequestId(), oid, "hudson.Launcher$RemoteProcess", method);
    }

    private void sendCommand(hudson.remoting.Command c, String what, String shortName) {
        seq(what, shortName);
        try {
            ch.sendCommand(c);
        } catch (IOException e) {
            Events.emit("event", "note", "node", node.name, "what", "could not send " + what + ": " + e);
        }
    }

    /** The oid of a proxy the agent exported (a Launcher$RemoteProcess). */
    private int proxyOid(Object v, String what) throws StepError {
        if (v == null || !java.lang.reflect.Proxy.isProxyClass(v.getClass())
                || !(java.lang.reflect.Proxy.getInvocationHandler(v) instanceof hudson.remoting.RemoteInvocationHandler)) {
            Events.emit("event", "check_failed", "node", node.name, "what", what + ": expected an exported "
                    + "hudson.Launcher$RemoteProcess proxy, got " + Controller.type(v));
            throw new StepError(what + " did not return a RemoteProcess");
        }
        hudson.remoting.RemoteInvocationHandler h = (hudson.remoting.RemoteInvocationHandler) java.lang.reflect.Proxy.getInvocationHandler(v);
        if (!(v instanceof Launcher.RemoteProcess)) {
            Events.emit("event", "check_failed", "node", node.name, "what", what + ": the proxy does not implement hudson.Launcher$RemoteProcess");
        }
        if (!h.isUserProxy()) {
            Events.emit("event", "check_failed", "node", node.name, "what", what + ": RemoteProcess proxy with userProxy=false"
                    + " (the controller would send bare RPCRequests)");
        }
        return h.getOid();
    }

    /** The agent's environment, asked once per channel (Jenkins caches Computer.getEnvironment()). */
    private Map<String, String> agentEnv() throws StepError {
        Map<String, String> env = ch.agentEnv;
        if (env == null) {
            Object v = must(new EnvVars.GetEnvVars());
            if (!(v instanceof EnvVars)) {
                Events.emit("event", "check_failed", "node", node.name, "what", "GetEnvVars: expected hudson.EnvVars, got " + Controller.type(v));
                throw new StepError("GetEnvVars answered a " + Controller.type(v));
            }
            env = new TreeMap<>((EnvVars) v);
            ch.agentEnv = env;
        }
        return env;
    }

    private void buildVars(Map<String, String> env, String job, String ws) {
        String url = "http://unconfigured-jenkins-location/job/" + job + "/";
        env.put("BUILD_DISPLAY_NAME", "#" + number);
        env.put("BUILD_ID", String.valueOf(number));
        env.put("BUILD_NUMBER", String.valueOf(number));
        env.put("BUILD_TAG", "jenkins-" + job + "-" + number);
        env.put("CI", "true");
        env.put("CLASSPATH", "");
        env.put("EXECUTOR_NUMBER", "0");
        env.put("HUDSON_HOME", JENKINS_HOME);
        env.put("HUDSON_SERVER_COOKIE", serverCookie);
        env.put("JENKINS_HOME", JENKINS_HOME);
        env.put("JENKINS_SERVER_COOKIE", serverCookie);
        env.put("JOB_BASE_NAME", job);
        env.put("JOB_DISPLAY_URL", url + "display/redirect");
        env.put("JOB_NAME", job);
        env.put("NODE_LABELS", node.name + " nectr");
        env.put("NODE_NAME", node.name);
        env.put("RUN_ARTIFACTS_DISPLAY_URL", url + number + "/display/redirect?page=artifacts");
        env.put("RUN_CHANGES_DISPLAY_URL", url + number + "/display/redirect?page=changes");
        env.put("RUN_DISPLAY_URL", url + number + "/display/redirect");
        env.put("RUN_TESTS_DISPLAY_URL", url + number + "/display/redirect?page=tests");
        env.put("WORKSPACE", ws);
        env.put("WORKSPACE_TMP", ws + "@tmp");
        for (String kv : opt.env) {
            int eq = kv.indexOf('=');
            env.put(kv.substring(0, eq), kv.substring(eq + 1));
        }
    }

    private static String[] toArray(Map<String, String> env) {
        List<String> out = new ArrayList<>();
        for (Map.Entry<String, String> e : env.entrySet()) out.add(e.getKey() + "=" + e.getValue());
        return out.toArray(new String[0]);
    }

    /** How long the agent may take to release a stream after the build's last call (its pumps drain). */
    static final long RELEASE_GRACE_MS = 5_000;

    private void finish(String kind) {
        log.controllerLine("Finished: " + result);
        long deadline = System.currentTimeMillis() + RELEASE_GRACE_MS;
        while (System.currentTimeMillis() < deadline && ch.isOpen()
                && mustRelease.keySet().stream().anyMatch(ch.exports::containsKey)) {
            Controller.sleep(50);
        }
        for (Map.Entry<Integer, String> e : mustRelease.entrySet()) {
            if (ch.exports.containsKey(e.getKey())) {
                Events.emit("event", "check_failed", "node", node.name, "what", e.getValue() + " (oid " + e.getKey()
                        + ") was not released by the agent (Unexport or EOF) within " + RELEASE_GRACE_MS / 1000
                        + " s of the build's end: the controller's export table keeps it");
            }
        }
        Events.emit("event", "build_done", "node", node.name, "kind", kind, "result", result, "log", log.text());
        if (ch.isOpen()) {
            Answer p = ch.call(new hudson.remoting.PingThread.Ping(), Controller.PING_TIMEOUT_MS);
            if (p.ok && p.value == null) Events.emit("event", "still_up", "node", node.name);
            else Events.emit("event", "check_failed", "node", node.name, "what", "Ping after the build: " + p.errorText());
        }
    }

    // ------------------------------------------------------------------ freestyle

    /** Shell.addLineFeedForNonASCII: a script not starting with #! gets a leading newline. */
    static String scriptContents(String command) {
        String s = command.replace("\r\n", "\n");
        if (!s.startsWith("#!") && s.indexOf('\n') != 0) return "\n" + s;
        return s;
    }

    /** Shell.buildCommandLine: {@code [shell, -xe, script]}, or the #! line's interpreter. */
    static List<String> commandLine(String shell, String command, String script) {
        List<String> args = new ArrayList<>();
        if (command.startsWith("#!")) {
            int nl = command.indexOf('\n');
            String first = (nl < 0 ? command : command.substring(0, nl)).substring(2).trim();
            args.addAll(Arrays.asList(first.split("\\s+")));
        } else {
            args.add(shell);
            args.add("-xe");
        }
        args.add(script);
        return args;
    }

    void freestyle() {
        String job = opt.job != null ? opt.job : "fs1";
        String ws = root + "/workspace/" + job;
        String command;
        try {
            command = Files.readString(Path.of(opt.scriptFile));
        } catch (IOException e) {
            Events.emit("event", "check_failed", "node", node.name, "what", "freestyle: cannot read --script-file: " + e);
            return;
        }
        Events.emit("event", "build_started", "node", node.name, "kind", "freestyle", "job", job, "number", number,
                "workspace", ws, "cookie", serverCookie, "build_tag", "jenkins-" + job + "-" + number);
        log.controllerLine("Building remotely on " + node.name + " in workspace " + ws);
        try {
            runFreestyle(job, ws, command);
        } catch (StepError e) {
            log.controllerLine("ERROR: " + e.getMessage());
            Events.emit("event", "step_failed", "node", node.name, "index", 0, "step", "shell", "error", e.getMessage());
            if (!result.equals("ABORTED")) result = "FAILURE";
        }
        finish("freestyle");
    }

    private void runFreestyle(String job, String ws, String command) throws StepError {
        // AbstractProject.checkout: the workspace (NullSCM is not null).
        must(wrap(new FilePath.Mkdirs(), ws));
        // CommandInterpreter.perform: the script goes to the agent's temporary directory.
        String script = mustBe(String.class, wrap(new FilePath.CreateTextTempFile(false, "jenkins", ".sh",
                scriptContents(command)), ws), CALL_TIMEOUT_MS);
        EnvVars env = new EnvVars(agentEnv());
        buildVars(env, job, ws);
        String shell = mustBe(String.class, new hudson.tasks.Shell.DescriptorImpl.Shellinterpreter(), CALL_TIMEOUT_MS);
        CountingSink listenerSink = log.sink("the freestyle build listener's stream");
        int listenerOid = ch.export(listenerSink);
        mustRelease.put(listenerOid, "the freestyle build listener's stream");
        hudson.model.StreamBuildListener listener = new hudson.model.StreamBuildListener(listenerOid, "UTF-8");
        Object p = must(new Launcher.RemoteLaunchCallable(commandLine(shell, command, script), toArray(env), ws,
                listener, listener, false, false, false));
        int proc = proxyOid(p, "RemoteLaunchCallable");
        Object io = must(rpc(proc, "getIOtriplet"));
        if (!(io instanceof Launcher.IOTriplet)) {
            Events.emit("event", "check_failed", "node", node.name, "what", "getIOtriplet: expected hudson.Launcher$IOTriplet, got " + Controller.type(io));
        } else {
            Launcher.IOTriplet t = (Launcher.IOTriplet) io;
            if (t.getStdout() != null || t.getStderr() != null || t.getStdin() != null) {
                Events.emit("event", "check_failed", "node", node.name, "what", "getIOtriplet of a freestyle launch (no reverse flags) must be all null");
            }
        }
        SimChannel.PendingCall join = send(rpc(proc, "join"));
        joinCall = join;
        if (abortRequested) cancelJoin();
        Answer j = ch.await(join, JOIN_TIMEOUT_MS, false);
        Integer code = null;
        boolean aborted = cancelSent;
        if (j.ok && j.value instanceof Integer) {
            code = (Integer) j.value;
        } else if (!aborted) {
            throw new StepError("RemoteProcess.join: " + (j.ok ? "expected an Integer, got " + Controller.type(j.value) : j.errorText()));
        }
        if (aborted) {
            Events.emit("event", "join_cancelled", "node", node.name, "ok", j.ok, "value", j.ok ? Answer.render(j.value) : null,
                    "error", j.errorText());
        }
        Answer alive = call(rpc(proc, "isAlive"), CALL_TIMEOUT_MS);
        Events.emit("event", "is_alive", "node", node.name, "value", alive.ok ? alive.value : null, "error", alive.errorText());
        must(wrap(new FilePath.Delete(), script));
        EnvVars kill = new EnvVars();
        for (String k : new String[] {"BUILD_ID", "BUILD_NUMBER", "BUILD_TAG", "HUDSON_SERVER_COOKIE", "JENKINS_SERVER_COOKIE",
                "JOB_BASE_NAME", "JOB_NAME"}) {
            kill.put(k, env.get(k));
        }
        must(new Launcher.RemoteLauncher.KillTask(kill));
        // A Java controller releases the proxy when it is garbage-collected: here at once.
        sendCommand(new hudson.remoting.UnexportCommand(proc), "UnexportCommand", "UnexportCommand");
        if (aborted) {
            result = "ABORTED";
            log.controllerLine("Build was aborted");
            Events.emit("event", "step_done", "node", node.name, "index", 0, "step", "shell", "aborted", true);
            return;
        }
        Events.emit("event", "step_done", "node", node.name, "index", 0, "step", "shell", "exit", code);
        if (code != 0) {
            if (opt.unstableReturn != null && opt.unstableReturn.equals(code)) {
                result = "UNSTABLE";
            } else {
                log.controllerLine("Build step 'Execute shell' marked build as failure");
                result = "FAILURE";
            }
        }
    }

    // ------------------------------------------------------------------ Pipeline

    /**
     * One step of the Pipeline program: a tab-separated line; {@code dir SUB} prefixes nest it
     * in a directory, a {@code catchError} prefix lets the build go on after it fails (the
     * result becomes FAILURE), as the Pipeline steps of those names do.
     */
    static final class Step {
        final int index;
        final String dir;
        final boolean catchError;
        final String[] f;

        Step(int index, String dir, boolean catchError, String[] f) {
            this.index = index;
            this.dir = dir;
            this.catchError = catchError;
            this.f = f;
        }

        String name() {
            return f[0];
        }

        String arg(int i) {
            return i < f.length ? f[i] : null;
        }
    }

    static List<Step> parse(String program) {
        List<Step> out = new ArrayList<>();
        for (String line : program.split("\n")) {
            if (line.isBlank() || line.startsWith("#")) continue;
            String[] f = line.split("\t", -1);
            for (int i = 0; i < f.length; i++) f[i] = unescape(f[i]);
            String dir = null;
            boolean catchError = false;
            int k = 0;
            while (k < f.length) {
                if (f[k].equals("dir") && k + 2 < f.length) {
                    dir = dir == null ? f[k + 1] : dir + "/" + f[k + 1];
                    k += 2;
                } else if (f[k].equals("catchError") && k + 1 < f.length) {
                    catchError = true;
                    k++;
                } else {
                    break;
                }
            }
            out.add(new Step(out.size(), dir, catchError, Arrays.copyOfRange(f, k, f.length)));
        }
        return out;
    }

    static String unescape(String s) {
        StringBuilder sb = new StringBuilder();
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            if (c == '\\' && i + 1 < s.length()) {
                char d = s.charAt(++i);
                sb.append(d == 'n' ? '\n' : d == 't' ? '\t' : d);
            } else {
                sb.append(c);
            }
        }
        return sb.toString();
    }

    /** The state of one durable `sh` step (what a restarted controller reads back from its build.xml). */
    static final class Durable {
        String stepWs;
        String controlDir;
        String cookie;
        boolean returnStdout;
        long lastLocation;
        /** The agent's process proxy and IOTriplet inputs (-1 when resumed after a restart). */
        int process = -1;
        int stdout = -1;
        int stderr = -1;
        long lastCheck;
        long checkedTimestamp;
        String charset;
        int logStart;
    }

    private String ws;
    private String job;
    private String nodeCookie;
    private int stepIndex;

    void pipeline() {
        job = opt.job != null ? opt.job : "p1";
        ws = root + "/workspace/" + job;
        String program = P1;
        if (opt.programFile != null) {
            try {
                program = Files.readString(Path.of(opt.programFile));
            } catch (IOException e) {
                Events.emit("event", "check_failed", "node", node.name, "what", "pipeline: cannot read --program: " + e);
                return;
            }
        }
        List<Step> steps = parse(program);
        Properties state = loadState();
        Durable resumed = null;
        int first = 0;
        if (state != null) {
            job = state.getProperty("job");
            ws = state.getProperty("ws");
            number = Integer.parseInt(state.getProperty("number"));
            nodeCookie = state.getProperty("nodeCookie");
            serverCookie = state.getProperty("serverCookie");
            first = Integer.parseInt(state.getProperty("stepIndex"));
            log.restore(Base64.getDecoder().decode(state.getProperty("log")));
            resumed = new Durable();
            resumed.stepWs = state.getProperty("stepWs");
            resumed.controlDir = state.getProperty("controlDir");
            resumed.cookie = state.getProperty("cookie");
            resumed.returnStdout = Boolean.parseBoolean(state.getProperty("returnStdout"));
            resumed.lastLocation = Long.parseLong(state.getProperty("lastLocation"));
            resumed.logStart = Integer.parseInt(state.getProperty("logStart"));
            log.controllerLine("Resuming build at " + new java.util.Date() + " after Jenkins restart");
            Events.emit("event", "resumed", "node", node.name, "job", job, "step", first, "offset", resumed.lastLocation,
                    "control_dir", resumed.controlDir);
            log.checkTriggers();
        } else {
            nodeCookie = java.util.UUID.randomUUID().toString();
            Events.emit("event", "build_started", "node", node.name, "kind", "pipeline", "job", job, "number", number,
                    "workspace", ws, "node_cookie", nodeCookie, "cookie", serverCookie);
            log.controllerLine("[Pipeline] node");
            log.controllerLine("Running on " + node.name + " in " + ws);
        }
        try {
            if (resumed == null) agentEnv(); // ExecutorStepExecution: Computer.getEnvironment()
            for (int i = first; i < steps.size(); i++) {
                stepIndex = i;
                Step s = steps.get(i);
                try {
                    if (i == first && resumed != null) {
                        finishSh(s, resumed);
                    } else {
                        runStep(s);
                    }
                } catch (StepError e) {
                    log.controllerLine("ERROR: " + e.getMessage());
                    Events.emit("event", "step_failed", "node", node.name, "index", s.index, "step", s.name(), "error", e.getMessage());
                    if (!result.equals("ABORTED")) result = "FAILURE";
                    if (!s.catchError) break;
                }
                if (result.equals("ABORTED")) break;
            }
            // End of the node block: ExecutorStepExecution kills what the block left running.
            must(new Launcher.RemoteLauncher.KillTask(Collections.singletonMap("JENKINS_NODE_COOKIE", nodeCookie)));
        } catch (StepError e) {
            log.controllerLine("ERROR: " + e.getMessage());
            result = "FAILURE";
        }
        log.controllerLine("[Pipeline] End of Pipeline");
        if (opt.buildState != null) {
            try {
                Files.deleteIfExists(Path.of(opt.buildState));
            } catch (IOException e) {
                // ignore
            }
        }
        finish("pipeline");
    }

    private String stepWs(Step s) {
        return s.dir == null ? ws : ws + "/" + s.dir;
    }

    private void runStep(Step s) throws StepError {
        String w = stepWs(s);
        log.controllerLine("[Pipeline] " + s.name());
        switch (s.name()) {
            case "sh":
            case "sh:status":
            case "sh:stdout": {
                boolean returnStatus = s.name().equals("sh:status");
                boolean returnStdout = s.name().equals("sh:stdout");
                Durable d = launch(w, s.arg(1), returnStdout);
                poll(s, d, returnStatus);
                break;
            }
            case "echo":
                log.controllerLine(s.arg(1));
                done(s);
                break;
            case "writeFile":
                must(wrap(new FilePath.Write(s.arg(2), null), w + "/" + s.arg(1)));
                done(s);
                break;
            case "writeFile:size": {
                int n = Integer.parseInt(s.arg(2));
                must(wrap(new FilePath.Write("x".repeat(n), null), w + "/" + s.arg(1)), CALL_TIMEOUT_MS);
                done(s, "bytes", n);
                break;
            }
            case "readFile":
                done(s, "text", readFile(w + "/" + s.arg(1)));
                break;
            case "fileExists":
                done(s, "value", mustBe(Boolean.class, wrap(new FilePath.Exists(), w + "/" + s.arg(1)), CALL_TIMEOUT_MS));
                break;
            case "deleteDir":
                must(wrap(new FilePath.DeleteRecursive(), w));
                done(s);
                break;
            case "stash":
                stash(s, w);
                break;
            case "unstash":
                unstash(s, w);
                break;
            case "archive":
                archive(s, w);
                break;
            default:
                Events.emit("event", "check_failed", "node", node.name, "what", "pipeline program: unknown step " + s.name());
                throw new StepError("unknown step " + s.name());
        }
    }

    private void done(Step s, Object... kv) {
        List<Object> e = new ArrayList<>(List.of("event", "step_done", "node", node.name, "index", s.index, "step", s.name()));
        if (s.dir != null) e.addAll(List.of("dir", s.dir));
        e.addAll(Arrays.asList(kv));
        Events.emit(e.toArray());
    }

    /** readFile: FilePath$Read through a remote-to-local Pipe (actAsync), the text up to EOF. */
    private String readFile(String path) throws StepError {
        ByteArrayOutputStream buf = new ByteArrayOutputStream();
        java.util.concurrent.CompletableFuture<Void> closed = new java.util.concurrent.CompletableFuture<>();
        OutputStream sink = new OutputStream() {
            @Override public void write(int b) { buf.write(b); }
            @Override public void write(byte[] b, int off, int len) { buf.write(b, off, len); }
            @Override public void close() { closed.complete(null); }
        };
        int oid = ch.export(sink);
        mustRelease.put(oid, "the readFile pipe");
        Answer a = call(wrap(new FilePath.Read(new hudson.remoting.Pipe(oid)), path), CALL_TIMEOUT_MS);
        try {
            closed.get(CALL_TIMEOUT_MS, java.util.concurrent.TimeUnit.MILLISECONDS);
        } catch (Exception e) {
            throw new StepError("readFile " + path + ": the pipe was never closed");
        }
        Throwable err = ch.eofErrors.remove(oid);
        if (err != null) throw new StepError(err.toString());
        if (!a.ok) throw new StepError(a.errorText());
        return buf.toString(StandardCharsets.UTF_8);
    }

    // ------------------------------------------------------------------ sh (durable-task)

    static String sha256(String s) {
        try {
            byte[] h = java.security.MessageDigest.getInstance("SHA-256").digest(s.getBytes(StandardCharsets.UTF_8));
            StringBuilder sb = new StringBuilder();
            for (byte b : h) sb.append(String.format("%02x", b & 0xFF));
            return sb.toString();
        } catch (java.security.NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
    }

    /**
     * BourneShellScript's wrapper, exactly as Jenkins 2.460 with durable-task 555 sends it
     * (every $ doubled for the agent's macro expansion; nohup; no setsid).
     */
    static String wrapper(String c, String cookie, boolean returnStdout) {
        String q = "'" + c + "'";
        String out = returnStdout
                ? " > '" + c + "/output.txt' 2> '" + c + "/jenkins-log.txt'"
                : " > '" + c + "/jenkins-log.txt' 2>&1";
        return "(cp '" + c + "/script.sh' '" + c + "/script.sh.copy'; { while [ -d " + q + " -a \\! -f '" + c
                + "/jenkins-result.txt' ]; do touch '" + c + "/jenkins-log.txt'; sleep 3; done } & jsc=" + cookie
                + "; JENKINS_SERVER_COOKIE=$$jsc 'sh' -xe  '" + c + "/script.sh.copy'" + out + "; echo $$? > '" + c
                + "/jenkins-result.txt.tmp'; mv '" + c + "/jenkins-result.txt.tmp' '" + c + "/jenkins-result.txt'; wait) >&- 2>&- &";
    }

    private Durable launch(String stepWs, String script, boolean returnStdout) throws StepError {
        Object info = must(wrap(new AgentInfo.GetAgentInfo(DURABLE_TASK_VERSION), root));
        if (!(info instanceof AgentInfo)) {
            Events.emit("event", "check_failed", "node", node.name, "what", "GetAgentInfo: expected AgentInfo, got " + Controller.type(info));
        } else if (((AgentInfo) info).getOs() != AgentInfo.OsType.LINUX) {
            Events.emit("event", "note", "node", node.name, "what", "GetAgentInfo: os " + ((AgentInfo) info).getOs());
        }
        must(wrap(new FilePath.Mkdirs(), stepWs));
        byte[] r = new byte[4];
        new java.security.SecureRandom().nextBytes(r);
        Durable d = new Durable();
        d.stepWs = stepWs;
        d.controlDir = stepWs + "@tmp/durable-" + String.format("%08x", java.nio.ByteBuffer.wrap(r).getInt());
        d.cookie = "durable-" + sha256(stepWs);
        d.returnStdout = returnStdout;
        d.logStart = log.bytes().length;
        must(wrap(new FilePath.Mkdirs(), d.controlDir));
        must(wrap(new FilePath.Write(script, "UTF-8"), d.controlDir + "/script.sh"));
        if (script.startsWith("#!")) must(wrap(new FilePath.Chmod(0755), d.controlDir + "/script.sh"));
        Map<String, String> env = new TreeMap<>(agentEnv());
        buildVars(env, job, ws);
        env.put("JENKINS_NODE_COOKIE", nodeCookie);
        env.put("JENKINS_SERVER_COOKIE", "please-do-not-kill-me");
        Map<String, String> escaped = new TreeMap<>();
        for (Map.Entry<String, String> e : env.entrySet()) escaped.put(e.getKey(), e.getValue().replace("$", "$$"));
        CountingSink listenerSink = log.sink("the sh step's listener stream");
        int listenerOid = ch.export(listenerSink);
        mustRelease.put(listenerOid, "the sh step's listener stream");
        BufferedBuildListener.Replacement rep = new BufferedBuildListener.Replacement(new RemoteOutputStream(listenerOid));
        TaskListenerDecorator.CloseableTaskListener listener = new TaskListenerDecorator.CloseableTaskListener(rep, rep);
        List<String> cmd = new ArrayList<>(List.of("nohup", "sh", "-c", wrapper(d.controlDir, d.cookie, returnStdout)));
        Object p = must(new Launcher.RemoteLaunchCallable(cmd, toArray(escaped), stepWs, listener, null, true, true, true));
        d.process = proxyOid(p, "RemoteLaunchCallable");
        Object io = must(rpc(d.process, "getIOtriplet"));
        if (io instanceof Launcher.IOTriplet) {
            Launcher.IOTriplet t = (Launcher.IOTriplet) io;
            d.stdout = inputOid(t.getStdout());
            d.stderr = inputOid(t.getStderr());
            if (d.stdout < 0 || d.stderr < 0) {
                Events.emit("event", "note", "node", node.name, "what", "getIOtriplet of a durable launch: stdout/stderr are not"
                        + " RemoteInputStreams (BourneShellScript tolerates nulls)");
            }
        } else {
            Events.emit("event", "check_failed", "node", node.name, "what", "getIOtriplet: expected hudson.Launcher$IOTriplet, got " + Controller.type(io));
        }
        Events.emit("event", "sh_launched", "node", node.name, "control_dir", d.controlDir, "cookie", d.cookie,
                "node_cookie", nodeCookie, "process_oid", d.process, "t_ms", tMs());
        return d;
    }

    private static int inputOid(Object in) {
        return in instanceof hudson.remoting.RemoteInputStream ? ((hudson.remoting.RemoteInputStream) in).getOid() : -1;
    }

    /** DurableTaskStep.Execution.check(), every recurrence period, until the exit code is known. */
    private void poll(Step s, Durable d, boolean returnStatus) throws StepError {
        long period = MIN_RECURRENCE_MS;
        boolean stopSent = false;
        while (true) {
            Controller.sleep(period);
            if (!ch.isOpen()) throw new StepError("the channel to " + node.name + " closed while the step ran");
            if (abortRequested && !stopSent) {
                // DurableTaskStep.stop: getWorkspace(), then Controller.stop → launcher.kill(cookie).
                stopSent = true;
                must(wrap(new FilePath.IsDirectory(), d.stepWs), REMOTE_TIMEOUT_MS);
                must(new Launcher.RemoteLauncher.KillTask(Collections.singletonMap("JENKINS_SERVER_COOKIE", d.cookie)));
                Events.emit("event", "stop_sent", "node", node.name, "cookie", d.cookie);
            }
            Boolean isDir = mustBe(Boolean.class, wrap(new FilePath.IsDirectory(), d.stepWs), REMOTE_TIMEOUT_MS);
            if (!Boolean.TRUE.equals(isDir)) {
                Events.emit("event", "check_failed", "node", node.name, "what", "IsDirectory of the running step's workspace " + d.stepWs + " answered " + isDir);
            }
            boolean got = writeLog(d);
            period = got ? MIN_RECURRENCE_MS : Math.min((long) (period * RECURRENCE_BACKOFF), opt.pollMaxMs);
            Integer code = exitStatus(d);
            saveState(d);
            if (restartRequested) {
                Events.emit("event", "restart_ready", "node", node.name, "offset", d.lastLocation, "control_dir", d.controlDir);
                while (true) Controller.sleep(60_000); // the test kills this controller now
            }
            if (code != null) {
                exited(s, d, code, returnStatus, stopSent);
                return;
            }
        }
    }

    /** The exit of an `sh` found: last-minute output, stdout, cleanup, then the step's result. */
    private void exited(Step s, Durable d, int code, boolean returnStatus, boolean aborted) throws StepError {
        Events.emit("event", "step_exit", "node", node.name, "index", s.index, "code", code, "t_ms", tMs());
        writeLog(d);
        String stdout = null;
        if (d.returnStdout) {
            byte[] b = mustBe(byte[].class, wrap(new FileMonitoringController.GetOutput("SYSTEM_DEFAULT"), d.controlDir + "/output.txt"),
                    REMOTE_TIMEOUT_MS);
            stdout = b == null ? null : new String(b, StandardCharsets.UTF_8);
        }
        // Controller.cleanup: the control directory, then the IOTriplet streams it kept.
        must(wrap(new FilePath.DeleteRecursive(), d.controlDir), REMOTE_TIMEOUT_MS);
        for (int oid : new int[] {d.stdout, d.stderr}) {
            if (oid >= 0) sendCommand(new hudson.remoting.ProxyInputStream.EOF(oid), "ProxyInputStream$EOF", "ProxyInputStream$EOF");
        }
        // A Java controller releases the process proxy when it is garbage-collected: here at once.
        if (d.process >= 0) sendCommand(new hudson.remoting.UnexportCommand(d.process), "UnexportCommand", "UnexportCommand");
        byte[] all = log.bytes();
        String stepLog = new String(all, Math.min(d.logStart, all.length), Math.max(0, all.length - d.logStart), StandardCharsets.UTF_8);
        done(s, "exit", code, "stdout", stdout, "log", stepLog);
        if (aborted) {
            result = "ABORTED";
            log.controllerLine("Aborted by the simulator");
            return;
        }
        if (code != 0 && !returnStatus) throw new StepError("script returned exit code " + code);
    }

    /** FileMonitoringController.writeLog: the charset question, then WriteLog from lastLocation into a fresh sink. */
    private boolean writeLog(Durable d) throws StepError {
        if (d.charset == null) {
            Object cs = must(new FileMonitoringController.TranscodingCharsetForSystemDefault(), REMOTE_TIMEOUT_MS);
            if (cs != null) {
                Events.emit("event", "note", "node", node.name, "what", "the agent's charset is " + cs + ", not UTF-8: the controller transcodes");
                d.charset = String.valueOf(cs);
            }
        }
        CountingSink sink = log.sink("a WriteLog sink");
        int oid = ch.export(sink);
        mustRelease.put(oid, "a WriteLog sink");
        must(wrap(new FileMonitoringController.WriteLog(d.lastLocation, new RemoteOutputStream(oid)), d.controlDir + "/jenkins-log.txt"),
                REMOTE_TIMEOUT_MS);
        long n = sink.count();
        d.lastLocation += n;
        return n > 0;
    }

    /** BourneShellScript.ShellController.exitStatus: StatusCheck, then the heartbeat checks. */
    private Integer exitStatus(Durable d) throws StepError {
        Object v = must(wrap(new FileMonitoringController.StatusCheck(), d.controlDir + "/jenkins-result.txt"), REMOTE_TIMEOUT_MS);
        if (v != null && !(v instanceof Integer)) {
            Events.emit("event", "check_failed", "node", node.name, "what", "StatusCheck: expected Integer or null, got " + Controller.type(v));
            throw new StepError("StatusCheck answered a " + Controller.type(v));
        }
        if (v != null) return (Integer) v;
        long now = System.nanoTime();
        if (d.lastCheck == 0) {
            d.lastCheck = now;
            return null;
        }
        if (now <= d.lastCheck + opt.heartbeatSeconds * 1_000_000_000L) return null;
        d.lastCheck = now;
        Long lm = mustBe(Long.class, wrap(new FilePath.LastModified(), d.controlDir + "/jenkins-log.txt"), REMOTE_TIMEOUT_MS);
        long lastModified = lm == null ? 0 : lm;
        Events.emit("event", "heartbeat", "node", node.name, "last_modified", lastModified, "previous", d.checkedTimestamp);
        if (lastModified == 0) {
            log.controllerLine("process apparently never started in " + d.controlDir);
            log.controllerLine("(running Jenkins temporarily with -Dorg.jenkinsci.plugins.durabletask.BourneShellScript.LAUNCH_DIAGNOSTICS=true"
                    + " might make the problem clearer)");
            return recordExitStatus(d, -2);
        }
        if (d.checkedTimestamp > 0) {
            if (lastModified < d.checkedTimestamp) {
                log.controllerLine("apparent clock skew in " + d.controlDir);
            } else if (lastModified < d.checkedTimestamp + opt.heartbeatMinDeltaSeconds * 1000L) {
                String pid = d.controlDir + "/pid";
                Boolean exists = mustBe(Boolean.class, wrap(new FilePath.Exists(), pid), REMOTE_TIMEOUT_MS);
                Events.emit("event", "pid_check", "node", node.name, "exists", exists);
                if (Boolean.TRUE.equals(exists)) {
                    log.controllerLine("still have " + pid + " so heartbeat checks unreliable; process may or may not be alive");
                } else {
                    log.controllerLine("wrapper script does not seem to be touching the log file in " + d.controlDir);
                    log.controllerLine("(JENKINS-48300: if on an extremely laggy filesystem, consider"
                            + " -Dorg.jenkinsci.plugins.durabletask.BourneShellScript.HEARTBEAT_CHECK_INTERVAL=86400)");
                    return recordExitStatus(d, -1);
                }
            }
        }
        d.checkedTimestamp = lastModified;
        return null;
    }

    /** ShellController.recordExitStatus: FilePath.write(Integer.toString(code), null) on the result file. */
    private int recordExitStatus(Durable d, int code) throws StepError {
        must(wrap(new FilePath.Write(Integer.toString(code), null), d.controlDir + "/jenkins-result.txt"), REMOTE_TIMEOUT_MS);
        return code;
    }

    /** After a controller restart: the step's polling resumes from the saved state. */
    private void finishSh(Step s, Durable d) throws StepError {
        if (!s.name().startsWith("sh")) throw new StepError("the saved state points at step " + s.index + ", which is not sh");
        poll(s, d, s.name().equals("sh:status"));
    }

    private Properties loadState() {
        if (opt.buildState == null) return null;
        Path p = Path.of(opt.buildState);
        if (!Files.isRegularFile(p)) return null;
        Properties st = new Properties();
        try (java.io.Reader r = Files.newBufferedReader(p)) {
            st.load(r);
        } catch (IOException e) {
            Events.emit("event", "check_failed", "node", node.name, "what", "cannot read the build state " + p + ": " + e);
            return null;
        }
        return st.getProperty("controlDir") == null ? null : st;
    }

    /** What a controller keeps in build.xml for a running `sh` (written atomically after every round). */
    private void saveState(Durable d) {
        if (opt.buildState == null) return;
        Properties st = new Properties();
        st.setProperty("job", job);
        st.setProperty("ws", ws);
        st.setProperty("number", String.valueOf(number));
        st.setProperty("nodeCookie", nodeCookie);
        st.setProperty("serverCookie", serverCookie);
        st.setProperty("stepIndex", String.valueOf(stepIndex));
        st.setProperty("stepWs", d.stepWs);
        st.setProperty("controlDir", d.controlDir);
        st.setProperty("cookie", d.cookie);
        st.setProperty("returnStdout", String.valueOf(d.returnStdout));
        st.setProperty("lastLocation", String.valueOf(d.lastLocation));
        st.setProperty("logStart", String.valueOf(d.logStart));
        st.setProperty("log", Base64.getEncoder().encodeToString(log.bytes()));
        Path p = Path.of(opt.buildState);
        Path tmp = p.resolveSibling(p.getFileName() + ".tmp");
        try (java.io.Writer w = Files.newBufferedWriter(tmp)) {
            st.store(w, "nectr.sim build state");
        } catch (IOException e) {
            Events.emit("event", "check_failed", "node", node.name, "what", "cannot save the build state: " + e);
            return;
        }
        try {
            Files.move(tmp, p, java.nio.file.StandardCopyOption.ATOMIC_MOVE, java.nio.file.StandardCopyOption.REPLACE_EXISTING);
        } catch (IOException e) {
            Events.emit("event", "check_failed", "node", node.name, "what", "cannot save the build state: " + e);
        }
    }

    // ------------------------------------------------------------------ stash, unstash, archiveArtifacts

    private Path saveDir() throws StepError {
        Path p = Path.of(opt.saveDir != null ? opt.saveDir : System.getProperty("java.io.tmpdir") + "/nectr-sim-save-" + ProcessHandle.current().pid());
        try {
            Files.createDirectories(p);
        } catch (IOException e) {
            throw new StepError("cannot create the save directory " + p + ": " + e);
        }
        return p;
    }

    /**
     * stash (StashManager.stash): FilePath$Archive with ArchiverFactory.TARGZ into a file on the
     * controller. {@code stash NAME INCLUDES [EXCLUDES]}: StashManager always sends non-empty
     * includes ("**" by default), which scans files only; an empty INCLUDES field with no
     * EXCLUDES is DirScanner$Glob's fallback to DirScanner$Full (directories too, no default
     * excludes).
     */
    private void stash(Step s, String w) throws StepError {
        String name = s.arg(1);
        String includes = s.arg(2) == null ? "**" : s.arg(2);
        String excludes = s.arg(3) == null || s.arg(3).isEmpty() ? null : s.arg(3);
        Path file = saveDir().resolve("stashes").resolve(name + ".tar.gz");
        boolean[] closed = {false};
        OutputStream out;
        try {
            Files.createDirectories(file.getParent());
            OutputStream fos = Files.newOutputStream(file);
            out = new OutputStream() {
                @Override public void write(int b) throws IOException { fos.write(b); }
                @Override public void write(byte[] b, int off, int len) throws IOException { fos.write(b, off, len); }
                @Override public void close() throws IOException {
                    closed[0] = true;
                    fos.close();
                }
            };
        } catch (IOException e) {
            throw new StepError("cannot create " + file + ": " + e);
        }
        int oid = ch.export(out);
        mustRelease.put(oid, "the stash stream");
        Integer count = mustBe(Integer.class, wrap(new FilePath.Archive(new hudson.util.io.ArchiverFactory.TarArchiverFactory(
                FilePath.TarCompression.GZIP), new RemoteOutputStream(oid), new hudson.util.DirScanner.Glob(includes, excludes, true)), w),
                Controller.UNTAR_ANSWER_TIMEOUT_MS);
        if (!closed[0]) {
            Events.emit("event", "check_failed", "node", node.name, "what", "FilePath$Archive answered but did not close (EOF) its stream");
        }
        if (count == null || count == 0) throw new StepError("No files included in stash ‘" + name + "’");
        log.controllerLine("Stashed " + count + " file(s)");
        long size;
        try {
            size = Files.size(file);
        } catch (IOException e) {
            size = -1;
        }
        done(s, "count", count, "file", file.toString(), "bytes", size);
    }

    /** unstash: FilePath$UntarRemote of the saved file, its bytes in a greedy RemoteInputStream. */
    private void unstash(Step s, String w) throws StepError {
        String name = s.arg(1);
        Path file = saveDir().resolve("stashes").resolve(name + ".tar.gz");
        if (!Files.isRegularFile(file)) throw new StepError("No such saved stash ‘" + name + "’");
        java.io.InputStream in;
        try {
            in = Files.newInputStream(file);
        } catch (IOException e) {
            throw new StepError("cannot read " + file + ": " + e);
        }
        hudson.remoting.RemoteInputStream rin = new hudson.remoting.RemoteInputStream(ch, in, true);
        SimChannel.InputExport ix = ch.inputExport(rin.getOid());
        SimChannel.PendingCall pc = send(wrap(new FilePath.UntarRemote(file.getFileName().toString(), FilePath.TarCompression.GZIP, rin), w));
        if (rin.isGreedyForm()) {
            try {
                ix.connected.get(Controller.CONNECT_TIMEOUT_MS, java.util.concurrent.TimeUnit.MILLISECONDS);
            } catch (java.util.concurrent.TimeoutException e) {
                Events.emit("event", "check_failed", "node", node.name, "what", "unstash: no Pipe$ConnectCommand within "
                        + Controller.CONNECT_TIMEOUT_MS / 1000 + " s for the greedy RemoteInputStream");
            } catch (Exception e) {
                // channel closed: the answer says so
            }
        }
        Answer a = ch.await(pc, Controller.UNTAR_ANSWER_TIMEOUT_MS, false);
        try {
            ix.finished.get(Controller.INPUT_SETTLE_MS, java.util.concurrent.TimeUnit.MILLISECONDS);
        } catch (Exception e) {
            // reported by the tests through bytes_sent
        }
        ch.releaseInput(ix.oid);
        if (!a.ok) throw new StepError(a.errorText());
        done(s, "bytes_sent", ix.bytes.get(), "mode", rin.isGreedyForm() ? "greedy" : "pull");
    }

    /**
     * archiveArtifacts (ArtifactArchiver through CoreStep): Mkdirs, ListFiles, then
     * CopyRecursiveRemoteToLocal of what was listed into a remote-to-local Pipe; the simulator
     * extracts the tar into {@code <save-dir>/artifacts} as StandardArtifactManager would.
     */
    @SuppressWarnings("unchecked")
    private void archive(Step s, String w) throws StepError {
        String includes = s.arg(1);
        String excludes = s.arg(2) == null || s.arg(2).isEmpty() ? null : s.arg(2);
        must(wrap(new FilePath.Mkdirs(), w));
        log.controllerLine("Archiving artifacts");
        Object v = must(wrap(new hudson.tasks.ArtifactArchiver.ListFiles(includes, excludes, true, true, true), w));
        Map<String, String> files;
        if (v instanceof Map) {
            files = new java.util.HashMap<>((Map<String, String>) v);
        } else if (v instanceof java.util.Collection) {
            // Jenkins before 2.4xx answered a Set of names.
            files = new java.util.HashMap<>();
            for (Object o : (java.util.Collection<Object>) v) files.put(String.valueOf(o), String.valueOf(o));
            Events.emit("event", "note", "node", node.name, "what", "ListFiles answered a " + Controller.type(v) + ", Jenkins 2.460 expects a Map");
        } else {
            Events.emit("event", "check_failed", "node", node.name, "what", "ListFiles: expected a Map, got " + Controller.type(v));
            throw new StepError("ListFiles answered a " + Controller.type(v));
        }
        if (files.isEmpty()) throw new StepError("No artifacts found that match the file pattern \"" + includes + "\"");
        ByteArrayOutputStream tar = new ByteArrayOutputStream();
        boolean[] closed = {false};
        OutputStream sink = new OutputStream() {
            @Override public void write(int b) { tar.write(b); }
            @Override public void write(byte[] b, int off, int len) { tar.write(b, off, len); }
            @Override public void close() { closed[0] = true; }
        };
        int oid = ch.export(sink);
        mustRelease.put(oid, "the archiveArtifacts pipe");
        Integer count = mustBe(Integer.class, wrap(new FilePath.CopyRecursiveRemoteToLocal(new hudson.remoting.Pipe(oid),
                new FilePath.ExplicitlySpecifiedDirScanner(files), FilePath.TarCompression.GZIP, "UTF-8"), w),
                Controller.UNTAR_ANSWER_TIMEOUT_MS);
        if (!closed[0]) {
            Events.emit("event", "check_failed", "node", node.name, "what", "CopyRecursiveRemoteToLocal answered but did not close (EOF) its pipe");
        }
        Throwable err = ch.eofErrors.remove(oid);
        if (err != null) throw new StepError(err.toString());
        Path dest = saveDir().resolve("artifacts");
        List<String> entries;
        try {
            Files.write(saveDir().resolve("artifacts.tar.gz"), tar.toByteArray());
            entries = TarReader.extract(new java.util.zip.GZIPInputStream(new java.io.ByteArrayInputStream(tar.toByteArray())), dest);
        } catch (IOException e) {
            Events.emit("event", "check_failed", "node", node.name, "what", "the archiveArtifacts tar is unreadable: " + e);
            throw new StepError("cannot extract the artifacts: " + e);
        }
        done(s, "count", count, "entries", String.join("\n", entries), "artifacts_dir", dest.toString());
    }
}
