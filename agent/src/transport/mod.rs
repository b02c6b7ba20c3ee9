//! The only IO of the protocol: connecting to the controller and moving bytes between the
//! socket and the sans-IO [`crate::remoting::Channel`].

pub mod jnlp4;
pub mod net;
pub mod ws;

use std::fmt;

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
