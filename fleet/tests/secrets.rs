//! The agent secret never travels in user-data (issue 12 item 4): the fleet stores it as an
//! SSM SecureString `/nectr/agents/<node>/secret` before the launch, tags it with the node,
//! the fleet and then the instance, and deletes it with the node; a secret left behind (a
//! process killed between the two deletes) is swept. Asserted on what moto received,
//! through an independent SDK client.

mod support;

use nectr_fleet::cloud::credentials::Credentials;
use nectr_fleet::cloud::ec2::Ec2Provider;
use nectr_fleet::cloud::{secret_parameter, CloudProvider};
use nectr_fleet::config::Config;
use nectr_fleet::reconcile::Reconciler;
use nectr_fleet::secret::Secret;
use nectr_fleet::server::Shared;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use support::aws::RawAws;
use support::fake_jenkins::{secret_of, FakeJenkins};
use support::moto::Moto;

struct Env {
    jenkins: FakeJenkins,
    moto: Moto,
    cloud: Arc<Ec2Provider>,
    cfg: Config,
    path: PathBuf,
}

fn env(name: &str, top_extra: &str) -> Env {
    let jenkins = FakeJenkins::start();
    let moto = Moto::start();
    let dir = support::temp_dir(name);
    let text = support::config_text(name, &jenkins.url, &moto.url, "", top_extra);
    let (path, cfg) = support::write_config(&dir, &text);
    let creds = Credentials {
        access_key_id: "testing".into(),
        secret_access_key: Secret::new("testing"),
        session_token: None,
    };
    let cloud = Arc::new(Ec2Provider::new(&cfg.aws, creds).expect("provider"));
    Env {
        jenkins,
        moto,
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
}

/// (value, type) of a parameter, decrypted; `None` if it does not exist.
fn parameter(raw: &RawAws, name: &str) -> Option<(String, String)> {
    let out = raw
        .run(
            raw.ssm
                .get_parameter()
                .name(name)
                .with_decryption(true)
                .send(),
        )
        .ok()?;
    let p = out.parameter()?;
    Some((
        p.value().unwrap_or("").to_string(),
        p.r#type()
            .map(|t| t.as_str().to_string())
            .unwrap_or_default(),
    ))
}

fn parameter_tags(raw: &RawAws, name: &str) -> BTreeMap<String, String> {
    let out = raw
        .run(
            raw.ssm
                .list_tags_for_resource()
                .resource_type(aws_sdk_ssm::types::ResourceTypeForTagging::Parameter)
                .resource_id(name)
                .send(),
        )
        .expect("ListTagsForResource");
    out.tag_list()
        .iter()
        .map(|t| (t.key().to_string(), t.value().to_string()))
        .collect()
}

#[test]
fn the_secret_is_stored_in_ssm_never_in_user_data_and_deleted_with_the_node() {
    let e = env("secrets", "");
    let raw = RawAws::new(&e.moto.url);
    let mut r = e.reconciler();
    e.jenkins.set_queue_waiting(1, "linux");
    let rep = r.poll_once(true);
    assert!(rep.errors.is_empty(), "{:?}", rep.errors);
    let live = e.cloud.describe_owned("secrets").expect("describe");
    assert_eq!(live.len(), 1, "{live:?}");
    let inst = &live[0];
    let node = inst.node().expect("nectr:node tag").to_string();
    let secret = secret_of(&node);

    // User-data: exactly the non-secret settings, as moto holds them.
    let user_data = raw.user_data(&inst.id);
    assert_eq!(
        user_data,
        format!(
            "NECTR_JENKINS_URL={}\nNECTR_NODE_NAME={node}\nNECTR_POOL=linux\nNECTR_WEBSOCKET=true\n",
            e.jenkins.url
        )
    );
    assert!(!user_data.contains(&secret), "the secret is in user-data");
    // The instance's tags carry what the boot script and the fleet need.
    assert_eq!(inst.tag("nectr:node"), Some(node.as_str()));
    assert_eq!(inst.tag("nectr:pool"), Some("linux"));
    assert_eq!(inst.tag("nectr:jenkins-url"), Some(e.jenkins.url.as_str()));
    assert_eq!(inst.tag("nectr:fleet-id"), Some("secrets"));

    // The secret: a SecureString at the agreed name, tagged with node, fleet and instance.
    let name = secret_parameter(&node);
    assert_eq!(name, format!("/nectr/agents/{node}/secret"));
    assert_eq!(
        parameter(&raw, &name),
        Some((secret.clone(), "SecureString".to_string()))
    );
    let tags = parameter_tags(&raw, &name);
    assert_eq!(tags.get("nectr:node"), Some(&node), "{tags:?}");
    assert_eq!(tags.get("nectr:instance"), Some(&inst.id), "{tags:?}");
    assert_eq!(
        tags.get("nectr:fleet-id").map(String::as_str),
        Some("secrets")
    );
    // Nothing the fleet reports holds it.
    assert!(!format!("{rep:?}").contains(&secret));
    assert!(!r.shared.status().to_string().contains(&secret));

    // Retired (idle_timeout 0s, settle 0s): node deleted, then its secret.
    e.jenkins.lock().queue.clear();
    e.jenkins.connect_all(true);
    r.poll_once(true); // fence
    let rep = r.poll_once(true); // re-read, delete, terminate
    assert!(rep.errors.is_empty(), "{:?}", rep.errors);
    assert!(!e.jenkins.lock().nodes.contains_key(&node));
    assert_eq!(parameter(&raw, &name), None, "deleted with the node");
}

#[test]
fn a_secret_whose_node_is_gone_is_swept_once_no_launch_can_need_it() {
    // Short timeouts so that "no launch can still need it" (2 x jenkins.timeout +
    // 3 x aws.timeout + max(orphan_grace, 2 polls)) is 5 s.
    let e = env("sweep", "orphan_grace = \"1s\"");
    let text = std::fs::read_to_string(&e.path)
        .expect("read")
        .replace("poll_interval = \"1s\"", "poll_interval = \"500ms\"")
        .replace("timeout = \"2s\"", "timeout = \"500ms\"")
        .replace("timeout = \"10s\"", "timeout = \"1s\"");
    std::fs::write(&e.path, &text).expect("write");
    let cfg = nectr_fleet::config::load_str(&text, e.path.parent().expect("dir")).expect("config");
    let raw = RawAws::new(&e.moto.url);
    let cloud = Arc::new(Ec2Provider::new(&cfg.aws, test_keys()).expect("provider"));
    // A process killed between deleting a node and its secret left this behind; another
    // fleet's secret and a live node's secret must stay. (Written with the 10 s client: moto
    // loads its SSM data on the first call.)
    let gone = "nectr-linux-00000000deadbeef";
    e.cloud
        .put_agent_secret("sweep", gone, &Secret::new("s-gone"))
        .expect("put");
    e.cloud
        .put_agent_secret(
            "other-fleet",
            "nectr-linux-0000000000000002",
            &Secret::new("s-other"),
        )
        .expect("put");
    let mut r = support::first_start(
        Reconciler::new(
            cfg,
            Some(e.path.clone()),
            cloud.clone(),
            Arc::new(Shared::default()),
        )
        .expect("reconciler"),
    );
    e.jenkins.set_queue_waiting(1, "linux");
    let rep = r.poll_once(true);
    assert!(rep.errors.is_empty(), "{:?}", rep.errors);
    let live_node = e.jenkins.lock().nodes.keys().next().cloned().expect("node");
    assert!(
        parameter(&raw, &secret_parameter(gone)).is_some(),
        "too recent to be swept: a launch could still be under way"
    );
    std::thread::sleep(std::time::Duration::from_millis(5_500));
    e.jenkins.lock().queue.clear();
    let rep = r.poll_once(true);
    assert!(
        rep.actions
            .iter()
            .any(|a| a.contains(&format!("deleted the stored secret of node {gone}"))),
        "{rep:?}"
    );
    assert_eq!(parameter(&raw, &secret_parameter(gone)), None);
    assert!(parameter(&raw, &secret_parameter("nectr-linux-0000000000000002")).is_some());
    assert!(parameter(&raw, &secret_parameter(&live_node)).is_some());
    assert!(r
        .shared
        .metrics
        .render()
        .contains("nectr_fleet_orphans_cleaned_total{kind=\"secret\"} 1"));
}

fn test_keys() -> Credentials {
    Credentials {
        access_key_id: "testing".into(),
        secret_access_key: Secret::new("testing"),
        session_token: None,
    }
}

/// `ami = { ssm = "..." }` (issue 12 item 6): the image id recorded in an SSM parameter is
/// what `RunInstances` gets; a missing parameter and one holding no image id are errors that
/// say what to do, and nothing is launched.
#[test]
fn a_pool_image_is_read_from_an_ssm_parameter() {
    let jenkins = FakeJenkins::start();
    let moto = Moto::start();
    let dir = support::temp_dir("ssm-ami");
    let text = support::config_text("ssm-ami", &jenkins.url, &moto.url, "", "").replace(
        "ami = \"ami-12345678\"",
        "ami = { ssm = \"/nectr/ami/agent\" }",
    );
    let (path, cfg) = support::write_config(&dir, &text);
    let cloud = Arc::new(Ec2Provider::new(&cfg.aws, test_keys()).expect("provider"));
    let raw = RawAws::new(&moto.url);

    // Missing: the error names the parameter and the command that records it.
    let err = cloud.image_parameter("/nectr/ami/agent").unwrap_err();
    assert_eq!(err.code, "ParameterNotFound", "{err}");
    assert!(
        err.message.contains("/nectr/ami/agent") && err.message.contains("put-parameter"),
        "{err}"
    );
    let mut r = support::first_start(
        Reconciler::new(
            cfg.clone(),
            Some(path.clone()),
            cloud.clone(),
            Arc::new(Shared::default()),
        )
        .expect("reconciler"),
    );
    jenkins.set_queue_waiting(1, "linux");
    let rep = r.poll_once(true);
    assert!(
        rep.errors.iter().any(|e| e.contains("/nectr/ami/agent")),
        "{rep:?}"
    );
    assert!(
        raw.fleet_images("ssm-ami").is_empty(),
        "launched without an image"
    );

    // Not an image id: said so, with the value cut short.
    raw.run(
        raw.ssm
            .put_parameter()
            .name("/nectr/ami/broken")
            .r#type(aws_sdk_ssm::types::ParameterType::String)
            .value("latest build of the agent image")
            .send(),
    )
    .expect("PutParameter");
    let err = cloud.image_parameter("/nectr/ami/broken").unwrap_err();
    assert_eq!(err.code, "NotAnImage", "{err}");
    assert!(err.message.contains("not an image id (ami-...)"), "{err}");

    // Recorded as the image pipeline does (ami/Jenkinsfile): used for the launch.
    let scratch = raw.scratch_instance("ami-12345678");
    let image = raw.tagged_image(&scratch, "agent-ssm", "nectr:image", "ssm");
    raw.run(
        raw.ssm
            .put_parameter()
            .name("/nectr/ami/agent")
            .r#type(aws_sdk_ssm::types::ParameterType::String)
            .data_type("aws:ec2:image")
            .value(&image)
            .send(),
    )
    .expect("PutParameter");
    assert_eq!(
        cloud.image_parameter("/nectr/ami/agent").expect("image"),
        image
    );
    let rep = r.poll_once(true);
    assert!(rep.errors.is_empty(), "{:?}", rep.errors);
    let launched = raw.fleet_images("ssm-ami");
    assert_eq!(launched.len(), 1, "{launched:?}");
    assert_eq!(launched[0].1, image);
}
