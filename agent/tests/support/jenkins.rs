//! The real Jenkins in `../shared/jenkins/` (2.460 with the Pipeline, git and junit plugins) as
//! a test peer: started once per test binary ([`Jenkins::shared`]), driven through its REST
//! API as a user would (nodes, jobs, builds, console text), stopped when the test process
//! ends. A missing Jenkins or JDK fails the test with instructions; nothing is skipped.

#![allow(dead_code)]

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use super::{repo_root, scratch};

/// A running Jenkins on loopback.
pub struct Jenkins {
    /// `http://127.0.0.1:PORT/`
    pub url: String,
    /// The inbound TCP port for JNLP4-connect.
    pub agent_port: u16,
    /// The admin's API token.
    token: String,
    /// `JENKINS_HOME`.
    pub home: PathBuf,
    /// The HTTP port.
    port: u16,
    /// The Jenkins process.
    pid: std::sync::atomic::AtomicU32,
}

/// Where the shared Jenkins lives: `$NECTR_JENKINS_DIR`, else `../shared/jenkins` beside the
/// repository.
pub fn jenkins_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("NECTR_JENKINS_DIR") {
        return PathBuf::from(d);
    }
    repo_root().join("../shared/jenkins")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// How long Jenkins may take to answer after start (8-20 s on two cores; more under load).
const START_TIMEOUT: Duration = Duration::from_secs(240);

impl Jenkins {
    /// The Jenkins of this test binary, started on first use.
    pub fn shared() -> &'static Jenkins {
        static J: OnceLock<Jenkins> = OnceLock::new();
        J.get_or_init(Jenkins::start)
    }

    /// A Jenkins of the caller's own (for tests that restart it).
    pub fn start() -> Jenkins {
        let home = scratch("jenkins-home");
        let _ = std::fs::remove_dir_all(&home);
        let mut j = Jenkins {
            url: String::new(),
            agent_port: free_port(),
            token: String::new(),
            home,
            port: free_port(),
            pid: std::sync::atomic::AtomicU32::new(0),
        };
        j.url = format!("http://127.0.0.1:{}/", j.port);
        j.launch();
        j
    }

    /// Stops Jenkins in order (SIGTERM: running Pipelines are saved) and starts it again on
    /// the same home and ports.
    pub fn restart(&mut self) {
        let pid = self.pid.load(std::sync::atomic::Ordering::SeqCst) as i32;
        unsafe {
            libc::kill(pid, libc::SIGTERM);
        }
        let deadline = Instant::now() + START_TIMEOUT;
        while std::path::Path::new(&format!("/proc/{pid}")).exists() {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            if stat
                .rsplit_once(')')
                .is_some_and(|(_, r)| r.trim_start().starts_with('Z'))
            {
                break;
            }
            assert!(Instant::now() < deadline, "Jenkins did not stop");
            std::thread::sleep(Duration::from_millis(100));
        }
        // The start script sets the home up again (same admin, a new token).
        let _ = std::fs::remove_file(self.home.join("nectr-admin.token"));
        self.launch();
    }

    fn launch(&mut self) {
        let dir = jenkins_dir();
        let start = dir.join("start");
        assert!(
            start.exists() && dir.join("jenkins.war").exists(),
            "the real Jenkins is not at {} (its `start` script and jenkins.war): these tests \
             need it; set NECTR_JENKINS_DIR to where it is",
            dir.display()
        );
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.home.with_extension("log"))
            .expect("jenkins log");
        let (tx, rx) = std::sync::mpsc::channel();
        let h = self.home.clone();
        let (port, agent_port) = (self.port, self.agent_port);
        // The Jenkins process dies with this thread (PR_SET_PDEATHSIG), and the thread lives
        // as long as the test process: no Jenkins outlives its tests.
        std::thread::Builder::new()
            .name("jenkins-keeper".into())
            .spawn(move || {
                let mut cmd = Command::new(&start);
                cmd.args(["--home"])
                    .arg(&h)
                    .args(["--port", &port.to_string()])
                    .args(["--agent-port", &agent_port.to_string()])
                    .stdin(Stdio::null())
                    .stdout(log.try_clone().expect("log"))
                    .stderr(log);
                unsafe {
                    use std::os::unix::process::CommandExt;
                    cmd.pre_exec(|| {
                        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                        Ok(())
                    });
                }
                match cmd.spawn() {
                    Ok(mut child) => {
                        let _ = tx.send(Ok(child.id()));
                        // Reaped when Jenkins stops; otherwise it dies with this thread.
                        let _ = child.wait();
                        loop {
                            std::thread::park();
                        }
                    }
                    Err(e) => {
                        let _ = tx.send(Err(e.to_string()));
                    }
                }
            })
            .expect("spawn the jenkins keeper");
        let pid: u32 = rx.recv().expect("keeper answers").unwrap_or_else(|e| {
            panic!("cannot start the real Jenkins ({e}); it needs java (run scripts/test)")
        });
        self.pid.store(pid, std::sync::atomic::Ordering::SeqCst);
        let began = Instant::now();
        let deadline = began + START_TIMEOUT;
        let token_file = self.home.join("nectr-admin.token");
        loop {
            if let Ok(token) = std::fs::read_to_string(&token_file) {
                self.token = token.trim().to_string();
                if !self.token.is_empty() && self.get("api/json").0 == 200 {
                    // durable-task's heartbeat (`FilePath$LastModified` of the step's log)
                    // every 4 s instead of every 300 s, so every Pipeline step longer than
                    // that exercises it.
                    let out = self.script(
                        "def c = jenkins.model.Jenkins.get().pluginManager.uberClassLoader\
                         .loadClass('org.jenkinsci.plugins.durabletask.BourneShellScript')\n\
                         def f = c.getDeclaredField('HEARTBEAT_CHECK_INTERVAL')\n\
                         f.setAccessible(true)\n\
                         f.setInt(null, 4)\n\
                         print(f.getInt(null))",
                    );
                    assert_eq!(out.trim(), "4", "setting the heartbeat interval: {out}");
                    eprintln!(
                        "jenkins: up at {} (pid {pid}) after {:.1}s",
                        self.url,
                        began.elapsed().as_secs_f64()
                    );
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "Jenkins did not answer within {}s; see {}",
                START_TIMEOUT.as_secs(),
                self.home.with_extension("log").display()
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    fn agent(&self) -> ureq::Agent {
        ureq::AgentBuilder::new()
            .timeout(Duration::from_secs(120))
            .redirects(0)
            .build()
    }

    fn auth(&self) -> String {
        use base64::Engine;
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("admin:{}", self.token))
        )
    }

    fn send(
        &self,
        req: ureq::Request,
        body: Option<(&str, &[u8])>,
    ) -> (u16, String, Option<String>) {
        let req = req.set("Authorization", &self.auth());
        let r = match body {
            Some((ct, b)) => req.set("Content-Type", ct).send_bytes(b),
            None => req.call(),
        };
        let resp = match r {
            Ok(r) => r,
            Err(ureq::Error::Status(_, r)) => r,
            Err(e) => panic!("Jenkins request failed: {e}"),
        };
        let status = resp.status();
        let location = resp.header("Location").map(str::to_string);
        let mut text = String::new();
        let _ = resp.into_reader().take(64 << 20).read_to_string(&mut text);
        (status, text, location)
    }

    /// GET `path` (relative to the root): status and body.
    pub fn get(&self, path: &str) -> (u16, String) {
        let (s, b, _) = self.send(self.agent().get(&format!("{}{path}", self.url)), None);
        (s, b)
    }

    /// GET `path` as bytes.
    pub fn get_bytes(&self, path: &str) -> (u16, Vec<u8>) {
        let r = self
            .agent()
            .get(&format!("{}{path}", self.url))
            .set("Authorization", &self.auth())
            .call();
        let resp = match r {
            Ok(r) => r,
            Err(ureq::Error::Status(_, r)) => r,
            Err(e) => panic!("Jenkins request failed: {e}"),
        };
        let status = resp.status();
        let mut v = Vec::new();
        let _ = resp.into_reader().take(1 << 30).read_to_end(&mut v);
        (status, v)
    }

    /// POST `path` with `body` of `content_type`: status, body, Location.
    pub fn post(
        &self,
        path: &str,
        content_type: &str,
        body: &[u8],
    ) -> (u16, String, Option<String>) {
        self.send(
            self.agent().post(&format!("{}{path}", self.url)),
            Some((content_type, body)),
        )
    }

    /// Runs a Groovy script in the controller's script console; returns its output.
    pub fn script(&self, groovy: &str) -> String {
        let body = format!("script={}", urlencode(groovy));
        let (s, out, _) = self.post(
            "scriptText",
            "application/x-www-form-urlencoded",
            body.as_bytes(),
        );
        assert_eq!(s, 200, "scriptText failed: {out}");
        out
    }

    /// Creates a permanent inbound node `name` with `executors` and `labels`, root `work`;
    /// returns its secret.
    pub fn create_node(&self, name: &str, labels: &str, executors: u32, work: &Path) -> String {
        let out = self.script(&format!(
            "import hudson.slaves.*\n\
             def n = new DumbSlave('{name}', '{}', new JNLPLauncher(true))\n\
             n.setNumExecutors({executors})\n\
             n.setLabelString('{labels}')\n\
             n.setRetentionStrategy(new RetentionStrategy.Always())\n\
             jenkins.model.Jenkins.get().addNode(n)\n\
             println(jenkins.model.Jenkins.get().getComputer('{name}').getJnlpMac())",
            work.display()
        ));
        let secret = out.trim().to_string();
        assert_eq!(secret.len(), 64, "unexpected secret output: {out}");
        secret
    }

    /// Waits until node `name` is online (or `timeout`).
    pub fn wait_online(&self, name: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let (s, b) = self.get(&format!("computer/{name}/api/json?tree=offline"));
            if s == 200 && b.contains("\"offline\":false") {
                return;
            }
            assert!(Instant::now() < deadline, "node {name} not online: {b}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Creates (or replaces) job `name` from its config.xml.
    pub fn create_job(&self, name: &str, config_xml: &str) {
        let _ = self.post(&format!("job/{name}/doDelete"), "text/plain", b"");
        let (s, b, _) = self.post(
            &format!("createItem?name={name}"),
            "application/xml",
            config_xml.as_bytes(),
        );
        assert!(s == 200, "createItem {name}: {s} {b}");
    }

    /// A freestyle job running `script` in an "Execute shell" step on `label`.
    pub fn freestyle_xml(label: &str, script: &str, unstable_return: Option<i32>) -> String {
        let unstable = unstable_return
            .map(|c| format!("<unstableReturn>{c}</unstableReturn>"))
            .unwrap_or_default();
        format!(
            "<?xml version='1.1' encoding='UTF-8'?><project><assignedNode>{}</assignedNode>\
             <canRoam>false</canRoam><builders><hudson.tasks.Shell><command>{}</command>{unstable}\
             </hudson.tasks.Shell></builders></project>",
            xml_escape(label),
            xml_escape(script)
        )
    }

    /// A Pipeline job with `script` (scripted or declarative Groovy), sandbox off.
    pub fn pipeline_xml(script: &str) -> String {
        format!(
            "<?xml version='1.1' encoding='UTF-8'?><flow-definition plugin=\"workflow-job\">\
             <definition class=\"org.jenkinsci.plugins.workflow.cps.CpsFlowDefinition\" plugin=\"workflow-cps\">\
             <script>{}</script><sandbox>true</sandbox></definition></flow-definition>",
            xml_escape(script)
        )
    }

    /// Triggers job `name`; returns the build number once it left the queue.
    pub fn build(&self, name: &str, timeout: Duration) -> u32 {
        let (s, b, loc) = self.post(&format!("job/{name}/build?delay=0sec"), "text/plain", b"");
        assert!(s == 201 || s == 200, "build {name}: {s} {b}");
        let loc = loc.expect("a queue item Location");
        let item = loc
            .trim_end_matches('/')
            .rsplit('/')
            .next()
            .expect("queue item id")
            .to_string();
        let deadline = Instant::now() + timeout;
        loop {
            let (s, b) = self.get(&format!("queue/item/{item}/api/json"));
            if s == 200 {
                let v: serde_json::Value = serde_json::from_str(&b).expect("queue item json");
                if let Some(n) = v["executable"]["number"].as_u64() {
                    return n as u32;
                }
            }
            assert!(Instant::now() < deadline, "job {name} still queued: {b}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits for build `n` of `name` to finish; returns its result (SUCCESS, FAILURE …).
    pub fn wait_result(&self, name: &str, n: u32, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let (s, b) = self.get(&format!("job/{name}/{n}/api/json?tree=building,result"));
            if s == 200 {
                let v: serde_json::Value = serde_json::from_str(&b).expect("build json");
                if v["building"] == false {
                    if let Some(r) = v["result"].as_str() {
                        return r.to_string();
                    }
                }
            }
            assert!(
                Instant::now() < deadline,
                "build {name} #{n} still running after {timeout:?}; console:\n{}",
                self.console(name, n)
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The console text of build `n` of `name`.
    pub fn console(&self, name: &str, n: u32) -> String {
        self.get(&format!("job/{name}/{n}/consoleText")).1
    }

    /// The complete console text of finished build `n` (Jenkins marks a build as no longer
    /// building before it writes the "Finished:" line).
    pub fn final_console(&self, name: &str, n: u32) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let c = self.console(name, n);
            if c.contains("\nFinished: ") || Instant::now() > deadline {
                return c;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Runs job `name` once and returns (result, console).
    pub fn run(&self, name: &str, timeout: Duration) -> (String, String) {
        let n = self.build(name, timeout);
        let r = self.wait_result(name, n, timeout);
        (r, self.final_console(name, n))
    }
}

/// `application/x-www-form-urlencoded` value encoding.
pub fn urlencode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// XML text escaping.
pub fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A `nectr-agent` process connected to a Jenkins; killed on drop.
pub struct NodeAgent {
    /// The process.
    pub child: Child,
    /// Its log file.
    pub log: PathBuf,
}

impl NodeAgent {
    /// Starts the agent binary for node `name` with `secret`, over WebSocket or JNLP4, with
    /// `extra` arguments.
    pub fn start(
        j: &Jenkins,
        name: &str,
        secret: &str,
        work: &Path,
        websocket: bool,
        extra: &[&str],
    ) -> NodeAgent {
        let log = work.with_extension("agent.log");
        let f = std::fs::File::create(&log).expect("agent log");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_nectr-agent"));
        cmd.args(["-url", &j.url, "-name", name, "-workDir"])
            .arg(work)
            .env("JENKINS_SECRET", secret)
            .args(extra)
            .stdin(Stdio::null())
            .stdout(f.try_clone().expect("log"))
            .stderr(f);
        if websocket {
            cmd.arg("-webSocket");
        }
        NodeAgent {
            child: cmd.spawn().expect("start nectr-agent"),
            log,
        }
    }

    /// The agent's log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for NodeAgent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
