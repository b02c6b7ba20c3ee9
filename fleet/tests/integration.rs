//! nectr-fleet against moto (EC2) and a scripted fake Jenkins, all on 127.0.0.1.

mod support;

use nectr_fleet::cloud::credentials::Credentials;
use nectr_fleet::cloud::ec2::Ec2Provider;
use nectr_fleet::cloud::{CloudProvider, InstanceState};
use nectr_fleet::config::Config;
use nectr_fleet::reconcile::Reconciler;
use nectr_fleet::secret::Secret;
use nectr_fleet::server::Shared;
use std::path::PathBuf;
use std::sync::Arc;
use support::fake_jenkins::{Failure, FakeJenkins};
use support::moto::Moto;

struct Env {
    jenkins: FakeJenkins,
    _moto: Moto,
    cloud: Arc<Ec2Provider>,
    cfg: Config,
    path: PathBuf,
    dir: PathBuf,
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
    Env {
        jenkins,
        _moto: moto,
        cloud,
        cfg,
        path,
        dir,
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

    fn live_instances(&self) -> Vec<nectr_fleet::cloud::Instance> {
        self.cloud
            .describe_owned(&self.cfg.fleet_id)
            .expect("describe")
            .into_iter()
            .filter(|i| i.is_live())
            .collect()
    }

    fn all_instances(&self) -> Vec<nectr_fleet::cloud::Instance> {
        self.cloud
            .describe_owned(&self.cfg.fleet_id)
            .expect("describe")
    }
}

#[test]
fn burst_of_fifty_items_is_one_exact_launch_round() {
    let e = env("burst", "");
    e.jenkins.set_queue_waiting(50, "linux");
    let mut r = e.reconciler();
    let rep = r.poll_once(true);
    assert!(rep.errors.is_empty(), "{:?}", rep.errors);
    // 50 executors / 4 per instance = 13 instances, launched in one round.
    assert_eq!(rep.plan.as_ref().map(|p| p.launches.len()), Some(13));
    let inst = e.live_instances();
    assert_eq!(inst.len(), 13);
    assert_eq!(e.jenkins.lock().nodes.len(), 13);
    // Every instance carries the ownership tags and its node's name; every node its pool.
    for i in &inst {
        let node = i.node().expect("node tag");
        assert!(e.jenkins.lock().nodes.contains_key(node), "{node}");
        assert_eq!(i.tag("nectr:jenkins-url"), Some(e.jenkins.url.as_str()));
        assert_eq!(i.pool(), Some("linux"));
        assert!(i.token().is_some());
        let desc = e.jenkins.lock().nodes[node].description.clone();
        assert!(desc.contains(&format!("instance={}", i.id)), "{desc}");
    }
    // Every Jenkins request was authenticated and asked for English.
    assert!(e
        .jenkins
        .calls()
        .iter()
        .all(|c| c.authorized && c.accept_language.as_deref() == Some("en")));

    // Following polls: the items still wait, the nodes are still booting: nothing new.
    for _ in 0..3 {
        let before = e.jenkins.calls().len();
        let rep = r.poll_once(true);
        assert!(rep.errors.is_empty(), "{:?}", rep.errors);
        assert_eq!(rep.plan.as_ref().map(|p| p.launches.len()), Some(0));
        let during: Vec<_> = e.jenkins.calls()[before..].to_vec();
        assert_eq!(during.len(), 2, "two reads of Jenkins per poll: {during:?}");
        assert!(during.iter().all(|c| c.method == "GET"));
    }
    assert_eq!(e.all_instances().len(), 13);
    let status = r.shared.status();
    assert_eq!(status["pools"]["linux"]["demand_executors"], 50);
    assert_eq!(status["pools"]["linux"]["connecting_executors"], 52);
}

/// Launch one agent, let it "connect" and go idle.
fn one_idle_agent(e: &Env, r: &mut Reconciler) -> String {
    e.jenkins.set_queue_waiting(1, "linux&&x64");
    let rep = r.poll_once(true);
    assert!(rep.errors.is_empty(), "{:?}", rep.errors);
    assert_eq!(e.live_instances().len(), 1);
    e.jenkins.lock().queue.clear();
    e.jenkins.connect_all(true);
    let node = e.jenkins.lock().nodes.keys().next().cloned().expect("node");
    node
}

#[test]
fn scale_in_fence_retires_an_idle_agent() {
    let e = env("retire", "");
    let mut r = e.reconciler();
    let node = one_idle_agent(&e, &mut r);
    let rep = r.poll_once(true); // fence (idle_timeout 0s)
    assert_eq!(
        rep.plan.as_ref().map(|p| p.fences.len()),
        Some(1),
        "{:?}",
        rep
    );
    assert!(e.jenkins.lock().nodes[&node].temporarily_offline);
    let rep = r.poll_once(true); // settle 0s: re-read, delete, terminate
    assert!(rep.errors.is_empty(), "{:?}", rep.errors);
    assert!(!e.jenkins.lock().nodes.contains_key(&node));
    assert_eq!(e.live_instances().len(), 0, "terminated");
    assert_eq!(e.jenkins.count("POST", "doDelete"), 1);
    let m = r.shared.metrics.render();
    assert!(
        m.contains("nectr_fleet_fence_outcomes_total{outcome=\"retired\"} 1"),
        "{m}"
    );
    assert!(m.contains("nectr_fleet_busy_terminations_total 0"));
}

/// After a controller restart (a new `X-Jenkins-Session`), a resumed Pipeline takes its node
/// back only once Jenkins has loaded it: an idle-looking node is kept for `restart_grace`.
#[test]
fn a_controller_restart_holds_scale_in_for_the_restart_grace() {
    let e = env("restart-grace", "");
    let mut cfg = e.cfg.clone();
    cfg.jenkins.restart_grace_ms = 3_000;
    let mut r = support::first_start(
        Reconciler::new(cfg, None, e.cloud.clone(), Arc::new(Shared::default()))
            .expect("reconciler"),
    );
    e.jenkins.lock().session = Some("session-before".into());
    let node = one_idle_agent(&e, &mut r);
    // Jenkins restarts: same nodes, new session; the node looks idle (idle_timeout 0s).
    e.jenkins.lock().session = Some("session-after".into());
    let restarted = std::time::Instant::now();
    let mut checked = 0;
    for _ in 0..3 {
        let rep = r.poll_once(true);
        assert!(rep.errors.is_empty(), "{:?}", rep.errors);
        if restarted.elapsed() >= std::time::Duration::from_millis(2_500) {
            break;
        }
        assert_eq!(
            rep.plan.as_ref().map(|p| p.fences.len()),
            Some(0),
            "fenced within the restart grace: {rep:?}"
        );
        assert!(!e.jenkins.lock().nodes[&node].temporarily_offline);
        // The status page says why the idle node stays.
        let status = r.shared.status();
        assert!(
            status["controller_restart"]["idle_clocks_held_until"].is_string(),
            "{status}"
        );
        assert!(nectr_fleet::page::render(&status).contains("id=\"restart\""));
        checked += 1;
        std::thread::sleep(std::time::Duration::from_millis(300));
    }
    assert!(
        checked > 0,
        "no poll ran within the restart grace (a slow machine?)"
    );
    // After the grace, the node's idle clock runs and the idle node is fenced and retired.
    std::thread::sleep(std::time::Duration::from_millis(3_100).saturating_sub(restarted.elapsed()));
    let rep = r.poll_once(true);
    assert_eq!(
        rep.plan.as_ref().map(|p| p.fences.len()),
        Some(1),
        "{rep:?}"
    );
    let rep = r.poll_once(true);
    assert!(rep.errors.is_empty(), "{:?}", rep.errors);
    assert!(!e.jenkins.lock().nodes.contains_key(&node));
    assert_eq!(e.live_instances().len(), 0, "terminated");
}

#[test]
fn build_assigned_after_the_fence_means_nothing_terminated() {
    let e = env("fence-race", "");
    let mut r = e.reconciler();
    let node = one_idle_agent(&e, &mut r);
    // The controller assigns a build to the node right as the fence lands.
    let n2 = node.clone();
    e.jenkins.lock().hook = Some(Box::new(move |s, call| {
        if call.path.ends_with("changeOfflineCause") {
            if let Some(n) = s.nodes.get_mut(&n2) {
                n.executors[0] = false;
            }
        }
    }));
    r.poll_once(true); // fence
    let rep = r.poll_once(true); // sees busy: lift, never delete
    assert_eq!(
        rep.plan.as_ref().map(|p| (p.retires.len(), p.lifts.len())),
        Some((0, 1)),
        "{rep:?}"
    );
    assert!(e.jenkins.lock().nodes.contains_key(&node));
    assert!(
        !e.jenkins.lock().nodes[&node].temporarily_offline,
        "fence lifted"
    );
    assert_eq!(e.jenkins.count("POST", "doDelete"), 0);
    assert_eq!(e.live_instances().len(), 1);

    // Now the race at the final re-read: idle in the poll's observation, busy on re-read.
    e.jenkins.connect_all(true);
    let n3 = node.clone();
    e.jenkins.lock().hook = Some(Box::new(move |s, call| {
        if call.method == "GET" && call.path == format!("/computer/{n3}/api/json") {
            if let Some(n) = s.nodes.get_mut(&n3) {
                n.executors[0] = false;
            }
        }
    }));
    r.poll_once(true); // fence again
    let rep = r.poll_once(true); // retire planned, aborted by the re-read
    assert!(
        rep.actions
            .iter()
            .any(|a| a.contains("aborted at the final re-read")),
        "{rep:?}"
    );
    assert_eq!(e.jenkins.count("POST", "doDelete"), 0);
    assert_eq!(e.live_instances().len(), 1);
    assert!(r
        .shared
        .metrics
        .render()
        .contains("nectr_fleet_fence_outcomes_total{outcome=\"aborted\"} 1"));
}

#[test]
fn jenkins_errors_and_timeouts_never_scale_in() {
    let e = env("jenkins-down", "");
    let mut r = e.reconciler();
    let node = one_idle_agent(&e, &mut r);
    for failure in [Failure::Status500, Failure::Hang] {
        e.jenkins.lock().failure = failure;
        for _ in 0..3 {
            let rep = r.poll_once(true);
            assert!(!rep.observed && rep.plan.is_none(), "{failure:?}: {rep:?}");
            assert!(!rep.errors.is_empty());
        }
    }
    e.jenkins.lock().failure = Failure::None;
    assert!(e.jenkins.lock().nodes.contains_key(&node));
    assert!(!e.jenkins.lock().nodes[&node].temporarily_offline);
    assert_eq!(e.jenkins.count("POST", "changeOfflineCause"), 0);
    assert_eq!(e.jenkins.count("POST", "doDelete"), 0);
    assert_eq!(e.live_instances().len(), 1);
    let status = r.shared.status();
    assert_eq!(status["last_poll"]["observed"], false);
}

#[test]
fn restart_adopts_without_duplicates_or_terminations() {
    let e = env("adopt", "");
    e.jenkins.set_queue_waiting(6, "linux");
    {
        let mut r = e.reconciler();
        r.poll_once(true);
        assert_eq!(e.live_instances().len(), 2);
        // Dropped here without any clean-up: all in-memory state is lost, like kill -9.
    }
    let mut r2 = e.reconciler();
    for _ in 0..4 {
        let rep = r2.poll_once(true);
        assert!(rep.errors.is_empty(), "{:?}", rep.errors);
        let p = rep.plan.expect("plan");
        assert!(
            p.launches.is_empty() && p.orphan_instances.is_empty() && p.retires.is_empty(),
            "{p:?}"
        );
    }
    assert_eq!(e.all_instances().len(), 2);
    assert!(e
        .all_instances()
        .iter()
        .all(|i| i.state != InstanceState::ShuttingDown && i.state != InstanceState::Terminated));
    assert_eq!(e.jenkins.lock().nodes.len(), 2);
}

/// Kills (SIGKILL) the child when dropped, so a failing test leaves no process behind.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn killed_process_restart_adopts_instances() {
    let e = env("kill9", "");
    e.jenkins.set_queue_waiting(4, "linux");
    let bin = env!("CARGO_BIN_EXE_nectr-fleet");
    let spawn = || {
        std::process::Command::new(bin)
            .args(["run", "--config"])
            .arg(&e.path)
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .map(KillOnDrop)
            .expect("spawn nectr-fleet")
    };
    let mut child = spawn();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while e.all_instances().is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "no launch within 30 s"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    // kill -9 right after RunInstances, before any agent connected.
    child.0.kill().expect("kill");
    let _ = child.0.wait();
    let launched = e.all_instances().len();
    assert_eq!(launched, 1);
    let mut child = spawn();
    std::thread::sleep(std::time::Duration::from_secs(4));
    child.0.kill().expect("kill");
    let _ = child.0.wait();
    assert_eq!(
        e.all_instances().len(),
        1,
        "no duplicate launch after restart"
    );
    assert_eq!(
        e.live_instances().len(),
        1,
        "nothing terminated during recovery"
    );
    assert_eq!(e.jenkins.count("POST", "doDelete"), 0);
}

#[test]
fn hot_reload_applies_valid_and_rejects_invalid_edits() {
    let e = env("reload", "");
    let mut r = e.reconciler();
    e.jenkins.set_queue_waiting(40, "linux");
    // Valid edit: cap the pool at 2 instances before the first launch.
    let text = std::fs::read_to_string(&e.path).expect("read");
    std::fs::write(
        &e.path,
        text.replace("max_instances = 40", "max_instances = 2"),
    )
    .expect("write");
    let rep = r.poll_once(true);
    assert_eq!(r.config().pools[0].max_instances, 2);
    assert_eq!(rep.plan.as_ref().map(|p| p.launches.len()), Some(2));
    assert!(r.config_error().is_none());
    assert_eq!(e.live_instances().len(), 2);

    // Invalid edit: rejected with key and line, running config stays, nothing is killed.
    let good = std::fs::read_to_string(&e.path).expect("read");
    std::fs::write(
        &e.path,
        good.replace("max_instances = 2", "max_instances = 2\nmin_instances = 5"),
    )
    .expect("write");
    let rep = r.poll_once(true);
    assert!(rep.observed);
    let err = r.config_error().expect("error recorded").to_string();
    assert!(
        err.contains("pool[0] (name \"linux\").max_instances"),
        "{err}"
    );
    assert!(err.contains("fleet.toml:"), "{err}");
    assert_eq!(r.config().pools[0].max_instances, 2);
    assert_eq!(r.config().pools[0].min_instances, 0);
    let status = r.shared.status();
    assert!(
        status["config"]["error"]
            .as_str()
            .unwrap_or("")
            .contains("max_instances"),
        "{status}"
    );
    assert_eq!(e.live_instances().len(), 2);

    // A change that needs a restart is rejected too.
    std::fs::write(
        &e.path,
        good.replace("fleet_id = \"reload\"", "fleet_id = \"other\""),
    )
    .expect("write");
    r.poll_once(true);
    assert!(r.config_error().unwrap_or("").contains("need a restart"));
    assert_eq!(r.config().fleet_id, "reload");

    // Lowering max below the running count drains, never kills.
    std::fs::write(
        &e.path,
        good.replace("max_instances = 2", "max_instances = 1"),
    )
    .expect("write");
    let rep = r.poll_once(true);
    assert!(r.config_error().is_none());
    let p = rep.plan.expect("plan");
    assert!(p.orphan_instances.is_empty() && p.retires.is_empty() && p.launches.is_empty());
    assert_eq!(e.live_instances().len(), 2);

    // A rejected edit is rendered as `check` renders it: the pool named in a type error, a
    // byte offset for a file that is not UTF-8.
    std::fs::write(
        &e.path,
        good.replace("executors = 4", "executors = \"four\""),
    )
    .expect("write");
    r.poll_once(true);
    let err = r.config_error().unwrap_or("").to_string();
    assert!(
        err.contains("fleet.toml:")
            && err.contains(
                "pool[0] (name \"linux\").executors: expected an integer, found string \"four\""
            ),
        "{err}"
    );
    let mut bytes = good.clone().into_bytes();
    let at = good.find("name = \"linux\"").expect("name") + 8;
    bytes[at] = 0xC3; // a lone UTF-8 lead byte
    std::fs::write(&e.path, &bytes).expect("write");
    r.poll_once(true);
    let err = r.config_error().unwrap_or("").to_string();
    assert!(
        err.contains(&format!("not valid UTF-8: byte 0xC3 at offset {at}")),
        "{err}"
    );
    assert_eq!(
        r.config().pools[0].max_instances,
        1,
        "the running config stays"
    );
    let _ = &e.dir;
}
