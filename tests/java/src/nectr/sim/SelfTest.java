package nectr.sim;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;

/**
 * Runs the simulator against SelfTestAgent for every scenario (each in its own pair of JVMs)
 * and checks the events. Usage: java -cp OUT nectr.sim.SelfTest. Exit status 0 = all passed.
 */
public final class SelfTest {
    private SelfTest() {
    }

    static final class Case {
        final String label;
        final String scenario;
        final String transport;
        final String capability;
        final int reconnects;
        final String[] expect;
        final String[] extra;
        String fault = "";
        String[] expectFailed = {};

        Case(String label, String scenario, String transport, String capability, int reconnects, String[] extra, String... expect) {
            this.label = label;
            this.scenario = scenario;
            this.transport = transport;
            this.capability = capability;
            this.reconnects = reconnects;
            this.extra = extra;
            this.expect = expect;
        }
    }

    public static void main(String[] args) throws Exception {
        String[] none = {};
        List<Case> cases = List.of(
                new Case("online-ws", "online", "ws", "1fe", 0, new String[] {"--ping-seconds", "2"},
                        "\"online\"", "\"monitors_ok\"", "\"ping_ok\"", "\"transport\":\"websocket\""),
                new Case("online-jnlp4", "online", "jnlp4", "1fe", 0, new String[] {"--ping-seconds", "2"},
                        "\"online\"", "\"monitors_ok\"", "\"ping_ok\"", "\"transport\":\"jnlp4\""),
                new Case("online-ws-0x180", "online", "ws", "180", 0, none, "\"online\"", "\"monitors_ok\"", "\"capability\":\"0x180\""),
                new Case("relative-fs", "online", "ws", "1fe", 0, new String[] {"--remote-fs", "."},
                        "SlaveComputer$AbsolutePath", "\"monitors_ok\""),
                new Case("unknown", "unknown", "ws", "1fe", 0, none, "\"unknown_ok\"", "\"still_up\""),
                new Case("cancel", "cancel", "jnlp4", "1fe", 0, none, "\"cancel_ok\""),
                new Case("concurrent", "concurrent", "ws", "1fe", 0, none, "\"concurrent_ok\",\"node\":\"n1\",\"count\":1000"),
                new Case("refuse-ws", "refuse", "ws", "1fe", 1, none, "\"refused\""),
                new Case("refuse-jnlp4", "refuse", "jnlp4", "1fe", 1, none, "\"refused\"", "\"bye_received\""),
                new Case("restart-ws", "restart", "ws", "1fe", 2, none, "\"cookie_matches\":true"),
                new Case("restart-jnlp4", "restart", "jnlp4", "1fe", 2, none, "\"cookie_matches\":true"),
                new Case("garbage", "garbage", "ws", "1fe", 0, none, "\"garbage_sent\"", "\"still_up\""),
                // SelfTestAgent does not pin the identity, so the simulator must notice it.
                new Case("wrong-identity", "wrong-identity", "jnlp4", "1fe", 0, none, "\"secret_received\""),
                negative(new Case("neg-bad-version", "online", "ws", "1fe", 0, none, "\"disconnected\""), "bad-version",
                        "Rejecting the connection because the Remoting version is older"),
                negative(new Case("neg-no-annotations", "online", "jnlp4", "1fe", 0, none, "\"disconnected\""), "no-annotations",
                        "missing class-loader annotation"));
        ExecutorService pool = Executors.newFixedThreadPool(4);
        List<Future<String>> results = new ArrayList<>();
        for (Case c : cases) results.add(pool.submit(() -> run(c)));
        int failed = 0;
        for (int i = 0; i < cases.size(); i++) {
            String r = results.get(i).get(120, TimeUnit.SECONDS);
            System.out.println((r == null ? "PASS " : "FAIL ") + cases.get(i).label + (r == null ? "" : ": " + r));
            if (r != null) failed++;
        }
        pool.shutdownNow();
        System.out.println(failed == 0 ? "all passed" : failed + " failed");
        System.exit(failed == 0 ? 0 : 1);
    }

    private static Case negative(Case c, String fault, String... expectFailed) {
        c.fault = fault;
        c.expectFailed = expectFailed;
        return c;
    }

    private static String run(Case c) throws IOException, InterruptedException {
        String java = System.getProperty("java.home") + "/bin/java";
        String cp = System.getProperty("java.class.path");
        List<String> cmd = new ArrayList<>(List.of(java, "-cp", cp, "nectr.sim.Main", "--node", "n1=s1", "--scenario", c.scenario));
        Collections.addAll(cmd, c.extra);
        Process sim = new ProcessBuilder(cmd).redirectError(ProcessBuilder.Redirect.DISCARD).start();
        List<String> lines = Collections.synchronizedList(new ArrayList<>());
        BufferedReader r = new BufferedReader(new InputStreamReader(sim.getInputStream(), StandardCharsets.UTF_8));
        String first = r.readLine();
        if (first == null || !first.contains("\"listening\"")) {
            sim.destroyForcibly();
            return "no listening line: " + first;
        }
        Thread reader = new Thread(() -> {
            try {
                for (String l; (l = r.readLine()) != null;) lines.add(l);
            } catch (IOException e) {
                // done
            }
        });
        reader.setDaemon(true);
        reader.start();
        String url = first.replaceAll(".*\"url\":\"([^\"]+)\".*", "$1");
        Process agent = new ProcessBuilder(java, "-cp", cp, "nectr.sim.SelfTestAgent", url, "n1", "s1", c.transport,
                c.capability, "12", String.valueOf(c.reconnects), c.fault).redirectErrorStream(true)
                .redirectOutput(ProcessBuilder.Redirect.DISCARD).start();
        if (!agent.waitFor(30, TimeUnit.SECONDS)) agent.destroyForcibly();
        Thread.sleep(1500);
        sim.getOutputStream().close(); // stdin EOF: the simulator exits
        if (!sim.waitFor(10, TimeUnit.SECONDS)) {
            sim.destroyForcibly();
            return "simulator did not exit on stdin EOF";
        }
        reader.join(5000);
        String all;
        synchronized (lines) {
            all = String.join("\n", lines);
        }
        for (String e : c.expect) {
            if (!all.contains(e)) return "missing " + e + "\n" + all;
        }
        for (String e : c.expectFailed) {
            if (!all.contains(e)) return "expected a check_failed mentioning " + e + "\n" + all;
        }
        if (!c.fault.isEmpty() && all.contains("\"online\"")) return "went online despite fault " + c.fault;
        boolean mayFail = c.scenario.equals("wrong-identity") || !c.fault.isEmpty();
        if (!mayFail && all.contains("\"check_failed\"")) return "check_failed seen\n" + all;
        if (c.scenario.equals("refuse") && all.contains("\"online\"")) return "went online despite refuse";
        if (c.scenario.equals("wrong-identity") && all.contains("\"online\"")) return "went online with a wrong identity";
        return null;
    }
}
