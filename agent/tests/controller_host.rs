//! The controller host (`jenkins-config/`): its nginx templates rendered as the official
//! image renders them, checked by Debian's `nginx -t`, then run on loopback in front of the
//! controller simulator: a real nectr-agent goes online through it over wss:// and over
//! JNLP4-connect through the passed-through TCP port, http redirects to https. Also the IAM
//! policies, the compose and configuration-as-code files, and jenkins_home backup and
//! restore against moto's S3 with the AWS CLI.

mod support;

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use support::machines::*;
use support::*;

fn out(o: &Output) -> String {
    format!(
        "status {:?}\n{}{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Renders `${NECTR_*}` as the official image's envsubst does with NGINX_ENVSUBST_FILTER
/// ^NECTR_; every placeholder must have a value.
fn render(template: &str, vars: &BTreeMap<&str, String>) -> String {
    let mut s = template.to_string();
    for (k, v) in vars {
        s = s.replace(&format!("${{{k}}}"), v);
    }
    assert!(
        !s.contains("${NECTR_"),
        "a placeholder without a value: {}",
        s.lines()
            .find(|l| l.contains("${NECTR_"))
            .unwrap_or_default()
    );
    s
}

/// A test CA and a server certificate for 127.0.0.2, made with openssl.
fn certificates(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let run = |args: &[&str]| {
        let o = Command::new("openssl")
            .current_dir(dir)
            .args(args)
            .output()
            .expect("openssl (scripts/test installs it)");
        assert!(o.status.success(), "openssl {args:?}: {}", out(&o));
    };
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=nectr test CA",
    ]);
    run(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "privkey.pem",
        "-out",
        "server.csr",
        "-subj",
        "/CN=127.0.0.2",
    ]);
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=IP:127.0.0.2\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "fullchain.pem",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
    ]);
    (
        dir.join("ca.pem"),
        dir.join("fullchain.pem"),
        dir.join("privkey.pem"),
    )
}

/// A free port on 127.0.0.2.
fn free_port_2() -> u16 {
    TcpListener::bind("127.0.0.2:0")
        .expect("bind 127.0.0.2 (the loopback range)")
        .local_addr()
        .unwrap()
        .port()
}

/// Debian's nginx running jenkins-config's templates, killed on drop.
struct Nginx {
    dir: PathBuf,
    conf: PathBuf,
    child: Option<Child>,
    https_port: u16,
    http_port: u16,
}

impl Drop for Nginx {
    /// SIGTERM to the master, which stops its workers (a SIGKILL would leave them running,
    /// orphaned, on their ports); SIGKILL only if it does not exit.
    fn drop(&mut self) {
        if let Some(c) = &mut self.child {
            unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
            let deadline = Instant::now() + Duration::from_secs(20);
            while c.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Nginx {
    /// Renders the templates for nginx on 127.0.0.2 in front of `jenkins_http` and
    /// `jenkins_agent` (HOST:PORT), the agent port listening on `agent_port`; writes a main
    /// configuration (the official image's part: modules, pid, logs, temp paths) that
    /// includes them.
    fn configure(jenkins_http: &str, jenkins_agent: &str, agent_port: u16) -> Nginx {
        let dir = scratch("nginx");
        let (_, cert, key) = certificates(&dir);
        let (http_port, https_port) = (free_port_2(), free_port_2());
        let vars: BTreeMap<&str, String> = [
            ("NECTR_SERVER_NAME", "127.0.0.2".to_string()),
            ("NECTR_HTTP_LISTEN", format!("127.0.0.2:{http_port}")),
            ("NECTR_HTTPS_LISTEN", format!("127.0.0.2:{https_port}")),
            ("NECTR_AGENT_LISTEN", format!("127.0.0.2:{agent_port}")),
            ("NECTR_JENKINS_HTTP", jenkins_http.to_string()),
            ("NECTR_JENKINS_AGENT", jenkins_agent.to_string()),
            ("NECTR_TLS_CERT", cert.display().to_string()),
            ("NECTR_TLS_KEY", key.display().to_string()),
        ]
        .into_iter()
        .collect();
        let cfg = repo_root().join("jenkins-config/nginx");
        let http = render(
            &std::fs::read_to_string(cfg.join("templates/jenkins.conf.template")).unwrap(),
            &vars,
        );
        let stream = render(
            &std::fs::read_to_string(cfg.join("stream-templates/agents.conf.template")).unwrap(),
            &vars,
        );
        std::fs::write(dir.join("jenkins.conf"), http).unwrap();
        std::fs::write(dir.join("agents.conf"), stream).unwrap();
        let d = dir.display();
        let conf = dir.join("nginx.conf");
        std::fs::write(
            &conf,
            format!(
                "load_module /usr/lib/nginx/modules/ngx_stream_module.so;\n\
                 user root;\nworker_processes 1;\npid {d}/nginx.pid;\n\
                 error_log {d}/error.log info;\n\
                 events {{ worker_connections 256; }}\n\
                 http {{\n  access_log {d}/access.log;\n\
                   client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n\
                   fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n\
                   scgi_temp_path {d}/scgi;\n  include {d}/jenkins.conf;\n}}\n\
                 stream {{\n  log_format relayed '$remote_addr $upstream_addr $bytes_sent $bytes_received';\n\
                   access_log {d}/stream.log relayed;\n  include {d}/agents.conf;\n}}\n"
            ),
        )
        .unwrap();
        Nginx {
            dir,
            conf,
            child: None,
            https_port,
            http_port,
        }
    }

    fn command(&self, extra: &[&str]) -> Command {
        let mut c = Command::new(debian_tool("nginx", "nginx libnginx-mod-stream"));
        c.arg("-e")
            .arg(self.dir.join("error.log"))
            .arg("-p")
            .arg(&self.dir)
            .arg("-c")
            .arg(&self.conf)
            .args(extra);
        c
    }

    fn test(&self) -> (bool, String) {
        let o = self.command(&["-t"]).output().expect("run nginx -t");
        (o.status.success(), out(&o))
    }

    fn start(&mut self) {
        let (ok, said) = self.test();
        assert!(ok, "nginx -t: {said}");
        let child = self
            .command(&["-g", "daemon off;"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start nginx");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.2", self.https_port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "nginx does not listen: {}",
                std::fs::read_to_string(self.dir.join("error.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.join(name)).unwrap_or_default()
    }

    /// Waits for `needle` in a log (nginx logs a request, or a relayed connection, when it
    /// ends).
    fn wait_log(&self, name: &str, needle: &str) {
        wait_for_text(&self.dir.join(name), needle, Duration::from_secs(20));
    }
}

fn sim_http(sim: &Simulator) -> String {
    sim.url
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string()
}

#[test]
fn nginx_t_accepts_the_templates_and_rejects_a_broken_one() {
    let nginx = Nginx::configure("127.0.0.1:8080", "127.0.0.1:50000", free_port_2());
    let (ok, said) = nginx.test();
    assert!(ok && said.contains("test is successful"), "{said}");
    // The check can fail.
    let conf = nginx.dir.join("jenkins.conf");
    let good = std::fs::read_to_string(&conf).unwrap();
    std::fs::write(
        &conf,
        good.replace("proxy_read_timeout 1h;", "proxy_read_timeout;"),
    )
    .unwrap();
    let (ok, said) = nginx.test();
    assert!(!ok && said.contains("proxy_read_timeout"), "{said}");
}

#[test]
fn an_agent_goes_online_through_nginx_over_wss_and_over_jnlp4() {
    let mut sim = Simulator::start(&[]);
    let mut nginx = Nginx::configure(
        &sim_http(&sim),
        &format!("127.0.0.1:{}", sim.jnlp_port),
        // The simulator advertises its own agent port; nginx relays the same port number
        // on 127.0.0.2, as the compose stack relays 50000 to Jenkins' 50000.
        sim.jnlp_port,
    );
    nginx.start();
    let url = format!("https://127.0.0.2:{}/", nginx.https_port);
    let ca = nginx.dir.join("ca.pem");
    let work = scratch("nginx-agent");

    // http -> https, path kept.
    let r = ureq::AgentBuilder::new()
        .redirects(0)
        .build()
        .get(&format!(
            "http://127.0.0.2:{}/computer/n1/?x=1",
            nginx.http_port
        ))
        .call()
        .expect("redirect");
    assert_eq!(r.status(), 301);
    assert_eq!(
        r.header("location"),
        Some("https://127.0.0.2/computer/n1/?x=1")
    );
    // https serves the controller, with HSTS.
    let o = Command::new("curl")
        .args(["-sS", "-D", "-", "-o", "/dev/null", "--cacert"])
        .arg(&ca)
        .arg(format!("{url}login"))
        .output()
        .expect("curl");
    let head = String::from_utf8_lossy(&o.stdout).to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 200"), "{}", out(&o));
    assert!(
        head.contains("strict-transport-security: max-age="),
        "{head}"
    );
    assert!(
        head.contains("x-jenkins:"),
        "the controller's answer: {head}"
    );

    // WebSocket: wss:// to nginx, which upgrades /wsagents/ to the simulator.
    let ws = AgentProc::spawn(
        {
            let mut c = agent_command();
            c.args([
                "-url",
                &url,
                "-name",
                "n1",
                "-secret",
                SIM_SECRET,
                "-webSocket",
            ])
            .arg("-cert")
            .arg(format!("@{}", ca.display()))
            .arg("-workDir")
            .arg(work.join("ws"))
            .arg("-noReconnect");
            c
        },
        &work,
    );
    let c = sim.wait_for("connected", Duration::from_secs(60));
    assert_eq!(c["transport"], "websocket");
    sim.wait_for("online", Duration::from_secs(60));
    drop(ws);
    sim.wait_for("disconnected", Duration::from_secs(60));
    // The upgrade went through nginx (logged when the connection ended).
    nginx.wait_log("access.log", "\"GET /wsagents/ HTTP/1.1\" 101");

    // JNLP4-connect: discovery over https through nginx, then the agent port through nginx's
    // stream relay (the URL's host, 127.0.0.2, at the advertised port).
    let _jnlp = AgentProc::spawn(
        {
            let mut c = agent_command();
            c.args(["-url", &url, "-name", "n1", "-secret", SIM_SECRET])
                .arg("-cert")
                .arg(format!("@{}", ca.display()))
                .arg("-workDir")
                .arg(work.join("jnlp"))
                .arg("-noReconnect");
            c
        },
        &work,
    );
    let c = sim.wait_for("connected", Duration::from_secs(60));
    assert_eq!(c["transport"], "jnlp4");
    sim.wait_for("online", Duration::from_secs(60));
    let access = nginx.log("access.log");
    assert!(access.contains("GET /tcpSlaveAgentListener/"), "{access}");
    // The stream log is written when a relayed connection ends: close it.
    drop(_jnlp);
    sim.wait_for("disconnected", Duration::from_secs(60));
    let deadline = Instant::now() + Duration::from_secs(20);
    while !nginx
        .log("stream.log")
        .contains(&format!("127.0.0.1:{}", sim.jnlp_port))
    {
        assert!(
            Instant::now() < deadline,
            "no relayed connection in the stream log: {:?}",
            nginx.log("stream.log")
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    // Stopping nginx leaves none of its processes behind.
    let master = nginx.child.as_ref().expect("nginx runs").id();
    let workers = children_of(master);
    assert!(!workers.is_empty(), "nginx has workers");
    drop(nginx);
    for pid in workers.into_iter().chain([master]) {
        assert!(!alive(pid), "nginx process {pid} is still running");
    }
}

/// Process ids whose parent is `parent` (from /proc/PID/stat).
fn children_of(parent: u32) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|st| {
                    let after = st.rsplit_once(") ")?.1;
                    after.split_whitespace().nth(1)?.parse::<u32>().ok()
                })
                == Some(parent)
        })
        .collect()
}

/// True if `pid` exists and is not a zombie.
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|st| Some(!st.rsplit_once(") ")?.1.starts_with('Z')))
        == Some(true)
}

#[test]
fn the_iam_policies_parse_and_grant_only_what_they_say() {
    let dir = repo_root().join("jenkins-config/iam");
    let mut names = Vec::new();
    let mut all = BTreeMap::new();
    for e in std::fs::read_dir(&dir).unwrap().flatten() {
        let p = e.path();
        if p.extension().is_some_and(|x| x == "json") {
            let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&p).unwrap())
                .unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            assert_eq!(v["Version"], "2012-10-17", "{}", p.display());
            let statements = v["Statement"].as_array().expect("Statement list");
            assert!(!statements.is_empty());
            for s in statements {
                assert!(
                    s["Sid"].is_string(),
                    "{}: a statement without Sid",
                    p.display()
                );
                assert_eq!(s["Effect"], "Allow", "{}", p.display());
                assert!(s["Action"].is_string() || s["Action"].is_array());
                let actions = match &s["Action"] {
                    serde_json::Value::String(a) => vec![a.clone()],
                    serde_json::Value::Array(a) => {
                        a.iter().map(|x| x.as_str().unwrap().to_string()).collect()
                    }
                    _ => unreachable!(),
                };
                for a in &actions {
                    assert!(
                        !a.ends_with(":*") && a != "*",
                        "{}: a wildcard action {a}",
                        p.display()
                    );
                }
            }
            names.push(p.file_name().unwrap().to_string_lossy().into_owned());
            all.insert(p.file_name().unwrap().to_string_lossy().into_owned(), v);
        }
    }
    names.sort();
    assert_eq!(
        names,
        [
            "agent-role-policy.json",
            "agent-role-trust.json",
            "controller-host-policy.json",
            "fleet-policy.json",
            "image-builder-policy.json"
        ]
    );
    let sid = |file: &str, sid: &str| -> serde_json::Value {
        all[file]["Statement"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["Sid"] == sid)
            .unwrap_or_else(|| panic!("{file} has no {sid}"))
            .clone()
    };
    // An instance reads only its own secret: the parameters under /nectr/agents/, and only
    // the one tagged with the requesting instance.
    let own = sid("agent-role-policy.json", "ReadOnlyItsOwnAgentSecret");
    assert_eq!(own["Action"], "ssm:GetParameter");
    assert!(own["Resource"]
        .as_str()
        .unwrap()
        .ends_with(":parameter/nectr/agents/*/secret"));
    assert_eq!(
        own["Condition"]["StringLike"]["ec2:SourceInstanceARN"],
        "arn:aws:ec2:REGION:ACCOUNT_ID:instance/${aws:ResourceTag/nectr:instance}"
    );
    // A build machine may write only the two spot-notice tags, on instances of its fleet.
    let spot = sid(
        "agent-role-policy.json",
        "ReportSpotNoticesOnInstancesOfItsFleet",
    );
    assert_eq!(spot["Action"], "ec2:CreateTags");
    assert_eq!(
        spot["Condition"]["ForAllValues:StringEquals"]["aws:TagKeys"],
        serde_json::json!(["nectr:interruption", "nectr:rebalance"])
    );
    assert_eq!(
        spot["Condition"]["StringEquals"]["ec2:ResourceTag/nectr:fleet-id"],
        "FLEET_ID"
    );
    // The fleet terminates and launches only instances carrying its tag.
    let term = sid("fleet-policy.json", "TerminateOnlyItsOwnInstances");
    assert_eq!(
        term["Condition"]["StringEquals"]["ec2:ResourceTag/nectr:fleet-id"],
        "FLEET_ID"
    );
    let launch = sid(
        "fleet-policy.json",
        "LaunchOnlyInstancesTaggedWithThisFleet",
    );
    assert_eq!(
        launch["Condition"]["StringEquals"]["aws:RequestTag/nectr:fleet-id"],
        "FLEET_ID"
    );
    let secrets = sid("fleet-policy.json", "WriteAndDeleteAgentSecrets");
    assert!(secrets["Resource"]
        .as_str()
        .unwrap()
        .ends_with(":parameter/nectr/agents/*"));
    // The host may read and write its backups, never delete them.
    let backup = sid(
        "controller-host-policy.json",
        "WriteAndReadBackupsOfJenkinsHome",
    );
    assert!(!backup.to_string().contains("Delete"));
}

/// compose.yaml and the configuration as code, read with PyYAML (from the test peers'
/// venv): the services, ports and the settings that matter.
#[test]
fn compose_and_configuration_as_code_say_what_the_host_needs() {
    let py = aws_peers_bin().join("python");
    let cfg = repo_root().join("jenkins-config");
    let o = Command::new(&py)
        .arg("-c")
        .arg(
            "import json, sys, yaml\n\
             print(json.dumps([yaml.safe_load(open(p)) for p in sys.argv[1:]]))",
        )
        .arg(cfg.join("compose.yaml"))
        .arg(cfg.join("jenkins/casc/jenkins.yaml"))
        .output()
        .expect("python with PyYAML from target/venv-moto");
    assert!(o.status.success(), "{}", out(&o));
    let docs: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let compose = &docs[0];
    let nginx = &compose["services"]["nginx"];
    assert_eq!(
        nginx["ports"],
        serde_json::json!(["80:80", "443:443", "50000:50000"])
    );
    assert!(
        compose["services"]["jenkins"]["ports"].is_null(),
        "only nginx publishes"
    );
    assert_eq!(nginx["environment"]["NGINX_ENVSUBST_FILTER"], "^NECTR_");
    // Every placeholder of the templates has a value in compose.yaml.
    for t in [
        "nginx/templates/jenkins.conf.template",
        "nginx/stream-templates/agents.conf.template",
    ] {
        let text = std::fs::read_to_string(cfg.join(t)).unwrap();
        for part in text.split("${").skip(1) {
            let name = part.split('}').next().unwrap();
            assert!(
                !nginx["environment"][name].is_null(),
                "{t} uses {name}, compose.yaml does not set it"
            );
        }
    }
    let casc = &docs[1]["jenkins"];
    assert_eq!(casc["numExecutors"], 0);
    assert_eq!(casc["slaveAgentPort"], 50000);
    assert_eq!(casc["securityRealm"]["local"]["allowsSignup"], false);
    let entries = casc["authorizationStrategy"]["globalMatrix"]["entries"]
        .as_array()
        .unwrap();
    let fleet = entries
        .iter()
        .find(|e| e["user"]["name"] == "nectr-fleet")
        .expect("the fleet's user");
    let perms: Vec<&str> = fleet["user"]["permissions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap())
        .collect();
    assert_eq!(
        perms,
        [
            "Overall/Read",
            "Job/Read",
            "Agent/Create",
            "Agent/Configure",
            "Agent/Connect",
            "Agent/Disconnect",
            "Agent/Delete"
        ]
    );
    assert_eq!(
        casc["nodes"][0]["permanent"]["launcher"]["inbound"]["webSocket"],
        true
    );
}

#[test]
fn jenkins_home_is_backed_up_to_s3_and_restored_with_its_secret_keys() {
    let moto = Moto::start();
    let (status, _) = moto.s3("PUT", "/nectr-backups");
    assert_eq!(status, 200);
    let dir = scratch("backup");
    let home = dir.join("jenkins_home");
    let files: &[(&str, &str, u32)] = &[
        ("config.xml", "<hudson/>", 0o644),
        ("credentials.xml", "<creds>{AQAAABAAAAAQ}</creds>", 0o644),
        ("secret.key", "0123456789abcdef", 0o600),
        ("secrets/master.key", "master-key-bytes", 0o600),
        ("secrets/hudson.util.Secret", "secret-bytes", 0o600),
        ("jobs/app/config.xml", "<flow-definition/>", 0o644),
        ("jobs/app/builds/1/build.xml", "<build/>", 0o644),
        ("users/admin_1/config.xml", "<user/>", 0o644),
    ];
    use std::os::unix::fs::PermissionsExt;
    for (p, content, mode) in files {
        let f = home.join(p);
        std::fs::create_dir_all(f.parent().unwrap()).unwrap();
        std::fs::write(&f, content).unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(*mode)).unwrap();
    }
    for skipped in [
        "workspace/app/big.o",
        "plugins/git.jpi",
        "war/index.html",
        "caches/x",
    ] {
        let f = home.join(skipped);
        std::fs::create_dir_all(f.parent().unwrap()).unwrap();
        std::fs::write(&f, "not backed up").unwrap();
    }
    let script = |name: &str, home: &Path| {
        let mut c = Command::new(repo_root().join("jenkins-config/backup").join(name));
        c.env_clear()
            .env(
                "PATH",
                format!("{}:/usr/bin:/bin", aws_peers_bin().display()),
            )
            .env("HOME", &dir)
            .env("TMPDIR", &dir)
            .env("AWS_CONFIG_FILE", dir.join("none"))
            .env("AWS_SHARED_CREDENTIALS_FILE", dir.join("none"))
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("AWS_ACCESS_KEY_ID", "AKIABACKUPTEST")
            .env("AWS_SECRET_ACCESS_KEY", "backup-secret-DO-NOT-PRINT")
            .env("AWS_DEFAULT_REGION", "us-east-1")
            .env("NECTR_AWS_ENDPOINT_URL", &moto.url)
            .env("NECTR_BACKUP_BUCKET", "nectr-backups")
            .env("NECTR_JENKINS_HOME", home);
        c
    };
    let o = script("jenkins-backup", &home).output().unwrap();
    assert!(o.status.success(), "{}", out(&o));
    assert!(out(&o).contains("backed up"), "{}", out(&o));
    let (status, latest) = moto.s3("GET", "/nectr-backups/jenkins/LATEST");
    assert_eq!(status, 200);
    let key = String::from_utf8_lossy(&latest).trim().to_string();
    assert!(
        key.starts_with("jenkins/jenkins-home-") && key.ends_with(".tar.gz"),
        "{key}"
    );

    // Restore into an empty place: the same files, modes and contents; nothing skipped.
    let restored = dir.join("restored");
    let o = script("jenkins-restore", &restored).output().unwrap();
    assert!(o.status.success(), "{}", out(&o));
    for (p, content, mode) in files {
        let f = restored.join(p);
        assert_eq!(std::fs::read_to_string(&f).unwrap(), *content, "{p}");
        let m = std::fs::metadata(&f).unwrap().permissions().mode() & 0o777;
        assert_eq!(m, *mode, "{p} mode {m:o}");
    }
    for skipped in ["workspace", "plugins", "war", "caches"] {
        assert!(!restored.join(skipped).exists(), "{skipped} was backed up");
    }
    // Never over a live home.
    let o = script("jenkins-restore", &home).output().unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", out(&o));
    assert!(out(&o).contains("is not empty"), "{}", out(&o));
    // A damaged archive is refused before anything is written.
    let (status, _) = moto.s3("PUT", &format!("/nectr-backups/{key}"));
    assert_eq!(status, 200, "overwrite with an empty object");
    let o = script("jenkins-restore", &dir.join("again"))
        .arg(&key)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", out(&o));
    assert!(out(&o).contains("is damaged"), "{}", out(&o));
    assert!(!dir.join("again").join("config.xml").exists());
    // The timer's units are valid.
    let units = scratch("backup-units");
    let cfg = repo_root().join("jenkins-config/backup");
    std::fs::write(
        units.join("jenkins-backup.service"),
        std::fs::read_to_string(cfg.join("jenkins-backup.service"))
            .unwrap()
            .replace(
                "/usr/local/sbin/jenkins-backup",
                &cfg.join("jenkins-backup").display().to_string(),
            )
            .replace(
                "/etc/nectr/backup.env",
                &units.join("backup.env").display().to_string(),
            ),
    )
    .unwrap();
    std::fs::write(units.join("backup.env"), "NECTR_BACKUP_BUCKET=b\n").unwrap();
    std::fs::copy(
        cfg.join("jenkins-backup.timer"),
        units.join("jenkins-backup.timer"),
    )
    .unwrap();
    let o = Command::new("systemd-analyze")
        .env("SYSTEMD_UNIT_PATH", format!("{}:", units.display()))
        .args(["verify", "--man=no"])
        .arg(units.join("jenkins-backup.timer"))
        .arg(units.join("jenkins-backup.service"))
        .output()
        .expect("systemd-analyze");
    assert!(
        o.status.success() && out(&o).trim_end().ends_with("status Some(0)"),
        "{}",
        out(&o)
    );
}
