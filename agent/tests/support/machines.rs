//! Peers of the tests of the machines around the agent (`ami/`, `jenkins-config/`): moto
//! (S3, SSM) and the AWS CLI from scripts/fleet-test-peers, a fake EC2 instance metadata
//! service (IMDSv2) with user-data and tags, stand-ins for the commands the boot script
//! runs as root, and Debian's nginx, packer and shellcheck (installed by scripts/test).
//! Everything listens on loopback. A missing peer fails the test with instructions.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::repo_root;

/// The directory holding moto_server and the AWS CLI (`aws`), installed if missing.
pub fn aws_peers_bin() -> PathBuf {
    let script = repo_root().join("scripts/fleet-test-peers");
    let out = Command::new(&script)
        .stderr(Stdio::inherit())
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "moto and the AWS CLI are required: {}: {e}",
                script.display()
            )
        });
    assert!(
        out.status.success(),
        "moto and the AWS CLI are required and {} could not install them (exit {:?}); \
         install python3 and python3-venv, then run it",
        script.display(),
        out.status.code()
    );
    let moto = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim().to_string());
    moto.parent().expect("venv bin").to_path_buf()
}

/// A tool Debian packages (nginx, packer, shellcheck): found on PATH or in /usr/sbin, else
/// the test fails saying how to install it.
pub fn debian_tool(name: &str, package: &str) -> PathBuf {
    for dir in std::env::var("PATH")
        .unwrap_or_default()
        .split(':')
        .chain(["/usr/sbin", "/sbin"])
    {
        let p = Path::new(dir).join(name);
        if p.is_file() {
            return p;
        }
    }
    panic!(
        "{name} is required for this test: run scripts/test (it installs it), or \
         `apt-get install {package}`"
    )
}

/// moto_server on 127.0.0.1, killed on drop.
pub struct Moto {
    /// `http://127.0.0.1:PORT`
    pub url: String,
    child: Child,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

fn auth(service: &str) -> String {
    // moto routes an unsigned request by guessing; a credential scope names the service.
    format!(
        "AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/{service}/aws4_request, \
         SignedHeaders=host, Signature=0"
    )
}

impl Moto {
    pub fn start() -> Moto {
        let bin = aws_peers_bin().join("moto_server");
        let port = free_port();
        let child = Command::new(&bin)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
        let m = Moto {
            url: format!("http://127.0.0.1:{port}"),
            child,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while ureq::post(&format!("{}/moto-api/reset", m.url))
            .call()
            .is_err()
        {
            assert!(
                Instant::now() < deadline,
                "moto did not answer on {}",
                m.url
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        m
    }

    /// An SSM call (JSON protocol); panics unless 200.
    pub fn ssm(&self, action: &str, body: &serde_json::Value) -> serde_json::Value {
        let r = ureq::post(&format!("{}/", self.url))
            .set("X-Amz-Target", &format!("AmazonSSM.{action}"))
            .set("Content-Type", "application/x-amz-json-1.1")
            .set("Authorization", &auth("ssm"))
            .send_string(&body.to_string());
        match r {
            Ok(r) => serde_json::from_str(&r.into_string().unwrap()).unwrap_or_default(),
            Err(e) => panic!("SSM {action}: {e}"),
        }
    }

    /// Puts a SecureString parameter, tagged as the fleet tags an agent secret.
    pub fn put_secret(&self, node: &str, secret: &str) {
        self.ssm(
            "PutParameter",
            &serde_json::json!({
                "Name": format!("/nectr/agents/{node}/secret"),
                "Type": "SecureString",
                "Value": secret,
                "Tags": [{"Key": "nectr:node", "Value": node}],
            }),
        );
    }

    /// An EC2 call (query protocol, form body without `Action`'s `Version`); the XML answer,
    /// panics unless 200.
    pub fn ec2(&self, action: &str, params: &[(&str, &str)]) -> String {
        let mut body = format!("Action={action}&Version=2016-11-15");
        for (k, v) in params {
            body.push_str(&format!("&{k}={v}"));
        }
        let r = ureq::post(&format!("{}/", self.url))
            .set("Content-Type", "application/x-www-form-urlencoded")
            .set("Authorization", &auth("ec2"))
            .send_string(&body);
        match r {
            Ok(r) => r.into_string().unwrap(),
            Err(e) => panic!("EC2 {action}: {e}"),
        }
    }

    /// An S3 call with a fake signature; returns (status, body).
    pub fn s3(&self, method: &str, path: &str) -> (u16, Vec<u8>) {
        let r = ureq::request(method, &format!("{}{path}", self.url))
            .set("Authorization", &auth("s3"))
            .call();
        let resp = match r {
            Ok(r) => r,
            Err(ureq::Error::Status(_, r)) => r,
            Err(e) => panic!("S3 {method} {path}: {e}"),
        };
        let status = resp.status();
        let mut body = Vec::new();
        resp.into_reader().read_to_end(&mut body).unwrap();
        (status, body)
    }
}

/// What the fake IMDS serves.
#[derive(Default, Clone)]
pub struct Instance {
    pub instance_id: String,
    pub region: String,
    /// `None`: no user-data (404).
    pub user_data: Option<String>,
    /// Instance tags in the metadata; `None`: tags not exposed (404).
    pub tags: Option<BTreeMap<String, String>>,
    /// The instance role (its keys are static test keys).
    pub role: Option<String>,
    /// `meta-data/spot/instance-action` (the interruption notice JSON); `None`: 404.
    pub spot_action: Option<String>,
    /// `meta-data/events/recommendations/rebalance` (JSON); `None`: 404.
    pub rebalance: Option<String>,
}

#[derive(Default)]
pub struct ImdsLog {
    pub token_puts: usize,
    /// GETs without a valid token (answered 401).
    pub unauthorized: usize,
    pub gets: Vec<String>,
}

/// A fake IMDSv2: every GET needs the token from `PUT /latest/api/token`.
pub struct FakeImds {
    pub url: String,
    pub log: Arc<Mutex<ImdsLog>>,
    stop: Arc<AtomicBool>,
    port: u16,
}

impl Drop for FakeImds {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

const TOKEN: &str = "imds-session-token-DO-NOT-PRINT";

impl FakeImds {
    pub fn start(inst: Instance) -> FakeImds {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let log = Arc::new(Mutex::new(ImdsLog::default()));
        let (stop2, log2) = (stop.clone(), log.clone());
        std::thread::spawn(move || {
            for s in listener.incoming() {
                if stop2.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(s) = s else { continue };
                let (inst, log) = (inst.clone(), log2.clone());
                std::thread::spawn(move || serve_imds(s, &inst, &log));
            }
        });
        FakeImds {
            url: format!("http://127.0.0.1:{port}"),
            log,
            stop,
            port,
        }
    }
}

fn serve_imds(mut s: TcpStream, inst: &Instance, log: &Mutex<ImdsLog>) {
    let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
    let mut r = BufReader::new(s.try_clone().unwrap());
    let mut line = String::new();
    if r.read_line(&mut line).is_err() {
        return;
    }
    let mut headers = BTreeMap::new();
    loop {
        let mut h = String::new();
        if r.read_line(&mut h).is_err() || h.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
    let len: usize = headers
        .get("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; len];
    let _ = r.read_exact(&mut body);
    let mut p = line.split_whitespace();
    let method = p.next().unwrap_or_default();
    let path = p.next().unwrap_or_default().to_string();
    let mut extra = String::new();
    let (status, answer) = {
        let mut log = log.lock().unwrap();
        if method == "PUT" && path == "/latest/api/token" {
            log.token_puts += 1;
            extra.push_str("X-aws-ec2-metadata-token-ttl-seconds: 21600\r\n");
            (200, TOKEN.to_string())
        } else if headers.get("x-aws-ec2-metadata-token").map(String::as_str) != Some(TOKEN) {
            log.unauthorized += 1;
            (401, String::new())
        } else {
            log.gets.push(path.clone());
            imds_answer(inst, &path)
        }
    };
    let _ = write!(
        s,
        "HTTP/1.1 {status} X\r\nContent-Length: {}\r\n{extra}Connection: close\r\n\r\n{answer}",
        answer.len()
    );
}

fn imds_answer(inst: &Instance, path: &str) -> (u16, String) {
    let found = |v: Option<String>| match v {
        Some(v) => (200, v),
        None => (404, String::new()),
    };
    let creds = "/latest/meta-data/iam/security-credentials/";
    match path {
        "/latest/meta-data/instance-id" => (200, inst.instance_id.clone()),
        "/latest/meta-data/placement/region" => (200, inst.region.clone()),
        "/latest/user-data" => found(inst.user_data.clone()),
        "/latest/meta-data/spot/instance-action" => found(inst.spot_action.clone()),
        "/latest/meta-data/events/recommendations/rebalance" => found(inst.rebalance.clone()),
        "/latest/meta-data/tags/instance" | "/latest/meta-data/tags/instance/" => {
            found(inst.tags.as_ref().map(|t| {
                t.keys().cloned().collect::<Vec<_>>().join("\n")
            }))
        }
        p if p.starts_with("/latest/meta-data/tags/instance/") => found(
            inst.tags
                .as_ref()
                .and_then(|t| t.get(&p["/latest/meta-data/tags/instance/".len()..]).cloned()),
        ),
        p if p == creds || p == &creds[..creds.len() - 1] => found(inst.role.clone()),
        p if p.starts_with(creds) && inst.role.as_deref() == Some(&p[creds.len()..]) => (
            200,
            "{\"Code\":\"Success\",\"LastUpdated\":\"2026-01-01T00:00:00Z\",\"Type\":\"AWS-HMAC\",\
             \"AccessKeyId\":\"ASIAFAKEBOOT\",\"SecretAccessKey\":\"boot-role-secret-DO-NOT-PRINT\",\
             \"Token\":\"boot-role-session-DO-NOT-PRINT\",\"Expiration\":\"2099-01-01T00:00:00Z\"}"
                .to_string(),
        ),
        _ => (404, String::new()),
    }
}

/// Writes an executable script.
pub fn script(path: &Path, body: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, body).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// Runs shellcheck on `files`; returns (passed, what it said).
pub fn shellcheck(files: &[PathBuf]) -> (bool, String) {
    let o = Command::new(debian_tool("shellcheck", "shellcheck"))
        .args(["--severity=style", "--external-sources"])
        .args(files)
        .output()
        .expect("run shellcheck");
    (
        o.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        ),
    )
}

/// Reads a file, waiting until it contains `needle` or `timeout` passes.
pub fn wait_for_text(path: &Path, needle: &str, timeout: Duration) -> String {
    let deadline = Instant::now() + timeout;
    loop {
        let t = std::fs::read_to_string(path).unwrap_or_default();
        if t.contains(needle) {
            return t;
        }
        assert!(
            Instant::now() < deadline,
            "{} has no {needle:?} after {timeout:?}:\n{t}",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
