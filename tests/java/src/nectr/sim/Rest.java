package nectr.sim;

import java.io.IOException;
import java.io.OutputStream;
import java.net.URLDecoder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.SecureRandom;
import java.util.ArrayList;
import java.util.Base64;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.concurrent.TimeUnit;

/**
 * REST mode ({@code --rest}): the simulator plays a Jenkins controller for nectr-fleet and the
 * demo loop. Nodes are created, fenced, toggled and deleted over the REST calls the fleet makes
 * (fleet/src/jenkins/client.rs; semantics as fleet/tests/support/fake_jenkins.rs and Jenkins
 * 2.460), each with its own secret that both agent listeners accept. Jobs are created with
 * {@code POST /createItem?name=N&kind=freestyle|pipeline&label=L} (body: the shell command, or
 * a Pipeline program in Builds' format where {@code ${NODE_NAME}} and {@code ${BUILD_NUMBER}}
 * are expanded), triggered with {@code POST /job/N/build} or {@code buildWithParameters} (every
 * trigger is its own queue item), queued with Jenkins' {@code why} texts, dispatched to an idle
 * online node carrying the label and played by {@link Builds} on its channel; the executor is
 * busy for the whole build. Results and consoles are served as Jenkins serves them.
 *
 * <p>Events: {@code rest_node_created}, {@code rest_fenced}, {@code rest_toggled},
 * {@code rest_deleted} (with {@code busy}: a delete of a node running a build is deferred as
 * Jenkins defers it: the node takes no more work and goes when its build ends),
 * {@code rest_queued}, {@code rest_dispatched}, {@code rest_build_done}.
 */
final class Rest {
    private static final SecureRandom RANDOM = new SecureRandom();
    static final String LQ = "\u2018";
    static final String RQ = "\u2019";

    static final class RNode {
        final String name;
        String description;
        final int executors;
        final Set<String> labels;
        final String remoteFs;
        boolean temporarilyOffline;
        String reason = "";
        final List<Run> running = new ArrayList<>();
        boolean deleted;

        RNode(String name, String description, int executors, Set<String> labels, String remoteFs) {
            this.name = name;
            this.description = description;
            this.executors = executors;
            this.labels = labels;
            this.remoteFs = remoteFs;
        }
    }

    static final class Job {
        final String name;
        final String kind;
        final String label;
        final String text;
        int nextNumber = 1;
        final Map<Integer, Run> runs = new TreeMap<>();

        Job(String name, String kind, String label, String text) {
            this.name = name;
            this.kind = kind;
            this.label = label;
            this.text = text;
        }
    }

    static final class Item {
        final long id;
        final Job job;
        /** A Pipeline's node block waits here; its build already exists. */
        final Run run;
        final long since = System.currentTimeMillis();

        Item(long id, Job job, Run run) {
            this.id = id;
            this.job = job;
            this.run = run;
        }

        String taskName() {
            return run != null ? "part of " + job.name + " #" + run.number : job.name;
        }
    }

    static final class Run {
        final Job job;
        final int number;
        final long start = System.currentTimeMillis();
        final StringBuilder prefix = new StringBuilder("Started by remote API\n");
        String builtOn = "";
        volatile Builds builds;
        volatile String result;
        volatile long duration;
        volatile String finalLog;

        Run(Job job, int number) {
            this.job = job;
            this.number = number;
        }

        String console() {
            String body = finalLog != null ? finalLog : builds != null ? builds.console() : "";
            synchronized (prefix) {
                return prefix + body;
            }
        }
    }

    private final Controller controller;
    private final String auth;
    private final Path saveRoot;
    private final Map<String, RNode> nodes = new LinkedHashMap<>();
    private final Map<String, Job> jobs = new LinkedHashMap<>();
    private final List<Item> queue = new ArrayList<>();
    private long nextItem = 1;

    /** {@code token}: null accepts every request; else Basic {@code user:token} is required. */
    Rest(Controller controller, String user, String token, Path saveRoot) {
        this.controller = controller;
        this.auth = token == null ? null
                : "Basic " + Base64.getEncoder().encodeToString((user + ":" + token).getBytes(StandardCharsets.UTF_8));
        this.saveRoot = saveRoot;
        controller.scheduler.scheduleWithFixedDelay(this::dispatch, 250, 250, TimeUnit.MILLISECONDS);
    }

    // ------------------------------------------------------------------ HTTP

    /** Serves {@code target} (path and query) if it is a REST call; false otherwise. */
    boolean serve(String method, String target, Map<String, String> headers, byte[] body, OutputStream out, boolean close)
            throws IOException {
        int q = target.indexOf('?');
        String path = q < 0 ? target : target.substring(0, q);
        Map<String, String> query = form(q < 0 ? "" : target.substring(q + 1));
        List<String> seg = new ArrayList<>();
        for (String s : path.split("/")) if (!s.isEmpty()) seg.add(URLDecoder.decode(s, StandardCharsets.UTF_8));
        if (seg.isEmpty() || !isRest(seg)) return false;
        if (auth != null && !constantTimeEquals(auth, headers.getOrDefault("authorization", ""))) {
            Map<String, String> h = new LinkedHashMap<>();
            h.put("WWW-Authenticate", "Basic realm=\"Jenkins\"");
            HttpServer.respond(out, 401, "Unauthorized", h, "Unauthorized\n", close);
            return true;
        }
        String ctype = headers.getOrDefault("content-type", "");
        Map<String, String> formBody = ctype.startsWith("application/x-www-form-urlencoded")
                ? form(new String(body, StandardCharsets.UTF_8)) : Map.of();
        Reply r;
        synchronized (this) {
            r = route(method, seg, query, formBody, body);
        }
        Map<String, String> h = new LinkedHashMap<>();
        h.put("Content-Type", r.ctype);
        h.put("X-Jenkins", "2.460");
        if (r.location != null) h.put("Location", r.location);
        String reason = r.status == 200 ? "OK" : r.status == 201 ? "Created" : r.status == 302 ? "Found"
                : r.status == 400 ? "Bad Request" : r.status == 404 ? "Not Found" : r.status == 405 ? "Method Not Allowed" : "Error";
        HttpServer.respond(out, r.status, reason, h, method.equals("HEAD") ? null : r.body, close);
        return true;
    }

    private static boolean isRest(List<String> seg) {
        String first = seg.get(0);
        return first.equals("api") || first.equals("queue") || first.equals("computer") || first.equals("job")
                || first.equals("createItem");
    }

    private static boolean constantTimeEquals(String a, String b) {
        return java.security.MessageDigest.isEqual(a.getBytes(StandardCharsets.UTF_8), b.getBytes(StandardCharsets.UTF_8));
    }

    static Map<String, String> form(String s) {
        Map<String, String> m = new LinkedHashMap<>();
        for (String p : s.split("&")) {
            if (p.isEmpty()) continue;
            int eq = p.indexOf('=');
            String k = eq < 0 ? p : p.substring(0, eq);
            String v = eq < 0 ? "" : p.substring(eq + 1);
            try {
                m.putIfAbsent(URLDecoder.decode(k, StandardCharsets.UTF_8), URLDecoder.decode(v, StandardCharsets.UTF_8));
            } catch (IllegalArgumentException e) {
                m.putIfAbsent(k, v);
            }
        }
        return m;
    }

    static final class Reply {
        final int status;
        final String ctype;
        final String body;
        String location;

        Reply(int status, String ctype, String body) {
            this.status = status;
            this.ctype = ctype;
            this.body = body;
        }

        static Reply json(String body) {
            return new Reply(200, "application/json;charset=utf-8", body);
        }

        static Reply text(int status, String body) {
            return new Reply(status, "text/plain;charset=utf-8", body);
        }

        static Reply found() {
            Reply r = new Reply(302, "text/plain;charset=utf-8", "");
            r.location = "./";
            return r;
        }
    }

    private Reply route(String method, List<String> s, Map<String, String> query, Map<String, String> form, byte[] body) {
        int n = s.size();
        boolean get = method.equals("GET") || method.equals("HEAD");
        boolean post = method.equals("POST");
        if (get && n == 2 && s.get(0).equals("api") && s.get(1).equals("json")) {
            List<Object> js = new ArrayList<>();
            for (Job j : jobs.values()) js.add(obj("name", j.name, "url", "job/" + j.name + "/"));
            return Reply.json(Json.write(obj("_class", "hudson.model.Hudson", "mode", "EXCLUSIVE",
                    "nodeDescription", "nectr controller simulator", "jobs", js)));
        }
        if (get && n == 3 && s.get(0).equals("queue") && s.get(1).equals("api") && s.get(2).equals("json")) {
            List<Object> items = new ArrayList<>();
            for (Item it : queue) items.add(itemJson(it));
            return Reply.json(Json.write(obj("_class", "hudson.model.Queue", "items", items)));
        }
        if (s.get(0).equals("computer")) {
            if (get && n == 3 && s.get(1).equals("api") && s.get(2).equals("json")) {
                List<Object> list = new ArrayList<>();
                list.add(obj("_class", "hudson.model.Hudson$MasterComputer", "displayName", "Built-In Node", "description", "",
                        "numExecutors", 0, "offline", false, "temporarilyOffline", false, "offlineCauseReason", "", "idle", true,
                        "absoluteRemotePath", null, "assignedLabels", List.of(obj("name", "built-in")),
                        "executors", List.of(), "oneOffExecutors", List.of()));
                for (RNode r : nodes.values()) list.add(computerJson(r));
                return Reply.json(Json.write(obj("_class", "hudson.model.ComputerSet", "computer", list)));
            }
            if (post && n == 2 && s.get(1).equals("doCreateItem")) return createNode(form);
            if (get && n == 1) {
                // Where Jenkins' writes redirect to (its page of nodes): a plain-text list here.
                StringBuilder page = new StringBuilder("nodes of the nectr controller simulator:\n");
                for (RNode r : nodes.values()) page.append(r.name).append(connected(r) ? " online\n" : " offline\n");
                return Reply.text(200, page.toString());
            }
            if (n < 2) return Reply.text(404, "Not Found\n");
            RNode r = nodes.get(s.get(1));
            boolean read = get && n == 4 && s.get(2).equals("api") && s.get(3).equals("json");
            // A node deleted while busy is still read (and listed) until its build ends, as in Jenkins.
            if (r == null || (r.deleted && !read)) return Reply.text(404, "no such node " + s.get(1) + "\n");
            if (get && n == 2) return Reply.text(200, r.name + (connected(r) ? " online" : " offline")
                    + (r.temporarilyOffline ? ", temporarily offline: " + r.reason : "") + "\n");
            String op = s.get(2);
            if (read) return Reply.json(Json.write(computerJson(r)));
            if (get && (op.equals("slave-agent.jnlp") || op.equals("jenkins-agent.jnlp"))) {
                Controller.Node cn = controller.nodes.get(r.name);
                return new Reply(200, "application/x-java-jnlp-file", "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
                        + "<jnlp spec=\"1.0+\"><information><title>Agent for " + xml(r.name) + "</title></information>"
                        + "<application-desc main-class=\"hudson.remoting.jnlp.Main\"><argument>" + xml(cn.secret)
                        + "</argument><argument>" + xml(r.name) + "</argument><argument>-webSocket</argument>"
                        + "<argument>-url</argument><argument>" + xml(controller.url) + "</argument></application-desc></jnlp>\n");
            }
            if (!post) return Reply.text(405, "POST required\n");
            switch (op) {
                case "changeOfflineCause": {
                    String msg = query.getOrDefault("offlineMessage", form.getOrDefault("offlineMessage", ""));
                    r.temporarilyOffline = true;
                    r.reason = msg;
                    Events.emit("event", "rest_fenced", "node", r.name, "busy", !r.running.isEmpty(), "reason", msg);
                    return Reply.found();
                }
                case "toggleOffline":
                    r.temporarilyOffline = !r.temporarilyOffline;
                    if (!r.temporarilyOffline) r.reason = "";
                    Events.emit("event", "rest_toggled", "node", r.name, "temporarily_offline", r.temporarilyOffline);
                    return Reply.found();
                case "doDelete":
                    deleteNode(r);
                    return Reply.found();
                case "submitDescription":
                    r.description = form.getOrDefault("description", "");
                    return Reply.found();
                default:
                    return Reply.text(404, "Not Found\n");
            }
        }
        if (post && n == 1 && s.get(0).equals("createItem")) return createJob(query, body);
        if (s.get(0).equals("job") && n >= 2) {
            Job j = jobs.get(s.get(1));
            if (j == null) return Reply.text(404, "no such job " + s.get(1) + "\n");
            if (post && n == 3 && (s.get(2).equals("build") || s.get(2).equals("buildWithParameters"))) return trigger(j);
            if (n >= 3 && s.get(2).matches("[0-9]+")) {
                Run run = j.runs.get(Integer.parseInt(s.get(2)));
                if (run == null) return Reply.text(404, "no such build " + j.name + " #" + s.get(2) + "\n");
                if (get && n == 5 && s.get(3).equals("api") && s.get(4).equals("json")) {
                    boolean building = run.result == null;
                    long duration = building ? 0 : run.duration;
                    return Reply.json(Json.write(obj("_class", j.kind.equals("pipeline") ? "org.jenkinsci.plugins.workflow.job.WorkflowRun"
                            : "hudson.model.FreeStyleBuild", "number", run.number, "fullDisplayName", j.name + " #" + run.number,
                            "building", building, "result", run.result, "builtOn", run.builtOn, "duration", duration,
                            "timestamp", run.start)));
                }
                if (get && n == 4 && s.get(3).equals("consoleText")) return Reply.text(200, run.console());
            }
        }
        return Reply.text(404, "Not Found\n");
    }

    private static String xml(String s) {
        return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("\"", "&quot;");
    }

    static Map<String, Object> obj(Object... kv) {
        Map<String, Object> m = new LinkedHashMap<>();
        for (int i = 0; i + 1 < kv.length; i += 2) m.put((String) kv[i], kv[i + 1]);
        return m;
    }

    // ------------------------------------------------------------------ nodes

    private boolean connected(RNode r) {
        Controller.Node cn = controller.nodes.get(r.name);
        if (cn == null) return false;
        SimChannel ch = cn.current;
        return ch != null && ch == cn.online && ch.isOpen();
    }

    private Map<String, Object> computerJson(RNode r) {
        boolean up = connected(r);
        List<Object> labels = new ArrayList<>();
        for (String l : r.labels) labels.add(obj("name", l));
        labels.add(obj("name", r.name));
        List<Object> execs = new ArrayList<>();
        for (int i = 0; i < r.executors; i++) {
            Run run = i < r.running.size() ? r.running.get(i) : null;
            execs.add(obj("idle", run == null, "currentExecutable", run == null ? null
                    : obj("fullDisplayName", run.job.name + " #" + run.number)));
        }
        // A node deleted while busy stays listed (without executors to spare) until its build ends.
        for (int i = r.executors; i < r.running.size(); i++) {
            Run run = r.running.get(i);
            execs.add(obj("idle", false, "currentExecutable", obj("fullDisplayName", run.job.name + " #" + run.number)));
        }
        return obj("_class", "hudson.slaves.SlaveComputer", "displayName", r.name, "description", r.description,
                "numExecutors", r.executors, "offline", !up || r.temporarilyOffline, "temporarilyOffline", r.temporarilyOffline,
                "offlineCauseReason", r.temporarilyOffline ? r.reason : "", "idle", r.running.isEmpty(),
                "absoluteRemotePath", up ? r.remoteFs : null, "assignedLabels", labels, "executors", execs,
                "oneOffExecutors", List.of());
    }

    private Reply createNode(Map<String, String> form) {
        String name = form.getOrDefault("name", "");
        if (name.isEmpty() || !name.matches("[A-Za-z0-9_.-]+")) return Reply.text(400, "bad node name " + name + "\n");
        if (nodes.containsKey(name)) return Reply.text(400, "Agent called " + LQ + name + RQ + " already exists\n");
        Object parsed;
        try {
            parsed = Json.parse(form.getOrDefault("json", "{}"));
        } catch (IllegalArgumentException e) {
            return Reply.text(400, "bad json: " + e.getMessage() + "\n");
        }
        if (!(parsed instanceof Map)) return Reply.text(400, "json is not an object\n");
        Map<?, ?> j = (Map<?, ?>) parsed;
        int executors = j.get("numExecutors") instanceof Number ? ((Number) j.get("numExecutors")).intValue()
                : j.get("numExecutors") instanceof String ? Integer.parseInt((String) j.get("numExecutors")) : 1;
        if (executors < 1 || executors > 64) return Reply.text(400, "numExecutors must be between 1 and 64\n");
        Set<String> labels = new LinkedHashSet<>();
        for (String l : String.valueOf(j.containsKey("labelString") ? j.get("labelString") : "").trim().split("\\s+")) {
            if (!l.isEmpty()) labels.add(l);
        }
        String remoteFs = j.get("remoteFS") instanceof String ? (String) j.get("remoteFS") : "/tmp";
        String description = j.get("nodeDescription") instanceof String ? (String) j.get("nodeDescription") : "";
        byte[] b = new byte[32];
        RANDOM.nextBytes(b);
        StringBuilder secret = new StringBuilder();
        for (byte x : b) secret.append(String.format("%02x", x & 0xFF));
        controller.nodes.put(name, new Controller.Node(name, secret.toString()));
        nodes.put(name, new RNode(name, description, executors, labels, remoteFs));
        Events.emit("event", "rest_node_created", "node", name, "labels", String.join(" ", labels), "executors", executors);
        return Reply.found();
    }

    /** Jenkins removes an idle node at once; a busy one takes no more work and goes when its builds end. */
    private void deleteNode(RNode r) {
        r.deleted = true;
        Events.emit("event", "rest_deleted", "node", r.name, "busy", !r.running.isEmpty());
        if (r.running.isEmpty()) remove(r);
    }

    private void remove(RNode r) {
        nodes.remove(r.name);
        Controller.Node cn = controller.nodes.remove(r.name);
        SimChannel ch = cn == null ? null : cn.current;
        if (ch != null && ch.isOpen()) {
            controller.scheduler.execute(() -> ch.close("the node " + r.name + " was deleted"));
        }
    }

    // ------------------------------------------------------------------ jobs and the queue

    private Reply createJob(Map<String, String> query, byte[] body) {
        String name = query.getOrDefault("name", "");
        String kind = query.getOrDefault("kind", "freestyle");
        if (!name.matches("[A-Za-z0-9_.-]+")) return Reply.text(400, "bad job name " + name + "\n");
        if (!kind.equals("freestyle") && !kind.equals("pipeline")) return Reply.text(400, "kind must be freestyle or pipeline\n");
        if (jobs.containsKey(name)) return Reply.text(400, "A job already exists with the name " + LQ + name + RQ + "\n");
        String label = query.getOrDefault("label", "").trim();
        if (label.isEmpty() || label.contains(" ")) return Reply.text(400, "label must be one label\n");
        jobs.put(name, new Job(name, kind, label, new String(body, StandardCharsets.UTF_8)));
        Events.emit("event", "rest_job_created", "job", name, "kind", kind, "label", label);
        return Reply.text(200, "");
    }

    private Reply trigger(Job j) {
        Run run = null;
        if (j.kind.equals("pipeline")) {
            // A Pipeline build starts at once (on the controller); its node block is what waits.
            run = new Run(j, j.nextNumber++);
            j.runs.put(run.number, run);
            run.prefix.append("[Pipeline] Start of Pipeline\nStill waiting to schedule task\n");
        }
        Item it = new Item(nextItem++, j, run);
        queue.add(it);
        Events.emit("event", "rest_queued", "id", it.id, "task", it.taskName());
        Reply r = new Reply(201, "text/plain;charset=utf-8", "");
        r.location = controller.url + "queue/item/" + it.id + "/";
        return r;
    }

    private List<RNode> withLabel(String label) {
        List<RNode> out = new ArrayList<>();
        for (RNode r : nodes.values()) {
            if (!r.deleted && (r.labels.contains(label) || r.name.equals(label))) out.add(r);
        }
        return out;
    }

    /** Queue.BuildableItem.getCauseOfBlockage of Jenkins 2.460, for a one-label item. */
    private String why(Item it) {
        boolean anyNode = nodes.values().stream().anyMatch(r -> !r.deleted);
        if (!anyNode) return "Waiting for next available executor";
        String label = it.job.label;
        List<RNode> with = withLabel(label);
        boolean offline = with.stream().allMatch(r -> !connected(r) || r.temporarilyOffline);
        if (offline) {
            if (with.size() == 1) return LQ + with.get(0).name + RQ + " is offline";
            if (with.isEmpty()) return "There are no nodes with the label " + LQ + label + RQ;
            return "All nodes of label " + LQ + label + RQ + " are offline";
        }
        if (with.size() == 1) return "Waiting for next available executor on " + LQ + with.get(0).name + RQ;
        return "Waiting for next available executor on " + LQ + label + RQ;
    }

    private Map<String, Object> itemJson(Item it) {
        Map<String, Object> task = it.run != null
                ? obj("_class", "org.jenkinsci.plugins.workflow.support.steps.ExecutorStepExecution$PlaceholderTask",
                        "name", it.taskName(), "url", "job/" + it.job.name + "/" + it.run.number + "/")
                : obj("_class", "hudson.model.FreeStyleProject", "name", it.taskName(), "url", "job/" + it.job.name + "/",
                        "labelExpression", it.job.label);
        return obj("_class", "hudson.model.Queue$BuildableItem", "id", it.id, "inQueueSince", it.since,
                "buildableStartMilliseconds", it.since, "blocked", false, "buildable", true, "pending", false, "stuck", false,
                "why", why(it), "task", task);
    }

    /** Every 250 ms: queue items, oldest first, to idle online nodes with their label. */
    private void dispatch() {
        try {
            List<Object[]> starts = new ArrayList<>();
            synchronized (this) {
                for (java.util.Iterator<Item> i = queue.iterator(); i.hasNext();) {
                    Item it = i.next();
                    for (RNode r : withLabel(it.job.label)) {
                        if (r.temporarilyOffline || r.running.size() >= r.executors || !connected(r)) continue;
                        SimChannel ch = controller.nodes.get(r.name).current;
                        Run run = it.run;
                        if (run == null) {
                            run = new Run(it.job, it.job.nextNumber++);
                            it.job.runs.put(run.number, run);
                        }
                        if (!it.job.kind.equals("pipeline")) run.builtOn = r.name;
                        r.running.add(run);
                        i.remove();
                        Events.emit("event", "rest_dispatched", "id", it.id, "job", it.job.name, "number", run.number, "node", r.name);
                        starts.add(new Object[] {r, ch, run});
                        break;
                    }
                }
            }
            for (Object[] s : starts) {
                Thread t = new Thread(() -> runBuild((RNode) s[0], (SimChannel) s[1], (Run) s[2]),
                        "rest-build-" + ((Run) s[2]).job.name + "-" + ((Run) s[2]).number);
                t.setDaemon(true);
                t.start();
            }
        } catch (RuntimeException e) {
            Events.emit("event", "check_failed", "what", "REST dispatcher: " + e);
        }
    }

    private void runBuild(RNode r, SimChannel ch, Run run) {
        Job j = run.job;
        String result;
        try {
            Path dir = saveRoot.resolve(j.name + "-" + run.number);
            Files.createDirectories(dir);
            Builds.Options o = new Builds.Options();
            o.job = j.name;
            o.number = run.number;
            o.saveDir = dir.toString();
            String text = j.text.replace("${NODE_NAME}", r.name).replace("${BUILD_NUMBER}", String.valueOf(run.number));
            Path f = dir.resolve(j.kind.equals("pipeline") ? "program.txt" : "command.sh");
            Files.writeString(f, text);
            if (j.kind.equals("pipeline")) o.programFile = f.toString();
            else o.scriptFile = f.toString();
            Controller.Node cn = controller.nodes.get(r.name);
            Builds b = new Builds(cn, ch, o, r.remoteFs);
            run.builds = b;
            if (j.kind.equals("pipeline")) b.pipeline();
            else b.freestyle();
            result = b.result();
            run.finalLog = b.console();
        } catch (IOException | RuntimeException e) {
            result = "FAILURE";
            run.finalLog = "ERROR: the simulator could not run the build: " + e + "\nFinished: FAILURE\n";
        }
        synchronized (this) {
            run.duration = System.currentTimeMillis() - run.start;
            run.result = result;
            r.running.remove(run);
            if (r.deleted && r.running.isEmpty()) remove(r);
        }
        Events.emit("event", "rest_build_done", "job", j.name, "number", run.number, "node", r.name, "result", result);
    }

    // ------------------------------------------------------------------ JSON

    /** The little JSON the REST side needs: objects, arrays, strings, numbers, booleans, null. */
    static final class Json {
        private final String s;
        private int i;

        private Json(String s) {
            this.s = s;
        }

        static Object parse(String text) {
            Json p = new Json(text);
            Object v = p.value(0);
            p.ws();
            if (p.i != p.s.length()) throw new IllegalArgumentException("trailing text at " + p.i);
            return v;
        }

        private void ws() {
            while (i < s.length() && Character.isWhitespace(s.charAt(i))) i++;
        }

        private IllegalArgumentException err(String what) {
            return new IllegalArgumentException(what + " at " + i);
        }

        private Object value(int depth) {
            if (depth > 64) throw err("too deep");
            ws();
            if (i >= s.length()) throw err("unexpected end");
            char c = s.charAt(i);
            if (c == '{') {
                i++;
                Map<String, Object> m = new LinkedHashMap<>();
                ws();
                if (i < s.length() && s.charAt(i) == '}') {
                    i++;
                    return m;
                }
                while (true) {
                    ws();
                    if (i >= s.length() || s.charAt(i) != '"') throw err("expected a key");
                    String k = string();
                    ws();
                    if (i >= s.length() || s.charAt(i++) != ':') throw err("expected :");
                    m.put(k, value(depth + 1));
                    ws();
                    if (i >= s.length()) throw err("unexpected end");
                    char d = s.charAt(i++);
                    if (d == '}') return m;
                    if (d != ',') throw err("expected , or }");
                }
            }
            if (c == '[') {
                i++;
                List<Object> l = new ArrayList<>();
                ws();
                if (i < s.length() && s.charAt(i) == ']') {
                    i++;
                    return l;
                }
                while (true) {
                    l.add(value(depth + 1));
                    ws();
                    if (i >= s.length()) throw err("unexpected end");
                    char d = s.charAt(i++);
                    if (d == ']') return l;
                    if (d != ',') throw err("expected , or ]");
                }
            }
            if (c == '"') return string();
            if (s.startsWith("true", i)) {
                i += 4;
                return Boolean.TRUE;
            }
            if (s.startsWith("false", i)) {
                i += 5;
                return Boolean.FALSE;
            }
            if (s.startsWith("null", i)) {
                i += 4;
                return null;
            }
            int st = i;
            while (i < s.length() && "+-0123456789.eE".indexOf(s.charAt(i)) >= 0) i++;
            if (st == i) throw err("unexpected character");
            try {
                String num = s.substring(st, i);
                if (num.matches("-?[0-9]+")) return Long.parseLong(num);
                return Double.parseDouble(num);
            } catch (NumberFormatException e) {
                throw err("bad number");
            }
        }

        private String string() {
            i++;
            StringBuilder b = new StringBuilder();
            while (i < s.length()) {
                char c = s.charAt(i++);
                if (c == '"') return b.toString();
                if (c != '\\') {
                    b.append(c);
                    continue;
                }
                if (i >= s.length()) break;
                char e = s.charAt(i++);
                switch (e) {
                    case 'n': b.append('\n'); break;
                    case 't': b.append('\t'); break;
                    case 'r': b.append('\r'); break;
                    case 'b': b.append('\b'); break;
                    case 'f': b.append('\f'); break;
                    case 'u':
                        if (i + 4 > s.length()) throw err("bad \\u escape");
                        b.append((char) Integer.parseInt(s.substring(i, i + 4), 16));
                        i += 4;
                        break;
                    default: b.append(e);
                }
            }
            throw err("unterminated string");
        }

        static String write(Object v) {
            StringBuilder sb = new StringBuilder();
            write(sb, v);
            return sb.toString();
        }

        private static void write(StringBuilder sb, Object v) {
            if (v == null) {
                sb.append("null");
            } else if (v instanceof Number || v instanceof Boolean) {
                sb.append(v);
            } else if (v instanceof Map) {
                sb.append('{');
                boolean first = true;
                for (Map.Entry<?, ?> e : ((Map<?, ?>) v).entrySet()) {
                    if (!first) sb.append(',');
                    first = false;
                    Events.quote(sb, String.valueOf(e.getKey()));
                    sb.append(':');
                    write(sb, e.getValue());
                }
                sb.append('}');
            } else if (v instanceof List) {
                sb.append('[');
                boolean first = true;
                for (Object o : (List<?>) v) {
                    if (!first) sb.append(',');
                    first = false;
                    write(sb, o);
                }
                sb.append(']');
            } else {
                Events.quote(sb, v.toString());
            }
        }
    }
}
