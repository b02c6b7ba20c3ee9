//! nectr-fleet against the real Jenkins 2.460 of `../shared/jenkins` (issue 12 item 10): moto
//! as EC2 and SSM, and the instance emulator (`scripts/instance-emulator`) turning each
//! launched instance into a real `nectr-agent` started by the real boot script. The fleet's
//! REST calls as they are, checked on what Jenkins itself says:
//!
//! - the queue's `why` texts for a label expression that no node matches yet (attributed to
//!   the pool, launched for) and one that no pool matches (not launchable, never launched);
//! - node creation (inbound, labels, the fleet's description) and the agent secret (the
//!   SSM parameter holds exactly the secret Jenkins serves for the node, and the agent
//!   started from it connects);
//! - a real build assigned to the node while it is being fenced: Jenkins starts the build
//!   just before the fence lands; the fleet sees it busy and fenced, lifts the fence, never
//!   deletes the node, and the build finishes;
//! - the fence of an idle node: Jenkins shows nectr's offline cause, then the node is
//!   deleted, its secret deleted, its instance terminated and its agent stopped.
//!
//! A missing Jenkins, JDK or moto fails the test with instructions. `nectr-agent` must sit
//! beside `nectr-fleet` (`cargo test --workspace` builds it; alone: `cargo build -p
//! nectr-agent`).

mod support;

use nectr_fleet::cloud::credentials::Credentials;
use nectr_fleet::cloud::ec2::Ec2Provider;
use nectr_fleet::cloud::{CloudProvider, InstanceState};
use nectr_fleet::jenkins::client::NodeSpec;
use nectr_fleet::jenkins::{JenkinsApi, JenkinsClient, JenkinsError};
use nectr_fleet::reconcile::Reconciler;
use nectr_fleet::secret::Secret;
use nectr_fleet::server::Shared;
use nectr_fleet::util::SystemClock;
use serde_json::Value;
use std::io::BufRead;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::aws::RawAws;
use support::moto::Moto;

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

/// Stops a process group: SIGTERM, then SIGKILL after `grace`.
fn stop_group(child: &mut Child, grace: Duration) {
    let pgid = format!("-{}", child.id());
    let _ = Command::new("kill").args(["-TERM", "--", &pgid]).status();
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = Command::new("kill")
        .args(["-KILL", "--", &pgid])
        .stderr(Stdio::null())
        .status();
    let _ = child.wait();
}

/// The real Jenkins, in its own process group, stopped on drop.
struct Jenkins {
    url: String,
    token: String,
    child: Child,
}

impl Drop for Jenkins {
    fn drop(&mut self) {
        stop_group(&mut self.child, Duration::from_secs(30));
    }
}

impl Jenkins {
    fn start(dir: &Path) -> Jenkins {
        let jdir = std::env::var_os("NECTR_JENKINS_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| repo_root().join("../shared/jenkins"));
        assert!(
            jdir.join("start").is_file(),
            "the real Jenkins is required: {} has no start script (see ../shared/jenkins/README.md, \
             or set NECTR_JENKINS_DIR)",
            jdir.display()
        );
        let home = dir.join("jenkins-home");
        let port = free_port();
        let log = std::fs::File::create(dir.join("jenkins.log")).unwrap();
        let child = Command::new(jdir.join("start"))
            .arg("--home")
            .arg(&home)
            .args(["--port", &port.to_string()])
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .process_group(0)
            .spawn()
            .expect("start Jenkins");
        let mut j = Jenkins {
            url: format!("http://127.0.0.1:{port}/"),
            token: String::new(),
            child,
        };
        let deadline = Instant::now() + Duration::from_secs(240);
        loop {
            if let Ok(t) = std::fs::read_to_string(home.join("nectr-admin.token")) {
                j.token = t.trim().to_string();
                if j.get("api/json").is_ok() {
                    return j;
                }
            }
            if let Ok(Some(st)) = j.child.try_wait() {
                panic!(
                    "Jenkins exited ({st}); its log: {}",
                    dir.join("jenkins.log").display()
                );
            }
            assert!(
                Instant::now() < deadline,
                "Jenkins did not answer within 240 s"
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    fn auth(&self) -> String {
        use base64::Engine;
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("admin:{}", self.token))
        )
    }

    fn get(&self, path: &str) -> Result<String, String> {
        ureq::get(&format!("{}{path}", self.url))
            .set("Authorization", &self.auth())
            .set("Accept-Language", "en")
            .timeout(Duration::from_secs(30))
            .call()
            .map_err(|e| format!("GET {path}: {e}"))?
            .into_string()
            .map_err(|e| e.to_string())
    }

    fn json(&self, path: &str) -> Value {
        serde_json::from_str(&self.get(path).unwrap()).unwrap()
    }

    fn post_xml(&self, path: &str, xml: &str) {
        ureq::post(&format!("{}{path}", self.url))
            .set("Authorization", &self.auth())
            .set("Content-Type", "application/xml")
            .send_string(xml)
            .unwrap_or_else(|e| panic!("POST {path}: {e}"));
    }

    fn groovy(&self, script: &str) -> String {
        ureq::post(&format!("{}scriptText", self.url))
            .set("Authorization", &self.auth())
            .send_form(&[("script", script)])
            .unwrap_or_else(|e| panic!("scriptText: {e}"))
            .into_string()
            .unwrap()
    }

    fn freestyle(&self, name: &str, label: &str, shell: &str) {
        self.post_xml(
            &format!("createItem?name={name}"),
            &format!(
                "<project><assignedNode>{label}</assignedNode><canRoam>false</canRoam>\
                 <builders><hudson.tasks.Shell><command>{shell}</command></hudson.tasks.Shell>\
                 </builders></project>"
            ),
        );
    }

    fn build(&self, job: &str) {
        ureq::post(&format!("{}job/{job}/build", self.url))
            .set("Authorization", &self.auth())
            .call()
            .unwrap_or_else(|e| panic!("build {job}: {e}"));
    }

    /// (result, builtOn) of build 1 of `job` once it finished.
    fn result(&self, job: &str) -> Option<(String, String)> {
        let b: Value = serde_json::from_str(
            &self
                .get(&format!(
                    "job/{job}/1/api/json?tree=result,building,builtOn"
                ))
                .ok()?,
        )
        .ok()?;
        let r = b["result"].as_str()?;
        Some((
            r.to_string(),
            b["builtOn"].as_str().unwrap_or("").to_string(),
        ))
    }

    fn computer(&self, node: &str) -> Option<Value> {
        self.get(&format!(
            "computer/{node}/api/json?tree=offline,temporarilyOffline,idle,offlineCauseReason,\
             description,assignedLabels[name]"
        ))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
    }
}

/// The instance emulator, its events collected; stopped on drop.
struct Emulator {
    child: Child,
    events: Arc<Mutex<Vec<Value>>>,
}

impl Drop for Emulator {
    fn drop(&mut self) {
        stop_group(&mut self.child, Duration::from_secs(30));
    }
}

impl Emulator {
    fn start(moto: &str, fleet: &str, dir: &Path) -> Emulator {
        let moto_server = support::moto::moto_server_path();
        let python = moto_server.with_file_name("python");
        let agent = Path::new(env!("CARGO_BIN_EXE_nectr-fleet")).with_file_name("nectr-agent");
        assert!(
            agent.is_file(),
            "{} is missing: `cargo build -p nectr-agent` (cargo test --workspace builds it)",
            agent.display()
        );
        let mut child = Command::new(python)
            .arg(repo_root().join("scripts/instance-emulator"))
            .args([
                "--endpoint",
                moto.trim_end_matches('/'),
                "--fleet-id",
                fleet,
            ])
            .arg("--agent")
            .arg(&agent)
            .arg("--dir")
            .arg(dir.join("instances"))
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(dir.join("emulator.log")).unwrap())
            .process_group(0)
            .spawn()
            .expect("start the instance emulator");
        let events = Arc::new(Mutex::new(Vec::new()));
        let (out, ev) = (child.stdout.take().unwrap(), events.clone());
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
                if let Ok(v) = serde_json::from_str::<Value>(&line) {
                    ev.lock().unwrap().push(v);
                }
            }
        });
        Emulator { child, events }
    }

    fn has(&self, event: &str, node: &str) -> bool {
        self.events
            .lock()
            .unwrap()
            .iter()
            .any(|e| e["event"] == event && e["node"] == node)
    }
}

/// The real client, with a hook that lets Jenkins start a build on the node just before the
/// first fence lands (the race of an assignment between the poll's observation and the fence).
struct RacingJenkins {
    inner: JenkinsClient,
    armed: AtomicBool,
    on_drain: Box<dyn Fn(&str) + Send + Sync>,
    drains: Mutex<Vec<String>>,
}

impl JenkinsApi for RacingJenkins {
    fn queue(&self) -> Result<Vec<nectr_fleet::jenkins::QueueItem>, JenkinsError> {
        self.inner.queue()
    }
    fn computers(&self) -> Result<Vec<nectr_fleet::jenkins::Computer>, JenkinsError> {
        self.inner.computers()
    }
    fn computer(&self, name: &str) -> Result<Option<nectr_fleet::jenkins::Computer>, JenkinsError> {
        self.inner.computer(name)
    }
    fn create_node(&self, spec: &NodeSpec) -> Result<(), JenkinsError> {
        self.inner.create_node(spec)
    }
    fn agent_secret(&self, name: &str) -> Result<Secret, JenkinsError> {
        self.inner.agent_secret(name)
    }
    fn drain(&self, name: &str, message: &str) -> Result<(), JenkinsError> {
        if self.armed.swap(false, Ordering::SeqCst) {
            (self.on_drain)(name);
        }
        self.drains.lock().unwrap().push(name.to_string());
        self.inner.drain(name, message)
    }
    fn undrain(&self, name: &str) -> Result<(), JenkinsError> {
        self.inner.undrain(name)
    }
    fn delete_node(&self, name: &str) -> Result<(), JenkinsError> {
        self.inner.delete_node(name)
    }
    fn set_description(&self, name: &str, description: &str) -> Result<(), JenkinsError> {
        self.inner.set_description(name, description)
    }
}

fn wait_until<T>(what: &str, secs: u64, mut poll: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = poll() {
            return v;
        }
        assert!(Instant::now() < deadline, "{what}: not within {secs} s");
        std::thread::sleep(Duration::from_millis(500));
    }
}

#[test]
fn the_fleet_on_the_real_jenkins_with_real_agents() {
    let dir = support::temp_dir("real-jenkins");
    let _cleanup = support::RemoveOnSuccess(dir.clone());
    let moto = Moto::start();
    let jenkins = Arc::new(Jenkins::start(&dir));
    let fleet = "realj";
    let emulator = Emulator::start(&moto.url, fleet, &dir);

    // A placeholder agent keeps the labels in the `why` texts (fleet/README.md).
    jenkins.groovy(
        "import hudson.slaves.*\n\
         def n = new DumbSlave('placeholder', '/tmp/placeholder', new JNLPLauncher(true))\n\
         n.labelString = 'placeholder'\n\
         jenkins.model.Jenkins.get().addNode(n)\n",
    );
    jenkins.freestyle(
        "matching",
        "linux&amp;&amp;x64",
        "echo on $NODE_NAME; sleep 2",
    );
    jenkins.freestyle("unmatched", "windows", "echo never");

    let text = support::config_text(fleet, &jenkins.url, &moto.url, "", "")
        .replace("idle_timeout = \"0s\"", "idle_timeout = \"3s\"")
        .replace("max_instances = 40", "max_instances = 1")
        .replace("timeout = \"2s\"", "timeout = \"10s\"")
        .replace("user = \"fleet\"", "user = \"admin\"");
    let (path, cfg) = support::write_config(&dir, &text);
    std::fs::write(dir.join("token"), &jenkins.token).unwrap();
    let creds = Credentials {
        access_key_id: "testing".into(),
        secret_access_key: Secret::new("testing"),
        session_token: None,
    };
    let cloud = Arc::new(Ec2Provider::new(&cfg.aws, creds).expect("provider"));
    let client = JenkinsClient::with_ca(
        &jenkins.url,
        "admin",
        Secret::new(jenkins.token.clone()),
        10_000,
        None,
    )
    .expect("client");
    let j2 = jenkins.clone();
    let racing = Arc::new(RacingJenkins {
        inner: client,
        armed: AtomicBool::new(false),
        drains: Mutex::new(Vec::new()),
        on_drain: Box::new(move |node| {
            // The controller assigns a build to the node right as the fence is sent: the
            // build is queued, Jenkins' queue maintenance hands it to the idle executor, and
            // only once the executor is busy does the fence go out.
            j2.build("pinned");
            j2.groovy("jenkins.model.Jenkins.get().queue.maintain()");
            wait_until("the pinned build on the node", 30, || {
                let c = j2.computer(node)?;
                (c["idle"] == false).then_some(())
            });
        }),
    });
    let mut r = support::first_start(Reconciler::with_parts(
        cfg,
        Some(path),
        racing.clone(),
        cloud.clone(),
        Arc::new(SystemClock),
        Arc::new(Shared::default()),
    ));

    // --- the why texts ---------------------------------------------------------------------
    jenkins.build("unmatched");
    jenkins.build("matching");
    let whys: Vec<(String, String)> = wait_until("both items waiting with a why", 60, || {
        let q = jenkins.json("queue/api/json?tree=items[why,task[name]]");
        let v: Vec<(String, String)> = q["items"]
            .as_array()?
            .iter()
            .filter_map(|i| {
                Some((
                    i["task"]["name"].as_str()?.to_string(),
                    i["why"].as_str()?.to_string(),
                ))
            })
            .collect();
        (v.len() == 2).then_some(v)
    });
    let why = |job: &str| whys.iter().find(|(n, _)| n == job).unwrap().1.clone();
    assert_eq!(
        why("matching"),
        "There are no nodes with the label \u{2018}linux&&x64\u{2019}",
        "{whys:?}"
    );
    assert_eq!(
        why("unmatched"),
        "There are no nodes with the label \u{2018}windows\u{2019}",
        "{whys:?}"
    );
    let rep = r.poll_once(true);
    assert!(rep.errors.is_empty(), "{:?}", rep.errors);
    let plan = rep.plan.clone().expect("plan");
    assert_eq!(plan.pools["linux"].demand_executors, 1, "{plan:?}");
    assert_eq!(plan.launches.len(), 1, "{plan:?}");
    assert_eq!(
        plan.not_launchable.values().sum::<u32>(),
        1,
        "the windows item is not launchable: {plan:?}"
    );

    // --- node creation and the agent secret -------------------------------------------------
    let live = cloud.describe_owned(fleet).expect("describe");
    assert_eq!(live.len(), 1, "{live:?}");
    let node = live[0]
        .tag("nectr:node")
        .expect("the instance names its node")
        .to_string();
    let c = jenkins.computer(&node).expect("the node exists in Jenkins");
    let desc = c["description"].as_str().unwrap_or_default();
    assert!(
        desc.starts_with(&format!("nectr-fleet:v1 fleet={fleet} pool=linux")),
        "{desc}"
    );
    let labels: Vec<&str> = c["assignedLabels"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|l| l["name"].as_str())
        .collect();
    assert!(
        labels.contains(&"linux") && labels.contains(&"x64"),
        "{labels:?}"
    );
    let jnlp = jenkins
        .get(&format!("computer/{node}/jenkins-agent.jnlp"))
        .expect("jnlp");
    let secret = jnlp
        .split("<argument>")
        .nth(1)
        .and_then(|s| s.split("</argument>").next())
        .expect("the secret in the jnlp file")
        .to_string();
    let raw = RawAws::new(&moto.url);
    let stored = raw
        .run(
            raw.ssm
                .get_parameter()
                .name(format!("/nectr/agents/{node}/secret"))
                .with_decryption(true)
                .send(),
        )
        .expect("the stored secret");
    assert_eq!(
        stored.parameter().and_then(|p| p.value()),
        Some(secret.as_str()),
        "SSM holds the node's secret"
    );

    // --- boot, connect, the matching build runs -------------------------------------------
    let (result, on) = wait_until("the matching build", 180, || {
        r.poll_once(true);
        jenkins.result("matching")
    });
    assert_eq!((result.as_str(), on.as_str()), ("SUCCESS", node.as_str()));
    assert!(emulator.has("booted", &node) && emulator.has("agent_started", &node));
    assert!(
        jenkins.result("unmatched").is_none(),
        "the windows item still waits"
    );
    assert_eq!(
        cloud.describe_owned(fleet).unwrap().len(),
        1,
        "one instance"
    );

    // --- a build assigned as the fence lands: lifted, kept, finished -------------------------
    jenkins.freestyle(
        "pinned",
        &node,
        "echo pinned on $NODE_NAME; sleep 8; echo done",
    );
    racing.armed.store(true, Ordering::SeqCst);
    let mut lifted = false;
    let mut fenced_while_busy = None;
    wait_until("the pinned build", 120, || {
        let rep = r.poll_once(true);
        assert!(
            rep.plan.as_ref().is_none_or(|p| p.retires.is_empty()),
            "a retire while the pinned build runs: {rep:?}"
        );
        if rep.plan.as_ref().is_some_and(|p| !p.lifts.is_empty()) {
            lifted = true;
        }
        if fenced_while_busy.is_none() && !racing.drains.lock().unwrap().is_empty() {
            fenced_while_busy = jenkins.computer(&node);
        }
        jenkins.result("pinned")
    });
    let fenced = fenced_while_busy.expect("the fence was sent");
    assert_eq!(fenced["temporarilyOffline"], true, "{fenced}");
    assert!(
        fenced["offlineCauseReason"]
            .as_str()
            .unwrap_or_default()
            .starts_with(&format!("nectr-fleet drain fleet={fleet} at=")),
        "{fenced}"
    );
    assert!(lifted, "the fence on the busy node was lifted");
    assert_eq!(
        jenkins.result("pinned").unwrap(),
        ("SUCCESS".to_string(), node.clone())
    );
    let c = jenkins.computer(&node).expect("the node was kept");
    assert_eq!(c["temporarilyOffline"], false, "{c}");
    let live = cloud.describe_owned(fleet).unwrap();
    assert!(
        live.iter().all(|i| !matches!(
            i.state,
            InstanceState::Terminated | InstanceState::ShuttingDown
        )),
        "{live:?}"
    );

    // --- per-job cost: the real computer read names the build on the executor ---------------
    r.poll_once(true);
    let pinned = r
        .costs
        .job("pinned")
        .unwrap_or_else(|| {
            panic!(
                "the pinned build was not attributed: {}",
                r.shared.status()["job_costs"]
            )
        })
        .clone();
    assert_eq!(pinned.total.builds, 1, "{pinned:?}");
    assert!(
        pinned.total.instance_seconds > 0.0 && pinned.pools.contains_key("linux"),
        "{pinned:?}"
    );

    // --- idle: fenced, deleted, secret deleted, terminated, agent stopped ----------------------
    let drains_before = racing.drains.lock().unwrap().len();
    let mut seen_fence = None;
    wait_until("the idle node retired", 120, || {
        r.poll_once(true);
        if seen_fence.is_none() && racing.drains.lock().unwrap().len() > drains_before {
            seen_fence = jenkins.computer(&node);
        }
        jenkins.computer(&node).is_none().then_some(())
    });
    if let Some(f) = seen_fence {
        // Only when the poll after the fence did not already delete it (settle 0 s).
        assert!(
            f["offlineCauseReason"]
                .as_str()
                .unwrap_or_default()
                .starts_with("nectr-fleet drain"),
            "{f}"
        );
    }
    wait_until("the instance terminated", 60, || {
        r.poll_once(true);
        cloud
            .describe_owned(fleet)
            .ok()?
            .iter()
            .all(|i| {
                matches!(
                    i.state,
                    InstanceState::Terminated | InstanceState::ShuttingDown
                )
            })
            .then_some(())
    });
    assert!(
        raw.run(
            raw.ssm
                .get_parameter()
                .name(format!("/nectr/agents/{node}/secret"))
                .send()
        )
        .is_err(),
        "the secret is deleted with the node"
    );
    wait_until("the emulator stops the agent", 60, || {
        emulator.has("stopped", &node).then_some(())
    });
    let m = r.shared.metrics.render();
    assert!(m.contains("nectr_fleet_busy_terminations_total 0"), "{m}");
}
