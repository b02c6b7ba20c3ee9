//! Fault injection against moto + the fake Jenkins: capacity errors, throttling, spot,
//! orphan nodes, /metrics and /status over HTTP.

mod support;

use nectr_fleet::cloud::credentials::Credentials;
use nectr_fleet::cloud::ec2::Ec2Provider;
use nectr_fleet::cloud::{CloudProvider, Market, Offering};
use nectr_fleet::jenkins::NodeTag;
use nectr_fleet::reconcile::Reconciler;
use nectr_fleet::secret::Secret;
use nectr_fleet::server::{serve, Shared};
use std::io::{Read, Write};
use std::sync::Arc;
use support::fake_jenkins::{FakeJenkins, FakeNode};
use support::faulty_cloud::FaultyCloud;
use support::moto::Moto;

struct Env {
    jenkins: FakeJenkins,
    moto: Moto,
    cloud: Arc<FaultyCloud<Ec2Provider>>,
    rec: Reconciler,
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
    let rec = support::first_start(
        Reconciler::new(cfg, Some(path), cloud.clone(), Arc::new(Shared::default()))
            .expect("reconciler"),
    );
    Env {
        jenkins,
        moto,
        cloud,
        rec,
    }
}

fn off(t: &str, m: Market) -> Offering {
    Offering {
        instance_type: t.into(),
        market: m,
    }
}

#[test]
fn capacity_errors_fall_through_types_then_to_on_demand_with_backoff() {
    let mut e = env("capacity", "purchase = \"spot-then-on-demand\"", "");
    {
        let mut nc = e
            .cloud
            .no_capacity
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        nc.insert(off("c5.xlarge", Market::Spot));
        nc.insert(off("m5.xlarge", Market::Spot));
    }
    e.jenkins.set_queue_waiting(4, "linux");
    let rep = e.rec.poll_once(true);
    assert!(rep.errors.is_empty(), "{:?}", rep.errors);
    let attempts = e
        .cloud
        .attempts
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    let tried: Vec<String> = attempts
        .iter()
        .map(|(o, _, ok)| format!("{o} {ok}"))
        .collect();
    assert_eq!(
        tried,
        [
            "c5.xlarge spot false",
            "m5.xlarge spot false",
            "c5.xlarge on-demand true"
        ]
    );
    // Each attempt used its own idempotency token.
    let tokens: std::collections::BTreeSet<&String> = attempts.iter().map(|a| &a.1).collect();
    assert_eq!(tokens.len(), 3);
    let inst = e.cloud.describe_owned("capacity").expect("describe");
    assert_eq!(inst.len(), 1);
    assert_eq!(inst[0].instance_type, "c5.xlarge");
    assert!(!inst[0].spot);
    assert_eq!(e.rec.memory.offering_backoff.len(), 2);
    let m = e.rec.shared.metrics.render();
    assert!(
        m.contains("nectr_fleet_launch_failures_total{pool=\"linux\",reason=\"capacity\"} 2"),
        "{m}"
    );

    // More demand: the backed-off spot offerings are not even tried.
    e.jenkins.set_queue_waiting(8, "linux");
    let rep = e.rec.poll_once(true);
    let p = rep.plan.expect("plan");
    assert_eq!(p.launches.len(), 1);
    assert_eq!(
        p.launches[0].offerings,
        vec![
            off("c5.xlarge", Market::OnDemand),
            off("m5.xlarge", Market::OnDemand)
        ]
    );
    assert_eq!(
        e.cloud
            .attempts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .len(),
        4
    );
}

#[test]
fn spot_launch_is_spot_in_ec2() {
    let mut e = env("spot", "purchase = \"spot\"", "");
    e.jenkins.set_queue_waiting(1, "linux");
    let rep = e.rec.poll_once(true);
    assert!(rep.errors.is_empty(), "{:?}", rep.errors);
    let inst = e.cloud.describe_owned("spot").expect("describe");
    assert_eq!(inst.len(), 1);
    assert!(inst[0].spot, "{:?}", inst[0]);
}

#[test]
fn throttling_backs_off_and_takes_no_action() {
    let mut e = env("throttle", "", "");
    e.jenkins.set_queue_waiting(4, "linux");
    *e.cloud
        .throttle_describes
        .lock()
        .unwrap_or_else(|p| p.into_inner()) = 1;
    let rep = e.rec.poll_once(true);
    assert!(!rep.observed && rep.plan.is_none());
    assert!(
        rep.errors[0].contains("RequestLimitExceeded"),
        "{:?}",
        rep.errors
    );
    // Immediately after: still backing off, no cloud call at all.
    let rep = e.rec.poll_once(true);
    assert!(rep.errors[0].contains("backoff"), "{:?}", rep.errors);
    assert!(e
        .cloud
        .attempts
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .is_empty());
    // After the backoff (2 s for the first throttle) it launches normally.
    std::thread::sleep(std::time::Duration::from_millis(2100));
    let rep = e.rec.poll_once(true);
    assert!(rep.errors.is_empty(), "{:?}", rep.errors);
    assert_eq!(
        e.cloud.describe_owned("throttle").expect("describe").len(),
        1
    );
}

#[test]
fn orphan_node_without_instance_is_deleted_after_grace() {
    let mut e = env("orphan", "", "orphan_grace = \"0s\"");
    let tag = NodeTag {
        fleet: "orphan".into(),
        pool: "linux".into(),
        token: "dead".into(),
        instance: Some("i-gone".into()),
        created_ms: 1,
    };
    e.jenkins.lock().nodes.insert(
        "nectr-linux-dead".into(),
        FakeNode {
            description: tag.render(),
            executors: vec![true; 4],
            ..FakeNode::default()
        },
    );
    // A foreign node is never touched.
    e.jenkins.lock().nodes.insert(
        "static-1".into(),
        FakeNode {
            description: "build box".into(),
            executors: vec![true],
            ..FakeNode::default()
        },
    );
    let rep = e.rec.poll_once(true);
    assert!(
        rep.plan.as_ref().is_some_and(|p| p.orphan_nodes.is_empty()),
        "first poll adopts only"
    );
    let rep = e.rec.poll_once(true);
    assert_eq!(
        rep.plan.as_ref().map(|p| p.orphan_nodes.len()),
        Some(1),
        "{rep:?}"
    );
    assert!(!e.jenkins.lock().nodes.contains_key("nectr-linux-dead"));
    assert!(e.jenkins.lock().nodes.contains_key("static-1"));
}

fn http_get(addr: std::net::SocketAddr, path: &str) -> String {
    let mut s = std::net::TcpStream::connect(addr).expect("connect");
    write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").expect("write");
    let mut out = String::new();
    s.read_to_string(&mut out).expect("read");
    out
}

#[test]
fn metrics_and_status_over_http() {
    let mut e = env("http", "", "");
    e.jenkins.set_queue_waiting(3, "linux");
    e.jenkins.lock().queue.push(serde_json::json!({"id": 5, "buildable": true, "why": "Waiting for next available executor on \u{2018}solaris\u{2019}"}));
    e.rec.poll_once(true);
    let addr = serve("127.0.0.1:0".parse().expect("addr"), e.rec.shared.clone()).expect("serve");
    let m = http_get(addr, "/metrics");
    assert!(m.starts_with("HTTP/1.1 200"), "{m}");
    assert!(
        m.contains("nectr_fleet_demand_executors{pool=\"linux\"} 3"),
        "{m}"
    );
    assert!(
        m.contains("nectr_fleet_launches_total{pool=\"linux\",offering=\"c5.xlarge on-demand\"} 1"),
        "{m}"
    );
    assert!(m.contains("nectr_fleet_not_launchable_items{reason=\"no pool matches label \u{2018}solaris\u{2019}\"} 1"), "{m}");
    assert!(m.contains("nectr_fleet_busy_terminations_total 0"));
    assert!(m.contains("nectr_fleet_decision_seconds_count 1"));
    assert!(m.contains("nectr_fleet_queue_to_launch_seconds_count{pool=\"linux\"} 1"));
    let s = http_get(addr, "/status");
    let body = s.split("\r\n\r\n").nth(1).unwrap_or("");
    let v: serde_json::Value = serde_json::from_str(body).expect("status is JSON");
    assert_eq!(v["fleet_id"], "http");
    assert_eq!(v["pools"]["linux"]["demand_executors"], 3);
    assert_eq!(v["launches_in_flight"].as_array().map(Vec::len), Some(1));
    assert!(
        !body.contains("tok-123-secret"),
        "the API token never shows"
    );
    assert!(http_get(addr, "/nope").starts_with("HTTP/1.1 404"));
}

#[test]
fn instance_whose_agent_never_connects_is_terminated_after_the_boot_deadline() {
    let mut e = env("orphan-inst", "", "orphan_grace = \"0s\"");
    // boot_deadline is 5m in the test config; use the minimum (30 s) here.
    let text = std::fs::read_to_string(
        e.rec
            .config()
            .jenkins
            .token_file
            .with_file_name("fleet.toml"),
    )
    .expect("read");
    std::fs::write(
        e.rec
            .config()
            .jenkins
            .token_file
            .with_file_name("fleet.toml"),
        text.replace("boot_deadline = \"5m\"", "boot_deadline = \"30s\""),
    )
    .expect("write");
    e.jenkins.set_queue_waiting(1, "linux");
    let rep = e.rec.poll_once(true);
    assert!(rep.errors.is_empty(), "{:?}", rep.errors);
    assert_eq!(e.rec.config().pools[0].boot_deadline_ms, 30_000);
    e.jenkins.lock().queue.clear();
    let node = e.jenkins.lock().nodes.keys().next().cloned().expect("node");
    // Within the deadline: booting capacity, left alone.
    for _ in 0..3 {
        let rep = e.rec.poll_once(true);
        assert!(rep
            .plan
            .as_ref()
            .is_some_and(|p| p.orphan_instances.is_empty()));
    }
    std::thread::sleep(std::time::Duration::from_secs(31));
    let rep = e.rec.poll_once(true);
    let p = rep.plan.as_ref().expect("plan");
    assert_eq!(p.orphan_instances.len(), 1, "{rep:?}");
    assert_eq!(p.orphan_instances[0].node.as_deref(), Some(node.as_str()));
    assert!(
        !e.jenkins.lock().nodes.contains_key(&node),
        "never-connected node deleted first"
    );
    let live: Vec<_> = e
        .cloud
        .describe_owned("orphan-inst")
        .expect("describe")
        .into_iter()
        .filter(|i| i.is_live())
        .collect();
    assert!(live.is_empty(), "{live:?}");
    assert!(e
        .rec
        .shared
        .metrics
        .render()
        .contains("nectr_fleet_orphans_cleaned_total{kind=\"instance\"} 1"));
}

#[test]
fn newest_tagged_ami_and_launch_template_against_moto() {
    let jenkins = FakeJenkins::start();
    let moto = Moto::start();
    let creds = || Credentials {
        access_key_id: "testing".into(),
        secret_access_key: Secret::new("testing"),
        session_token: None,
    };
    let dir = support::temp_dir("images");
    let text = support::config_text("images", &jenkins.url, &moto.url, "", "").replace(
        "ami = \"ami-12345678\"",
        "ami = { tag = \"nectr:image\", value = \"agent\" }",
    );
    let text = format!(
        "{text}\n[[pool]]\nname = \"tmpl\"\nlabels = [\"tmpl\"]\ninstance_types = [\"t3.micro\"]\nlaunch_template = {{ name = \"nectr-tmpl\" }}\nmax_instances = 2\n"
    );
    let (path, cfg) = support::write_config(&dir, &text);
    let ec2 = Ec2Provider::new(&cfg.aws, creds()).expect("provider");
    let raw = support::aws::RawAws::new(&moto.url);
    // Two tagged images from a scratch instance; the newer one must be used.
    let scratch = raw.scratch_instance("ami-12345678");
    let mut images = Vec::new();
    for name in ["agent-1", "agent-2"] {
        images.push(raw.tagged_image(&scratch, name, "nectr:image", "agent"));
        std::thread::sleep(std::time::Duration::from_millis(1100));
    }
    assert_eq!(
        ec2.newest_image("nectr:image", "agent").expect("newest"),
        images[1]
    );
    assert!(ec2.newest_image("nectr:image", "nope").is_err());
    raw.launch_template("nectr-tmpl", "ami-87654321", "t3.micro");

    let cloud = Arc::new(Ec2Provider::new(&cfg.aws, creds()).expect("provider"));
    let mut rec =
        Reconciler::new(cfg, Some(path), cloud, Arc::new(Shared::default())).expect("reconciler");
    jenkins.set_queue_waiting(1, "linux");
    jenkins.lock().queue.push(serde_json::json!({"id": 77, "buildable": true, "why": "There are no nodes with the label \u{2018}tmpl\u{2019}"}));
    let rep = rec.poll_once(true);
    assert!(rep.errors.is_empty(), "{:?}", rep.errors);
    let all = raw.fleet_images("images");
    assert_eq!(all.len(), 2, "{all:?}");
    assert!(
        all.iter().any(|(_, ami)| *ami == images[1]),
        "newest tagged image used: {all:?}"
    );
    assert!(
        all.iter().any(|(_, ami)| ami == "ami-87654321"),
        "launch template used: {all:?}"
    );
}

#[test]
fn instance_stopped_behind_our_back_gets_its_node_fenced_then_deleted() {
    let mut e = env("reclaim", "", "");
    e.jenkins.set_queue_waiting(1, "linux");
    e.rec.poll_once(true);
    e.jenkins.lock().queue.clear();
    e.jenkins.connect_all(false); // the agent is busy
    let node = e.jenkins.lock().nodes.keys().next().cloned().expect("node");
    let id = e.cloud.describe_owned("reclaim").expect("describe")[0]
        .id
        .clone();
    e.rec.poll_once(true);
    // An operator (or a spot interruption with the stop behaviour) stops the instance behind
    // our back. (moto moves terminated instances out of the describe at once, so a stop is
    // what stays observable here.)
    support::aws::RawAws::new(&e.moto.url).stop(&id);
    let rep = e.rec.poll_once(true);
    let plan = rep.plan.expect("plan");
    assert_eq!(plan.fences.len(), 1, "{plan:?}");
    assert!(
        e.jenkins.lock().nodes[&node].temporarily_offline,
        "no new work for a dying agent"
    );
    // The build dies with the machine; the node goes idle and is deleted, never lifted.
    e.jenkins
        .lock()
        .nodes
        .get_mut(&node)
        .expect("node")
        .executors = vec![true; 4];
    e.jenkins
        .lock()
        .nodes
        .get_mut(&node)
        .expect("node")
        .connected = false;
    let rep = e.rec.poll_once(true);
    assert!(rep.plan.as_ref().is_some_and(|p| p.lifts.is_empty()));
    assert!(!e.jenkins.lock().nodes.contains_key(&node), "{rep:?}");
}

/// Issue 12 item 11: the dollar cap counts launches in flight. The instances of the first
/// launches stay out of the describe for 6 s (EC2's read-after-write lag) and never connect;
/// polls in between must not launch more, and neither may later ones.
#[test]
fn dollar_cap_counts_launches_not_yet_visible_or_online() {
    // c5.xlarge in us-east-1 is $0.17/h on demand (the bundled table): $0.40/h fits two.
    let mut e = env("budget", "", "max_dollars_per_hour = 0.40");
    {
        let mut f = e.cloud.faults.lock().unwrap_or_else(|p| p.into_inner());
        f.visibility_ms = (6_000, 6_000);
    }
    e.jenkins.set_queue_waiting(40, "linux");
    let rep = e.rec.poll_once(true);
    assert!(rep.errors.is_empty(), "{:?}", rep.errors);
    let plan = rep.plan.expect("plan");
    assert_eq!(plan.launches.len(), 2, "{plan:?}");
    assert!(
        plan.pools["linux"]
            .capped_by
            .as_deref()
            .is_some_and(|c| c.starts_with("max_dollars_per_hour")),
        "{plan:?}"
    );
    assert_eq!(e.cloud.record().made.len(), 2);
    // Not visible yet, not online: still counted.
    for _ in 0..2 {
        let rep = e.rec.poll_once(true);
        assert!(rep.observed, "{:?}", rep.errors);
        let plan = rep.plan.expect("plan");
        assert!(plan.launches.is_empty(), "{plan:?}");
        assert_eq!(plan.pools["linux"].in_flight_instances, 2, "{plan:?}");
        assert!(
            e.rec.shared.status()["budget"]["headroom_dollars_per_hour"]
                .as_f64()
                .is_some_and(|h| h < 0.17),
            "{}",
            e.rec.shared.status()["budget"]
        );
    }
    assert!(
        e.cloud
            .describe_owned("budget")
            .expect("describe")
            .is_empty(),
        "the lag still hid them from every poll above"
    );
    // Visible now, still not online: counted as live instances instead.
    std::thread::sleep(std::time::Duration::from_millis(6_200));
    for _ in 0..2 {
        let rep = e.rec.poll_once(true);
        assert!(rep.plan.expect("plan").launches.is_empty());
    }
    assert_eq!(e.cloud.describe_owned("budget").expect("describe").len(), 2);
    assert_eq!(
        e.cloud.record().made.len(),
        2,
        "RunInstances made no third instance"
    );
    let _ = &e.moto;
}
