//! Two replicas sharing an S3 lease (moto): exactly one acts; a paused leader loses the
//! lease to the other, and cannot act when it resumes.

mod support;

use nectr_fleet::cloud::credentials::Credentials;
use nectr_fleet::cloud::ec2::Ec2Provider;
use nectr_fleet::cloud::s3::S3Object;
use nectr_fleet::cloud::CloudProvider;
use nectr_fleet::lease::Lease;
use nectr_fleet::reconcile::Reconciler;
use nectr_fleet::secret::Secret;
use nectr_fleet::server::Shared;
use std::sync::Arc;
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

#[test]
fn exactly_one_replica_acts_and_a_paused_leader_is_fenced_out() {
    let jenkins = FakeJenkins::start();
    let moto = Moto::start();
    let dir = support::temp_dir("lease");
    let text = support::config_text(
        "lease",
        &jenkins.url,
        &moto.url,
        "",
        "[lease]\nbucket = \"nectr-lease\"\nttl = \"3s\"\n",
    );
    let (path, cfg) = support::write_config(&dir, &text);
    let lc = cfg.lease.clone().expect("lease config");
    assert_eq!(lc.key, "lease/lease.json");
    let obj = || S3Object::new(&cfg.aws, &lc.bucket, &lc.key, creds()).expect("s3");
    obj().create_bucket().expect("bucket");
    let ec2 = Arc::new(Ec2Provider::new(&cfg.aws, creds()).expect("ec2"));
    let replica = |id: &str| {
        Reconciler::new(
            cfg.clone(),
            Some(path.clone()),
            ec2.clone(),
            Arc::new(Shared::default()),
        )
        .expect("reconciler")
        .with_lease(Lease::new(id.into(), lc.ttl_ms, Box::new(obj())))
    };
    let mut a = replica("a");
    let mut b = replica("b");
    let count = || ec2.describe_owned("lease").expect("describe").len();

    jenkins.set_queue_waiting(4, "linux");
    a.poll_once(true); // acquires, observes only
    b.poll_once(true); // standby
    assert_eq!(count(), 0);
    a.poll_once(true); // acts
    b.poll_once(true);
    assert_eq!(count(), 1);
    assert_eq!(a.shared.status()["role"]["mode"], "leader");
    assert_eq!(b.shared.status()["role"]["mode"], "standby");
    assert_eq!(b.shared.status()["role"]["holder"], "a");
    for _ in 0..3 {
        a.poll_once(true);
        b.poll_once(true);
    }
    assert_eq!(count(), 1, "the standby never launched");

    // `a` pauses (no renewals). `b` takes over after ttl + margin.
    let t = Instant::now();
    while b.shared.status()["role"]["mode"] != "leader" {
        assert!(t.elapsed() < Duration::from_secs(10), "b never took over");
        b.poll_once(true);
        std::thread::sleep(Duration::from_millis(250));
    }
    assert!(
        t.elapsed() >= Duration::from_millis(2500),
        "took over before the lease expired"
    );
    assert!(
        !a.may_act(),
        "the paused ex-leader's own deadline has passed"
    );
    jenkins.set_queue_waiting(8, "linux");
    b.poll_once(true);
    assert_eq!(
        count(),
        2,
        "b acts: one more instance for the new demand, no duplicate"
    );

    // `a` resumes: it sees b's lease and stands by, acting on nothing.
    let rep = a.poll_once(true);
    assert_eq!(a.shared.status()["role"]["mode"], "standby");
    assert!(rep.actions.is_empty());
    jenkins.set_queue_waiting(12, "linux");
    a.poll_once(true);
    assert_eq!(count(), 2, "a never acts without the lease");
    b.poll_once(true);
    assert_eq!(count(), 3);
}
