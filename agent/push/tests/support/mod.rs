//! Test peers on 127.0.0.1 for nectr-agent push/fetch: moto (installed by
//! scripts/fleet-test-peers; missing moto fails the test with instructions, never skips), a
//! recording and cutting TCP proxy in front of it, and a fake IMDSv2.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sha2::Digest;

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A fresh scratch directory under the target dir.
pub fn scratch(name: &str) -> PathBuf {
    let base = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target"));
    static N: AtomicU64 = AtomicU64::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let dir = base
        .join("test-scratch")
        .join(format!("push-{name}-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create scratch dir");
    dir
}

/// One HTTP/1.1 request over a fresh connection; returns (status, headers, body).
pub fn http(url: &str, method: &str, body: &[u8]) -> (u16, BTreeMap<String, String>, Vec<u8>) {
    http_with(url, method, &[], body)
}

pub fn http_with(
    url: &str,
    method: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, BTreeMap<String, String>, Vec<u8>) {
    let rest = url.strip_prefix("http://").expect("http:// URL");
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let mut s = TcpStream::connect(authority).unwrap_or_else(|e| panic!("connect {url}: {e}"));
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if !headers
        .iter()
        .any(|(k, _)| k.eq_ignore_ascii_case("authorization"))
    {
        // moto routes an unsigned request by guessing; a credential scope names S3.
        req.push_str(
            "Authorization: AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/s3/aws4_request, \
             SignedHeaders=host, Signature=0\r\n",
        );
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut r = BufReader::new(s);
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {line:?} from {url}"));
    let mut hs = BTreeMap::new();
    loop {
        let mut h = String::new();
        r.read_line(&mut h).unwrap();
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            hs.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
    let mut body = Vec::new();
    if method != "HEAD" {
        match hs
            .get("content-length")
            .and_then(|v| v.parse::<usize>().ok())
        {
            Some(n) => {
                body.resize(n, 0);
                r.read_exact(&mut body).unwrap();
            }
            None => {
                r.read_to_end(&mut body).unwrap();
            }
        }
    }
    (status, hs, body)
}

/// moto_server on 127.0.0.1, killed on drop.
pub struct Moto {
    /// `http://127.0.0.1:PORT`, no trailing slash.
    pub url: String,
    child: Child,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn peers_script_output() -> PathBuf {
    if let Some(p) = std::env::var_os("NECTR_MOTO_SERVER") {
        return PathBuf::from(p);
    }
    let script = repo_root().join("scripts/fleet-test-peers");
    let out = Command::new(&script)
        .stderr(Stdio::inherit())
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "moto is required for this test: running {} failed: {e}",
                script.display()
            )
        });
    assert!(
        out.status.success(),
        "moto is required for this test and could not be installed by {} (exit {:?}); install \
         python3 and python3-venv and run it, or set NECTR_MOTO_SERVER to a moto_server binary",
        script.display(),
        out.status.code()
    );
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

impl Moto {
    pub fn start() -> Moto {
        let bin = peers_script_output();
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
        loop {
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                let (s, _, _) = http(&format!("{}/moto-api/reset", m.url), "POST", b"");
                if s == 200 {
                    return m;
                }
            }
            assert!(
                Instant::now() < deadline,
                "moto_server did not answer on {} within 60 s",
                m.url
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    pub fn create_bucket(&self, name: &str) {
        let (s, _, b) = http(&format!("{}/{name}", self.url), "PUT", b"");
        assert_eq!(
            s,
            200,
            "create bucket {name}: {}",
            String::from_utf8_lossy(&b)
        );
    }

    /// GET of an object straight from moto: (status, body).
    pub fn get(&self, bucket: &str, key: &str) -> (u16, Vec<u8>) {
        let (s, _, b) = http(&format!("{}/{bucket}/{key}", self.url), "GET", b"");
        (s, b)
    }

    /// The keys in a bucket (ListObjectsV2, first page).
    pub fn keys(&self, bucket: &str) -> Vec<String> {
        let (s, _, b) = http(&format!("{}/{bucket}?list-type=2", self.url), "GET", b"");
        assert_eq!(s, 200, "{}", String::from_utf8_lossy(&b));
        let xml = String::from_utf8_lossy(&b);
        xml.split("<Key>")
            .skip(1)
            .filter_map(|s| s.split("</Key>").next())
            .map(str::to_string)
            .collect()
    }

    /// Multipart uploads in progress in a bucket.
    pub fn uploads(&self, bucket: &str) -> usize {
        let (_, _, b) = http(&format!("{}/{bucket}?uploads", self.url), "GET", b"");
        String::from_utf8_lossy(&b).matches("<UploadId>").count()
    }
}

/// A file of `len` deterministic pseudo-random bytes (xorshift), and its hex SHA-256.
pub fn random_file(path: &Path, len: usize, seed: u64) -> String {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut h = sha2::Sha256::new();
    let mut x = seed | 1;
    let mut buf = vec![0u8; 1 << 20];
    let mut left = len;
    while left > 0 {
        let n = left.min(buf.len());
        for chunk in buf[..n].chunks_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let b = x.to_le_bytes();
            chunk.copy_from_slice(&b[..chunk.len()]);
        }
        h.update(&buf[..n]);
        f.write_all(&buf[..n]).unwrap();
        left -= n;
    }
    f.flush().unwrap();
    hex::encode(h.finalize())
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(sha2::Sha256::digest(bytes))
}

/// The binary with an empty environment (PATH, HOME in `home`, no AWS_*: every test says
/// where credentials come from, and IMDS is never the real one).
pub fn push_command(home: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_nectr-agent-push"));
    c.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", home)
        .env("AWS_CONFIG_FILE", home.join("no-aws-config"))
        .env(
            "AWS_SHARED_CREDENTIALS_FILE",
            home.join("no-aws-credentials"),
        )
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .current_dir(home);
    c
}

/// Static test credentials and region.
pub fn with_keys(c: &mut Command) -> &mut Command {
    c.env("AWS_ACCESS_KEY_ID", "AKIATESTPUSHKEY")
        .env("AWS_SECRET_ACCESS_KEY", "push-secret-DO-NOT-PRINT")
        .env("AWS_REGION", "us-east-1")
}

pub fn text(o: &Output) -> String {
    format!(
        "status {:?}\n--- stdout\n{}\n--- stderr\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

pub fn read_json(path: &Path) -> serde_json::Value {
    serde_json::from_slice(
        &std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())),
    )
    .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// What the proxy saw of one request.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub target: String,
    /// Header names lowercased.
    pub headers: BTreeMap<String, String>,
    pub body_len: u64,
    /// Base64 of the SHA-256 of the body.
    pub body_sha256_b64: String,
}

/// A TCP proxy on 127.0.0.1 in front of `upstream` that records each HTTP/1.1 request it
/// forwards and, once `budget` bytes of request bodies have gone through, cuts every
/// connection and refuses new ones (an interrupted network).
pub struct Proxy {
    pub url: String,
    pub seen: Arc<Mutex<Vec<Seen>>>,
    cut: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    port: u16,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

impl Proxy {
    pub fn start(upstream: &str, budget: Option<u64>) -> Proxy {
        let upstream = upstream.trim_start_matches("http://").to_string();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let cut = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        let used = Arc::new(AtomicU64::new(0));
        let open: Arc<Mutex<Vec<TcpStream>>> = Arc::new(Mutex::new(Vec::new()));
        let (seen2, cut2, stop2) = (seen.clone(), cut.clone(), stop.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                if stop2.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(client) = client else { continue };
                if cut2.load(Ordering::SeqCst) {
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                }
                let Ok(server) = TcpStream::connect(&upstream) else {
                    continue;
                };
                {
                    let mut o = open.lock().unwrap();
                    o.push(client.try_clone().unwrap());
                    o.push(server.try_clone().unwrap());
                }
                // server -> client: plain copy.
                let (mut s_read, mut c_write) =
                    (server.try_clone().unwrap(), client.try_clone().unwrap());
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut s_read, &mut c_write);
                    let _ = c_write.shutdown(Shutdown::Write);
                });
                // client -> server: request by request, recorded, within the budget.
                let (seen, cut, used, open) =
                    (seen2.clone(), cut2.clone(), used.clone(), open.clone());
                std::thread::spawn(move || {
                    let _ = forward_requests(client, server, &seen, &cut, &used, budget, &open);
                });
            }
        });
        Proxy {
            url: format!("http://127.0.0.1:{port}"),
            seen,
            cut,
            stop,
            port,
        }
    }

    pub fn was_cut(&self) -> bool {
        self.cut.load(Ordering::SeqCst)
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

fn forward_requests(
    client: TcpStream,
    mut server: TcpStream,
    seen: &Mutex<Vec<Seen>>,
    cut: &AtomicBool,
    used: &AtomicU64,
    budget: Option<u64>,
    open: &Mutex<Vec<TcpStream>>,
) -> std::io::Result<()> {
    let mut r = BufReader::new(client);
    loop {
        let mut head = Vec::new();
        loop {
            let mut line = Vec::new();
            if r.read_until(b'\n', &mut line)? == 0 {
                let _ = server.shutdown(Shutdown::Write);
                return Ok(());
            }
            let end = line == b"\r\n";
            head.extend_from_slice(&line);
            if end {
                break;
            }
        }
        let text = String::from_utf8_lossy(&head).into_owned();
        let mut lines = text.split("\r\n");
        let first = lines.next().unwrap_or_default();
        let mut parts = first.split_whitespace();
        let method = parts.next().unwrap_or_default().to_string();
        let target = parts.next().unwrap_or_default().to_string();
        let headers: BTreeMap<String, String> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        assert!(
            !headers.contains_key("transfer-encoding"),
            "the proxy only follows Content-Length bodies; got {headers:?}"
        );
        let len: u64 = headers
            .get("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        server.write_all(&head)?;
        let mut h = sha2::Sha256::new();
        let mut left = len;
        let mut buf = vec![0u8; 64 << 10];
        while left > 0 {
            let want = left.min(buf.len() as u64) as usize;
            let n = r.read(&mut buf[..want])?;
            if n == 0 {
                return Ok(());
            }
            let total = used.fetch_add(n as u64, Ordering::SeqCst) + n as u64;
            if budget.is_some_and(|b| total > b) {
                cut.store(true, Ordering::SeqCst);
                for s in open.lock().unwrap().iter() {
                    let _ = s.shutdown(Shutdown::Both);
                }
                return Ok(());
            }
            h.update(&buf[..n]);
            server.write_all(&buf[..n])?;
            left -= n as u64;
        }
        use base64::Engine;
        seen.lock().unwrap().push(Seen {
            method,
            target,
            headers,
            body_len: len,
            body_sha256_b64: base64::engine::general_purpose::STANDARD.encode(h.finalize()),
        });
    }
}

/// A fake IMDSv2 on 127.0.0.1: a token from `PUT /latest/api/token` is required on every
/// GET; it lists `role` (404 without one) and serves static test credentials for it.
pub struct FakeImds {
    pub url: String,
    pub requests: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    port: u16,
}

impl Drop for FakeImds {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

pub const IMDS_SECRET: &str = "imds-secret-DO-NOT-PRINT";

impl FakeImds {
    pub fn start(role: Option<&'static str>) -> FakeImds {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let (stop2, req2) = (stop.clone(), requests.clone());
        std::thread::spawn(move || {
            for s in listener.incoming() {
                if stop2.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(mut s) = s else { continue };
                let mut r = BufReader::new(s.try_clone().unwrap());
                let mut line = String::new();
                if r.read_line(&mut line).is_err() {
                    continue;
                }
                let mut token = None;
                let mut len = 0usize;
                loop {
                    let mut h = String::new();
                    if r.read_line(&mut h).is_err() || h.trim().is_empty() {
                        break;
                    }
                    if let Some((k, v)) = h.split_once(':') {
                        match k.trim().to_ascii_lowercase().as_str() {
                            "x-aws-ec2-metadata-token" => token = Some(v.trim().to_string()),
                            "content-length" => len = v.trim().parse().unwrap_or(0),
                            _ => {}
                        }
                    }
                }
                let mut body = vec![0; len];
                let _ = r.read_exact(&mut body);
                let mut p = line.split_whitespace();
                let method = p.next().unwrap_or_default().to_string();
                let path = p.next().unwrap_or_default().to_string();
                req2.lock().unwrap().push(format!("{method} {path}"));
                let mut extra = String::new();
                let (status, answer) = if method == "PUT" && path == "/latest/api/token" {
                    extra.push_str("X-aws-ec2-metadata-token-ttl-seconds: 21600\r\n");
                    (200, "fake-token-1".to_string())
                } else if token.as_deref() != Some("fake-token-1") {
                    (401, String::new())
                } else if path == "/latest/meta-data/iam/security-credentials/"
                    || path == "/latest/meta-data/iam/security-credentials"
                {
                    match role {
                        Some(r) => (200, r.to_string()),
                        None => (404, String::new()),
                    }
                } else if role.is_some_and(|r| {
                    path == format!("/latest/meta-data/iam/security-credentials/{r}")
                }) {
                    (
                        200,
                        format!(
                            "{{\"Code\":\"Success\",\"LastUpdated\":\"2026-01-01T00:00:00Z\",\"Type\":\"AWS-HMAC\",\
                             \"AccessKeyId\":\"ASIAFAKEIMDS\",\"SecretAccessKey\":\"{IMDS_SECRET}\",\
                             \"Token\":\"imds-session-DO-NOT-PRINT\",\"Expiration\":\"2099-01-01T00:00:00Z\"}}"
                        ),
                    )
                } else {
                    (404, String::new())
                };
                let _ = write!(
                    s,
                    "HTTP/1.1 {status} X\r\nContent-Length: {}\r\n{extra}Connection: close\r\n\r\n{answer}",
                    answer.len()
                );
            }
        });
        FakeImds {
            url: format!("http://127.0.0.1:{port}"),
            requests,
            stop,
            port,
        }
    }
}
