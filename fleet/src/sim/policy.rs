//! The managers a simulation compares on the same world and seed.
//!
//! [`Nectr`] runs the service's own [`observe`] and [`decide`] and carries out the plan the
//! way [`crate::reconcile`] does: launches (with the ledger entry), fences with the drain
//! message, and the final re-read before a retire (`parse_drain_message` on the node's
//! offline reason and every executor idle). The others are models of the alternatives
//! described in `../shared/reference/fleet-anchors.md`.

use super::engine::{Policy, World};
use crate::cloud::{
    Instance, InstanceState, Market, Offering, TAG_FLEET, TAG_JENKINS, TAG_NODE, TAG_POOL,
    TAG_TOKEN,
};
use crate::config::{Config, Purchase};
use crate::jenkins::{drain_message, parse_drain_message, Computer, NodeTag, QueueItem};
use crate::scaler::{decide, observe, Backoff, InFlight, Memory, Snapshot};
use std::collections::BTreeMap;

/// Virtual time 0 is this epoch millisecond for the code that reads wall-clock values.
pub const EPOCH_MS: u64 = 1_800_000_000_000;

/// nectr: the config given, through the real `decide`.
pub struct Nectr {
    cfg: Config,
    mem: Memory,
    next: u64,
    /// Retires the final re-read refused (decide planned a retire on a node that was not
    /// fenced and idle).
    pub retires_aborted: u64,
}

impl Nectr {
    pub fn new(cfg: Config) -> Nectr {
        Nectr {
            cfg,
            mem: Memory::default(),
            next: 0,
            retires_aborted: 0,
        }
    }
}

fn instance_id(id: u64) -> String {
    format!("i-{id:017x}")
}

impl Policy for Nectr {
    fn name(&self) -> String {
        "nectr".into()
    }

    fn next_poll(&self, now: u64) -> u64 {
        self.next.max(now)
    }

    fn poll(&mut self, w: &mut World<'_>) {
        let now = EPOCH_MS + w.now;
        self.next = w.now + self.cfg.poll_interval_ms.max(1);
        let fleet = self.cfg.fleet_id.clone();
        let queue: Vec<QueueItem> = w
            .queue
            .iter()
            .map(|(b, since)| {
                let build = &w.builds[*b];
                QueueItem {
                    id: *b as u64 + 1,
                    class: "hudson.model.Queue$BuildableItem".into(),
                    why: Some(format!(
                        "Waiting for next available executor on \u{2018}{}\u{2019}",
                        build.label
                    )),
                    buildable: true,
                    blocked: false,
                    pending: false,
                    stuck: false,
                    in_queue_since_ms: Some(EPOCH_MS + since),
                    buildable_start_ms: Some(EPOCH_MS + since),
                    task_name: Some(build.job.clone()),
                    task_label: None,
                }
            })
            .collect();
        let computers: Vec<Computer> = w
            .instances
            .values()
            .map(|i| {
                let online = i.online(w.now);
                Computer {
                    class: "hudson.slaves.SlaveComputer".into(),
                    name: i.node.clone(),
                    description: Some(
                        NodeTag {
                            fleet: fleet.clone(),
                            pool: i.pool.clone(),
                            token: i.token.clone(),
                            instance: None,
                            created_ms: EPOCH_MS + i.launched_ms,
                        }
                        .render(),
                    ),
                    num_executors: i.execs.len() as u32,
                    offline: !online || i.fenced,
                    temporarily_offline: i.fenced,
                    offline_cause_reason: (!i.fence_reason.is_empty())
                        .then(|| i.fence_reason.clone()),
                    idle: Some(i.idle()),
                    connected: online,
                    executors: i.execs.iter().map(|e| Some(e.is_none())).collect(),
                    one_off_busy: 0,
                    builds: Vec::new(),
                    labels: vec![],
                }
            })
            .collect();
        let instances: Vec<Instance> = w
            .instances
            .values()
            .filter(|i| i.visible_ms <= w.now)
            .map(|i| {
                let mut tags = BTreeMap::new();
                tags.insert(TAG_FLEET.to_string(), fleet.clone());
                tags.insert(TAG_JENKINS.to_string(), self.cfg.jenkins.url.clone());
                tags.insert(TAG_POOL.to_string(), i.pool.clone());
                tags.insert(TAG_NODE.to_string(), i.node.clone());
                tags.insert(TAG_TOKEN.to_string(), i.token.clone());
                Instance {
                    id: instance_id(i.id),
                    state: InstanceState::Running,
                    instance_type: i.instance_type.clone(),
                    launch_time_ms: Some(EPOCH_MS + i.launched_ms),
                    spot: i.spot,
                    tags,
                }
            })
            .collect();
        self.mem = observe(&self.mem, &computers, &instances, &self.cfg, now);
        let plan = decide(
            &Snapshot {
                queue: &queue,
                computers: &computers,
                instances: &instances,
                memory: &self.mem,
            },
            &self.cfg,
            now,
        );

        for l in &plan.launches {
            for o in &l.offerings {
                let spot = o.market == Market::Spot;
                match w.launch(&l.pool, &o.instance_type, spot, l.executors) {
                    Some(id) => {
                        let i = &w.instances[&id];
                        self.mem.ledger.insert(
                            i.token.clone(),
                            InFlight {
                                pool: l.pool.clone(),
                                node: i.node.clone(),
                                executors: l.executors,
                                price: Some(i.price_per_hour),
                                started_ms: now,
                                instance_id: Some(instance_id(id)),
                            },
                        );
                        break;
                    }
                    None => back_off(&mut self.mem, o, now),
                }
            }
        }
        for a in &plan.lifts {
            if let Some(id) = w.by_node(&a.node) {
                w.lift(id);
                self.mem.fences.remove(&a.node);
            }
        }
        for a in &plan.retires {
            // The final re-read, as reconcile does it.
            let clean = w
                .by_node(&a.node)
                .and_then(|id| w.instances.get(&id))
                .filter(|i| {
                    i.fenced && parse_drain_message(&i.fence_reason, &fleet).is_some() && i.idle()
                });
            match clean {
                Some(i) => {
                    let id = i.id;
                    self.mem.fences.remove(&a.node);
                    w.terminate(id);
                }
                None => self.retires_aborted += 1,
            }
        }
        for a in &plan.fences {
            if let Some(id) = w.by_node(&a.node) {
                w.fence(id, drain_message(&fleet, now));
                self.mem.fences.insert(a.node.clone(), now);
            }
        }
        for o in &plan.orphan_instances {
            if let Some(id) = w
                .instances
                .values()
                .find(|i| instance_id(i.id) == o.instance)
                .map(|i| i.id)
            {
                w.terminate(id);
            }
        }
    }
}

/// The capacity-error back-off of `reconcile` (30 s doubling to 15 min per offering).
fn back_off(mem: &mut Memory, o: &Offering, now: u64) {
    let b = mem.offering_backoff.entry(o.clone()).or_insert(Backoff {
        until_ms: 0,
        failures: 0,
    });
    b.failures = (b.failures + 1).min(6);
    b.until_ms = now + (30_000u64 << (b.failures - 1)).min(900_000);
}

/// How a classic provisioner decides to add capacity.
#[derive(Clone, Copy, Debug)]
pub enum Provisioner {
    /// Jenkins core's NodeProvisioner: 100 s initial delay, a 10 s tick, exponential moving
    /// averages (decay 0.9 per tick, ≈66 s half-life) of the queue length and of the
    /// available executors; provisions only when every executor is busy.
    Core,
    /// ec2-fleet's no-delay strategy: every 10 s, whatever the queue needs beyond idle and
    /// booting executors.
    NoDelay,
}

/// The alternatives: a provisioner plus an idle-timeout retention (checked every tick; only
/// idle instances are terminated).
pub struct Classic {
    pub name: String,
    pub provisioner: Provisioner,
    /// `None`: each pool's `idle_timeout`.
    pub idle_timeout_ms: Option<u64>,
    cfg: Config,
    next: u64,
    ema_queue: BTreeMap<String, f64>,
    ema_avail: BTreeMap<String, f64>,
}

const TICK_MS: u64 = 10_000;
const CORE_INITIAL_DELAY_MS: u64 = 100_000;

impl Classic {
    pub fn new(
        name: &str,
        cfg: Config,
        provisioner: Provisioner,
        idle_timeout_ms: Option<u64>,
    ) -> Classic {
        let next = match provisioner {
            Provisioner::Core => CORE_INITIAL_DELAY_MS,
            Provisioner::NoDelay => 0,
        };
        Classic {
            name: name.into(),
            provisioner,
            idle_timeout_ms,
            cfg,
            next,
            ema_queue: BTreeMap::new(),
            ema_avail: BTreeMap::new(),
        }
    }

    pub fn jenkins_core_like(cfg: Config) -> Classic {
        Classic::new("jenkins_core_like", cfg, Provisioner::Core, None)
    }
    pub fn ec2_plugin_like(cfg: Config) -> Classic {
        Classic::new("ec2_plugin_like", cfg, Provisioner::Core, Some(30 * 60_000))
    }
    pub fn ec2_fleet_like(cfg: Config) -> Classic {
        Classic::new("ec2_fleet_like", cfg, Provisioner::NoDelay, None)
    }
}

impl Policy for Classic {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn next_poll(&self, now: u64) -> u64 {
        self.next.max(now)
    }

    fn poll(&mut self, w: &mut World<'_>) {
        self.next = w.now + TICK_MS;
        let now = w.now;
        for pool in self.cfg.pools.clone() {
            let Some(t) = pool.instance_types.first() else {
                continue;
            };
            let execs = t.executors.max(1) as usize;
            let queued = w
                .queue
                .iter()
                .filter(|(b, _)| pool.labels.contains(&w.builds[*b].label))
                .count();
            let mine: Vec<&super::engine::Inst> = w
                .instances
                .values()
                .filter(|i| i.pool == pool.name)
                .collect();
            let idle_now: usize = mine
                .iter()
                .filter(|i| i.online(now) && !i.fenced)
                .map(|i| i.free_execs())
                .sum();
            let booting: usize = mine
                .iter()
                .filter(|i| !i.online(now))
                .map(|i| i.execs.len())
                .sum();
            let count = mine.len();
            let want_execs = match self.provisioner {
                Provisioner::NoDelay => queued.saturating_sub(idle_now + booting),
                Provisioner::Core => {
                    let q = self.ema_queue.entry(pool.name.clone()).or_insert(0.0);
                    *q = 0.9 * *q + 0.1 * queued as f64;
                    let a = self.ema_avail.entry(pool.name.clone()).or_insert(0.0);
                    *a = 0.9 * *a + 0.1 * idle_now as f64;
                    let excess = *q - *a - booting as f64;
                    if idle_now == 0 && queued > 0 && excess > 0.9 {
                        (excess - 0.1).ceil() as usize
                    } else {
                        0
                    }
                }
            };
            let room = (pool.max_instances as usize).saturating_sub(count);
            let n = want_execs.div_ceil(execs).min(room);
            let spot = pool.purchase != Purchase::OnDemand;
            for _ in 0..n {
                if w.launch(&pool.name, &t.name, spot, t.executors).is_none() && spot {
                    w.launch(&pool.name, &t.name, false, t.executors);
                }
            }
            // Retention: idle for the timeout, never below min_instances.
            let timeout = self.idle_timeout_ms.unwrap_or(pool.idle_timeout_ms);
            let mut expired: Vec<(u64, u64)> = w
                .instances
                .values()
                .filter(|i| i.pool == pool.name && i.online(now) && i.idle())
                .filter(|i| now.saturating_sub(i.last_busy_ms.max(i.online_ms)) >= timeout)
                .map(|i| (i.last_busy_ms, i.id))
                .collect();
            expired.sort();
            let keep = pool.min_instances as usize;
            let mut live = w.instances.values().filter(|i| i.pool == pool.name).count();
            for (_, id) in expired {
                if live <= keep {
                    break;
                }
                w.terminate(id);
                live -= 1;
            }
        }
    }
}
