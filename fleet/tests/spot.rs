//! Spot interruption notices and rebalance recommendations (issue 12 item 5), against moto
//! (EC2) and the scripted fake Jenkins: the instance reports the notice by tagging itself
//! (`nectr:interruption` / `nectr:rebalance`, as `ami/files/nectr-spot-watch` does on a real
//! instance); the fleet reads the tag in its one describe per poll.

mod support;

use aws_sdk_ec2::types::Tag;
use nectr_fleet::cloud::credentials::Credentials;
use nectr_fleet::cloud::ec2::Ec2Provider;
use nectr_fleet::cloud::CloudProvider;
use nectr_fleet::config::Config;
use nectr_fleet::reconcile::Reconciler;
use nectr_fleet::secret::Secret;
use nectr_fleet::server::Shared;
use std::path::PathBuf;
use std::sync::Arc;
use support::aws::RawAws;
use support::fake_jenkins::FakeJenkins;
use support::moto::Moto;

struct Env {
    jenkins: FakeJenkins,
    _moto: Moto,
    aws: RawAws,
    cloud: Arc<Ec2Provider>,
    cfg: Config,
    path: PathBuf,
}

fn env(name: &str, pool_extra: &str) -> Env {
    let jenkins = FakeJenkins::start();
    let moto = Moto::start();
    let dir = support::temp_dir(name);
    let text = support::config_text(name, &jenkins.url, &moto.url, pool_extra, "");
    let (path, cfg) = support::write_config(&dir, &text);
    let creds = Credentials {
        access_key_id: "testing".into(),
        secret_access_key: Secret::new("testing"),
        session_token: None,
    };
    let cloud = Arc::new(Ec2Provider::new(&cfg.aws, creds).expect("provider"));
    let aws = RawAws::new(&moto.url);
    Env {
        jenkins,
        _moto: moto,
        aws,
        cloud,
        cfg,
        path,
    }
}

impl Env {
    fn reconciler(&self) -> Reconciler {
        support::first_start(
            Reconciler::new(
                self.cfg.clone(),
                Some(self.path.clone()),
                self.cloud.clone(),
                Arc::new(Shared::default()),
            )
            .expect("reconciler"),
        )
    }

    fn live(&self) -> Vec<nectr_fleet::cloud::Instance> {
        self.cloud
            .describe_owned(&self.cfg.fleet_id)
            .expect("describe")
            .into_iter()
            .filter(|i| i.is_live())
            .collect()
    }

    /// What the instance's watcher does on a real instance: tag itself.
    fn tag(&self, instance: &str, key: &str, value: &str) {
        self.aws
            .run(
                self.aws
                    .ec2
                    .create_tags()
                    .resources(instance)
                    .tags(Tag::builder().key(key).value(value).build())
                    .send(),
            )
            .expect("CreateTags");
    }

    fn terminate(&self, instance: &str) {
        self.aws
            .run(
                self.aws
                    .ec2
                    .terminate_instances()
                    .instance_ids(instance)
                    .send(),
            )
            .expect("TerminateInstances");
    }
}

/// One spot instance whose agent is connected and runs 4 builds (all executors busy).
fn one_busy_agent(e: &Env, r: &mut Reconciler) -> (String, String) {
    e.jenkins.set_queue_waiting(4, "linux");
    let rep = r.poll_once(true);
    assert!(rep.errors.is_empty(), "{:?}", rep.errors);
    let live = e.live();
    assert_eq!(live.len(), 1);
    assert!(live[0].spot, "purchase = spot launches spot instances");
    e.jenkins.lock().queue.clear();
    e.jenkins.connect_all(false);
    let rep = r.poll_once(true);
    assert!(rep.errors.is_empty(), "{:?}", rep.errors);
    let p = rep.plan.expect("plan");
    assert!(p.launches.is_empty() && p.fences.is_empty(), "{p:?}");
    (
        live[0].id.clone(),
        live[0].node().expect("node tag").to_string(),
    )
}

#[test]
fn interruption_notice_fences_and_replaces_in_one_poll_and_never_kills_a_build() {
    let e = env("spot-notice", "purchase = \"spot\"");
    let mut r = e.reconciler();
    let (id, node) = one_busy_agent(&e, &mut r);

    // The 2-minute notice: the instance tags itself.
    e.tag(&id, "nectr:interruption", "2026-12-04T00:02:00Z");
    let rep = r.poll_once(true);
    assert!(rep.errors.is_empty(), "{:?}", rep.errors);
    let p = rep.plan.clone().expect("plan");
    // Fenced within this poll...
    assert_eq!(p.fences.len(), 1, "{p:?}");
    assert_eq!(p.fences[0].node, node);
    assert!(
        p.fences[0].reason.contains("spot interruption notice"),
        "{p:?}"
    );
    assert!(e.jenkins.lock().nodes[&node].temporarily_offline);
    // ... and its replacement launched in the same poll: its 4 running builds are demand.
    assert_eq!(p.launches.len(), 1, "{p:?}");
    assert_eq!(p.pools["linux"].interrupted, 1);
    assert_eq!(p.pools["linux"].demand_executors, 4);
    let live = e.live();
    assert_eq!(live.len(), 2);
    assert!(live.iter().any(|i| i.id != id && i.spot));
    let m = r.shared.metrics.render();
    assert!(
        m.contains("nectr_fleet_spot_interruptions_total{pool=\"linux\",kind=\"interruption\"} 1"),
        "{m}"
    );
    let status = r.shared.status();
    assert_eq!(status["spot_notices"][0]["instance"], id.as_str());
    assert_eq!(status["spot_notices"][0]["kind"], "interruption");
    assert_eq!(status["spot_notices"][0]["notice"], "2026-12-04T00:02:00Z");
    assert_eq!(status["pools"]["linux"]["interrupted"], 1);
    let row = status["instances"]
        .as_array()
        .expect("rows")
        .iter()
        .find(|i| i["id"] == id.as_str())
        .cloned()
        .expect("row");
    assert_eq!(row["spot_notice"]["kind"], "interruption");
    let page = nectr_fleet::page::render(&status);
    assert!(
        page.contains("spot interruption notice 2026-12-04T00:02:00Z"),
        "{page}"
    );

    // While its builds run: it stays fenced (never lifted, so never new builds), nothing is
    // deleted or terminated, no second replacement, the notice counted once.
    for _ in 0..3 {
        let rep = r.poll_once(true);
        assert!(rep.errors.is_empty(), "{:?}", rep.errors);
        let p = rep.plan.expect("plan");
        assert!(
            p.launches.is_empty() && p.lifts.is_empty() && p.retires.is_empty(),
            "{p:?}"
        );
        assert!(e.jenkins.lock().nodes[&node].temporarily_offline);
    }
    assert_eq!(e.jenkins.count("POST", "doDelete"), 0);
    assert_eq!(e.live().len(), 2);

    // EC2 takes the instance; the agent's builds end with it (Jenkins shows the node
    // disconnected and idle). The fleet deletes the node; the replacement stays.
    e.terminate(&id);
    {
        let mut s = e.jenkins.lock();
        let n = s.nodes.get_mut(&node).expect("node");
        n.connected = false;
        n.executors.iter_mut().for_each(|x| *x = true);
    }
    r.poll_once(true);
    let rep = r.poll_once(true);
    assert!(rep.errors.is_empty(), "{:?}", rep.errors);
    assert!(!e.jenkins.lock().nodes.contains_key(&node), "node deleted");
    assert!(e.jenkins.lock().deletes.iter().all(|d| !d.busy));
    let live = e.live();
    assert_eq!(live.len(), 1);
    assert_ne!(live[0].id, id);
    let m = r.shared.metrics.render();
    assert!(m.contains("nectr_fleet_busy_terminations_total 0"), "{m}");
    assert!(
        m.contains("nectr_fleet_spot_interruptions_total{pool=\"linux\",kind=\"interruption\"} 1"),
        "{m}"
    );
}

#[test]
fn interrupted_idle_node_is_retired_by_the_fleet_once_idle() {
    let e = env("spot-idle", "purchase = \"spot\"\nmin_instances = 1");
    let mut r = e.reconciler();
    let (id, node) = one_busy_agent(&e, &mut r);
    e.tag(&id, "nectr:interruption", "2026-12-04T00:02:00Z");
    let rep = r.poll_once(true);
    let p = rep.plan.expect("plan");
    assert_eq!((p.fences.len(), p.launches.len()), (1, 1), "{p:?}");
    // The builds finish before EC2 acts: the node is idle, the fleet retires it (settle 0 s)
    // and terminates the instance itself, only now that it is idle.
    e.jenkins.connect_all(true);
    // The replacement's node: keep it booting (not connected) so it is not scaled in.
    let replacement: Vec<String> = e
        .jenkins
        .lock()
        .nodes
        .keys()
        .filter(|n| **n != node)
        .cloned()
        .collect();
    for n in &replacement {
        e.jenkins.lock().nodes.get_mut(n).expect("node").connected = false;
    }
    let rep = r.poll_once(true);
    assert!(rep.errors.is_empty(), "{:?}", rep.errors);
    let p = rep.plan.expect("plan");
    assert_eq!(p.retires.len(), 1, "{p:?}");
    assert!(
        p.launches.is_empty(),
        "min_instances is met by the replacement: {p:?}"
    );
    assert!(!e.jenkins.lock().nodes.contains_key(&node));
    let live = e.live();
    assert_eq!(live.len(), 1);
    assert_ne!(live[0].id, id);
    let m = r.shared.metrics.render();
    assert!(m.contains("nectr_fleet_busy_terminations_total 0"), "{m}");
}

#[test]
fn rebalance_recommendation_acts_only_where_configured() {
    // Without `rebalance = true` the tag is ignored.
    let e = env("spot-rebalance-off", "purchase = \"spot\"");
    let mut r = e.reconciler();
    let (id, node) = one_busy_agent(&e, &mut r);
    e.tag(&id, "nectr:rebalance", "2026-12-04T00:00:00Z");
    let rep = r.poll_once(true);
    let p = rep.plan.expect("plan");
    assert!(p.fences.is_empty() && p.launches.is_empty(), "{p:?}");
    assert!(!e.jenkins.lock().nodes[&node].temporarily_offline);
    assert!(!r
        .shared
        .metrics
        .render()
        .contains("nectr_fleet_spot_interruptions_total{"));
    drop(r);
    drop(e);

    let e = env("spot-rebalance-on", "purchase = \"spot\"\nrebalance = true");
    let mut r = e.reconciler();
    let (id, node) = one_busy_agent(&e, &mut r);
    e.tag(&id, "nectr:rebalance", "2026-12-04T00:00:00Z");
    let rep = r.poll_once(true);
    let p = rep.plan.expect("plan");
    assert_eq!((p.fences.len(), p.launches.len()), (1, 1), "{p:?}");
    assert!(p.fences[0].reason.contains("rebalance"), "{p:?}");
    assert!(e.jenkins.lock().nodes[&node].temporarily_offline);
    assert!(r
        .shared
        .metrics
        .render()
        .contains("nectr_fleet_spot_interruptions_total{pool=\"linux\",kind=\"rebalance\"} 1"));
    assert_eq!(e.live().len(), 2);
}
