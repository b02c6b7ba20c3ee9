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
    assert!(
        jenkins.calls().iter().all(|c| c.method == "GET"),
        "plan never writes to Jenkins"
    );
    assert!(jenkins.lock().nodes.is_empty());
}
