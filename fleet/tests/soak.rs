//! The randomized, seeded soak of the fleet's promises (issue 9): no busy kill, no delete
//! sooner than the settle interval after the fence took effect, no cap overrun (counting
//! instances not visible yet), no duplicate launch and no launch beyond the observed demand,
//! no orphan after a quiet period, nothing foreign touched.
//!
//! `soak_in_virtual_time` runs the real reconcile loop (observe, `decide`, act) against the
//! in-process Jenkins and EC2 of `support/world.rs`, in virtual time, with faults on every
//! call, `kill -9` before and after every launch and fence step and at random, restarts,
//! queue bursts with label expressions, the dispatch race, and live edits of caps and idle
//! timeouts. Every action is checked as it happens; each seed ends with a quiet period and
//! the end-state checks.
//!
//! Size: `NECTR_SOAK_SCALE_INS` fenced scale-ins (default 2,000, a CI-sized run), or
//! `NECTR_SOAK_SECONDS` of wall time, whichever comes first; seeds start at
//! `NECTR_SOAK_BASE_SEED` (default 1). A failing seed prints how to replay it:
//! `NECTR_SOAK_SEED=<seed>` runs that seed alone. `scripts/soak-fleet` runs a long soak.
//!
//! `soak_end_to_end` is the smaller variant against moto (behind the EC2 fault layer) and the
//! fake Jenkins (with its faults) over HTTP on 127.0.0.1, in real time.

mod support;

use nectr_fleet::config::{load_file, Config};
use nectr_fleet::reconcile::Reconciler;
use nectr_fleet::server::Shared;
use nectr_fleet::util::Clock;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::world::{Faults, KillAt, Kind, Rng, SimEc2, SimJenkins, Stats, VirtualClock, World};

fn env_u64(name: &str) -> Option<u64> {
    let v = std::env::var(name).ok()?;
    match v.trim().parse() {
        Ok(n) => Some(n),
        Err(_) => panic!("{name}={v:?} is not a whole number"),
    }
}

/// The knobs a live edit changes.
#[derive(Clone, Debug)]
struct Knobs {
    global_max: u32,
    dollars: f64,
    linux: (u32, u32, &'static str),
    arm: (u32, &'static str),
    gpu: (u32, &'static str),
}

impl Knobs {
    fn base() -> Knobs {
        Knobs {
            global_max: 14,
            dollars: 6.0,
            linux: (0, 8, "2s"),
            arm: (4, "3s"),
            gpu: (3, "1s"),
        }
    }

    fn random(rng: &mut Rng) -> Knobs {
        const IDLE: [&str; 5] = ["0s", "1s", "3s", "8s", "20s"];
        let mut pick = |n: usize| IDLE[rng.below(n as u64) as usize];
        let (a, b, c) = (pick(5), pick(5), pick(5));
        let linux_max = rng.range(0, 10) as u32;
        Knobs {
            global_max: rng.range(3, 18) as u32,
            dollars: [2.0, 4.0, 6.0, 12.0][rng.below(4) as usize],
            linux: (rng.range(0, 1).min(linux_max as u64) as u32, linux_max, a),
            arm: (rng.range(0, 5) as u32, b),
            gpu: (rng.range(0, 3) as u32, c),
        }
    }

    fn text(&self) -> String {
        let (lmin, lmax, lidle) = self.linux;
        let (amax, aidle) = self.arm;
        let (gmax, gidle) = self.gpu;
        format!(
            r#"fleet_id = "soak"
poll_interval = "1s"
settle_interval = "2s"
orphan_grace = "5s"
max_instances = {gm}
max_dollars_per_hour = {d:.1}

[jenkins]
url = "https://jenkins.soak.example/"
user = "fleet"
token_file = "token"
timeout = "2s"

[aws]
region = "us-east-1"
timeout = "3s"

[[pool]]
name = "linux"
labels = ["linux", "x64"]
instance_types = [{{ type = "c5.xlarge", executors = 2, price = 0.17 }}]
ami = "ami-soak"
min_instances = {lmin}
max_instances = {lmax}
idle_timeout = "{lidle}"
boot_deadline = "40s"

[[pool]]
name = "arm"
labels = ["linux", "arm64"]
instance_types = [{{ type = "c7g.xlarge", executors = 4, price = 0.145 }}]
ami = "ami-soak"
max_instances = {amax}
idle_timeout = "{aidle}"
boot_deadline = "40s"

[[pool]]
name = "gpu"
labels = ["gpu"]
instance_types = [{{ type = "g5.xlarge", executors = 1, price = 1.0 }}]
ami = "ami-soak"
max_instances = {gmax}
spare_executors = 1
idle_timeout = "{gidle}"
boot_deadline = "40s"
"#,
            gm = self.global_max,
            d = self.dollars,
        )
    }
}

fn write_config(path: &Path, knobs: &Knobs) -> Config {
    std::fs::write(path, knobs.text()).expect("write the soak config");
    load_file(path).unwrap_or_else(|e| panic!("soak config invalid: {e}"))
}

struct Seed {
    world: Arc<Mutex<World>>,
    clock: Arc<VirtualClock>,
    path: PathBuf,
    rec: Reconciler,
    session: u64,
}

impl Seed {
    fn world(&self) -> std::sync::MutexGuard<'_, World> {
        self.world.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A fresh service process for the live session: nothing but the config file carried
    /// over, as after `kill -9`.
    fn start_service(&mut self) {
        let session = self.world().session;
        let cfg = load_file(&self.path).unwrap_or_else(|e| panic!("{e}"));
        self.rec = service(&self.world, &self.clock, &self.path, cfg, session);
        self.session = session;
    }
}

fn service(
    world: &Arc<Mutex<World>>,
    clock: &Arc<VirtualClock>,
    path: &Path,
    cfg: Config,
    session: u64,
) -> Reconciler {
    Reconciler::with_parts(
        cfg,
        Some(path.to_path_buf()),
        Arc::new(SimJenkins {
            world: world.clone(),
            session,
        }),
        Arc::new(SimEc2 {
            world: world.clone(),
            session,
        }),
        clock.clone(),
        Arc::new(Shared::default()),
    )
    .with_launch_parallelism(1)
}

/// Polls of the randomized phase of one seed, and the most of the quiet phase.
const POLLS: u64 = 3_000;
const QUIET_MAX_POLLS: u64 = 1_500;
const QUIET_TAIL_POLLS: u64 = 150;

/// Run one seed to its end; `Err` carries the report of the first violation.
fn run_seed(seed: u64, dir: &Path) -> Result<Stats, String> {
    let path = dir.join(format!("soak-{seed}.toml"));
    std::fs::write(dir.join("token"), "soak-token\n").expect("write token");
    let mut rng = Rng::new(seed.wrapping_mul(0x2545_F491_4F6C_DD1D) ^ 0x50AC);
    let cfg = write_config(&path, &Knobs::base());
    let clock = VirtualClock::new(1_800_000_000_000, seed);
    let world = Arc::new(Mutex::new(World::new(cfg.clone(), seed, clock.clone())));
    let rec = service(&world, &clock, &path, cfg, 1);
    let mut s = Seed {
        world,
        clock,
        path,
        rec,
        session: 1,
    };
    let mut target = 0usize;
    let mut armed_at = 0u64;
    // Load comes in waves: busy stretches of bursts, then quiet ones the fleet scales in
    // during (every wave ends in fenced scale-ins).
    let mut wave_busy = true;
    let mut wave_left = rng.range(10, 60);
    let fail = |s: &Seed, poll: u64, phase: &str| -> Result<Stats, String> {
        let w = s.world();
        if w.violations.is_empty() {
            return Ok(w.stats.clone());
        }
        Err(format!(
            "soak seed {seed} failed in the {phase} at poll {poll} (virtual time {} ms):\n  {}\nlast events:\n{}\nreplay: NECTR_SOAK_SEED={seed} cargo test -p nectr-fleet --test soak -- --nocapture soak_in_virtual_time",
            w.now(),
            w.violations.join("\n  "),
            w.recent_log()
        ))
    };
    for poll in 0..POLLS {
        {
            let mut w = s.world();
            wave_left = wave_left.saturating_sub(1);
            if wave_left == 0 {
                wave_busy = !wave_busy;
                wave_left = if wave_busy {
                    rng.range(10, 60)
                } else {
                    rng.range(20, 60)
                };
            }
            if rng.chance(if wave_busy { 400 } else { 15 }) {
                w.arrive(rng.range(1, 10));
            }
            if rng.chance(15) {
                let cfg = write_config(&s.path, &Knobs::random(&mut rng));
                w.cfg = cfg;
                w.stats.edits += 1;
            }
            // A kill -9 before or after every launch and fence step, in turn.
            if w.kill_at.is_none() || poll.saturating_sub(armed_at) > 300 {
                let kind = Kind::STEPS[target % Kind::STEPS.len()];
                let after = (target / Kind::STEPS.len()) % 2 == 1;
                w.kill_at = Some(KillAt { kind, after });
                target += 1;
                armed_at = poll;
            }
            if rng.chance(4) {
                w.kill("between polls");
            }
        }
        restart_if_killed(&mut s, &mut rng);
        one_poll(&mut s);
        fail(&s, poll, "randomized phase")?;
    }
    // Quiet period: no faults, no kills, no new work, the base config.
    {
        let mut w = s.world();
        w.faults = Faults::default();
        w.kill_at = None;
        w.cfg = write_config(&s.path, &Knobs::base());
    }
    restart_if_killed(&mut s, &mut rng);
    let mut tail = None;
    for poll in 0..QUIET_MAX_POLLS {
        one_poll(&mut s);
        fail(&s, poll, "quiet period")?;
        if tail.is_none() && s.world().settled_work() {
            tail = Some(poll + QUIET_TAIL_POLLS);
        }
        if tail.is_some_and(|t| poll >= t) {
            break;
        }
    }
    s.world().final_checks();
    fail(&s, QUIET_MAX_POLLS, "end-state checks")
}

fn restart_if_killed(s: &mut Seed, rng: &mut Rng) {
    let live = s.world().session;
    if live != s.session {
        s.clock.advance(rng.range(200, 3_000));
        s.world().stats.restarts += 1;
        s.start_service();
    }
}

fn one_poll(s: &mut Seed) {
    let start = s.clock.now_ms();
    s.world().begin_poll();
    let report = s.rec.poll_once(true);
    let mut w = s.world();
    for a in &report.actions {
        w.note(format!("service: {a}"));
    }
    for e in &report.errors {
        w.note(format!("service error: {e}"));
    }
    w.end_poll();
    drop(w);
    s.clock.set_at_least(start + 1_000);
}

fn add(total: &mut Stats, s: &Stats) {
    total.polls += s.polls;
    total.items += s.items;
    total.builds_done += s.builds_done;
    total.launches += s.launches;
    total.idempotent_repeats += s.idempotent_repeats;
    total.fenced_scale_ins += s.fenced_scale_ins;
    total.fences_applied += s.fences_applied;
    total.lifts += s.lifts;
    total.races += s.races;
    total.orphan_nodes_deleted += s.orphan_nodes_deleted;
    total.terminations += s.terminations;
    total.restarts += s.restarts;
    for (k, v) in &s.kills {
        *total.kills.entry(k.clone()).or_insert(0) += v;
    }
    for (k, v) in &s.faults {
        *total.faults.entry(k).or_insert(0) += v;
    }
    total.deferred_applied += s.deferred_applied;
    total.edits += s.edits;
    total.max_live = total.max_live.max(s.max_live);
    total.busy_kills += s.busy_kills;
    total.cap_overruns += s.cap_overruns;
    total.duplicate_launches += s.duplicate_launches;
    total.over_launches += s.over_launches;
    total.early_deletes += s.early_deletes;
    total.foreign_touched += s.foreign_touched;
}

#[test]
fn soak_in_virtual_time() {
    nectr_fleet::log::set_level(nectr_fleet::log::Level::Error);
    let dir = support::temp_dir("soak");
    let started = Instant::now();
    let (seeds, target, budget): (Vec<u64>, u64, Duration) = match env_u64("NECTR_SOAK_SEED") {
        Some(seed) => (vec![seed], 0, Duration::MAX),
        None => {
            let base = env_u64("NECTR_SOAK_BASE_SEED").unwrap_or(1);
            let target = env_u64("NECTR_SOAK_SCALE_INS").unwrap_or(2_000);
            let secs = env_u64("NECTR_SOAK_SECONDS").unwrap_or(u64::MAX / 4);
            (
                (base..base + 1_000_000).collect(),
                target,
                Duration::from_secs(secs),
            )
        }
    };
    let mut total = Stats::default();
    let mut ran = 0u64;
    for seed in seeds {
        match run_seed(seed, &dir) {
            Ok(s) => add(&mut total, &s),
            Err(report) => panic!("{report}"),
        }
        ran += 1;
        if total.fenced_scale_ins >= target || started.elapsed() >= budget {
            break;
        }
    }
    eprintln!(
        "soak: {ran} seed(s) in {:.1} s: {} fenced scale-ins, {} restarts ({} kill -9 in all), {} launches, {} lifts, {} races injected, {} polls, {} items, {} live edits; busy kills {}, early deletes {}, cap overruns {}, duplicate launches {}, launches beyond demand {}, foreign touched {}",
        started.elapsed().as_secs_f64(),
        total.fenced_scale_ins,
        total.restarts,
        total.kills.values().sum::<u64>(),
        total.launches,
        total.lifts,
        total.races,
        total.polls,
        total.items,
        total.edits,
        total.busy_kills,
        total.early_deletes,
        total.cap_overruns,
        total.duplicate_launches,
        total.over_launches,
        total.foreign_touched,
    );
    eprintln!("soak: kills {:?}", total.kills);
    eprintln!(
        "soak: faults {:?}, idempotent RunInstances repeats {}, late-applied Jenkins writes {}",
        total.faults, total.idempotent_repeats, total.deferred_applied
    );
    // The run covered what it claims to.
    assert!(
        total.fenced_scale_ins >= target.min(1),
        "no fenced scale-in: {total:?}"
    );
    assert!(
        total.restarts > 0 && total.races > 0 && total.lifts > 0,
        "{total:?}"
    );
    for kind in Kind::STEPS {
        for when in ["before", "after"] {
            let key = format!("{when} {kind:?}");
            assert!(
                ran > 1 || total.kills.contains_key(&key) || target == 0,
                "no kill {key}: {:?}",
                total.kills
            );
        }
    }
}
