//! The controller simulator (`tests/java/src/nectr/sim`) and the agent under test, as child
//! processes of a test: their start, the simulator's JSON events, and their end.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::time::{Duration, Instant};

use serde_json::Value as J;

use super::{java_peer, scratch};

/// The secret of node `n1` (never a real one).
pub const SECRET: &str = "0123456789abcdef-not-a-real-secret";

/// A running simulator: its events, in order, as they arrive.
pub struct Sim {
    pub child: Child,
    pub events: Receiver<J>,
    /// Every event received so far (by `wait_for`), in order.
    pub seen: Vec<J>,
    pub url: String,
    pub listening: J,
}

impl Sim {
    pub fn start(scenario: &str, extra: &[&str]) -> Sim {
        let mut cmd = Command::new("java");
        cmd.arg("-cp")
            .arg(java_peer())
            .arg("nectr.sim.Main")
            .args(["--node", &format!("n1={SECRET}"), "--scenario", scenario])
            .args(extra)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut child = cmd.spawn().expect("start the controller simulator (java)");
        let out = child.stdout.take().unwrap();
        let (tx, rx) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                match serde_json::from_str::<J>(&line) {
                    Ok(j) => {
                        if tx.send(j).is_err() {
                            break;
                        }
                    }
                    Err(_) => eprintln!("sim: {line}"),
                }
            }
        });
        let mut sim = Sim {
            child,
            events: rx,
            seen: Vec::new(),
            url: String::new(),
            listening: J::Null,
        };
        // Generous: with --https the simulator first makes its keys with keytool.
        let l = sim.wait_for("listening", Duration::from_secs(60));
        sim.url = l["url"]
            .as_str()
            .expect("url in listening event")
            .to_string();
        sim.listening = l;
        sim
    }

    /// Waits for an event named `name`; fails on timeout or on any `check_failed`.
    pub fn wait_for(&mut self, name: &str, timeout: Duration) -> J {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.events.recv_timeout(left) {
                Ok(e) => {
                    self.seen.push(e.clone());
                    assert_ne!(
                        e["event"], "check_failed",
                        "the simulator found a wrong answer: {e}\nall events: {:#?}",
                        self.seen
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

    /// The events named `name` seen so far.
    pub fn seen_named(&self, name: &str) -> Vec<&J> {
        self.seen.iter().filter(|e| e["event"] == name).collect()
    }

    /// The position of the first seen event named `name` for which `f` holds.
    pub fn position(&self, name: &str, f: impl Fn(&J) -> bool) -> Option<usize> {
        self.seen.iter().position(|e| e["event"] == name && f(e))
    }

    /// The simulator's JNLP4 port (from its `listening` event).
    pub fn jnlp_port(&self) -> u16 {
        self.listening["jnlp_port"].as_u64().expect("jnlp_port") as u16
    }

    /// The simulator's HTTP port (from its URL).
    pub fn http_port(&self) -> u16 {
        self.url
            .trim_end_matches('/')
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .expect("port in the simulator's URL")
    }

    /// Kills the simulator at once (SIGKILL: no CloseCommand, as a crashed controller).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The agent process; its stderr goes to a file (a pipe nobody reads could fill and block it).
pub struct Agent(pub Child, pub PathBuf);

impl Agent {
    pub fn start(url: &str, extra: &[&str]) -> Agent {
        Agent::start_with(url, &["-webSocket"], extra)
    }

    pub fn start_jnlp4(url: &str, extra: &[&str]) -> Agent {
        Agent::start_with(url, &[], extra)
    }

    pub fn start_with(url: &str, transport: &[&str], extra: &[&str]) -> Agent {
        Agent::start_env(url, transport, extra, &[])
    }

    pub fn start_env(url: &str, transport: &[&str], extra: &[&str], env: &[(&str, &str)]) -> Agent {
        Agent::start_in(&scratch("agent-work"), url, transport, extra, env)
    }

    pub fn start_in(
        work: &Path,
        url: &str,
        transport: &[&str],
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Agent {
        Agent::start_under(&[], work, url, transport, extra, env)
    }

    /// Starts the agent as the last arguments of `prefix` (e.g. `unshare --user --`), which
    /// must exec it in the same process.
    pub fn start_under(
        prefix: &[&str],
        work: &Path,
        url: &str,
        transport: &[&str],
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Agent {
        let log = work.join("stderr.txt");
        let stderr = std::fs::File::create(&log).expect("create the agent's stderr file");
        let bin = env!("CARGO_BIN_EXE_nectr-agent");
        let mut cmd = match prefix.split_first() {
            Some((first, rest)) => {
                let mut c = Command::new(first);
                c.args(rest).arg(bin);
                c
            }
            None => Command::new(bin),
        };
        let child = cmd
            .args(["-url", url, "-name", "n1", "-secret", SECRET])
            .args(transport)
            .env_remove("https_proxy")
            .env_remove("HTTPS_PROXY")
            .env_remove("http_proxy")
            .env_remove("HTTP_PROXY")
            .envs(env.iter().copied())
            .arg("-workDir")
            .arg(work)
            .args(extra)
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|e| panic!("start nectr-agent (under {prefix:?}): {e}"));
        Agent(child, log)
    }

    /// The agent's stderr so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.1).unwrap_or_default()
    }

    /// Waits for the agent to exit; returns its status and stderr.
    pub fn wait_exit(mut self, timeout: Duration) -> (Option<i32>, String) {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.0.try_wait().unwrap() {
                let err = std::fs::read_to_string(&self.1).unwrap_or_default();
                return (status.code(), err);
            }
            assert!(
                Instant::now() < deadline,
                "agent did not exit within {timeout:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Live processes (zombies excluded) whose environment carries `var=value`, as Jenkins'
/// ProcessTree finds a build's processes.
pub fn processes_with(var: &str, value: &str) -> Vec<i32> {
    let needle = format!("{var}={value}");
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(env) = std::fs::read(format!("/proc/{pid}/environ")) else {
            continue;
        };
        if !env.split(|b| *b == 0).any(|kv| kv == needle.as_bytes()) {
            continue;
        }
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let zombie = stat
            .rsplit_once(')')
            .is_some_and(|(_, r)| r.trim_start().starts_with('Z'));
        if !zombie {
            out.push(pid);
        }
    }
    out
}

/// The command line of process `pid`, arguments joined by spaces.
pub fn cmdline(pid: i32) -> String {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| {
            b.strip_suffix(&[0])
                .unwrap_or(&b)
                .split(|c| *c == 0)
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_default()
}

/// Polls `f` every 100 ms until it holds; fails after `timeout` naming `what`.
pub fn wait_until(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}
