//! A tiny HTTP/1.1 server for `GET /` (the status page), `GET /metrics`, `GET /status` and
//! `GET /healthz`, on std threads (see ARCHITECTURE.md for why not hyper/axum).

use crate::metrics::Metrics;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What the server shows; written by the reconcile loop.
pub struct Shared {
    pub metrics: Metrics,
    pub status: Mutex<serde_json::Value>,
    /// When this process started, and when a poll last observed Jenkins and the cloud.
    started: Instant,
    last_ok_poll: Mutex<Option<Instant>>,
    /// `/healthz` fails once the last successful poll is older than this.
    stale_after: Mutex<Duration>,
}

impl Default for Shared {
    fn default() -> Self {
        Shared {
            metrics: Metrics::default(),
            status: Mutex::new(serde_json::Value::Null),
            started: Instant::now(),
            last_ok_poll: Mutex::new(None),
            stale_after: Mutex::new(Duration::from_secs(60)),
        }
    }
}

/// The `/healthz` staleness bound for a config: three poll intervals plus the longest a poll
/// can take (both Jenkins reads and the describe at their timeouts).
pub fn staleness_bound(cfg: &crate::config::Config) -> Duration {
    Duration::from_millis(
        3 * cfg.poll_interval_ms + 2 * cfg.jenkins.timeout_ms + cfg.aws.timeout_ms,
    )
}

impl Shared {
    /// A poll observed Jenkins and the cloud.
    pub fn poll_succeeded(&self) {
        *self.last_ok_poll.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now());
    }

    pub fn set_staleness_bound(&self, d: Duration) {
        *self.stale_after.lock().unwrap_or_else(|p| p.into_inner()) = d;
    }

    /// `/healthz`: healthy while the last successful poll is within the staleness bound;
    /// before the first one, during the bound from start ("starting").
    pub fn health(&self) -> (bool, String) {
        let bound = *self.stale_after.lock().unwrap_or_else(|p| p.into_inner());
        let last = *self.last_ok_poll.lock().unwrap_or_else(|p| p.into_inner());
        match last {
            Some(t) if t.elapsed() <= bound => (
                true,
                format!("ok: last successful poll {} ms ago\n", t.elapsed().as_millis()),
            ),
            Some(t) => (
                false,
                format!(
                    "stale: last successful poll {} s ago (bound {} s); see /status for the errors\n",
                    t.elapsed().as_secs(),
                    bound.as_secs()
                ),
            ),
            None if self.started.elapsed() <= bound => {
                (true, "starting: no successful poll yet\n".into())
            }
            None => (
                false,
                format!(
                    "stale: no successful poll in {} s since start; see /status for the errors\n",
                    self.started.elapsed().as_secs()
                ),
            ),
        }
    }

    pub fn set_status(&self, v: serde_json::Value) {
        *self.status.lock().unwrap_or_else(|p| p.into_inner()) = v;
    }

    pub fn status(&self) -> serde_json::Value {
        self.status
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// Bind and serve in a background thread. Returns the bound address.
pub fn serve(addr: SocketAddr, shared: Arc<Shared>) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind(addr)?;
    let local = listener.local_addr()?;
    std::thread::Builder::new()
        .name("nectr-fleet-http".into())
        .spawn(move || {
            for stream in listener.incoming().flatten() {
                let s = shared.clone();
                // One short-lived thread per connection; requests are tiny.
                let _ = std::thread::Builder::new().spawn(move || handle(stream, &s));
            }
        })?;
    Ok(local)
}

fn handle(stream: TcpStream, shared: &Shared) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let _ = stream.set_write_timeout(Some(Duration::from_secs(5)));
    let mut reader = BufReader::new(match stream.try_clone() {
        Ok(s) => s,
        Err(_) => return,
    });
    let mut line = String::new();
    if reader.read_line(&mut line).is_err() {
        return;
    }
    // Drain headers.
    loop {
        let mut h = String::new();
        match reader.read_line(&mut h) {
            Ok(0) | Err(_) => break,
            Ok(_) if h == "\r\n" || h == "\n" => break,
            Ok(_) => {}
        }
    }
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or("");
    let path = parts.next().unwrap_or("");
    let path = path.split('?').next().unwrap_or("");
    let (status, ctype, body) = match (method, path) {
        ("GET", "/metrics") => (
            "200 OK",
            crate::metrics::CONTENT_TYPE,
            shared.metrics.render(),
        ),
        ("GET", "/status") => (
            "200 OK",
            "application/json",
            serde_json::to_string_pretty(&shared.status()).unwrap_or_else(|_| "{}".into()),
        ),
        ("GET", "/") => (
            "200 OK",
            "text/html; charset=utf-8",
            crate::page::render(&shared.status()),
        ),
        ("GET", "/healthz") => match shared.health() {
            (true, text) => ("200 OK", "text/plain", text),
            (false, text) => ("503 Service Unavailable", "text/plain", text),
        },
        ("GET", _) => (
            "404 Not Found",
            "text/plain",
            "not found: try /, /metrics, /status or /healthz\n".into(),
        ),
        _ => ("405 Method Not Allowed", "text/plain", "only GET\n".into()),
    };
    let mut s = stream;
    let _ = write!(
        s,
        "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = s.flush();
}
