//! Schedules (issue 12 item 8) through the real loop: moto + the fake Jenkins, the wall
//! time from a fixed clock set across a window's start and end in Europe/Berlin.

mod support;

use nectr_fleet::cloud::credentials::Credentials;
use nectr_fleet::cloud::ec2::Ec2Provider;
use nectr_fleet::cloud::CloudProvider;
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

fn ms(rfc3339: &str) -> u64 {
    // Parsed by hand so the test does not depend on the crate's time library.
    nectr_fleet::util::parse_iso8601_ms(rfc3339).expect("timestamp")
}

#[test]
fn office_hours_raise_min_instances_from_the_window_start_to_its_end() {
    let jenkins = FakeJenkins::start();
    let moto = Moto::start();
    let dir = support::temp_dir("schedules");
    let text = support::config_text(
        "sched",
        &jenkins.url,
        &moto.url,
        "spare_executors = 0\n\n[[pool.schedule]]\ncron = \"0 8 * * MON-FRI\"\nduration = \"11h\"\ntimezone = \"Europe/Berlin\"\nmin_instances = 2\n",
        "",
    );
    let (path, cfg) = support::write_config(&dir, &text);
    let creds = Credentials {
        access_key_id: "testing".into(),
        secret_access_key: Secret::new("testing"),
        session_token: None,
    };
    let ec2 = Arc::new(Ec2Provider::new(&cfg.aws, creds).expect("ec2"));
    let client = JenkinsClient::new(&jenkins.url, "fleet", Secret::new("tok-123-secret"), 2_000);
    // Monday 2026-11-30, 07:59 in Berlin (UTC+1).
    let clock = Arc::new(FixedClock(AtomicU64::new(ms("2026-11-30T06:59:00.000Z"))));
    let mut r = support::first_start(Reconciler::with_parts(
        cfg,
        Some(path),
        Arc::new(client),
        ec2.clone(),
        clock.clone(),
        Arc::new(Shared::default()),
    ));
    let live = || {
        ec2.describe_owned("sched")
            .expect("describe")
            .iter()
            .filter(|i| i.is_live())
            .count()
    };
    let pool_status = |r: &Reconciler| r.shared.status()["config"]["in_force"][0].clone();

    // Before the window: the pool's own min_instances (0), nothing launched.
    let rep = r.poll_once(true);
    assert!(rep.observed, "{rep:?}");
    assert_eq!(rep.plan.as_ref().map(|p| p.launches.len()), Some(0));
    assert_eq!(live(), 0);
    let p = pool_status(&r);
    assert_eq!(p["min_instances"], 0, "{p}");
    assert_eq!(p["schedules"][0]["in_force"], false, "{p}");
    assert_eq!(
        p["schedules"][0]["next_start"], "2026-11-30 08:00 CET",
        "{p}"
    );

    // 08:00: the window's min_instances.
    clock
        .0
        .store(ms("2026-11-30T07:00:00.000Z"), Ordering::SeqCst);
    let rep = r.poll_once(true);
    assert_eq!(
        rep.plan.as_ref().map(|p| p.launches.len()),
        Some(2),
        "{rep:?}"
    );
    assert_eq!(live(), 2);
    let p = pool_status(&r);
    assert_eq!(p["min_instances"], 2, "{p}");
    assert_eq!(p["own_min_instances"], 0, "{p}");
    assert_eq!(p["schedules"][0]["in_force"], true, "{p}");
    assert_eq!(p["schedules"][0]["until"], "2026-11-30 19:00 CET", "{p}");
    let page = nectr_fleet::page::render(&r.shared.status());
    assert!(
        page.contains("id=\"schedules\"")
            && page
                .contains("<b>in force</b> since 2026-11-30 08:00 CET until 2026-11-30 19:00 CET"),
        "{page}"
    );
    // Still in the window: the two count, no more.
    clock
        .0
        .store(ms("2026-11-30T17:59:00.000Z"), Ordering::SeqCst);
    let rep = r.poll_once(true);
    assert_eq!(
        rep.plan.as_ref().map(|p| p.launches.len()),
        Some(0),
        "{rep:?}"
    );

    // 19:00: back to the pool's own values; the next window is Tuesday's.
    clock
        .0
        .store(ms("2026-11-30T18:00:00.000Z"), Ordering::SeqCst);
    r.poll_once(true);
    let p = pool_status(&r);
    assert_eq!(p["min_instances"], 0, "{p}");
    assert_eq!(p["schedules"][0]["in_force"], false, "{p}");
    assert_eq!(
        p["schedules"][0]["next_start"], "2026-12-01 08:00 CET",
        "{p}"
    );
    assert_eq!(live(), 2, "nothing terminated because a window ended");
}
