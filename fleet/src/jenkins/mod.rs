//! Jenkins: what the fleet reads (queue, computers) and the REST client that reads and
//! writes it. The parsers here are pure; [`client`] does the HTTP.

pub mod client;
pub mod label;
pub mod why;

pub use client::{JenkinsApi, JenkinsClient, JenkinsError};

use serde::Deserialize;
use std::collections::BTreeMap;

/// `tree=` filter of the demand read (one request per poll).
pub const QUEUE_TREE: &str = "items[id,inQueueSince,buildableStartMilliseconds,blocked,buildable,pending,stuck,why,task[name,url,labelExpression]]";
/// `tree=` filter of the supply read (one request per poll).
pub const COMPUTER_TREE: &str = "computer[displayName,description,numExecutors,offline,temporarilyOffline,offlineCauseReason,idle,absoluteRemotePath,assignedLabels[name],executors[idle,currentExecutable[url,fullDisplayName]],oneOffExecutors[idle]]";
/// `tree=` filter of the single-node re-read done by the scale-in fence.
pub const ONE_COMPUTER_TREE: &str = "displayName,description,numExecutors,offline,temporarilyOffline,offlineCauseReason,idle,absoluteRemotePath,assignedLabels[name],executors[idle],oneOffExecutors[idle]";

/// One waiting item of `GET /queue/api/json`.
#[derive(Clone, Debug, PartialEq)]
pub struct QueueItem {
    pub id: u64,
    pub class: String,
    pub why: Option<String>,
    pub buildable: bool,
    pub blocked: bool,
    pub pending: bool,
    pub stuck: bool,
    pub in_queue_since_ms: Option<u64>,
    pub buildable_start_ms: Option<u64>,
    pub task_name: Option<String>,
    /// `task.labelExpression`: only freestyle-like jobs export it (as the user typed it).
    pub task_label: Option<String>,
}

/// One entry of `GET /computer/api/json`.
#[derive(Clone, Debug, PartialEq)]
pub struct Computer {
    pub class: String,
    pub name: String,
    pub description: Option<String>,
    pub num_executors: u32,
    pub offline: bool,
    pub temporarily_offline: bool,
    pub offline_cause_reason: Option<String>,
    /// `idle` of the computer; `None` when Jenkins did not say (treated as busy).
    pub idle: Option<bool>,
    /// The agent channel is up (`absoluteRemotePath` present, or `offline == false`).
    pub connected: bool,
    /// `idle` of each executor; `None` = not reported (treated as busy).
    pub executors: Vec<Option<bool>>,
    /// One-off executors that are busy or of unknown state.
    pub one_off_busy: u32,
    pub labels: Vec<String>,
    /// The build each busy executor runs, when Jenkins names it (`currentExecutable` is null
    /// without Item/Read on the build): for per-job cost attribution.
    pub builds: Vec<RunningBuild>,
}

/// A build on one executor of a computer (`executors[i].currentExecutable`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunningBuild {
    /// The executor's position in the computer's list.
    pub executor: usize,
    /// The build's URL (a Pipeline `node` block's placeholder carries its run's URL).
    pub url: Option<String>,
    pub display_name: String,
    /// The job's full name: `folder/job` from the URL's `job/…` segments, else the display
    /// name without its ` #N`.
    pub job: String,
}

/// The job of a build: `job/a/job/b/12/` → `a/b` (percent-decoded); without a URL, the
/// display name without its trailing ` #N` (`a » b #12` → `a » b`).
pub fn job_of_build(url: Option<&str>, display_name: &str) -> String {
    if let Some(u) = url {
        let path = u
            .split("://")
            .nth(1)
            .map_or(u, |rest| rest.find('/').map_or("", |i| &rest[i..]));
        let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        let mut names = Vec::new();
        let mut i = 0;
        while i + 1 < segs.len() {
            if segs[i] == "job" {
                names.push(crate::util::pct_decode(segs[i + 1]));
                i += 2;
            } else {
                i += 1;
            }
        }
        if !names.is_empty() {
            return names.join("/");
        }
    }
    match display_name.rsplit_once(" #") {
        Some((job, n)) if !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()) => job.to_string(),
        _ => display_name.to_string(),
    }
}

impl Computer {
    pub fn is_builtin(&self) -> bool {
        self.class.contains("MasterComputer")
    }

    /// Every signal Jenkins gives says nothing runs or is assigned here. Anything missing
    /// counts as busy.
    pub fn is_certainly_idle(&self) -> bool {
        self.idle == Some(true)
            && self.one_off_busy == 0
            && self.executors.iter().all(|e| *e == Some(true))
    }

    /// Executors known idle (for netting demand).
    pub fn idle_executors(&self) -> u32 {
        self.executors.iter().filter(|e| **e == Some(true)).count() as u32
    }

    pub fn busy_executors(&self) -> u32 {
        self.executors.len() as u32 - self.idle_executors() + self.one_off_busy
    }
}

#[derive(Deserialize)]
struct RawQueue {
    #[serde(default)]
    items: Vec<RawItem>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawItem {
    #[serde(rename = "_class", default)]
    class: String,
    id: Option<u64>,
    why: Option<String>,
    #[serde(default)]
    buildable: bool,
    #[serde(default)]
    blocked: bool,
    #[serde(default)]
    pending: bool,
    #[serde(default)]
    stuck: bool,
    in_queue_since: Option<u64>,
    buildable_start_milliseconds: Option<u64>,
    task: Option<RawTask>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawTask {
    name: Option<String>,
    label_expression: Option<String>,
}

#[derive(Deserialize)]
struct RawComputers {
    computer: Option<Vec<RawComputer>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawComputer {
    #[serde(rename = "_class", default)]
    class: String,
    display_name: Option<String>,
    description: Option<String>,
    num_executors: Option<u32>,
    offline: Option<bool>,
    temporarily_offline: Option<bool>,
    offline_cause_reason: Option<String>,
    idle: Option<bool>,
    absolute_remote_path: Option<String>,
    #[serde(default)]
    assigned_labels: Vec<RawLabel>,
    #[serde(default)]
    executors: Vec<RawExecutor>,
    #[serde(default)]
    one_off_executors: Vec<RawExecutor>,
}

#[derive(Deserialize)]
struct RawLabel {
    name: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawExecutor {
    idle: Option<bool>,
    #[serde(default)]
    current_executable: Option<RawExecutable>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawExecutable {
    url: Option<String>,
    full_display_name: Option<String>,
}

/// Parse the body of `GET /queue/api/json?tree=...`. Items without an id are skipped.
pub fn parse_queue(body: &str) -> Result<Vec<QueueItem>, String> {
    let raw: RawQueue = serde_json::from_str(body)
        .map_err(|e| format!("queue JSON does not have the expected shape: {e}"))?;
    Ok(raw
        .items
        .into_iter()
        .filter_map(|i| {
            Some(QueueItem {
                id: i.id?,
                class: i.class,
                why: i.why,
                buildable: i.buildable,
                blocked: i.blocked,
                pending: i.pending,
                stuck: i.stuck,
                in_queue_since_ms: i.in_queue_since,
                buildable_start_ms: i.buildable_start_milliseconds,
                task_name: i.task.as_ref().and_then(|t| t.name.clone()),
                task_label: i
                    .task
                    .and_then(|t| t.label_expression)
                    .filter(|l| !l.trim().is_empty()),
            })
        })
        .collect())
}

fn computer_from_raw(c: RawComputer) -> Option<Computer> {
    let name = c.display_name?;
    let offline = c.offline.unwrap_or(true);
    let builds = c
        .executors
        .iter()
        .enumerate()
        .filter_map(|(i, e)| {
            let x = e.current_executable.as_ref()?;
            let display_name = x.full_display_name.clone().or_else(|| x.url.clone())?;
            Some(RunningBuild {
                executor: i,
                job: job_of_build(x.url.as_deref(), &display_name),
                url: x.url.clone(),
                display_name,
            })
        })
        .collect();
    Some(Computer {
        builds,
        connected: c.absolute_remote_path.is_some() || !offline,
        class: c.class,
        name,
        description: c.description,
        num_executors: c.num_executors.unwrap_or(0),
        offline,
        temporarily_offline: c.temporarily_offline.unwrap_or(false),
        offline_cause_reason: c.offline_cause_reason.filter(|r| !r.is_empty()),
        idle: c.idle,
        executors: c.executors.iter().map(|e| e.idle).collect(),
        one_off_busy: c
            .one_off_executors
            .iter()
            .filter(|e| e.idle != Some(true))
            .count() as u32,
        labels: c
            .assigned_labels
            .into_iter()
            .filter_map(|l| l.name)
            .collect(),
    })
}

/// The display names of the builds each computer's executors run, from the body of
/// `GET /computer/api/json` (status page only; unreadable parts are left out).
pub fn parse_current_builds(body: &str) -> std::collections::BTreeMap<String, Vec<String>> {
    let mut out = std::collections::BTreeMap::new();
    let v: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
    for c in v["computer"].as_array().into_iter().flatten() {
        let Some(name) = c["displayName"].as_str() else {
            continue;
        };
        let builds: Vec<String> = c["executors"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|e| e["currentExecutable"]["fullDisplayName"].as_str())
            .map(str::to_string)
            .collect();
        if !builds.is_empty() {
            out.insert(name.to_string(), builds);
        }
    }
    out
}

/// Parse the body of `GET /computer/api/json?tree=...`.
pub fn parse_computers(body: &str) -> Result<Vec<Computer>, String> {
    let raw: RawComputers = serde_json::from_str(body)
        .map_err(|e| format!("computer JSON does not have the expected shape: {e}"))?;
    let list = raw.computer.ok_or(
        "computer JSON has no `computer` array (check the user's Overall/Read permission)",
    )?;
    Ok(list.into_iter().filter_map(computer_from_raw).collect())
}

/// Parse the body of `GET /computer/NAME/api/json?tree=...`.
pub fn parse_computer(body: &str) -> Result<Computer, String> {
    let raw: RawComputer = serde_json::from_str(body)
        .map_err(|e| format!("computer JSON does not have the expected shape: {e}"))?;
    computer_from_raw(raw).ok_or_else(|| "computer JSON has no displayName".to_string())
}

/// The agent secret: the first `application-desc/argument` of `slave-agent.jnlp` (every
/// Jenkins version; the second argument is the node name).
pub fn parse_jnlp_secret(xml: &str, expect_name: &str) -> Result<String, String> {
    use quick_xml::events::Event;
    let mut reader = quick_xml::Reader::from_str(xml);
    let mut in_app = false;
    let mut in_arg = false;
    let mut args: Vec<String> = Vec::new();
    let mut cur = String::new();
    loop {
        match reader.read_event() {
            Ok(Event::Start(e)) => match e.name().as_ref() {
                b"application-desc" => in_app = true,
                b"argument" if in_app => {
                    in_arg = true;
                    cur.clear();
                }
                _ => {}
            },
            Ok(Event::End(e)) => match e.name().as_ref() {
                b"application-desc" => in_app = false,
                b"argument" if in_arg => {
                    in_arg = false;
                    args.push(cur.trim().to_string());
                    if args.len() >= 2 {
                        break;
                    }
                }
                _ => {}
            },
            Ok(Event::Text(t)) if in_arg => {
                let s = t
                    .unescape()
                    .map_err(|e| format!("agent .jnlp has bad text: {e}"))?;
                cur.push_str(&s);
            }
            Ok(Event::Eof) => break,
            Err(e) => return Err(format!("agent .jnlp is not valid XML: {e}")),
            _ => {}
        }
    }
    let secret = args
        .first()
        .filter(|s| !s.is_empty() && !s.contains(char::is_whitespace))
        .ok_or("agent .jnlp has no <application-desc><argument> with the secret")?;
    if let Some(name) = args.get(1) {
        if name != expect_name {
            return Err(format!(
                "agent .jnlp names node `{name}`, expected `{expect_name}`"
            ));
        }
    }
    Ok(secret.clone())
}

/// Metadata nectr keeps in a node's description:
/// `nectr-fleet:v1 fleet=ID pool=P token=T instance=i-... created=MS`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeTag {
    pub fleet: String,
    pub pool: String,
    pub token: String,
    /// `None` until the instance is launched.
    pub instance: Option<String>,
    pub created_ms: u64,
}

pub const NODE_TAG_PREFIX: &str = "nectr-fleet:v1";

impl NodeTag {
    pub fn render(&self) -> String {
        format!(
            "{NODE_TAG_PREFIX} fleet={} pool={} token={} instance={} created={}",
            self.fleet,
            self.pool,
            self.token,
            self.instance.as_deref().unwrap_or("pending"),
            self.created_ms
        )
    }

    pub fn parse(desc: &str) -> Option<NodeTag> {
        let rest = desc.trim().strip_prefix(NODE_TAG_PREFIX)?;
        let mut kv: BTreeMap<&str, &str> = BTreeMap::new();
        for part in rest.split_whitespace() {
            if let Some((k, v)) = part.split_once('=') {
                kv.insert(k, v);
            }
        }
        Some(NodeTag {
            fleet: kv.get("fleet")?.to_string(),
            pool: kv.get("pool")?.to_string(),
            token: kv.get("token")?.to_string(),
            instance: kv
                .get("instance")
                .filter(|v| v.starts_with("i-"))
                .map(|v| v.to_string()),
            created_ms: kv.get("created").and_then(|v| v.parse().ok()).unwrap_or(0),
        })
    }
}

/// The offline message nectr sets when it fences a node.
pub fn drain_message(fleet_id: &str, at_ms: u64) -> String {
    format!("nectr-fleet drain fleet={fleet_id} at={at_ms}")
}

/// If `reason` is this fleet's drain message, the time it was set.
pub fn parse_drain_message(reason: &str, fleet_id: &str) -> Option<u64> {
    let rest = reason
        .trim()
        .strip_prefix("nectr-fleet drain fleet=")?
        .strip_prefix(fleet_id)?
        .strip_prefix(" at=")?;
    rest.split_whitespace().next()?.parse().ok()
}

#[cfg(test)]
mod tests;
