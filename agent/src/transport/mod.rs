//! The only IO of the protocol: connecting to the controller and moving bytes between the
//! socket and the sans-IO [`crate::remoting::Channel`].

pub mod jnlp4;
pub mod net;
pub mod ws;

use std::fmt;
use std::future::Future;
use std::time::Duration;

/// The agent secret: never printed, never logged.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(s: String) -> Self {
        Secret(s)
    }

    /// The secret itself, for the one header that carries it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// Why a connection attempt or a connection failed.
#[derive(Debug)]
pub enum ConnectError {
    /// The controller refused the credentials (wrong secret, unknown node): retrying will not
    /// help unless asked to.
    Refused(String),
    /// Anything else (network, protocol): retry with backoff.
    Failed(String),
}

impl fmt::Display for ConnectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConnectError::Refused(m) => write!(f, "the controller refused the agent: {m}"),
            ConnectError::Failed(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for ConnectError {}

/// Runs one step of connecting, bounded by `limit`: a controller (or a load balancer in
/// front of it) that accepts and never answers fails the step with a message naming the
/// step and the address, instead of hanging.
pub async fn step<T>(
    what: &str,
    addr: &str,
    limit: Duration,
    fut: impl Future<Output = Result<T, ConnectError>>,
) -> Result<T, ConnectError> {
    match tokio::time::timeout(limit, fut).await {
        Ok(r) => r,
        Err(_) => Err(ConnectError::Failed(format!(
            "{what} {addr}: no answer within {} (--connect-timeout)",
            show_duration(limit)
        ))),
    }
}

/// `1.5s`, `30s`, `30m`: for messages.
pub fn show_duration(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s >= 60.0 && d.as_secs().is_multiple_of(60) && d.subsec_nanos() == 0 {
        format!("{}m", d.as_secs() / 60)
    } else if s.fract() == 0.0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{s:.1}s")
    }
}
