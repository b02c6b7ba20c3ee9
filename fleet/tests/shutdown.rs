//! `nectr-fleet run` under SIGTERM and SIGINT (moto + the fake Jenkins): the step under way
//! finishes, the lease is released (another replica takes it at once), one log line says
//! so, and the exit status is 0.

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
        let mut child = Command::new(env!("CARGO_BIN_EXE_nectr-fleet"))
            .args(["run", "--config"])
            .arg(config)
            .env("AWS_ACCESS_KEY_ID", "testing")
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

    fn signal(&self, sig: &str) {
        let st = Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(st.success());
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
        s.faults.drain_delay_ms = 1500;
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
    svc.signal("-TERM");
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
    svc.signal("-INT");
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
