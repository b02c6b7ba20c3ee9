//! The command line as an admin meets it: the README's option table against the parser's,
//! exit statuses, log levels, files written, `debug` subcommands.

mod support;

use std::process::{Command, Output};

use support::*;

fn agent() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_nectr-agent"));
    c.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default());
    c
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn the_readme_option_table_is_the_parsers() {
    let readme = std::fs::read_to_string(repo_root().join("README.md")).unwrap();
    let tables = nectr_agent::cli::markdown_tables();
    assert!(
        readme.contains(&tables),
        "README.md's option table differs from cli::OPTIONS; paste this between the markers:\n\n{tables}"
    );
}

/// A loopback port with nothing listening: connecting is refused at once.
fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

fn code(o: &Output) -> Option<i32> {
    o.status.code()
}

#[test]
fn no_settings_exit_2_naming_what_is_missing_and_help_exits_0() {
    let o = agent().output().unwrap();
    assert_eq!(code(&o), Some(2), "{}", text(&o));
    let t = text(&o);
    assert!(
        t.contains("missing the controller") && t.contains("-name NAME") && t.contains("-secret"),
        "{t}"
    );
    for flag in ["-help", "--help", "-h"] {
        let o = agent().arg(flag).output().unwrap();
        assert_eq!(code(&o), Some(0), "{flag}");
        let out = String::from_utf8_lossy(&o.stdout);
        assert!(
            out.contains("-url URL") && out.contains("EXIT STATUS"),
            "{out}"
        );
    }
    let o = agent().arg("-version").output().unwrap();
    assert_eq!(code(&o), Some(0));
    assert!(String::from_utf8_lossy(&o.stdout).starts_with("nectr-agent "));
}

#[test]
fn bad_configuration_exits_2_before_any_connection() {
    let url = format!("http://127.0.0.1:{}/", closed_port());
    let base = ["-url", url.as_str(), "-name", "n", "-secret", "s"];
    let cases: &[(&[&str], &str)] = &[
        (&["-tunnel"], "-tunnel needs a value"),
        (&["-cert", "/etc/hostname"], "-cert @/etc/hostname"),
        (&["-noCertificateCheck"], "-cert @ca.pem"),
        (&["-webSocket", "-tunnel", "h:1"], "cannot be combined"),
        (&["--log-level", "nectr_agent=loud"], "log level"),
        (
            &["-workDir", "/nonexistent/nectr", "-failIfWorkDirIsMissing"],
            "does not exist",
        ),
    ];
    for (extra, want) in cases {
        let o = agent().args(base).args(*extra).output().unwrap();
        let t = text(&o);
        assert_eq!(code(&o), Some(2), "{extra:?}: {t}");
        assert!(t.contains(want), "{extra:?}: {t}");
        assert!(
            !t.contains("connecting to"),
            "{extra:?} got as far as connecting: {t}"
        );
    }
    // The secret moved out of the command line never appears in the messages.
    let o = agent()
        .args([
            "-url",
            "ftp://x/",
            "-name",
            "n",
            "-secret",
            "hunter2-secret",
        ])
        .output()
        .unwrap();
    assert_eq!(code(&o), Some(2));
    assert!(!text(&o).contains("hunter2-secret"), "{}", text(&o));
}

#[test]
fn a_failed_connection_with_no_reconnect_exits_1_and_says_so_once() {
    let dir = scratch("cli-once");
    let port = closed_port();
    let o = agent()
        .current_dir(&dir)
        .args([
            "-url",
            &format!("http://127.0.0.1:{port}/"),
            "-name",
            "n",
            "-secret",
            "s",
        ])
        .arg("-noReconnect")
        .output()
        .unwrap();
    let t = text(&o);
    assert_eq!(code(&o), Some(1), "{t}");
    let needle = format!("cannot connect to 127.0.0.1:{port}");
    assert_eq!(t.matches(&needle).count(), 1, "the fatal error once: {t}");
    // Without -workDir nothing is created (agent.jar logs to the console only).
    let left: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
    assert!(
        left.is_empty(),
        "files left in the current directory: {left:?}"
    );
}

#[test]
fn log_files_only_where_asked() {
    let dir = scratch("cli-logs");
    let url = format!("http://127.0.0.1:{}/", closed_port());
    let run = |extra: &[&str]| {
        agent()
            .current_dir(&dir)
            .args(["-url", &url, "-name", "n", "-secret", "s", "-noReconnect"])
            .args(extra)
            .output()
            .unwrap()
    };
    let work = dir.join("work");
    let o = run(&["-workDir", work.to_str().unwrap()]);
    assert_eq!(code(&o), Some(1), "{}", text(&o));
    let log = std::fs::read_to_string(work.join("remoting/logs/nectr-agent.log")).unwrap();
    assert!(log.contains("cannot connect"), "{log}");
    let o = run(&["-workDir", work.to_str().unwrap(), "-internalDir", "int"]);
    assert_eq!(code(&o), Some(1));
    assert!(work.join("int/logs/nectr-agent.log").is_file());
    let file = dir.join("agent.log");
    let o = run(&["-agentLog", file.to_str().unwrap(), "--log-format", "json"]);
    assert_eq!(code(&o), Some(1));
    let log = std::fs::read_to_string(&file).unwrap();
    let last: serde_json::Value = serde_json::from_str(log.lines().last().unwrap()).unwrap();
    assert_eq!(last["level"], "ERROR", "{log}");
    assert!(!dir.join("remoting").exists());
}

#[test]
fn rust_log_and_log_level_set_the_level() {
    let url = format!("http://127.0.0.1:{}/", closed_port());
    let run = |env: &[(&str, &str)], extra: &[&str]| {
        let o = agent()
            .envs(env.iter().copied())
            .args(["-url", &url, "-name", "n", "-secret", "s", "-noReconnect"])
            .args(extra)
            .output()
            .unwrap();
        assert_eq!(code(&o), Some(1), "{}", text(&o));
        String::from_utf8_lossy(&o.stderr).into_owned()
    };
    let default = run(&[], &[]);
    assert!(
        default.contains(" INFO ") && !default.contains(" DEBUG "),
        "{default}"
    );
    let debug = run(&[("RUST_LOG", "debug")], &[]);
    assert!(debug.contains(" DEBUG "), "{debug}");
    let targeted = run(&[("RUST_LOG", "nectr_agent::agent=debug,warn")], &[]);
    assert!(targeted.contains(" DEBUG nectr_agent::agent"), "{targeted}");
    let quiet = run(&[("RUST_LOG", "debug")], &["--log-level", "error"]);
    assert!(
        !quiet.contains(" INFO ") && quiet.contains(" ERROR "),
        "{quiet}"
    );
    // Logging off: the fatal error is still printed, once, as a plain line.
    let off = run(&[("RUST_LOG", "off")], &[]);
    assert_eq!(off.lines().count(), 1, "{off}");
    assert!(off.starts_with("nectr-agent: cannot connect"), "{off}");
    let o = agent()
        .env("RUST_LOG", "nectr=[span]")
        .args(["-url", &url, "-name", "n", "-secret", "s"])
        .output()
        .unwrap();
    assert_eq!(code(&o), Some(2), "{}", text(&o));
    assert!(text(&o).contains("RUST_LOG"), "{}", text(&o));
}

#[test]
fn debug_lists_its_subcommands() {
    for (args, want_code) in [(&[][..], 2), (&["bogus"][..], 2), (&["--help"][..], 0)] {
        let o = agent().arg("debug").args(args).output().unwrap();
        let t = text(&o);
        assert_eq!(code(&o), Some(want_code), "{args:?}: {t}");
        assert!(
            t.contains("debug javaser") && t.contains("debug serialver"),
            "{t}"
        );
        assert!(!t.contains("unknown option"), "{t}");
    }
    let o = agent().args(["debug", "bogus"]).output().unwrap();
    assert!(text(&o).contains("unknown subcommand \"bogus\""));
}

#[test]
fn a_malformed_proxy_variable_is_reported_without_its_value() {
    let url = format!("http://127.0.0.1:{}/", closed_port());
    let o = agent()
        .env("http_proxy", "http://user:hunter2@:notaport")
        .args(["-url", &url, "-name", "n", "-secret", "s", "-noReconnect"])
        .output()
        .unwrap();
    let t = text(&o);
    assert_eq!(code(&o), Some(1), "{t}");
    assert!(t.contains("http_proxy is not a proxy URL"), "{t}");
    assert!(!t.contains("hunter2"), "{t}");
}

/// `nectr-agent push|fetch` runs `nectr-agent-push` from the directory of the real
/// executable (a symlink to nectr-agent is resolved), with the arguments, environment,
/// standard streams and exit status passed through; without it, status 2 and a message
/// naming the file to install. (The S3 side is tested in agent/push/tests/.)
#[test]
fn push_and_fetch_run_the_sibling_binary_or_say_where_it_is_missing() {
    use std::io::Write;
    use std::os::unix::fs::PermissionsExt;
    let dir = scratch("push-sibling");
    let real = dir.join("real");
    let links = dir.join("bin");
    std::fs::create_dir_all(&real).unwrap();
    std::fs::create_dir_all(&links).unwrap();
    let exe = real.join("nectr-agent");
    std::fs::copy(env!("CARGO_BIN_EXE_nectr-agent"), &exe).unwrap();
    std::os::unix::fs::symlink(&exe, links.join("nectr-agent")).unwrap();

    let o = Command::new(&exe)
        .env_clear()
        .args(["push", "dist/a.tar.gz"])
        .output()
        .unwrap();
    assert_eq!(code(&o), Some(2), "{}", text(&o));
    let t = text(&o);
    assert!(
        t.contains(&format!("{}/nectr-agent-push is missing", real.display())),
        "{t}"
    );

    // A stand-in that reports what it was given.
    let stub = real.join("nectr-agent-push");
    std::fs::write(
        &stub,
        "#!/bin/sh\nprintf '%s|' \"$@\"\nprintf 'job=%s\\n' \"$JOB_NAME\"\ncat\nexit 7\n",
    )
    .unwrap();
    std::fs::set_permissions(&stub, std::fs::Permissions::from_mode(0o755)).unwrap();
    for (via, sub) in [(exe.clone(), "push"), (links.join("nectr-agent"), "fetch")] {
        let mut child = Command::new(&via)
            .env_clear()
            .env("JOB_NAME", "app")
            .args([sub, "--bucket", "nectr_deploy", "a b.tar.gz"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(b"from stdin\n")
            .unwrap();
        let o = child.wait_with_output().unwrap();
        assert_eq!(code(&o), Some(7), "{}", text(&o));
        assert_eq!(
            String::from_utf8_lossy(&o.stdout),
            format!("{sub}|--bucket|nectr_deploy|a b.tar.gz|job=app\nfrom stdin\n")
        );
    }
}
