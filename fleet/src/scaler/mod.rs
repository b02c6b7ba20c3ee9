//! The pure decision: [`observe`] folds a fresh observation into [`Memory`], then
//! [`decide`] turns (snapshot, config, now) into a [`Plan`]. No IO and no clock reads here:
//! the same inputs always give the same plan.

mod demand;

pub use demand::{attribute, Attribution, DemandTable};

use crate::cloud::{Instance, InstanceState, Market, Offering};
use crate::config::{Config, Pool, Purchase};
use crate::jenkins::{parse_drain_message, Computer, NodeTag, QueueItem};
use std::collections::{BTreeMap, BTreeSet};

/// A launch requested but not yet seen in a describe: the in-flight ledger, keyed by the
/// launch token (the node's `token=`, the stem of the EC2 client token). It counts toward
/// demand and every cap until its instance shows up in a describe or is proven absent.
#[derive(Clone, Debug, PartialEq)]
pub struct InFlight {
    pub pool: String,
    pub node: String,
    pub executors: u32,
    pub price: Option<f64>,
    /// When its node was created (the node's `created=`).
    pub started_ms: u64,
    /// Known once `RunInstances` answered. `None`: not answered yet, or the answer was lost
    /// (the launch may or may not have happened), or the entry was rebuilt from a node whose
    /// description still says `instance=pending`.
    pub instance_id: Option<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Backoff {
    pub until_ms: u64,
    pub failures: u32,
}

/// What the manager remembers between polls. Everything here can be lost (restart): it is
/// rebuilt from Jenkins and the cloud, conservatively (clocks restart, fences are re-read
/// from the offline reason, the first poll after start takes no destructive action).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Memory {
    /// Successful observations since start.
    pub polls: u64,
    pub ledger: BTreeMap<String, InFlight>,
    /// Node → first poll at which it was seen idle after being busy (or since start).
    pub idle_since: BTreeMap<String, u64>,
    /// Node → when its fence was known to be in force: the time Jenkins' answer to the fence
    /// arrived, or (for a fence found in Jenkins, e.g. after a restart or a lost answer) the
    /// time of the observation that showed it. Never the `at=` of the drain message, which is
    /// when the request was sent. The settle interval runs from here.
    pub fences: BTreeMap<String, u64>,
    /// Instance → (first poll without a connected node, consecutive polls).
    pub disconnected: BTreeMap<String, (u64, u32)>,
    /// Owned node without an instance → (first seen, consecutive polls).
    pub orphan_nodes: BTreeMap<String, (u64, u32)>,
    pub offering_backoff: BTreeMap<Offering, Backoff>,
    /// Launch-to-online: node → launch time, until the node connects.
    pub launched_at: BTreeMap<String, u64>,
    /// Nodes whose `doDelete` failed without saying whether Jenkins carried it out (it may
    /// still land): never lifted, so no new work goes where a late delete can kill it; the
    /// retire is repeated (a delete is idempotent). Cleared when the node is gone.
    pub deleting: BTreeMap<String, u64>,
    /// Nodes whose lift (`toggleOffline`) failed without saying whether it was applied, with
    /// the time: while Jenkins still shows the fence, neither retired (the lift may land
    /// between the final re-read and the delete) nor lifted again (a toggle is not
    /// idempotent), for [`jenkins_write_settle_ms`].
    pub lifting: BTreeMap<String, u64>,
    /// The first observation of this process. For [`jenkins_write_settle_ms`] after it, no
    /// destructive action and no lift: a write of the previous process may still land.
    pub started_ms: Option<u64>,
    /// Launch tokens of existing owned nodes whose launch is settled: their instance was
    /// seen in a describe, or EC2 refused the launch. Such a node is never counted in flight
    /// again (its instance is gone, not late, or never existed).
    pub settled_tokens: BTreeSet<String>,
    /// The controller's session (`X-Jenkins-Session`) at the last observation.
    pub controller_session: Option<String>,
    /// When a controller restart was seen (the session changed): for
    /// `jenkins.restart_grace` after it, no idle clock runs (see [`observe`]).
    pub controller_restarted_ms: Option<u64>,
}

/// One fresh, complete observation plus memory. `decide` is only called when both reads of
/// this poll succeeded; a failed or stale read never reaches it.
#[derive(Clone, Copy, Debug)]
pub struct Snapshot<'a> {
    pub queue: &'a [QueueItem],
    pub computers: &'a [Computer],
    pub instances: &'a [Instance],
    pub memory: &'a Memory,
}

#[derive(Clone, Debug, PartialEq)]
pub struct LaunchPlan {
    pub pool: String,
    /// Candidates in order of preference; the first that has capacity is used.
    pub offerings: Vec<Offering>,
    pub executors: u32,
}

#[derive(Clone, Debug, PartialEq)]
pub struct NodeAction {
    pub node: String,
    pub pool: String,
    pub instance: Option<String>,
    pub reason: String,
}

#[derive(Clone, Debug, PartialEq)]
pub struct OrphanInstance {
    pub instance: String,
    pub pool: String,
    /// A never-connected node to delete first.
    pub node: Option<String>,
    pub reason: String,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct PoolView {
    pub demand_executors: u32,
    pub oldest_wait_ms: u64,
    pub idle_executors: u32,
    pub busy_executors: u32,
    pub connecting_executors: u32,
    pub in_flight_executors: u32,
    pub instances: u32,
    pub in_flight_instances: u32,
    pub fenced: u32,
    pub launches: u32,
    pub capped_by: Option<String>,
    pub dollars_per_hour: f64,
    /// Nodes whose instance reported a spot interruption notice or (with `rebalance`) a
    /// rebalance recommendation: fenced, not supply, their builds counted as demand.
    pub interrupted: u32,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Plan {
    pub launches: Vec<LaunchPlan>,
    pub fences: Vec<NodeAction>,
    pub retires: Vec<NodeAction>,
    pub lifts: Vec<NodeAction>,
    pub orphan_instances: Vec<OrphanInstance>,
    pub orphan_nodes: Vec<NodeAction>,
    pub pools: BTreeMap<String, PoolView>,
    /// Waiting items nectr will not launch for, by reason (`unknown label ‘x’`, `foreign`, ...).
    pub not_launchable: BTreeMap<String, u32>,
    pub notes: Vec<String>,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.launches.is_empty()
            && self.fences.is_empty()
            && self.retires.is_empty()
            && self.lifts.is_empty()
            && self.orphan_instances.is_empty()
            && self.orphan_nodes.is_empty()
    }
}

/// An owned node with its parsed tag.
struct Owned<'a> {
    c: &'a Computer,
    tag: NodeTag,
}

fn owned_nodes<'a>(computers: &'a [Computer], fleet_id: &str) -> Vec<Owned<'a>> {
    computers
        .iter()
        .filter_map(|c| {
            let tag = NodeTag::parse(c.description.as_deref()?)?;
            (tag.fleet == fleet_id).then_some(Owned { c, tag })
        })
        .collect()
}

fn owned_instances<'a>(instances: &'a [Instance], cfg: &Config) -> Vec<&'a Instance> {
    instances
        .iter()
        .filter(|i| i.is_owned_by(&cfg.fleet_id, &cfg.jenkins.url))
        .collect()
}

const DEFAULT_BOOT_DEADLINE_MS: u64 = 600_000;

fn boot_deadline(cfg: &Config, pool: &str) -> u64 {
    cfg.pool(pool)
        .map_or(DEFAULT_BOOT_DEADLINE_MS, |p| p.boot_deadline_ms)
}

/// A Jenkins write that failed without an answer (timeout, dropped connection, 5xx) is taken
/// to land, if at all, within this long: a slow Jenkins may carry out a request after the
/// client gave up.
pub fn jenkins_write_settle_ms(cfg: &Config) -> u64 {
    2 * cfg.jenkins.timeout_ms
}

/// The service sends no `RunInstances` for a node later than this after the node was created
/// (its `created=`): retries of an unanswered launch stop there.
pub fn launch_send_window_ms(cfg: &Config) -> u64 {
    2 * cfg.jenkins.timeout_ms + 2 * cfg.aws.timeout_ms
}

/// A launch without a known instance id (its answer was lost, or the service was killed
/// around `RunInstances`) whose instance has not shown up in a describe this long after its
/// node was created is proven absent: nothing was sent for it after the send window, a
/// request is answered or given up within `aws.timeout`, and EC2 shows what it launched
/// within seconds (`orphan_grace`, at least two polls, covers that lag). Until then it counts
/// toward demand and every cap.
pub fn launch_settled_ms(cfg: &Config) -> u64 {
    launch_send_window_ms(cfg)
        + cfg.aws.timeout_ms
        + cfg.orphan_grace_ms.max(2 * cfg.poll_interval_ms)
}

/// Just started (or took over the lease): adopting, no destructive action or lift while a
/// write of the previous process may still land.
pub fn recovering(mem: &Memory, cfg: &Config, now: u64) -> bool {
    mem.polls < 2
        || mem
            .started_ms
            .is_some_and(|t| now < t.saturating_add(jenkins_write_settle_ms(cfg)))
}

/// Temporarily offline with this fleet's drain message.
fn drained_by_us(c: &Computer, fleet_id: &str) -> bool {
    c.temporarily_offline
        && c.offline_cause_reason
            .as_deref()
            .and_then(|r| parse_drain_message(r, fleet_id))
            .is_some()
}

/// Fold a fresh observation into memory. Pure.
pub fn observe(
    prev: &Memory,
    computers: &[Computer],
    instances: &[Instance],
    cfg: &Config,
    now: u64,
) -> Memory {
    let mut m = prev.clone();
    m.polls += 1;
    if m.started_ms.is_none() {
        m.started_ms = Some(now);
    }
    let owned = owned_nodes(computers, &cfg.fleet_id);
    let inst = owned_instances(instances, cfg);
    let node_names: BTreeSet<&str> = owned.iter().map(|o| o.c.name.as_str()).collect();

    // Ledger: drop launches now visible in the describe. A launch EC2 confirmed (with an
    // instance id) stays until its instance shows up, up to the boot deadline; one whose
    // outcome is unknown stays until it shows up or is proven absent (`launch_settled_ms`).
    let seen_tokens: BTreeSet<&str> = inst.iter().filter_map(|i| i.token()).collect();
    let seen_ids: BTreeSet<&str> = inst.iter().map(|i| i.id.as_str()).collect();
    let seen_nodes: BTreeSet<&str> = inst.iter().filter_map(|i| i.node()).collect();
    let settled = launch_settled_ms(cfg);
    let keep_for = |pool: &str, confirmed: bool| {
        if confirmed {
            boot_deadline(cfg, pool)
        } else {
            settled
        }
    };
    m.ledger.retain(|token, e| {
        let seen = seen_tokens.contains(token.as_str())
            || seen_nodes.contains(e.node.as_str())
            || e.instance_id
                .as_deref()
                .is_some_and(|id| seen_ids.contains(id));
        !seen && now.saturating_sub(e.started_ms) < keep_for(&e.pool, e.instance_id.is_some())
    });
    // Nodes this fleet created whose instance is not in the describe (yet): after a restart
    // or a takeover, or when EC2's read-after-write lag hides a fresh instance, they are
    // launches in flight like any other, toward demand and every cap, until the instance
    // shows up or is proven absent. Without this, a restart right after `RunInstances`
    // launches again (a duplicate, and a cap overrun).
    for o in &owned {
        let t = &o.tag;
        if seen_tokens.contains(t.token.as_str()) || seen_nodes.contains(o.c.name.as_str()) {
            m.settled_tokens.insert(t.token.clone());
        }
    }
    let owned_tokens: BTreeSet<&str> = owned.iter().map(|o| o.tag.token.as_str()).collect();
    m.settled_tokens
        .retain(|t| owned_tokens.contains(t.as_str()));
    for o in &owned {
        let t = &o.tag;
        let visible = seen_tokens.contains(t.token.as_str())
            || seen_nodes.contains(o.c.name.as_str())
            || t.instance
                .as_deref()
                .is_some_and(|id| seen_ids.contains(id));
        if visible
            || m.settled_tokens.contains(&t.token)
            || m.ledger.contains_key(&t.token)
            || now.saturating_sub(t.created_ms) >= keep_for(&t.pool, t.instance.is_some())
        {
            continue;
        }
        let price = cfg.pool(&t.pool).and_then(|p| {
            p.instance_types
                .iter()
                .filter_map(|it| it.price)
                .reduce(f64::max)
        });
        m.ledger.insert(
            t.token.clone(),
            InFlight {
                pool: t.pool.clone(),
                node: o.c.name.clone(),
                executors: o.c.num_executors.max(1),
                price,
                started_ms: t.created_ms,
                instance_id: t.instance.clone(),
            },
        );
    }

    // Idle clocks: start when first seen idle, reset only when seen busy; survive
    // disconnects and reconnects (so a flapping agent cannot stay alive forever).
    // The clock starts only once the agent is connected (boot time never counts as idle).
    // After a controller restart, a Pipeline resumed from disk takes its node back only once
    // Jenkins has loaded the build and re-queued its `node` block; until then the node looks
    // idle. So for `restart_grace` no idle clock runs, and clocks started before restart anew.
    let mut idle = BTreeMap::new();
    let in_restart_grace = prev
        .controller_restarted_ms
        .is_some_and(|t| now < t.saturating_add(cfg.jenkins.restart_grace_ms));
    for o in &owned {
        if in_restart_grace {
            break;
        }
        if !o.c.is_certainly_idle() {
            continue;
        }
        match prev.idle_since.get(&o.c.name) {
            Some(since) => {
                idle.insert(o.c.name.clone(), *since);
            }
            None if o.c.connected => {
                idle.insert(o.c.name.clone(), now);
            }
            None => {}
        }
    }
    m.idle_since = idle;

    // Fences: keep those Jenkins still shows with our reason (a fence is only remembered once
    // Jenkins answered it, and Jenkins reads its own writes, so one it does not show was
    // lifted or replaced). Adopt the ones found in Jenkins (after a restart, or when the
    // answer to the fence was lost), in force since this observation: `now` must not be
    // earlier than the moment the computer list was received. The `at=` of the reason is when
    // the request was sent, possibly long before Jenkins applied it, so it never starts the
    // settle interval.
    let mut fences = BTreeMap::new();
    for o in &owned {
        if drained_by_us(o.c, &cfg.fleet_id) {
            let t = prev.fences.get(&o.c.name).copied().unwrap_or(now);
            fences.insert(o.c.name.clone(), t);
        }
    }
    m.fences = fences;
    m.deleting.retain(|n, _| node_names.contains(n.as_str()));
    let write_settle = jenkins_write_settle_ms(cfg);
    m.lifting.retain(|n, t| {
        now.saturating_sub(*t) < write_settle
            && owned
                .iter()
                .any(|o| &o.c.name == n && drained_by_us(o.c, &cfg.fleet_id))
    });

    // Instances without a connected node.
    let connected: BTreeSet<&str> = owned
        .iter()
        .filter(|o| o.c.connected)
        .map(|o| o.c.name.as_str())
        .collect();
    let mut disc = BTreeMap::new();
    for i in inst.iter().filter(|i| i.is_live()) {
        let up = i.node().is_some_and(|n| connected.contains(n));
        if !up {
            let (since, count) = prev.disconnected.get(&i.id).copied().unwrap_or((now, 0));
            disc.insert(i.id.clone(), (since, count + 1));
        }
    }
    m.disconnected = disc;

    // Nodes without an instance.
    let live_nodes: BTreeSet<&str> = inst
        .iter()
        .filter(|i| i.is_live())
        .filter_map(|i| i.node())
        .collect();
    let ledger_nodes: BTreeSet<&str> = m.ledger.values().map(|e| e.node.as_str()).collect();
    let mut orphans = BTreeMap::new();
    for o in &owned {
        let n = o.c.name.as_str();
        if !live_nodes.contains(n) && !ledger_nodes.contains(n) {
            let (since, count) = prev.orphan_nodes.get(n).copied().unwrap_or((now, 0));
            orphans.insert(n.to_string(), (since, count + 1));
        }
    }
    m.orphan_nodes = orphans;

    m.offering_backoff.retain(|_, b| b.until_ms > now);
    m.launched_at
        .retain(|n, _| node_names.contains(n.as_str()) && !connected.contains(n.as_str()));
    m
}

/// The offerings a pool may use now, in order of preference.
pub fn offerings(pool: &Pool, mem: &Memory, now: u64) -> Vec<Offering> {
    let markets: &[Market] = match pool.purchase {
        Purchase::OnDemand => &[Market::OnDemand],
        Purchase::Spot => &[Market::Spot],
        Purchase::SpotThenOnDemand => &[Market::Spot, Market::OnDemand],
    };
    let mut out = Vec::new();
    for m in markets {
        for t in &pool.instance_types {
            let o = Offering {
                instance_type: t.name.clone(),
                market: *m,
            };
            if mem
                .offering_backoff
                .get(&o)
                .is_none_or(|b| b.until_ms <= now)
            {
                out.push(o);
            }
        }
    }
    out
}

/// Price of an existing instance for the dollar cap: its configured price, else the highest
/// configured price (unknown costs are assumed expensive).
fn instance_price(cfg: &Config, pool: Option<&str>, itype: &str, max_price: f64) -> f64 {
    pool.and_then(|p| cfg.pool(p))
        .and_then(|p| p.instance_type(itype))
        .and_then(|t| t.price)
        .unwrap_or(max_price)
}

/// Decide what to do. Pure and deterministic.
pub fn decide(snap: &Snapshot<'_>, cfg: &Config, now: u64) -> Plan {
    let mem = snap.memory;
    let mut plan = Plan::default();
    let owned = owned_nodes(snap.computers, &cfg.fleet_id);
    let inst = owned_instances(snap.instances, cfg);
    // Just started: adopt, launch, but no destructive action and no lift until a write of
    // the previous process (killed, or a replaced leader) can no longer land.
    let recovering = recovering(mem, cfg, now);
    if recovering {
        plan.notes.push(
            "just started: adopting, no destructive action or lift while writes of the previous process may still land"
                .into(),
        );
    }

    let by_name: BTreeMap<&str, &Owned<'_>> =
        owned.iter().map(|o| (o.c.name.as_str(), o)).collect();
    let live: Vec<&Instance> = inst.iter().copied().filter(|i| i.is_live()).collect();
    let instance_of_node: BTreeMap<&str, &Instance> =
        live.iter().filter_map(|i| Some((i.node()?, *i))).collect();
    // Nodes whose instance is going away (spot reclaim, manual stop or termination): fence
    // them at once so no new work lands there, never lift, delete when idle.
    let dying: BTreeSet<&str> = inst
        .iter()
        .filter(|i| {
            matches!(
                i.state,
                InstanceState::ShuttingDown
                    | InstanceState::Terminated
                    | InstanceState::Stopping
                    | InstanceState::Stopped
            )
        })
        .filter_map(|i| i.node())
        .filter(|n| {
            by_name.contains_key(n)
                && !instance_of_node.get(n).is_some_and(|i| {
                    i.state == InstanceState::Running || i.state == InstanceState::Pending
                })
        })
        .collect();
    // Running instances that reported a spot interruption notice (or a rebalance
    // recommendation, in pools that act on it) through their own tag: EC2 takes them within
    // two minutes. Fenced now like a dying instance, never lifted, not counted as supply or
    // against the instance caps (their replacement launches in this poll), and their running
    // builds count as demand: `retry(conditions: [agent()])` brings them back.
    let noticed: BTreeMap<&str, (&Instance, &'static str)> = live
        .iter()
        .filter_map(|i| {
            let rebalance = i
                .pool()
                .and_then(|p| cfg.pool(p))
                .is_some_and(|p| p.rebalance);
            let kind = i.spot_notice(rebalance)?;
            Some((i.id.as_str(), (*i, kind)))
        })
        .collect();
    let noticed_nodes: BTreeMap<&str, &'static str> = noticed
        .values()
        .filter_map(|(i, k)| Some((i.node()?, *k)))
        .filter(|(n, _)| by_name.contains_key(n))
        .collect();
    let dying: BTreeSet<&str> = dying
        .into_iter()
        .chain(noticed_nodes.keys().copied())
        .collect();
    let live_counted = live.iter().filter(|i| !noticed.contains_key(i.id.as_str()));

    // Demand.
    let table = attribute(snap.queue, snap.computers, cfg, now);
    plan.not_launchable = table.not_launchable.clone();
    let mentioned = &table.mentioned;

    let max_price = cfg
        .pools
        .iter()
        .flat_map(|p| p.instance_types.iter().filter_map(|t| t.price))
        .fold(0.0_f64, f64::max);

    // Global totals for caps (live instances + in flight).
    let mut global_count: u64 = live_counted.count() as u64 + mem.ledger.len() as u64;
    let mut global_dollars: f64 = live
        .iter()
        .map(|i| instance_price(cfg, i.pool(), &i.instance_type, max_price))
        .sum::<f64>()
        + mem
            .ledger
            .values()
            .map(|e| e.price.unwrap_or(max_price))
            .sum::<f64>();

    let mut lift_for_demand: BTreeSet<&str> = BTreeSet::new();
    for pool in &cfg.pools {
        let mut v = PoolView::default();
        let pd = table.pools.get(&pool.name);
        v.demand_executors = pd.map_or(0, |d| d.executors);
        v.oldest_wait_ms = pd.map_or(0, |d| d.oldest_wait_ms);

        let pool_nodes: Vec<&Owned<'_>> =
            owned.iter().filter(|o| o.tag.pool == pool.name).collect();
        let pool_live: Vec<&Instance> = live
            .iter()
            .copied()
            .filter(|i| i.pool() == Some(pool.name.as_str()))
            .collect();
        let pool_ledger: Vec<&InFlight> = mem
            .ledger
            .values()
            .filter(|e| e.pool == pool.name)
            .collect();

        let mut fenced = 0u32;
        for o in &pool_nodes {
            if dying.contains(o.c.name.as_str()) {
                fenced += 1;
                if noticed_nodes.contains_key(o.c.name.as_str()) {
                    v.interrupted += 1;
                    if o.c.connected {
                        // Its builds are lost with it and come back through their retry.
                        v.demand_executors += o.c.busy_executors();
                    }
                }
                continue;
            }
            let is_fenced = mem.fences.contains_key(&o.c.name) || o.c.temporarily_offline;
            if is_fenced {
                fenced += 1;
                // Demand came back while this node was being retired: lift the fence and
                // count it as idle capacity instead of launching a replacement.
                if v.demand_executors > 0
                    && !recovering
                    && !mem.deleting.contains_key(&o.c.name)
                    && !mem.lifting.contains_key(&o.c.name)
                    && o.c.connected
                    && o.c.is_certainly_idle()
                    && drained_by_us(o.c, &cfg.fleet_id)
                {
                    v.idle_executors += o.c.idle_executors();
                    lift_for_demand.insert(o.c.name.as_str());
                }
                continue;
            }
            if o.c.connected {
                v.idle_executors += o.c.idle_executors();
                v.busy_executors += o.c.busy_executors();
            }
        }
        v.fenced = fenced;
        // Booting: live instances whose node has not connected yet, within the deadline.
        for i in pool_live
            .iter()
            .filter(|i| !noticed.contains_key(i.id.as_str()))
        {
            let node = i.node().and_then(|n| by_name.get(n));
            let up = node.is_some_and(|o| o.c.connected);
            let fenced =
                node.is_some_and(|o| o.c.temporarily_offline || mem.fences.contains_key(&o.c.name));
            let young = i
                .launch_time_ms
                .is_none_or(|t| now.saturating_sub(t) < pool.boot_deadline_ms);
            if !up
                && !fenced
                && young
                && i.state != InstanceState::Stopped
                && i.state != InstanceState::Stopping
            {
                v.connecting_executors += node.map_or_else(
                    || {
                        pool.instance_type(&i.instance_type)
                            .map_or(pool.executors, |t| t.executors)
                    },
                    |o| o.c.num_executors.max(1),
                );
            }
        }
        // A launch whose node is already connected (its instance not in the describe yet)
        // counts toward the caps, but its executors are counted above.
        v.in_flight_executors = pool_ledger
            .iter()
            .filter(|e| !by_name.get(e.node.as_str()).is_some_and(|o| o.c.connected))
            .map(|e| e.executors)
            .sum();
        v.in_flight_instances = pool_ledger.len() as u32;
        v.instances = pool_live
            .iter()
            .filter(|i| !noticed.contains_key(i.id.as_str()))
            .count() as u32;
        // `+ 0.0`: an empty f64 sum is -0.0, which prints as "$-0.00/h".
        v.dollars_per_hour = pool_live
            .iter()
            .map(|i| instance_price(cfg, i.pool(), &i.instance_type, max_price))
            .sum::<f64>()
            + pool_ledger
                .iter()
                .map(|e| e.price.unwrap_or(max_price))
                .sum::<f64>()
            + 0.0;

        // ---- scale-out ----
        let supply = v.idle_executors + v.connecting_executors + v.in_flight_executors;
        let wanted = v.demand_executors.saturating_add(pool.spare_executors);
        let needed = wanted.saturating_sub(supply);
        let current = v.instances + v.in_flight_instances;
        let offers = offerings(pool, mem, now);
        if let Some(first) = offers.first() {
            let weight = pool
                .instance_type(&first.instance_type)
                .map_or(pool.executors, |t| t.executors)
                .max(1);
            let for_demand = needed.div_ceil(weight);
            let for_min = pool.min_instances.saturating_sub(current);
            let mut n = for_demand.max(for_min);
            let mut capped = None;
            let room_pool = pool.max_instances.saturating_sub(current);
            if n > room_pool {
                n = room_pool;
                capped = Some(format!("pool max_instances {}", pool.max_instances));
            }
            if let Some(gmax) = cfg.max_instances {
                let room = (gmax as u64).saturating_sub(global_count) as u32;
                if n > room {
                    n = room;
                    capped = Some(format!("max_instances {gmax}"));
                }
            }
            let unit_price = offers
                .iter()
                .filter_map(|o| pool.instance_type(&o.instance_type).and_then(|t| t.price))
                .fold(0.0_f64, f64::max);
            if let Some(cap) = cfg.max_dollars_per_hour {
                if unit_price > 0.0 {
                    let room = ((cap - global_dollars) / unit_price).floor().max(0.0);
                    let room = if room > u32::MAX as f64 {
                        u32::MAX
                    } else {
                        room as u32
                    };
                    if n > room {
                        n = room;
                        capped = Some(format!("max_dollars_per_hour {cap}"));
                    }
                }
            }
            v.capped_by = capped;
            v.launches = n;
            global_count += n as u64;
            global_dollars += n as f64 * unit_price;
            for _ in 0..n {
                plan.launches.push(LaunchPlan {
                    pool: pool.name.clone(),
                    offerings: offers.clone(),
                    executors: weight,
                });
            }
        } else if needed > 0 || pool.min_instances > current {
            v.capped_by = Some("every instance type is backing off after capacity errors".into());
            plan.notes.push(format!(
                "pool {}: no offering available (capacity backoff)",
                pool.name
            ));
        }
        plan.pools.insert(pool.name.clone(), v);
    }

    // ---- fences in progress: lift or retire ----
    let mut fencing: BTreeSet<&str> = BTreeSet::new();
    for o in &owned {
        let fenced_at = mem.fences.get(&o.c.name).copied();
        if fenced_at.is_none() && !drained_by_us(o.c, &cfg.fleet_id) {
            continue;
        }
        fencing.insert(o.c.name.as_str());
        // Only an instance seen in this fleet's tag-filtered describe is ever terminated.
        let instance = instance_of_node
            .get(o.c.name.as_str())
            .map(|i| i.id.clone());
        let pool_known = cfg.pool(&o.tag.pool).is_some();
        let action = |reason: &str| NodeAction {
            node: o.c.name.clone(),
            pool: o.tag.pool.clone(),
            instance: instance.clone(),
            reason: reason.to_string(),
        };
        let busy = !o.c.is_certainly_idle();
        let pinned = mentioned.contains(o.c.name.as_str());
        let ours_in_jenkins = drained_by_us(o.c, &cfg.fleet_id);
        // A delete that may still land: never lift. A lift that may still land: wait.
        let is_dying = dying.contains(o.c.name.as_str()) || mem.deleting.contains_key(&o.c.name);
        if mem.lifting.contains_key(&o.c.name) {
            continue;
        }
        if lift_for_demand.contains(o.c.name.as_str()) && !is_dying {
            plan.lifts.push(action("demand for its pool came back"));
            continue;
        }
        if busy || pinned {
            if is_dying {
                continue;
            }
            if pool_known && ours_in_jenkins && !recovering {
                plan.lifts.push(action(if busy {
                    "work was assigned after the fence"
                } else {
                    "a queue item waits for this node"
                }));
            }
            continue;
        }
        if recovering || !ours_in_jenkins {
            continue;
        }
        // The settle interval runs from when the fence was known in force; `now` is no
        // earlier than this poll's observation, and the final re-read comes after it.
        if fenced_at.is_some_and(|t| now.saturating_sub(t) >= cfg.settle_interval_ms) {
            plan.retires.push(action("idle after the settle interval"));
        }
    }

    // ---- instances going away: fence their nodes now ----
    for o in &owned {
        let n = o.c.name.as_str();
        if dying.contains(n) && !fencing.contains(n) && !o.c.temporarily_offline {
            fencing.insert(n);
            let reason = match noticed_nodes.get(n) {
                Some(&"rebalance") => "its instance got a rebalance recommendation",
                Some(_) => "its instance got a spot interruption notice",
                None => "its instance is shutting down or stopped",
            };
            plan.fences.push(NodeAction {
                node: o.c.name.clone(),
                pool: o.tag.pool.clone(),
                instance: None,
                reason: reason.into(),
            });
        }
    }

    // ---- scale-in: new fences ----
    if !recovering {
        for pool_name in owned
            .iter()
            .map(|o| o.tag.pool.as_str())
            .collect::<BTreeSet<_>>()
        {
            let pool = cfg.pool(pool_name);
            let (min, idle_timeout, spare, demand) = match (pool, plan.pools.get(pool_name)) {
                (Some(p), Some(v)) => (
                    p.min_instances,
                    p.idle_timeout_ms,
                    p.spare_executors,
                    v.demand_executors,
                ),
                // A pool removed from the config: drain its nodes as soon as they are idle.
                _ => (0, 0, 0, 0),
            };
            if demand > 0 {
                continue;
            }
            let pool_live = live.iter().filter(|i| i.pool() == Some(pool_name)).count() as u32;
            let already = owned
                .iter()
                .filter(|o| o.tag.pool == pool_name && fencing.contains(o.c.name.as_str()))
                .count() as u32;
            let mut allowed = pool_live.saturating_sub(already).saturating_sub(min);
            let mut idle_left: u32 = plan.pools.get(pool_name).map_or(0, |v| v.idle_executors);
            let mut cands: Vec<(&Owned<'_>, u64)> = owned
                .iter()
                .filter(|o| o.tag.pool == pool_name)
                .filter(|o| !fencing.contains(o.c.name.as_str()))
                .filter(|o| o.c.connected && !o.c.temporarily_offline && o.c.is_certainly_idle())
                .filter(|o| !mentioned.contains(o.c.name.as_str()))
                .filter(|o| instance_of_node.contains_key(o.c.name.as_str()))
                .filter_map(|o| {
                    let since = *mem.idle_since.get(&o.c.name)?;
                    (now.saturating_sub(since) >= idle_timeout).then_some((o, since))
                })
                .collect();
            cands.sort_by(|a, b| a.1.cmp(&b.1).then_with(|| a.0.c.name.cmp(&b.0.c.name)));
            for (o, since) in cands {
                if allowed == 0 {
                    break;
                }
                let exec = o.c.idle_executors();
                if idle_left.saturating_sub(exec) < spare {
                    continue;
                }
                idle_left = idle_left.saturating_sub(exec);
                allowed -= 1;
                plan.fences.push(NodeAction {
                    node: o.c.name.clone(),
                    pool: pool_name.to_string(),
                    instance: instance_of_node
                        .get(o.c.name.as_str())
                        .map(|i| i.id.clone()),
                    reason: if pool.is_some() {
                        format!(
                            "idle for {}",
                            crate::util::format_duration_ms(now.saturating_sub(since))
                        )
                    } else {
                        "its pool was removed from the config".into()
                    },
                });
            }
        }
    }

    // ---- orphans ----
    if !recovering {
        for i in &live {
            let pool = i.pool().unwrap_or("");
            let Some((since, count)) = mem.disconnected.get(&i.id) else {
                continue;
            };
            let age_ok = i
                .launch_time_ms
                .is_some_and(|t| now.saturating_sub(t) >= boot_deadline(cfg, pool));
            if !age_ok || *count < 2 || now.saturating_sub(*since) < cfg.orphan_grace_ms {
                continue;
            }
            let node = i.node().and_then(|n| by_name.get(n));
            if let Some(o) = node {
                if o.c.connected || !o.c.is_certainly_idle() || fencing.contains(o.c.name.as_str())
                {
                    continue;
                }
            }
            plan.orphan_instances.push(OrphanInstance {
                instance: i.id.clone(),
                pool: pool.to_string(),
                node: node.map(|o| o.c.name.clone()),
                reason: format!(
                    "no connected agent {} after launch",
                    crate::util::format_duration_ms(
                        i.launch_time_ms.map_or(0, |t| now.saturating_sub(t))
                    )
                ),
            });
        }
        let orphan_inst_nodes: BTreeSet<&str> = plan
            .orphan_instances
            .iter()
            .filter_map(|o| o.node.as_deref())
            .collect();
        for o in &owned {
            let Some((since, count)) = mem.orphan_nodes.get(&o.c.name) else {
                continue;
            };
            if *count < 2
                || now.saturating_sub(*since) < cfg.orphan_grace_ms
                || now.saturating_sub(o.tag.created_ms) < cfg.orphan_grace_ms
                || o.c.connected
                || !o.c.is_certainly_idle()
                || orphan_inst_nodes.contains(o.c.name.as_str())
                || fencing.contains(o.c.name.as_str())
                || instance_of_node.contains_key(o.c.name.as_str())
            {
                continue;
            }
            plan.orphan_nodes.push(NodeAction {
                node: o.c.name.clone(),
                pool: o.tag.pool.clone(),
                instance: None,
                reason: "no instance behind this node".into(),
            });
        }
    }
    plan
}

#[cfg(test)]
mod tests;
