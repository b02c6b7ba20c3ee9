//! The JVM helper (issue 10) against the real Jenkins 2.460 in `../shared/jenkins/`, over
//! WebSocket and JNLP4-connect: the helper is the `agent.jar` that Jenkins serves at
//! `/jnlpJars/agent.jar`. What a Jenkins user sees is checked: a declarative Pipeline from a
//! git repository (implicit `checkout scm`, native `sh`, `junit`), a scripted `git` checkout,
//! the node's script console, and Groovy callables sent from the controller's script console
//! (a value, an exported object, an 8 MiB stream). The agent's log must say which callables
//! went to the helper, and `sh` must stay native.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use support::jenkins::{urlencode, xml_escape, Jenkins, NodeAgent};

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
    groovy_callables_from_the_controller,
    declarative_pipeline_from_git,
    scripted_git_checkout,
);
