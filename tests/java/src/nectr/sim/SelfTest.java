package nectr.sim;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.regex.Pattern;

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
        /** The fault must keep the agent from going online (bring-up faults). */
        boolean mustStayOffline;
        /** Regular expressions that must each match somewhere in the events. */
        String[] expectRegex = {};
        /** Lifetime of the stand-in agent. */
        int agentSeconds = 12;
        /** Size of {dir}/payload.tar.gz to create (arbitrary bytes), or -1. */
        long payloadBytes = -1;
        /** NECTR_SELFTEST_UNTAR_BYTES for the stand-in agent, or -1. */
        long agentExpectsBytes = -1;
        /** Size of {dir}/bigwrite.bin to verify against the bigwrite pattern after the run, or -1. */
        long bigwriteBytes = -1;

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
                offline(negative(new Case("neg-bad-version", "online", "ws", "1fe", 0, none, "\"disconnected\""), "bad-version",
                        "Rejecting the connection because the Remoting version is older")),
                offline(negative(new Case("neg-no-annotations", "online", "jnlp4", "1fe", 0, none, "\"disconnected\""), "no-annotations",
                        "missing class-loader annotation")),
                // Streams in both directions with PIPE_THROTTLING: 64 chunks each way, each acked.
                new Case("streams-acks", "streams", "ws", "1fe", 0, new String[] {"--remote-fs", "{dir}"},
                        "\"streams_ok\",\"node\":\"n1\",\"bytes\":4194304,\"acks_sent\":64,\"acks_received\":64"),
                new Case("streams-no-throttling", "streams", "jnlp4", "1fa", 0, new String[] {"--remote-fs", "{dir}"},
                        "\"streams_ok\",\"node\":\"n1\",\"bytes\":4194304,\"acks_sent\":0,\"acks_received\":0"),
                bigwrite(new Case("bigwrite", "bigwrite", "jnlp4", "1fe", 0, new String[] {"--remote-fs", "{dir}", "--write-mib", "8"},
                        "\"bigwrite_done\",\"node\":\"n1\",\"bytes\":8388608,", "\"acks_received\":128}",
                        "\"callable\":\"hudson.remoting.Channel$IOSyncer\",\"ok\":true"), 8 << 20),
                bigwrite(new Case("bigwrite-no-throttling", "bigwrite", "ws", "1fa", 0, new String[] {"--remote-fs", "{dir}", "--write-mib", "3"},
                        "\"bigwrite_done\",\"node\":\"n1\",\"bytes\":3145728,", "\"acks_received\":0}"), 3 << 20),
                regex(untar(new Case("untar-greedy", "untar", "ws", "1fe", 0, new String[] {},
                        "\"mode\":\"greedy\",\"bytes_sent\":" + PAYLOAD + ",\"pulls\":0,", "\"input_closed\":true}"), PAYLOAD),
                        "\"untar_done\",\"node\":\"n1\",\"ok\":true,\"error\":null,", "\"acks_received\":[1-9][0-9]*,"),
                untar(new Case("untar-pull", "untar", "jnlp4", "1fe", 0, new String[] {"--greedy", "false", "--untar-compression", "NONE"},
                        "\"untar_done\",\"node\":\"n1\",\"ok\":true,\"error\":null,\"mode\":\"pull\",\"bytes_sent\":" + PAYLOAD
                                + ",\"pulls\":" + (PAYLOAD / 65536 + 2) + ",\"acks_received\":0,\"input_closed\":true}",
                        "\"input_closed\",\"node\":\"n1\""), PAYLOAD),
                // Without 0x20 the RemoteInputStream has no leading boolean and is always pulled.
                untar(new Case("untar-no-greedy-capability", "untar", "ws", "1de", 0, new String[] {},
                        "\"ok\":true,\"error\":null,\"mode\":\"pull\",\"bytes_sent\":" + PAYLOAD + ",", "\"input_closed\":true}"), PAYLOAD),
                // The agent refuses the archive: a normal ok:false, no check_failed.
                untar(new Case("untar-refused", "untar", "jnlp4", "1fe", 0, new String[] {},
                        "\"untar_done\",\"node\":\"n1\",\"ok\":false,", "received " + PAYLOAD + " bytes, expected " + (PAYLOAD + 1),
                        "\"mode\":\"greedy\""), PAYLOAD + 1),
                negative(new Case("neg-dead-writer", "bigwrite", "ws", "1fe", 0, new String[] {"--remote-fs", "{dir}", "--write-mib", "4"},
                        "\"dead_writer\",\"node\":\"n1\",\"oid\":"), "dead-writer", "Pipe is already closed"),
                slow(negative(new Case("neg-no-acks", "bigwrite", "jnlp4", "1fe", 0, new String[] {"--remote-fs", "{dir}", "--write-mib", "4"},
                        "\"online\""), "no-acks", "no Ack from the agent for stream")),
                slow(negative(untar(new Case("neg-no-connect", "untar", "ws", "1fe", 0, new String[] {},
                        "\"untar_done\",\"node\":\"n1\",\"ok\":false,"), PAYLOAD), "no-connect", "no Pipe$ConnectCommand")));
        ExecutorService pool = Executors.newFixedThreadPool(4);
        List<Future<String>> results = new ArrayList<>();
        for (Case c : cases) results.add(pool.submit(() -> run(c)));
        int failed = 0;
        for (int i = 0; i < cases.size(); i++) {
            String r;
            try {
                r = results.get(i).get(180, TimeUnit.SECONDS);
            } catch (java.util.concurrent.ExecutionException e) {
                r = "self-test error: " + e.getCause();
            }
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

    private static Case offline(Case c) {
        c.mustStayOffline = true;
        return c;
    }

    private static Case regex(Case c, String... patterns) {
        c.expectRegex = patterns;
        return c;
    }

    /** The case waits 30 s for something that never comes. */
    private static Case slow(Case c) {
        c.agentSeconds = 45;
        return c;
    }

    private static Case bigwrite(Case c, long bytes) {
        c.bigwriteBytes = bytes;
        return c;
    }

    /** Size of the untar payload: more than three 1 MiB windows, not a multiple of 64 KiB. */
    static final long PAYLOAD = (3 << 20) + 12345;

    /** An untar case: a payload of PAYLOAD bytes, the stand-in agent expecting {@code agentExpects}. */
    private static Case untar(Case c, long agentExpects) {
        String[] extra = new String[c.extra.length + 4];
        extra[0] = "--untar-source";
        extra[1] = "{dir}/payload.tar.gz";
        extra[2] = "--untar-dest";
        extra[3] = "{dir}/out";
        System.arraycopy(c.extra, 0, extra, 4, c.extra.length);
        Case u = new Case(c.label, c.scenario, c.transport, c.capability, c.reconnects, extra, c.expect);
        u.payloadBytes = PAYLOAD;
        u.agentExpectsBytes = agentExpects;
        return u;
    }

    /** Checks {@code f} holds the bigwrite pattern: byte i = (byte) ((i % 251) ^ (i >>> 20)). */
    private static String checkBigwrite(Path f, long bytes) throws IOException {
        if (!Files.exists(f)) return "bigwrite.bin was not written";
        if (Files.size(f) != bytes) return "bigwrite.bin has " + Files.size(f) + " bytes, expected " + bytes;
        try (java.io.InputStream in = new java.io.BufferedInputStream(Files.newInputStream(f))) {
            for (long i = 0; i < bytes; i++) {
                int b = in.read();
                if (b != (((i % 251) ^ (i >>> 20)) & 0xFF)) return "bigwrite.bin differs at offset " + i;
            }
        }
        return null;
    }

    private static String run(Case c) throws IOException, InterruptedException {
        Path dir = Files.createTempDirectory("nectr-selftest-");
        try {
            return run(c, dir);
        } finally {
            try (var w = Files.walk(dir)) {
                w.sorted(java.util.Comparator.reverseOrder()).forEach(p -> p.toFile().delete());
            }
        }
    }

    private static String run(Case c, Path dir) throws IOException, InterruptedException {
        String java = System.getProperty("java.home") + "/bin/java";
        String cp = System.getProperty("java.class.path");
        if (c.payloadBytes >= 0) {
            byte[] payload = new byte[(int) c.payloadBytes];
            new java.util.Random(7).nextBytes(payload);
            Files.write(dir.resolve("payload.tar.gz"), payload);
        }
        List<String> cmd = new ArrayList<>(List.of(java, "-cp", cp, "nectr.sim.Main", "--node", "n1=s1", "--scenario", c.scenario));
        for (String x : c.extra) cmd.add(x.replace("{dir}", dir.toString()));
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
        ProcessBuilder apb = new ProcessBuilder(java, "-cp", cp, "nectr.sim.SelfTestAgent", url, "n1", "s1", c.transport,
                c.capability, String.valueOf(c.agentSeconds), String.valueOf(c.reconnects), c.fault).redirectErrorStream(true)
                .redirectOutput(ProcessBuilder.Redirect.DISCARD);
        if (c.agentExpectsBytes >= 0) apb.environment().put("NECTR_SELFTEST_UNTAR_BYTES", String.valueOf(c.agentExpectsBytes));
        Process agent = apb.start();
        if (!agent.waitFor(c.agentSeconds + 18, TimeUnit.SECONDS)) agent.destroyForcibly();
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
        for (String e : c.expectRegex) {
            if (!Pattern.compile(e).matcher(all).find()) return "nothing matches " + e + "\n" + all;
        }
        for (String e : c.expectFailed) {
            boolean found = false;
            for (String l : all.split("\n")) found |= l.contains("\"check_failed\"") && l.contains(e);
            if (!found) return "expected a check_failed mentioning " + e + "\n" + all;
        }
        if (c.mustStayOffline && all.contains("\"online\"")) return "went online despite fault " + c.fault;
        if (c.bigwriteBytes >= 0) {
            String problem = checkBigwrite(dir.resolve("bigwrite.bin"), c.bigwriteBytes);
            if (problem != null) return problem + "\n" + all;
        }
        boolean mayFail = c.scenario.equals("wrong-identity") || !c.fault.isEmpty();
        if (!mayFail && all.contains("\"check_failed\"")) return "check_failed seen\n" + all;
        if (c.scenario.equals("refuse") && all.contains("\"online\"")) return "went online despite refuse";
        if (c.scenario.equals("wrong-identity") && all.contains("\"online\"")) return "went online with a wrong identity";
        return null;
    }
}
