//! nectr-agent against the controller simulator (`tests/java/src/nectr/sim`), end to end over
//! loopback: bring-up, monitors, pings, unknown callables, refused secrets, restarts.

mod support;

use std::process::Command;
use std::time::Duration;

use support::sim::{Agent, Sim, SECRET};
use support::*;

#[test]
fn goes_online_over_websocket_and_answers_monitors_and_pings() {
    let mut sim = Sim::start("online", &["--ping-seconds", "1", "--monitor-seconds", "2"]);
    let _agent = Agent::start(&sim.url, &[]);
    let c = sim.wait_for("connected", Duration::from_secs(30));
    assert_eq!(c["transport"], "websocket");
    sim.wait_for("online", Duration::from_secs(30));
    // The node's Log page: the agent's own records, as java.util.logging.LogRecords.
    let log = sim.wait_for("agent_log", Duration::from_secs(30));
    assert!(log["records"].as_u64().unwrap_or(0) >= 1, "{log}");
    sim.wait_for("monitors_ok", Duration::from_secs(30));
    // A second round: the agent keeps answering on the same channel.
    sim.wait_for("monitors_ok", Duration::from_secs(30));
    // SetUpRemotePing asked for 1 s pings: the agent pings the controller too.
    let p = sim.wait_for("agent_call", Duration::from_secs(30));
    assert_eq!(p["callable"], "hudson.remoting.PingThread$Ping");
}

#[test]
fn the_secret_is_not_in_the_process_command_line() {
    let mut sim = Sim::start("online", &[]);
    let agent = Agent::start(&sim.url, &[]);
    sim.wait_for("online", Duration::from_secs(30));
    let cmdline = std::fs::read(format!("/proc/{}/cmdline", agent.0.id())).unwrap();
    let cmdline = String::from_utf8_lossy(&cmdline);
    assert!(cmdline.contains("-webSocket"), "{cmdline}");
    assert!(
        !cmdline.contains(SECRET),
        "secret visible in the command line: {cmdline}"
    );
}

#[test]
fn sigterm_closes_the_channel_in_order() {
    let mut sim = Sim::start("online", &[]);
    let agent = Agent::start(&sim.url, &[]);
    sim.wait_for("online", Duration::from_secs(30));
    let status = Command::new("kill")
        .args(["-TERM", &agent.0.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    sim.wait_for("close_command", Duration::from_secs(10));
    let (code, err) = agent.wait_exit(Duration::from_secs(10));
    assert_eq!(code, Some(0), "stderr: {err}");
}

fn cancel_leaves_the_channel_up(transport: &[&str]) {
    let mut sim = Sim::start("cancel", &[]);
    let _agent = Agent::start_with(&sim.url, transport, &[]);
    sim.wait_for("online", Duration::from_secs(30));
    sim.wait_for("cancel_ok", Duration::from_secs(30));
}

fn garbage_closes_cleanly_and_reconnects(transport: &[&str]) {
    let mut sim = Sim::start("garbage", &[]);
    let agent = Agent::start_with(&sim.url, transport, &[]);
    sim.wait_for("online", Duration::from_secs(30));
    sim.wait_for("garbage_sent", Duration::from_secs(30));
    // The agent cannot recover a request id from random bytes: it closes the channel (no
    // panic) and comes back on a new connection.
    sim.wait_for("disconnected", Duration::from_secs(30));
    sim.wait_for("connected", Duration::from_secs(30));
    sim.wait_for("online", Duration::from_secs(30));
    let log = std::fs::read_to_string(&agent.1).unwrap_or_default();
    assert!(!log.contains("panicked"), "{log}");
    assert!(log.contains("unreadable command"), "{log}");
}

fn unknown_callable_gets_an_exception(transport: &[&str]) {
    let mut sim = Sim::start("unknown", &[]);
    let _agent = Agent::start_with(&sim.url, transport, &[]);
    sim.wait_for("online", Duration::from_secs(30));
    sim.wait_for("unknown_ok", Duration::from_secs(30));
    sim.wait_for("still_up", Duration::from_secs(30));
}

#[test]
fn a_refused_secret_is_reported_clearly_without_the_secret() {
    let mut sim = Sim::start("refuse", &[]);
    let agent = Agent::start(&sim.url, &["-noReconnect"]);
    let (code, err) = agent.wait_exit(Duration::from_secs(30));
    assert_eq!(code, Some(1), "stderr: {err}");
    assert!(err.contains("refused"), "stderr: {err}");
    assert!(!err.contains(SECRET), "the secret leaked: {err}");
    let _ = sim.wait_for("refused", Duration::from_secs(5));
}

fn thousand_concurrent_requests(transport: &[&str]) {
    let mut sim = Sim::start("concurrent", &[]);
    let _agent = Agent::start_with(&sim.url, transport, &[]);
    sim.wait_for("online", Duration::from_secs(30));
    let e = sim.wait_for("concurrent_ok", Duration::from_secs(60));
    assert_eq!(e["count"], 1000);
}

fn restart_reconnects_with_the_cookie(transport: &[&str]) {
    let mut sim = Sim::start("restart", &[]);
    let _agent = Agent::start_with(&sim.url, transport, &[]);
    sim.wait_for("online", Duration::from_secs(30));
    let r = sim.wait_for("reconnected", Duration::from_secs(30));
    assert_eq!(r["cookie_matches"], true);
    sim.wait_for("online", Duration::from_secs(30));
}

#[test]
fn goes_online_over_jnlp4_connect() {
    let mut sim = Sim::start("online", &["--ping-seconds", "1", "--monitor-seconds", "2"]);
    let _agent = Agent::start_jnlp4(&sim.url, &[]);
    let c = sim.wait_for("connected", Duration::from_secs(30));
    assert_eq!(c["transport"], "jnlp4");
    sim.wait_for("online", Duration::from_secs(30));
    sim.wait_for("monitors_ok", Duration::from_secs(30));
}

#[test]
fn a_wrong_instance_identity_is_refused_before_the_secret_is_sent() {
    let sim = Sim::start("wrong-identity", &[]);
    let agent = Agent::start_jnlp4(&sim.url, &["-noReconnect"]);
    let (code, err) = agent.wait_exit(Duration::from_secs(30));
    assert_eq!(code, Some(1), "stderr: {err}");
    assert!(err.contains("X-Instance-Identity"), "stderr: {err}");
    // The simulator reports any header it received after TLS; there must be none.
    std::thread::sleep(Duration::from_millis(300));
    while let Ok(e) = sim.events.try_recv() {
        assert_ne!(
            e["event"], "secret_received",
            "the agent sent its secret: {e}"
        );
    }
}

#[test]
fn a_refused_secret_over_jnlp4_is_reported_clearly() {
    let mut sim = Sim::start("refuse", &[]);
    let agent = Agent::start_jnlp4(&sim.url, &["-noReconnect"]);
    let (code, err) = agent.wait_exit(Duration::from_secs(30));
    assert_eq!(code, Some(1), "stderr: {err}");
    assert!(
        err.contains("refused") && err.contains("Authorization"),
        "stderr: {err}"
    );
    assert!(!err.contains(SECRET), "the secret leaked: {err}");
    let _ = sim.wait_for("refused", Duration::from_secs(5));
}

/// The simulator's test CA, written where the agent can read it with `-cert @FILE`.
fn ca_file(sim: &Sim) -> String {
    let pem = sim.listening["ca_pem"]
        .as_str()
        .expect("--https gives a CA");
    let path = scratch("ca").join("ca.pem");
    std::fs::write(&path, pem).unwrap();
    format!("@{}", path.display())
}

#[test]
fn an_https_controller_is_reached_with_verified_tls_over_both_transports() {
    let mut sim = Sim::start("online", &["--https"]);
    assert!(sim.url.starts_with("https://"));
    let ca = ca_file(&sim);
    let ws = Agent::start(&sim.url, &["-cert", &ca]);
    let c = sim.wait_for("connected", Duration::from_secs(30));
    assert_eq!(c["transport"], "websocket");
    sim.wait_for("online", Duration::from_secs(30));
    drop(ws);
    sim.wait_for("disconnected", Duration::from_secs(30));
    // JNLP4: discovery over https, then the agent port with its own pinned TLS.
    let _jnlp = Agent::start_jnlp4(&sim.url, &["-cert", &ca]);
    let c = sim.wait_for("connected", Duration::from_secs(30));
    assert_eq!(c["transport"], "jnlp4");
    sim.wait_for("online", Duration::from_secs(30));
}

#[test]
fn an_https_controller_with_an_untrusted_certificate_is_refused() {
    let sim = Sim::start("online", &["--https"]);
    let agent = Agent::start(&sim.url, &["-noReconnect"]);
    let (code, err) = agent.wait_exit(Duration::from_secs(30));
    assert_eq!(code, Some(1), "stderr: {err}");
    assert!(
        err.contains("TLS") && err.contains("-cert"),
        "stderr: {err}"
    );
}

#[test]
fn https_proxy_is_honoured_and_no_proxy_bypasses_it() {
    let mut sim = Sim::start("online", &["--https", "--proxy"]);
    let ca = ca_file(&sim);
    let proxy = sim.listening["proxy"].as_str().unwrap().to_string();
    let through = Agent::start_env(
        &sim.url,
        &["-webSocket"],
        &["-cert", &ca],
        &[("https_proxy", &proxy)],
    );
    let p = sim.wait_for("proxied", Duration::from_secs(30));
    assert_eq!(
        p["target"].as_str().unwrap(),
        sim.url.trim_start_matches("https://").trim_end_matches('/')
    );
    sim.wait_for("online", Duration::from_secs(30));
    drop(through);
    sim.wait_for("disconnected", Duration::from_secs(30));
    let _direct = Agent::start_env(
        &sim.url,
        &["-webSocket"],
        &["-cert", &ca],
        &[("https_proxy", &proxy), ("no_proxy", "127.0.0.1")],
    );
    sim.wait_for("online", Duration::from_secs(30));
    assert!(
        !sim.seen
            .iter()
            .skip_while(|e| e["event"] != "disconnected")
            .any(|e| e["event"] == "proxied"),
        "no_proxy should have bypassed the proxy: {:#?}",
        sim.seen
    );
}

#[test]
fn remote_output_streams_work_in_both_directions() {
    let work = scratch("streams");
    // Slow acks: an agent writing past its 1 MiB window would be caught by the simulator.
    let mut sim = Sim::start(
        "streams",
        &[
            "--remote-fs",
            work.to_str().unwrap(),
            "--ack-delay-ms",
            "20",
        ],
    );
    let _agent = Agent::start_in(&work, &sim.url, &["-webSocket"], &[], &[]);
    sim.wait_for("online", Duration::from_secs(30));
    // WritePipe: the controller wrote 4 MiB into the agent's stream; CopyTo read them back.
    let e = sim.wait_for("streams_ok", Duration::from_secs(60));
    assert_eq!(e["bytes"], 4 << 20);
    // Acks both ways: the agent acked the controller's chunks and waited for the controller's.
    assert!(e["acks_received"].as_u64().unwrap() > 0, "{e}");
    assert!(e["acks_sent"].as_u64().unwrap() > 0, "{e}");
    assert_eq!(
        std::fs::metadata(work.join("nectr-stream-test.bin"))
            .unwrap()
            .len(),
        4 << 20
    );
}

fn peak_rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap()
}

#[test]
fn a_one_gib_stream_to_the_controller_runs_in_bounded_memory() {
    let work = scratch("bigstream");
    let big = std::fs::File::create(work.join("big.bin")).unwrap();
    big.set_len(1 << 30).unwrap(); // sparse: reads cost no disk
    let mut sim = Sim::start("bigstream", &["--remote-fs", work.to_str().unwrap()]);
    let agent = Agent::start_in(&work, &sim.url, &["-webSocket"], &[], &[]);
    sim.wait_for("online", Duration::from_secs(30));
    let e = sim.wait_for("copied", Duration::from_secs(300));
    assert_eq!(e["bytes"], 1u64 << 30);
    // The controller acked the chunks (and checked that the agent never had more than its
    // 1 MiB window unacked): at least one ack per MiB.
    assert!(e["acks_sent"].as_u64().unwrap() >= 1024, "{e}");
    let peak = peak_rss_kib(agent.0.id());
    assert!(peak < 32 * 1024, "peak RSS {peak} KiB for a 1 GiB stream");
}

#[test]
fn a_cancelled_copy_stops_streaming_and_closes_its_stream() {
    let work = scratch("cancel-stream");
    let big = std::fs::File::create(work.join("big.bin")).unwrap();
    big.set_len(1 << 30).unwrap();
    let mut sim = Sim::start("cancel-stream", &["--remote-fs", work.to_str().unwrap()]);
    let _agent = Agent::start_in(&work, &sim.url, &["-webSocket"], &[], &[]);
    sim.wait_for("online", Duration::from_secs(30));
    let e = sim.wait_for("cancel_stream_ok", Duration::from_secs(60));
    assert!(e["bytes"].as_u64().unwrap() < 1 << 30, "{e}");
}

#[test]
fn read_file_streams_through_a_pipe_and_reports_a_missing_file() {
    let work = scratch("read");
    std::fs::write(work.join("read-me.txt"), "h\u{e9}llo from the agent\n").unwrap();
    let mut sim = Sim::start("read", &["--remote-fs", work.to_str().unwrap()]);
    let _agent = Agent::start_in(&work, &sim.url, &["-webSocket"], &[], &[]);
    sim.wait_for("online", Duration::from_secs(30));
    let r = sim.wait_for("read_done", Duration::from_secs(30));
    assert_eq!(r["text"], "h\u{e9}llo from the agent\n");
    // The missing file: the pipe closes with a NoSuchFileException naming it.
    let e = sim.wait_for("stream_error", Duration::from_secs(30));
    let err = e["error"].as_str().unwrap();
    assert!(
        err.contains("NoSuchFileException") && err.contains("missing.txt"),
        "{err}"
    );
    sim.wait_for("read_done", Duration::from_secs(30));
}

/// Runs a scenario test once per transport.
macro_rules! on_both_transports {
    ($($name:ident => $body:ident),* $(,)?) => {$(
        mod $name {
            #[test]
            fn websocket() {
                super::$body(&["-webSocket"]);
            }

            #[test]
            fn jnlp4() {
                super::$body(&[]);
            }
        }
    )*};
}

on_both_transports! {
    a_cancelled_request_leaves_the_channel_up => cancel_leaves_the_channel_up,
    garbage_frames_close_the_channel_cleanly_and_the_agent_reconnects => garbage_closes_cleanly_and_reconnects,
    unknown_callables_get_a_readable_exception_and_the_channel_stays_up => unknown_callable_gets_an_exception,
    answers_a_thousand_concurrent_requests => thousand_concurrent_requests,
    a_controller_restart_brings_the_agent_back_with_its_cookie => restart_reconnects_with_the_cookie,
}

#[test]
fn rpc_on_the_agent_channel_export_answers_and_unknown_exports_fail_readably() {
    let mut sim = Sim::start("rpc", &[]);
    let _agent = Agent::start(&sim.url, &[]);
    sim.wait_for("online", Duration::from_secs(30));
    sim.wait_for("rpc_ok", Duration::from_secs(30));
}

/// A source tree with what unstash must carry: nested directories, an executable, a
/// symlink, an empty file, a name past tar's 100-byte field, and 3 MiB that do not compress
/// (more than the controller's 1 MiB pipe window, so acks must flow).
fn stash_tree(root: &std::path::Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(root.join("src/deep/er")).unwrap();
    std::fs::write(root.join("src/deep/er/a.txt"), "hello\n").unwrap();
    std::fs::write(root.join("run.sh"), "#!/bin/sh\necho hi\n").unwrap();
    std::fs::set_permissions(root.join("run.sh"), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(root.join("empty"), "").unwrap();
    std::os::unix::fs::symlink("../run.sh", root.join("src/link")).unwrap();
    let long = root
        .join("d".repeat(90))
        .join(format!("{}.txt", "f".repeat(60)));
    std::fs::create_dir_all(long.parent().unwrap()).unwrap();
    std::fs::write(&long, "long name\n").unwrap();
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let noise: Vec<u8> = (0..3 << 20)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    std::fs::write(root.join("src/noise.bin"), noise).unwrap();
}

/// Every entry under `dir`: relative path → (kind, mode & 0777, content or link target).
fn tree(dir: &std::path::Path) -> std::collections::BTreeMap<String, (char, u32, Vec<u8>)> {
    use std::os::unix::fs::PermissionsExt;
    let mut out = std::collections::BTreeMap::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let m = std::fs::symlink_metadata(&p).unwrap();
            let rel = p.strip_prefix(dir).unwrap().to_string_lossy().into_owned();
            let mode = m.permissions().mode() & 0o777;
            let entry = if m.file_type().is_symlink() {
                let t = std::fs::read_link(&p).unwrap();
                ('l', 0, t.to_string_lossy().as_bytes().to_vec())
            } else if m.is_dir() {
                todo.push(p);
                ('d', mode, Vec::new())
            } else {
                ('f', mode, std::fs::read(&p).unwrap())
            };
            out.insert(rel, entry);
        }
    }
    out
}

fn unstash(transport: &[&str], greedy: bool) {
    let work = scratch("untar");
    let src = work.join("stash-src");
    stash_tree(&src);
    let tgz = work.join("stash.tgz");
    let st = Command::new("tar")
        .arg("czf")
        .arg(&tgz)
        .arg("-C")
        .arg(&src)
        .arg(".")
        .status()
        .expect("run tar (GNU tar makes the archive, as a controller-side tar would)");
    assert!(st.success());
    let dest = work.join("ws/unstashed");
    let mut sim = Sim::start(
        "untar",
        &[
            "--untar-source",
            tgz.to_str().unwrap(),
            "--untar-dest",
            dest.to_str().unwrap(),
            "--greedy",
            if greedy { "true" } else { "false" },
            "--remote-fs",
            work.to_str().unwrap(),
        ],
    );
    let _agent = Agent::start_in(&work, &sim.url, transport, &[], &[]);
    sim.wait_for("online", Duration::from_secs(30));
    let e = sim.wait_for("untar_done", Duration::from_secs(120));
    assert_eq!(e["ok"], true, "{e}");
    assert_eq!(e["mode"], if greedy { "greedy" } else { "pull" }, "{e}");
    assert_eq!(
        e["input_closed"], true,
        "the agent must finish the stream: {e}"
    );
    if greedy {
        // 3 MiB of noise through a 1 MiB window: the controller could only go on with acks.
        assert!(e["acks_received"].as_u64().unwrap() > 0, "{e}");
    } else {
        assert!(e["pulls"].as_u64().unwrap() > 1, "{e}");
    }
    assert_eq!(
        tree(&dest),
        tree(&src),
        "the unstashed tree differs from the stash"
    );
}

/// A gzipped tar with one entry `name`, written by hand: tar tools refuse to make bad ones.
fn evil_tgz(name: &str) -> Vec<u8> {
    use std::io::Write;
    let mut h = nectr_agent::tar::ustar_header(name.as_bytes(), b'0', 4, b"");
    h.extend_from_slice(b"evil");
    h.resize(512 * 4, 0);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&h).unwrap();
    gz.finish().unwrap()
}

fn unstash_refuses_escapes(transport: &[&str]) {
    let work = scratch("untar-evil");
    let tgz = work.join("evil.tgz");
    std::fs::write(&tgz, evil_tgz("../../escaped.txt")).unwrap();
    let dest = work.join("a/b");
    let mut sim = Sim::start(
        "untar",
        &[
            "--untar-source",
            tgz.to_str().unwrap(),
            "--untar-dest",
            dest.to_str().unwrap(),
            "--ping-seconds",
            "1",
        ],
    );
    let _agent = Agent::start_in(&work, &sim.url, transport, &[], &[]);
    sim.wait_for("online", Duration::from_secs(30));
    let e = sim.wait_for("untar_done", Duration::from_secs(60));
    assert_eq!(e["ok"], false, "{e}");
    let err = e["error"].as_str().unwrap();
    assert!(
        err.contains("evil.tgz") && err.contains("breaks out of the target directory"),
        "{err}"
    );
    assert!(!work.join("escaped.txt").exists());
    assert!(!work.join("a/escaped.txt").exists());
    // The channel stays up and healthy.
    sim.wait_for("ping_ok", Duration::from_secs(30));
}

on_both_transports! {
    unstash_extracts_a_tar_pushed_through_a_greedy_pipe => unstash_greedy,
    unstash_extracts_a_tar_pulled_with_input_stream_reads => unstash_pulled,
    unstash_refuses_an_entry_that_leaves_the_directory => unstash_refuses_escapes,
}

fn unstash_greedy(transport: &[&str]) {
    unstash(transport, true)
}

fn unstash_pulled(transport: &[&str]) {
    unstash(transport, false)
}

#[test]
fn a_large_write_into_the_agent_is_windowed_by_its_acks_in_bounded_memory() {
    let work = scratch("bigwrite");
    let mut sim = Sim::start(
        "bigwrite",
        &["--remote-fs", work.to_str().unwrap(), "--write-mib", "256"],
    );
    let agent = Agent::start_in(&work, &sim.url, &["-webSocket"], &[], &[]);
    sim.wait_for("online", Duration::from_secs(30));
    let e = sim.wait_for("bigwrite_done", Duration::from_secs(300));
    assert_eq!(e["bytes"], 256u64 << 20);
    assert!(e["acks_received"].as_u64().unwrap() > 0, "{e}");
    // Channel$IOSyncer answered after the last chunk, so the file is complete now.
    let data = std::fs::read(work.join("bigwrite.bin")).unwrap();
    assert_eq!(data.len(), 256 << 20);
    let wrong = data
        .iter()
        .enumerate()
        .position(|(i, b)| *b != ((i as u64 % 251) as u8 ^ (i as u64 >> 20) as u8));
    assert_eq!(wrong, None, "first wrong byte");
    let peak = peak_rss_kib(agent.0.id());
    assert!(peak < 32 * 1024, "peak RSS {peak} KiB for a 256 MiB write");
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap()
}

/// A bounded stand-in for "stays connected for days": 20 s of concurrent pings, stream round
/// trips and monitor rounds. The agent's memory after warm-up must stay flat (a leak per call
/// or per stream would show as growth over the thousands of them).
fn soak(transport: &[&str]) {
    let work = scratch("soak");
    let mut sim = Sim::start(
        "soak",
        &[
            "--soak-seconds",
            "20",
            "--remote-fs",
            work.to_str().unwrap(),
            "--ping-seconds",
            "1",
        ],
    );
    let agent = Agent::start_in(&work, &sim.url, transport, &[], &[]);
    sim.wait_for("online", Duration::from_secs(30));
    // Warm-up: thread pools, allocator arenas and buffers reach their working size.
    loop {
        let p = sim.wait_for("soak_progress", Duration::from_secs(60));
        if p["rounds"].as_u64().unwrap() >= 200 {
            break;
        }
    }
    let warm = rss_kib(agent.0.id());
    let done = sim.wait_for("soak_done", Duration::from_secs(60));
    let end = rss_kib(agent.0.id());
    eprintln!("soak: agent RSS {warm} KiB after warm-up, {end} KiB at the end; {done}");
    assert!(done["calls"].as_u64().unwrap() > 5_000, "{done}");
    assert!(done["copies"].as_u64().unwrap() > 20, "{done}");
    assert!(
        end <= warm + 3072,
        "agent RSS grew from {warm} KiB to {end} KiB during the soak ({done})"
    );
}

on_both_transports! {
    a_soak_of_calls_streams_and_monitors_keeps_memory_flat => soak,
}
