//! An in-process Jenkins and EC2 in virtual time, for the soak test: the real
//! [`Reconciler`](nectr_fleet::reconcile::Reconciler) (observe, `decide`, act) runs against
//! [`SimJenkins`] and [`SimEc2`], which implement the same traits as the REST client and the
//! EC2 provider, with a [`VirtualClock`]. Everything is drawn from one seed, so a run replays
//! exactly.
//!
//! What it models:
//! - **Jenkins**: nodes, executors, a queue of items with label expressions and the `why`
//!   texts Jenkins gives them; a dispatcher that assigns items from a snapshot of the nodes
//!   taken a moment earlier (so a node fenced a moment ago can still get a build), plus the
//!   injected race of a build dispatched right after a fence; agents that connect once their
//!   instance runs; builds of random length.
//! - **EC2**: client-token idempotency, instances that show in describes only after a random
//!   0.3–1.5 s, pending → running, shutting-down → terminated.
//! - **SSM**: the agents' stored secrets (write, tag, delete, list by fleet tag).
//! - **Faults** on every call: 500s before acting, answers lost after acting, slow answers,
//!   timeouts (a Jenkins write that times out is applied later), throttling and capacity
//!   errors, and `kill -9` of the service before or after any call (its session dies: every
//!   later call of that process fails without effect).
//!
//! It checks the invariants at the moment of every action (see [`World::violations`]):
//! no node deleted or instance terminated while a build runs there; no delete of a fenced
//! node sooner than `settle_interval` after the fence took effect; caps never exceeded at a
//! launch (counting instances not yet visible); never two instances for one node; no launch
//! beyond what the observation the service made justifies; nothing foreign touched; no
//! launch before its node's secret is stored, and never the secret in user-data; at rest, no
//! stored secret without its node.

use nectr_fleet::cloud::{
    CloudError, CloudErrorKind, CloudProvider, Instance, InstanceState, LaunchSpec, StoredSecret,
    TAG_FLEET, TAG_JENKINS, TAG_NODE, TAG_POOL,
};
use nectr_fleet::config::Config;
use nectr_fleet::jenkins::client::NodeSpec;
use nectr_fleet::jenkins::{
    label, parse_drain_message, Computer, JenkinsApi, JenkinsError, NodeTag, QueueItem,
};
use nectr_fleet::secret::Secret;
use nectr_fleet::util::Clock;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// splitmix64: small, seedable, good enough for choices.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next_u64() % n
        }
    }
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi.saturating_sub(lo) + 1)
    }
    /// True with probability `per_mille` / 1000.
    pub fn chance(&mut self, per_mille: u64) -> bool {
        self.below(1000) < per_mille
    }
}

/// Virtual time (ms since the epoch) and seeded launch tokens.
pub struct VirtualClock {
    now: AtomicU64,
    tokens: Mutex<Rng>,
}

impl VirtualClock {
    pub fn new(start_ms: u64, seed: u64) -> Arc<VirtualClock> {
        Arc::new(VirtualClock {
            now: AtomicU64::new(start_ms),
            tokens: Mutex::new(Rng::new(seed ^ 0x7A11_0C0C)),
        })
    }
    pub fn advance(&self, ms: u64) {
        self.now.fetch_add(ms, Ordering::SeqCst);
    }
    pub fn set_at_least(&self, t: u64) {
        self.now.fetch_max(t, Ordering::SeqCst);
    }
}

impl Clock for VirtualClock {
    fn now_ms(&self) -> u64 {
        self.now.load(Ordering::SeqCst)
    }
    fn sleep_ms(&self, ms: u64) {
        self.advance(ms);
    }
    fn random_hex(&self, n: usize) -> String {
        let mut r = lock(&self.tokens);
        (0..n).map(|_| format!("{:02x}", r.below(256))).collect()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The service's calls, for fault and kill targeting.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    Computers,
    Queue,
    Computer,
    CreateNode,
    Secret,
    Drain,
    Undrain,
    Delete,
    SetDescription,
    Describe,
    RunInstances,
    Terminate,
    PutSecret,
    TagSecret,
    DeleteSecret,
    ListSecrets,
}

impl Kind {
    fn is_write(self) -> bool {
        matches!(
            self,
            Kind::CreateNode
                | Kind::Drain
                | Kind::Undrain
                | Kind::Delete
                | Kind::SetDescription
                | Kind::RunInstances
                | Kind::Terminate
                | Kind::PutSecret
                | Kind::TagSecret
                | Kind::DeleteSecret
        )
    }
    fn is_cloud(self) -> bool {
        matches!(
            self,
            Kind::Describe
                | Kind::RunInstances
                | Kind::Terminate
                | Kind::PutSecret
                | Kind::TagSecret
                | Kind::DeleteSecret
                | Kind::ListSecrets
        )
    }
    /// The launch and fence steps, each a target for a `kill -9` before and after it.
    pub const STEPS: [Kind; 11] = [
        Kind::CreateNode,
        Kind::Secret,
        Kind::PutSecret,
        Kind::RunInstances,
        Kind::SetDescription,
        Kind::Drain,
        Kind::Computer,
        Kind::Delete,
        Kind::DeleteSecret,
        Kind::Terminate,
        Kind::Undrain,
    ];
}

/// Kill the service before or after the next call of `kind`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct KillAt {
    pub kind: Kind,
    pub after: bool,
}

/// Fault rates, per mille of calls. All zero = a perfect world.
#[derive(Clone, Debug, Default)]
pub struct Faults {
    pub error: u64,
    pub lose: u64,
    pub slow: u64,
    pub timeout: u64,
    pub slow_drain: u64,
    pub throttle: u64,
    pub capacity: u64,
    /// A build dispatched to a node right after its fence took effect.
    pub race: u64,
    /// `kill -9` of the service at a random call.
    pub kill: u64,
    /// Instances whose agent never connects.
    pub dead_agent: u64,
}

impl Faults {
    pub fn standard() -> Faults {
        Faults {
            error: 12,
            lose: 12,
            slow: 20,
            timeout: 4,
            slow_drain: 200,
            throttle: 4,
            capacity: 10,
            race: 250,
            kill: 2,
            dead_agent: 15,
        }
    }
}

#[derive(Clone, Debug)]
struct Build {
    item: u64,
    ends_at: u64,
}

#[derive(Clone, Debug)]
struct JNode {
    labels: BTreeSet<String>,
    description: String,
    execs: Vec<Option<Build>>,
    connected: bool,
    temp_offline: bool,
    reason: String,
    /// When the node last went temporarily offline.
    fenced_at: Option<u64>,
    /// (time, accepting) transitions, for the dispatcher's stale snapshot.
    accepting: Vec<(u64, bool)>,
    foreign: bool,
}

impl JNode {
    fn busy(&self) -> bool {
        self.execs.iter().any(Option::is_some)
    }
    fn accepting_at(&self, t: u64) -> bool {
        self.accepting
            .iter()
            .rev()
            .find(|(at, _)| *at <= t)
            .is_some_and(|(_, a)| *a)
    }
    fn set_accepting(&mut self, now: u64, v: bool) {
        self.accepting.push((now, v));
        if self.accepting.len() > 8 {
            self.accepting.drain(..self.accepting.len() - 8);
        }
    }
}

#[derive(Clone, Debug)]
struct Item {
    id: u64,
    expr: String,
    parsed: Option<label::Expr>,
    since: u64,
    duration: u64,
}

impl Item {
    fn new(id: u64, expr: &str, since: u64, duration: u64) -> Item {
        Item {
            id,
            expr: expr.to_string(),
            parsed: label::parse(expr).ok(),
            since,
            duration,
        }
    }
    fn fits(&self, n: &JNode) -> bool {
        self.parsed.as_ref().is_some_and(|e| e.matches(&n.labels))
    }
}

#[derive(Clone, Debug)]
struct EInst {
    token: String,
    itype: String,
    tags: BTreeMap<String, String>,
    state: InstanceState,
    launched_at: u64,
    visible_at: u64,
    running_at: u64,
    connect_at: u64,
    agent_boots: bool,
    agent_done: bool,
    gone_at: u64,
    foreign: bool,
}

impl EInst {
    fn live(&self) -> bool {
        matches!(self.state, InstanceState::Pending | InstanceState::Running)
    }
    fn node(&self) -> Option<&str> {
        self.tags.get(TAG_NODE).map(String::as_str)
    }
    fn pool(&self) -> Option<&str> {
        self.tags.get(TAG_POOL).map(String::as_str)
    }
}

/// Ground truth at the service's observation reads of one poll.
#[derive(Clone, Debug, Default)]
struct PollBook {
    /// Per pool, at the computer list read: available executors, live instances.
    available: Option<BTreeMap<String, (u32, u32)>>,
    /// Items running at the computer list read.
    running: BTreeSet<u64>,
    /// Per pool, at the queue read: waiting item ids.
    waiting: Option<BTreeMap<String, Vec<u64>>>,
    launched: BTreeMap<String, u32>,
}

#[derive(Clone, Debug, Default)]
pub struct Stats {
    pub polls: u64,
    pub items: u64,
    pub builds_done: u64,
    pub launches: u64,
    pub idempotent_repeats: u64,
    pub fenced_scale_ins: u64,
    pub fences_applied: u64,
    pub lifts: u64,
    pub races: u64,
    pub race_builds_on_deleted: u64,
    pub orphan_nodes_deleted: u64,
    pub terminations: u64,
    pub restarts: u64,
    pub kills: BTreeMap<String, u64>,
    pub faults: BTreeMap<&'static str, u64>,
    pub deferred_applied: u64,
    pub edits: u64,
    pub max_live: u64,
    pub busy_kills: u64,
    pub cap_overruns: u64,
    pub duplicate_launches: u64,
    pub over_launches: u64,
    pub early_deletes: u64,
    pub foreign_touched: u64,
}

type Deferred = Box<dyn FnOnce(&mut World) + Send>;

pub struct World {
    pub clock: Arc<VirtualClock>,
    rng: Rng,
    /// The config in force (the last one written to the service's file).
    pub cfg: Config,
    now: u64,
    nodes: BTreeMap<String, JNode>,
    queue: Vec<Item>,
    next_item: u64,
    instances: BTreeMap<String, EInst>,
    /// Client token → (instance id, instance type).
    tokens: BTreeMap<String, (String, String)>,
    /// Node → the instances ever launched for it.
    launched_for: BTreeMap<String, Vec<String>>,
    /// SSM: node → (fleet tag, when written) of its stored agent secret.
    secrets: BTreeMap<String, (String, u64)>,
    next_instance: u64,
    deferred: Vec<(u64, Deferred)>,
    next_dispatch: u64,
    /// The live session: calls from any other are from a killed process.
    pub session: u64,
    pub kill_at: Option<KillAt>,
    pub faults: Faults,
    poll: Option<PollBook>,
    pub stats: Stats,
    pub violations: Vec<String>,
    log: VecDeque<String>,
    /// Print every event as it happens (`NECTR_SOAK_TRACE=1`).
    pub trace: bool,
}

const DISPATCH_MS: u64 = 700;
const MAX_SNAPSHOT_LAG_MS: u64 = 1200;
const FOREIGN_NODES: [&str; 2] = ["static-1", "other-fleet-1"];

/// Label expressions of the queue items, with weights. The last two are never launched for:
/// the foreign static node serves `static`, nothing serves `solaris`.
const EXPRS: [(&str, u64); 9] = [
    ("linux", 20),
    ("linux&&x64", 25),
    ("!gpu&&x64", 8),
    ("arm64", 12),
    ("linux&&arm64", 8),
    ("gpu", 10),
    ("gpu||arm64", 5),
    ("static", 6),
    ("solaris", 1),
];

impl World {
    pub fn new(cfg: Config, seed: u64, clock: Arc<VirtualClock>) -> World {
        let now = clock.now_ms();
        let mut w = World {
            clock,
            rng: Rng::new(seed),
            cfg,
            now,
            nodes: BTreeMap::new(),
            queue: Vec::new(),
            next_item: 1,
            instances: BTreeMap::new(),
            tokens: BTreeMap::new(),
            launched_for: BTreeMap::new(),
            secrets: BTreeMap::new(),
            next_instance: 1,
            deferred: Vec::new(),
            next_dispatch: now + DISPATCH_MS,
            session: 1,
            kill_at: None,
            faults: Faults::standard(),
            poll: None,
            stats: Stats::default(),
            violations: Vec::new(),
            log: VecDeque::new(),
            trace: std::env::var_os("NECTR_SOAK_TRACE").is_some(),
        };
        // Foreign things the service must never touch: a static agent, a node of another
        // fleet (with that fleet's tag and a pool label), an instance of another fleet, and
        // one with this fleet's id but another Jenkins.
        let other_tag = NodeTag {
            fleet: "other".into(),
            pool: "linux".into(),
            token: "0ther".into(),
            instance: Some("i-other".into()),
            created_ms: now,
        };
        for (name, labels, desc) in [
            (FOREIGN_NODES[0], vec!["static"], "build box".to_string()),
            (FOREIGN_NODES[1], vec!["linux", "x64"], other_tag.render()),
        ] {
            let mut n = JNode {
                labels: labels.iter().map(|s| s.to_string()).collect(),
                description: desc,
                execs: vec![None, None],
                connected: true,
                temp_offline: false,
                reason: String::new(),
                fenced_at: None,
                accepting: Vec::new(),
                foreign: true,
            };
            n.labels.insert(name.to_string());
            n.set_accepting(0, true);
            w.nodes.insert(name.to_string(), n);
        }
        for (id, fleet, url) in [
            (
                "i-foreign-1",
                "other".to_string(),
                w.cfg.jenkins.url.clone(),
            ),
            (
                "i-foreign-2",
                w.cfg.fleet_id.clone(),
                "https://other-jenkins.example/".to_string(),
            ),
        ] {
            let mut tags = BTreeMap::new();
            tags.insert(TAG_FLEET.to_string(), fleet);
            tags.insert(TAG_JENKINS.to_string(), url);
            tags.insert(TAG_POOL.to_string(), "linux".to_string());
            tags.insert(TAG_NODE.to_string(), format!("{id}-node"));
            w.instances.insert(
                id.to_string(),
                EInst {
                    token: format!("{id}-token"),
                    itype: "c5.xlarge".into(),
                    tags,
                    state: InstanceState::Running,
                    launched_at: now,
                    visible_at: now,
                    running_at: now,
                    connect_at: u64::MAX,
                    agent_boots: false,
                    agent_done: true,
                    gone_at: u64::MAX,
                    foreign: true,
                },
            );
        }
        w
    }

    /// Add a line to the event log (the service's actions and errors, for a failure report).
    pub fn note(&mut self, s: String) {
        if self.trace {
            eprintln!("{} {s}", self.now);
        }
        if self.log.len() >= 300 {
            self.log.pop_front();
        }
        self.log.push_back(format!("{} {s}", self.now));
    }

    /// The last events, for a failure report.
    pub fn recent_log(&self) -> String {
        self.log.iter().cloned().collect::<Vec<_>>().join("\n")
    }

    fn violation(&mut self, what: &str, detail: String) {
        let msg = format!("t={} {what}: {detail}", self.now);
        self.note(format!("VIOLATION {msg}"));
        self.violations.push(msg);
    }

    // ---------------- the driver's side ----------------

    pub fn now(&self) -> u64 {
        self.now
    }

    /// A burst of `n` new queue items.
    pub fn arrive(&mut self, n: u64) {
        self.catch_up();
        let total: u64 = EXPRS.iter().map(|e| e.1).sum();
        for _ in 0..n {
            let mut r = self.rng.below(total);
            let expr = EXPRS
                .iter()
                .find(|(_, w)| {
                    if r < *w {
                        true
                    } else {
                        r -= w;
                        false
                    }
                })
                .map_or("linux", |e| e.0);
            let duration = match self.rng.below(100) {
                0..=79 => self.rng.range(1_000, 8_000),
                80..=97 => self.rng.range(8_000, 30_000),
                _ => self.rng.range(60_000, 120_000),
            };
            let id = self.next_item;
            self.next_item += 1;
            self.queue.push(Item::new(id, expr, self.now, duration));
            self.stats.items += 1;
        }
    }

    /// Start of one poll of the service (for the over-launch check).
    pub fn begin_poll(&mut self) {
        self.catch_up();
        self.poll = Some(PollBook::default());
        self.stats.polls += 1;
    }

    pub fn end_poll(&mut self) {
        self.poll = None;
        let live = self
            .instances
            .values()
            .filter(|i| i.live() && !i.foreign)
            .count() as u64;
        self.stats.max_live = self.stats.max_live.max(live);
    }

    /// `kill -9` of the live session (between polls, or armed at a call).
    pub fn kill(&mut self, why: &str) {
        self.session += 1;
        *self.stats.kills.entry(why.to_string()).or_insert(0) += 1;
        self.note(format!("kill -9 ({why})"));
    }

    /// Work the service can serve is all done: nothing waits for a pool, nothing runs.
    pub fn settled_work(&self) -> bool {
        let launchable = self.queue.iter().any(|i| self.pool_of(&i.expr).is_some());
        !launchable && !self.nodes.values().any(|n| !n.foreign && n.busy())
    }

    /// Checks for the end of a run, after a quiet period: every item a pool can serve was
    /// served, no orphan in either direction, each pool at its minimum, foreign things intact.
    pub fn final_checks(&mut self) {
        self.catch_up();
        let waiting: Vec<String> = self
            .queue
            .iter()
            .filter(|i| self.pool_of(&i.expr).is_some())
            .map(|i| format!("#{} {}", i.id, i.expr))
            .collect();
        if !waiting.is_empty() {
            self.violation("work not served", waiting.join(", "));
        }
        let mut per_pool: BTreeMap<String, u32> = BTreeMap::new();
        let mut orphan = Vec::new();
        for (id, i) in &self.instances {
            if i.foreign || !i.live() {
                continue;
            }
            *per_pool
                .entry(i.pool().unwrap_or("").to_string())
                .or_insert(0) += 1;
            let node_up = i
                .node()
                .and_then(|n| self.nodes.get(n))
                .is_some_and(|n| n.connected);
            if !node_up {
                orphan.push(format!("instance {id} without a connected node"));
            }
        }
        for (name, n) in &self.nodes {
            if n.foreign {
                continue;
            }
            let has = self
                .instances
                .values()
                .any(|i| i.live() && i.node() == Some(name.as_str()));
            if !has {
                orphan.push(format!("node {name} without an instance"));
            }
        }
        for node in self.secrets.keys() {
            if !self.nodes.contains_key(node) {
                orphan.push(format!("stored secret of node {node}, which is gone"));
            }
        }
        for (name, n) in &self.nodes {
            if !n.foreign && !self.secrets.contains_key(name) {
                orphan.push(format!("node {name} without its stored secret"));
            }
        }
        if !orphan.is_empty() {
            self.violation("orphans after the quiet period", orphan.join(", "));
        }
        for p in &self.cfg.pools.clone() {
            // At rest a pool keeps its minimum and its spare executors, within its cap.
            let live = per_pool.get(&p.name).copied().unwrap_or(0);
            let weight = p
                .instance_types
                .iter()
                .map(|t| t.executors)
                .min()
                .unwrap_or(1);
            let rest = p
                .min_instances
                .max(p.spare_executors.div_ceil(weight.max(1)))
                .min(p.max_instances);
            if live != rest {
                self.violation(
                    "not at rest after the quiet period",
                    format!(
                        "pool {}: {live} live, expected {rest} (min_instances {}, spare_executors {})",
                        p.name, p.min_instances, p.spare_executors
                    ),
                );
            }
        }
        for name in FOREIGN_NODES {
            let ok = self
                .nodes
                .get(name)
                .is_some_and(|n| !n.temp_offline && n.connected);
            if !ok {
                self.violation("foreign node touched", name.to_string());
            }
        }
        for id in ["i-foreign-1", "i-foreign-2"] {
            if !self.instances.get(id).is_some_and(EInst::live) {
                self.violation("foreign instance touched", id.to_string());
            }
        }
    }

    // ---------------- time ----------------

    fn catch_up(&mut self) {
        let t = self.clock.now_ms();
        while let Some(at) = self.next_event_at() {
            if at > t {
                break;
            }
            self.now = self.now.max(at);
            self.process_events();
        }
        self.now = self.now.max(t);
    }

    fn advance(&mut self, ms: u64) {
        self.clock.advance(ms);
        self.catch_up();
    }

    fn next_event_at(&self) -> Option<u64> {
        let mut t = self.next_dispatch;
        for n in self.nodes.values() {
            for b in n.execs.iter().flatten() {
                t = t.min(b.ends_at);
            }
        }
        for i in self.instances.values() {
            match i.state {
                InstanceState::Pending => t = t.min(i.running_at),
                InstanceState::ShuttingDown => t = t.min(i.gone_at),
                _ => {}
            }
            if i.state == InstanceState::Running && i.agent_boots && !i.agent_done {
                t = t.min(i.connect_at);
            }
        }
        for (at, _) in &self.deferred {
            t = t.min(*at);
        }
        Some(t)
    }

    /// Everything due at `self.now`.
    fn process_events(&mut self) {
        let now = self.now;
        let mut done = Vec::new();
        for (name, n) in self.nodes.iter_mut() {
            for e in n.execs.iter_mut() {
                if e.as_ref().is_some_and(|b| b.ends_at <= now) {
                    if let Some(b) = e.take() {
                        done.push((name.clone(), b.item));
                    }
                }
            }
        }
        for (name, item) in done {
            self.stats.builds_done += 1;
            self.note(format!("build #{item} done on {name}"));
        }
        let mut connect = Vec::new();
        self.instances
            .retain(|_, i| !(i.state == InstanceState::ShuttingDown && i.gone_at <= now));
        for (id, i) in self.instances.iter_mut() {
            if i.state == InstanceState::Pending && i.running_at <= now {
                i.state = InstanceState::Running;
            }
            if i.state == InstanceState::Running
                && i.agent_boots
                && !i.agent_done
                && i.connect_at <= now
            {
                i.agent_done = true;
                if let Some(n) = i.node() {
                    connect.push((id.clone(), n.to_string()));
                }
            }
        }
        for (id, node) in connect {
            if let Some(n) = self.nodes.get_mut(&node) {
                if !n.connected {
                    n.connected = true;
                    self.note(format!("agent of {id} connected as {node}"));
                }
            }
        }
        let due: Vec<Deferred> = {
            let mut due = Vec::new();
            let mut k = 0;
            while k < self.deferred.len() {
                if self.deferred[k].0 <= now {
                    due.push(self.deferred.remove(k).1);
                } else {
                    k += 1;
                }
            }
            due
        };
        for f in due {
            self.stats.deferred_applied += 1;
            f(self);
        }
        if self.next_dispatch <= now {
            self.dispatch();
            self.next_dispatch = now + DISPATCH_MS;
            // Items nothing can serve are cancelled by their users after two minutes.
            let cfg = &self.cfg;
            self.queue.retain(|i| {
                now.saturating_sub(i.since) < 120_000
                    || i.parsed.as_ref().is_some_and(|e| {
                        cfg.pools
                            .iter()
                            .any(|p| p.max_instances > 0 && e.matches(&p.labels))
                    })
                    || i.expr == "static"
            });
        }
    }

    /// Jenkins' queue maintenance: each waiting item goes to an idle executor of a node that
    /// was accepting in a snapshot taken up to `MAX_SNAPSHOT_LAG_MS` ago.
    fn dispatch(&mut self) {
        let lag = self.rng.below(MAX_SNAPSHOT_LAG_MS + 1);
        let snapshot = self.now.saturating_sub(lag);
        let now = self.now;
        let mut k = 0;
        while k < self.queue.len() {
            let item = self.queue[k].clone();
            let target = self.nodes.iter().find_map(|(name, n)| {
                (n.connected
                    && n.accepting_at(snapshot)
                    && n.execs.iter().any(Option::is_none)
                    && item.fits(n))
                .then(|| name.clone())
            });
            match target {
                Some(name) => {
                    self.queue.remove(k);
                    self.start_build(&name, &item, now);
                }
                None => k += 1,
            }
        }
    }

    fn start_build(&mut self, node: &str, item: &Item, now: u64) {
        if let Some(n) = self.nodes.get_mut(node) {
            if let Some(e) = n.execs.iter_mut().find(|e| e.is_none()) {
                *e = Some(Build {
                    item: item.id,
                    ends_at: now + item.duration,
                });
            }
        }
        self.note(format!(
            "build #{} ({}) started on {node}",
            item.id, item.expr
        ));
    }

    // ---------------- truth ----------------

    /// The pool a label expression is launched for: the first pool with room whose labels
    /// satisfy it (as the service attributes it).
    fn pool_of(&self, expr: &str) -> Option<String> {
        let e = label::parse(expr).ok()?;
        self.cfg
            .pools
            .iter()
            .find(|p| p.max_instances > 0 && e.matches(&p.labels))
            .map(|p| p.name.clone())
    }

    fn owned_pool(&self, n: &JNode) -> Option<String> {
        NodeTag::parse(&n.description)
            .filter(|t| t.fleet == self.cfg.fleet_id)
            .map(|t| t.pool)
    }

    /// Per pool: (executors surely available to the queue, live instances), and the items
    /// running now. Available: idle executors of connected, accepting owned nodes, plus the
    /// executors of young instances whose node exists, is not fenced and not connected yet.
    fn supply_truth(&self) -> (BTreeMap<String, (u32, u32)>, BTreeSet<u64>) {
        let mut out: BTreeMap<String, (u32, u32)> = BTreeMap::new();
        let mut running = BTreeSet::new();
        for n in self.nodes.values() {
            running.extend(n.execs.iter().flatten().map(|b| b.item));
            let Some(pool) = self.owned_pool(n) else {
                continue;
            };
            if n.connected && !n.temp_offline {
                out.entry(pool).or_default().0 +=
                    n.execs.iter().filter(|e| e.is_none()).count() as u32;
            }
        }
        for i in self.instances.values() {
            if i.foreign || !i.live() {
                continue;
            }
            let pool = i.pool().unwrap_or("").to_string();
            out.entry(pool.clone()).or_default().1 += 1;
            let deadline = self
                .cfg
                .pool(&pool)
                .map_or(0, |p| p.boot_deadline_ms)
                .saturating_sub(5_000);
            let young = self.now.saturating_sub(i.launched_at) < deadline;
            if let Some(n) = i.node().and_then(|n| self.nodes.get(n)) {
                if young && !n.connected && !n.temp_offline {
                    out.entry(pool).or_default().0 += n.execs.len() as u32;
                }
            }
        }
        (out, running)
    }

    fn demand_truth(&self) -> BTreeMap<String, Vec<u64>> {
        let mut out: BTreeMap<String, Vec<u64>> = BTreeMap::new();
        for i in &self.queue {
            if let Some(p) = self.pool_of(&i.expr) {
                out.entry(p).or_default().push(i.id);
            }
        }
        out
    }

    /// At a new instance: caps, one instance per node, and no more launches in this poll
    /// than its observation justified.
    fn check_launch(&mut self, pool: &str, node: &str, id: &str) {
        // One instance per node, ever.
        let ever = self.launched_for.entry(node.to_string()).or_default();
        let twins: Vec<String> = ever.clone();
        ever.push(id.to_string());
        if !twins.is_empty() {
            self.stats.duplicate_launches += 1;
            self.violation(
                "duplicate launch",
                format!("{id} for node {node}, which already has {twins:?}"),
            );
        }
        // Caps, counting instances not visible yet.
        let live: Vec<&EInst> = self
            .instances
            .values()
            .filter(|i| !i.foreign && i.live())
            .collect();
        let in_pool = live.iter().filter(|i| i.pool() == Some(pool)).count() as u32;
        let total = live.len() as u32;
        let dollars: f64 = live
            .iter()
            .map(|i| {
                i.pool()
                    .and_then(|p| self.cfg.pool(p))
                    .and_then(|p| p.instance_type(&i.itype))
                    .and_then(|t| t.price)
                    .unwrap_or(0.0)
            })
            .sum();
        let mut over = Vec::new();
        match self.cfg.pool(pool) {
            Some(p) if in_pool > p.max_instances => over.push(format!(
                "pool {pool}: {in_pool} > max_instances {}",
                p.max_instances
            )),
            None => over.push(format!("launch for pool {pool}, not in the config")),
            _ => {}
        }
        if let Some(g) = self.cfg.max_instances {
            if total > g {
                over.push(format!("{total} > max_instances {g}"));
            }
        }
        if let Some(d) = self.cfg.max_dollars_per_hour {
            if dollars > d + 1e-9 {
                over.push(format!("${dollars:.2}/h > max_dollars_per_hour {d}"));
            }
        }
        if !over.is_empty() {
            self.stats.cap_overruns += 1;
            self.violation("cap overrun", format!("{id}: {}", over.join("; ")));
        }
        // No launch beyond the demand the poll observed: waiting at the queue read and not
        // already running at the computer read, net of the executors surely available.
        let Some(book) = self.poll.as_mut() else {
            self.violation("launch outside a poll", id.to_string());
            return;
        };
        *book.launched.entry(pool.to_string()).or_insert(0) += 1;
        let launched = book.launched[pool];
        let observed = match (&book.available, &book.waiting) {
            (Some(avail), Some(waiting)) => Some((
                waiting.get(pool).map_or(0, |ids| {
                    ids.iter().filter(|i| !book.running.contains(i)).count() as u32
                }),
                avail.get(pool).copied().unwrap_or((0, 0)),
            )),
            _ => None,
        };
        let Some((waiting, (available, live_before))) = observed else {
            let msg = format!("{id} for pool {pool} without both observation reads");
            self.violation("launch without an observation", msg);
            return;
        };
        let Some(p) = self.cfg.pool(pool) else {
            return;
        };
        let demand = waiting + p.spare_executors;
        let weight = p
            .instance_types
            .iter()
            .map(|t| t.executors)
            .min()
            .unwrap_or(1)
            .max(1);
        let bound = demand
            .saturating_sub(available)
            .div_ceil(weight)
            .max(p.min_instances.saturating_sub(live_before));
        if launched > bound {
            self.stats.over_launches += 1;
            let msg = format!(
                "{id}: launch #{launched} for pool {pool} this poll, but the observation justified {bound} (demand {demand} incl. spare, {available} executors available, {live_before} live)"
            );
            self.violation("launch beyond the demand", msg);
        }
    }

    // ---------------- calls ----------------

    /// Decide what happens to one call: `None` if its session is dead.
    fn enter(&mut self, session: u64, kind: Kind) -> Option<Outcome> {
        if session != self.session {
            return None;
        }
        self.catch_up();
        if let Some(k) = self.kill_at {
            if k.kind == kind {
                self.kill_at = None;
                return Some(if k.after {
                    Outcome::KillAfter
                } else {
                    Outcome::KillBefore
                });
            }
        }
        let f = self.faults.clone();
        if self.rng.chance(f.kill) {
            return Some(if self.rng.chance(500) {
                Outcome::KillAfter
            } else {
                Outcome::KillBefore
            });
        }
        let o = if kind.is_cloud() && kind != Kind::Terminate && self.rng.chance(f.throttle) {
            Outcome::Throttled
        } else if self.rng.chance(f.error) {
            Outcome::Error
        } else if kind.is_write() && self.rng.chance(f.lose) {
            Outcome::Lose
        } else if self.rng.chance(f.timeout) {
            Outcome::Timeout
        } else if kind == Kind::Drain && self.rng.chance(f.slow_drain) {
            let ms = self.rng.range(300, 1_900);
            let late = self.rng.chance(500);
            Outcome::Slow { ms, late }
        } else if self.rng.chance(f.slow) {
            let ms = self.rng.range(300, 1_500);
            let late = kind.is_write() && self.rng.chance(500);
            Outcome::Slow { ms, late }
        } else {
            Outcome::Normal
        };
        let name = match o {
            Outcome::Normal => None,
            Outcome::Error => Some("error"),
            Outcome::Lose => Some("lost answer"),
            Outcome::Timeout => Some("timeout"),
            Outcome::Slow { .. } => Some("slow"),
            Outcome::Throttled => Some("throttled"),
            _ => None,
        };
        if let Some(n) = name {
            *self.stats.faults.entry(n).or_insert(0) += 1;
        }
        Some(o)
    }

    fn timeout_ms(&self, kind: Kind) -> u64 {
        if kind.is_cloud() {
            self.cfg.aws.timeout_ms
        } else {
            self.cfg.jenkins.timeout_ms
        }
    }

    /// Run a call: `apply` is the action (applied at most once, maybe late or never).
    fn run<T, E: SimError>(
        &mut self,
        kind: Kind,
        what: &str,
        outcome: Option<Outcome>,
        apply: impl FnOnce(&mut World) -> Result<T, E> + Send + 'static,
    ) -> Result<T, E> {
        let Some(o) = outcome else {
            return Err(E::dead(what));
        };
        let latency = self.rng.range(2, 25);
        match o {
            Outcome::Normal => {
                self.advance(latency);
                apply(self)
            }
            Outcome::Error => {
                self.advance(latency);
                Err(E::server(what))
            }
            Outcome::Throttled => {
                self.advance(latency);
                Err(E::throttled(what))
            }
            Outcome::Lose => {
                self.advance(latency);
                let _ = apply(self);
                Err(E::lost(what))
            }
            Outcome::Slow { ms, late } => {
                if late {
                    self.advance(ms);
                    apply(self)
                } else {
                    let r = apply(self);
                    self.advance(ms);
                    r
                }
            }
            Outcome::Timeout => {
                let timeout = self.timeout_ms(kind);
                if kind.is_write() && !kind.is_cloud() {
                    // Jenkins carries it out after the client gave up (within another
                    // timeout).
                    let at = self.now + timeout + self.rng.range(1, timeout);
                    self.deferred.push((
                        at,
                        Box::new(move |w: &mut World| {
                            let _ = apply(w);
                        }),
                    ));
                } else if kind.is_write() {
                    let _ = apply(self);
                }
                self.advance(timeout);
                Err(E::timeout(what))
            }
            Outcome::KillBefore => {
                self.kill(&format!("before {kind:?}"));
                Err(E::dead(what))
            }
            Outcome::KillAfter => {
                let r = apply(self);
                self.kill(&format!("after {kind:?}"));
                drop(r);
                Err(E::dead(what))
            }
        }
    }

    // ---------------- Jenkins actions ----------------

    fn computers_now(&mut self) -> Vec<Computer> {
        if self.poll.as_ref().is_some_and(|b| b.available.is_none()) {
            let (avail, running) = self.supply_truth();
            if let Some(book) = self.poll.as_mut() {
                book.available = Some(avail);
                book.running = running;
            }
        }
        self.nodes
            .iter()
            .map(|(name, n)| computer(name, n))
            .collect()
    }

    fn queue_now(&mut self) -> Vec<QueueItem> {
        if self.poll.as_ref().is_some_and(|b| b.waiting.is_none()) {
            let d = self.demand_truth();
            if let Some(book) = self.poll.as_mut() {
                book.waiting = Some(d);
            }
        }
        self.queue
            .iter()
            .map(|i| {
                let matching: Vec<&JNode> = self.nodes.values().filter(|n| i.fits(n)).collect();
                let why = if matching.is_empty() {
                    format!(
                        "There are no nodes with the label \u{2018}{}\u{2019}",
                        i.expr
                    )
                } else if matching.iter().all(|n| !n.connected || n.temp_offline) {
                    format!("All nodes of label \u{2018}{}\u{2019} are offline", i.expr)
                } else {
                    format!(
                        "Waiting for next available executor on \u{2018}{}\u{2019}",
                        i.expr
                    )
                };
                QueueItem {
                    id: i.id,
                    class: "hudson.model.Queue$BuildableItem".into(),
                    why: Some(why),
                    buildable: true,
                    blocked: false,
                    pending: false,
                    stuck: false,
                    in_queue_since_ms: Some(i.since),
                    buildable_start_ms: Some(i.since),
                    task_name: Some(format!("job-{}", i.id)),
                    task_label: None,
                }
            })
            .collect()
    }

    fn create_node(&mut self, spec: &NodeSpec) {
        if self.nodes.contains_key(&spec.name) {
            return;
        }
        let mut labels: BTreeSet<String> = spec.labels.iter().cloned().collect();
        labels.insert(spec.name.clone());
        let mut n = JNode {
            labels,
            description: spec.description.clone(),
            execs: vec![None; spec.executors.max(1) as usize],
            connected: false,
            temp_offline: false,
            reason: String::new(),
            fenced_at: None,
            accepting: Vec::new(),
            foreign: false,
        };
        n.set_accepting(self.now, true);
        self.nodes.insert(spec.name.clone(), n);
        self.note(format!("node {} created", spec.name));
    }

    fn drain(&mut self, name: &str, msg: &str) -> Result<(), JenkinsError> {
        let now = self.now;
        let fleet = self.cfg.fleet_id.clone();
        let Some(n) = self.nodes.get_mut(name) else {
            return Err(status(404, "drain"));
        };
        if n.foreign {
            self.stats.foreign_touched += 1;
            self.violation("foreign node touched", format!("drain of {name}"));
            return Ok(());
        }
        let newly = !n.temp_offline;
        n.temp_offline = true;
        n.reason = msg.to_string();
        if newly {
            n.fenced_at = Some(now);
            n.set_accepting(now, false);
            self.stats.fences_applied += 1;
        }
        let ours = parse_drain_message(msg, &fleet).is_some();
        self.note(format!("fence of {name} in force (ours: {ours})"));
        // The race: Jenkins' queue, working from a snapshot taken a moment before the fence,
        // hands this node a build right after it.
        let f = self.faults.race;
        let can = self
            .nodes
            .get(name)
            .is_some_and(|n| newly && n.connected && n.execs.iter().any(Option::is_none));
        if can && self.rng.chance(f) {
            let pool = self.nodes.get(name).and_then(|n| self.owned_pool(n));
            let expr = match pool.as_deref() {
                Some("arm") => "arm64",
                Some("gpu") => "gpu",
                _ => "linux&&x64",
            };
            let duration = self.rng.range(1_000, 20_000);
            let item = Item::new(self.next_item, expr, now, duration);
            self.next_item += 1;
            self.stats.items += 1;
            self.stats.races += 1;
            self.start_build(name, &item, now);
            self.note(format!(
                "race: build #{} dispatched to {name} right after its fence",
                item.id
            ));
        }
        Ok(())
    }

    fn undrain(&mut self, name: &str) -> Result<(), JenkinsError> {
        let now = self.now;
        let Some(n) = self.nodes.get_mut(name) else {
            return Err(status(404, "undrain"));
        };
        if n.foreign {
            self.stats.foreign_touched += 1;
            self.violation("foreign node touched", format!("toggleOffline of {name}"));
            return Ok(());
        }
        n.temp_offline = !n.temp_offline;
        if n.temp_offline {
            n.fenced_at = Some(now);
            n.set_accepting(now, false);
            self.note(format!("toggleOffline took {name} offline"));
        } else {
            n.reason.clear();
            n.fenced_at = None;
            n.set_accepting(now, true);
            self.stats.lifts += 1;
            self.note(format!("fence of {name} lifted"));
        }
        Ok(())
    }

    fn delete_node(&mut self, name: &str) -> Result<(), JenkinsError> {
        let now = self.now;
        let settle = self.cfg.settle_interval_ms;
        let fleet = self.cfg.fleet_id.clone();
        let Some(n) = self.nodes.remove(name) else {
            return Ok(());
        };
        if n.foreign {
            self.stats.foreign_touched += 1;
            self.violation("foreign node touched", format!("delete of {name}"));
        }
        if n.busy() {
            self.stats.busy_kills += 1;
            let items: Vec<u64> = n.execs.iter().flatten().map(|b| b.item).collect();
            self.violation(
                "busy kill",
                format!("node {name} deleted with builds {items:?} running"),
            );
        }
        let ours = n.temp_offline && parse_drain_message(&n.reason, &fleet).is_some();
        if n.temp_offline {
            let since = n.fenced_at.unwrap_or(now);
            if now.saturating_sub(since) < settle {
                self.stats.early_deletes += 1;
                self.violation(
                    "delete before the settle interval",
                    format!(
                        "{name} deleted {} ms after its fence took effect (settle {settle} ms)",
                        now - since
                    ),
                );
            }
        } else if n.connected {
            self.violation(
                "unfenced delete",
                format!("{name} deleted while connected and accepting work"),
            );
        }
        if ours {
            self.stats.fenced_scale_ins += 1;
        } else {
            self.stats.orphan_nodes_deleted += 1;
        }
        self.note(format!(
            "node {name} deleted (fenced by us: {ours}, connected: {})",
            n.connected
        ));
        Ok(())
    }

    // ---------------- EC2 actions ----------------

    fn describe(&mut self, fleet_id: &str) -> Vec<Instance> {
        let now = self.now;
        self.instances
            .iter()
            .filter(|(_, i)| {
                i.visible_at <= now
                    && i.state != InstanceState::Terminated
                    && i.tags.get(TAG_FLEET).map(String::as_str) == Some(fleet_id)
            })
            .map(|(id, i)| Instance {
                id: id.clone(),
                state: i.state,
                instance_type: i.itype.clone(),
                launch_time_ms: Some(i.launched_at),
                spot: false,
                tags: i.tags.clone(),
            })
            .collect()
    }

    fn run_instances(&mut self, spec: &LaunchSpec) -> Result<String, CloudError> {
        let node = spec.tags.get(TAG_NODE).cloned().unwrap_or_default();
        if !self.secrets.contains_key(&node) {
            self.violation(
                "launch before its secret was stored",
                format!("node {node} (token {})", spec.client_token),
            );
        }
        if spec.user_data.expose().contains(&secret_of(&node)) {
            self.violation("agent secret in user-data", format!("node {node}"));
        }
        if let Some((id, itype)) = self.tokens.get(&spec.client_token).cloned() {
            if itype != spec.offering.instance_type {
                return Err(CloudError {
                    kind: CloudErrorKind::Invalid,
                    code: "IdempotentParameterMismatch".into(),
                    message: "RunInstances: client token reused with other parameters".into(),
                });
            }
            self.stats.idempotent_repeats += 1;
            return Ok(id);
        }
        let cap = self.faults.capacity;
        if self.rng.chance(cap) {
            *self.stats.faults.entry("capacity").or_insert(0) += 1;
            return Err(CloudError {
                kind: CloudErrorKind::Capacity,
                code: "InsufficientInstanceCapacity".into(),
                message: format!("no {} capacity (injected)", spec.offering.instance_type),
            });
        }
        let now = self.now;
        let id = format!("i-{:08x}", self.next_instance);
        self.next_instance += 1;
        let running_at = now + self.rng.range(500, 2_000);
        let dead = self.faults.dead_agent;
        let inst = EInst {
            token: spec.client_token.clone(),
            itype: spec.offering.instance_type.clone(),
            tags: spec.tags.clone(),
            state: InstanceState::Pending,
            launched_at: now,
            visible_at: now + self.rng.range(300, 1_500),
            running_at,
            connect_at: running_at + self.rng.range(1_000, 4_000),
            agent_boots: !self.rng.chance(dead),
            agent_done: false,
            gone_at: u64::MAX,
            foreign: false,
        };
        let pool = inst.pool().unwrap_or("").to_string();
        let node = inst.node().unwrap_or("").to_string();
        self.instances.insert(id.clone(), inst);
        self.tokens.insert(
            spec.client_token.clone(),
            (id.clone(), spec.offering.instance_type.clone()),
        );
        self.stats.launches += 1;
        self.note(format!(
            "instance {id} launched for node {node} (token {})",
            spec.client_token
        ));
        self.check_launch(&pool, &node, &id);
        Ok(id)
    }

    fn terminate(&mut self, ids: &[String]) -> Result<(), CloudError> {
        for id in ids {
            let now = self.now;
            let gone = now + self.rng.range(1_000, 3_000);
            let Some(i) = self.instances.get_mut(id) else {
                continue;
            };
            if i.foreign {
                self.stats.foreign_touched += 1;
                self.violation("foreign instance touched", format!("terminate of {id}"));
                continue;
            }
            if !i.live() {
                continue;
            }
            i.state = InstanceState::ShuttingDown;
            i.gone_at = gone;
            let node = i.node().map(str::to_string);
            self.stats.terminations += 1;
            if let Some(name) = node {
                if let Some(n) = self.nodes.get_mut(&name) {
                    let busy = n.busy();
                    let connected = n.connected;
                    n.connected = false;
                    n.execs.iter_mut().for_each(|e| *e = None);
                    if busy {
                        self.stats.busy_kills += 1;
                        self.violation(
                            "busy kill",
                            format!("instance {id} terminated while node {name} ran a build"),
                        );
                    } else if connected {
                        self.violation(
                            "connected agent killed",
                            format!(
                                "instance {id} terminated while its agent was connected to {name}"
                            ),
                        );
                    }
                }
            }
            self.note(format!("instance {id} terminated"));
        }
        Ok(())
    }
}

#[derive(Clone, Copy, Debug)]
enum Outcome {
    Normal,
    Error,
    Throttled,
    Lose,
    Slow { ms: u64, late: bool },
    Timeout,
    KillBefore,
    KillAfter,
}

fn computer(name: &str, n: &JNode) -> Computer {
    Computer {
        class: "hudson.slaves.SlaveComputer".into(),
        name: name.to_string(),
        description: Some(n.description.clone()),
        num_executors: n.execs.len() as u32,
        offline: !n.connected || n.temp_offline,
        temporarily_offline: n.temp_offline,
        offline_cause_reason: (!n.reason.is_empty()).then(|| n.reason.clone()),
        idle: Some(!n.busy()),
        connected: n.connected,
        executors: n.execs.iter().map(|e| Some(e.is_none())).collect(),
        one_off_busy: 0,
        builds: Vec::new(),
        labels: n.labels.iter().cloned().collect(),
    }
}

fn status(code: u16, what: &str) -> JenkinsError {
    JenkinsError::Status {
        what: what.to_string(),
        status: code,
        detail: String::new(),
    }
}

/// The errors a call can end with, for both sides.
trait SimError {
    fn server(what: &str) -> Self;
    fn throttled(what: &str) -> Self;
    fn lost(what: &str) -> Self;
    fn timeout(what: &str) -> Self;
    fn dead(what: &str) -> Self;
}

impl SimError for JenkinsError {
    fn server(what: &str) -> Self {
        status(500, what)
    }
    fn throttled(what: &str) -> Self {
        status(503, what)
    }
    fn lost(what: &str) -> Self {
        JenkinsError::Transport {
            what: what.to_string(),
            detail: "connection reset (injected: the answer was lost)".into(),
        }
    }
    fn timeout(what: &str) -> Self {
        JenkinsError::Transport {
            what: what.to_string(),
            detail: "timed out (injected)".into(),
        }
    }
    fn dead(what: &str) -> Self {
        JenkinsError::Transport {
            what: what.to_string(),
            detail: "the process was killed (injected)".into(),
        }
    }
}

impl SimError for CloudError {
    fn server(what: &str) -> Self {
        CloudError {
            kind: CloudErrorKind::Other,
            code: "InternalError".into(),
            message: format!("{what}: injected 500"),
        }
    }
    fn throttled(what: &str) -> Self {
        CloudError {
            kind: CloudErrorKind::Throttled,
            code: "RequestLimitExceeded".into(),
            message: format!("{what}: injected throttling"),
        }
    }
    fn lost(what: &str) -> Self {
        CloudError {
            kind: CloudErrorKind::Transport,
            code: "Transport".into(),
            message: format!("{what}: connection reset (injected: the answer was lost)"),
        }
    }
    fn timeout(what: &str) -> Self {
        CloudError {
            kind: CloudErrorKind::Transport,
            code: "Transport".into(),
            message: format!("{what}: timed out (injected)"),
        }
    }
    fn dead(what: &str) -> Self {
        CloudError {
            kind: CloudErrorKind::Transport,
            code: "Transport".into(),
            message: format!("{what}: the process was killed (injected)"),
        }
    }
}

/// The Jenkins side for one session (one run of the service).
pub struct SimJenkins {
    pub world: Arc<Mutex<World>>,
    pub session: u64,
}

impl SimJenkins {
    fn w(&self) -> MutexGuard<'_, World> {
        lock(&self.world)
    }
}

impl JenkinsApi for SimJenkins {
    fn queue(&self) -> Result<Vec<QueueItem>, JenkinsError> {
        let mut w = self.w();
        let o = w.enter(self.session, Kind::Queue);
        w.run(Kind::Queue, "queue read", o, |w| Ok(w.queue_now()))
    }
    fn computers(&self) -> Result<Vec<Computer>, JenkinsError> {
        let mut w = self.w();
        let o = w.enter(self.session, Kind::Computers);
        w.run(Kind::Computers, "computer list read", o, |w| {
            Ok(w.computers_now())
        })
    }
    fn computer(&self, name: &str) -> Result<Option<Computer>, JenkinsError> {
        let mut w = self.w();
        let o = w.enter(self.session, Kind::Computer);
        let name = name.to_string();
        w.run(Kind::Computer, "node read", o, move |w| {
            Ok(w.nodes.get(&name).map(|n| computer(&name, n)))
        })
    }
    fn create_node(&self, spec: &NodeSpec) -> Result<(), JenkinsError> {
        let mut w = self.w();
        let o = w.enter(self.session, Kind::CreateNode);
        let spec = spec.clone();
        w.run(Kind::CreateNode, "node create", o, move |w| {
            w.create_node(&spec);
            Ok(())
        })
    }
    fn agent_secret(&self, name: &str) -> Result<Secret, JenkinsError> {
        let mut w = self.w();
        let o = w.enter(self.session, Kind::Secret);
        let name = name.to_string();
        w.run(Kind::Secret, "secret read", o, move |w| {
            if w.nodes.contains_key(&name) {
                Ok(Secret::new(secret_of(&name)))
            } else {
                Err(status(404, "secret read"))
            }
        })
    }
    fn drain(&self, name: &str, message: &str) -> Result<(), JenkinsError> {
        let mut w = self.w();
        let o = w.enter(self.session, Kind::Drain);
        let (name, message) = (name.to_string(), message.to_string());
        w.run(Kind::Drain, "drain", o, move |w| w.drain(&name, &message))
    }
    fn undrain(&self, name: &str) -> Result<(), JenkinsError> {
        let mut w = self.w();
        let o = w.enter(self.session, Kind::Undrain);
        let name = name.to_string();
        w.run(Kind::Undrain, "undrain", o, move |w| w.undrain(&name))
    }
    fn delete_node(&self, name: &str) -> Result<(), JenkinsError> {
        let mut w = self.w();
        let o = w.enter(self.session, Kind::Delete);
        let name = name.to_string();
        w.run(Kind::Delete, "delete", o, move |w| w.delete_node(&name))
    }
    fn set_description(&self, name: &str, description: &str) -> Result<(), JenkinsError> {
        let mut w = self.w();
        let o = w.enter(self.session, Kind::SetDescription);
        let (name, description) = (name.to_string(), description.to_string());
        w.run(Kind::SetDescription, "description update", o, move |w| {
            let foreign = match w.nodes.get_mut(&name) {
                Some(n) if n.foreign => true,
                Some(n) => {
                    n.description = description;
                    false
                }
                None => return Err(status(404, "description update")),
            };
            if foreign {
                w.stats.foreign_touched += 1;
                w.violation("foreign node touched", format!("description of {name}"));
            }
            Ok(())
        })
    }
}

/// The EC2 side for one session.
pub struct SimEc2 {
    pub world: Arc<Mutex<World>>,
    pub session: u64,
}

impl CloudProvider for SimEc2 {
    fn describe_owned(&self, fleet_id: &str) -> Result<Vec<Instance>, CloudError> {
        let mut w = lock(&self.world);
        let o = w.enter(self.session, Kind::Describe);
        let fleet_id = fleet_id.to_string();
        w.run(Kind::Describe, "DescribeInstances", o, move |w| {
            Ok(w.describe(&fleet_id))
        })
    }
    fn launch(&self, spec: &LaunchSpec) -> Result<String, CloudError> {
        let mut w = lock(&self.world);
        let o = w.enter(self.session, Kind::RunInstances);
        let spec = spec.clone();
        w.run(Kind::RunInstances, "RunInstances", o, move |w| {
            w.run_instances(&spec)
        })
    }
    fn terminate(&self, ids: &[String]) -> Result<(), CloudError> {
        let mut w = lock(&self.world);
        let o = w.enter(self.session, Kind::Terminate);
        let ids = ids.to_vec();
        w.run(Kind::Terminate, "TerminateInstances", o, move |w| {
            w.terminate(&ids)
        })
    }
    fn newest_image(&self, _key: &str, _value: &str) -> Result<String, CloudError> {
        Ok("ami-soak".into())
    }

    fn image_parameter(&self, _name: &str) -> Result<String, CloudError> {
        Ok("ami-soak".into())
    }
    fn put_agent_secret(
        &self,
        fleet_id: &str,
        node: &str,
        secret: &Secret,
    ) -> Result<(), CloudError> {
        let mut w = lock(&self.world);
        let o = w.enter(self.session, Kind::PutSecret);
        let (fleet, node, value) = (
            fleet_id.to_string(),
            node.to_string(),
            secret.expose().to_string(),
        );
        w.run(Kind::PutSecret, "PutParameter", o, move |w| {
            if value != secret_of(&node) {
                w.violation("wrong secret stored", format!("node {node}"));
            }
            let now = w.now;
            // A second write of the same node's secret keeps the first (ParameterAlreadyExists).
            w.secrets.entry(node.clone()).or_insert((fleet, now));
            w.note(format!("secret of {node} stored"));
            Ok(())
        })
    }
    fn tag_agent_secret(&self, node: &str, _instance_id: &str) -> Result<(), CloudError> {
        let mut w = lock(&self.world);
        let o = w.enter(self.session, Kind::TagSecret);
        let node = node.to_string();
        w.run(Kind::TagSecret, "AddTagsToResource", o, move |w| {
            if w.secrets.contains_key(&node) {
                Ok(())
            } else {
                Err(CloudError {
                    kind: CloudErrorKind::Invalid,
                    code: "InvalidResourceId".into(),
                    message: format!("AddTagsToResource: no parameter for {node}"),
                })
            }
        })
    }
    fn delete_agent_secret(&self, node: &str) -> Result<(), CloudError> {
        let mut w = lock(&self.world);
        let o = w.enter(self.session, Kind::DeleteSecret);
        let node = node.to_string();
        w.run(Kind::DeleteSecret, "DeleteParameter", o, move |w| {
            if w.secrets.remove(&node).is_some() {
                w.note(format!("secret of {node} deleted"));
            }
            Ok(())
        })
    }
    fn list_agent_secrets(&self, fleet_id: &str) -> Result<Vec<StoredSecret>, CloudError> {
        let mut w = lock(&self.world);
        let o = w.enter(self.session, Kind::ListSecrets);
        let fleet = fleet_id.to_string();
        w.run(Kind::ListSecrets, "DescribeParameters", o, move |w| {
            Ok(w.secrets
                .iter()
                .filter(|(_, (f, _))| *f == fleet)
                .map(|(node, (_, at))| StoredSecret {
                    node: node.clone(),
                    written_ms: Some(*at),
                })
                .collect())
        })
    }
}

/// The agent secret the simulated Jenkins gives `node`.
fn secret_of(node: &str) -> String {
    format!("secret-{node}")
}
