//! The status page (`GET /`) in a real headless Chromium (Debian's `chromium`, installed by
//! scripts/test): it loads, shows a launched instance, and shows a later decision after a
//! poll, and a finished build in the cost-by-job table. Saves a screenshot under target/. A missing chromium fails the test.

mod support;

use nectr_fleet::cloud::credentials::Credentials;
use nectr_fleet::cloud::ec2::Ec2Provider;
use nectr_fleet::reconcile::Reconciler;
use nectr_fleet::secret::Secret;
use nectr_fleet::server::{serve, Shared};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use support::fake_jenkins::FakeJenkins;
use support::moto::Moto;

fn chromium() -> PathBuf {
    for c in ["chromium", "chromium-browser"] {
        for dir in std::env::var("PATH").unwrap_or_default().split(':') {
            let p = Path::new(dir).join(c);
            if p.is_file() {
                return p;
            }
        }
    }
    panic!("chromium not found: run scripts/test (it installs Debian's chromium) or `apt-get install chromium`");
}

fn browser(profile: &Path) -> Command {
    let mut c = Command::new(chromium());
    c.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-dev-shm-usage",
        "--virtual-time-budget=2000",
    ])
    .arg(format!("--user-data-dir={}", profile.display()));
    c
}

fn dump_dom(profile: &Path, url: &str) -> String {
    let out = browser(profile)
        .arg("--dump-dom")
        .arg(url)
        .output()
        .expect("run chromium");
    assert!(
        out.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn the_status_page_in_chromium() {
    let jenkins = FakeJenkins::start();
    let moto = Moto::start();
    let dir = support::temp_dir("page");
    let text = support::config_text("page", &jenkins.url, &moto.url, "", "");
    let (path, cfg) = support::write_config(&dir, &text);
    let creds = Credentials {
        access_key_id: "testing".into(),
        secret_access_key: Secret::new("testing"),
        session_token: None,
    };
    let cloud = Arc::new(Ec2Provider::new(&cfg.aws, creds).expect("provider"));
    let mut rec = support::first_start(
        Reconciler::new(cfg, Some(path), cloud, Arc::new(Shared::default())).expect("reconciler"),
    );
    let addr = serve("127.0.0.1:0".parse().expect("addr"), rec.shared.clone()).expect("serve");
    let url = format!("http://{addr}/");
    let profile = dir.join("chromium-profile");

    jenkins.set_queue_waiting(3, "linux");
    rec.poll_once(true);
    let dom = dump_dom(&profile, &url);
    assert!(dom.contains("nectr-fleet"), "{dom}");
    assert!(dom.contains("Pool linux"), "{dom}");
    assert!(dom.contains("launch 1 instance(s)"), "{dom}");
    // The instance shows up in the next observation.
    rec.poll_once(true);
    let dom = dump_dom(&profile, &url);
    assert!(
        dom.contains("class=\"instance\""),
        "a launched instance: {dom}"
    );
    assert!(dom.contains("c5.xlarge"), "{dom}");
    assert!(dom.contains("i-"), "{dom}");
    let decisions_before = dom.matches("class=\"decision\"").count();

    // More demand: a new decision appears on the page after the next poll.
    jenkins.set_queue_waiting(12, "linux");
    rec.poll_once(true);
    let dom = dump_dom(&profile, &url);
    assert!(
        dom.matches("class=\"decision\"").count() > decisions_before,
        "a new decision: {dom}"
    );
    assert!(dom.contains("demand 12 executor(s)"), "{dom}");

    // A build of `nightly` runs on the first node and finishes: the cost table names it.
    jenkins.lock().queue.clear();
    let node = jenkins.lock().nodes.keys().next().cloned().expect("node");
    {
        let mut s = jenkins.lock();
        let n = s.nodes.get_mut(&node).expect("node");
        n.connected = true;
        n.executors[0] = false;
        n.running.insert(0, ("nightly".into(), 41));
    }
    rec.poll_once(true);
    {
        let mut s = jenkins.lock();
        let n = s.nodes.get_mut(&node).expect("node");
        n.executors[0] = true;
        n.running.clear();
    }
    rec.poll_once(true);
    let dom = dump_dom(&profile, &url);
    assert!(dom.contains("Cost by job"), "{dom}");
    assert!(
        dom.contains("<tr class=\"job-cost\"><td>nightly</td><td>1</td>"),
        "{dom}"
    );

    let shot = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("status-page.png");
    let out = browser(&profile)
        .arg(format!("--screenshot={}", shot.display()))
        .arg("--window-size=1280,900")
        .arg(&url)
        .output()
        .expect("run chromium");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        std::fs::metadata(&shot)
            .map(|m| m.len() > 1000)
            .unwrap_or(false),
        "screenshot at {}",
        shot.display()
    );
}
