//! The agent against the controller simulator on loopback: process start to online, idle RSS
//! after online, request round trip; with `--agent-jar` and `--plugin-cp`, the JVM helper:
//! the first delegated call (the helper's cold start), delegated and native round trips, and
//! memory with and without the helper. Run through `scripts/bench-agent`.
//!
//! Usage: agent --java-cp DIR --agent PATH [--runs N] [--agent-jar JAR --plugin-cp DIR]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::time::{Duration, Instant};

fn usage(msg: &str) -> ! {
    eprintln!("agent bench: {msg}\nusage: agent --java-cp DIR --agent PATH [--runs N] [--agent-jar JAR --plugin-cp DIR]");
    std::process::exit(2)
}

struct Sim {
    child: Child,
    events: Receiver<(Instant, serde_json::Value)>,
    url: String,
}

impl Sim {
    fn start(java_cp: &str, scenario: &str, extra: &[&str]) -> Sim {
        let mut child = Command::new("java")
            .args([
                "-cp",
                java_cp,
                "nectr.sim.Main",
                "--node",
                "n1=bench-secret",
            ])
            .args(["--scenario", scenario, "--monitor-seconds", "3600"])
            .args(extra)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| usage(&format!("cannot start java: {e}")));
        let out = child.stdout.take().expect("piped stdout");
        let (tx, rx) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if let Ok(j) = serde_json::from_str::<serde_json::Value>(&line) {
                    if tx.send((Instant::now(), j)).is_err() {
                        break;
                    }
                }
            }
        });
        let mut sim = Sim {
            child,
            events: rx,
            url: String::new(),
        };
        let (_, l) = sim.wait("listening", Duration::from_secs(30));
        sim.url = l["url"].as_str().unwrap_or_default().to_string();
        sim
    }

    fn wait(&mut self, name: &str, timeout: Duration) -> (Instant, serde_json::Value) {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.events.recv_timeout(left) {
                Ok((t, e)) if e["event"] == name => return (t, e),
                Ok((_, e)) if e["event"] == "check_failed" => usage(&format!("simulator: {e}")),
                Ok(_) => {}
                Err(_) => usage(&format!("no {name} event within {timeout:?}")),
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

fn start_agent(agent: &str, url: &str, work: &std::path::Path, ws: bool) -> Child {
    let mut cmd = Command::new(agent);
    cmd.args([
        "-url",
        url,
        "-name",
        "n1",
        "-secret",
        "bench-secret",
        "-workDir",
    ])
    .arg(work)
    .stdout(Stdio::null())
    .stderr(Stdio::null());
    if ws {
        cmd.arg("-webSocket");
    }
    cmd.spawn()
        .unwrap_or_else(|e| usage(&format!("cannot start {agent}: {e}")))
}

fn rss_kib(pid: u32) -> Option<u64> {
    status_kib(pid, "VmRSS:")
}

fn status_kib(pid: u32, key: &str) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix(key))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Measured 1 GiB copies per transport (after one warm-up copy).
const STREAM_RUNS: usize = 3;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let mut java_cp = None;
    let mut agent = None;
    let mut runs = 5usize;
    let mut agent_jar = None;
    let mut plugin_cp = None;
    let mut helper_only = false;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut val = || {
            it.next()
                .cloned()
                .unwrap_or_else(|| usage(&format!("{a} needs a value")))
        };
        match a.as_str() {
            "--java-cp" => java_cp = Some(val()),
            "--agent" => agent = Some(val()),
            "--agent-jar" => agent_jar = Some(val()),
            "--plugin-cp" => plugin_cp = Some(val()),
            "--helper-only" => helper_only = true,
            "--runs" => {
                runs = val()
                    .parse()
                    .unwrap_or_else(|_| usage("--runs needs a number"))
            }
            other => usage(&format!("unknown argument {other}")),
        }
    }
    let java_cp = java_cp.unwrap_or_else(|| usage("--java-cp is required"));
    let agent = agent.unwrap_or_else(|| usage("--agent is required"));
    let work = std::env::temp_dir().join(format!("nectr-bench-agent-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&work);

    if !helper_only {
        native_bench(&java_cp, &agent, runs, &work);
    }
    if let (Some(jar), Some(plugins)) = (agent_jar, plugin_cp) {
        helper_bench(&java_cp, &agent, &jar, &plugins, runs, &work);
    }
    let _ = std::fs::remove_dir_all(&work);
}

/// Start-up, idle RSS, round trips and 1 GiB copies, per transport.
fn native_bench(java_cp: &str, agent: &str, runs: usize, work: &std::path::Path) {
    println!(
        "{:<12} {:>14} {:>16} {:>10} {:>10} {:>16} {:>14}",
        "transport", "start->online", "idle RSS", "rtt p50", "rtt p99", "1 GiB CopyTo", "peak RSS"
    );
    for (label, ws) in [("WebSocket", true), ("JNLP4", false)] {
        let mut online_ms = Vec::new();
        let mut rss = Vec::new();
        // One simulator for all runs; the first run only warms its JVM up and is not counted,
        // so the figure is the agent's start-up rather than the simulator's class loading.
        let mut sim = Sim::start(java_cp, "online", &[]);
        for run in 0..=runs {
            std::thread::sleep(Duration::from_millis(300));
            let t0 = Instant::now();
            let mut child = start_agent(agent, &sim.url, work, ws);
            let (t, _) = sim.wait("online", Duration::from_secs(60));
            sim.wait("monitors_ok", Duration::from_secs(60));
            std::thread::sleep(Duration::from_secs(1));
            if run > 0 {
                online_ms.push(t.duration_since(t0).as_secs_f64() * 1e3);
                if let Some(k) = rss_kib(child.id()) {
                    rss.push(k as f64 / 1024.0);
                }
            }
            let _ = child.kill();
            let _ = child.wait();
            sim.wait("disconnected", Duration::from_secs(30));
        }
        drop(sim);
        let mut sim = Sim::start(java_cp, "bench", &[]);
        let mut child = start_agent(agent, &sim.url, work, ws);
        let (_, r) = sim.wait("rtt", Duration::from_secs(120));
        let _ = child.kill();
        let _ = child.wait();
        drop(sim);
        // Stream throughput: FilePath$CopyTo of a 1 GiB (sparse) file into the controller.
        let big = work.join("big.bin");
        std::fs::File::create(&big)
            .and_then(|f| f.set_len(1 << 30))
            .unwrap_or_else(|e| usage(&format!("cannot create {big:?}: {e}")));
        // A controller is a long-running, warm JVM: the first copy warms the simulator's JIT
        // up and is not counted; the figure is the median of the next STREAM_RUNS.
        let repeat = (STREAM_RUNS + 1).to_string();
        let mut sim = Sim::start(
            java_cp,
            "bigstream",
            &[
                "--remote-fs",
                work.to_str().unwrap_or("/tmp"),
                "--repeat",
                &repeat,
            ],
        );
        let mut child = start_agent(agent, &sim.url, work, ws);
        let mut rates = Vec::new();
        let mut cold = f64::NAN;
        for run in 0..=STREAM_RUNS {
            let (_, c) = sim.wait("copied", Duration::from_secs(600));
            let rate = c["mb_per_s"].as_f64().unwrap_or(f64::NAN);
            if run > 0 {
                rates.push(rate);
            } else {
                cold = rate;
            }
        }
        let peak = status_kib(child.id(), "VmHWM:").unwrap_or(0) as f64 / 1024.0;
        let _ = child.kill();
        let _ = child.wait();
        let _ = std::fs::remove_file(&big);
        println!(
            "{:<12} {:>11.1} ms {:>12.2} MiB {:>7.0} us {:>7.0} us {:>11.0} MB/s {:>10.1} MiB",
            label,
            median(online_ms),
            median(rss),
            r["p50_us"].as_f64().unwrap_or(f64::NAN),
            r["p99_us"].as_f64().unwrap_or(f64::NAN),
            median(rates),
            peak,
        );
        println!("{:<12} first (cold simulator) copy: {cold:.0} MB/s", "");
    }
}

/// The JVM helper: per transport, `runs` agents started afresh (the helper too; the agent.jar
/// stays cached in the work dir after the first), each timing its first delegated call, and
/// the last also 1000 delegated and 1000 native round trips; RSS of the agent before and after
/// the helper and of the helper's JVM.
fn helper_bench(
    java_cp: &str,
    agent: &str,
    jar: &str,
    plugins: &str,
    runs: usize,
    work: &std::path::Path,
) {
    let cp = format!("{java_cp}:{plugins}");
    println!();
    println!(
        "{:<12} {:>16} {:>16} {:>20} {:>20} {:>12} {:>12} {:>12}",
        "JVM helper",
        "1st call (dl)",
        "1st call",
        "delegated p50/p99",
        "native p50/p99",
        "agent RSS",
        "+helper",
        "helper RSS"
    );
    for (label, ws) in [("WebSocket", true), ("JNLP4", false)] {
        let dir = work.join(format!("helper-{label}"));
        let _ = std::fs::remove_dir_all(&dir);
        let _ = std::fs::create_dir_all(&dir);
        let mut firsts = Vec::new();
        let mut download = f64::NAN;
        let mut last = serde_json::Value::Null;
        let (mut before, mut after, mut helper) = (f64::NAN, f64::NAN, f64::NAN);
        for run in 0..=runs {
            let mut sim = Sim::start(
                &cp,
                "helper-bench",
                &["--agent-jar", jar, "--plugin-classes", plugins],
            );
            let log = dir.join("agent.log");
            let mut child = Command::new(agent)
                .args([
                    "-url",
                    &sim.url,
                    "-name",
                    "n1",
                    "-secret",
                    "bench-secret",
                    "-workDir",
                ])
                .arg(&dir)
                .args(if ws { &["-webSocket"][..] } else { &[][..] })
                .stdout(Stdio::null())
                .stderr(
                    std::fs::File::create(&log).unwrap_or_else(|e| usage(&format!("{log:?}: {e}"))),
                )
                .spawn()
                .unwrap_or_else(|e| usage(&format!("cannot start {agent}: {e}")));
            sim.wait("monitors_ok", Duration::from_secs(60));
            let rss_before = rss_kib(child.id()).unwrap_or(0) as f64 / 1024.0;
            let (_, b) = sim.wait("helper_bench", Duration::from_secs(600));
            let first = b["first_ms"].as_f64().unwrap_or(f64::NAN);
            if run == 0 {
                download = first;
            } else {
                firsts.push(first);
            }
            if run == runs {
                std::thread::sleep(Duration::from_secs(1));
                before = rss_before;
                after = rss_kib(child.id()).unwrap_or(0) as f64 / 1024.0;
                let pid = std::fs::read_to_string(&log).ok().and_then(|l| {
                    l.lines()
                        .rev()
                        .filter(|l| l.contains("JVM helper started"))
                        .find_map(|l| {
                            l.split_whitespace()
                                .find_map(|w| w.strip_prefix("pid=")?.parse::<u32>().ok())
                        })
                });
                helper = pid.and_then(rss_kib).unwrap_or(0) as f64 / 1024.0;
                last = b;
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        let us = |k: &str| last[k].as_f64().unwrap_or(f64::NAN);
        println!(
            "{:<12} {:>13.0} ms {:>13.0} ms {:>9.0} / {:>5.0} us {:>9.0} / {:>5.0} us {:>8.1} MiB {:>8.1} MiB {:>8.1} MiB",
            label,
            download,
            median(firsts),
            us("delegated_p50_us"),
            us("delegated_p99_us"),
            us("native_p50_us"),
            us("native_p99_us"),
            before,
            after,
            helper,
        );
    }
}
