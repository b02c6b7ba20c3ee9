//! The `nectr-fleet` binary: check, plan, usage errors.

mod support;

use std::process::Command;
use support::fake_jenkins::FakeJenkins;
use support::moto::Moto;

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_nectr-fleet"));
    c.env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing");
    c
}

#[test]
fn check_accepts_a_valid_file_and_names_key_and_line_otherwise() {
    let dir = support::temp_dir("cli-check");
    let text = support::config_text(
        "cli",
        "https://ci.example.com/",
        "http://127.0.0.1:1/",
        "",
        "",
    );
    let (path, _) = support::write_config(&dir, &text);
    let out = bin()
        .args(["check", "--config"])
        .arg(&path)
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("OK: fleet cli, 1 pool(s)"));

    let bad = text
        .replace("executors = 4", "executors = 0")
        .replace("purchase", "x");
    std::fs::write(&path, &bad).expect("write");
    let out = bin()
        .args(["check", "--config"])
        .arg(&path)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    let line = bad
        .lines()
        .position(|l| l.starts_with("executors = 0"))
        .expect("line")
        + 1;
    assert!(
        err.contains(&format!(
            "fleet.toml:{line}: pool[0] (name \"linux\").executors: 0 is out of range"
        )),
        "{err}"
    );

    std::fs::write(&path, &text).expect("write");
    std::fs::remove_file(dir.join("token")).expect("rm");
    let out = bin()
        .args(["check", "--config"])
        .arg(&path)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("jenkins.token_file: cannot read"));

    let out = bin().args(["frobnicate"]).output().expect("run");
    assert_eq!(out.status.code(), Some(2));
    let out = bin().args(["run"]).output().expect("run");
    assert!(String::from_utf8_lossy(&out.stderr).contains("`run` needs --config FILE"));
}

#[test]
fn plan_prints_and_changes_nothing() {
    let jenkins = FakeJenkins::start();
    let moto = Moto::start();
    jenkins.set_queue_waiting(5, "linux&&x64");
    let dir = support::temp_dir("cli-plan");
    let text = support::config_text("cliplan", &jenkins.url, &moto.url, "", "");
    let (path, _) = support::write_config(&dir, &text);
    let out = bin()
        .args(["plan", "--config"])
        .arg(&path)
        .output()
        .expect("run");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("launch 2 instance(s) for pool linux (4 executors each"),
        "{stdout}"
    );
    assert!(stdout.contains("linux: demand 5 executor(s)"), "{stdout}");
    // No instance yet: $0.00/h, not the -0.0 of an empty float sum.
    assert!(
        stdout.contains("$0.00/h") && !stdout.contains("-0.00"),
        "{stdout}"
    );
    assert!(
        jenkins.calls().iter().all(|c| c.method == "GET"),
        "plan never writes to Jenkins"
    );
    assert!(jenkins.lock().nodes.is_empty());
}

/// A server that accepts connections and never answers (a hung Jenkins, a black-holed
/// endpoint). The accepted sockets stay open for the life of the test process.
fn silent_listener() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}/", l.local_addr().expect("addr"));
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in l.incoming().map_while(Result::ok) {
            held.push(s);
        }
    });
    url
}

#[test]
fn plan_against_silent_peers_shows_progress_is_bounded_and_prints_each_error_once() {
    let silent = silent_listener();
    let dir = support::temp_dir("cli-plan-silent");
    let text = support::config_text("silent", &silent, &silent, "", "")
        .replace("timeout = \"2s\"", "timeout = \"3s\"")
        .replace("timeout = \"10s\"", "timeout = \"3s\"");
    let (path, cfg) = support::write_config(&dir, &text);
    assert_eq!((cfg.jenkins.timeout_ms, cfg.aws.timeout_ms), (3000, 3000));
    let started = std::time::Instant::now();
    let out = bin()
        .args(["plan", "--config"])
        .arg(&path)
        .output()
        .expect("run");
    let took = started.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    // One after the other, the reads took 9 s (computers, queue, describe: 3 s each). Now the
    // queue is not read after a silent computer list read, and Jenkins and EC2 are read at
    // the same time: about 3 s. The bound leaves room for a loaded machine.
    assert!(
        took < std::time::Duration::from_secs(7),
        "plan took {took:?}:\n{stderr}"
    );
    for progress in [
        "plan: reading the computer list, then the queue, from Jenkins at",
        "plan: reading the instances of fleet silent from EC2",
        "plan: Jenkins computer list: failed",
        "plan: Jenkins queue: not read",
        "plan: EC2 instances: failed",
    ] {
        assert!(stderr.contains(progress), "no {progress:?} in:\n{stderr}");
    }
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 2, "one per failed read:\n{stderr}");
    assert!(
        errors[0].contains("Jenkins computer list read: cannot reach Jenkins")
            && errors[0].contains("/computer/api/json:"),
        "{stderr}"
    );
    assert!(errors[1].contains("DescribeInstances"), "{stderr}");
    assert_eq!(
        stderr.matches("cannot reach Jenkins").count(),
        1,
        "printed once:\n{stderr}"
    );
    for noise in ["%5B", "tree=", " WARN ", "Network Error: Network Error"] {
        assert!(!stderr.contains(noise), "{noise:?} in:\n{stderr}");
    }
}
