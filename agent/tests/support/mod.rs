//! The JDK interop peer (`tests/java`): compiled once per test binary with `javac`, run with
//! `java`. A missing JDK is a test failure with instructions, never a skip.

#![allow(dead_code)]

pub mod jenkins;
pub mod machines;
pub mod sim;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("agent/ has a parent")
        .to_path_buf()
}

/// A fresh scratch directory under the target dir (tests never write outside the repo).
pub fn scratch(name: &str) -> PathBuf {
    let base = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target"));
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = base
        .join("test-scratch")
        .join(format!("{name}-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create scratch dir");
    dir
}

fn tool(name: &str) -> PathBuf {
    if let Some(home) = std::env::var_os("JAVA_HOME") {
        let p = PathBuf::from(home).join("bin").join(name);
        if p.exists() {
            return p;
        }
    }
    PathBuf::from(name)
}

/// Compiles the peer (once per process) and returns its class directory.
pub fn java_peer() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let out = scratch("java-peer-classes");
        let mut sources = Vec::new();
        collect_java(&repo_root().join("tests/java/src"), &mut sources);
        assert!(!sources.is_empty(), "no Java sources under tests/java/src");
        let status = Command::new(tool("javac"))
            .args(["--release", "17", "-nowarn", "-d"])
            .arg(&out)
            .args(&sources)
            .status()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot run javac ({e}). The interop tests need JDK 17: run scripts/test, \
                     which installs it, or `apt-get install openjdk-17-jdk-headless`"
                )
            });
        assert!(status.success(), "javac failed on tests/java/src");
        out
    })
}

fn collect_java(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir)
        .expect("read tests/java/src")
        .flatten()
    {
        let p = e.path();
        if p.is_dir() {
            collect_java(&p, out);
        } else if p.extension().is_some_and(|x| x == "java") {
            out.push(p);
        }
    }
}

/// Runs `nectr.peer.Main` with `args`; panics with its stderr if it fails.
pub fn run_peer(args: &[&str]) -> String {
    let out = Command::new(tool("java"))
        .args([
            "--add-opens",
            "java.base/java.lang=ALL-UNNAMED",
            "--add-opens",
            "java.base/java.util=ALL-UNNAMED",
            "--add-opens",
            "java.base/java.io=ALL-UNNAMED",
            "-cp",
        ])
        .arg(java_peer())
        .arg("nectr.peer.Main")
        .args(args)
        .output()
        .expect("run java (JDK 17 required: run scripts/test)");
    assert!(
        out.status.success(),
        "java peer {:?} failed: {}",
        args,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Files in `dir` with extension `ext`, sorted by name.
pub fn files_with(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("read dir")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == ext))
        .collect();
    v.sort();
    v
}

/// First difference between two JSON values, as a path and both sides.
pub fn json_diff(a: &serde_json::Value, b: &serde_json::Value, path: &str) -> Option<String> {
    use serde_json::Value as J;
    match (a, b) {
        (J::Object(x), J::Object(y)) => {
            let only_in_y = y.keys().filter(|k| !x.contains_key(*k));
            for k in x.keys().chain(only_in_y) {
                match (x.get(k), y.get(k)) {
                    (Some(p), Some(q)) => {
                        if let Some(d) = json_diff(p, q, &format!("{path}.{k}")) {
                            return Some(d);
                        }
                    }
                    (p, q) => return Some(format!("{path}.{k}: {p:?} vs {q:?}")),
                }
            }
            None
        }
        (J::Array(x), J::Array(y)) => {
            for (i, (p, q)) in x.iter().zip(y).enumerate() {
                if let Some(d) = json_diff(p, q, &format!("{path}[{i}]")) {
                    return Some(d);
                }
            }
            (x.len() != y.len()).then(|| format!("{path}: length {} vs {}", x.len(), y.len()))
        }
        _ => (a != b).then(|| {
            let s = |v: &J| {
                let t = v.to_string();
                if t.chars().count() > 200 {
                    format!("{}…", t.chars().take(200).collect::<String>())
                } else {
                    t
                }
            };
            format!("{path}: {} vs {}", s(a), s(b))
        }),
    }
}

/// Parses JSON of any nesting depth (the corpus has 500-deep object chains; serde_json stops
/// at 128 by default).
pub fn parse_json(bytes: &[u8]) -> Result<serde_json::Value, serde_json::Error> {
    use serde::Deserialize;
    let mut de = serde_json::Deserializer::from_slice(bytes);
    de.disable_recursion_limit();
    let v = serde_json::Value::deserialize(&mut de)?;
    de.end()?;
    Ok(v)
}

/// Runs `f` on a thread with a large stack: deep graphs recurse in the JSON helpers.
pub fn with_big_stack<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::Builder::new()
        .stack_size(256 << 20)
        .spawn(f)
        .expect("spawn test thread")
        .join()
        .unwrap_or_else(|e| std::panic::resume_unwind(e))
}

/// The entry names of a zip archive (read with `unzip -Z1`, the system's unzip).
pub fn unzip_names(zip: &[u8]) -> Vec<String> {
    let f = scratch("unzip").join("a.zip");
    std::fs::write(&f, zip).expect("write zip");
    let out = std::process::Command::new("unzip")
        .arg("-Z1")
        .arg(&f)
        .output()
        .expect("unzip is needed (apt-get install unzip; scripts/test installs it)");
    assert!(
        out.status.success(),
        "unzip: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

/// The secret of node `n1` in [`Simulator::start`].
pub const SIM_SECRET: &str = "0123456789abcdef-not-a-real-secret";

/// The controller simulator (`tests/java/src/nectr/sim`), node `n1` with [`SIM_SECRET`],
/// its JSON events read on a thread. Stopped (and its stdin closed) when dropped.
pub struct Simulator {
    child: std::process::Child,
    events: std::sync::mpsc::Receiver<serde_json::Value>,
    /// Every event seen so far.
    pub seen: Vec<serde_json::Value>,
    /// `http://127.0.0.1:PORT/`
    pub url: String,
    /// The JNLP4 agent port.
    pub jnlp_port: u16,
    /// `check_failed` events whose `what` contains one of these are expected (e.g. the
    /// simulator writing to a connection the agent already left) and do not fail the test.
    pub tolerate: Vec<&'static str>,
}

impl Simulator {
    /// Starts the `online` scenario with `extra` options and waits until it listens.
    pub fn start(extra: &[&str]) -> Simulator {
        use std::io::BufRead;
        let mut child = Command::new(tool("java"))
            .arg("-cp")
            .arg(java_peer())
            .arg("nectr.sim.Main")
            .args(["--node", &format!("n1={SIM_SECRET}")])
            .args(extra)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::inherit())
            .spawn()
            .expect("start the controller simulator (java; JDK 17 required: run scripts/test)");
        let out = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
                if let Ok(j) = serde_json::from_str::<serde_json::Value>(&line) {
                    if tx.send(j).is_err() {
                        break;
                    }
                }
            }
        });
        let mut sim = Simulator {
            child,
            events: rx,
            seen: Vec::new(),
            url: String::new(),
            jnlp_port: 0,
            tolerate: Vec::new(),
        };
        let l = sim.wait_for("listening", std::time::Duration::from_secs(60));
        sim.url = l["url"].as_str().expect("url").to_string();
        sim.jnlp_port = l["jnlp_port"].as_u64().expect("jnlp_port") as u16;
        sim
    }

    /// Waits for an event named `name`; panics on timeout or on any `check_failed`.
    pub fn wait_for(&mut self, name: &str, timeout: std::time::Duration) -> serde_json::Value {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.events.recv_timeout(left) {
                Ok(e) => {
                    self.seen.push(e.clone());
                    let what = e["what"].as_str().unwrap_or_default();
                    let expected = self.tolerate.iter().any(|t| what.contains(t));
                    assert!(
                        e["event"] != "check_failed" || expected,
                        "the simulator found a wrong answer: {e}"
                    );
                    if e["event"] == name {
                        return e;
                    }
                }
                Err(_) => panic!(
                    "no {name:?} event within {timeout:?}; events so far: {:#?}",
                    self.seen
                ),
            }
        }
    }

    /// The simulator's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The controller's instance identity (see [`instance_identity`]).
    pub fn identity(&self) -> String {
        instance_identity(&self.url)
    }
}

impl Drop for Simulator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A `nectr-agent` process whose stderr goes to a file (a pipe nobody reads could fill up).
pub struct AgentProc {
    /// The process.
    pub child: std::process::Child,
    /// Its stderr.
    pub log: PathBuf,
}

impl AgentProc {
    /// Starts `cmd` (from [`agent_command`]) with stderr into `dir/stderr-N.txt`.
    pub fn spawn(mut cmd: Command, dir: &Path) -> AgentProc {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let log = dir.join(format!("stderr-{n}.txt"));
        let child = cmd
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("start nectr-agent");
        AgentProc { child, log }
    }

    /// What it logged so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until its stderr contains `needle` `times` times; panics (with the log) after
    /// `timeout` or if it exits first.
    pub fn wait_log(&mut self, needle: &str, times: usize, timeout: std::time::Duration) -> String {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let log = self.stderr();
            if log.matches(needle).count() >= times {
                return log;
            }
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!(
                    "nectr-agent exited ({status}) before logging {needle:?} {times}x:\n{}",
                    self.stderr()
                );
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no {needle:?} ({times}x) within {timeout:?}:\n{log}"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }

    /// Waits for it to exit; returns the exit code and stderr.
    pub fn wait_exit(mut self, timeout: std::time::Duration) -> (Option<i32>, String) {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return (status.code(), self.stderr());
            }
            assert!(
                std::time::Instant::now() < deadline,
                "nectr-agent did not exit within {timeout:?}:\n{}",
                self.stderr()
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }
}

impl Drop for AgentProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `nectr-agent` with an empty environment (only PATH), so the tests see exactly the
/// variables they set.
pub fn agent_command() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_nectr-agent"));
    c.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default());
    c
}

/// A controller's instance identity, as `GET <url>tcpSlaveAgentListener/` shows it in
/// `X-Instance-Identity` (what an admin copies into `-instanceIdentity`). `url` is
/// `http://HOST:PORT/`.
pub fn instance_identity(url: &str) -> String {
    use std::io::{Read, Write};
    let authority = url.trim_start_matches("http://").trim_end_matches('/');
    let mut s = std::net::TcpStream::connect(authority).unwrap();
    write!(
        s,
        "GET /tcpSlaveAgentListener/ HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = Vec::new();
    s.read_to_end(&mut answer).unwrap();
    String::from_utf8_lossy(&answer)
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("X-Instance-Identity")
                .then(|| v.trim().to_string())
        })
        .expect("X-Instance-Identity in the discovery answer")
}
