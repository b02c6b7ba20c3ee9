//! `nectr-agent push` and `nectr-agent fetch`: build artifacts to and from S3.
//!
//! This crate is the only place in the agent that links the AWS SDK. The `nectr-agent`
//! binary never loads it: `nectr-agent push …` executes the sibling binary
//! `nectr-agent-push` (this crate's), so the agent's own memory, size and build stay as they
//! are until a build step pushes something.
//!
//! Layers, from pure to IO:
//! - [`keys`]: key templates (`{JOB_NAME}/{BUILD_NUMBER}/{path}`) and the files a list of
//!   patterns names; [`layout`]: how a file is cut into parts; [`url`]: the object's URLs;
//! - [`digest`]: one read of a file for its SHA-256 and each part's SHA-256 and MD5;
//! - [`journal`]: the multipart uploads this machine started and has not finished;
//! - [`aws`]: the SDK client (standard credential chain, path-style when needed, retries)
//!   and readable errors;
//! - [`push`], [`fetch`]: the two commands; [`progress`]: a bar on a terminal, plain lines
//!   in a build log; [`manifest`]: the JSON record of what went where.

pub mod aws;
pub mod cli;
pub mod digest;
pub mod fetch;
pub mod journal;
pub mod keys;
pub mod layout;
pub mod manifest;
pub mod progress;
pub mod push;
pub mod url;

/// How a command failed: the exit status and one message.
#[derive(Debug)]
pub enum Failure {
    /// Bad usage: an option, a pattern that matches nothing, a template variable that is not
    /// set. Nothing was sent. Exit status 2.
    Usage(String),
    /// Everything else (credentials, bucket, network, a file that failed). Exit status 1.
    Failed(String),
}

impl Failure {
    /// The process exit status for this failure.
    pub fn exit_code(&self) -> u8 {
        match self {
            Failure::Usage(_) => 2,
            Failure::Failed(_) => 1,
        }
    }

    /// The message.
    pub fn message(&self) -> &str {
        match self {
            Failure::Usage(m) | Failure::Failed(m) => m,
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.message())
    }
}
