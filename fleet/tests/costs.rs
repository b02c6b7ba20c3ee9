//! Per-job cost attribution (issue 12 item 7) through the real loop: moto + the fake Jenkins,
//! the poll times from a fixed clock, so every dollar figure is known in advance.

mod support;

use nectr_fleet::cloud::credentials::Credentials;
use nectr_fleet::cloud::ec2::Ec2Provider;
use nectr_fleet::jenkins::client::JenkinsClient;
use nectr_fleet::reconcile::Reconciler;
use nectr_fleet::secret::Secret;
use nectr_fleet::server::Shared;
use nectr_fleet::util::Clock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use support::fake_jenkins::FakeJenkins;
use support::moto::Moto;

/// Wall time set by the test; sleeps are real (short retry pauses only).
struct FixedClock(AtomicU64);

impl Clock for FixedClock {
    fn now_ms(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
    fn sleep_ms(&self, ms: u64) {
        std::thread::sleep(std::time::Duration::from_millis(ms));
    }
}

/// The value of one sample of the exposition, e.g.
/// `nectr_fleet_job_cost_dollars_total{job="app",pool="linux"}`.
fn sample(metrics: &str, name_and_labels: &str) -> Option<f64> {
    metrics.lines().find_map(|l| {
        l.strip_prefix(name_and_labels)
            .and_then(|rest| rest.trim().parse().ok())
    })
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9
}

#[test]
fn two_jobs_on_one_two_executor_instance_cost_their_share() {
    let jenkins = FakeJenkins::start();
    let moto = Moto::start();
    let dir = support::temp_dir("costs");
    // One c5.xlarge at a configured $0.36/h with 2 executors: $0.00005 per executor-second.
    let text = support::config_text("costs", &jenkins.url, &moto.url, "", "")
        .replace("executors = 4", "executors = 2")
        .replace(
            "instance_types = [\"c5.xlarge\", \"m5.xlarge\"]",
            "instance_types = [{ type = \"c5.xlarge\", price = 0.36 }]",
        );
    assert!(text.contains("price = 0.36") && text.contains("executors = 2"));
    let (path, cfg) = support::write_config(&dir, &text);
    let creds = Credentials {
        access_key_id: "testing".into(),
        secret_access_key: Secret::new("testing"),
        session_token: None,
    };
    let ec2 = Arc::new(Ec2Provider::new(&cfg.aws, creds).expect("ec2"));
    let client = JenkinsClient::new(&jenkins.url, "fleet", Secret::new("tok-123-secret"), 2_000);
    let t0 = nectr_fleet::util::parse_iso8601_ms("2026-12-03T23:00:00.000Z").expect("time");
    let clock = Arc::new(FixedClock(AtomicU64::new(t0)));
    let mut r = support::first_start(Reconciler::with_parts(
        cfg,
        Some(path.clone()),
        Arc::new(client),
        ec2,
        clock.clone(),
        Arc::new(Shared::default()),
    ));
    let at = |s: u64| clock.0.store(t0 + s * 1000, Ordering::SeqCst);
    let poll = |r: &mut Reconciler| {
        let rep = r.poll_once(true);
        assert!(rep.errors.is_empty(), "{:?}", rep.errors);
    };

    // Two items: one instance of two executors.
    jenkins.set_queue_waiting(2, "linux");
    poll(&mut r);
    let node = jenkins.lock().nodes.keys().next().cloned().expect("node");
    jenkins.lock().queue.clear();
    jenkins.connect_all(false);
    {
        let mut s = jenkins.lock();
        let n = s.nodes.get_mut(&node).expect("node");
        n.running.insert(0, ("app".into(), 7));
        n.running.insert(1, ("folder/lib one".into(), 3));
    }
    // First seen at t0+10 s.
    at(10);
    poll(&mut r);
    assert_eq!(r.costs.running(), 2);
    at(70);
    poll(&mut r);
    assert!(r.shared.status()["job_costs"]["jobs"]
        .as_array()
        .expect("jobs")
        .is_empty());

    // `app` finishes: seen gone at t0+100 s, 90 s on one of two executors of $0.36/h.
    {
        let mut s = jenkins.lock();
        let n = s.nodes.get_mut(&node).expect("node");
        n.executors[0] = true;
        n.running.remove(&0);
    }
    at(100);
    poll(&mut r);
    let app = r.costs.job("app").expect("app").clone();
    assert_eq!(app.total.builds, 1);
    assert!(close(app.total.instance_seconds, 90.0), "{app:?}");
    assert!(
        close(app.total.dollars, 90.0 * 0.36 / 3600.0 / 2.0),
        "{app:?}"
    );

    // A config edit is applied; the book and the running build survive it.
    std::fs::write(
        &path,
        text.replace("boot_deadline = \"5m\"", "boot_deadline = \"6m\""),
    )
    .expect("edit config");
    at(130);
    poll(&mut r);
    assert!(r.shared.status()["config"]["error"].is_null());
    assert_eq!(r.costs.running(), 1);

    // `folder/lib one` finishes: seen gone at t0+160 s, 150 s.
    {
        let mut s = jenkins.lock();
        let n = s.nodes.get_mut(&node).expect("node");
        n.executors[1] = true;
        n.running.remove(&1);
    }
    at(160);
    poll(&mut r);
    let lib = r
        .costs
        .job("folder/lib one")
        .expect("job from the URL")
        .clone();
    assert_eq!(lib.total.builds, 1);
    assert!(
        close(lib.total.dollars, 150.0 * 0.36 / 3600.0 / 2.0),
        "{lib:?}"
    );
    assert!(close(lib.pools["linux"].dollars, lib.total.dollars));
    assert_eq!(lib.days.keys().collect::<Vec<_>>(), ["2026-12-03"]);
    assert!(close(
        r.costs.job("app").expect("app").total.dollars,
        0.0045
    ));

    // /status: highest first; metrics per job and pool; the page's table.
    let status = r.shared.status();
    let jobs = status["job_costs"]["jobs"]
        .as_array()
        .expect("jobs")
        .clone();
    assert_eq!(jobs.len(), 2);
    assert_eq!(jobs[0]["job"], "folder/lib one");
    assert_eq!(jobs[1]["job"], "app");
    assert_eq!(jobs[0]["builds"], 1);
    assert!(close(jobs[0]["instance_seconds"].as_f64().unwrap(), 150.0));
    assert!(close(
        jobs[0]["days"]["2026-12-03"]["dollars"].as_f64().unwrap(),
        0.0075
    ));
    assert_eq!(status["job_costs"]["running_builds"], 0);
    let m = r.shared.metrics.render();
    let app_d = sample(
        &m,
        "nectr_fleet_job_cost_dollars_total{job=\"app\",pool=\"linux\"}",
    );
    let lib_d = sample(
        &m,
        "nectr_fleet_job_cost_dollars_total{job=\"folder/lib one\",pool=\"linux\"}",
    );
    assert!(app_d.is_some_and(|d| close(d, 0.0045)), "{m}");
    assert!(lib_d.is_some_and(|d| close(d, 0.0075)), "{m}");
    assert!(
        sample(
            &m,
            "nectr_fleet_job_instance_seconds_total{job=\"app\",pool=\"linux\"}"
        )
        .is_some_and(|s| close(s, 90.0)),
        "{m}"
    );
    let page = nectr_fleet::page::render(&status);
    assert!(
        page.contains("<td>folder/lib one</td><td>1</td><td>150</td><td>$0.0075</td>"),
        "{page}"
    );
    assert!(
        page.contains("<td>app</td><td>1</td><td>90</td><td>$0.0045</td>"),
        "{page}"
    );
}
