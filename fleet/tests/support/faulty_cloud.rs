//! The EC2 fault layer: a CloudProvider wrapper around the EC2 provider (talking to moto)
//! that models what real EC2 does and moto does not, and injects the faults moto cannot
//! produce:
//!
//! - **client-token idempotency**: a `RunInstances` repeated with a client token already used
//!   answers with the instance the first call made, and launches nothing;
//! - **read-after-write lag**: a new instance stays out of `DescribeInstances` for a random
//!   delay (by default 0.3–1.5 s);
//! - answers **lost after the action was applied** (a transport error, the action done),
//!   **500s** before applying, **slow answers**, capacity errors and throttling.
//!
//! Faults are drawn from a seeded generator ([`Ec2Faults`]) or forced for the next calls.

use nectr_fleet::cloud::{
    CloudError, CloudErrorKind, CloudProvider, Instance, LaunchSpec, Offering, StoredSecret,
};
use nectr_fleet::secret::Secret;
use nectr_fleet::util::now_ms;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Seeded, per-call fault rates (percent).
#[derive(Clone, Debug)]
pub struct Ec2Faults {
    /// A new instance shows in describes after a delay drawn from this range (ms).
    pub visibility_ms: (u64, u64),
    pub slow_percent: u64,
    pub slow_ms: u64,
    /// 500 InternalError, nothing done.
    pub error_percent: u64,
    /// Done, but the answer is lost (connection reset).
    pub lose_percent: u64,
    pub seed: u64,
}

impl Default for Ec2Faults {
    fn default() -> Self {
        Ec2Faults {
            visibility_ms: (300, 1500),
            slow_percent: 0,
            slow_ms: 0,
            error_percent: 0,
            lose_percent: 0,
            seed: 1,
        }
    }
}

impl Ec2Faults {
    fn next(&mut self) -> u64 {
        let mut x = self.seed | 1;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.seed = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 33
    }
    fn roll(&mut self, percent: u64) -> bool {
        percent > 0 && self.next() % 100 < percent
    }
    fn visibility(&mut self) -> u64 {
        let (lo, hi) = self.visibility_ms;
        lo + self.next() % (hi.saturating_sub(lo) + 1)
    }
}

/// What the layer did, for assertions and reports.
#[derive(Clone, Debug, Default)]
pub struct Ec2Record {
    /// Instances made, with their client token: (token, id).
    pub made: Vec<(String, String)>,
    /// Instance → its `nectr:node` tag.
    pub node_of: BTreeMap<String, String>,
    /// Launches that made the owned live instances exceed `cap` (counted when made, with
    /// the instances not visible yet).
    pub cap_overruns: Vec<String>,
    /// `RunInstances` repeated with a known token (answered from the first call).
    pub idempotent_repeats: u64,
    pub lost_answers: u64,
    pub errors: u64,
    pub slow: u64,
    /// Instances terminated by the service.
    pub terminated: Vec<String>,
}

pub struct FaultyCloud<C: CloudProvider> {
    pub inner: C,
    /// Offerings that answer InsufficientInstanceCapacity.
    pub no_capacity: Mutex<BTreeSet<Offering>>,
    /// The next N describes answer RequestLimitExceeded.
    pub throttle_describes: Mutex<u32>,
    /// The next N `RunInstances` launch, then lose their answer.
    pub lose_next_launches: Mutex<u32>,
    /// The next `RunInstances` launches, loses its answer, and the caller dies ([`Self::dead`]).
    pub die_after_next_launch: Mutex<bool>,
    /// Every launch attempt: (offering, client token, ok).
    pub attempts: Mutex<Vec<(Offering, String, bool)>>,
    pub faults: Mutex<Ec2Faults>,
    /// Client token → instance id (EC2's idempotency).
    tokens: Mutex<BTreeMap<String, String>>,
    /// Instance id → the time (ms) it shows in describes.
    visible_from: Mutex<BTreeMap<String, u64>>,
    pub record: Mutex<Ec2Record>,
    /// When set, every call fails without effect (the calling process is dead). Share it
    /// with the fake Jenkins ([`Self::share_dead`]) so a kill stops both sides.
    pub dead: Mutex<Arc<AtomicBool>>,
    /// Checked at every instance made: live owned instances (of `cap.0`, the fleet id) must
    /// stay at or below `cap.1`.
    pub cap: Mutex<Option<(String, usize)>>,
    /// Called before a termination is applied, with the instance ids.
    pub before_terminate: Mutex<Option<TerminateHook>>,
}

pub type TerminateHook = Box<dyn FnMut(&[String]) + Send>;

impl<C: CloudProvider> FaultyCloud<C> {
    /// No faults, no visibility lag: idempotency only.
    pub fn new(inner: C) -> Self {
        FaultyCloud {
            inner,
            no_capacity: Mutex::new(BTreeSet::new()),
            throttle_describes: Mutex::new(0),
            lose_next_launches: Mutex::new(0),
            die_after_next_launch: Mutex::new(false),
            attempts: Mutex::new(Vec::new()),
            faults: Mutex::new(Ec2Faults {
                visibility_ms: (0, 0),
                ..Ec2Faults::default()
            }),
            tokens: Mutex::new(BTreeMap::new()),
            visible_from: Mutex::new(BTreeMap::new()),
            record: Mutex::new(Ec2Record::default()),
            dead: Mutex::new(Arc::new(AtomicBool::new(false))),
            cap: Mutex::new(None),
            before_terminate: Mutex::new(None),
        }
    }

    pub fn with_faults(inner: C, faults: Ec2Faults) -> Self {
        let c = Self::new(inner);
        *lock(&c.faults) = faults;
        c
    }

    pub fn record(&self) -> Ec2Record {
        lock(&self.record).clone()
    }

    pub fn share_dead(&self, flag: Arc<AtomicBool>) {
        *lock(&self.dead) = flag;
    }

    pub fn set_dead(&self, dead: bool) {
        lock(&self.dead).store(dead, Ordering::SeqCst);
    }

    fn is_dead(&self) -> bool {
        lock(&self.dead).load(Ordering::SeqCst)
    }

    fn dead_error(&self, action: &str) -> Option<CloudError> {
        self.is_dead().then(|| CloudError {
            kind: CloudErrorKind::Transport,
            code: "Transport".into(),
            message: format!("{action}: the process is dead (injected)"),
        })
    }

    /// Draw this call's fault: (500 before acting, lose the answer after acting).
    fn draw(&self) -> (bool, bool) {
        let (error, lose, slow) = {
            let mut f = lock(&self.faults);
            let (ep, lp, sp, sms) = (f.error_percent, f.lose_percent, f.slow_percent, f.slow_ms);
            let error = f.roll(ep);
            let lose = !error && f.roll(lp);
            (error, lose, f.roll(sp).then_some(sms))
        };
        let mut r = lock(&self.record);
        if let Some(ms) = slow {
            r.slow += 1;
            drop(r);
            std::thread::sleep(Duration::from_millis(ms));
            r = lock(&self.record);
        }
        r.errors += error as u64;
        r.lost_answers += lose as u64;
        (error, lose)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn internal_error(action: &str) -> CloudError {
    CloudError {
        kind: CloudErrorKind::Other,
        code: "InternalError".into(),
        message: format!("{action}: An internal error has occurred (injected 500)"),
    }
}

fn lost(action: &str) -> CloudError {
    CloudError {
        kind: CloudErrorKind::Transport,
        code: "Transport".into(),
        message: format!("{action}: connection reset by peer (injected: the answer was lost)"),
    }
}

impl<C: CloudProvider> CloudProvider for FaultyCloud<C> {
    fn describe_owned(&self, fleet_id: &str) -> Result<Vec<Instance>, CloudError> {
        if let Some(e) = self.dead_error("DescribeInstances") {
            return Err(e);
        }
        {
            let mut n = lock(&self.throttle_describes);
            if *n > 0 {
                *n -= 1;
                return Err(CloudError {
                    kind: CloudErrorKind::Throttled,
                    code: "RequestLimitExceeded".into(),
                    message: "Request limit exceeded.".into(),
                });
            }
        }
        let (error, _) = self.draw();
        if error {
            return Err(internal_error("DescribeInstances"));
        }
        let now = now_ms();
        let visible = lock(&self.visible_from).clone();
        Ok(self
            .inner
            .describe_owned(fleet_id)?
            .into_iter()
            .filter(|i| visible.get(&i.id).is_none_or(|t| *t <= now))
            .collect())
    }

    fn launch(&self, spec: &LaunchSpec) -> Result<String, CloudError> {
        if let Some(e) = self.dead_error("RunInstances") {
            return Err(e);
        }
        let (error, lose) = self.draw();
        let die = std::mem::take(&mut *lock(&self.die_after_next_launch));
        let lose = lose || die || {
            let mut n = lock(&self.lose_next_launches);
            let forced = *n > 0;
            *n = n.saturating_sub(1);
            forced
        };
        if error {
            lock(&self.attempts).push((spec.offering.clone(), spec.client_token.clone(), false));
            return Err(internal_error("RunInstances"));
        }
        let known = lock(&self.tokens).get(&spec.client_token).cloned();
        let r = match known {
            Some(id) => {
                lock(&self.record).idempotent_repeats += 1;
                Ok(id)
            }
            None if lock(&self.no_capacity).contains(&spec.offering) => Err(CloudError {
                kind: CloudErrorKind::Capacity,
                code: "InsufficientInstanceCapacity".into(),
                message: format!(
                    "We currently do not have sufficient {} capacity",
                    spec.offering.instance_type
                ),
            }),
            None => self.inner.launch(spec).inspect(|id| {
                let delay = lock(&self.faults).visibility();
                lock(&self.tokens).insert(spec.client_token.clone(), id.clone());
                lock(&self.visible_from).insert(id.clone(), now_ms() + delay);
                let cap = lock(&self.cap).clone();
                let over = cap.and_then(|(fleet, max)| {
                    let live = self
                        .inner
                        .describe_owned(&fleet)
                        .ok()?
                        .iter()
                        .filter(|i| i.is_live())
                        .count();
                    (live > max).then(|| format!("{id}: {live} live > cap {max}"))
                });
                let mut r = lock(&self.record);
                r.made.push((spec.client_token.clone(), id.clone()));
                if let Some(node) = spec.tags.get(nectr_fleet::cloud::TAG_NODE) {
                    r.node_of.insert(id.clone(), node.clone());
                }
                r.cap_overruns.extend(over);
            }),
        };
        lock(&self.attempts).push((
            spec.offering.clone(),
            spec.client_token.clone(),
            r.is_ok() && !lose,
        ));
        if die {
            self.set_dead(true);
        }
        match r {
            Ok(_) if lose => Err(lost("RunInstances")),
            r => r,
        }
    }

    fn terminate(&self, ids: &[String]) -> Result<(), CloudError> {
        if let Some(e) = self.dead_error("TerminateInstances") {
            return Err(e);
        }
        let (error, lose) = self.draw();
        if error {
            return Err(internal_error("TerminateInstances"));
        }
        if let Some(hook) = lock(&self.before_terminate).as_mut() {
            hook(ids);
        }
        self.inner.terminate(ids)?;
        lock(&self.record).terminated.extend(ids.iter().cloned());
        if lose {
            return Err(lost("TerminateInstances"));
        }
        Ok(())
    }

    fn newest_image(&self, k: &str, v: &str) -> Result<String, CloudError> {
        self.inner.newest_image(k, v)
    }

    fn image_parameter(&self, name: &str) -> Result<String, CloudError> {
        self.inner.image_parameter(name)
    }

    // The stored secrets: a dead process sends nothing; otherwise SSM as moto answers it.
    fn put_agent_secret(
        &self,
        fleet_id: &str,
        node: &str,
        secret: &Secret,
    ) -> Result<(), CloudError> {
        if let Some(e) = self.dead_error("PutParameter") {
            return Err(e);
        }
        self.inner.put_agent_secret(fleet_id, node, secret)
    }

    fn tag_agent_secret(&self, node: &str, instance_id: &str) -> Result<(), CloudError> {
        if let Some(e) = self.dead_error("AddTagsToResource") {
            return Err(e);
        }
        self.inner.tag_agent_secret(node, instance_id)
    }

    fn delete_agent_secret(&self, node: &str) -> Result<(), CloudError> {
        if let Some(e) = self.dead_error("DeleteParameter") {
            return Err(e);
        }
        self.inner.delete_agent_secret(node)
    }

    fn list_agent_secrets(&self, fleet_id: &str) -> Result<Vec<StoredSecret>, CloudError> {
        if let Some(e) = self.dead_error("DescribeParameters") {
            return Err(e);
        }
        self.inner.list_agent_secrets(fleet_id)
    }
}
