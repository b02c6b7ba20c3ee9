//! A fake EC2 instance metadata service (IMDSv2) on 127.0.0.1, and a request recorder that
//! answers like EC2/S3 enough for a signed call to succeed. Both are plain `TcpListener`s in
//! a thread, one connection per request (`Connection: close`).
//!
//! The fake IMDS requires a session token from `PUT /latest/api/token` on every GET (401
//! without it or with a revoked one), lists one role (or none), serves the queued credential
//! answers in order (the last one repeats), and counts every request.

use std::collections::{BTreeMap, VecDeque};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

pub struct Request {
    pub method: String,
    pub path: String,
    /// Header names lowercased.
    pub headers: BTreeMap<String, String>,
    pub body: Vec<u8>,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
    }
}

pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Response {
    pub fn new(status: u16, body: impl Into<String>) -> Self {
        Response {
            status,
            headers: Vec::new(),
            body: body.into(),
        }
    }
}

fn read_request(stream: &TcpStream) -> Option<Request> {
    let mut r = BufReader::new(stream.try_clone().ok()?);
    let mut line = String::new();
    r.read_line(&mut line).ok()?;
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_string();
    let path = parts.next()?.to_string();
    let mut headers = BTreeMap::new();
    loop {
        let mut h = String::new();
        r.read_line(&mut h).ok()?;
        let h = h.trim_end();
        if h.is_empty() {
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
    r.read_exact(&mut body).ok()?;
    Some(Request {
        method,
        path,
        headers,
        body,
    })
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        _ => "Status",
    }
}

/// A loopback HTTP server calling `handler` for each request, until dropped.
pub struct Server {
    pub url: String,
    stop: Arc<AtomicBool>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop.
        let _ = TcpStream::connect(self.url.trim_start_matches("http://").trim_end_matches('/'));
    }
}

impl Server {
    pub fn start(handler: impl Fn(&Request) -> Response + Send + Sync + 'static) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
        let addr = listener.local_addr().expect("addr");
        let stop = Arc::new(AtomicBool::new(false));
        let s2 = stop.clone();
        let handler = Arc::new(handler);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if s2.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(mut stream) = stream else { continue };
                let h = handler.clone();
                std::thread::spawn(move || {
                    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
                    let Some(req) = read_request(&stream) else {
                        return;
                    };
                    let resp = h(&req);
                    let mut out = format!(
                        "HTTP/1.1 {} {}\r\nContent-Length: {}\r\nConnection: close\r\n",
                        resp.status,
                        reason(resp.status),
                        resp.body.len()
                    );
                    for (k, v) in &resp.headers {
                        out.push_str(&format!("{k}: {v}\r\n"));
                    }
                    out.push_str("\r\n");
                    out.push_str(&resp.body);
                    let _ = stream.write_all(out.as_bytes());
                    let _ = stream.flush();
                });
            }
        });
        Server {
            url: format!("http://{addr}"),
            stop,
        }
    }
}

/// Credential JSON as IMDS serves it.
pub fn creds_json(key_id: &str, secret: &str, token: &str, expiration: &str) -> String {
    format!(
        r#"{{
  "Code" : "Success",
  "LastUpdated" : "2026-11-22T06:00:00Z",
  "Type" : "AWS-HMAC",
  "AccessKeyId" : "{key_id}",
  "SecretAccessKey" : "{secret}",
  "Token" : "{token}",
  "Expiration" : "{expiration}"
}}"#
    )
}

/// `now + secs` in the IMDS `Expiration` form.
pub fn expiration_in(secs: i64) -> String {
    let ms = nectr_fleet::util::now_ms() as i64 + secs * 1000;
    let s = nectr_fleet::util::format_iso8601_ms(ms as u64);
    // IMDS writes whole seconds: 2026-11-22T12:00:00Z
    format!("{}Z", &s[..19])
}

#[derive(Default)]
pub struct ImdsState {
    /// Tokens handed out and not revoked, with the end of their TTL.
    pub tokens: BTreeMap<String, Instant>,
    /// The longest TTL granted on the token PUT (answered in the
    /// `X-aws-ec2-metadata-token-ttl-seconds` header); GETs with an older token get 401.
    pub token_ttl: u64,
    /// The role listed; `None` answers 404 (no instance profile).
    pub role: Option<String>,
    /// Credential answers, served in order; the last one repeats.
    pub answers: VecDeque<String>,
    /// Delay before answering a credentials GET.
    pub creds_delay: Duration,
    pub token_puts: usize,
    pub role_gets: usize,
    pub creds_gets: usize,
    pub unauthorized: usize,
    /// Every request: method and path.
    pub log: Vec<(String, String)>,
}

pub struct FakeImds {
    pub url: String,
    state: Arc<Mutex<ImdsState>>,
    _server: Server,
}

impl FakeImds {
    /// Role `nectr-fleet-role`, token TTL 21600 s, one far-future credential answer.
    pub fn start() -> FakeImds {
        let state = Arc::new(Mutex::new(ImdsState {
            token_ttl: 21_600,
            role: Some("nectr-fleet-role".into()),
            answers: VecDeque::from([creds_json(
                "ASIAFAKEIMDSKEY1",
                "imds-secret-1-DO-NOT-PRINT",
                "imds-session-1-DO-NOT-PRINT",
                &expiration_in(6 * 3600),
            )]),
            ..ImdsState::default()
        }));
        let st = state.clone();
        let server = Server::start(move |req| handle(&st, req));
        FakeImds {
            url: server.url.clone(),
            state,
            _server: server,
        }
    }

    pub fn lock(&self) -> MutexGuard<'_, ImdsState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Replace the queued credential answers.
    pub fn serve(&self, answers: &[String]) {
        self.lock().answers = answers.iter().cloned().collect();
    }

    /// Forget every session token (as after its TTL): the next GET gets 401.
    pub fn revoke_tokens(&self) {
        self.lock().tokens.clear();
    }
}

fn handle(state: &Mutex<ImdsState>, req: &Request) -> Response {
    let mut s = state.lock().unwrap_or_else(|p| p.into_inner());
    s.log.push((req.method.clone(), req.path.clone()));
    if req.method == "PUT" && req.path == "/latest/api/token" {
        s.token_puts += 1;
        let Some(ttl) = req
            .header("x-aws-ec2-metadata-token-ttl-seconds")
            .and_then(|v| v.parse::<u64>().ok())
            .filter(|t| (1..=21_600).contains(t))
        else {
            return Response::new(400, "missing or invalid token TTL");
        };
        let token = format!(
            "imds-token-{}-{}",
            s.token_puts,
            nectr_fleet::util::random_hex(8)
        );
        let ttl = ttl.min(s.token_ttl);
        s.tokens
            .insert(token.clone(), Instant::now() + Duration::from_secs(ttl));
        let mut r = Response::new(200, token);
        r.headers.push((
            "X-aws-ec2-metadata-token-ttl-seconds".into(),
            ttl.to_string(),
        ));
        return r;
    }
    if req.method != "GET" {
        return Response::new(405, "");
    }
    match req.header("x-aws-ec2-metadata-token") {
        Some(t) if s.tokens.get(t).is_some_and(|end| Instant::now() < *end) => {}
        _ => {
            s.unauthorized += 1;
            return Response::new(401, "");
        }
    }
    let prefix = "/latest/meta-data/iam/security-credentials/";
    let Some(rest) = req.path.strip_prefix(prefix) else {
        return Response::new(404, "");
    };
    if rest.is_empty() {
        s.role_gets += 1;
        return match &s.role {
            Some(r) => Response::new(200, r.clone()),
            None => Response::new(404, "<?xml version=\"1.0\"?><html>404 - Not Found</html>"),
        };
    }
    s.creds_gets += 1;
    if s.role.as_deref() != Some(rest) {
        return Response::new(404, "");
    }
    let delay = s.creds_delay;
    let body = if s.answers.len() > 1 {
        s.answers.pop_front().unwrap_or_default()
    } else {
        s.answers.front().cloned().unwrap_or_default()
    };
    drop(s);
    std::thread::sleep(delay);
    Response::new(200, body)
}

/// Records every request and answers 200 with `body` (or 404 for GETs when `body` is empty).
pub struct Recorder {
    pub url: String,
    pub requests: Arc<Mutex<Vec<Request>>>,
    _server: Server,
}

impl Recorder {
    pub fn start(body: &'static str) -> Recorder {
        let requests = Arc::new(Mutex::new(Vec::new()));
        let r2 = requests.clone();
        let server = Server::start(move |req| {
            let method = req.method.clone();
            r2.lock().unwrap_or_else(|p| p.into_inner()).push(Request {
                method: req.method.clone(),
                path: req.path.clone(),
                headers: req.headers.clone(),
                body: req.body.clone(),
            });
            if body.is_empty() && method == "GET" {
                Response::new(404, "<Error><Code>NoSuchKey</Code></Error>")
            } else {
                Response::new(200, body)
            }
        });
        Recorder {
            url: format!("{}/", server.url),
            requests,
            _server: server,
        }
    }

    /// (access key id from `Authorization`, `x-amz-security-token`) of each request so far.
    pub fn signers(&self) -> Vec<(String, String)> {
        self.requests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|r| {
                let auth = r.header("authorization").unwrap_or("");
                let key = auth
                    .split("Credential=")
                    .nth(1)
                    .and_then(|x| x.split('/').next())
                    .unwrap_or("")
                    .to_string();
                let tok = r.header("x-amz-security-token").unwrap_or("").to_string();
                (key, tok)
            })
            .collect()
    }
}
