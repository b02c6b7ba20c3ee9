//! The discrete-event world: builds, a Jenkins queue with FIFO dispatch to idle executors,
//! instances with boot times, per-second billing (60 s minimum), spot interruptions and
//! capacity errors. The virtual clock jumps from event to event; nothing sleeps.

use super::workload::{Build, Workload};
use super::Rng;
use crate::config::{Config, Pool};
use crate::pricing;
use serde::Serialize;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, VecDeque};

/// The world's physics, the same for every policy in a run.
#[derive(Clone, Debug, Serialize)]
pub struct Params {
    pub seed: u64,
    /// Launch to agent online, uniform in [min, max] (EC2 Linux: ~45–75 s).
    pub boot_min_ms: u64,
    pub boot_max_ms: u64,
    /// Spot interruptions per spot instance-hour (0 = none).
    pub spot_interruptions_per_hour: f64,
    /// Percent of launch calls that fail with InsufficientInstanceCapacity.
    pub capacity_error_percent: u64,
    /// After the last build ends, how long the policy may keep instances (then they are
    /// terminated and billed up to that moment).
    pub drain_ms: u64,
    /// Timeline sample period for plots.
    pub sample_ms: u64,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            seed: 1,
            boot_min_ms: 45_000,
            boot_max_ms: 75_000,
            spot_interruptions_per_hour: 0.0,
            capacity_error_percent: 0,
            drain_ms: 2 * 3_600_000,
            sample_ms: 60_000,
        }
    }
}

#[derive(Clone, Debug)]
pub struct Inst {
    pub id: u64,
    pub pool: String,
    pub instance_type: String,
    pub spot: bool,
    pub price_per_hour: f64,
    pub node: String,
    pub token: String,
    pub launched_ms: u64,
    pub online_ms: u64,
    /// Build index per executor.
    pub execs: Vec<Option<usize>>,
    /// Jenkins' temporary-offline flag and its reason (the fence).
    pub fenced: bool,
    pub fence_reason: String,
    pub interrupt_ms: Option<u64>,
    /// When the instance shows up in describe (eventual consistency).
    pub visible_ms: u64,
    pub last_busy_ms: u64,
}

impl Inst {
    pub fn online(&self, now: u64) -> bool {
        now >= self.online_ms
    }
    pub fn idle(&self) -> bool {
        self.execs.iter().all(Option::is_none)
    }
    pub fn free_execs(&self) -> usize {
        self.execs.iter().filter(|e| e.is_none()).count()
    }
}

/// What happened to one build.
#[derive(Clone, Debug, Default, Serialize)]
pub struct BuildRecord {
    /// Queue wait of the run that finished (ms).
    pub wait_ms: Option<u64>,
    pub started_ms: Option<u64>,
    pub finished_ms: Option<u64>,
    /// Times the build was started (more than 1 after a spot interruption).
    pub starts: u32,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct Sample {
    pub t_ms: u64,
    pub queue: usize,
    pub instances: usize,
    pub busy_executors: usize,
    pub cost: f64,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct Counters {
    pub launches: u64,
    pub capacity_errors: u64,
    pub spot_interruptions: u64,
    /// Builds re-queued because their instance was reclaimed.
    pub interrupted_builds: u64,
    /// Instances terminated by the policy while running a build. Must be 0 for nectr.
    pub busy_terminations: u64,
    pub billed_ms: u64,
    /// Executor-milliseconds spent running builds, divided by the instance's executors.
    pub used_instance_ms: f64,
    pub cost: f64,
    pub max_instances: usize,
}

pub struct World<'w> {
    pub cfg: Config,
    pub params: Params,
    pub builds: &'w [Build],
    pub now: u64,
    pub queue: VecDeque<(usize, u64)>,
    pub instances: BTreeMap<u64, Inst>,
    pub records: Vec<BuildRecord>,
    pub counters: Counters,
    pub samples: Vec<Sample>,
    rng: Rng,
    next_arrival: usize,
    ends: BinaryHeap<Reverse<(u64, u64, usize)>>,
    next_id: u64,
    /// Dollars of instances already terminated.
    closed_cost: f64,
    dispatch_needed: bool,
}

/// A manager: called at the times it asks for.
pub trait Policy {
    fn name(&self) -> String;
    /// The next time (>= now) it wants to run.
    fn next_poll(&self, now: u64) -> u64;
    fn poll(&mut self, w: &mut World<'_>);
}

impl<'w> World<'w> {
    pub fn new(cfg: Config, params: Params, workload: &'w Workload) -> World<'w> {
        World {
            rng: Rng::new(params.seed ^ 0xC0575),
            cfg,
            params,
            builds: &workload.builds,
            now: 0,
            queue: VecDeque::new(),
            instances: BTreeMap::new(),
            records: vec![BuildRecord::default(); workload.builds.len()],
            counters: Counters::default(),
            samples: Vec::new(),
            next_arrival: 0,
            ends: BinaryHeap::new(),
            next_id: 1,
            closed_cost: 0.0,
            dispatch_needed: false,
        }
    }

    /// Pool serving a label: the first pool carrying it (the workloads use atoms).
    pub fn pool_for(&self, label: &str) -> Option<&Pool> {
        self.cfg.pools.iter().find(|p| p.labels.contains(label))
    }

    /// Launch one instance; `None` on a (simulated) capacity error.
    pub fn launch(
        &mut self,
        pool: &str,
        instance_type: &str,
        spot: bool,
        executors: u32,
    ) -> Option<u64> {
        let p = self.cfg.pool(pool)?;
        let price = p.hourly_price(instance_type, spot).unwrap_or(0.0);
        if self.rng.chance(self.params.capacity_error_percent) {
            self.counters.capacity_errors += 1;
            return None;
        }
        let id = self.next_id;
        self.next_id += 1;
        let span = self
            .params
            .boot_max_ms
            .saturating_sub(self.params.boot_min_ms);
        let boot = self.params.boot_min_ms + self.rng.below(span + 1);
        let interrupt_ms = if spot && self.params.spot_interruptions_per_hour > 0.0 {
            let u = ((self.rng.next_u64() >> 11) as f64 + 1.0) / (1u64 << 53) as f64;
            Some(
                self.now + (-u.ln() / self.params.spot_interruptions_per_hour * 3_600_000.0) as u64,
            )
        } else {
            None
        };
        let visible = self.rng.below(3) * 1000;
        self.instances.insert(
            id,
            Inst {
                id,
                pool: pool.to_string(),
                instance_type: instance_type.to_string(),
                spot,
                price_per_hour: price,
                node: format!("sim-{pool}-{id:06}"),
                token: format!("{id:016x}"),
                launched_ms: self.now,
                online_ms: self.now + boot,
                execs: vec![None; executors.max(1) as usize],
                fenced: false,
                fence_reason: String::new(),
                interrupt_ms,
                visible_ms: self.now + visible,
                last_busy_ms: self.now,
            },
        );
        self.counters.launches += 1;
        self.counters.max_instances = self.counters.max_instances.max(self.instances.len());
        Some(id)
    }

    fn close(&mut self, i: &Inst) {
        let ms = pricing::billed_ms(self.now - i.launched_ms);
        self.counters.billed_ms += ms;
        let c = pricing::dollars(ms, i.price_per_hour);
        self.counters.cost += c;
        self.closed_cost += c;
    }

    /// The policy terminates an instance. Running builds on it are lost and re-queued (the
    /// Pipeline `retry(conditions: [agent()])` behaviour) and counted as busy terminations.
    pub fn terminate(&mut self, id: u64) {
        let Some(i) = self.instances.remove(&id) else {
            return;
        };
        if !i.idle() {
            self.counters.busy_terminations += 1;
        }
        self.requeue_from(&i);
        self.close(&i);
    }

    fn requeue_from(&mut self, i: &Inst) {
        for b in i.execs.iter().flatten() {
            // The part that did not run is not used time.
            if let Some(s) = self.records[*b].started_ms {
                let left = (s + self.builds[*b].duration_ms).saturating_sub(self.now);
                self.counters.used_instance_ms -= left as f64 / i.execs.len() as f64;
            }
            self.queue.push_front((*b, self.builds[*b].arrival_ms));
            self.records[*b].started_ms = None;
            self.counters.interrupted_builds += 1;
            self.dispatch_needed = true;
        }
    }

    pub fn fence(&mut self, id: u64, reason: String) {
        if let Some(i) = self.instances.get_mut(&id) {
            i.fenced = true;
            i.fence_reason = reason;
        }
    }

    pub fn lift(&mut self, id: u64) {
        if let Some(i) = self.instances.get_mut(&id) {
            i.fenced = false;
            i.fence_reason.clear();
            self.dispatch_needed = true;
        }
    }

    pub fn by_node(&self, node: &str) -> Option<u64> {
        self.instances
            .values()
            .find(|i| i.node == node)
            .map(|i| i.id)
    }

    /// Jenkins' dispatcher: the queue in order, each item to the first idle executor of an
    /// online, not fenced node of a pool carrying its label.
    fn dispatch(&mut self) {
        self.dispatch_needed = false;
        let mut i = 0;
        while i < self.queue.len() {
            let (b, since) = self.queue[i];
            let label = &self.builds[b].label;
            let now = self.now;
            let cfg = &self.cfg;
            let slot = self.instances.values_mut().find_map(|inst| {
                if inst.fenced || !inst.online(now) {
                    return None;
                }
                if !cfg
                    .pool(&inst.pool)
                    .is_some_and(|p| p.labels.contains(label))
                {
                    return None;
                }
                let k = inst.execs.iter().position(Option::is_none)?;
                Some((inst, k))
            });
            match slot {
                Some((inst, k)) => {
                    inst.execs[k] = Some(b);
                    let id = inst.id;
                    let execs = inst.execs.len();
                    let end = now + self.builds[b].duration_ms;
                    self.ends.push(Reverse((end, id, k)));
                    let r = &mut self.records[b];
                    r.started_ms = Some(now);
                    r.wait_ms = Some(now - since.min(now));
                    r.starts += 1;
                    self.counters.used_instance_ms +=
                        self.builds[b].duration_ms as f64 / execs as f64;
                    self.queue.remove(i);
                }
                None => i += 1,
            }
        }
    }

    /// Dollars billed so far (running instances counted up to now, without the minimum).
    pub fn cost_so_far(&self) -> f64 {
        self.closed_cost
            + self
                .instances
                .values()
                .map(|i| pricing::dollars(self.now - i.launched_ms, i.price_per_hour))
                .sum::<f64>()
    }

    fn next_event(&self) -> Option<u64> {
        let mut t = u64::MAX;
        if let Some(b) = self.builds.get(self.next_arrival) {
            t = t.min(b.arrival_ms);
        }
        if let Some(Reverse((e, _, _))) = self.ends.peek() {
            t = t.min(*e);
        }
        for i in self.instances.values() {
            if i.online_ms > self.now {
                t = t.min(i.online_ms);
            }
            if let Some(x) = i.interrupt_ms {
                t = t.min(x.max(self.now));
            }
        }
        (t != u64::MAX).then_some(t)
    }

    /// Apply everything due at `self.now`.
    fn settle(&mut self) {
        while let Some(b) = self.builds.get(self.next_arrival) {
            if b.arrival_ms > self.now {
                break;
            }
            self.queue.push_back((self.next_arrival, b.arrival_ms));
            self.next_arrival += 1;
            self.dispatch_needed = true;
        }
        while let Some(Reverse((end, id, k))) = self.ends.peek().copied() {
            if end > self.now {
                break;
            }
            self.ends.pop();
            // Stale if the instance went away (the build was re-queued).
            if let Some(inst) = self.instances.get_mut(&id) {
                if let Some(b) = inst.execs[k] {
                    if self.records[b]
                        .started_ms
                        .is_some_and(|s| s + self.builds[b].duration_ms == end)
                    {
                        inst.execs[k] = None;
                        inst.last_busy_ms = self.now;
                        self.records[b].finished_ms = Some(self.now);
                        self.dispatch_needed = true;
                    }
                }
            }
        }
        let now = self.now;
        let reclaimed: Vec<u64> = self
            .instances
            .values()
            .filter(|i| i.interrupt_ms.is_some_and(|t| t <= now))
            .map(|i| i.id)
            .collect();
        for id in reclaimed {
            if let Some(i) = self.instances.remove(&id) {
                self.counters.spot_interruptions += 1;
                self.requeue_from(&i);
                self.close(&i);
            }
        }
        if self
            .instances
            .values()
            .any(|i| i.online_ms == now && i.free_execs() > 0)
        {
            self.dispatch_needed = true;
        }
        if self.dispatch_needed && !self.queue.is_empty() {
            self.dispatch();
        }
        self.dispatch_needed = false;
    }

    fn all_done(&self) -> bool {
        self.next_arrival >= self.builds.len() && self.queue.is_empty() && self.ends.is_empty()
    }

    fn sample(&mut self) {
        let busy = self
            .instances
            .values()
            .map(|i| i.execs.len() - i.free_execs())
            .sum();
        let s = Sample {
            t_ms: self.now,
            queue: self.queue.len(),
            instances: self.instances.len(),
            busy_executors: busy,
            cost: self.cost_so_far(),
        };
        self.samples.push(s);
    }

    /// Run the workload under `policy` until every build has finished and the drain window
    /// after the last one has passed (or no instance is left).
    pub fn run(&mut self, policy: &mut dyn Policy) {
        let mut next_sample = 0u64;
        let mut last_end: Option<u64> = None;
        loop {
            let poll = policy.next_poll(self.now);
            let mut t = poll;
            if let Some(e) = self.next_event() {
                t = t.min(e);
            }
            // Timeline samples are taken lazily: record every sample time we jump over.
            while next_sample <= t {
                let save = self.now;
                self.now = next_sample.max(save);
                self.sample();
                self.now = save;
                next_sample += self.params.sample_ms;
            }
            self.now = t.max(self.now);
            self.settle();
            if self.now >= poll {
                policy.poll(self);
                if self.dispatch_needed || !self.queue.is_empty() {
                    self.dispatch();
                }
            }
            let last_arrival = self.builds.last().map_or(0, |b| b.arrival_ms);
            if self.next_arrival >= self.builds.len()
                && self.now >= last_arrival + self.params.drain_ms + 86_400_000
            {
                // Work nobody can serve (no pool for its label, caps at 0): give up; the
                // report counts those builds as lost.
                break;
            }
            if self.all_done() {
                let end = *last_end.get_or_insert(self.now);
                if self.instances.is_empty() || self.now >= end + self.params.drain_ms {
                    break;
                }
            }
        }
        let ids: Vec<u64> = self.instances.keys().copied().collect();
        for id in ids {
            if let Some(i) = self.instances.remove(&id) {
                self.close(&i);
            }
        }
        self.sample();
    }
}
