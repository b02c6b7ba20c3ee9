//! The fleet's promises under faults (issue 9), one regression test per defect, against
//! moto behind the EC2 fault layer (`support/faulty_cloud.rs`) and the fake Jenkins with its
//! faults (`support/fake_jenkins.rs`), all on 127.0.0.1.

mod support;

use nectr_fleet::cloud::credentials::Credentials;
use nectr_fleet::cloud::ec2::Ec2Provider;
use nectr_fleet::cloud::{CloudProvider, Instance};
use nectr_fleet::config::Config;
use nectr_fleet::reconcile::Reconciler;
use nectr_fleet::secret::Secret;
use nectr_fleet::server::Shared;
use std::path::PathBuf;
use std::sync::Arc;
use support::fake_jenkins::FakeJenkins;
use support::faulty_cloud::{Ec2Faults, FaultyCloud};
use support::moto::Moto;

struct Env {
    jenkins: FakeJenkins,
    _moto: Moto,
    cloud: Arc<FaultyCloud<Ec2Provider>>,
    cfg: Config,
    path: PathBuf,
}

fn env(name: &str, pool_extra: &str, top_extra: &str) -> Env {
    let jenkins = FakeJenkins::start();
    let moto = Moto::start();
    let dir = support::temp_dir(name);
    let text = support::config_text(name, &jenkins.url, &moto.url, pool_extra, top_extra);
    let (path, cfg) = support::write_config(&dir, &text);
    let creds = Credentials {
        access_key_id: "testing".into(),
        secret_access_key: Secret::new("testing"),
        session_token: None,
    };
    let cloud = Arc::new(FaultyCloud::new(
        Ec2Provider::new(&cfg.aws, creds).expect("provider"),
    ));
    Env {
        jenkins,
        _moto: moto,
        cloud,
        cfg,
        path,
    }
}

impl Env {
    /// A fresh service with the config file as it is now: memory empty, as after `kill -9`
    /// and a restart.
    fn reconciler(&self) -> Reconciler {
        let cfg = nectr_fleet::config::load_file(&self.path).expect("config");
        Reconciler::new(
            cfg,
            Some(self.path.clone()),
            self.cloud.clone(),
            Arc::new(Shared::default()),
        )
        .expect("reconciler")
    }

    /// Every live owned instance, visible or not yet (straight from moto).
    fn live_instances(&self) -> Vec<Instance> {
        self.cloud
            .inner
            .describe_owned(&self.cfg.fleet_id)
            .expect("describe")
            .into_iter()
            .filter(|i| i.is_live())
            .collect()
    }
}

/// Defect 4: the queue was read before the computers, so an item Jenkins dispatched between
/// the two reads counted both as waiting and as running, and the service launched for it.
#[test]
fn an_item_dispatched_between_the_two_reads_is_never_counted_twice() {
    let e = env("read-order", "", "");
    let mut r = e.reconciler();
    // One agent of 4 executors, connected and idle.
    e.jenkins.set_queue_waiting(1, "linux");
    r.poll_once(true);
    e.jenkins.lock().queue.clear();
    e.jenkins.connect_all(true);
    r.poll_once(true);
    assert_eq!(e.live_instances().len(), 1);
    let node = e.jenkins.lock().nodes.keys().next().cloned().expect("node");

    // Four items wait; Jenkins hands one to the idle agent between the poll's two reads.
    e.jenkins.set_queue_waiting(4, "linux");
    let mut reads = 0;
    e.jenkins.lock().hook = Some(Box::new(move |s, call| {
        if call.method == "GET"
            && (call.path == "/queue/api/json" || call.path == "/computer/api/json")
        {
            reads += 1;
            if reads == 2 {
                s.queue.remove(0);
                if let Some(n) = s.nodes.get_mut(&node) {
                    n.executors[0] = false;
                }
            }
        }
    }));
    let rep = r.poll_once(true);
    assert!(rep.errors.is_empty(), "{:?}", rep.errors);
    // 3 waiting + 1 running on 4 executors: nothing to launch.
    assert_eq!(
        rep.plan.as_ref().map(|p| p.launches.len()),
        Some(0),
        "the dispatched item was counted twice: {:?}",
        rep.plan.as_ref().map(|p| &p.pools)
    );
    assert_eq!(e.live_instances().len(), 1);
}

/// Launch one agent through the service, then let it connect and go idle.
fn one_idle_agent(e: &Env, r: &mut Reconciler) -> String {
    e.jenkins.set_queue_waiting(1, "linux");
    let rep = r.poll_once(true);
    assert!(rep.errors.is_empty(), "{:?}", rep.errors);
    e.jenkins.lock().queue.clear();
    e.jenkins.connect_all(true);
    let node = e.jenkins.lock().nodes.keys().next().cloned().expect("node");
    node
}

/// Poll (without pause beyond `pause_ms`) until `node` is deleted or `polls` are done.
fn poll_until_deleted(e: &Env, r: &mut Reconciler, node: &str, polls: usize, pause_ms: u64) {
    for _ in 0..polls {
        if !e.jenkins.lock().nodes.contains_key(node) {
            return;
        }
        r.poll_once(true);
        std::thread::sleep(std::time::Duration::from_millis(pause_ms));
    }
}

/// Defect 1: the fence was timed from the start of the poll that sent it (and, when adopted,
/// from the `at=` of its reason), so with a slow `changeOfflineCause` the settle interval
/// was spent before the node was even offline, and the node was deleted 0.1 s after its
/// fence took effect. It must be deleted no sooner than `settle_interval` after.
#[test]
fn the_settle_interval_runs_from_when_the_fence_took_effect() {
    let e = env("slow-fence", "", "settle_interval = \"1200ms\"");
    let r = e.reconciler();
    let settle = 1200;

    // A: Jenkins takes 1.5 s to apply the fence and answer.
    let mut r = support::first_start(r);
    let node = one_idle_agent(&e, &mut r);
    e.jenkins.lock().faults.drain_delay_ms = 1500;
    let rep = r.poll_once(true);
    assert_eq!(
        rep.plan.as_ref().map(|p| p.fences.len()),
        Some(1),
        "{rep:?}"
    );
    e.jenkins.lock().faults.drain_delay_ms = 0;
    poll_until_deleted(&e, &mut r, &node, 40, 50);

    // B: the answer to the fence is lost after Jenkins applied it (slowly), and the
    // service restarts: the fence is adopted from Jenkins (and nothing is deleted for
    // 2 x jenkins.timeout after the start).
    let mut r = support::first_start(e.reconciler());
    let node2 = one_idle_agent(&e, &mut r);
    {
        let mut s = e.jenkins.lock();
        s.faults.drain_delay_ms = 1500;
        s.faults.lose_percent = 100;
    }
    let rep = r.poll_once(true);
    assert_eq!(
        rep.plan.as_ref().map(|p| p.fences.len()),
        Some(1),
        "{rep:?}"
    );
    {
        let mut s = e.jenkins.lock();
        s.faults.drain_delay_ms = 0;
        s.faults.lose_percent = 0;
    }
    let mut r = e.reconciler();
    poll_until_deleted(&e, &mut r, &node2, 60, 150);

    let deletes = e.jenkins.lock().deletes.clone();
    assert_eq!(deletes.len(), 2, "{deletes:?}");
    for d in &deletes {
        assert!(!d.busy, "{d:?}");
        let since = d.fenced_since_ms.expect("deleted while fenced");
        assert!(
            d.at_ms >= since + settle,
            "{} deleted {} ms after its fence took effect (settle_interval {settle} ms)",
            d.name,
            d.at_ms - since
        );
    }
    assert!(e.live_instances().is_empty());
}

fn env_with(name: &str, edit: impl Fn(String) -> String, faults: Ec2Faults) -> Env {
    let jenkins = FakeJenkins::start();
    let moto = Moto::start();
    let dir = support::temp_dir(name);
    let text = edit(support::config_text(name, &jenkins.url, &moto.url, "", ""));
    let (path, cfg) = support::write_config(&dir, &text);
    let creds = Credentials {
        access_key_id: "testing".into(),
        secret_access_key: Secret::new("testing"),
        session_token: None,
    };
    let cloud = Arc::new(FaultyCloud::with_faults(
        Ec2Provider::new(&cfg.aws, creds).expect("provider"),
        faults,
    ));
    Env {
        jenkins,
        _moto: moto,
        cloud,
        cfg,
        path,
    }
}

/// Defect 2: a `RunInstances` whose answer was lost after EC2 acted was taken as "not
/// launched": the node was deleted and the launch forgotten, leaving an instance without a
/// node while the item waited a whole boot deadline. The outcome must be resolved with the
/// same client token, never guessed.
#[test]
fn a_lost_run_instances_answer_is_resolved_with_the_same_client_token() {
    let e = env_with("lost-launch", |t| t, Ec2Faults::default());
    let mut r = e.reconciler();
    e.jenkins.set_queue_waiting(1, "linux");
    *e.cloud.lose_next_launches.lock().expect("lock") = 1;
    let rep = r.poll_once(true);
    assert!(rep.errors.is_empty(), "{:?}", rep.errors);
    let inst = e.live_instances();
    assert_eq!(inst.len(), 1, "{inst:?}");
    let attempts = e.cloud.attempts.lock().expect("lock").clone();
    assert_eq!(attempts.len(), 2, "{attempts:?}");
    assert_eq!(
        attempts[0].1, attempts[1].1,
        "retried with the same client token"
    );
    assert_eq!(e.cloud.record().made.len(), 1);
    // The node stays, linked to the instance the lost call made.
    let nodes = e.jenkins.lock().nodes.clone();
    assert_eq!(nodes.len(), 1, "{nodes:?}");
    let (node, n) = nodes.iter().next().expect("node");
    assert_eq!(inst[0].node(), Some(node.as_str()));
    assert!(n.description.contains(&format!("instance={}", inst[0].id)));
    // Every answer lost: the outcome stays unknown; the node is kept and the launch counted
    // in flight, so nothing is launched again while the instance is not visible.
    e.jenkins.set_queue_waiting(5, "linux");
    *e.cloud.lose_next_launches.lock().expect("lock") = 10;
    let rep = r.poll_once(true);
    assert_eq!(rep.plan.as_ref().map(|p| p.launches.len()), Some(1));
    assert!(
        rep.errors.iter().any(|m| m.contains("counted in flight")),
        "{:?}",
        rep.errors
    );
    assert_eq!(e.jenkins.lock().nodes.len(), 2);
    assert_eq!(e.cloud.record().made.len(), 2);
    *e.cloud.lose_next_launches.lock().expect("lock") = 0;
    for _ in 0..3 {
        let rep = r.poll_once(true);
        assert_eq!(
            rep.plan.as_ref().map(|p| p.launches.len()),
            Some(0),
            "{rep:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(700));
    }
    assert_eq!(e.live_instances().len(), 2);
    assert_eq!(e.jenkins.lock().nodes.len(), 2);
    assert!(r.memory.ledger.is_empty(), "{:?}", r.memory.ledger);
}

/// Defect 3: instances launched right before a `kill -9` are invisible to describes for a
/// moment after the restart, and their nodes were not counted: the service launched again
/// (two instances with `max_instances = 1`). Nodes the fleet created count in flight until
/// their instance is seen or proven absent.
#[test]
fn a_restart_during_the_describe_lag_launches_nothing_twice() {
    let faults = Ec2Faults {
        visibility_ms: (1200, 1500),
        ..Ec2Faults::default()
    };
    let e = env_with(
        "restart-lag",
        |t| t.replace("max_instances = 40", "max_instances = 1"),
        faults,
    );
    e.jenkins.set_queue_waiting(2, "linux");
    e.reconciler().poll_once(true); // launched, then killed (memory gone)
    assert_eq!(e.live_instances().len(), 1);
    let mut r = e.reconciler();
    for _ in 0..4 {
        let rep = r.poll_once(true);
        assert_eq!(
            rep.plan.as_ref().map(|p| p.launches.len()),
            Some(0),
            "{rep:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
    // Killed mid-launch: the answer lost and the service gone before it could retry. The
    // node still says `instance=pending`.
    let text = std::fs::read_to_string(&e.path).expect("read");
    std::fs::write(
        &e.path,
        text.replace("max_instances = 1", "max_instances = 2"),
    )
    .expect("write");
    e.jenkins.set_queue_waiting(8, "linux");
    // The retry never comes: the process dies right after the first answer is lost.
    *e.cloud.die_after_next_launch.lock().expect("lock") = true;
    e.reconciler().poll_once(true);
    e.cloud.set_dead(false);
    assert_eq!(e.live_instances().len(), 2);
    assert!(e
        .jenkins
        .lock()
        .nodes
        .values()
        .any(|n| n.description.contains("instance=pending")));
    let mut r = e.reconciler();
    for _ in 0..4 {
        let rep = r.poll_once(true);
        assert_eq!(
            rep.plan.as_ref().map(|p| p.launches.len()),
            Some(0),
            "{rep:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
    assert_eq!(e.live_instances().len(), 2, "no duplicate, no cap overrun");
    assert_eq!(e.cloud.record().made.len(), 2);
}
