//! The JVM helper (issue 10), over WebSocket and JNLP4-connect.
//!
//! Against the real Jenkins 2.460 in `../shared/jenkins/`, whose `/jnlpJars/agent.jar` is the
//! helper: what a Jenkins user sees is checked, a declarative Pipeline from a git repository
//! (implicit `checkout scm`, native `sh`, `junit`), a scripted `git` checkout, the node's
//! script console, and Groovy callables sent from the controller's script console (a value, an
//! exported object, an 8 MiB stream). The agent's log must say which callables went to the
//! helper, and `sh` must stay native.
//!
//! Against the controller simulator (faults and timing), with the real agent.jar taken from
//! `jenkins.war` and plugin callables (`tests/java/plugin`) compiled against it, which the
//! simulator serves through its class loader: a value, an exported object, a stream, 1,000
//! native and delegated calls at once, the helper killed mid-call, its idle stop and restart,
//! `--jvm off`, and a controller whose agent.jar differs from the cached one.

mod support;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::Value as J;
use support::jenkins::{jenkins_dir, urlencode, xml_escape, Jenkins, NodeAgent};

const BUILD: Duration = Duration::from_secs(300);

/// A node of its own for one test, with nectr-agent connected over one transport.
struct Node {
    name: String,
    root: PathBuf,
    agent: NodeAgent,
}

fn node(tag: &str, websocket: bool, extra: &[&str]) -> Node {
    let j = Jenkins::shared();
    let name = format!("{tag}-{}", if websocket { "ws" } else { "jnlp4" });
    let root = support::scratch(&name);
    let secret = j.create_node(&name, &name, 2, &root);
    let agent = NodeAgent::start(j, &name, &secret, &root, websocket, extra);
    j.wait_online(&name, Duration::from_secs(60));
    Node { name, root, agent }
}

impl Node {
    /// The agent's log, with a note of where it is for failure messages.
    fn log(&self) -> String {
        self.agent.log_text()
    }

    /// Waits until the agent's log contains `what`.
    fn wait_log(&self, what: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let log = self.log();
            if log.contains(what) {
                return log;
            }
            assert!(
                Instant::now() < deadline,
                "the agent's log never said {what:?}:\n{log}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// Groovy in the node's own script console (`/computer/NAME/scriptText`): runs on the agent.
fn node_script(name: &str, groovy: &str) -> String {
    let j = Jenkins::shared();
    let body = format!("script={}", urlencode(groovy));
    let (s, out, _) = j.post(
        &format!("computer/{name}/scriptText"),
        "application/x-www-form-urlencoded",
        body.as_bytes(),
    );
    assert_eq!(s, 200, "scriptText on {name}: {out}");
    out
}

fn script_console_on_the_node_runs_groovy_on_the_agent(websocket: bool) {
    let n = node("jvm-console", websocket, &[]);
    let out = node_script(
        &n.name,
        "println('os.name=' + System.getProperty('os.name'))\n\
         println('user.dir=' + System.getProperty('user.dir'))",
    );
    assert!(out.contains("os.name=Linux"), "node script console: {out}");
    assert!(
        out.contains(&format!("user.dir={}", n.root.display())),
        "the helper runs in the agent's work directory: {out}"
    );
    let log = n.wait_log(
        "hudson.util.RemotingDiagnostics$Script",
        Duration::from_secs(10),
    );
    assert!(log.contains("JVM helper started"), "{log}");
}

/// With `--jvm off` the node's script console explains why no Groovy runs, as its output.
fn script_console_with_the_helper_off_explains(websocket: bool) {
    let n = node("jvm-console-off", websocket, &["--jvm", "off"]);
    let out = node_script(&n.name, "println('hi')");
    assert!(
        out.contains("--jvm") && !out.lines().any(|l| l.trim() == "hi"),
        "{out}"
    );
    assert!(!n.log().contains("JVM helper started"), "{}", n.log());
}

/// Classes defined in the controller's script console, sent to the agent with
/// `getChannel().call(…)`: a value, an exported object with three methods (one throws an
/// IOException, which must arrive as an IOException), and an 8 MiB stream into a controller
/// stream. The classes are compiled to class files first: remoting serves a callable's class
/// to the agent from its class loader's resources, which the script console's own loader
/// does not have (the real agent.jar fails the same way with "Unable to locate class file").
fn groovy_callables_from_the_controller(websocket: bool) {
    let n = node("jvm-callables", websocket, &[]);
    let j = Jenkins::shared();
    let groovy = format!(
        r#"import org.codehaus.groovy.control.CompilationUnit
import org.codehaus.groovy.control.CompilerConfiguration
import org.codehaus.groovy.control.Phases
def src = '''
import jenkins.security.MasterToSlaveCallable
import hudson.remoting.Channel
import hudson.remoting.RemoteOutputStream
@groovy.transform.CompileStatic
interface Greeter {{
    String greet(String who)
    int add(int a, int b)
    void fail() throws IOException
}}
@groovy.transform.CompileStatic
class GreeterImpl implements Greeter, Serializable {{
    String greet(String who) {{ "hello " + who + " from " + System.getProperty("os.name") }}
    int add(int a, int b) {{ a + b }}
    void fail() throws IOException {{ throw new IOException("refused on purpose") }}
}}
@groovy.transform.CompileStatic
class Answer extends MasterToSlaveCallable<String, IOException> {{
    String call() {{ "answer=" + (6 * 7) + " pid=" + ProcessHandle.current().pid() }}
}}
@groovy.transform.CompileStatic
class Export extends MasterToSlaveCallable<Greeter, IOException> {{
    Greeter call() {{ Channel.currentOrFail().export(Greeter, new GreeterImpl()) }}
}}
@groovy.transform.CompileStatic
class Stream8 extends MasterToSlaveCallable<Long, IOException> {{
    RemoteOutputStream out
    Stream8(OutputStream o) {{ out = new RemoteOutputStream(o) }}
    Long call() {{
        byte[] buf = new byte[65536]
        long sent = 0
        for (int i = 0; i < 128; i++) {{
            for (int k = 0; k < buf.length; k++) {{ buf[k] = (byte) ((sent + k) % 251) }}
            out.write(buf)
            sent += buf.length
        }}
        out.close()
        return sent
    }}
}}
'''
def parent = jenkins.model.Jenkins.get().pluginManager.uberClassLoader
def dir = java.nio.file.Files.createTempDirectory('nectr-callables').toFile()
def cc = new CompilerConfiguration()
cc.targetDirectory = dir
cc.targetBytecode = '1.8'
def cu = new CompilationUnit(cc, null, new GroovyClassLoader(parent))
cu.addSource('NectrCallables.groovy', src)
cu.compile(Phases.OUTPUT)
def loader = new URLClassLoader([dir.toURI().toURL()] as URL[], parent)
def make = {{ String n, Object... args -> loader.loadClass(n).constructors[0].newInstance(args) }}
def c = jenkins.model.Jenkins.get().getComputer('{name}').getChannel()
println(c.call(make('Answer')))
def g = c.call(make('Export'))
println("greet=" + g.greet("jenkins"))
println("add=" + g.add(40, 2))
try {{
    g.fail()
    println("fail=no exception")
}} catch (IOException e) {{
    println("fail=" + e.getClass().getName() + ": " + e.getMessage())
}}
def sink = new ByteArrayOutputStream()
def sent = c.call(make('Stream8', sink))
def got = sink.toByteArray()
boolean same = got.length == sent
for (int i = 0; same && i < got.length; i++) {{ same = got[i] == (byte) (i % 251) }}
println("stream sent=" + sent + " received=" + got.length + " same=" + same)
"#,
        name = n.name
    );
    let out = j.script(&groovy);
    assert!(out.contains("answer=42 pid="), "{out}");
    assert!(out.contains("greet=hello jenkins from Linux"), "{out}");
    assert!(out.contains("add=42"), "{out}");
    assert!(
        out.contains("fail=java.io.IOException: refused on purpose"),
        "the exported object's IOException arrives as an IOException: {out}"
    );
    assert!(
        out.contains("stream sent=8388608 received=8388608 same=true"),
        "{out}"
    );
    let log = n.log();
    for what in [
        "callable=Answer",
        "callable=Export",
        "callable=RPC greet",
        "callable=Stream8",
    ] {
        assert!(log.contains(what), "the log names {what}: {log}");
    }
    let pid = out
        .split("pid=")
        .nth(1)
        .and_then(|p| p.split_whitespace().next())
        .expect("the helper's pid");
    assert!(
        log.contains(&format!("JVM helper started pid={pid}")),
        "the callable ran in the helper the agent started: {log}"
    );
}

/// A git repository at `dir` with `files`, committed on branch `main`.
fn git_repo(dir: &Path, files: &[(&str, &str)]) -> String {
    std::fs::create_dir_all(dir).expect("repo dir");
    let git = |args: &[&str]| {
        let out = Command::new("git")
            .args(args)
            .current_dir(dir)
            .env("GIT_AUTHOR_NAME", "nectr")
            .env("GIT_AUTHOR_EMAIL", "nectr@example.com")
            .env("GIT_COMMITTER_NAME", "nectr")
            .env("GIT_COMMITTER_EMAIL", "nectr@example.com")
            .output()
            .unwrap_or_else(|e| panic!("git is needed for these tests (apt-get install git): {e}"));
        assert!(
            out.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    git(&["init", "-q", "-b", "main"]);
    for (path, text) in files {
        let p = dir.join(path);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(p, text).expect("write");
    }
    git(&["add", "-A"]);
    git(&["commit", "-q", "-m", "nectr test repository"]);
    format!("file://{}", dir.display())
}

/// JUnit report with 3 tests: one failing, one skipped.
const REPORT: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<testsuite name="nectr.Suite" tests="3" failures="1" errors="0" skipped="1" time="0.3">
  <testcase classname="nectr.Suite" name="passes" time="0.1"/>
  <testcase classname="nectr.Suite" name="fails" time="0.1"><failure message="expected 1 but was 2">trace</failure></testcase>
  <testcase classname="nectr.Suite" name="skipped" time="0.1"><skipped/></testcase>
</testsuite>
"#;

/// Lets the controller read a Jenkinsfile from a `file://` repository (the git plugin refuses
/// local repositories on the controller unless told otherwise; the checkout on the agent is
/// what is tested).
fn allow_local_git() {
    Jenkins::shared().script("hudson.plugins.git.GitSCM.ALLOW_LOCAL_CHECKOUT = true");
}

fn declarative_pipeline_from_git(websocket: bool) {
    let n = node("jvm-decl", websocket, &[]);
    let j = Jenkins::shared();
    allow_local_git();
    let jenkinsfile = format!(
        r#"pipeline {{
    agent {{ label '{label}' }}
    stages {{
        stage('build') {{
            steps {{
                sh 'echo built by $NODE_NAME; test -f README.md && cat README.md'
                sh 'mkdir -p reports && cp fixtures/TEST-nectr.xml reports/ && touch reports/TEST-nectr.xml'
            }}
        }}
    }}
    post {{
        always {{
            junit 'reports/*.xml'
        }}
    }}
}}
"#,
        label = n.name
    );
    let repo = git_repo(
        &n.root.with_extension("repo"),
        &[
            ("Jenkinsfile", &jenkinsfile),
            ("README.md", "readme from the repository\n"),
            ("fixtures/TEST-nectr.xml", REPORT),
        ],
    );
    let job = format!("decl-{}", n.name);
    let config = format!(
        "<?xml version='1.1' encoding='UTF-8'?><flow-definition plugin=\"workflow-job\">\
         <definition class=\"org.jenkinsci.plugins.workflow.cps.CpsScmFlowDefinition\" plugin=\"workflow-cps\">\
         <scm class=\"hudson.plugins.git.GitSCM\" plugin=\"git\"><configVersion>2</configVersion>\
         <userRemoteConfigs><hudson.plugins.git.UserRemoteConfig><url>{}</url></hudson.plugins.git.UserRemoteConfig></userRemoteConfigs>\
         <branches><hudson.plugins.git.BranchSpec><name>*/main</name></hudson.plugins.git.BranchSpec></branches>\
         </scm><scriptPath>Jenkinsfile</scriptPath><lightweight>true</lightweight></definition></flow-definition>",
        xml_escape(&repo)
    );
    j.create_job(&job, &config);
    let (result, console) = j.run(&job, BUILD);
    assert_eq!(
        result,
        "UNSTABLE",
        "a failing test makes the build unstable; console:\n{console}\nagent log:\n{}",
        n.log()
    );
    assert!(console.contains("readme from the repository"), "{console}");
    assert!(
        console.contains(&format!("built by {}", n.name)),
        "{console}"
    );
    let (s, tests) = j.get(&format!(
        "job/{job}/lastBuild/testReport/api/json?tree=failCount,passCount,skipCount"
    ));
    assert_eq!(s, 200, "{tests}");
    let v: serde_json::Value = serde_json::from_str(&tests).expect("test report json");
    assert_eq!(
        (
            v["passCount"].as_u64(),
            v["failCount"].as_u64(),
            v["skipCount"].as_u64()
        ),
        (Some(1), Some(1), Some(1)),
        "{tests}"
    );
    let log = n.log();
    assert!(
        log.contains("org.jenkinsci.plugins.gitclient"),
        "the checkout went to the helper: {log}"
    );
    assert!(
        log.contains("hudson.tasks.junit.JUnitParser"),
        "junit went to the helper: {log}"
    );
    assert_sh_stayed_native(&log);
}

/// `sh` (durable-task) never goes to the helper.
fn assert_sh_stayed_native(log: &str) {
    for line in log
        .lines()
        .filter(|l| l.contains("delegated to the JVM helper"))
    {
        assert!(
            !line.contains("durabletask") && !line.contains("durable_task"),
            "a durable-task callable went to the helper: {line}"
        );
    }
}

fn scripted_git_checkout(websocket: bool) {
    let n = node("jvm-git", websocket, &[]);
    let j = Jenkins::shared();
    let repo = git_repo(
        &n.root.with_extension("repo"),
        &[("hello.txt", "hello from git\n")],
    );
    let job = format!("git-{}", n.name);
    let script = format!(
        "node('{}') {{\n  git url: '{repo}', branch: 'main'\n  sh 'cat hello.txt; git log --oneline | wc -l'\n}}\n",
        n.name
    );
    // In the Groovy sandbox: a script created over REST is not approved for running outside.
    let config = Jenkins::pipeline_xml(&script)
        .replace("<sandbox>false</sandbox>", "<sandbox>true</sandbox>");
    j.create_job(&job, &config);
    let (result, console) = j.run(&job, BUILD);
    assert_eq!(
        result,
        "SUCCESS",
        "console:\n{console}\nagent log:\n{}",
        n.log()
    );
    assert!(console.contains("hello from git"), "{console}");
    assert!(
        n.root.join("workspace").join(&job).join(".git").is_dir(),
        "the checkout is a real clone in the agent's workspace"
    );
    assert_sh_stayed_native(&n.log());
}

// ---------------------------------------------------------------- the simulator's scenarios

const SECRET: &str = "0123456789abcdef-not-a-real-secret";

/// `remoting-*.jar` from the real Jenkins' war: the agent.jar Jenkins serves, extracted by the
/// test (never copied into the repository).
fn remoting_jar() -> &'static Path {
    static JAR: OnceLock<PathBuf> = OnceLock::new();
    JAR.get_or_init(|| {
        let war = jenkins_dir().join("jenkins.war");
        assert!(
            war.is_file(),
            "{} is missing: these tests take the real agent.jar from it (set NECTR_JENKINS_DIR)",
            war.display()
        );
        let dir = support::scratch("remoting-jar");
        let jar_tool = |args: &[&str]| {
            let out = Command::new("jar")
                .args(args)
                .current_dir(&dir)
                .output()
                .unwrap_or_else(|e| {
                    panic!(
                        "cannot run the JDK's jar tool ({e}): install a JDK 17 (scripts/test does)"
                    )
                });
            assert!(
                out.status.success(),
                "jar {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8_lossy(&out.stdout).into_owned()
        };
        let war_s = war.to_string_lossy().to_string();
        let name = jar_tool(&["tf", &war_s])
            .lines()
            .find(|l| l.starts_with("WEB-INF/lib/remoting-") && l.ends_with(".jar"))
            .expect("jenkins.war holds WEB-INF/lib/remoting-*.jar")
            .to_string();
        jar_tool(&["xf", &war_s, &name]);
        dir.join(name)
    })
}

/// The plugin callables of `tests/java/plugin`, compiled against the real remoting jar.
fn plugin_classes() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let out = support::scratch("plugin-classes");
        let src = support::repo_root().join("tests/java/plugin/nectr/plugin");
        let sources: Vec<PathBuf> = std::fs::read_dir(&src)
            .expect("tests/java/plugin/nectr/plugin")
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "java"))
            .collect();
        let status = Command::new("javac")
            .args(["--release", "17", "-nowarn", "-cp"])
            .arg(remoting_jar())
            .arg("-d")
            .arg(&out)
            .args(&sources)
            .status()
            .expect("javac (JDK 17) is needed: run scripts/test");
        assert!(status.success(), "javac failed on tests/java/plugin");
        out
    })
}

/// The controller simulator running a helper scenario.
struct Sim {
    child: Child,
    events: Receiver<J>,
    seen: Vec<J>,
    url: String,
}

impl Sim {
    fn start(scenario: &str, agent_jar: &Path, extra: &[&str]) -> Sim {
        let cp = format!(
            "{}:{}",
            support::java_peer().display(),
            plugin_classes().display()
        );
        let mut child = Command::new("java")
            .args(["-cp", &cp, "nectr.sim.Main"])
            .args(["--node", &format!("n1={SECRET}"), "--scenario", scenario])
            .arg("--agent-jar")
            .arg(agent_jar)
            .arg("--plugin-classes")
            .arg(plugin_classes())
            .args(extra)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the controller simulator (java)");
        let out = child.stdout.take().expect("stdout");
        let (tx, rx) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if let Ok(j) = serde_json::from_str::<J>(&line) {
                    if tx.send(j).is_err() {
                        break;
                    }
                }
            }
        });
        let mut sim = Sim {
            child,
            events: rx,
            seen: Vec::new(),
            url: String::new(),
        };
        let l = sim.wait_for("listening", Duration::from_secs(60));
        sim.url = l["url"].as_str().expect("url").to_string();
        sim
    }

    /// Waits for event `name`; fails on timeout or on any `check_failed`.
    fn wait_for(&mut self, name: &str, timeout: Duration) -> J {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.events.recv_timeout(left) {
                Ok(e) => {
                    if e["event"] != "class_loading" && e["event"] != "http" {
                        self.seen.push(e.clone());
                    }
                    assert_ne!(
                        e["event"], "check_failed",
                        "the simulator found a wrong answer: {e}\nevents: {:#?}",
                        self.seen
                    );
                    if e["event"] == name {
                        return e;
                    }
                }
                Err(_) => panic!(
                    "no {name:?} event within {timeout:?}; events: {:#?}",
                    self.seen
                ),
            }
        }
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// nectr-agent against the simulator; killed on drop.
struct SimAgent {
    child: Child,
    work: PathBuf,
}

impl SimAgent {
    fn start(url: &str, websocket: bool, work: &Path, extra: &[&str]) -> SimAgent {
        let log = std::fs::File::create(work.with_extension("log")).expect("agent log");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_nectr-agent"));
        cmd.args(["-url", url, "-name", "n1", "-secret", SECRET])
            .arg("-workDir")
            .arg(work)
            .args(extra)
            .env_remove("NECTR_JVM")
            .env_remove("NECTR_JVM_IDLE")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        if websocket {
            cmd.arg("-webSocket");
        }
        SimAgent {
            child: cmd.spawn().expect("start nectr-agent"),
            work: work.to_path_buf(),
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.work.with_extension("log")).unwrap_or_default()
    }

    fn helper_log(&self) -> String {
        std::fs::read_to_string(self.work.join("remoting/logs/jvm-helper.log")).unwrap_or_default()
    }

    /// Waits until the agent's log has a line with all of `words`; returns that line.
    fn wait_line(&self, words: &[&str], timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let log = self.log();
            if let Some(l) = log.lines().find(|l| words.iter().all(|w| l.contains(w))) {
                return l.to_string();
            }
            assert!(
                Instant::now() < deadline,
                "the agent's log has no line with {words:?}:\n{log}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The pids of the helpers the agent started, in order.
    fn helper_pids(&self) -> Vec<u32> {
        self.log()
            .lines()
            .filter(|l| l.contains("JVM helper started"))
            .filter_map(|l| field(l, "pid"))
            .filter_map(|p| p.parse().ok())
            .collect()
    }
}

impl Drop for SimAgent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The value of `name=value` in a log line.
fn field<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(name)?.strip_prefix('='))
}

fn process_exists(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| !s.contains(") Z "))
        .unwrap_or(false)
}

fn wait_gone(pid: u32, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while process_exists(pid) {
        assert!(Instant::now() < deadline, "process {pid} is still running");
        std::thread::sleep(Duration::from_millis(50));
    }
}

const SIM_CALL: Duration = Duration::from_secs(180);

fn plugin_callables_through_the_helper(websocket: bool) {
    let mut sim = Sim::start("helper-calls", remoting_jar(), &[]);
    let work = support::scratch("helper-calls");
    let agent = SimAgent::start(&sim.url, websocket, &work, &[]);
    sim.wait_for("helper_value_ok", SIM_CALL);
    // The helper has the agent's environment, minus its secret, and no secret in its command line.
    let pid = agent.helper_pids()[0];
    let environ = std::fs::read(format!("/proc/{pid}/environ")).expect("the helper's environment");
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).expect("the helper's command line");
    for bytes in [&environ, &cmdline] {
        assert!(
            !String::from_utf8_lossy(bytes).contains(SECRET),
            "the agent's secret reached the JVM helper"
        );
    }
    sim.wait_for("helper_exported", SIM_CALL);
    sim.wait_for("helper_export_ok", SIM_CALL);
    let s = sim.wait_for("helper_stream_ok", SIM_CALL);
    assert_eq!(s["bytes"], 8 << 20);
    let log = agent.log();
    for c in [
        "nectr.plugin.Value",
        "nectr.plugin.ExportGreeter",
        "RPC fail",
        "nectr.plugin.Stream",
    ] {
        assert!(
            log.lines()
                .any(|l| l.contains("delegated to the JVM helper")
                    && l.contains(&format!("callable={c}"))),
            "the agent's log names {c} as delegated:\n{log}"
        );
    }
}

fn native_and_delegated_calls_never_mix(websocket: bool) {
    let mut sim = Sim::start("helper-mixed", remoting_jar(), &[]);
    let work = support::scratch("helper-mixed");
    let _agent = SimAgent::start(&sim.url, websocket, &work, &[]);
    let e = sim.wait_for("helper_mixed_ok", Duration::from_secs(400));
    assert_eq!(
        (e["count"].as_u64(), e["delegated"].as_u64()),
        (Some(1000), Some(500))
    );
}

fn a_helper_killed_mid_call_fails_only_that_call(websocket: bool) {
    let mut sim = Sim::start("helper-kill", remoting_jar(), &[]);
    let work = support::scratch("helper-kill");
    let agent = SimAgent::start(&sim.url, websocket, &work, &[]);
    let deadline = Instant::now() + SIM_CALL;
    while !agent.helper_log().contains("nectr-plugin: sleeping") {
        assert!(
            Instant::now() < deadline,
            "the helper never started the call: {}",
            agent.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let pid = agent.helper_pids()[0];
    // SAFETY: a plain kill of the helper process this test's agent started.
    unsafe {
        libc::kill(pid as i32, libc::SIGKILL);
    }
    let e = sim.wait_for("helper_died_answered", SIM_CALL);
    assert!(
        e["message"]
            .as_str()
            .is_some_and(|m| m.contains("signal 9")),
        "{e}"
    );
    sim.wait_for("helper_kill_ok", SIM_CALL);
    let pids = agent.helper_pids();
    assert_eq!(
        pids.len(),
        2,
        "a second helper ran the next call: {}",
        agent.log()
    );
    assert_ne!(pids[0], pids[1]);
}

fn the_idle_helper_stops_and_starts_again(websocket: bool) {
    let work = support::scratch("helper-idle");
    let go = work.with_extension("go");
    let go_s = go.to_string_lossy().to_string();
    let mut sim = Sim::start("helper-idle", remoting_jar(), &["--go-file", &go_s]);
    let agent = SimAgent::start(&sim.url, websocket, &work, &["--jvm-idle", "1"]);
    sim.wait_for("helper_waiting_for_idle", SIM_CALL);
    agent.wait_line(&["stopping the idle JVM helper"], SIM_CALL);
    let first = agent.helper_pids()[0];
    wait_gone(first, Duration::from_secs(60));
    std::fs::write(&go, b"go").expect("signal the simulator");
    let e = sim.wait_for("helper_idle_ok", SIM_CALL);
    assert!(
        e["stale_with_new_helper"]
            .as_str()
            .is_some_and(|m| m.contains("stopped")),
        "{e}"
    );
    agent.wait_line(&["JVM helper started", "generation=2"], SIM_CALL);
}

fn jvm_off_answers_plugin_callables_with_an_exception(websocket: bool) {
    let mut sim = Sim::start("helper-off", remoting_jar(), &[]);
    let work = support::scratch("helper-off");
    let agent = SimAgent::start(&sim.url, websocket, &work, &["--jvm", "off"]);
    sim.wait_for("helper_off_ok", SIM_CALL);
    let log = agent.log();
    assert!(!log.contains("JVM helper started"), "{log}");
    assert!(
        !work.join("remoting/jvm").exists(),
        "no agent.jar was fetched with --jvm off"
    );
}

/// A Java that is not there: plugin callables get an exception that names the class and what to
/// do, and the agent stays up (the simulator pings it after the call).
fn a_missing_java_is_a_clear_exception_and_the_agent_stays_up(websocket: bool) {
    let mut sim = Sim::start("helper-off", remoting_jar(), &[]);
    let work = support::scratch("helper-nojava");
    let mut agent = SimAgent::start(&sim.url, websocket, &work, &["--jvm", "/nonexistent/java"]);
    let e = sim.wait_for("helper_off_ok", SIM_CALL);
    let msg = e["message"].as_str().unwrap_or_default();
    assert!(
        msg.contains("/nonexistent/java") && msg.contains("Java 17+"),
        "the exception says what is missing and what to do: {msg}"
    );
    agent.wait_line(&["JVM helper unavailable"], SIM_CALL);
    assert!(
        agent.child.try_wait().expect("wait").is_none(),
        "the agent is still running"
    );
}

/// A copy of the remoting jar that differs from it (one more entry), with modification time
/// `age` ago.
fn jar_variant(dir: &Path, name: &str, extra: bool, age: Duration) -> PathBuf {
    let path = dir.join(name);
    std::fs::copy(remoting_jar(), &path).expect("copy the jar");
    if extra {
        std::fs::write(dir.join("nectr-variant.txt"), name).expect("entry");
        let out = Command::new("jar")
            .args(["uf", name, "nectr-variant.txt"])
            .current_dir(dir)
            .output()
            .expect("jar uf");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .expect("open");
    f.set_modified(std::time::SystemTime::now() - age)
        .expect("set mtime");
    path
}

fn sha1_of(path: &Path) -> String {
    let out = Command::new("sha1sum").arg(path).output().expect("sha1sum");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .expect("a sha1")
        .to_string()
}

/// One delegated call against a simulator serving `jar`, with the agent's work dir `work`;
/// returns the agent's log.
fn one_call(websocket: bool, jar: &Path, work: &Path) -> String {
    let mut sim = Sim::start("helper-jar", jar, &[]);
    let agent = SimAgent::start(&sim.url, websocket, work, &[]);
    sim.wait_for("helper_value_ok", SIM_CALL);
    agent.log()
}

fn a_changed_agent_jar_replaces_the_cached_one(websocket: bool) {
    let dir = support::scratch("helper-jars");
    let day = Duration::from_secs(86_400);
    let current = jar_variant(&dir, "current.jar", false, day);
    let older = jar_variant(&dir, "older.jar", true, 10 * day);
    let (a, b) = (sha1_of(&current), sha1_of(&older));
    assert_ne!(a, b);
    let work = support::scratch("helper-jar-work");
    let cached = || -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(work.join("remoting/jvm"))
            .map(|r| {
                r.flatten()
                    .map(|e| e.file_name().to_string_lossy().to_string())
                    .collect()
            })
            .unwrap_or_default();
        v.retain(|n| n.ends_with(".jar"));
        v
    };
    let log = one_call(websocket, &current, &work);
    assert!(
        log.contains(&format!(
            "downloaded the controller's agent.jar for the JVM helper sha1={a}"
        )),
        "{log}"
    );
    assert!(log.contains(&format!("agent_jar={a}")), "{log}");
    // The controller now serves an older agent.jar: it replaces the cached one.
    let log = one_call(websocket, &older, &work);
    assert!(
        log.contains(&format!("sha1={b}")) && log.contains(&format!("agent_jar={b}")),
        "{log}"
    );
    assert_eq!(cached(), vec![format!("agent-{b}.jar")]);
    // The same again: the cache is used.
    let log = one_call(websocket, &older, &work);
    assert!(
        !log.contains("downloaded the controller's agent.jar"),
        "{log}"
    );
    assert!(log.contains(&format!("agent_jar={b}")), "{log}");
    // A newer one (the first jar, touched now): replaced again.
    let newer = jar_variant(&dir, "newer.jar", false, Duration::ZERO);
    let log = one_call(websocket, &newer, &work);
    assert!(
        log.contains(&format!("sha1={a}")) && log.contains(&format!("agent_jar={a}")),
        "{log}"
    );
    assert_eq!(cached(), vec![format!("agent-{a}.jar")]);
}

macro_rules! both_transports {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[test]
            fn websocket() {
                super::$name(true);
            }
            #[test]
            fn jnlp4() {
                super::$name(false);
            }
        }
    )*};
}

both_transports!(
    script_console_on_the_node_runs_groovy_on_the_agent,
    script_console_with_the_helper_off_explains,
    groovy_callables_from_the_controller,
    declarative_pipeline_from_git,
    scripted_git_checkout,
    plugin_callables_through_the_helper,
    native_and_delegated_calls_never_mix,
    a_helper_killed_mid_call_fails_only_that_call,
    the_idle_helper_stops_and_starts_again,
    jvm_off_answers_plugin_callables_with_an_exception,
    a_missing_java_is_a_clear_exception_and_the_agent_stays_up,
    a_changed_agent_jar_replaces_the_cached_one,
);
