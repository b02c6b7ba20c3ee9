//! The fleet's promises under faults (issue 9), one regression test per defect, against
//! moto behind the EC2 fault layer (`support/faulty_cloud.rs`) and the fake Jenkins with its
//! faults (`support/fake_jenkins.rs`), all on 127.0.0.1.

mod support;

use nectr_fleet::cloud::ec2::Ec2Provider;
use nectr_fleet::cloud::sigv4::Credentials;
use nectr_fleet::cloud::{CloudProvider, Instance};
use nectr_fleet::config::Config;
use nectr_fleet::reconcile::Reconciler;
use nectr_fleet::secret::Secret;
use nectr_fleet::server::Shared;
use std::path::PathBuf;
use std::sync::Arc;
use support::fake_jenkins::FakeJenkins;
use support::faulty_cloud::FaultyCloud;
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
    /// A fresh service: memory empty, as after `kill -9` and a restart.
    fn reconciler(&self) -> Reconciler {
        Reconciler::new(
            self.cfg.clone(),
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
