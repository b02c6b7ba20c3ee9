//! A scripted fake Jenkins controller: serves the REST endpoints nectr-fleet uses, records
//! every call, and lets a test inject failures and state changes: every GET failing or
//! hanging ([`Failure`]), and per-request faults ([`JenkinsFaults`]): a slow
//! `changeOfflineCause` (applied only at the end of its delay), slow answers, 500s before
//! applying, and answers lost after applying (the connection closes without a response).
//! It records when each fence took effect and every delete, so a test can check that no
//! node was deleted busy or sooner than the settle interval after its fence.

use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Clone, Debug, Default)]
pub struct FakeNode {
    pub description: String,
    pub executors: Vec<bool>, // true = idle
    pub labels: Vec<String>,
    pub connected: bool,
    pub temporarily_offline: bool,
    pub reason: String,
    /// When the node last went temporarily offline (ms since the epoch).
    pub fenced_since_ms: Option<u64>,
    /// Executor index → (job full name, build number) it runs, while that executor is busy
    /// (shown as `currentExecutable` with `url` and `fullDisplayName`, as Jenkins does).
    /// A busy executor without an entry shows a made-up build.
    pub running: BTreeMap<usize, (String, u64)>,
}

impl FakeNode {
    pub fn busy(&self) -> bool {
        self.executors.iter().any(|idle| !idle)
    }
}

/// A `doDelete` that Jenkins carried out.
#[derive(Clone, Debug)]
pub struct Deleted {
    pub name: String,
    pub at_ms: u64,
    /// A build was running on it: a busy kill.
    pub busy: bool,
    pub connected: bool,
    pub fenced_since_ms: Option<u64>,
}

/// Per-request faults, drawn from a seeded generator.
#[derive(Clone, Debug, Default)]
pub struct JenkinsFaults {
    /// `changeOfflineCause` sleeps this long, then applies the fence, then answers.
    pub drain_delay_ms: u64,
    /// Percent of `changeOfflineCause` requests that sleep `slow_drain_ms` before applying.
    pub slow_drain_percent: u64,
    pub slow_drain_ms: u64,
    /// `kill -9` of the service at the next POST whose path ends with this: before Jenkins
    /// applies it (`false`) or after (`true`). The service's process is dead from then on:
    /// see [`FakeJenkins::dead`].
    pub die_at: Option<(String, bool)>,
    /// Percent of requests answered only after `slow_ms`.
    pub slow_percent: u64,
    pub slow_ms: u64,
    /// Percent of requests answered 500 without being applied.
    pub error_percent: u64,
    /// Percent of POSTs applied whose answer is lost (connection closed, no response).
    pub lose_percent: u64,
    pub seed: u64,
    /// Counts of injected faults: (slow, errors, lost answers).
    pub injected: (u64, u64, u64),
}

impl JenkinsFaults {
    fn roll(&mut self, percent: u64) -> bool {
        if percent == 0 {
            return false;
        }
        // xorshift64*
        let mut x = self.seed | 1;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.seed = x;
        (x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 33) % 100 < percent
    }
}

#[derive(Clone, Debug)]
pub struct Call {
    pub method: String,
    pub path: String,
    pub query: String,
    pub body: String,
    pub accept_language: Option<String>,
    pub authorized: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure {
    None,
    /// Every GET answers 500.
    Status500,
    /// Every GET hangs longer than the client timeout.
    Hang,
}

pub type Hook = Box<dyn FnMut(&mut State, &Call) + Send>;

pub struct State {
    pub nodes: BTreeMap<String, FakeNode>,
    pub queue: Vec<Value>,
    pub calls: Vec<Call>,
    pub failure: Failure,
    /// Runs on every request before Jenkins handles it.
    pub hook: Option<Hook>,
    /// Runs on every request right after Jenkins handled it (and before it answers).
    pub after_hook: Option<Hook>,
    pub faults: JenkinsFaults,
    pub deletes: Vec<Deleted>,
    /// Sent as `X-Jenkins-Session` on every answer (as Jenkins does; a new value per start).
    pub session: Option<String>,
}

#[derive(Clone)]
pub struct FakeJenkins {
    pub url: String,
    pub state: Arc<Mutex<State>>,
    /// Set when the service under test was killed (`die_at`, or by the EC2 fault layer that
    /// shares this flag): every request is then dropped unanswered and unapplied, as nothing
    /// more comes from a dead process. Clear it when a new service starts.
    pub dead: Arc<AtomicBool>,
}

pub fn secret_of(name: &str) -> String {
    nectr_fleet::util::sha256_hex(format!("secret:{name}").as_bytes())
}

fn pct_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                let h = std::str::from_utf8(&b[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                match h {
                    Some(v) => {
                        out.push(v);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

pub fn form(s: &str) -> BTreeMap<String, String> {
    s.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (pct_decode(k), pct_decode(v))
        })
        .collect()
}

impl FakeJenkins {
    pub fn start() -> FakeJenkins {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind fake jenkins");
        let url = format!("http://{}/", listener.local_addr().expect("addr"));
        let state = Arc::new(Mutex::new(State {
            nodes: BTreeMap::new(),
            queue: Vec::new(),
            calls: Vec::new(),
            failure: Failure::None,
            hook: None,
            after_hook: None,
            faults: JenkinsFaults::default(),
            deletes: Vec::new(),
            session: None,
        }));
        let st = state.clone();
        let dead = Arc::new(AtomicBool::new(false));
        let d = dead.clone();
        std::thread::spawn(move || {
            for s in listener.incoming().flatten() {
                let st = st.clone();
                let d = d.clone();
                std::thread::spawn(move || handle(s, &st, &d));
            }
        });
        FakeJenkins { url, state, dead }
    }

    pub fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn set_queue_waiting(&self, n: usize, label: &str) {
        let mut s = self.lock();
        s.queue = (0..n)
            .map(|i| {
                json!({"_class":"hudson.model.Queue$BuildableItem","id": 1000 + i,"inQueueSince": 0,
                       "buildableStartMilliseconds": nectr_fleet::util::now_ms(),"blocked":false,"buildable":true,"pending":false,"stuck":false,
                       "why": format!("Waiting for next available executor on \u{2018}{label}\u{2019}"),
                       "task":{"_class":"org.jenkinsci.plugins.workflow.support.steps.ExecutorStepExecution$PlaceholderTask","name": format!("part of app #{i}")}})
            })
            .collect();
    }

    pub fn calls(&self) -> Vec<Call> {
        self.lock().calls.clone()
    }

    pub fn count(&self, method: &str, path_contains: &str) -> usize {
        self.lock()
            .calls
            .iter()
            .filter(|c| c.method == method && c.path.contains(path_contains))
            .count()
    }

    /// Mark every node connected (the agents "booted").
    pub fn connect_all(&self, idle: bool) {
        let mut s = self.lock();
        for n in s.nodes.values_mut() {
            n.connected = true;
            for e in n.executors.iter_mut() {
                *e = idle;
            }
        }
    }
}

fn computer_json(name: &str, n: &FakeNode) -> Value {
    let idle = n.executors.iter().all(|e| *e);
    json!({
        "_class": "hudson.slaves.SlaveComputer",
        "displayName": name,
        "description": n.description,
        "numExecutors": n.executors.len(),
        "offline": !n.connected || n.temporarily_offline,
        "temporarilyOffline": n.temporarily_offline,
        "offlineCauseReason": n.reason,
        "idle": idle,
        "absoluteRemotePath": if n.connected { Value::from("/home/jenkins/agent") } else { Value::Null },
        "assignedLabels": n.labels.iter().map(|l| json!({"name": l})).chain(std::iter::once(json!({"name": name}))).collect::<Vec<_>>(),
        // As Jenkins: a busy executor names its build (user data: the page must escape it).
        "executors": n.executors.iter().enumerate().map(|(i, e)| json!({
            "idle": e,
            "currentExecutable": match (e, n.running.get(&i)) {
                (true, _) => Value::Null,
                (false, Some((job, number))) => json!({
                    "url": format!(
                        "http://127.0.0.1/{}{number}/",
                        job.split('/').map(|p| format!("job/{}/", p.replace(' ', "%20"))).collect::<String>()
                    ),
                    "fullDisplayName": format!("{} #{number}", job.replace('/', " \u{bb} ")),
                }),
                (false, None) => json!({"fullDisplayName": format!("job <{name}> #{}", i + 1)}),
            },
        })).collect::<Vec<_>>(),
        "oneOffExecutors": [],
    })
}

fn handle(stream: TcpStream, st: &Mutex<State>, dead: &AtomicBool) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let mut reader = BufReader::new(match stream.try_clone() {
        Ok(s) => s,
        Err(_) => return,
    });
    let mut line = String::new();
    if reader.read_line(&mut line).is_err() || line.is_empty() {
        return;
    }
    let mut len = 0usize;
    let mut lang = None;
    let mut authorized = false;
    loop {
        let mut h = String::new();
        match reader.read_line(&mut h) {
            Ok(0) | Err(_) => break,
            _ => {}
        }
        let h = h.trim_end().to_string();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            let k = k.trim().to_ascii_lowercase();
            let v = v.trim();
            match k.as_str() {
                "content-length" => len = v.parse().unwrap_or(0),
                "accept-language" => lang = Some(v.to_string()),
                "authorization" => authorized = v.starts_with("Basic "),
                _ => {}
            }
        }
    }
    let mut body = vec![0u8; len];
    if len > 0 && reader.read_exact(&mut body).is_err() {
        return;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or("").to_string();
    let target = parts.next().unwrap_or("").to_string();
    let (path, query) = target
        .split_once('?')
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .unwrap_or((target.clone(), String::new()));
    let call = Call {
        method: method.clone(),
        path: pct_decode(&path),
        query,
        body: String::from_utf8_lossy(&body).into_owned(),
        accept_language: lang,
        authorized,
    };
    enum Fault {
        None,
        Slow(u64),
        Error,
        Lose,
    }
    if dead.load(Ordering::SeqCst) {
        let _ = stream.shutdown(std::net::Shutdown::Both);
        return;
    }
    let mut die_after = false;
    let fault = {
        let mut s = st.lock().unwrap_or_else(|p| p.into_inner());
        let die = match &s.faults.die_at {
            Some((suffix, after)) if method == "POST" && call.path.ends_with(suffix.as_str()) => {
                Some(*after)
            }
            _ => None,
        };
        if let Some(after) = die {
            s.faults.die_at = None;
            if !after {
                dead.store(true, Ordering::SeqCst);
                drop(s);
                let _ = stream.shutdown(std::net::Shutdown::Both);
                return;
            }
            die_after = true;
        }
        s.calls.push(call.clone());
        if let Some(mut hook) = s.hook.take() {
            hook(&mut s, &call);
            if s.hook.is_none() {
                s.hook = Some(hook);
            }
        }
        let failure = s.failure;
        if method == "GET" && failure == Failure::Hang {
            drop(s);
            std::thread::sleep(Duration::from_secs(4));
            return;
        }
        let f = &mut s.faults;
        let drain = call.path.ends_with("/changeOfflineCause");
        if die_after {
            Fault::None
        } else if drain && f.drain_delay_ms > 0 {
            Fault::Slow(f.drain_delay_ms)
        } else if drain && f.roll(f.slow_drain_percent) {
            f.injected.0 += 1;
            Fault::Slow(f.slow_drain_ms)
        } else if f.roll(f.error_percent) {
            f.injected.1 += 1;
            Fault::Error
        } else if method == "POST" && f.roll(f.lose_percent) {
            f.injected.2 += 1;
            Fault::Lose
        } else if f.roll(f.slow_percent) {
            f.injected.0 += 1;
            Fault::Slow(f.slow_ms)
        } else {
            Fault::None
        }
    };
    if let Fault::Slow(ms) = fault {
        std::thread::sleep(Duration::from_millis(ms));
    }
    let (status, ctype, out, session) = {
        let mut s = st.lock().unwrap_or_else(|p| p.into_inner());
        let session = s.session.clone();
        let (status, ctype, out) = if matches!(fault, Fault::Error) {
            (500, "text/html", "<html>Injected error</html>".to_string())
        } else if method == "GET" && s.failure == Failure::Status500 {
            (500, "text/html", "<html>Oops</html>".to_string())
        } else if !authorized {
            (403, "text/plain", "anonymous".to_string())
        } else {
            let r = route(&mut s, &call);
            if let Some(mut hook) = s.after_hook.take() {
                hook(&mut s, &call);
                if s.after_hook.is_none() {
                    s.after_hook = Some(hook);
                }
            }
            r
        };
        (status, ctype, out, session)
    };
    if die_after {
        dead.store(true, Ordering::SeqCst);
    }
    if matches!(fault, Fault::Lose) || die_after {
        // Applied, but the answer never arrives.
        let _ = stream.shutdown(std::net::Shutdown::Both);
        return;
    }
    let mut w = stream;
    let reason = match status {
        200 => "OK",
        302 => "Found",
        400 => "Bad Request",
        404 => "Not Found",
        _ => "Error",
    };
    let mut extra = if status == 302 {
        "Location: ./\r\n".to_string()
    } else {
        String::new()
    };
    if let Some(session) = session {
        extra.push_str(&format!("X-Jenkins-Session: {session}\r\n"));
    }
    let _ = write!(w, "HTTP/1.1 {status} {reason}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\n{extra}Connection: close\r\n\r\n{out}", out.len());
    let _ = w.flush();
}

fn route(s: &mut State, c: &Call) -> (u16, &'static str, String) {
    let p = c.path.trim_end_matches('/');
    let segs: Vec<&str> = p.trim_start_matches('/').split('/').collect();
    match (c.method.as_str(), segs.as_slice()) {
        ("GET", ["queue", "api", "json"]) => (
            200,
            "application/json",
            json!({"_class":"hudson.model.Queue","items": s.queue}).to_string(),
        ),
        ("GET", ["computer", "api", "json"]) => {
            let mut list = vec![
                json!({"_class":"hudson.model.Hudson$MasterComputer","displayName":"Built-In Node","numExecutors":0,"offline":false,"temporarilyOffline":false,"idle":true,"executors":[],"oneOffExecutors":[],"assignedLabels":[{"name":"built-in"}]}),
            ];
            for (name, n) in &s.nodes {
                list.push(computer_json(name, n));
            }
            (
                200,
                "application/json",
                json!({"_class":"hudson.model.ComputerSet","computer": list}).to_string(),
            )
        }
        ("GET", ["computer", name, "api", "json"]) => match s.nodes.get(*name) {
            Some(n) => (200, "application/json", computer_json(name, n).to_string()),
            None => (404, "text/plain", "no such node".into()),
        },
        ("POST", ["computer", "doCreateItem"]) => {
            let f = form(&c.body);
            let name = f.get("name").cloned().unwrap_or_default();
            if s.nodes.contains_key(&name) {
                return (
                    400,
                    "text/plain",
                    format!("Agent called \u{2018}{name}\u{2019} already exists"),
                );
            }
            let j: Value = serde_json::from_str(f.get("json").map(String::as_str).unwrap_or("{}"))
                .unwrap_or(Value::Null);
            let execs = j["numExecutors"].as_u64().unwrap_or(1) as usize;
            s.nodes.insert(
                name,
                FakeNode {
                    description: j["nodeDescription"].as_str().unwrap_or("").to_string(),
                    executors: vec![true; execs],
                    labels: j["labelString"]
                        .as_str()
                        .unwrap_or("")
                        .split_whitespace()
                        .map(str::to_string)
                        .collect(),
                    ..FakeNode::default()
                },
            );
            (302, "text/plain", String::new())
        }
        ("GET", ["computer", name, "slave-agent.jnlp"]) => {
            if !s.nodes.contains_key(*name) {
                return (404, "text/plain", "no such node".into());
            }
            (200, "application/x-java-jnlp-file", format!("<jnlp><application-desc><argument>{}</argument><argument>{name}</argument><argument>-webSocket</argument></application-desc></jnlp>", secret_of(name)))
        }
        ("POST", ["computer", name, "changeOfflineCause"]) => {
            let q = form(&c.query);
            match s.nodes.get_mut(*name) {
                Some(n) => {
                    if !n.temporarily_offline {
                        n.fenced_since_ms = Some(nectr_fleet::util::now_ms());
                    }
                    n.temporarily_offline = true;
                    n.reason = q.get("offlineMessage").cloned().unwrap_or_default();
                    (302, "text/plain", String::new())
                }
                None => (404, "text/plain", String::new()),
            }
        }
        ("POST", ["computer", name, "toggleOffline"]) => match s.nodes.get_mut(*name) {
            Some(n) => {
                n.temporarily_offline = !n.temporarily_offline;
                if n.temporarily_offline {
                    n.fenced_since_ms = Some(nectr_fleet::util::now_ms());
                } else {
                    n.reason.clear();
                    n.fenced_since_ms = None;
                }
                (302, "text/plain", String::new())
            }
            None => (404, "text/plain", String::new()),
        },
        ("POST", ["computer", name, "doDelete"]) => match s.nodes.remove(*name) {
            Some(n) => {
                s.deletes.push(Deleted {
                    name: name.to_string(),
                    at_ms: nectr_fleet::util::now_ms(),
                    busy: n.busy(),
                    connected: n.connected,
                    fenced_since_ms: n.fenced_since_ms,
                });
                (302, "text/plain", String::new())
            }
            None => (404, "text/plain", String::new()),
        },
        ("POST", ["computer", name, "submitDescription"]) => {
            let f = form(&c.body);
            match s.nodes.get_mut(*name) {
                Some(n) => {
                    n.description = f.get("description").cloned().unwrap_or_default();
                    (302, "text/plain", String::new())
                }
                None => (404, "text/plain", String::new()),
            }
        }
        _ => (
            404,
            "text/plain",
            format!("fake jenkins: no route for {} {}", c.method, c.path),
        ),
    }
}
