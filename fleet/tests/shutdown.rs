//! `nectr-fleet run` under signals (moto + the fake Jenkins). SIGTERM and SIGINT: the step
//! under way finishes, the lease is released (another replica takes it at once), one log
//! line says so, and the exit status is 0. SIGSTOP/SIGCONT: a leader paused in the middle of
//! a launch, whose lease is taken over meanwhile, sends nothing to EC2 when it resumes.

mod support;

use nectr_fleet::cloud::credentials::Credentials;
use nectr_fleet::cloud::ec2::Ec2Provider;
use nectr_fleet::cloud::s3::S3Object;
use nectr_fleet::cloud::CloudProvider;
use nectr_fleet::lease::{Lease, LeaseRecord, Role};

use nectr_fleet::secret::Secret;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::fake_jenkins::FakeJenkins;
use support::moto::Moto;

fn creds() -> Credentials {
    Credentials {
        access_key_id: "testing".into(),
        secret_access_key: Secret::new("testing"),
        session_token: None,
    }
}

/// The service as a child process; its stderr lines collected by a thread. Killed on drop.
struct Service {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Service {
    fn spawn(config: &std::path::Path) -> Service {
        Self::spawn_as(config, "testing")
    }

    /// With its own access key id, by which moto's recording tells the processes apart.
    fn spawn_as(config: &std::path::Path, access_key: &str) -> Service {
        let mut child = Command::new(env!("CARGO_BIN_EXE_nectr-fleet"))
            .args(["run", "--config"])
            .arg(config)
            .env("AWS_ACCESS_KEY_ID", access_key)
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn nectr-fleet");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let stderr = child.stderr.take().expect("stderr");
        let l2 = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                l2.lock().unwrap_or_else(|p| p.into_inner()).push(line);
            }
        });
        Service { child, lines }
    }

    fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn wait_for_line(&self, what: &str, within: Duration) {
        let t = Instant::now();
        while !self.lines().iter().any(|l| l.contains(what)) {
            assert!(
                t.elapsed() < within,
                "no log line with {what:?} within {within:?}:\n{}",
                self.lines().join("\n")
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn signal(&self, sig: libc::c_int) {
        let pid = libc::pid_t::try_from(self.child.id()).expect("pid");
        // SAFETY: kill(2) on our own child's pid; no memory is involved.
        let rc = unsafe { libc::kill(pid, sig) };
        assert_eq!(
            rc,
            0,
            "kill({pid}, {sig}): {}",
            std::io::Error::last_os_error()
        );
    }

    /// The exit status, which must come within `within`.
    fn wait_exit(&mut self, within: Duration) -> std::process::ExitStatus {
        let t = Instant::now();
        loop {
            if let Some(st) = self.child.try_wait().expect("try_wait") {
                // Let the reader thread take the last lines.
                std::thread::sleep(Duration::from_millis(200));
                return st;
            }
            assert!(
                t.elapsed() < within,
                "still running {within:?} after the signal:\n{}",
                self.lines().join("\n")
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

#[test]
fn sigterm_and_sigint_finish_the_step_release_the_lease_and_exit_0() {
    let jenkins = FakeJenkins::start();
    let moto = Moto::start();
    let dir = support::temp_dir("shutdown");
    // A TTL far beyond the test's bounds: a standby can only take over at once if the lease
    // was released.
    let text = support::config_text(
        "shutdown",
        &jenkins.url,
        &moto.url,
        "",
        "[lease]\nbucket = \"nectr-lease\"\nttl = \"120s\"\n",
    );
    let (path, cfg) = support::write_config(&dir, &text);
    let lc = cfg.lease.clone().expect("lease config");
    let obj = || S3Object::new(&cfg.aws, &lc.bucket, &lc.key, creds()).expect("s3");
    obj().create_bucket().expect("bucket");
    let ec2 = Ec2Provider::new(&cfg.aws, creds()).expect("ec2");
    let record = || -> LeaseRecord {
        let (body, _) = obj()
            .get()
            .expect("get lease")
            .expect("lease object exists");
        serde_json::from_slice(&body).expect("lease json")
    };

    // 1. SIGTERM while a fence is under way: the fence finishes, nothing else starts.
    jenkins.set_queue_waiting(4, "linux");
    let mut svc = Service::spawn(&path);
    let t = Instant::now();
    while ec2.describe_owned("shutdown").expect("describe").is_empty() {
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "no launch within 60 s:\n{}",
            svc.lines().join("\n")
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let fence_sent = Arc::new(AtomicBool::new(false));
    {
        let mut s = jenkins.lock();
        // Below the 2 s Jenkins timeout of the config: the fence is answered, slowly.
        s.faults.drain_delay_ms = 1000;
        let f = fence_sent.clone();
        s.hook = Some(Box::new(move |_, call| {
            if call.path.ends_with("changeOfflineCause") {
                f.store(true, Ordering::SeqCst);
            }
        }));
    }
    jenkins.set_queue_waiting(0, "linux");
    jenkins.connect_all(true);
    let t = Instant::now();
    while !fence_sent.load(Ordering::SeqCst) {
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "the idle node was never fenced:\n{}",
            svc.lines().join("\n")
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    svc.signal(libc::SIGTERM);
    let st = svc.wait_exit(Duration::from_secs(20));
    let lines = svc.lines();
    let log = lines.join("\n");
    assert_eq!(st.code(), Some(0), "{log}");
    let stop_lines: Vec<usize> = (0..lines.len())
        .filter(|&i| lines[i].contains("SIGTERM received"))
        .collect();
    assert_eq!(stop_lines.len(), 1, "one shutdown line:\n{log}");
    assert!(
        lines[stop_lines[0]].contains("stopped after the current step; lease released"),
        "{log}"
    );
    let fenced = lines
        .iter()
        .position(|l| l.contains("INFO fenced "))
        .unwrap_or_else(|| panic!("the fence under way did not finish:\n{log}"));
    assert!(fenced < stop_lines[0], "{log}");
    assert_eq!(
        jenkins.count("POST", "doDelete"),
        0,
        "no retire started after the signal"
    );
    let rec = record();
    assert_eq!(
        (rec.generation, rec.expires_ms),
        (1, 0),
        "released: {rec:?}"
    );

    // 2. Another replica takes the lease at once (its TTL is 120 s), then SIGINT: same
    //    orderly stop.
    let mut svc = Service::spawn(&path);
    svc.wait_for_line("lease acquired (generation 2)", Duration::from_secs(20));
    std::thread::sleep(Duration::from_millis(1500));
    svc.signal(libc::SIGINT);
    let st = svc.wait_exit(Duration::from_secs(20));
    let log = svc.lines().join("\n");
    assert_eq!(st.code(), Some(0), "{log}");
    assert_eq!(
        svc.lines()
            .iter()
            .filter(
                |l| l.contains("SIGINT received: stopped after the current step; lease released")
            )
            .count(),
        1,
        "{log}"
    );
    let rec = record();
    assert_eq!(
        (rec.generation, rec.expires_ms),
        (2, 0),
        "released: {rec:?}"
    );

    // 3. And a third replica (in process) is leader at its first tick.
    let mut c = Lease::new("c".into(), lc.ttl_ms, Box::new(obj()));
    assert_eq!(
        c.tick(nectr_fleet::util::now_ms()),
        Role::Leader { generation: 3 }
    );
}

/// Issue 12 item 11: a leader stopped (SIGSTOP) while it creates a node for a launch loses
/// the lease to another replica; resumed (SIGCONT), it must not send RunInstances or
/// TerminateInstances, nor store or delete a secret: its local lease deadline has passed
/// (it deletes only the Jenkins node it had just created). Asserted on what moto received,
/// told apart by each process's access key id.
#[test]
fn a_leader_paused_mid_launch_sends_nothing_to_ec2_after_it_resumes() {
    let jenkins = FakeJenkins::start();
    let dir = support::temp_dir("sigstop");
    let recording = dir.join("moto-recording.jsonl");
    let moto = Moto::start_with_env(&[(
        "MOTO_RECORDER_FILEPATH",
        recording.to_str().expect("utf-8 path"),
    )]);
    let text = support::config_text(
        "sigstop",
        &jenkins.url,
        &moto.url,
        "",
        "[lease]\nbucket = \"nectr-lease\"\nttl = \"3s\"\n",
    )
    // Long enough that `a`'s request is still waiting for its answer when it resumes.
    .replace("timeout = \"2s\"", "timeout = \"30s\"");
    let (path, cfg) = support::write_config(&dir, &text);
    let lc = cfg.lease.clone().expect("lease config");
    S3Object::new(&cfg.aws, &lc.bucket, &lc.key, creds())
        .expect("s3")
        .create_bucket()
        .expect("bucket");

    // `a` leads and is observing (its first leader poll acts on nothing).
    let a = Service::spawn_as(&path, "AKIDPAUSEDLEADER");
    a.wait_for_line("lease acquired (generation 1)", Duration::from_secs(30));
    std::thread::sleep(Duration::from_millis(1500));

    // Demand: `a` creates a node; Jenkins holds the answer for a moment, and `a` is stopped
    // while it waits: after the node, before RunInstances.
    let created = Arc::new(AtomicBool::new(false));
    {
        let c = created.clone();
        jenkins.lock().after_hook = Some(Box::new(move |_, call| {
            if call.path.ends_with("doCreateItem") && !c.swap(true, Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(700));
            }
        }));
    }
    jenkins.set_queue_waiting(4, "linux");
    let t = Instant::now();
    while !created.load(Ordering::SeqCst) {
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "a never created a node:\n{}",
            a.lines().join("\n")
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    a.signal(libc::SIGSTOP);
    jenkins.lock().after_hook = None;
    moto.start_recording();

    // `b` takes the lease over once it has expired, and acts for a larger demand.
    let b = Service::spawn_as(&path, "AKIDTAKEOVER");
    b.wait_for_line("lease acquired (generation 2)", Duration::from_secs(30));
    jenkins.set_queue_waiting(12, "linux");
    let ec2 = Ec2Provider::new(&cfg.aws, creds()).expect("ec2");
    let t = Instant::now();
    while ec2.describe_owned("sigstop").expect("describe").is_empty() {
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "b never launched:\n{}",
            b.lines().join("\n")
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    // `a` resumes, with demand left, and runs for a few polls.
    let resumed_at = a.lines().len();
    a.signal(libc::SIGCONT);
    std::thread::sleep(Duration::from_secs(5));
    let rec = moto.recording();
    let by = |key: &str| -> Vec<String> {
        rec.iter()
            .filter(|r| r.access_key == key)
            .map(|r| r.action.clone())
            .collect()
    };
    let a_calls = by("AKIDPAUSEDLEADER");
    let b_calls = by("AKIDTAKEOVER");
    let a_log = a.lines()[resumed_at..].join("\n");
    assert!(
        b_calls.iter().any(|c| c == "RunInstances"),
        "the recording sees b's launches: {b_calls:?}"
    );
    assert!(
        a_calls.iter().any(|c| c == "DescribeInstances"),
        "a ran after SIGCONT (it observes as a standby): {a_calls:?}\n{a_log}"
    );
    for forbidden in [
        "PutParameter",
        "DeleteParameter",
        "RunInstances",
        "TerminateInstances",
        "SetDesiredCapacity",
        "TerminateInstanceInAutoScalingGroup",
    ] {
        assert!(
            !a_calls.iter().any(|c| c == forbidden),
            "the paused ex-leader sent {forbidden} after SIGCONT: {a_calls:?}\n{a_log}"
        );
    }
    assert!(
        a_log.contains("the lease expired locally before the secret of"),
        "a says why it did not launch:\n{a_log}"
    );
    assert!(
        !a_log.contains("INFO launched"),
        "a launched nothing after SIGCONT:\n{a_log}"
    );
    eprintln!("a after SIGCONT sent: {a_calls:?}");
}

/// The first SIGTERM waits for the step under way (here a Jenkins read that gets no answer
/// for up to 30 s); a second one ends the process at once, with status 1.
#[test]
fn a_second_signal_ends_a_stopping_service_at_once_with_status_1() {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let silent = format!("http://{}/", l.local_addr().expect("addr"));
    let got_request = Arc::new(AtomicBool::new(false));
    let g = got_request.clone();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in l.incoming().map_while(Result::ok) {
            g.store(true, Ordering::SeqCst);
            held.push(s);
        }
    });
    let dir = support::temp_dir("second-signal");
    let text = support::config_text("second", &silent, &silent, "", "")
        .replace("timeout = \"2s\"", "timeout = \"30s\"");
    let (path, _) = support::write_config(&dir, &text);
    let mut svc = Service::spawn(&path);
    let t = Instant::now();
    while !got_request.load(Ordering::SeqCst) {
        assert!(t.elapsed() < Duration::from_secs(20), "no request");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(300));
    svc.signal(libc::SIGTERM);
    std::thread::sleep(Duration::from_millis(1000));
    assert!(
        svc.child.try_wait().expect("try_wait").is_none(),
        "the first SIGTERM waits for the read under way:\n{}",
        svc.lines().join("\n")
    );
    svc.signal(libc::SIGTERM);
    let st = svc.wait_exit(Duration::from_secs(5));
    assert_eq!(st.code(), Some(1), "{}", svc.lines().join("\n"));
}
