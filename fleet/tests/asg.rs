//! Pools with `backend = "asg"` (issue 12 item 3), on moto's Auto Scaling and EC2 and the fake
//! Jenkins: scale-out raises the group's desired capacity and adopts the instance the group
//! launches (node, secret, `nectr:node` tag); scale-in targets the idle instance with
//! `TerminateInstanceInAutoScalingGroup` + `ShouldDecrementDesiredCapacity`; busy instances
//! carry scale-in protection, cleared when idle; an instance the group replaces on its own is
//! adopted, not fought; an EC2 pool and a group pool in one fleet.toml, side by side on the
//! status page. Asserted through an independent SDK client.

mod support;

use aws_sdk_autoscaling::types::LaunchTemplateSpecification;
use nectr_fleet::cloud::credentials::Credentials;
use nectr_fleet::cloud::ec2::Ec2Provider;
use nectr_fleet::cloud::secret_parameter;
use nectr_fleet::reconcile::Reconciler;
use nectr_fleet::secret::Secret;
use nectr_fleet::server::Shared;
use std::collections::BTreeMap;
use std::sync::Arc;
use support::aws::RawAws;
use support::fake_jenkins::FakeJenkins;
use support::moto::Moto;

const GROUP: &str = "nectr-linux";

struct Env {
    jenkins: FakeJenkins,
    _moto: Moto,
    raw: RawAws,
    rec: Reconciler,
}

/// The group [`GROUP`] in moto: a launch template, capacity 0 of at most 3.
fn create_group(raw: &RawAws) {
    raw.launch_template("nectr-agent", "ami-12345678", "c5.xlarge");
    raw.run(
        raw.asg
            .create_auto_scaling_group()
            .auto_scaling_group_name(GROUP)
            .launch_template(
                LaunchTemplateSpecification::builder()
                    .launch_template_name("nectr-agent")
                    .version("$Latest")
                    .build(),
            )
            .min_size(0)
            .max_size(3)
            .desired_capacity(0)
            .availability_zones("us-east-1a")
            .send(),
    )
    .expect("CreateAutoScalingGroup");
}

fn env(name: &str) -> Env {
    let jenkins = FakeJenkins::start();
    let moto = Moto::start();
    let raw = RawAws::new(&moto.url);
    create_group(&raw);
    let dir = support::temp_dir(name);
    let text = support::config_text(name, &jenkins.url, &moto.url, "", "orphan_grace = \"0s\"")
        .replace(
            "ami = \"ami-12345678\"",
            &format!("backend = \"asg\"\ngroup = \"{GROUP}\""),
        )
        .replace(
            "instance_types = [\"c5.xlarge\", \"m5.xlarge\"]",
            "instance_types = [\"c5.xlarge\"]",
        );
    let (path, cfg) = support::write_config(&dir, &text);
    let creds = Credentials {
        access_key_id: "testing".into(),
        secret_access_key: Secret::new("testing"),
        session_token: None,
    };
    let cloud = Arc::new(Ec2Provider::new(&cfg.aws, creds).expect("provider"));
    let rec = support::first_start(
        Reconciler::new(cfg, Some(path), cloud, Arc::new(Shared::default())).expect("reconciler"),
    );
    Env {
        jenkins,
        _moto: moto,
        raw,
        rec,
    }
}

/// What moto holds for the group.
#[derive(Debug)]
struct Seen {
    desired: i32,
    /// instance id -> protected from scale-in
    instances: BTreeMap<String, bool>,
}

impl Env {
    fn group(&self) -> Seen {
        let out = self
            .raw
            .run(
                self.raw
                    .asg
                    .describe_auto_scaling_groups()
                    .auto_scaling_group_names(GROUP)
                    .send(),
            )
            .expect("DescribeAutoScalingGroups");
        let g = &out.auto_scaling_groups()[0];
        Seen {
            desired: g.desired_capacity().unwrap_or(-1),
            instances: g
                .instances()
                .iter()
                .map(|i| {
                    (
                        i.instance_id().unwrap_or("").to_string(),
                        i.protected_from_scale_in().unwrap_or(false),
                    )
                })
                .collect(),
        }
    }

    /// The EC2 tags and state of `id`.
    fn instance(&self, id: &str) -> (BTreeMap<String, String>, String) {
        let out = self
            .raw
            .run(self.raw.ec2.describe_instances().instance_ids(id).send())
            .expect("DescribeInstances");
        let i = &out.reservations()[0].instances()[0];
        (
            i.tags()
                .iter()
                .map(|t| {
                    (
                        t.key().unwrap_or("").to_string(),
                        t.value().unwrap_or("").to_string(),
                    )
                })
                .collect(),
            i.state()
                .and_then(|s| s.name())
                .map(|n| n.as_str().to_string())
                .unwrap_or_default(),
        )
    }

    fn poll(&mut self) -> nectr_fleet::reconcile::PollReport {
        let rep = self.rec.poll_once(true);
        assert!(rep.errors.is_empty(), "{:?}", rep.errors);
        rep
    }

    fn nodes(&self) -> Vec<String> {
        self.jenkins.lock().nodes.keys().cloned().collect()
    }

    fn set_busy(&self, node: &str, busy: bool) {
        let mut s = self.jenkins.lock();
        let n = s.nodes.get_mut(node).expect("node");
        n.connected = true;
        for e in n.executors.iter_mut() {
            *e = !busy;
        }
    }

    fn secret_tags(&self, node: &str) -> Option<BTreeMap<String, String>> {
        let out = self
            .raw
            .run(
                self.raw
                    .ssm
                    .list_tags_for_resource()
                    .resource_type(aws_sdk_ssm::types::ResourceTypeForTagging::Parameter)
                    .resource_id(secret_parameter(node))
                    .send(),
            )
            .ok()?;
        Some(
            out.tag_list()
                .iter()
                .map(|t| (t.key().to_string(), t.value().to_string()))
                .collect(),
        )
    }
}

#[test]
fn scale_out_adopts_protects_busy_and_scale_in_targets_the_idle_instance() {
    let mut e = env("asg-scale");
    // Two instances' worth of work (4 executors each).
    e.jenkins.set_queue_waiting(5, "linux");
    let rep = e.poll();
    assert_eq!(
        rep.actions
            .iter()
            .filter(|a| a.contains("raised Auto Scaling group nectr-linux"))
            .count(),
        2,
        "{rep:?}"
    );
    let g = e.group();
    assert_eq!(g.desired, 2, "{g:?}");
    assert_eq!(g.instances.len(), 2, "moto launches at once: {g:?}");
    let nodes = e.nodes();
    assert_eq!(
        nodes.len(),
        2,
        "nodes are created before the group launches"
    );

    // Next poll: each group instance adopted by one waiting node; nothing launched again.
    let rep = e.poll();
    assert_eq!(
        rep.actions
            .iter()
            .filter(|a| a.starts_with("adopted "))
            .count(),
        2,
        "{rep:?}"
    );
    assert!(!rep.actions.iter().any(|a| a.contains("raised")), "{rep:?}");
    let mut node_of = BTreeMap::new();
    for id in e.group().instances.keys() {
        let (tags, _) = e.instance(id);
        assert_eq!(
            tags.get("nectr:fleet-id").map(String::as_str),
            Some("asg-scale")
        );
        assert_eq!(tags.get("nectr:pool").map(String::as_str), Some("linux"));
        assert_eq!(
            tags.get("aws:autoscaling:groupName").map(String::as_str),
            Some(GROUP)
        );
        let node = tags.get("nectr:node").expect("nectr:node tag").clone();
        assert!(nodes.contains(&node), "{node} not one of {nodes:?}");
        let st = e.secret_tags(&node).expect("secret stored");
        assert_eq!(st.get("nectr:instance"), Some(id), "{st:?}");
        node_of.insert(id.clone(), node);
    }
    let mut distinct: Vec<&String> = node_of.values().collect();
    distinct.dedup();
    assert_eq!(distinct.len(), 2, "{node_of:?}");
    assert_eq!(e.group().desired, 2);

    // One runs a build, one is idle, the queue is empty.
    let ids: Vec<String> = node_of.keys().cloned().collect();
    let (busy_id, idle_id) = (&ids[0], &ids[1]);
    e.jenkins.lock().queue.clear();
    e.set_busy(&node_of[busy_id], true);
    e.set_busy(&node_of[idle_id], false);
    let rep = e.poll();
    assert!(
        rep.actions
            .iter()
            .any(|a| a.contains(&format!("set scale-in protection on {busy_id}"))),
        "{rep:?}"
    );
    let g = e.group();
    assert_eq!(g.instances.get(busy_id), Some(&true), "{g:?}");
    assert_eq!(g.instances.get(idle_id), Some(&false), "{g:?}");

    // The idle one is fenced (idle_timeout 0s), then retired through the group; the busy one
    // is kept. Bounded: a few polls.
    let mut retired = false;
    for _ in 0..4 {
        let rep = e.poll();
        if rep
            .actions
            .iter()
            .any(|a| a.starts_with(&format!("retired {}", node_of[idle_id])))
        {
            retired = true;
            break;
        }
    }
    assert!(retired, "the idle instance was not retired");
    let g = e.group();
    assert_eq!(g.desired, 1, "decremented, not replaced: {g:?}");
    assert_eq!(
        g.instances.keys().collect::<Vec<_>>(),
        vec![busy_id],
        "{g:?}"
    );
    assert_eq!(e.instance(idle_id).1, "terminated");
    assert_eq!(e.nodes(), vec![node_of[busy_id].clone()]);

    // The build ends: protection cleared.
    e.set_busy(&node_of[busy_id], false);
    let rep = e.poll();
    assert!(
        rep.actions
            .iter()
            .any(|a| a.contains(&format!("cleared scale-in protection on {busy_id}"))),
        "{rep:?}"
    );
    assert_eq!(e.group().instances.get(busy_id), Some(&false));
    // /status shows the group.
    let status = e.rec.shared.status().to_string();
    assert!(status.contains("\"group\":\"nectr-linux\""), "{status}");
}

#[test]
fn an_instance_the_group_replaces_is_adopted_not_fought() {
    let mut e = env("asg-replace");
    e.jenkins.set_queue_waiting(1, "linux");
    e.poll();
    e.poll();
    let g = e.group();
    assert_eq!(g.desired, 1);
    let old = g.instances.keys().next().expect("instance").clone();
    let old_node = e
        .instance(&old)
        .0
        .get("nectr:node")
        .expect("adopted")
        .clone();
    e.set_busy(&old_node, true);

    // The group replaces it (as after a failed health check): terminated without lowering
    // the desired capacity, a new instance launched in its place.
    e.raw
        .run(
            e.raw
                .asg
                .terminate_instance_in_auto_scaling_group()
                .instance_id(&old)
                .should_decrement_desired_capacity(false)
                .send(),
        )
        .expect("TerminateInstanceInAutoScalingGroup");
    let g = e.group();
    assert_eq!(g.desired, 1);
    let new = g.instances.keys().next().expect("replacement").clone();
    assert_ne!(new, old);

    let rep = e.poll();
    assert!(
        rep.actions.iter().any(|a| a.starts_with(&format!(
            "adopted {new} of Auto Scaling group {GROUP} as node "
        )) && a.ends_with("(launched by the group itself)")),
        "{rep:?}"
    );
    let new_node = e
        .instance(&new)
        .0
        .get("nectr:node")
        .expect("adopted")
        .clone();
    assert_ne!(new_node, old_node);
    assert!(e.nodes().contains(&new_node));
    assert!(e.secret_tags(&new_node).is_some(), "its secret is stored");
    // Not fought: nothing terminated, the desired capacity unchanged.
    assert_eq!(e.group().desired, 1);
    assert_eq!(e.instance(&new).1, "running");

    // The replaced instance's node has no instance any more: deleted as an orphan (it was
    // busy when its instance went, so the build is lost either way; nothing else touched).
    e.set_busy(&old_node, false);
    e.jenkins.lock().queue.clear();
    e.jenkins
        .lock()
        .nodes
        .get_mut(&old_node)
        .expect("node")
        .connected = false;
    let mut gone = false;
    for _ in 0..4 {
        e.poll();
        if !e.nodes().contains(&old_node) {
            gone = true;
            break;
        }
    }
    assert!(
        gone,
        "the replaced instance's node was kept: {:?}",
        e.nodes()
    );
    assert_eq!(e.group().desired, 1);
    assert_eq!(e.instance(&new).1, "running");
}

/// Issue 12's "done when": one fleet.toml with an EC2 pool and an Auto Scaling group pool,
/// against moto and the fake Jenkins: each pool launches its own way (RunInstances for
/// `linux`, the group's desired capacity for `grouped`), and the status page shows both pools
/// with their backend and their instances.
#[test]
fn an_ec2_pool_and_an_asg_pool_side_by_side_with_the_status_page_showing_both() {
    let jenkins = FakeJenkins::start();
    let moto = Moto::start();
    let raw = RawAws::new(&moto.url);
    create_group(&raw);
    let dir = support::temp_dir("asg-mixed");
    let grouped = format!(
        "\n[[pool]]\nname = \"grouped\"\nlabels = [\"grouped\"]\nexecutors = 4\n\
         instance_types = [\"c5.xlarge\"]\nbackend = \"asg\"\ngroup = \"{GROUP}\"\n\
         max_instances = 3\nidle_timeout = \"0s\"\nboot_deadline = \"5m\"\n"
    );
    let text = support::config_text(
        "asg-mixed",
        &jenkins.url,
        &moto.url,
        &grouped,
        "orphan_grace = \"0s\"",
    );
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
    let addr = nectr_fleet::server::serve("127.0.0.1:0".parse().expect("addr"), rec.shared.clone())
        .expect("serve");

    // One instance's worth of work for each pool.
    {
        let mut s = jenkins.lock();
        s.queue = ["linux", "grouped"]
            .iter()
            .enumerate()
            .map(|(i, label)| {
                serde_json::json!({"id": 2000 + i, "buildable": true, "inQueueSince": 0,
                    "buildableStartMilliseconds": nectr_fleet::util::now_ms(),
                    "why": format!("Waiting for next available executor on \u{2018}{label}\u{2019}"),
                    "task": {"name": format!("job-{label}")}})
            })
            .collect();
    }
    let rep = rec.poll_once(true);
    assert!(rep.errors.is_empty(), "{:?}", rep.errors);
    assert!(
        rep.actions
            .iter()
            .any(|a| a.contains(&format!("raised Auto Scaling group {GROUP}"))),
        "the grouped pool goes through its group: {rep:?}"
    );
    assert!(
        rep.actions.iter().any(|a| a.starts_with("launched ")),
        "the linux pool launches directly: {rep:?}"
    );
    // The group's instance is adopted in the next poll; both pools then have one instance.
    let rep = rec.poll_once(true);
    assert!(rep.errors.is_empty(), "{:?}", rep.errors);
    let status = rec.shared.status.lock().expect("status").clone();
    let pool_of: Vec<(String, String)> = status["instances"]
        .as_array()
        .expect("instances")
        .iter()
        .map(|i| {
            (
                i["pool"].as_str().unwrap_or("").to_string(),
                i["id"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    for pool in ["linux", "grouped"] {
        assert_eq!(
            pool_of.iter().filter(|(p, _)| p == pool).count(),
            1,
            "one {pool} instance: {pool_of:?}"
        );
    }
    let group_ids: Vec<String> = raw
        .run(
            raw.asg
                .describe_auto_scaling_groups()
                .auto_scaling_group_names(GROUP)
                .send(),
        )
        .expect("DescribeAutoScalingGroups")
        .auto_scaling_groups()[0]
        .instances()
        .iter()
        .filter_map(|i| i.instance_id().map(str::to_string))
        .collect();
    assert_eq!(group_ids.len(), 1, "{group_ids:?}");
    assert!(
        pool_of.contains(&("grouped".to_string(), group_ids[0].clone())),
        "the grouped instance is the group's: {pool_of:?} vs {group_ids:?}"
    );

    let page = ureq::get(&format!("http://{addr}/"))
        .call()
        .expect("GET /")
        .into_string()
        .expect("page");
    for needle in [
        "<h2>Pool linux</h2>",
        "<h2>Pool grouped</h2>",
        &format!("Auto Scaling group <b>{GROUP}</b>"),
        "EC2 instances launched directly",
        &group_ids[0],
    ] {
        assert!(page.contains(needle), "no {needle:?} in the page:\n{page}");
    }
    assert_eq!(page.matches("<tr class=\"instance\">").count(), 2, "{page}");
}
