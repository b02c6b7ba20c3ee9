package nectr.sim;

import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Base64;
import java.util.List;
import java.util.Set;
import java.util.concurrent.Executors;

/**
 * Jenkins controller simulator for the nectr-agent tests.
 *
 * <pre>java -cp OUT nectr.sim.Main --node NAME=SECRET [--node ...] [--scenario S] [--ping-seconds N]
 *     [--monitor-seconds N] [--state-dir DIR] [--remote-fs DIR] [--https] [--proxy]
 *     [--untar-source FILE --untar-dest DIR [--untar-compression GZIP|NONE] [--greedy true|false]]
 *     [--write-mib N] [--ack-delay-ms N] [--repeat N] [--soak-seconds N] [--http-port N] [--jnlp-port N]
 *     [build options: see Builds and tests/java/README.md]
 *     [--rest [--api-user USER] [--api-token-file FILE]]</pre>
 *
 * <p>{@code --rest}: REST mode ({@link Rest}), the controller of nectr-fleet and the demo loop:
 * nodes created over REST (no {@code --node} needed), jobs, a queue and builds. With
 * {@code --api-token-file} every REST request needs Basic auth {@code USER:TOKEN} (user
 * {@code admin} unless {@code --api-user}); builds keep their stashes and artifacts under
 * {@code --save-dir} (a temporary directory otherwise).
 *
 * Scenarios (after the bring-up): online, unknown, cancel, concurrent, refuse, restart, garbage,
 * wrong-identity, bench, streams, bigstream, cancel-stream, read, rpc, freestyle and pipeline (Builds), the
 * JVM helper ones (helper-calls, helper-mixed, helper-kill, helper-idle, helper-off, helper-jar,
 * helper-bench: see {@link HelperScenarios}; options --agent-jar FILE, --plugin-classes DIR,
 * --go-file FILE), and
 * <ul>
 * <li>{@code untar}: FilePath$UntarRemote (unstash) of {@code --untar-source} (a .tar.gz or .tar
 *     on the simulator's disk; required) into {@code --untar-dest} (absolute path on the agent;
 *     required) with {@code --untar-compression} (GZIP by default). The archive travels in a
 *     RemoteInputStream: greedy (a Pipe; the agent sends Pipe$ConnectCommand and the simulator
 *     pushes the bytes) when {@code --greedy true} (default) and the agent advertised 0x20,
 *     otherwise pulled by the agent with ProxyInputStream$Chunk. Reports
 *     {@code {"event":"untar_done","ok":..,"error":..,"mode":"greedy"|"pull","bytes_sent":N,
 *     "pulls":N,"acks_received":N,"input_closed":bool}}.</li>
 * <li>{@code bigwrite}: FilePath$WritePipe on remote-fs/bigwrite.bin, {@code --write-mib} MiB
 *     (default 64) written into the agent's stream (windowed when the agent advertised 0x4),
 *     EOF, Channel$IOSyncer; reports {@code {"event":"bigwrite_done","bytes":N,"mb_per_s":M,
 *     "acks_received":K}}.</li>
 * </ul>
 */
public final class Main {
    static final Set<String> SCENARIOS = Set.of("online", "unknown", "cancel", "concurrent", "refuse", "restart",
            "garbage", "wrong-identity", "bench", "streams", "bigstream", "cancel-stream", "read", "rpc", "untar", "soak",
            "bigwrite", "freestyle", "pipeline");

    private Main() {
    }

    private static void usage(String why) {
        System.err.println("nectr.sim.Main: " + why);
        System.err.println("usage: java -cp OUT nectr.sim.Main --node NAME=SECRET [--node ...] [--scenario "
                + String.join("|", new java.util.TreeSet<>(SCENARIOS)) + "|"
                + String.join("|", new java.util.TreeSet<>(HelperScenarios.SCENARIOS)) + "] [--ping-seconds N] [--agent-ping-timeout-seconds N] [--monitor-seconds N]"
                + " [--state-dir DIR] [--remote-fs DIR] [--https] [--proxy]"
                + " [--untar-source FILE --untar-dest DIR [--untar-compression GZIP|NONE] [--greedy true|false]]"
                + " [--write-mib N] [--ack-delay-ms N] [--repeat N] [--soak-seconds N] [--http-port N] [--jnlp-port N]"
                + " [--job NAME] [--script-file FILE] [--unstable-return N] [--program FILE] [--abort-on TEXT]"
                + " [--release-on TEXT --release-file PATH] [--restart-on TEXT] [--build-state FILE] [--save-dir DIR]"
                + " [--heartbeat-seconds N] [--heartbeat-min-delta-seconds N] [--poll-max-ms N] [--env KEY=VALUE]..."
                + " [--agent-jar FILE] [--plugin-classes DIR] [--go-file FILE] [--rest [--api-user USER] [--api-token-file FILE]]");
        System.exit(2);
    }

    /** The integer value {@code v} of option {@code name}, in [min, max]; usage error otherwise. */
    private static int intOption(String name, String v, int min, int max) {
        int n = 0;
        try {
            n = Integer.parseInt(v);
        } catch (NumberFormatException e) {
            usage(name + " wants a number");
        }
        if (n < min || n > max) usage(name + " must be between " + min + " and " + max);
        return n;
    }

    public static void main(String[] args) throws Exception {
        Controller c = new Controller();
        Path stateDir = null;
        int httpPort = 0;
        int jnlpPort = 0;
        boolean https = false;
        boolean proxy = false;
        boolean rest = false;
        String apiUser = "admin";
        String apiToken = null;
        for (int i = 0; i < args.length; i++) {
            String a = args[i];
            if (a.equals("--https")) {
                https = true;
                continue;
            }
            if (a.equals("--proxy")) {
                proxy = true;
                continue;
            }
            if (a.equals("--rest")) {
                rest = true;
                continue;
            }
            if (i + 1 >= args.length) usage("missing value for " + a);
            String v = args[++i];
            switch (a) {
                case "--node": {
                    int eq = v.indexOf('=');
                    if (eq <= 0) usage("--node wants NAME=SECRET");
                    String name = v.substring(0, eq);
                    c.nodes.put(name, new Controller.Node(name, v.substring(eq + 1)));
                    break;
                }
                case "--scenario":
                    if (!SCENARIOS.contains(v) && !HelperScenarios.SCENARIOS.contains(v)) usage("unknown scenario " + v);
                    c.scenario = v;
                    break;
                case "--ping-seconds":
                    c.pingSeconds = Integer.parseInt(v);
                    if (c.pingSeconds < 1) usage("--ping-seconds must be >= 1");
                    break;
                case "--agent-ping-timeout-seconds":
                    c.agentPingTimeoutSeconds = Integer.parseInt(v);
                    if (c.agentPingTimeoutSeconds < 1) usage("--agent-ping-timeout-seconds must be >= 1");
                    break;
                case "--monitor-seconds":
                    c.monitorSeconds = Integer.parseInt(v);
                    if (c.monitorSeconds < 1) usage("--monitor-seconds must be >= 1");
                    break;
                case "--state-dir":
                    stateDir = Path.of(v);
                    break;
                case "--remote-fs":
                    c.remoteFs = v;
                    break;
                case "--untar-source":
                    c.untarSource = v;
                    break;
                case "--untar-dest":
                    c.untarDest = v;
                    break;
                case "--untar-compression":
                    if (!v.equals("GZIP") && !v.equals("NONE")) usage("--untar-compression wants GZIP or NONE");
                    c.untarCompression = v;
                    break;
                case "--greedy":
                    if (!v.equals("true") && !v.equals("false")) usage("--greedy wants true or false");
                    c.greedy = Boolean.parseBoolean(v);
                    break;
                case "--soak-seconds":
                    c.soakSeconds = intOption(a, v, 1, 3600);
                    break;
                case "--repeat":
                    c.repeat = intOption(a, v, 1, 100);
                    break;
                case "--ack-delay-ms":
                    c.ackDelayMs = intOption(a, v, 0, 10_000);
                    break;
                case "--write-mib":
                    c.writeMib = intOption(a, v, 0, 1 << 20);
                    break;
                case "--http-port":
                    httpPort = intOption(a, v, 0, 65535);
                    break;
                case "--jnlp-port":
                    jnlpPort = intOption(a, v, 0, 65535);
                    break;
                case "--job":
                    c.build.job = v;
                    break;
                case "--script-file":
                    c.build.scriptFile = v;
                    break;
                case "--unstable-return":
                    c.build.unstableReturn = intOption(a, v, -255, 255);
                    break;
                case "--program":
                    c.build.programFile = v;
                    break;
                case "--abort-on":
                    c.build.abortOn = v;
                    break;
                case "--release-on":
                    c.build.releaseOn = v;
                    break;
                case "--release-file":
                    c.build.releaseFile = v;
                    break;
                case "--restart-on":
                    c.build.restartOn = v;
                    break;
                case "--build-state":
                    c.build.buildState = v;
                    break;
                case "--save-dir":
                    c.build.saveDir = v;
                    break;
                case "--heartbeat-seconds":
                    c.build.heartbeatSeconds = intOption(a, v, 1, 86_400);
                    break;
                case "--heartbeat-min-delta-seconds":
                    c.build.heartbeatMinDeltaSeconds = intOption(a, v, 0, 86_400);
                    break;
                case "--env":
                    if (v.indexOf('=') <= 0) usage("--env wants KEY=VALUE");
                    c.build.env.add(v);
                    break;
                case "--poll-max-ms":
                    c.build.pollMaxMs = intOption(a, v, (int) Builds.MIN_RECURRENCE_MS, 600_000);
                    break;
                case "--agent-jar":
                    HelperScenarios.agentJar = Path.of(v);
                    break;
                case "--plugin-classes":
                    HelperScenarios.pluginClasses = Path.of(v);
                    break;
                case "--api-user":
                    apiUser = v;
                    break;
                case "--api-token-file":
                    try {
                        apiToken = Files.readString(Path.of(v)).trim();
                    } catch (IOException e) {
                        usage("--api-token-file " + v + ": " + e);
                    }
                    if (apiToken.isEmpty()) usage("--api-token-file " + v + " is empty");
                    break;
                case "--go-file":
                    HelperScenarios.goFile = Path.of(v);
                    break;

                default:
                    usage("unknown option " + a);
            }
        }
        if (c.nodes.isEmpty() && !rest) usage("at least one --node NAME=SECRET is required (or --rest)");
        if (rest && !c.scenario.equals("online")) usage("--rest runs its own builds: no --scenario");
        if (c.scenario.equals("freestyle") && c.build.scriptFile == null) usage("--scenario freestyle needs --script-file FILE");
        if ((c.build.releaseOn == null) != (c.build.releaseFile == null)) usage("--release-on TEXT and --release-file PATH go together");
        if (c.scenario.equals("untar")) {
            if (c.untarSource == null || c.untarDest == null) usage("--scenario untar needs --untar-source FILE and --untar-dest DIR");
            if (!Files.isRegularFile(Path.of(c.untarSource))) usage("--untar-source " + c.untarSource + " is not a readable file");
        }
        boolean tempState = stateDir == null;
        if (tempState) stateDir = Files.createTempDirectory("nectr-sim-");
        Identity id = Identity.loadOrCreate(stateDir);
        WebTls web = https ? WebTls.loadOrCreate(stateDir) : null;
        String caPem = web == null ? null : Files.readString(web.caPem);
        if (tempState) deleteTree(stateDir);

        WebSocketTransport.pinger = Executors.newSingleThreadScheduledExecutor(r -> {
            Thread t = new Thread(r, "ws-pinger");
            t.setDaemon(true);
            return t;
        });
        Jnlp4Server jnlp = new Jnlp4Server(c, id, jnlpPort);
        String advertised = id.base64();
        if (c.scenario.equals("wrong-identity")) {
            jnlp.wrongIdentity = true;
            advertised = Base64.getEncoder().encodeToString(Identity.otherKey());
        }
        HttpServer http = new HttpServer(c, httpPort, jnlp.port(), advertised, web == null ? null : web.context);
        c.url = (https ? "https" : "http") + "://127.0.0.1:" + http.port() + "/";
        if (rest) {
            Path save = c.build.saveDir != null ? Path.of(c.build.saveDir) : Files.createTempDirectory("nectr-sim-rest-");
            c.rest = new Rest(c, apiUser, apiToken, save);
        }
        jnlp.start();
        http.start();
        ConnectProxy connectProxy = proxy ? new ConnectProxy() : null;
        if (connectProxy != null) connectProxy.start();

        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            http.stop();
            jnlp.stop();
            List<Controller.Node> all;
            synchronized (c.nodes) {
                all = new ArrayList<>(c.nodes.values());
            }
            for (Controller.Node n : all) {
                SimChannel ch = n.current;
                if (ch != null && ch.isOpen()) ch.close("controller shutting down");
            }
            Controller.sleep(200);
        }, "sim-shutdown"));

        List<Object> listening = new ArrayList<>(List.of("event", "listening",
                "url", (https ? "https" : "http") + "://127.0.0.1:" + http.port() + "/", "jnlp_port", jnlp.port()));
        if (caPem != null) listening.addAll(List.of("ca_pem", caPem));
        if (connectProxy != null) listening.addAll(List.of("proxy", "http://127.0.0.1:" + connectProxy.port()));
        Events.emit(listening.toArray());

        // Exit on stdin EOF (bounded by the life of the test that spawned us).
        InputStream in = System.in;
        byte[] buf = new byte[1024];
        try {
            while (in.read(buf) >= 0) {
                // ignore input
            }
        } catch (IOException e) {
            // treat as EOF
        }
        System.exit(0);
    }

    private static void deleteTree(Path p) {
        try (var s = Files.walk(p)) {
            s.sorted(java.util.Comparator.reverseOrder()).forEach(x -> x.toFile().delete());
        } catch (IOException e) {
            // ignore
        }
    }
}
