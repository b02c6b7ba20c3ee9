//! Blocking Jenkins REST client: API token sent pre-emptively as Basic auth (no crumb needed),
//! `Accept-Language: en`, redirects not followed (writes answer 302), every read `tree=`
//! filtered.

use super::{
    parse_computer, parse_computers, parse_jnlp_secret, parse_queue, Computer, QueueItem,
    COMPUTER_TREE, ONE_COMPUTER_TREE, QUEUE_TREE,
};
use crate::secret::Secret;
use crate::util::pct_encode;
use base64::Engine;
use std::fmt;
use std::time::Duration;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JenkinsError {
    /// An HTTP status Jenkins answered with; `detail` is its `X-Error` header or a short body.
    Status {
        what: String,
        status: u16,
        detail: String,
    },
    /// Connection refused, timeout, TLS, DNS.
    Transport { what: String, detail: String },
    /// The answer did not have the expected shape.
    Parse { what: String, detail: String },
}

impl JenkinsError {
    pub fn status(&self) -> Option<u16> {
        match self {
            JenkinsError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Did Jenkins perhaps carry out the request although it failed? A transport failure
    /// (timeout, connection dropped) or a 5xx says nothing: the request may have been applied,
    /// or may still be (a Jenkins too slow to answer in time can act after the client gave
    /// up). A 4xx is an answer that it was not.
    pub fn outcome_unknown(&self) -> bool {
        match self {
            JenkinsError::Status { status, .. } => *status >= 500,
            JenkinsError::Transport { .. } => true,
            JenkinsError::Parse { .. } => false,
        }
    }

    /// A short label for metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            JenkinsError::Status { status, .. } if *status == 401 || *status == 403 => "auth",
            JenkinsError::Status { status, .. } if *status >= 500 => "server",
            JenkinsError::Status { .. } => "status",
            JenkinsError::Transport { .. } => "transport",
            JenkinsError::Parse { .. } => "parse",
        }
    }
}

impl fmt::Display for JenkinsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JenkinsError::Status {
                what,
                status,
                detail,
            } => {
                write!(f, "Jenkins {what}: HTTP {status}")?;
                if !detail.is_empty() {
                    write!(f, " ({detail})")?;
                }
                match status {
                    401 => write!(
                        f,
                        "; check jenkins.user and the API token in jenkins.token_file"
                    ),
                    403 => write!(
                        f,
                        "; the user lacks a permission (see fleet/README.md, Jenkins permissions)"
                    ),
                    _ => Ok(()),
                }
            }
            JenkinsError::Transport { what, detail } => {
                write!(f, "Jenkins {what}: cannot reach Jenkins ({detail}); check jenkins.url and the network")
            }
            JenkinsError::Parse { what, detail } => write!(f, "Jenkins {what}: {detail}"),
        }
    }
}

impl std::error::Error for JenkinsError {}

/// What the reconcile loop needs from Jenkins. [`JenkinsClient`] implements it over the REST
/// API; the soak test implements it with an in-process Jenkins in virtual time.
/// Implementations must be safe to call from several threads (launches run in parallel).
pub trait JenkinsApi: Send + Sync {
    /// Demand: the waiting items.
    fn queue(&self) -> Result<Vec<QueueItem>, JenkinsError>;
    /// Supply: every computer.
    fn computers(&self) -> Result<Vec<Computer>, JenkinsError>;
    /// One node; `Ok(None)` if it does not exist.
    fn computer(&self, name: &str) -> Result<Option<Computer>, JenkinsError>;
    /// Create an inbound node; "already exists" counts as success.
    fn create_node(&self, spec: &NodeSpec) -> Result<(), JenkinsError>;
    fn agent_secret(&self, name: &str) -> Result<Secret, JenkinsError>;
    /// Fence: temporarily offline with `message` (idempotent).
    fn drain(&self, name: &str, message: &str) -> Result<(), JenkinsError>;
    /// Lift the fence (not idempotent: only after seeing the node fenced by us).
    fn undrain(&self, name: &str) -> Result<(), JenkinsError>;
    /// Delete; a node that is already gone counts as success.
    fn delete_node(&self, name: &str) -> Result<(), JenkinsError>;
    fn set_description(&self, name: &str, description: &str) -> Result<(), JenkinsError>;
    /// What each node was running at the last [`JenkinsApi::computers`] read (build display
    /// names by node), for the status page. Implementations without it show none.
    fn current_builds(&self) -> std::collections::BTreeMap<String, Vec<String>> {
        Default::default()
    }
    /// The controller's `X-Jenkins-Session` of the last answer that carried one (every read of
    /// a poll does): a random value Jenkins picks at each start, so a new one means the
    /// controller restarted.
    /// Implementations without it never report a restart.
    fn session(&self) -> Option<String> {
        None
    }
}

/// Description of a node to create.
#[derive(Clone, Debug)]
pub struct NodeSpec {
    pub name: String,
    pub description: String,
    pub executors: u32,
    pub labels: Vec<String>,
    pub remote_fs: String,
}

pub struct JenkinsClient {
    base: String,
    auth: Secret,
    token: Secret,
    agent: ureq::Agent,
    builds: std::sync::Mutex<std::collections::BTreeMap<String, Vec<String>>>,
    /// `X-Jenkins-Session` of the last answer that carried one.
    session: std::sync::Mutex<Option<String>>,
}

impl fmt::Debug for JenkinsClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JenkinsClient")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

/// `URL (no query): cause chain, each cause once` for a request that got no answer.
fn transport_detail(t: &ureq::Transport, url: &str) -> String {
    let mut messages = vec![t.kind().to_string()];
    messages.extend(t.message().map(str::to_string));
    if let Some(src) = std::error::Error::source(t) {
        messages.extend(crate::util::error_messages(src));
    }
    format!(
        "{}: {}",
        crate::util::strip_query(url),
        crate::util::cause_chain(messages)
    )
}

enum Body<'a> {
    None,
    Form(&'a [(&'a str, &'a str)]),
}

impl JenkinsClient {
    /// `base` must end with `/`.
    pub fn new(base: &str, user: &str, token: Secret, timeout_ms: u64) -> Self {
        let raw = format!("{user}:{}", token.expose());
        let auth = Secret::new(format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(raw)
        ));
        let agent = ureq::AgentBuilder::new()
            .timeout(Duration::from_millis(timeout_ms))
            .redirects(0)
            .build();
        JenkinsClient {
            base: base.to_string(),
            auth,
            token,
            agent,
            builds: Default::default(),
            session: Default::default(),
        }
    }

    /// Like [`JenkinsClient::new`], also trusting the CA certificates of `ca_file` (PEM).
    pub fn with_ca(
        base: &str,
        user: &str,
        token: Secret,
        timeout_ms: u64,
        ca_file: Option<&std::path::Path>,
    ) -> Result<Self, String> {
        let mut c = Self::new(base, user, token, timeout_ms);
        c.agent =
            crate::tls::agent(timeout_ms, ca_file).map_err(|e| format!("jenkins.ca_file: {e}"))?;
        Ok(c)
    }

    pub fn base_url(&self) -> &str {
        &self.base
    }

    fn request(
        &self,
        method: &str,
        path: &str,
        what: &str,
        body: Body<'_>,
    ) -> Result<(u16, String), JenkinsError> {
        let url = format!("{}{}", self.base, path);
        let req = self
            .agent
            .request(method, &url)
            .set("Authorization", self.auth.expose())
            .set("Accept-Language", "en")
            .set("Accept", "application/json, text/xml;q=0.9, */*;q=0.5");
        let result = match body {
            Body::None => req.call(),
            Body::Form(pairs) => req.send_form(pairs),
        };
        let redact = |s: String| crate::secret::redact(&s, &[&self.token, &self.auth]);
        match result {
            Ok(resp) => {
                let status = resp.status();
                if let Some(s) = resp.header("X-Jenkins-Session") {
                    *self.session.lock().unwrap_or_else(|p| p.into_inner()) = Some(s.to_string());
                }
                let text = resp.into_string().map_err(|e| JenkinsError::Transport {
                    what: what.to_string(),
                    detail: redact(format!(
                        "{}: reading the answer: {}",
                        crate::util::strip_query(&url),
                        crate::util::cause_chain(crate::util::error_messages(&e))
                    )),
                })?;
                Ok((status, text))
            }
            Err(ureq::Error::Status(status, resp)) if (300..400).contains(&status) => {
                drop(resp);
                Ok((status, String::new()))
            }
            Err(ureq::Error::Status(status, resp)) => {
                let x_error = resp.header("X-Error").map(str::to_string);
                let body = resp.into_string().unwrap_or_default();
                let detail = x_error.unwrap_or_else(|| {
                    let one_line: String =
                        body.chars().filter(|c| !c.is_control()).take(200).collect();
                    if one_line.trim_start().starts_with('<') {
                        String::new()
                    } else {
                        one_line
                    }
                });
                Err(JenkinsError::Status {
                    what: what.to_string(),
                    status,
                    detail: redact(detail),
                })
            }
            Err(ureq::Error::Transport(t)) => Err(JenkinsError::Transport {
                what: what.to_string(),
                detail: redact(transport_detail(&t, &url)),
            }),
        }
    }

    fn get(&self, path: &str, what: &str) -> Result<String, JenkinsError> {
        self.request("GET", path, what, Body::None).map(|(_, b)| b)
    }

    fn post(&self, path: &str, what: &str, form: &[(&str, &str)]) -> Result<u16, JenkinsError> {
        self.request("POST", path, what, Body::Form(form))
            .map(|(s, _)| s)
    }
}

impl JenkinsApi for JenkinsClient {
    /// Demand: one request.
    fn queue(&self) -> Result<Vec<QueueItem>, JenkinsError> {
        let what = "queue read";
        let body = self.get(
            &format!("queue/api/json?tree={}", pct_encode(QUEUE_TREE)),
            what,
        )?;
        parse_queue(&body).map_err(|detail| JenkinsError::Parse {
            what: what.into(),
            detail,
        })
    }

    /// Supply: one request.
    fn computers(&self) -> Result<Vec<Computer>, JenkinsError> {
        let what = "computer list read";
        let body = self.get(
            &format!("computer/api/json?tree={}", pct_encode(COMPUTER_TREE)),
            what,
        )?;
        *self.builds.lock().unwrap_or_else(|p| p.into_inner()) = super::parse_current_builds(&body);
        parse_computers(&body).map_err(|detail| JenkinsError::Parse {
            what: what.into(),
            detail,
        })
    }

    fn session(&self) -> Option<String> {
        self.session
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn current_builds(&self) -> std::collections::BTreeMap<String, Vec<String>> {
        self.builds
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// One node; `Ok(None)` if Jenkins answers 404.
    fn computer(&self, name: &str) -> Result<Option<Computer>, JenkinsError> {
        let what = format!("read of node {name}");
        let path = format!(
            "computer/{}/api/json?tree={}",
            pct_encode(name),
            pct_encode(ONE_COMPUTER_TREE)
        );
        match self.get(&path, &what) {
            Ok(body) => parse_computer(&body)
                .map(Some)
                .map_err(|detail| JenkinsError::Parse { what, detail }),
            Err(e) if e.status() == Some(404) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `POST /computer/doCreateItem` (every Jenkins version): a permanent inbound node with
    /// a WebSocket launcher, EXCLUSIVE mode, `Always` retention. An "already exists" answer
    /// counts as success (the create is retried after a crash).
    fn create_node(&self, spec: &NodeSpec) -> Result<(), JenkinsError> {
        let json = serde_json::json!({
            "name": spec.name,
            "nodeDescription": spec.description,
            "numExecutors": spec.executors,
            "remoteFS": spec.remote_fs,
            "labelString": spec.labels.join(" "),
            "mode": "EXCLUSIVE",
            "launcher": {
                "$class": "hudson.slaves.JNLPLauncher",
                "webSocket": true,
                "tunnel": "",
                "vmargs": "",
                "workDirSettings": {"disabled": false, "workDirPath": "", "internalDir": "remoting", "failIfWorkDirIsMissing": false}
            },
            "retentionStrategy": {"$class": "hudson.slaves.RetentionStrategy$Always"},
            "nodeProperties": {"stapler-class-bag": "true"}
        })
        .to_string();
        let what = format!("create of node {}", spec.name);
        let form = [
            ("name", spec.name.as_str()),
            ("type", "hudson.slaves.DumbSlave"),
            ("json", json.as_str()),
        ];
        match self.post("computer/doCreateItem", &what, &form) {
            Ok(_) => Ok(()),
            Err(JenkinsError::Status {
                status: 400,
                detail,
                ..
            }) if detail.contains("already exists") => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// The agent secret from `slave-agent.jnlp`.
    fn agent_secret(&self, name: &str) -> Result<Secret, JenkinsError> {
        let what = format!("secret read of node {name}");
        let body = self.get(
            &format!("computer/{}/slave-agent.jnlp", pct_encode(name)),
            &what,
        )?;
        parse_jnlp_secret(&body, name)
            .map(Secret::new)
            .map_err(|detail| JenkinsError::Parse { what, detail })
    }

    /// Fence: `changeOfflineCause` (idempotent) with nectr's message.
    fn drain(&self, name: &str, message: &str) -> Result<(), JenkinsError> {
        let what = format!("drain of node {name}");
        let path = format!(
            "computer/{}/changeOfflineCause?offlineMessage={}",
            pct_encode(name),
            pct_encode(message)
        );
        self.post(&path, &what, &[("offlineMessage", message)])
            .map(|_| ())
    }

    /// Lift the fence with `toggleOffline`. The caller must have just seen the node
    /// temporarily offline with nectr's own reason (toggle is not idempotent).
    fn undrain(&self, name: &str) -> Result<(), JenkinsError> {
        let what = format!("undrain of node {name}");
        self.post(
            &format!("computer/{}/toggleOffline", pct_encode(name)),
            &what,
            &[],
        )
        .map(|_| ())
    }

    /// `doDelete`; a 404 means it is already gone.
    fn delete_node(&self, name: &str) -> Result<(), JenkinsError> {
        let what = format!("delete of node {name}");
        match self.post(
            &format!("computer/{}/doDelete", pct_encode(name)),
            &what,
            &[],
        ) {
            Ok(_) => Ok(()),
            Err(e) if e.status() == Some(404) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Replace the description (`submitDescription`, Jenkins 2.385+). Best effort: the node
    /// is matched to its instance by EC2 tags anyway.
    fn set_description(&self, name: &str, description: &str) -> Result<(), JenkinsError> {
        let what = format!("description update of node {name}");
        self.post(
            &format!("computer/{}/submitDescription", pct_encode(name)),
            &what,
            &[("description", description)],
        )
        .map(|_| ())
    }
}
