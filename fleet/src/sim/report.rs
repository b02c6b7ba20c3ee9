//! Running the policies on one workload and summing up what each cost.

use super::engine::{Params, Policy, Sample, World};
use super::optimum::{self, Optimum};
use super::policy::{Classic, Nectr};
use super::workload::Workload;
use crate::config::Config;
use serde::Serialize;

#[derive(Clone, Debug, Serialize)]
pub struct PolicyReport {
    pub policy: String,
    pub cost: f64,
    pub billed_hours: f64,
    /// Billed instance time not spent running builds, as a share of billed time.
    pub idle_share: f64,
    pub wait_p50_s: f64,
    pub wait_p95_s: f64,
    pub wait_max_s: f64,
    pub launches: u64,
    /// Launches divided by the optimum's.
    pub over_provision: f64,
    pub busy_terminations: u64,
    pub builds_finished: u64,
    /// Builds that never finished (the conservation check: finished + lost = builds).
    pub builds_lost: u64,
    pub interrupted_builds: u64,
    pub spot_interruptions: u64,
    pub capacity_errors: u64,
    pub max_instances: usize,
    /// Retires decide planned that the final re-read refused (nectr only).
    pub retires_aborted: u64,
    #[serde(skip)]
    pub samples: Vec<Sample>,
    /// Sorted queue waits, seconds (for the CDF plot).
    #[serde(skip)]
    pub waits_s: Vec<f64>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Comparison {
    pub workload: String,
    pub builds: usize,
    pub seed: u64,
    pub params: Params,
    pub optimum: Optimum,
    pub policies: Vec<PolicyReport>,
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let k = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[k - 1]
}

pub fn run_policy(
    cfg: &Config,
    params: &Params,
    w: &Workload,
    policy: &mut dyn Policy,
    opt: &Optimum,
) -> PolicyReport {
    let mut world = World::new(cfg.clone(), params.clone(), w);
    world.run(policy);
    let mut waits: Vec<f64> = world
        .records
        .iter()
        .filter(|r| r.finished_ms.is_some())
        .filter_map(|r| r.wait_ms)
        .map(|ms| ms as f64 / 1000.0)
        .collect();
    waits.sort_by(f64::total_cmp);
    let finished = world
        .records
        .iter()
        .filter(|r| r.finished_ms.is_some())
        .count() as u64;
    let c = &world.counters;
    let billed = c.billed_ms as f64;
    PolicyReport {
        policy: policy.name(),
        cost: c.cost,
        billed_hours: billed / 3_600_000.0,
        idle_share: if billed > 0.0 {
            (1.0 - c.used_instance_ms / billed).max(0.0)
        } else {
            0.0
        },
        wait_p50_s: pct(&waits, 0.50),
        wait_p95_s: pct(&waits, 0.95),
        wait_max_s: waits.last().copied().unwrap_or(0.0),
        launches: c.launches,
        over_provision: if opt.launches > 0 {
            c.launches as f64 / opt.launches as f64
        } else {
            0.0
        },
        busy_terminations: c.busy_terminations,
        builds_finished: finished,
        builds_lost: w.builds.len() as u64 - finished,
        interrupted_builds: c.interrupted_builds,
        spot_interruptions: c.spot_interruptions,
        capacity_errors: c.capacity_errors,
        max_instances: c.max_instances,
        retires_aborted: 0,
        samples: std::mem::take(&mut world.samples),
        waits_s: waits,
    }
}

/// nectr (the config given), the three alternatives and the optimum on the same workload
/// and seed.
pub fn compare(cfg: &Config, params: &Params, w: &Workload) -> Comparison {
    let opt = optimum::compute(cfg, params, w);
    let mut nectr = Nectr::new(cfg.clone());
    let mut reports = vec![run_policy(cfg, params, w, &mut nectr, &opt)];
    reports[0].retires_aborted = nectr.retires_aborted;
    for mut p in [
        Classic::jenkins_core_like(cfg.clone()),
        Classic::ec2_plugin_like(cfg.clone()),
        Classic::ec2_fleet_like(cfg.clone()),
    ] {
        reports.push(run_policy(cfg, params, w, &mut p, &opt));
    }
    Comparison {
        workload: w.name.clone(),
        builds: w.builds.len(),
        seed: params.seed,
        params: params.clone(),
        optimum: opt,
        policies: reports,
    }
}

impl Comparison {
    pub fn policy(&self, name: &str) -> Option<&PolicyReport> {
        self.policies.iter().find(|p| p.policy == name)
    }

    /// The table printed on the terminal.
    pub fn table(&self) -> String {
        let mut s = format!(
            "workload {} ({} builds, seed {})\n{:<18} {:>10} {:>8} {:>6} {:>8} {:>8} {:>8} {:>8} {:>6} {:>5} {:>5}\n",
            self.workload, self.builds, self.seed,
            "policy", "cost $", "vs opt", "idle%", "p50 s", "p95 s", "max s", "launches", "overp", "busyT", "lost"
        );
        let o = &self.optimum;
        for p in &self.policies {
            s += &format!(
                "{:<18} {:>10.2} {:>7.2}x {:>6.1} {:>8.0} {:>8.0} {:>8.0} {:>8} {:>6.2} {:>5} {:>5}\n",
                p.policy,
                p.cost,
                if o.cost > 0.0 { p.cost / o.cost } else { 0.0 },
                p.idle_share * 100.0,
                p.wait_p50_s,
                p.wait_p95_s,
                p.wait_max_s,
                p.launches,
                p.over_provision,
                p.busy_terminations,
                p.builds_lost
            );
        }
        let idle = if o.billed_ms > 0 {
            (1.0 - o.used_instance_ms / o.billed_ms as f64) * 100.0
        } else {
            0.0
        };
        s += &format!(
            "{:<18} {:>10.2} {:>7.2}x {:>6.1} {:>8} {:>8} {:>8} {:>8} {:>6.2} {:>5} {:>5}\n",
            "optimum", o.cost, 1.0, idle, 0, 0, 0, o.launches, 1.0, 0, 0
        );
        s
    }

    /// The stable, greppable last line.
    pub fn last_line(&self) -> String {
        let n = self.policy("nectr");
        let nectr_cost = n.map_or(0.0, |p| p.cost);
        let opt = self.optimum.cost;
        format!(
            "simulate: workload={} builds={} nectr_cost={:.2} optimum_cost={:.2} ratio={:.3} p95_wait_s={:.0} ec2_plugin_like_cost={:.2} busy_terminations={}",
            self.workload,
            self.builds,
            nectr_cost,
            opt,
            if opt > 0.0 { nectr_cost / opt } else { 0.0 },
            n.map_or(0.0, |p| p.wait_p95_s),
            self.policy("ec2_plugin_like").map_or(0.0, |p| p.cost),
            n.map_or(0, |p| p.busy_terminations),
        )
    }
}
