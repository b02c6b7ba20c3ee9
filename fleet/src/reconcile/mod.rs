//! The loop: observe (two Jenkins reads + one tag-filtered describe) → [`scaler::observe`] →
//! [`scaler::decide`] → act. Also hot reload, `/status` and metrics.
//!
//! Safety rules enforced here, on top of `decide`:
//! - a failed read skips the whole poll: no decision, no action (stale data never acts);
//! - the computers are read before the queue, so an item dispatched in between is never
//!   counted both waiting and running;
//! - a fence is known in force when Jenkins' answer arrives (not when it was asked for); a
//!   retire re-checks on the clock that the settle interval has elapsed since, then re-reads
//!   the node and the queue right before deleting; anything but a clean, still-fenced, idle
//!   node aborts the delete;
//! - the node is deleted before the instance is terminated;
//! - a node's agent secret is stored (SSM) before its instance is launched, never in
//!   user-data, and deleted with the node; a secret whose node is gone (a process killed
//!   between the two deletes) is swept once nothing can still be launching for it;
//! - a `RunInstances` without a clear answer is sent again with the same client token, and if
//!   still unknown its node is kept and the launch stays in flight; a delete or lift without a
//!   clear answer may still land, so the node keeps its fence (see `Memory::deleting`,
//!   `Memory::lifting`).

mod asg;

use crate::cloud::{
    CloudError, CloudErrorKind, CloudProvider, Group, ImageRef, Instance, LaunchSpec, Offering,
    TAG_FLEET, TAG_JENKINS, TAG_NODE, TAG_POOL, TAG_TOKEN,
};
use crate::config::{self, Config, ImageSource};
use crate::jenkins::client::NodeSpec;
use crate::jenkins::why::{classify, mentioned_names};
use crate::jenkins::{
    drain_message, parse_drain_message, Computer, JenkinsApi, JenkinsClient, NodeTag, QueueItem,
};
use crate::lease::{Lease, Role};
use crate::scaler::{self, Backoff, InFlight, LaunchPlan, Memory, Plan, Snapshot};
use crate::secret::Secret;
use crate::server::Shared;
use crate::util::{Clock, SystemClock};
use crate::{log_error, log_info, log_warn};
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub mod view;

type Observation = (Vec<QueueItem>, Vec<Computer>, Vec<Instance>);

/// A progress reporter for the reads of an observation (called from the reading threads).
pub type Progress = Box<dyn Fn(&str) + Send + Sync>;

/// How one launch ended.
#[derive(Debug)]
enum LaunchResult {
    Launched {
        id: String,
        offering: Offering,
        executors: u32,
    },
    /// Certainly nothing launched; the never-connected node was deleted again.
    Failed { reason: String, message: String },
    /// `RunInstances` may have acted but no answer said so (lost, timed out, 5xx) and
    /// retries with the same client token did not settle it: the node stays, and the launch
    /// stays in the ledger until its instance shows up or is proven absent.
    Unresolved { message: String },
}

impl LaunchResult {
    fn failed(reason: &str, message: impl Into<String>) -> Self {
        LaunchResult::Failed {
            reason: reason.to_string(),
            message: message.into(),
        }
    }
}

/// Retries of a `RunInstances` whose answer was lost, with the same client token (EC2 then
/// answers with the instance the first call made, or makes it now), and their pauses.
const LAUNCH_RETRIES: u32 = 3;
const LAUNCH_RETRY_PAUSE_MS: u64 = 500;

/// Did EC2 perhaps act although the call failed? A transport failure (timeout, connection
/// dropped) or a 5xx/unparseable answer says nothing about it; capacity, throttling, auth and
/// invalid-request errors are answers that nothing was launched.
fn launch_outcome_unknown(e: &CloudError) -> bool {
    matches!(e.kind, CloudErrorKind::Transport | CloudErrorKind::Other)
}

/// What one poll did.
#[derive(Debug, Default)]
pub struct PollReport {
    pub observed: bool,
    pub plan: Option<Plan>,
    pub errors: Vec<String>,
    pub actions: Vec<String>,
    pub decide_us: u64,
}

pub struct Reconciler {
    cfg: Config,
    config_path: Option<PathBuf>,
    config_text: Option<String>,
    config_error: Option<String>,
    jenkins: Arc<dyn JenkinsApi>,
    /// False when the Jenkins client was handed in ([`Reconciler::with_parts`]): a config
    /// edit of the `[jenkins]` credentials then does not replace it.
    jenkins_from_config: bool,
    cloud: Arc<dyn CloudProvider>,
    clock: Arc<dyn Clock>,
    /// Launches run in parallel, this many at a time (1 = in order, on the loop's thread).
    launch_parallelism: usize,
    pub memory: Memory,
    pub shared: Arc<Shared>,
    images: BTreeMap<(String, String), (String, u64)>,
    cloud_backoff_until: u64,
    throttles: u32,
    subnet_rr: usize,
    last_poll_ms: Option<u64>,
    last_errors: Vec<String>,
    last_actions: Vec<String>,
    last_plan: Option<Plan>,
    lease: Option<Lease>,
    role: Option<Role>,
    leader_polls: u64,
    /// When stored agent secrets were last checked against the nodes.
    last_secret_sweep_ms: u64,
    /// Instances and decisions for the status page.
    page: view::PageState,
    /// The Auto Scaling group of each `asg` pool, as last observed (see `asg.rs`).
    groups: BTreeMap<String, Group>,
    /// Group instances this process tagged (adopted), with when, until the describe shows it.
    adopted: BTreeMap<String, u64>,
    /// Instances seen with a spot notice (counted once each), until the describe drops them.
    spot_notices: BTreeMap<String, serde_json::Value>,
    /// Per-job cost of finished builds (in memory: survives reloads, not restarts).
    pub costs: crate::cost::CostBook,
    /// Where `plan` prints what it is reading (see [`Reconciler::with_progress`]).
    progress: Option<Progress>,
    /// Set by SIGTERM/SIGINT ([`Reconciler::run`]): finish the step under way, start no
    /// other (see [`Reconciler::halt`]).
    stop: Arc<AtomicBool>,
}

fn offering_label(o: &Offering) -> String {
    o.to_string()
}

impl Reconciler {
    pub fn new(
        cfg: Config,
        config_path: Option<PathBuf>,
        cloud: Arc<dyn CloudProvider>,
        shared: Arc<Shared>,
    ) -> Result<Self, String> {
        let token = cfg.read_jenkins_token()?;
        let jenkins = JenkinsClient::with_ca(
            &cfg.jenkins.url,
            &cfg.jenkins.user,
            token,
            cfg.jenkins.timeout_ms,
            cfg.jenkins.ca_file.as_deref(),
        )?;
        let mut r = Self::with_parts(
            cfg,
            config_path,
            Arc::new(jenkins),
            cloud,
            Arc::new(SystemClock),
            shared,
        );
        r.jenkins_from_config = true;
        Ok(r)
    }

    /// A reconciler over any Jenkins, cloud and clock (the soak test runs it against
    /// in-process fakes in virtual time). Edits of `[jenkins]` credentials in the config file
    /// keep `jenkins` as it is.
    pub fn with_parts(
        cfg: Config,
        config_path: Option<PathBuf>,
        jenkins: Arc<dyn JenkinsApi>,
        cloud: Arc<dyn CloudProvider>,
        clock: Arc<dyn Clock>,
        shared: Arc<Shared>,
    ) -> Self {
        let config_text = config_path
            .as_ref()
            .and_then(|p| std::fs::read_to_string(p).ok());
        Reconciler {
            cfg,
            config_path,
            config_text,
            config_error: None,
            jenkins,
            jenkins_from_config: false,
            cloud,
            clock,
            launch_parallelism: 8,
            memory: Memory::default(),
            shared,
            images: BTreeMap::new(),
            cloud_backoff_until: 0,
            throttles: 0,
            subnet_rr: 0,
            last_poll_ms: None,
            last_secret_sweep_ms: 0,
            groups: BTreeMap::new(),
            adopted: BTreeMap::new(),
            spot_notices: BTreeMap::new(),
            costs: Default::default(),
            last_errors: Vec::new(),
            last_actions: Vec::new(),
            last_plan: None,
            lease: None,
            role: None,
            leader_polls: 0,
            page: view::PageState::default(),
            stop: Arc::new(AtomicBool::new(false)),
            progress: None,
        }
    }

    /// Report each read of an observation (start, then its result and how long it took) to
    /// `f`; `plan` prints them on stderr. Errors themselves are in the [`PollReport`].
    pub fn with_progress(mut self, f: Progress) -> Self {
        self.progress = Some(f);
        self
    }

    /// How many launches run at once (default 8; 1 runs them in order on the loop's thread,
    /// which keeps a seeded soak run reproducible: then the reads of an observation run in
    /// order on that thread too, instead of Jenkins and the cloud at the same time).
    pub fn with_launch_parallelism(mut self, n: usize) -> Self {
        self.launch_parallelism = n.max(1);
        self
    }

    /// Run as one of several replicas: act only while holding `lease`.
    pub fn with_lease(mut self, lease: Lease) -> Self {
        self.lease = Some(lease);
        self
    }

    /// False when a lease is configured and not held (by the local monotonic deadline).
    pub fn may_act(&self) -> bool {
        self.lease.as_ref().is_none_or(Lease::may_act)
    }

    pub fn config(&self) -> &Config {
        &self.cfg
    }

    pub fn config_error(&self) -> Option<&str> {
        self.config_error.as_deref()
    }

    /// Re-read the config file; apply a valid edit as a diff, reject an invalid one.
    fn reload(&mut self) {
        let Some(path) = self.config_path.clone() else {
            return;
        };
        // Bytes, not a String: a file that is not UTF-8 is reported by `load_file` (with its
        // offset), the same way `check` reports it.
        let text = match std::fs::read(&path) {
            Ok(t) => String::from_utf8_lossy(&t).into_owned(),
            Err(e) => {
                self.config_error = Some(format!(
                    "{}: cannot read the file: {e}; the running config stays",
                    path.display()
                ));
                return;
            }
        };
        if self.config_text.as_deref() == Some(text.as_str()) {
            return;
        }
        self.config_text = Some(text);
        let m = &self.shared.metrics;
        match config::load_file(&path) {
            Err(e) => {
                let msg = format!("{e}\n(the edit was rejected; the running config stays)");
                log_error!("config reload rejected: {}", msg.replace('\n', "; "));
                self.config_error = Some(msg);
                m.inc(
                    "nectr_fleet_config_reloads_total",
                    &[("result", "rejected")],
                    1.0,
                );
            }
            Ok(new) => {
                let changes = config::diff(&self.cfg, &new);
                let restart: Vec<String> = changes
                    .iter()
                    .filter(|c| c.needs_restart)
                    .map(|c| c.to_string())
                    .collect();
                if !restart.is_empty() {
                    let msg = format!(
                        "{}: these changes need a restart, so the edit was rejected and the running config stays: {}",
                        path.display(),
                        restart.join("; ")
                    );
                    log_error!("{msg}");
                    self.config_error = Some(msg);
                    m.inc(
                        "nectr_fleet_config_reloads_total",
                        &[("result", "rejected")],
                        1.0,
                    );
                    return;
                }
                if self.jenkins_from_config
                    && (new.jenkins.token_file != self.cfg.jenkins.token_file
                        || new.jenkins.user != self.cfg.jenkins.user
                        || new.jenkins.timeout_ms != self.cfg.jenkins.timeout_ms
                        || new.jenkins.ca_file != self.cfg.jenkins.ca_file)
                {
                    let client = new.read_jenkins_token().and_then(|t| {
                        JenkinsClient::with_ca(
                            &new.jenkins.url,
                            &new.jenkins.user,
                            t,
                            new.jenkins.timeout_ms,
                            new.jenkins.ca_file.as_deref(),
                        )
                    });
                    match client {
                        Ok(c) => self.jenkins = Arc::new(c),
                        Err(e) => {
                            self.config_error = Some(format!(
                                "{e}; the edit was rejected and the running config stays"
                            ));
                            m.inc(
                                "nectr_fleet_config_reloads_total",
                                &[("result", "rejected")],
                                1.0,
                            );
                            return;
                        }
                    }
                }
                for c in &changes {
                    log_info!("config change applied: {c}");
                }
                self.cfg = new;
                self.config_error = None;
                m.inc(
                    "nectr_fleet_config_reloads_total",
                    &[("result", "applied")],
                    1.0,
                );
            }
        }
    }

    fn note_cloud_error(&mut self, e: &CloudError, now: u64) {
        self.shared.metrics.inc(
            "nectr_fleet_errors_total",
            &[("source", "cloud"), ("kind", e.kind.as_str())],
            1.0,
        );
        if e.kind == CloudErrorKind::Throttled {
            self.throttles = (self.throttles + 1).min(6);
            let wait = 1000u64 << self.throttles;
            self.cloud_backoff_until = now + wait.min(60_000);
            log_warn!("cloud throttled ({e}); backing off {} ms", wait.min(60_000));
        }
    }

    fn observe_all(&mut self) -> Result<Observation, Vec<String>> {
        let mut errors = Vec::new();
        let progress = |msg: String| {
            if let Some(p) = &self.progress {
                p(&msg)
            }
        };
        let jenkins = self.jenkins.clone();
        let cloud = self.cloud.clone();
        let fleet_id = self.cfg.fleet_id.clone();
        let jenkins_start = format!(
            "reading the computer list, then the queue, from Jenkins at {} (each within jenkins.timeout = {}) ...",
            self.cfg.jenkins.url,
            crate::util::format_duration_ms(self.cfg.jenkins.timeout_ms)
        );
        let cloud_start = format!(
            "reading the instances of fleet {} from EC2 in {} (within aws.timeout = {}) ...",
            self.cfg.fleet_id,
            self.cfg.aws.region,
            crate::util::format_duration_ms(self.cfg.aws.timeout_ms)
        );
        let wanted = self.wanted_groups();
        let (jenkins_reads, cloud_reads) = if self.launch_parallelism > 1 {
            // Jenkins and the cloud are independent: read them at the same time, so a poll
            // (and `plan`) waits for the slower of the two, not for their sum.
            std::thread::scope(|s| {
                let j = s.spawn(|| read_jenkins(&*jenkins, &jenkins_start, &progress));
                let c = read_cloud(&*cloud, &fleet_id, &cloud_start, &wanted, &progress);
                let j = j.join().unwrap_or_else(|_| JenkinsReads {
                    computers: Err(crate::jenkins::client::JenkinsError::Parse {
                        what: "computer list read".into(),
                        detail: "the reading thread panicked".into(),
                    }),
                    queue: None,
                });
                (j, c)
            })
        } else {
            // In order on this thread (the seeded soak, which must be reproducible).
            (
                read_jenkins(&*jenkins, &jenkins_start, &progress),
                read_cloud(&*cloud, &fleet_id, &cloud_start, &wanted, &progress),
            )
        };
        let m = &self.shared.metrics;
        let jenkins_error = |e: crate::jenkins::client::JenkinsError| {
            m.inc(
                "nectr_fleet_errors_total",
                &[("source", "jenkins"), ("kind", e.kind())],
                1.0,
            );
            e.to_string()
        };
        let computers = jenkins_reads.computers.map_err(jenkins_error);
        // `None`: not read, because the computer list read already found Jenkins silent or
        // unreachable; its error says so once.
        let queue = jenkins_reads
            .queue
            .map(|q| q.map_err(jenkins_error))
            .unwrap_or_else(|| Err(String::new()));
        let (instances, groups) = cloud_reads;
        let instances = match instances {
            Ok(i) => {
                self.throttles = 0;
                Ok(i)
            }
            Err(e) => {
                self.note_cloud_error(&e, self.clock.now_ms());
                Err(format!("cloud describe: {e}"))
            }
        };
        let groups = self.apply_groups(groups);
        match (queue, computers, instances) {
            (Ok(q), Ok(c), Ok(i)) if groups.is_ok() => Ok((q, c, i)),
            (q, c, i) => {
                for r in [c.err(), q.err(), i.err()].into_iter().flatten() {
                    if !r.is_empty() {
                        errors.push(r);
                    }
                }
                errors.extend(groups.err().unwrap_or_default());
                Err(errors)
            }
        }
    }

    /// A new `X-Jenkins-Session` means the controller restarted: hold idle clocks for
    /// `jenkins.restart_grace` (see `scaler::observe`).
    fn note_controller_session(&mut self, now: u64) {
        let Some(new) = self.jenkins.session() else {
            return;
        };
        if self
            .memory
            .controller_session
            .as_ref()
            .is_some_and(|old| *old != new)
        {
            log_info!(
                "Jenkins restarted (new session): no node counts as idle for {} while resumed builds take their nodes back",
                crate::util::format_duration_ms(self.cfg.jenkins.restart_grace_ms)
            );
            self.memory.controller_restarted_ms = Some(now);
        }
        self.memory.controller_session = Some(new);
    }

    /// One poll. With `act == false` nothing is changed anywhere (the `plan` command).
    pub fn poll_once(&mut self, act: bool) -> PollReport {
        let mut report = PollReport::default();
        // `plan` (act == false from the caller) prints the errors itself, once.
        let log_failures = act;
        if act {
            self.reload();
        }
        let now = self.clock.now_ms();
        let mut act = act;
        if act {
            if let Some(lease) = self.lease.as_mut() {
                let role = lease.tick(now);
                match &role {
                    Role::Leader { generation } => {
                        self.leader_polls += 1;
                        if self.leader_polls == 1 {
                            log_info!("lease acquired (generation {generation}): observing one poll before acting");
                            // The previous leader's in-flight launches are unknown for one poll,
                            // and its last Jenkins writes may still land: start afresh (no
                            // destructive action or lift for 2 x jenkins.timeout).
                            act = false;
                            self.memory.started_ms = None;
                        }
                    }
                    Role::Standby { .. } | Role::Unknown { .. } => {
                        if self.leader_polls > 0 {
                            log_warn!("lease lost: {role:?}; standing by");
                        }
                        self.leader_polls = 0;
                        act = false;
                    }
                }
                let is_leader = matches!(role, Role::Leader { .. });
                self.shared.metrics.set(
                    "nectr_fleet_leader",
                    &[],
                    if is_leader { 1.0 } else { 0.0 },
                );
                self.role = Some(role);
            }
        }
        let m = self.shared.clone();
        let metrics = &m.metrics;
        if now < self.cloud_backoff_until {
            metrics.inc("nectr_fleet_polls_total", &[("result", "backoff")], 1.0);
            report
                .errors
                .push("cloud API backoff after throttling: skipping this poll".into());
            self.finish(now, &report);
            return report;
        }
        let (queue, computers, mut instances) = match self.observe_all() {
            Ok(x) => x,
            Err(errs) => {
                if log_failures {
                    for e in &errs {
                        log_warn!("observation failed, no action this poll: {e}");
                    }
                }
                metrics.inc("nectr_fleet_polls_total", &[("result", "error")], 1.0);
                report.errors = errs;
                self.finish(now, &report);
                return report;
            }
        };
        report.observed = true;
        metrics.inc("nectr_fleet_polls_total", &[("result", "ok")], 1.0);
        self.shared.poll_succeeded();
        // From here on the poll's time is when its observation was complete: a fence seen in
        // it was in force by then at the latest (see `Memory::fences`).
        let now = self.clock.now_ms();
        self.note_controller_session(now);

        // Launch-to-online latency and idle instance-seconds, from this observation.
        let connected: BTreeSet<&str> = computers
            .iter()
            .filter(|c| c.connected)
            .map(|c| c.name.as_str())
            .collect();
        for (node, t) in &self.memory.launched_at {
            if connected.contains(node.as_str()) {
                let pool = NodeTag::parse(
                    computers
                        .iter()
                        .find(|c| &c.name == node)
                        .and_then(|c| c.description.as_deref())
                        .unwrap_or(""),
                )
                .map(|t| t.pool)
                .unwrap_or_default();
                metrics.observe(
                    "nectr_fleet_launch_to_online_seconds",
                    &[("pool", &pool)],
                    now.saturating_sub(*t) as f64 / 1000.0,
                );
            }
        }
        if let Some(last) = self.last_poll_ms {
            let dt = now.saturating_sub(last) as f64 / 1000.0;
            for c in &computers {
                if let Some(tag) = c.description.as_deref().and_then(NodeTag::parse) {
                    if tag.fleet == self.cfg.fleet_id && c.connected && c.is_certainly_idle() {
                        metrics.inc(
                            "nectr_fleet_idle_instance_seconds_total",
                            &[("pool", &tag.pool)],
                            dt,
                        );
                    }
                }
            }
        }

        self.note_spot_notices(&instances, now);
        for f in self.costs.observe(&computers, &instances, &self.cfg, now) {
            let labels = [("job", f.job.as_str()), ("pool", f.pool.as_str())];
            metrics.inc("nectr_fleet_job_cost_dollars_total", &labels, f.dollars);
            metrics.inc("nectr_fleet_job_instance_seconds_total", &labels, f.seconds);
        }

        // Auto Scaling groups: their untagged instances get their nodes now, and count in
        // this poll's decision as booting instances (see asg.rs).
        if act && !self.groups.is_empty() && self.may_act() {
            let adopted = self.adopt_group_instances(&instances, &mut report, now);
            instances.extend(adopted);
        }
        // Schedules: the pools' min_instances and spare_executors of the windows in force at
        // this poll's wall time (from the injected clock); decide stays pure.
        let cfg_now = self.cfg.at(now);
        self.memory = scaler::observe(&self.memory, &computers, &instances, &cfg_now, now);
        let started = Instant::now();
        let plan = scaler::decide(
            &Snapshot {
                queue: &queue,
                computers: &computers,
                instances: &instances,
                memory: &self.memory,
            },
            &cfg_now,
            now,
        );
        let elapsed = started.elapsed();
        report.decide_us = elapsed.as_micros() as u64;
        metrics.observe("nectr_fleet_decision_seconds", &[], elapsed.as_secs_f64());
        self.export_plan_metrics(&plan);

        self.page.instances = view::instance_rows(
            &instances,
            &computers,
            &self.jenkins.current_builds(),
            &self.memory,
            &self.cfg,
            now,
        );
        view::record_decisions(
            &mut self.page.decisions,
            &plan,
            &crate::util::format_iso8601_ms(now),
            act,
        );
        if act {
            self.execute(&plan, &mut report, now);
            if !self.groups.is_empty() && self.may_act() {
                self.protect_busy(&instances, &computers, &mut report);
            }
            self.sweep_secrets(&computers, &mut report, now);
        }
        report.plan = Some(plan);
        self.finish(now, &report);
        report
    }

    /// Count and log each owned instance's spot notice once (the tag stays until EC2 takes
    /// the instance); forget instances the describe no longer shows.
    fn note_spot_notices(&mut self, instances: &[Instance], now: u64) {
        let owned: Vec<&Instance> = instances
            .iter()
            .filter(|i| i.is_owned_by(&self.cfg.fleet_id, &self.cfg.jenkins.url))
            .collect();
        self.spot_notices
            .retain(|id, _| owned.iter().any(|i| &i.id == id));
        for i in owned {
            let pool = i.pool().unwrap_or("");
            let rebalance = self.cfg.pool(pool).is_some_and(|p| p.rebalance);
            let Some(kind) = i.spot_notice(rebalance) else {
                continue;
            };
            if self.spot_notices.contains_key(&i.id) {
                continue;
            }
            let tag = if kind == "interruption" {
                crate::cloud::TAG_INTERRUPTION
            } else {
                crate::cloud::TAG_REBALANCE
            };
            log_warn!(
                "instance {} (node {}, pool {pool}) reported a spot {kind} notice ({}): fencing it and launching its replacement",
                i.id,
                i.node().unwrap_or("none"),
                i.tag(tag).unwrap_or("")
            );
            self.shared.metrics.inc(
                "nectr_fleet_spot_interruptions_total",
                &[("pool", pool), ("kind", kind)],
                1.0,
            );
            self.spot_notices.insert(
                i.id.clone(),
                json!({
                    "instance": i.id,
                    "pool": pool,
                    "node": i.node(),
                    "kind": kind,
                    "notice": i.tag(tag),
                    "seen": crate::util::format_iso8601_ms(now),
                    "state": i.state.as_str(),
                }),
            );
        }
    }

    fn export_plan_metrics(&self, plan: &Plan) {
        let m = &self.shared.metrics;
        for g in [
            "nectr_fleet_queue_oldest_wait_seconds",
            "nectr_fleet_demand_executors",
            "nectr_fleet_supply_executors",
            "nectr_fleet_instances",
            "nectr_fleet_dollars_per_hour",
            "nectr_fleet_not_launchable_items",
        ] {
            m.clear(g);
        }
        for (pool, v) in &plan.pools {
            let p = pool.as_str();
            m.set(
                "nectr_fleet_queue_oldest_wait_seconds",
                &[("pool", p)],
                v.oldest_wait_ms as f64 / 1000.0,
            );
            m.set(
                "nectr_fleet_demand_executors",
                &[("pool", p)],
                v.demand_executors as f64,
            );
            m.set(
                "nectr_fleet_supply_executors",
                &[("pool", p), ("state", "idle")],
                v.idle_executors as f64,
            );
            m.set(
                "nectr_fleet_supply_executors",
                &[("pool", p), ("state", "busy")],
                v.busy_executors as f64,
            );
            m.set(
                "nectr_fleet_supply_executors",
                &[("pool", p), ("state", "connecting")],
                v.connecting_executors as f64,
            );
            m.set(
                "nectr_fleet_supply_executors",
                &[("pool", p), ("state", "in_flight")],
                v.in_flight_executors as f64,
            );
            m.set("nectr_fleet_instances", &[("pool", p)], v.instances as f64);
            m.set(
                "nectr_fleet_dollars_per_hour",
                &[("pool", p)],
                v.dollars_per_hour,
            );
        }
        for (reason, n) in &plan.not_launchable {
            m.set(
                "nectr_fleet_not_launchable_items",
                &[("reason", reason)],
                *n as f64,
            );
        }
    }

    fn execute(&mut self, plan: &Plan, report: &mut PollReport, now: u64) {
        let m = self.shared.clone();
        let metrics = &m.metrics;
        // Launches first: they are what queue latency depends on.
        if !self.may_act() {
            report
                .errors
                .push("lease not held (or expired locally): no action".into());
            return;
        }
        if !plan.launches.is_empty() && !self.halt(report) {
            self.launch_all(plan, report, now);
        }
        for a in &plan.lifts {
            if self.halt(report) {
                break;
            }
            match self.jenkins.undrain(&a.node) {
                Ok(()) => {
                    self.memory.fences.remove(&a.node);
                    fence_outcome(metrics, "lifted");
                    report
                        .actions
                        .push(format!("lifted fence on {} ({})", a.node, a.reason));
                }
                Err(e) => {
                    if e.outcome_unknown() {
                        // It may still land: no retire and no second toggle for a while.
                        self.memory
                            .lifting
                            .insert(a.node.clone(), self.clock.now_ms());
                    }
                    report.errors.push(format!("lift fence on {}: {e}", a.node));
                }
            }
        }
        let mut fresh_queue_mentions: Option<Result<BTreeSet<String>, String>> = None;
        for a in &plan.retires {
            if self.halt(report) {
                break;
            }
            // The settle interval must have fully elapsed since the fence was known in force
            // before the final re-read is sent (decide checked it at the observation; this
            // holds it against the clock, whatever the poll's calls took).
            let settled = self.memory.fences.get(&a.node).is_some_and(|t| {
                self.clock.now_ms() >= t.saturating_add(self.cfg.settle_interval_ms)
            });
            if !settled {
                report.actions.push(format!(
                    "retire of {} postponed: the settle interval since the fence is not over",
                    a.node
                ));
                continue;
            }
            // Final re-read of the node, and of the queue items pinned to it.
            let node = match self.jenkins.computer(&a.node) {
                Ok(Some(c)) => c,
                Ok(None) => {
                    // Our earlier delete landed after all: finish the retire.
                    if self.memory.deleting.remove(&a.node).is_some() {
                        if let Some(id) = &a.instance {
                            match self.terminate_instance(id) {
                                Ok(()) => {
                                    fence_outcome(metrics, "retired");
                                    report.actions.push(format!(
                                        "retired {} (its earlier delete landed) and terminated {id}",
                                        a.node
                                    ));
                                }
                                Err(e) => {
                                    self.note_cloud_error(&e, now);
                                    report.errors.push(format!("retire {}: node gone, terminate of {id} failed (retried as an orphan): {e}", a.node));
                                }
                            }
                            continue;
                        }
                    }
                    report.actions.push(format!("{} already gone", a.node));
                    continue;
                }
                Err(e) => {
                    fence_outcome(metrics, "aborted");
                    report.errors.push(format!(
                        "retire {}: re-read failed, nothing deleted: {e}",
                        a.node
                    ));
                    continue;
                }
            };
            let mentions = fresh_queue_mentions.get_or_insert_with(|| {
                self.jenkins
                    .queue()
                    .map(|q| {
                        q.iter()
                            .filter_map(|i| i.why.as_deref())
                            .flat_map(|w| {
                                mentioned_names(&classify(w))
                                    .into_iter()
                                    .map(str::to_string)
                                    .collect::<Vec<_>>()
                            })
                            .collect()
                    })
                    .map_err(|e| e.to_string())
            });
            let pinned = match mentions {
                Ok(set) => set.contains(&a.node),
                Err(e) => {
                    fence_outcome(metrics, "aborted");
                    report.errors.push(format!(
                        "retire {}: queue re-read failed, nothing deleted: {e}",
                        a.node
                    ));
                    continue;
                }
            };
            let still_ours = node.temporarily_offline
                && node
                    .offline_cause_reason
                    .as_deref()
                    .and_then(|r| parse_drain_message(r, &self.cfg.fleet_id))
                    .is_some();
            if !still_ours || !node.is_certainly_idle() || pinned {
                fence_outcome(metrics, "aborted");
                report.actions.push(format!(
                    "retire of {} aborted at the final re-read (fenced by us: {still_ours}, idle: {}, pinned: {pinned})",
                    a.node,
                    node.is_certainly_idle()
                ));
                continue;
            }
            if let Some(why) = a
                .instance
                .as_deref()
                .and_then(|i| self.group_blocks_retire(i))
            {
                fence_outcome(metrics, "aborted");
                report
                    .errors
                    .push(format!("retire of {} postponed: {why}", a.node));
                continue;
            }
            if let Err(e) = self.jenkins.delete_node(&a.node) {
                fence_outcome(metrics, "aborted");
                if e.outcome_unknown() {
                    // It may still land: the node is never lifted again; the retire repeats.
                    self.memory
                        .deleting
                        .insert(a.node.clone(), self.clock.now_ms());
                }
                report.errors.push(format!(
                    "retire {}: delete failed, instance kept: {e}",
                    a.node
                ));
                continue;
            }
            self.memory.deleting.remove(&a.node);
            self.memory.fences.remove(&a.node);
            self.memory.idle_since.remove(&a.node);
            self.delete_secret(&a.node, report);
            if let Some(id) = &a.instance {
                if let Err(e) = self.terminate_instance(id) {
                    self.note_cloud_error(&e, now);
                    report.errors.push(format!("retire {}: node deleted, terminate of {id} failed (retried as an orphan): {e}", a.node));
                    continue;
                }
            }
            fence_outcome(metrics, "retired");
            report.actions.push(format!(
                "retired {} and terminated {}",
                a.node,
                a.instance.as_deref().unwrap_or("(no instance)")
            ));
        }
        for a in &plan.fences {
            if self.halt(report) {
                break;
            }
            // `at=` says when the fence was asked for; it is informative only.
            let msg = drain_message(&self.cfg.fleet_id, self.clock.now_ms());
            match self.jenkins.drain(&a.node, &msg) {
                Ok(()) => {
                    // Jenkins applied it by the time its answer arrived: the fence is known in
                    // force from now, however long the request took. A lost answer leaves no
                    // entry; the next observation adopts the fence if Jenkins shows it.
                    let in_force = self.clock.now_ms();
                    self.memory.fences.insert(a.node.clone(), in_force);
                    fence_outcome(metrics, "fenced");
                    report
                        .actions
                        .push(format!("fenced {} ({})", a.node, a.reason));
                }
                Err(e) => report.errors.push(format!("fence {}: {e}", a.node)),
            }
        }
        for o in &plan.orphan_instances {
            if self.halt(report) {
                break;
            }
            if let Some(n) = &o.node {
                // Re-check: the node must still be disconnected and idle.
                match self.jenkins.computer(n) {
                    Ok(Some(c)) if c.connected || !c.is_certainly_idle() => {
                        report
                            .actions
                            .push(format!("orphan {}: node {n} came up, kept", o.instance));
                        continue;
                    }
                    Ok(_) => {}
                    Err(e) => {
                        report.errors.push(format!(
                            "orphan {}: re-read of {n} failed, kept: {e}",
                            o.instance
                        ));
                        continue;
                    }
                }
                if let Err(e) = self.jenkins.delete_node(n) {
                    report.errors.push(format!(
                        "orphan {}: delete of node {n} failed, kept: {e}",
                        o.instance
                    ));
                    continue;
                }
                self.delete_secret(n, report);
            }
            match self.terminate_instance(&o.instance) {
                Ok(()) => {
                    metrics.inc(
                        "nectr_fleet_orphans_cleaned_total",
                        &[("kind", "instance")],
                        1.0,
                    );
                    report
                        .actions
                        .push(format!("terminated orphan {} ({})", o.instance, o.reason));
                }
                Err(e) => {
                    self.note_cloud_error(&e, now);
                    report
                        .errors
                        .push(format!("terminate orphan {}: {e}", o.instance));
                }
            }
        }
        for a in &plan.orphan_nodes {
            if self.halt(report) {
                break;
            }
            match self.jenkins.computer(&a.node) {
                Ok(Some(c)) if c.connected || !c.is_certainly_idle() => {
                    report
                        .actions
                        .push(format!("orphan node {} came up or got work, kept", a.node));
                    continue;
                }
                Ok(None) => continue,
                Ok(Some(_)) => {}
                Err(e) => {
                    report
                        .errors
                        .push(format!("orphan node {}: re-read failed, kept: {e}", a.node));
                    continue;
                }
            }
            match self.jenkins.delete_node(&a.node) {
                Ok(()) => {
                    self.delete_secret(&a.node, report);
                    metrics.inc(
                        "nectr_fleet_orphans_cleaned_total",
                        &[("kind", "node")],
                        1.0,
                    );
                    report
                        .actions
                        .push(format!("deleted orphan node {} ({})", a.node, a.reason));
                }
                Err(e) => report
                    .errors
                    .push(format!("delete orphan node {}: {e}", a.node)),
            }
        }
        for a in &report.actions {
            log_info!("{a}");
        }
        for e in &report.errors {
            log_warn!("{e}");
        }
    }

    /// Before each step of `execute`: true (and why, in the report) when no further step may
    /// start, because the lease expired locally or a shutdown was asked for. A step under
    /// way (a launch with its retries, a fence, a retire's re-read/delete/terminate) always
    /// finishes first.
    fn halt(&self, report: &mut PollReport) -> bool {
        if self.stop.load(Ordering::Relaxed) {
            let msg =
                "shutting down: the remaining actions of this poll are left to the next start";
            if !report.errors.iter().any(|e| e == msg) {
                report.errors.push(msg.into());
            }
            return true;
        }
        if !self.may_act() {
            report.errors.push("lease expired locally: stopping".into());
            return true;
        }
        false
    }

    /// Give the lease up at shutdown so that a standby takes over at its next poll instead
    /// of after the TTL. `None` without a lease; `Some((generation, outcome))` otherwise,
    /// `Ok(false)` when it was not held.
    pub fn release_lease(&mut self) -> Option<(u64, Result<bool, CloudError>)> {
        let lease = self.lease.as_mut()?;
        let generation = lease.generation();
        let r = lease.release();
        self.shared.metrics.set("nectr_fleet_leader", &[], 0.0);
        Some((generation, r))
    }

    /// Delete a deleted node's stored secret. A failure is reported; the sweep retries it.
    fn delete_secret(&mut self, node: &str, report: &mut PollReport) {
        if let Err(e) = self.cloud.delete_agent_secret(node) {
            self.note_cloud_error(&e, self.clock.now_ms());
            report.errors.push(format!(
                "node {node} deleted, but its stored secret was not (swept later): {e}"
            ));
        }
    }

    /// Delete stored secrets of this fleet whose node is not in Jenkins, once nothing can
    /// still be launching for them (written longer ago than a launch takes to settle, see
    /// [`scaler::launch_settled_ms`]). At most every `orphan_grace` (and 2 polls), never
    /// while recovering.
    fn sweep_secrets(&mut self, computers: &[Computer], report: &mut PollReport, now: u64) {
        let every = self.cfg.orphan_grace_ms.max(2 * self.cfg.poll_interval_ms);
        if now < self.last_secret_sweep_ms.saturating_add(every)
            || !self.may_act()
            || self.stop.load(Ordering::Relaxed)
            || scaler::recovering(&self.memory, &self.cfg, now)
        {
            return;
        }
        self.last_secret_sweep_ms = now;
        let stored = match self.cloud.list_agent_secrets(&self.cfg.fleet_id) {
            Ok(s) => s,
            Err(e) => {
                self.note_cloud_error(&e, now);
                report
                    .errors
                    .push(format!("listing stored agent secrets failed: {e}"));
                return;
            }
        };
        let nodes: BTreeSet<&str> = computers.iter().map(|c| c.name.as_str()).collect();
        let settled = scaler::launch_settled_ms(&self.cfg);
        for s in stored {
            let old = s
                .written_ms
                .is_some_and(|w| now.saturating_sub(w) > settled);
            if nodes.contains(s.node.as_str()) || !old {
                continue;
            }
            if !self.may_act() || self.stop.load(Ordering::Relaxed) {
                break;
            }
            match self.cloud.delete_agent_secret(&s.node) {
                Ok(()) => {
                    self.shared.metrics.inc(
                        "nectr_fleet_orphans_cleaned_total",
                        &[("kind", "secret")],
                        1.0,
                    );
                    report.actions.push(format!(
                        "deleted the stored secret of node {} (the node is gone)",
                        s.node
                    ));
                }
                Err(e) => report
                    .errors
                    .push(format!("delete the stored secret of node {}: {e}", s.node)),
            }
        }
    }

    fn resolve_image(&mut self, source: &ImageSource, now: u64) -> Result<ImageRef, String> {
        match source {
            ImageSource::Ami(id) => Ok(ImageRef::Ami(id.clone())),
            ImageSource::LaunchTemplate {
                id_or_name,
                version,
            } => Ok(ImageRef::LaunchTemplate {
                id_or_name: id_or_name.clone(),
                version: version.clone(),
            }),
            ImageSource::NewestTagged { key, value } => {
                let k = (key.clone(), value.clone());
                if let Some((id, at)) = self.images.get(&k) {
                    if now.saturating_sub(*at) < 600_000 {
                        return Ok(ImageRef::Ami(id.clone()));
                    }
                }
                let id = self
                    .cloud
                    .newest_image(key, value)
                    .map_err(|e| e.to_string())?;
                self.images.insert(k, (id.clone(), now));
                Ok(ImageRef::Ami(id))
            }
            ImageSource::Group => Err(
                "an Auto Scaling group's pool is launched by its group, not by RunInstances".into(),
            ),
            ImageSource::Parameter { name } => {
                // Cached like a tag lookup, under a key no tag can have.
                let k = (String::new(), name.clone());
                if let Some((id, at)) = self.images.get(&k) {
                    if now.saturating_sub(*at) < 600_000 {
                        return Ok(ImageRef::Ami(id.clone()));
                    }
                }
                let id = self
                    .cloud
                    .image_parameter(name)
                    .map_err(|e| e.to_string())?;
                self.images.insert(k, (id.clone(), now));
                Ok(ImageRef::Ami(id))
            }
        }
    }

    fn launch_all(&mut self, plan: &Plan, report: &mut PollReport, now: u64) {
        struct Job {
            launch: LaunchPlan,
            token: String,
            node: String,
            image: Result<ImageRef, String>,
            subnet: Option<String>,
        }
        let mut jobs = Vec::new();
        let in_groups: Vec<&LaunchPlan> = plan
            .launches
            .iter()
            .filter(|l| {
                self.cfg
                    .pool(&l.pool)
                    .is_some_and(|p| p.backend.group().is_some())
            })
            .collect();
        if !in_groups.is_empty() {
            self.launch_groups(&in_groups, report, now);
        }
        for l in &plan.launches {
            let Some(pool) = self.cfg.pool(&l.pool).cloned() else {
                continue;
            };
            if pool.backend.group().is_some() {
                continue;
            }
            let token = self.clock.random_hex(8);
            let node = format!("{}-{}-{}", self.cfg.jenkins.node_prefix, pool.name, token);
            let image = self.resolve_image(&pool.image, now);
            let subnet = if pool.subnets.is_empty() {
                None
            } else {
                self.subnet_rr = self.subnet_rr.wrapping_add(1);
                Some(pool.subnets[self.subnet_rr % pool.subnets.len()].clone())
            };
            let price = l
                .offerings
                .first()
                .and_then(|o| pool.instance_type(&o.instance_type))
                .and_then(|t| t.price);
            self.memory.ledger.insert(
                token.clone(),
                InFlight {
                    pool: pool.name.clone(),
                    node: node.clone(),
                    executors: l.executors,
                    price,
                    started_ms: now,
                    instance_id: None,
                },
            );
            jobs.push(Job {
                launch: l.clone(),
                token,
                node,
                image,
                subnet,
            });
        }
        let oldest_wait: BTreeMap<String, u64> = plan
            .pools
            .iter()
            .map(|(k, v)| (k.clone(), v.oldest_wait_ms))
            .collect();
        let lease = self.lease.as_ref();
        let may_act = move || lease.is_none_or(Lease::may_act);
        let ctx = LaunchCtx {
            may_act: &may_act,
            cfg: &self.cfg,
            jenkins: self.jenkins.as_ref(),
            cloud: self.cloud.as_ref(),
            clock: self.clock.as_ref(),
            backoff: &self.memory.offering_backoff,
            now,
        };
        let run = |j: &Job| {
            let mut capacity_failed = Vec::new();
            let r = launch_one(
                &ctx,
                &j.launch,
                &j.token,
                &j.node,
                &j.image,
                j.subnet.clone(),
                &mut capacity_failed,
            );
            (r, capacity_failed)
        };
        let mut results: Vec<(usize, LaunchResult, Vec<Offering>)> = Vec::new();
        if self.launch_parallelism <= 1 {
            for (i, j) in jobs.iter().enumerate() {
                let (r, c) = run(j);
                results.push((i, r, c));
            }
        } else {
            let indexed: Vec<(usize, &Job)> = jobs.iter().enumerate().collect();
            std::thread::scope(|s| {
                for chunk in indexed.chunks(self.launch_parallelism) {
                    let handles: Vec<_> = chunk
                        .iter()
                        .map(|(i, j)| {
                            let i = *i;
                            let run = &run;
                            s.spawn(move || {
                                let (r, c) = run(j);
                                (i, r, c)
                            })
                        })
                        .collect();
                    for h in handles {
                        match h.join() {
                            Ok(r) => results.push(r),
                            Err(_) => log_error!("a launch thread panicked"),
                        }
                    }
                }
            });
        }
        let metrics = &self.shared.metrics;
        let now_done = self.clock.now_ms();
        for (i, r, capacity_failed) in results {
            let j = &jobs[i];
            for o in capacity_failed {
                let b = self
                    .memory
                    .offering_backoff
                    .entry(o.clone())
                    .or_insert(Backoff {
                        until_ms: 0,
                        failures: 0,
                    });
                b.failures = (b.failures + 1).min(6);
                b.until_ms = now_done + (30_000u64 << (b.failures - 1)).min(900_000);
                metrics.inc(
                    "nectr_fleet_launch_failures_total",
                    &[("pool", &j.launch.pool), ("reason", "capacity")],
                    1.0,
                );
                log_warn!(
                    "no capacity for {o}: backing it off until {}",
                    crate::util::format_iso8601_ms(b.until_ms)
                );
            }
            match r {
                LaunchResult::Launched {
                    id,
                    offering,
                    executors,
                } => {
                    if let Some(e) = self.memory.ledger.get_mut(&j.token) {
                        e.instance_id = Some(id.clone());
                        e.executors = executors;
                    }
                    self.memory.launched_at.insert(j.node.clone(), now_done);
                    metrics.inc(
                        "nectr_fleet_launches_total",
                        &[
                            ("pool", &j.launch.pool),
                            ("offering", &offering_label(&offering)),
                        ],
                        1.0,
                    );
                    let wait = oldest_wait.get(&j.launch.pool).copied().unwrap_or(0)
                        + now_done.saturating_sub(now);
                    metrics.observe(
                        "nectr_fleet_queue_to_launch_seconds",
                        &[("pool", &j.launch.pool)],
                        wait as f64 / 1000.0,
                    );
                    report
                        .actions
                        .push(format!("launched {id} ({offering}) for node {}", j.node));
                }
                LaunchResult::Unresolved { message } => {
                    // Keep the ledger entry: counted in flight toward demand and every cap.
                    metrics.inc(
                        "nectr_fleet_launch_failures_total",
                        &[("pool", &j.launch.pool), ("reason", "unresolved")],
                        1.0,
                    );
                    report.errors.push(format!(
                        "launch for pool {} (node {}): {message}; the node is kept and the launch counted in flight until its instance shows up or is proven absent",
                        j.launch.pool, j.node
                    ));
                }
                LaunchResult::Failed {
                    reason,
                    message: msg,
                } => {
                    // Certainly not launched: never counted in flight, even if the delete of
                    // its node failed (the orphan rules remove it).
                    self.memory.ledger.remove(&j.token);
                    self.memory.settled_tokens.insert(j.token.clone());
                    metrics.inc(
                        "nectr_fleet_launch_failures_total",
                        &[("pool", &j.launch.pool), ("reason", &reason)],
                        1.0,
                    );
                    if reason == "throttled" {
                        self.throttles = (self.throttles + 1).min(6);
                        self.cloud_backoff_until =
                            now_done + (1000u64 << self.throttles).min(60_000);
                    }
                    report
                        .errors
                        .push(format!("launch for pool {} failed: {msg}", j.launch.pool));
                }
            }
        }
    }

    fn finish(&mut self, now: u64, report: &PollReport) {
        self.last_poll_ms = Some(now);
        self.last_errors = report.errors.clone();
        if !report.actions.is_empty() {
            self.last_actions = report.actions.clone();
        }
        if let Some(p) = &report.plan {
            self.last_plan = Some(p.clone());
        }
        self.shared
            .set_status(self.status_json(now, report.observed));
    }

    pub fn status_json(&self, now: u64, observed: bool) -> serde_json::Value {
        let pools: serde_json::Map<String, serde_json::Value> = self
            .last_plan
            .as_ref()
            .map(|p| {
                p.pools
                    .iter()
                    .map(|(k, v)| {
                        let backend = match self.cfg.pool(k).map(|p| &p.backend) {
                            Some(crate::config::Backend::Asg { group }) => {
                                json!({"kind": "asg", "group": group})
                            }
                            _ => json!({"kind": "ec2"}),
                        };
                        (
                            k.clone(),
                            json!({
                                "backend": backend,
                                "demand_executors": v.demand_executors,
                                "oldest_wait_seconds": v.oldest_wait_ms as f64 / 1000.0,
                                "idle_executors": v.idle_executors,
                                "busy_executors": v.busy_executors,
                                "connecting_executors": v.connecting_executors,
                                "in_flight_executors": v.in_flight_executors,
                                "instances": v.instances,
                                "in_flight_instances": v.in_flight_instances,
                                "fenced": v.fenced,
                                "launches_last_decision": v.launches,
                                "capped_by": v.capped_by,
                                "dollars_per_hour": v.dollars_per_hour,
                                "interrupted": v.interrupted,
                            }),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        json!({
            "fleet_id": self.cfg.fleet_id,
            "role": match &self.role {
                None => json!({"mode": "single"}),
                Some(Role::Leader { generation }) => json!({"mode": "leader", "generation": generation, "replica": self.lease.as_ref().map(|l| l.id.clone())}),
                Some(Role::Standby { holder, expires_ms }) => json!({"mode": "standby", "holder": holder, "expires": crate::util::format_iso8601_ms(*expires_ms), "replica": self.lease.as_ref().map(|l| l.id.clone())}),
                Some(Role::Unknown { error }) => json!({"mode": "standby", "error": error}),
            },
            "jenkins_url": self.cfg.jenkins.url,
            "time": crate::util::format_iso8601_ms(now),
            "config": {
                "path": self.config_path.as_ref().map(|p| p.display().to_string()),
                "error": self.config_error,
                "pools": self.cfg.pools.iter().map(|p| p.name.clone()).collect::<Vec<_>>(),
                "in_force": self.cfg.pools.iter().map(|p| { let f = p.in_force(now); json!({
                    "name": p.name,
                    "labels": p.labels,
                    "min_instances": f.min_instances,
                    "max_instances": p.max_instances,
                    "spare_executors": f.spare_executors,
                    "own_min_instances": p.min_instances,
                    "own_spare_executors": p.spare_executors,
                    "schedules": view::schedule_rows(p, &f, now),
                    "idle_timeout_seconds": p.idle_timeout_ms as f64 / 1000.0,
                    "price": p.instance_types.first().and_then(|t| t.price),
                })}).collect::<Vec<_>>(),
            },
            "instances": self.page.instances,
            "decisions": self.page.decisions,
            "budget": {
                "dollars_per_hour": self.last_plan.as_ref().map(|p| p.pools.values().map(|v| v.dollars_per_hour).sum::<f64>() + 0.0),
                "max_dollars_per_hour": self.cfg.max_dollars_per_hour,
                "headroom_dollars_per_hour": self.cfg.max_dollars_per_hour.map(|m| (m - self.last_plan.as_ref().map(|p| p.pools.values().map(|v| v.dollars_per_hour).sum::<f64>()).unwrap_or(0.0)).max(0.0)),
            },
            "last_poll": {
                "observed": observed,
                "errors": self.last_errors,
                "recent_actions": self.last_actions,
            },
            "pools": pools,
            "not_launchable": self.last_plan.as_ref().map(|p| p.not_launchable.clone()).unwrap_or_default(),
            "notes": self.last_plan.as_ref().map(|p| p.notes.clone()).unwrap_or_default(),
            "fences": self.memory.fences.keys().collect::<Vec<_>>(),
            "spot_notices": self.spot_notices.values().collect::<Vec<_>>(),
            "job_costs": self.costs.json(),
            "groups": self.groups_json(),
            "launches_in_flight": self.memory.ledger.iter().map(|(t, e)| json!({"token": t, "pool": e.pool, "node": e.node, "instance": e.instance_id})).collect::<Vec<_>>(),
            "cloud_backoff_until": (self.cloud_backoff_until > now).then(|| crate::util::format_iso8601_ms(self.cloud_backoff_until)),
            "controller_restart": self.memory.controller_restarted_ms.map(|at| {
                let until = at.saturating_add(self.cfg.jenkins.restart_grace_ms);
                json!({
                    "at": crate::util::format_iso8601_ms(at),
                    "idle_clocks_held_until": (until > now).then(|| crate::util::format_iso8601_ms(until)),
                })
            }),
        })
    }

    /// Poll until `stop` is set (SIGTERM/SIGINT in `main`), one poll per interval. Setting
    /// it ends the wait between polls at once; during a poll, the step under way finishes
    /// and no further step starts ([`Reconciler::halt`]). The lease is not released here:
    /// see [`Reconciler::release_lease`].
    pub fn run(&mut self, stop: Arc<AtomicBool>) {
        self.stop = stop.clone();
        while !stop.load(Ordering::Relaxed) {
            let started = Instant::now();
            let r = self.poll_once(true);
            if let Some(p) = &r.plan {
                if !p.is_empty() {
                    // A standby (or a new leader's first, observing poll) plans but does not
                    // act: say so, or the log reads as if it launched.
                    let acting = if self.may_act() && self.leader_polls != 1 {
                        ""
                    } else {
                        " (planned only: not acting without the lease)"
                    };
                    log_info!(
                        "poll: {} launch(es), {} fence(s), {} retire(s), {} lift(s), {} orphan instance(s), {} orphan node(s); decide took {} us{acting}",
                        p.launches.len(), p.fences.len(), p.retires.len(), p.lifts.len(), p.orphan_instances.len(), p.orphan_nodes.len(), r.decide_us
                    );
                }
            }
            let interval = Duration::from_millis(self.cfg.poll_interval_ms);
            let mut left = interval.saturating_sub(started.elapsed());
            while !left.is_zero() && !stop.load(Ordering::Relaxed) {
                let step = left.min(Duration::from_millis(100));
                std::thread::sleep(step);
                left = left.saturating_sub(step);
            }
        }
    }
}

/// The two Jenkins reads of an observation.
struct JenkinsReads {
    computers: Result<Vec<Computer>, crate::jenkins::client::JenkinsError>,
    /// `None` when not read: the computer list read found Jenkins silent or unreachable.
    queue: Option<Result<Vec<QueueItem>, crate::jenkins::client::JenkinsError>>,
}

fn took(t: Instant) -> String {
    format!("{:.1} s", t.elapsed().as_secs_f64())
}

/// Supply first, then demand. Jenkins moves an item from the queue to an executor; read in
/// this order, an item dispatched between the two reads shows as neither waiting nor running
/// (missed for one poll, and its executor counted idle), never as both (which would launch
/// for work that already runs). So these two stay one after the other.
fn read_jenkins(jenkins: &dyn JenkinsApi, start: &str, progress: &dyn Fn(String)) -> JenkinsReads {
    progress(start.to_string());
    let t = Instant::now();
    let computers = jenkins.computers();
    match &computers {
        Ok(c) => progress(format!(
            "Jenkins computer list: {} computer(s) ({})",
            c.len(),
            took(t)
        )),
        Err(_) => progress(format!("Jenkins computer list: failed ({})", took(t))),
    }
    if matches!(
        computers,
        Err(crate::jenkins::client::JenkinsError::Transport { .. })
    ) {
        progress("Jenkins queue: not read (Jenkins did not answer the computer list read)".into());
        return JenkinsReads {
            computers,
            queue: None,
        };
    }
    let t = Instant::now();
    let queue = jenkins.queue();
    match &queue {
        Ok(q) => progress(format!("Jenkins queue: {} item(s) ({})", q.len(), took(t))),
        Err(_) => progress(format!("Jenkins queue: failed ({})", took(t))),
    }
    JenkinsReads {
        computers,
        queue: Some(queue),
    }
}

type GroupReads = Vec<(String, String, Result<Group, CloudError>)>;

/// The fleet's instances, then each Auto Scaling group (`wanted`: pool and group name).
fn read_cloud(
    cloud: &dyn CloudProvider,
    fleet_id: &str,
    start: &str,
    wanted: &[(String, String)],
    progress: &dyn Fn(String),
) -> (Result<Vec<Instance>, CloudError>, GroupReads) {
    progress(start.to_string());
    let t = Instant::now();
    let instances = cloud.describe_owned(fleet_id);
    match &instances {
        Ok(i) => progress(format!("EC2 instances: {} ({})", i.len(), took(t))),
        Err(_) => progress(format!("EC2 instances: failed ({})", took(t))),
    }
    let mut groups = Vec::new();
    for (pool, name) in wanted {
        let t = Instant::now();
        let g = cloud.describe_group(name);
        match &g {
            Ok(g) => progress(format!(
                "Auto Scaling group {name} (pool {pool}): {} instance(s), desired {} ({})",
                g.instances.len(),
                g.desired,
                took(t)
            )),
            Err(_) => progress(format!(
                "Auto Scaling group {name} (pool {pool}): failed ({})",
                took(t)
            )),
        }
        groups.push((pool.clone(), name.clone(), g));
    }
    (instances, groups)
}

/// What every launch of one poll shares.
struct LaunchCtx<'a> {
    may_act: &'a (dyn Fn() -> bool + Sync),
    cfg: &'a Config,
    jenkins: &'a dyn JenkinsApi,
    cloud: &'a dyn CloudProvider,
    clock: &'a dyn Clock,
    backoff: &'a BTreeMap<Offering, Backoff>,
    /// The poll's time: the node's `created=`.
    now: u64,
}

/// Create the node, read its secret, RunInstances over the offerings in order. When nothing
/// was launched, the never-connected node is deleted again; when the outcome stays unknown,
/// it is kept.
fn launch_one(
    ctx: &LaunchCtx<'_>,
    l: &LaunchPlan,
    token: &str,
    node: &str,
    image: &Result<ImageRef, String>,
    subnet: Option<String>,
    capacity_failed: &mut Vec<Offering>,
) -> LaunchResult {
    let LaunchCtx {
        cfg,
        jenkins,
        cloud,
        backoff,
        now,
        ..
    } = *ctx;
    // Remove a never-connected node again, with its stored secret (a no-op if none was
    // stored yet).
    let forget = |node: &str| {
        let _ = jenkins.delete_node(node);
        if let Err(e) = cloud.delete_agent_secret(node) {
            log_warn!("node {node}: its stored secret was not deleted (swept later): {e}");
        }
    };
    let Some(pool) = cfg.pool(&l.pool) else {
        return LaunchResult::failed("config", format!("pool {} is gone", l.pool));
    };
    let image = match image {
        Ok(i) => i.clone(),
        Err(e) => return LaunchResult::failed("image", e.clone()),
    };
    let tag = NodeTag {
        fleet: cfg.fleet_id.clone(),
        pool: pool.name.clone(),
        token: token.to_string(),
        instance: None,
        created_ms: now,
    };
    let mut created_with: Option<u32> = None;
    let mut secret: Option<Secret> = None;
    let mut secret_stored = false;
    let mut last_err = (
        "capacity".to_string(),
        "no offering had capacity".to_string(),
    );
    for (k, offering) in l.offerings.iter().enumerate() {
        if backoff.get(offering).is_some_and(|b| b.until_ms > now) {
            continue;
        }
        let executors = pool
            .instance_type(&offering.instance_type)
            .map_or(pool.executors, |t| t.executors);
        if created_with != Some(executors) {
            if created_with.is_some() {
                // Recreated with other executors: same name, same secret, still stored.
                let _ = jenkins.delete_node(node);
            }
            let spec = NodeSpec {
                name: node.to_string(),
                description: tag.render(),
                executors,
                labels: pool.labels.iter().cloned().collect(),
                remote_fs: pool.remote_fs.clone(),
            };
            if let Err(e) = jenkins.create_node(&spec) {
                // Nothing was launched for it: remove a node made despite the error (an
                // answer lost after Jenkins created it), and its secret if stored.
                forget(node);
                return LaunchResult::failed("jenkins", e.to_string());
            }
            created_with = Some(executors);
        }
        if secret.is_none() {
            match jenkins.agent_secret(node) {
                Ok(s) => secret = Some(s),
                Err(e) => {
                    let _ = jenkins.delete_node(node);
                    return LaunchResult::failed("jenkins", e.to_string());
                }
            }
        }
        if !secret_stored {
            // A leader paused since the poll began (GC, SIGSTOP, a frozen VM) may have lost
            // the lease meanwhile: no more writes to AWS; only its own node goes again.
            if !(ctx.may_act)() {
                // Nothing stored yet: no AWS call at all, only the node goes again.
                let _ = jenkins.delete_node(node);
                return LaunchResult::failed(
                    "not-sent",
                    format!("the lease expired locally before the secret of {node} was stored: nothing launched"),
                );
            }
            // Before the instance exists: its boot script reads it with the instance's role.
            let stored = match &secret {
                Some(s) => cloud.put_agent_secret(&cfg.fleet_id, node, s),
                None => Ok(()),
            };
            if let Err(e) = stored {
                forget(node);
                let reason = if e.kind == CloudErrorKind::Throttled {
                    "throttled"
                } else {
                    "secret"
                };
                return LaunchResult::failed(
                    reason,
                    format!("storing the agent secret of {node} failed, nothing launched: {e}"),
                );
            }
            secret_stored = true;
        }
        let mut values = BTreeMap::new();
        values.insert("jenkins_url", cfg.jenkins.url.clone());
        values.insert("node_name", node.to_string());
        values.insert("pool", pool.name.clone());
        values.insert("fleet_id", cfg.fleet_id.clone());
        values.insert("executors", executors.to_string());
        values.insert("remote_fs", pool.remote_fs.clone());
        values.insert("instance_type", offering.instance_type.clone());
        let user_data = Secret::new(config::render_user_data(&pool.user_data, &values));
        let mut tags = pool.tags.clone();
        tags.insert(TAG_FLEET.into(), cfg.fleet_id.clone());
        tags.insert(TAG_JENKINS.into(), cfg.jenkins.url.clone());
        tags.insert(TAG_POOL.into(), pool.name.clone());
        tags.insert(TAG_NODE.into(), node.to_string());
        tags.insert(TAG_TOKEN.into(), token.to_string());
        tags.insert("Name".into(), node.to_string());
        let spec = LaunchSpec {
            client_token: format!("{token}-{k}"),
            image: image.clone(),
            offering: offering.clone(),
            subnet: subnet.clone(),
            security_groups: pool.security_groups.clone(),
            instance_profile: pool.instance_profile.clone(),
            user_data,
            tags,
        };
        match run_instances(ctx, &spec) {
            Ok(id) => {
                if let Err(e) = cloud.tag_agent_secret(node, &id) {
                    log_warn!("node {node}: tagging its stored secret with {id} failed: {e}");
                }
                let mut t = tag.clone();
                t.instance = Some(id.clone());
                if let Err(e) = jenkins.set_description(node, &t.render()) {
                    log_warn!("node {node}: description update failed (the instance is linked by its tags anyway): {e}");
                }
                return LaunchResult::Launched {
                    id,
                    offering: offering.clone(),
                    executors,
                };
            }
            Err(RunError::Unresolved(message)) => return LaunchResult::Unresolved { message },
            Err(RunError::Refused(e)) if e.kind == CloudErrorKind::Capacity => {
                capacity_failed.push(offering.clone());
                last_err = ("capacity".into(), e.to_string());
            }
            Err(RunError::Refused(e)) => {
                forget(node);
                return LaunchResult::failed(e.kind.as_str(), e.to_string());
            }
            Err(RunError::NotSent(message)) => {
                forget(node);
                return LaunchResult::failed("not-sent", message);
            }
        }
    }
    forget(node);
    LaunchResult::failed(&last_err.0, last_err.1)
}

/// Why [`run_instances`] did not give an instance id.
enum RunError {
    /// Not sent (the lease expired locally, or the send window is over): nothing launched.
    NotSent(String),
    /// EC2 answered that it launched nothing.
    Refused(CloudError),
    /// EC2 may have launched it; no answer said.
    Unresolved(String),
}

/// `RunInstances` until an answer settles the outcome. A failure that leaves it unknown
/// (see [`launch_outcome_unknown`]) is retried with the same spec and client token, so EC2
/// answers with the instance the lost call made, or makes it now: never a second one. No
/// request is sent after the send window (`scaler::launch_send_window_ms`) or without the
/// lease; after an unknown outcome nothing short of an answer for this token settles it.
fn run_instances(ctx: &LaunchCtx<'_>, spec: &LaunchSpec) -> Result<String, RunError> {
    let deadline = ctx
        .now
        .saturating_add(scaler::launch_send_window_ms(ctx.cfg));
    let mut unknown: Option<CloudError> = None;
    let mut retries = 0;
    loop {
        let stop = if !(ctx.may_act)() {
            Some("the lease expired locally")
        } else if ctx.clock.now_ms() > deadline {
            Some("the launch's send window is over")
        } else {
            None
        };
        if let Some(why) = stop {
            return Err(match &unknown {
                None => RunError::NotSent(format!("{why} before RunInstances was sent")),
                Some(e) => RunError::Unresolved(format!(
                    "RunInstances failed without saying whether it launched ({e}) and {why}"
                )),
            });
        }
        match ctx.cloud.launch(spec) {
            Ok(id) => return Ok(id),
            Err(e) if launch_outcome_unknown(&e) || unknown.is_some() => {
                // After an unknown outcome, a throttled or refused retry says nothing about
                // the first call either; only capacity and invalid-request answers are about
                // this token (EC2 would have answered a made instance with its id).
                if unknown.is_some()
                    && matches!(e.kind, CloudErrorKind::Capacity | CloudErrorKind::Invalid)
                {
                    return Err(RunError::Refused(e));
                }
                if launch_outcome_unknown(&e) {
                    log_warn!(
                        "RunInstances for token {}: outcome unknown ({e}); retrying with the same client token",
                        spec.client_token
                    );
                    unknown = Some(e);
                }
                retries += 1;
                if retries > LAUNCH_RETRIES {
                    let e = unknown.as_ref().map(|e| e.to_string()).unwrap_or_default();
                    return Err(RunError::Unresolved(format!(
                        "RunInstances failed {retries} times without saying whether it launched (last unknown outcome: {e})"
                    )));
                }
                ctx.clock.sleep_ms(LAUNCH_RETRY_PAUSE_MS << (retries - 1));
            }
            Err(e) => return Err(RunError::Refused(e)),
        }
    }
}

/// Counts one step of the scale-in fence (`fenced`, `retired`, `lifted`, `aborted`).
fn fence_outcome(metrics: &crate::metrics::Metrics, outcome: &str) {
    metrics.inc(
        "nectr_fleet_fence_outcomes_total",
        &[("outcome", outcome)],
        1.0,
    );
}
