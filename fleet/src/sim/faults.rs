//! The fault-injection simulator: a small discrete simulator of Jenkins + EC2 that drives the same [`scaler::observe`] and
//! [`scaler::decide`] the service uses, applying plans the way [`crate::reconcile`] does
//! (fence, then the final re-read before delete/terminate). It injects the assignment race
//! (work landing on a node between the observation and the fence) and delayed describes, and
//! counts invariant violations: busy terminations, cap overruns, lost demand.

use crate::cloud::{
    Instance, InstanceState, TAG_FLEET, TAG_JENKINS, TAG_NODE, TAG_POOL, TAG_TOKEN,
};
use crate::config::Config;
use crate::jenkins::{drain_message, parse_drain_message, Computer, NodeTag, QueueItem};
use crate::scaler::{decide, observe, InFlight, Memory, Snapshot};
use std::collections::BTreeMap;

/// Deterministic xorshift PRNG.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next_u64() % n
        }
    }
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

struct SimNode {
    pool: String,
    /// Remaining polls of the build on each executor; `None` = idle.
    execs: Vec<Option<u32>>,
    boot_left: u32,
    connected: bool,
    temp_offline: bool,
    reason: String,
    token: String,
    created: u64,
}

struct SimInstance {
    node: String,
    pool: String,
    token: String,
    launched: u64,
    /// Polls until the instance shows up in describe.
    visible_in: u32,
}

#[derive(Debug, Default, Clone, PartialEq)]
pub struct SimStats {
    pub polls: u64,
    pub items_served: u64,
    pub launches: u64,
    pub fences: u64,
    pub lifts: u64,
    pub retires: u64,
    pub retires_aborted: u64,
    pub orphans: u64,
    /// Must stay 0.
    pub busy_terminations: u64,
    /// Must stay 0.
    pub cap_overruns: u64,
    pub max_live: u64,
    pub max_queue: u64,
}

pub struct Sim {
    pub cfg: Config,
    pub rng: Rng,
    pub now: u64,
    pub mem: Memory,
    queue: Vec<u64>,
    next_item: u64,
    nodes: BTreeMap<String, SimNode>,
    instances: BTreeMap<String, SimInstance>,
    next_id: u64,
    pub stats: SimStats,
    /// Percent chance per poll of a burst of arrivals, and its maximum size.
    pub burst_percent: u64,
    pub burst_max: u64,
    /// Percent chance that Jenkins assigns work between the observation and the actions.
    pub race_percent: u64,
}

const POLL_MS: u64 = 1000;

impl Sim {
    pub fn new(cfg: Config, seed: u64) -> Sim {
        Sim {
            cfg,
            rng: Rng::new(seed),
            now: 1_800_000_000_000,
            mem: Memory::default(),
            queue: Vec::new(),
            next_item: 1,
            nodes: BTreeMap::new(),
            instances: BTreeMap::new(),
            next_id: 1,
            stats: SimStats::default(),
            burst_percent: 20,
            burst_max: 12,
            race_percent: 50,
        }
    }

    /// Jenkins' dispatcher: queue items go to idle executors of online, accepting nodes.
    fn assign(&mut self) {
        let mut i = 0;
        while i < self.queue.len() {
            let slot = self.nodes.values_mut().find_map(|n| {
                if !n.connected || n.temp_offline {
                    return None;
                }
                n.execs.iter_mut().find(|e| e.is_none())
            });
            match slot {
                Some(e) => {
                    *e = Some(1 + (self.queue[i] % 4) as u32);
                    self.queue.remove(i);
                    self.stats.items_served += 1;
                }
                None => i += 1,
            }
        }
    }

    fn world_step(&mut self) {
        if self.rng.chance(self.burst_percent) {
            for _ in 0..1 + self.rng.below(self.burst_max) {
                self.queue.push(self.next_item);
                self.next_item += 1;
            }
        }
        for n in self.nodes.values_mut() {
            for e in n.execs.iter_mut() {
                if let Some(left) = e {
                    *left = left.saturating_sub(1);
                    if *left == 0 {
                        *e = None;
                    }
                }
            }
            if !n.connected {
                if n.boot_left == 0 {
                    n.connected = true;
                } else {
                    n.boot_left -= 1;
                }
            }
        }
        for i in self.instances.values_mut() {
            i.visible_in = i.visible_in.saturating_sub(1);
        }
        self.assign();
    }

    fn snapshot(&self) -> (Vec<QueueItem>, Vec<Computer>, Vec<Instance>) {
        let queue = self
            .queue
            .iter()
            .map(|id| QueueItem {
                id: *id,
                class: "hudson.model.Queue$BuildableItem".into(),
                why: Some("Waiting for next available executor on \u{2018}linux\u{2019}".into()),
                buildable: true,
                blocked: false,
                pending: false,
                stuck: false,
                in_queue_since_ms: Some(self.now),
                buildable_start_ms: Some(self.now),
                task_name: None,
                task_label: None,
            })
            .collect();
        let computers = self
            .nodes
            .iter()
            .map(|(name, n)| Computer {
                class: "hudson.slaves.SlaveComputer".into(),
                name: name.clone(),
                description: Some(
                    NodeTag {
                        fleet: self.cfg.fleet_id.clone(),
                        pool: n.pool.clone(),
                        token: n.token.clone(),
                        instance: None,
                        created_ms: n.created,
                    }
                    .render(),
                ),
                num_executors: n.execs.len() as u32,
                offline: !n.connected || n.temp_offline,
                temporarily_offline: n.temp_offline,
                offline_cause_reason: (!n.reason.is_empty()).then(|| n.reason.clone()),
                idle: Some(n.execs.iter().all(Option::is_none)),
                connected: n.connected,
                executors: n.execs.iter().map(|e| Some(e.is_none())).collect(),
                one_off_busy: 0,
                builds: Vec::new(),
                labels: vec![],
            })
            .collect();
        let instances = self
            .instances
            .iter()
            .filter(|(_, i)| i.visible_in == 0)
            .map(|(id, i)| {
                let mut tags = BTreeMap::new();
                tags.insert(TAG_FLEET.to_string(), self.cfg.fleet_id.clone());
                tags.insert(TAG_JENKINS.to_string(), self.cfg.jenkins.url.clone());
                tags.insert(TAG_POOL.to_string(), i.pool.clone());
                tags.insert(TAG_NODE.to_string(), i.node.clone());
                tags.insert(TAG_TOKEN.to_string(), i.token.clone());
                Instance {
                    id: id.clone(),
                    state: InstanceState::Running,
                    instance_type: "c5.xlarge".into(),
                    launch_time_ms: Some(i.launched),
                    spot: false,
                    tags,
                }
            })
            .collect();
        (queue, computers, instances)
    }

    fn terminate(&mut self, id: &str) {
        if let Some(i) = self.instances.remove(id) {
            if let Some(n) = self.nodes.get(&i.node) {
                if n.execs.iter().any(Option::is_some) {
                    self.stats.busy_terminations += 1;
                }
            }
            self.nodes.remove(&i.node);
        }
    }

    /// One poll of the world and the manager.
    pub fn step(&mut self) {
        self.now += POLL_MS;
        self.world_step();
        let (queue, computers, instances) = self.snapshot();
        self.mem = observe(&self.mem, &computers, &instances, &self.cfg, self.now);
        let plan = decide(
            &Snapshot {
                queue: &queue,
                computers: &computers,
                instances: &instances,
                memory: &self.mem,
            },
            &self.cfg,
            self.now,
        );
        self.stats.polls += 1;
        self.stats.max_queue = self.stats.max_queue.max(self.queue.len() as u64);

        // The race: new work arrives and Jenkins hands it out after the observation, before
        // the fences land.
        if self.rng.chance(self.race_percent) {
            for _ in 0..1 + self.rng.below(3) {
                self.queue.push(self.next_item);
                self.next_item += 1;
            }
            self.assign();
        }

        for l in &plan.launches {
            let Some(pool) = self.cfg.pool(&l.pool) else {
                continue;
            };
            let token = format!("{:016x}", self.next_id);
            let node = format!("n-{}-{}", pool.name, self.next_id);
            let id = format!("i-{:08x}", self.next_id);
            self.next_id += 1;
            let execs = l.executors as usize;
            self.nodes.insert(
                node.clone(),
                SimNode {
                    pool: pool.name.clone(),
                    execs: vec![None; execs],
                    boot_left: 1 + self.rng.below(3) as u32,
                    connected: false,
                    temp_offline: false,
                    reason: String::new(),
                    token: token.clone(),
                    created: self.now,
                },
            );
            self.instances.insert(
                id.clone(),
                SimInstance {
                    node: node.clone(),
                    pool: pool.name.clone(),
                    token: token.clone(),
                    launched: self.now,
                    visible_in: self.rng.below(3) as u32,
                },
            );
            self.mem.ledger.insert(
                token,
                InFlight {
                    pool: pool.name.clone(),
                    node,
                    executors: l.executors,
                    price: None,
                    started_ms: self.now,
                    instance_id: Some(id),
                },
            );
            self.stats.launches += 1;
        }
        for a in &plan.lifts {
            if let Some(n) = self.nodes.get_mut(&a.node) {
                n.temp_offline = false;
                n.reason.clear();
                self.mem.fences.remove(&a.node);
                self.stats.lifts += 1;
            }
        }
        for a in &plan.retires {
            // The final re-read, exactly as reconcile does it.
            let clean = self.nodes.get(&a.node).is_some_and(|n| {
                n.temp_offline
                    && parse_drain_message(&n.reason, &self.cfg.fleet_id).is_some()
                    && n.execs.iter().all(Option::is_none)
            });
            if !clean {
                self.stats.retires_aborted += 1;
                continue;
            }
            self.mem.fences.remove(&a.node);
            match &a.instance {
                Some(id) => self.terminate(id),
                None => {
                    self.nodes.remove(&a.node);
                }
            }
            self.stats.retires += 1;
        }
        for a in &plan.fences {
            if let Some(n) = self.nodes.get_mut(&a.node) {
                n.temp_offline = true;
                n.reason = drain_message(&self.cfg.fleet_id, self.now);
                self.mem.fences.insert(a.node.clone(), self.now);
                self.stats.fences += 1;
            }
        }
        for o in &plan.orphan_instances {
            self.terminate(&o.instance);
            self.stats.orphans += 1;
        }
        for a in &plan.orphan_nodes {
            self.nodes.remove(&a.node);
            self.stats.orphans += 1;
        }

        let live = self.instances.len() as u64;
        self.stats.max_live = self.stats.max_live.max(live);
        let cap = self
            .cfg
            .pools
            .iter()
            .map(|p| p.max_instances as u64)
            .sum::<u64>();
        let cap = self.cfg.max_instances.map_or(cap, |g| cap.min(g as u64));
        if live > cap {
            self.stats.cap_overruns += 1;
        }
    }

    pub fn queue_len(&self) -> usize {
        self.queue.len()
    }

    pub fn live_instances(&self) -> usize {
        self.instances.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::load_str;
    use std::path::Path;

    fn cfg(max: u32) -> Config {
        let text = format!(
            r#"
fleet_id = "sim"
poll_interval = "1s"
settle_interval = "1s"
orphan_grace = "5s"
[jenkins]
url = "https://ci.example.com/"
user = "u"
token_file = "t"
[aws]
region = "us-east-1"
[[pool]]
name = "linux"
labels = ["linux"]
executors = 2
instance_types = ["c5.xlarge"]
ami = "ami-1"
max_instances = {max}
idle_timeout = "0s"
boot_deadline = "60s"
"#
        );
        match load_str(&text, Path::new("/")) {
            Ok(c) => c,
            Err(e) => panic!("{e:?}"),
        }
    }

    /// Thousands of scale-ins with the assignment race injected: no busy termination, caps
    /// hold, and all work is eventually served.
    #[test]
    fn ten_thousand_scale_ins_without_a_busy_termination() {
        let mut total = SimStats::default();
        let mut seed = 0;
        while total.retires < 10_000 {
            seed += 1;
            let mut sim = Sim::new(cfg(12), seed);
            for _ in 0..400 {
                sim.step();
            }
            // Drain: no more arrivals; everything queued gets served.
            sim.burst_percent = 0;
            sim.race_percent = 0;
            for _ in 0..60 {
                sim.step();
            }
            assert_eq!(sim.queue_len(), 0, "seed {seed}: work left in the queue");
            let s = &sim.stats;
            assert_eq!(s.busy_terminations, 0, "seed {seed}: {s:?}");
            assert_eq!(s.cap_overruns, 0, "seed {seed}: {s:?}");
            // Jenkins never assigns work to a fenced node, so a retire that the final re-read
            // has to stop means decide planned it on a busy node.
            assert_eq!(s.retires_aborted, 0, "seed {seed}: {s:?}");
            total.retires += s.retires;
            total.retires_aborted += s.retires_aborted;
            total.lifts += s.lifts;
            total.launches += s.launches;
            total.busy_terminations += s.busy_terminations;
            assert!(seed < 2_000, "too few scale-ins: {total:?}");
        }
        eprintln!("sim: {seed} seeds, {total:?}");
        assert!(total.lifts > 0, "the race was exercised: {total:?}");
    }
}
