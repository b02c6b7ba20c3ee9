//! The README's demo loop as a test (issue 15), with shorter timers: a real Jenkins 2.460
//! (`../shared/jenkins`, or `$NECTR_JENKINS_DIR`), moto as EC2, SSM and S3, the instance
//! emulator (`scripts/instance-emulator`: the real `ami/files/nectr-boot` and a real
//! `nectr-agent` per instance) and this crate's `nectr-fleet run`, driven by
//! `scripts/demo-loop`. Freestyle and Pipeline builds (stash, unstash, archive, `nectr-agent
//! push` to S3) must all succeed, every instance must be terminated, every node and stored
//! secret deleted, no busy termination counted, and no process left.
//!
//! The chaos variant kills the fleet (SIGKILL) right after its first launch and starts it
//! again, kills an agent (SIGKILL) in the middle of a build, and restarts Jenkins: builds
//! finish (succeeded, or failed with their reason in the console), nothing is orphaned and
//! nothing busy is terminated.
//!
//! The same loop also runs on the controller simulator (`scripts/demo-loop --controller sim`:
//! `tests/java`'s `nectr.sim.Main --rest`, compiled with `javac` by the script), the demo's
//! fallback when no `jenkins.war` is at hand; it needs a JDK 17, not the real Jenkins.
//!
//! `nectr-agent` and `nectr-agent-push` must sit beside `nectr-fleet` in the target
//! directory: `cargo test --workspace` (scripts/test) builds them; for this file alone,
//! `cargo build -p nectr-agent -p nectr-push` first. Missing peers fail the test.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

/// One loop at a time: each starts its own controller, and the machine has 2 cores.
static SERIAL: Mutex<()> = Mutex::new(());

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn jenkins_dir() -> PathBuf {
    let d = std::env::var_os("NECTR_JENKINS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("../shared/jenkins"));
    assert!(
        d.join("start").is_file() && d.join("jenkins.war").is_file(),
        "the real Jenkins is required: {} has no start script and jenkins.war \
         (set NECTR_JENKINS_DIR to the directory described in ../shared/jenkins/README.md)",
        d.display()
    );
    d
}

/// The moto venv's python (boto3 comes with moto), installed by scripts/fleet-test-peers.
fn venv_python() -> PathBuf {
    let script = repo_root().join("scripts/fleet-test-peers");
    let out = Command::new(&script)
        .output()
        .unwrap_or_else(|e| panic!("moto is required: running {}: {e}", script.display()));
    assert!(
        out.status.success(),
        "moto is required and {} could not install it: {}",
        script.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let moto = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim().to_string());
    moto.with_file_name("python")
}

fn bin_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_BIN_EXE_nectr-fleet"))
        .parent()
        .expect("target dir")
        .to_path_buf();
    for b in ["nectr-agent", "nectr-agent-push"] {
        assert!(
            dir.join(b).is_file(),
            "{} is missing: run `cargo build -p nectr-agent -p nectr-push` (scripts/test's \
             cargo test --workspace builds it)",
            dir.join(b).display()
        );
    }
    dir
}

struct Summary {
    builds: u32,
    succeeded: u32,
    launched: u32,
    terminated: u32,
    busy: u32,
    output: String,
    /// The run's work dir (a Jenkins home is ~200 MB): removed when the test passes, kept
    /// for reading when it fails.
    work: PathBuf,
}

impl Drop for Summary {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.work);
        }
    }
}

/// The controller the loop runs against.
enum Controller {
    /// The real Jenkins 2.460 of [`jenkins_dir`].
    Jenkins,
    /// The controller simulator in REST mode (`--controller sim`).
    Simulator,
}

fn run_loop(name: &str, controller: Controller, extra: &[&str]) -> (bool, Summary) {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let work = std::env::var_os("CARGO_TARGET_TMPDIR")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir)
        .join(format!("demo-loop-{name}-{}", std::process::id()));
    let mut cmd = Command::new(venv_python());
    cmd.arg(repo_root().join("scripts/demo-loop"));
    match controller {
        Controller::Jenkins => cmd.arg("--jenkins-dir").arg(jenkins_dir()),
        Controller::Simulator => cmd.args(["--controller", "sim"]),
    };
    let out = cmd
        .arg("--target")
        .arg(bin_dir())
        .arg("--work")
        .arg(&work)
        // Each emulated instance in its own network namespace: the test runs as root with
        // iproute2 (scripts/test installs it); `on` fails the run when it cannot.
        .args(["--fast", "--timeout", "420", "--netns", "on"])
        .args(extra)
        .output()
        .expect("run scripts/demo-loop");
    let output = format!(
        "{}\n--- stderr ---\n{}\n(work dir {})",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        work.display()
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let last = stdout.lines().last().unwrap_or_default().to_string();
    assert!(
        last.starts_with("demo: builds="),
        "the last line is not the summary: {last:?}\n{output}"
    );
    let field = |k: &str| -> u32 {
        last.split_whitespace()
            .find_map(|f| f.strip_prefix(&format!("{k}=")))
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or_else(|| panic!("no {k}= in {last:?}")) as u32
    };
    let s = Summary {
        builds: field("builds"),
        succeeded: field("succeeded"),
        launched: field("launched"),
        terminated: field("terminated"),
        busy: field("busy_terminations"),
        output,
        work,
    };
    (out.status.success(), s)
}

#[test]
fn the_demo_loop_runs_every_build_and_tears_everything_down() {
    let (ok, s) = run_loop("plain", Controller::Jenkins, &[]);
    assert!(ok, "the demo loop failed:\n{}", s.output);
    assert_eq!((s.builds, s.succeeded), (3, 3), "{}", s.output);
    assert!(s.launched >= 1, "{}", s.output);
    assert_eq!(s.terminated, s.launched, "{}", s.output);
    assert_eq!(s.busy, 0, "{}", s.output);
    for needle in [
        "appeared in EC2 for node nectr-linux-",
        "ran nectr-boot",
        "started nectr-agent",
        "in network namespace nectr-emu-",
        "fleet: launched i-",
        "fleet: raised Auto Scaling group nectr-demo to 1 for node nectr-grouped-",
        "of Auto Scaling group nectr-demo as node nectr-grouped-",
        "appeared in EC2 for node nectr-grouped-",
        "fleet: retired nectr-grouped-",
        " is online ",
        "demo-freestyle #1 | freestyle done",
        "demo-freestyle #2 | freestyle done",
        "demo-pipeline #1 | compiled",
        "demo-pipeline #1 finished: SUCCESS",
        "fleet: fenced nectr-linux-",
        "fleet: retired nectr-linux-",
        "is terminated in EC2: agent stopped",
        "artifacts pushed to s3://nectr-demo-artifacts: demo-pipeline/1/out/report.txt",
        "torn down: no process of the demo is left",
    ] {
        assert!(s.output.contains(needle), "no {needle:?} in:\n{}", s.output);
    }
}

#[test]
fn chaos_fleet_killed_agent_killed_controller_restarted_nothing_orphaned() {
    let (ok, s) = run_loop("chaos", Controller::Jenkins, &["--chaos"]);
    assert!(ok, "the chaos loop failed:\n{}", s.output);
    for needle in [
        "CHAOS: kill -9 nectr-fleet",
        "CHAOS: kill -9 the agent",
        "CHAOS: restarting Jenkins",
        "Jenkins is back",
        // The fleet saw the restart (a new X-Jenkins-Session) and held scale-in.
        "Jenkins restarted (new session): no node counts as idle",
        "demo-pipeline #1 finished: SUCCESS",
        "torn down: no process of the demo is left",
    ] {
        assert!(s.output.contains(needle), "no {needle:?} in:\n{}", s.output);
    }
    assert_eq!(s.builds, 3, "{}", s.output);
    assert!(s.launched >= 1, "{}", s.output);
    assert_eq!(s.terminated, s.launched, "{}", s.output);
    assert_eq!(s.busy, 0, "{}", s.output);
}

/// The demo's fallback without a jenkins.war: the same loop on the controller simulator
/// (REST mode), with the same verdicts. Its builds are Builds.java's plays of the freestyle
/// job and of the Pipeline (writeFile, sh, stash, unstash, archiveArtifacts, `nectr-agent
/// push`); the simulator reports a node deleted under a build, or any protocol check that
/// failed, as a PROBLEM, which fails the loop.
#[test]
fn the_demo_loop_runs_on_the_controller_simulator() {
    let (ok, s) = run_loop("sim", Controller::Simulator, &[]);
    assert!(ok, "the demo loop on the simulator failed:\n{}", s.output);
    assert_eq!((s.builds, s.succeeded), (3, 3), "{}", s.output);
    assert!(s.launched >= 1, "{}", s.output);
    assert_eq!(s.terminated, s.launched, "{}", s.output);
    assert_eq!(s.busy, 0, "{}", s.output);
    for needle in [
        "starting the controller simulator",
        "appeared in EC2 for node nectr-linux-",
        "ran nectr-boot",
        "started nectr-agent",
        "in network namespace nectr-emu-",
        "fleet: launched i-",
        "fleet: raised Auto Scaling group nectr-demo to 1 for node nectr-grouped-",
        "of Auto Scaling group nectr-demo as node nectr-grouped-",
        "appeared in EC2 for node nectr-grouped-",
        "fleet: retired nectr-grouped-",
        "sim: node nectr-linux-",
        " is online ",
        "demo-freestyle #1 | freestyle done",
        "demo-freestyle #2 | freestyle done",
        "demo-pipeline #1 | compiled",
        "demo-pipeline #1 finished: SUCCESS",
        "fleet: fenced nectr-linux-",
        "fleet: retired nectr-linux-",
        "is terminated in EC2: agent stopped",
        "artifacts pushed to s3://nectr-demo-artifacts: demo-pipeline/1/out/report.txt",
        "torn down: no process of the demo is left",
    ] {
        assert!(s.output.contains(needle), "no {needle:?} in:\n{}", s.output);
    }
    assert!(!s.output.contains("PROBLEM"), "{}", s.output);
}
