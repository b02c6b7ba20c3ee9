//! What builds cost on nectr-agent (run through `scripts/bench-builds`):
//!
//! * **stash / unstash**: nectr's tar.gz writer (scan + tar + gzip, what `FilePath$Archive`
//!   streams to the controller) and reader (what `FilePath$UntarRemote` extracts) on a
//!   generated tree of mixed files, next to `tar czf` / `tar xzf` of the same tree in the
//!   same run; wall time, CPU time and the peak RSS of the process doing the work.
//! * **`sh` on the real Jenkins**: the same Pipeline (N `sh 'true'` steps, then one step
//!   whose first output line is timed) on a nectr-agent node and on an agent.jar node of the
//!   same machine, against the real Jenkins 2.460 of `../shared/jenkins/`.
//!
//! * **on the controller simulator**: launch → first output byte and launch → exit of `true`
//!   (freestyle), the live log's latency, and stash / unstash of the same tree through the
//!   channel with the agent's peak RSS.
//!
//! Usage: builds [--tree-mib N] [--steps N] [--runs N] [--skip-jenkins] [--skip-tar] [--skip-sim]

#[path = "../tests/support/mod.rs"]
mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use support::jenkins::{Jenkins, NodeAgent};

fn usage(msg: &str) -> ! {
    eprintln!(
        "builds bench: {msg}\nusage: builds [--tree-mib N] [--steps N] [--runs N] [--skip-jenkins] [--skip-tar] [--skip-sim]"
    );
    std::process::exit(2)
}

/// CPU seconds (user + system) of this process and its waited-for children so far.
fn cpu_seconds() -> f64 {
    let mut own: libc::rusage = unsafe { std::mem::zeroed() };
    let mut kids: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage fills the structs.
    unsafe {
        libc::getrusage(libc::RUSAGE_SELF, &mut own);
        libc::getrusage(libc::RUSAGE_CHILDREN, &mut kids);
    }
    let s = |r: &libc::rusage| {
        r.ru_utime.tv_sec as f64
            + r.ru_utime.tv_usec as f64 / 1e6
            + r.ru_stime.tv_sec as f64
            + r.ru_stime.tv_usec as f64 / 1e6
    };
    s(&own) + s(&kids)
}

/// A deterministic tree of about `mib` MiB: many small text files (source-like,
/// compressible), medium half-random files and a few large random ones, in nested
/// directories. Cached in the target dir.
fn tree(mib: u64) -> PathBuf {
    let dir = support::repo_root().join(format!("target/bench-builds/tree-{mib}"));
    if dir.join(".complete").exists() {
        return dir;
    }
    let _ = std::fs::remove_dir_all(&dir);
    let words = [
        "fn", "let", "mut", "impl", "struct", "jenkins", "agent", "build", "stash", "pipeline",
        "return", "match", "Some", "None", "Result", "String", "Vec", "self", "pub", "use",
    ];
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let target = mib << 20;
    let mut total = 0u64;
    let mut i = 0u64;
    while total < target {
        let d = dir.join(format!("d{:02}/s{:02}", i % 37, i % 11));
        std::fs::create_dir_all(&d).unwrap();
        let data: Vec<u8> = match i % 10 {
            0..=5 => {
                let n = 200 + next() % 20_000;
                let mut s = String::new();
                while (s.len() as u64) < n {
                    s.push_str(words[(next() % words.len() as u64) as usize]);
                    s.push(if next() % 9 == 0 { '\n' } else { ' ' });
                }
                s.into_bytes()
            }
            6..=8 => {
                let n = 50_000 + next() % 350_000;
                (0..n)
                    .map(|j| if j < n / 2 { next() as u8 } else { 0 })
                    .collect()
            }
            _ => {
                let n = 2_000_000 + next() % 6_000_000;
                (0..n).map(|_| next() as u8).collect()
            }
        };
        total += data.len() as u64;
        std::fs::write(d.join(format!("f{i:05}.dat")), data).unwrap();
        i += 1;
    }
    std::fs::write(dir.join(".complete"), "").unwrap();
    dir
}

fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        })
        .unwrap_or(0.0)
        / 1024.0
}

fn timed<T>(f: impl FnOnce() -> T) -> (T, f64, f64) {
    let c = cpu_seconds();
    let t = Instant::now();
    let r = f();
    (r, t.elapsed().as_secs_f64(), cpu_seconds() - c)
}

fn tar_bench(mib: u64) {
    let src = tree(mib);
    let bytes: u64 = walk_size(&src);
    let mb = bytes as f64 / 1e6;
    let work = support::scratch("bench-builds");
    let ours_tgz = work.join("ours.tgz");
    let ref_tgz = work.join("ref.tgz");
    // The reference first: tar and gzip as two processes.
    let (_, ref_wall, ref_cpu) = timed(|| {
        let s = Command::new("tar")
            .arg("czf")
            .arg(&ref_tgz)
            .arg("-C")
            .arg(&src)
            .arg(".")
            .status()
            .expect("tar");
        assert!(s.success());
    });
    let ((), ours_wall, ours_cpu) = timed(|| {
        let set = nectr_agent::antglob::FileSet::new("**", None, true, true);
        let found = nectr_agent::handlers::archive::scan(&src, &set, true).unwrap();
        let f = std::fs::File::create(&ours_tgz).unwrap();
        nectr_agent::handlers::archive::write_tree(&found, true, std::io::BufWriter::new(f))
            .unwrap();
    });
    let stash_rss = peak_rss_mib();
    let x_ref = work.join("x-ref");
    let x_ours = work.join("x-ours");
    std::fs::create_dir_all(&x_ref).unwrap();
    let (_, xref_wall, xref_cpu) = timed(|| {
        let s = Command::new("tar")
            .arg("xzf")
            .arg(&ref_tgz)
            .arg("-C")
            .arg(&x_ref)
            .status()
            .expect("tar");
        assert!(s.success());
    });
    let (_, xours_wall, xours_cpu) = timed(|| {
        let f = std::fs::File::open(&ref_tgz).unwrap();
        nectr_agent::handlers::untar::extract(f, true, &x_ours).unwrap();
    });
    let unstash_rss = peak_rss_mib();
    // What was extracted is what was archived.
    let diff = Command::new("diff")
        .arg("-r")
        .arg(&src)
        .arg(&x_ours)
        .output()
        .expect("diff");
    assert!(diff.status.success(), "unstash differs from the tree");
    let sz = |p: &Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0) as f64 / 1e6;
    println!("tree: {mb:.0} MB");
    println!("| work | nectr | tar | nectr / tar (throughput) |\n|---|---|---|---|");
    println!(
        "| stash (tar.gz of the tree) | {:.0} MB/s, {ours_wall:.1} s, {ours_cpu:.1} s CPU, {:.0} MB out | {:.0} MB/s, {ref_wall:.1} s, {ref_cpu:.1} s CPU, {:.0} MB out | {:.2}× |",
        mb / ours_wall,
        sz(&ours_tgz),
        mb / ref_wall,
        sz(&ref_tgz),
        ref_wall / ours_wall
    );
    println!(
        "| unstash (extract the same tar.gz) | {:.0} MB/s, {xours_wall:.1} s, {xours_cpu:.1} s CPU | {:.0} MB/s, {xref_wall:.1} s, {xref_cpu:.1} s CPU | {:.2}× |",
        mb / xours_wall,
        mb / xref_wall,
        xref_wall / xours_wall
    );
    println!("peak RSS of the process doing the work: {stash_rss:.1} MiB after stash, {unstash_rss:.1} MiB after unstash");
    let _ = std::fs::remove_dir_all(&work);
}

fn walk_size(p: &Path) -> u64 {
    let mut n = 0;
    for e in std::fs::read_dir(p).unwrap().flatten() {
        let m = e.metadata().unwrap();
        if m.is_dir() {
            n += walk_size(&e.path());
        } else {
            n += m.len();
        }
    }
    n
}

/// Starts agent.jar (served by the controller) for node `name`.
fn agent_jar(j: &Jenkins, name: &str, secret: &str, work: &Path) -> std::process::Child {
    let (s, jar) = j.get_bytes("jnlpJars/agent.jar");
    assert_eq!(s, 200, "agent.jar");
    let path = work.join("agent.jar");
    std::fs::write(&path, jar).unwrap();
    Command::new("java")
        .arg("-jar")
        .arg(&path)
        .args([
            "-url",
            &j.url,
            "-name",
            name,
            "-secret",
            secret,
            "-webSocket",
            "-workDir",
        ])
        .arg(work)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("java")
}

/// Build duration of a Pipeline (ms, from the controller).
fn duration_ms(j: &Jenkins, job: &str, n: u32) -> u64 {
    let (_, b) = j.get(&format!("job/{job}/{n}/api/json?tree=duration"));
    let v: serde_json::Value = serde_json::from_str(&b).unwrap();
    v["duration"].as_u64().unwrap_or(0)
}

fn jenkins_bench(steps: usize) {
    let j = Jenkins::shared();
    let mut rows = Vec::new();
    for (kind, name) in [("nectr-agent", "bench-nectr"), ("agent.jar", "bench-java")] {
        let root = support::scratch(name);
        let secret = j.create_node(name, name, 1, &root);
        let _agent: Box<dyn std::any::Any> = if kind == "nectr-agent" {
            Box::new(NodeAgent::start(j, name, &secret, &root, true, &[]))
        } else {
            Box::new(KillOnDrop(agent_jar(j, name, &secret, &root)))
        };
        let t = Instant::now();
        j.wait_online(name, Duration::from_secs(120));
        let online = t.elapsed().as_secs_f64();
        let job = format!("bench-sh-{name}");
        // Warm up once (workspace, classes), then measure.
        let script =
            format!("node('{name}') {{ for (int i = 0; i < {steps}; i++) {{ sh 'true' }} }}");
        j.create_job(&job, &Jenkins::pipeline_xml(&script));
        let _ = j.run(&job, Duration::from_secs(600));
        let n = j.build(&job, Duration::from_secs(600));
        let r = j.wait_result(&job, n, Duration::from_secs(600));
        assert_eq!(r, "SUCCESS");
        let per_step = duration_ms(j, &job, n) as f64 / steps as f64;
        // The first output line of a step: the step prints the time it started writing;
        // the console is polled from the outside.
        let live = format!("bench-live-{name}");
        j.create_job(
            &live,
            &Jenkins::pipeline_xml(&format!(
                "node('{name}') {{ sh 'echo go-marker; sleep 5' }}"
            )),
        );
        let b = j.build(&live, Duration::from_secs(600));
        let started = Instant::now();
        let mut first = None;
        while started.elapsed() < Duration::from_secs(60) {
            if j.console(&live, b).contains("go-marker") {
                first = Some(started.elapsed().as_secs_f64() * 1000.0);
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = j.wait_result(&live, b, Duration::from_secs(600));
        rows.push((kind, online, per_step, first.unwrap_or(f64::NAN)));
    }
    println!("\nreal Jenkins 2.460, Pipeline `sh 'true'` x{steps} (build duration / steps), same machine:");
    println!("| agent | connect → online | per `sh 'true'` step | build start → first log line seen |\n|---|---|---|---|");
    for (kind, online, per_step, first) in rows {
        println!("| {kind} | {online:.2} s | {per_step:.0} ms | {first:.0} ms |");
    }
}

/// A simulator run: every event with the instant it arrived.
struct Timed {
    sim: support::sim::Sim,
    events: Vec<(Instant, std::time::SystemTime, serde_json::Value)>,
}

impl Timed {
    fn start(scenario: &str, extra: &[&str]) -> Timed {
        Timed {
            sim: support::sim::Sim::start(scenario, extra),
            events: Vec::new(),
        }
    }

    /// Collects events until one named `name` (or the timeout).
    fn until(&mut self, name: &str, timeout: Duration) -> serde_json::Value {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.sim.events.recv_timeout(left) {
                Ok(e) => {
                    self.events
                        .push((Instant::now(), std::time::SystemTime::now(), e.clone()));
                    if e["event"] == "check_failed" {
                        panic!("the simulator found a wrong answer: {e}");
                    }
                    if e["event"] == name {
                        return e;
                    }
                }
                Err(_) => panic!("no {name} event within {timeout:?}"),
            }
        }
    }

    fn first(&self, f: impl Fn(&serde_json::Value) -> bool) -> Option<Instant> {
        self.events
            .iter()
            .find(|(_, _, e)| f(e))
            .map(|(t, _, _)| *t)
    }
}

fn seq_is(e: &serde_json::Value, what: &str) -> bool {
    e["event"] == "seq" && e["what"].as_str().is_some_and(|w| w.contains(what))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    if v.is_empty() {
        return f64::NAN;
    }
    v[v.len() / 2]
}

fn percentile(mut v: Vec<f64>, p: f64) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    if v.is_empty() {
        return f64::NAN;
    }
    v[((v.len() - 1) as f64 * p).round() as usize]
}

/// One freestyle build of `script` on the simulator (WebSocket); returns its events.
fn freestyle(script: &str) -> Timed {
    let work = support::scratch("bench-sim");
    let script_file = work.join("script.sh");
    std::fs::write(&script_file, script).unwrap();
    let root = work.join("root");
    let mut t = Timed::start(
        "freestyle",
        &[
            "--script-file",
            script_file.to_str().unwrap(),
            "--remote-fs",
            root.to_str().unwrap(),
            "--monitor-seconds",
            "3600",
        ],
    );
    let url = t.sim.url.clone();
    let _agent = support::sim::Agent::start_in(&work, &url, &["-webSocket"], &[], &[]);
    t.until("build_done", Duration::from_secs(120));
    t
}

fn sim_bench(runs: usize, tree_mib: u64) {
    // Launch → first byte of the step's own output, and launch → exit of `true`.
    let mut first = Vec::new();
    let mut exit = Vec::new();
    for _ in 0..runs {
        let t = freestyle("echo first-output\n");
        let launch = t
            .first(|e| seq_is(e, "RemoteLaunchCallable"))
            .expect("launch");
        let out = t
            .first(|e| {
                e["event"] == "log"
                    && e["text"]
                        .as_str()
                        .is_some_and(|s| s.contains("first-output"))
            })
            .expect("output");
        first.push(out.duration_since(launch).as_secs_f64() * 1e3);
        let t = freestyle("true\n");
        let launch = t
            .first(|e| seq_is(e, "RemoteLaunchCallable"))
            .expect("launch");
        let done = t.first(|e| seq_is(e, "Delete")).expect("delete after join");
        exit.push(done.duration_since(launch).as_secs_f64() * 1e3);
    }
    // Live log: lines printed with their own timestamp every 50 ms; latency is their arrival
    // at the controller minus that stamp.
    let t = freestyle("for i in $(seq 40); do echo \"stamp $(date +%s%N)\"; sleep 0.05; done\n");
    let mut lags = Vec::new();
    for (_, wall, e) in &t.events {
        if e["event"] != "log" {
            continue;
        }
        for line in e["text"].as_str().unwrap_or_default().lines() {
            if let Some(ns) = line
                .strip_prefix("stamp ")
                .and_then(|n| n.trim().parse::<u128>().ok())
            {
                let at = wall
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_nanos();
                lags.push(at.saturating_sub(ns) as f64 / 1e6);
            }
        }
    }
    println!("\ncontroller simulator (a fresh simulator JVM per build, WebSocket, release agent), {runs} runs:");
    println!("| measurement | median | p99 / max |\n|---|---|---|");
    println!(
        "| freestyle: launch sent → first byte of the step's output at the controller | {:.1} ms | {:.1} ms |",
        median(first.clone()),
        percentile(first, 1.0)
    );
    println!(
        "| freestyle: launch sent → `true` exited and joined (the controller's next call) | {:.1} ms | {:.1} ms |",
        median(exit.clone()),
        percentile(exit, 1.0)
    );
    println!(
        "| live log: a line printed → at the controller ({} lines) | {:.1} ms | {:.1} ms |",
        lags.len(),
        median(lags.clone()),
        percentile(lags, 0.99)
    );
    // stash and unstash of the generated tree through the channel, the agent's peak RSS.
    let src = tree(tree_mib);
    let mb = walk_size(&src) as f64 / 1e6;
    let work = support::scratch("bench-sim-stash");
    let root = work.join("root");
    let ws = root.join("workspace/p1");
    std::fs::create_dir_all(ws.parent().unwrap()).unwrap();
    let s = Command::new("cp")
        .arg("-al")
        .arg(&src)
        .arg(&ws)
        .status()
        .expect("cp");
    assert!(s.success());
    let _ = std::fs::remove_file(ws.join(".complete"));
    let program = work.join("program.txt");
    std::fs::write(
        &program,
        "stash\tbig\t**\narchive\t**\ndir\tout\tunstash\tbig\n",
    )
    .unwrap();
    let mut t = Timed::start(
        "pipeline",
        &[
            "--program",
            program.to_str().unwrap(),
            "--remote-fs",
            root.to_str().unwrap(),
            "--save-dir",
            work.join("save").to_str().unwrap(),
            "--monitor-seconds",
            "3600",
        ],
    );
    let url = t.sim.url.clone();
    let agent = support::sim::Agent::start_in(&work, &url, &["-webSocket"], &[], &[]);
    let pid = agent.0.id();
    t.until("build_done", Duration::from_secs(1800));
    let cpu = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            let rest = s.rsplit_once(')')?.1.to_string();
            let f: Vec<&str> = rest.split_whitespace().collect();
            let ticks: f64 = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
            Some(ticks / 100.0)
        })
        .unwrap_or(f64::NAN);
    let peak = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        })
        .unwrap_or(f64::NAN)
        / 1024.0;
    let stash_start = t.first(|e| seq_is(e, "FilePath$Archive")).expect("stash");
    let stash_done = t
        .first(|e| e["event"] == "step_done" && e["step"] == "stash")
        .expect("stash done");
    let unstash_start = t.first(|e| seq_is(e, "UntarRemote")).expect("unstash");
    let unstash_done = t
        .first(|e| e["event"] == "step_done" && e["step"] == "unstash")
        .expect("unstash done");
    let archive_start = t
        .first(|e| seq_is(e, "ArtifactArchiver$ListFiles"))
        .expect("archive");
    let archive_done = t
        .first(|e| e["event"] == "step_done" && e["step"] == "archive")
        .expect("archive done");
    let st = stash_done.duration_since(stash_start).as_secs_f64();
    let at = archive_done.duration_since(archive_start).as_secs_f64();
    let ut = unstash_done.duration_since(unstash_start).as_secs_f64();
    println!(
        "\nthrough the channel (simulator, WebSocket): stash of {mb:.0} MB {st:.1} s ({:.0} MB/s), archiveArtifacts {at:.1} s ({:.0} MB/s), unstash {ut:.1} s ({:.0} MB/s); agent CPU {cpu:.1} s in all, peak RSS {peak:.1} MiB",
        mb / st,
        mb / at,
        mb / ut
    );
    let _ = std::fs::remove_dir_all(&work);
}

struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let mut mib = 1024;
    let mut steps = 20;
    let (mut tar, mut jenkins, mut sim) = (true, true, true);
    let mut runs = 5;
    while let Some(a) = args.next() {
        match a.as_str() {
            "--tree-mib" => {
                mib = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or_else(|| usage("--tree-mib needs a number"))
            }
            "--steps" => {
                steps = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or_else(|| usage("--steps needs a number"))
            }
            "--skip-jenkins" => jenkins = false,
            "--skip-sim" => sim = false,
            "--runs" => {
                runs = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or_else(|| usage("--runs needs a number"))
            }
            "--skip-tar" => tar = false,
            "--bench" => {}
            other => usage(&format!("unknown option {other}")),
        }
    }
    if tar {
        tar_bench(mib);
    }
    if sim {
        sim_bench(runs, mib);
    }
    if jenkins {
        jenkins_bench(steps);
    }
}
