//! The offline optimum: knows every arrival and duration in advance. Each build starts the
//! moment it arrives (zero wait) on a machine started exactly one boot time (the shortest
//! the world allows) before; machines stop the moment they are no longer needed. With
//! `E` executors per instance it needs `ceil(busy(t) / E)` instances at time `t`; each level
//! of that step function is one machine's life, and a gap in a level is bridged (kept
//! running) when the gap is shorter than a boot — the cheaper of the two. Billing is per
//! second with the 60 s minimum per start.
//!
//! This is a lower bound for every policy whose builds do not wait; a policy can only get
//! under it by making builds wait (for example, running queued builds one after another on
//! one machine instead of starting more), which the report shows as queue wait.

use super::engine::Params;
use super::workload::Workload;
use crate::config::{Config, Purchase};
use crate::pricing;
use serde::Serialize;

#[derive(Clone, Debug, Default, Serialize)]
pub struct Optimum {
    pub cost: f64,
    pub billed_ms: u64,
    pub launches: u64,
    pub used_instance_ms: f64,
}

/// Lives of the machines of one pool: `(start_of_first_use, end_of_last_use)` per run.
fn runs(mut events: Vec<(u64, i64)>, execs: u64, boot: u64) -> Vec<(u64, u64)> {
    // Ends before starts at the same instant: a finishing build frees its executor.
    events.sort_by_key(|&(t, d)| (t, d));
    let mut busy: u64 = 0;
    let mut open: Vec<u64> = Vec::new();
    let mut layers: Vec<Vec<(u64, u64)>> = Vec::new();
    for (t, d) in events {
        let before = busy.div_ceil(execs) as usize;
        busy = (busy as i64 + d) as u64;
        let after = busy.div_ceil(execs) as usize;
        if after > before {
            for _ in before..after {
                open.push(t);
            }
        } else {
            for k in (after..before).rev() {
                let s = open.pop().unwrap_or(t);
                if layers.len() <= k {
                    layers.resize(k + 1, Vec::new());
                }
                layers[k].push((s, t));
            }
        }
    }
    let mut out = Vec::new();
    for layer in layers {
        let mut it = layer.into_iter();
        let Some((mut s, mut e)) = it.next() else {
            continue;
        };
        for (ns, ne) in it {
            if ns.saturating_sub(e) <= boot {
                e = ne;
            } else {
                out.push((s, e));
                s = ns;
                e = ne;
            }
        }
        out.push((s, e));
    }
    out
}

pub fn compute(cfg: &Config, params: &Params, w: &Workload) -> Optimum {
    let boot = params.boot_min_ms;
    let mut o = Optimum::default();
    for pool in &cfg.pools {
        let Some(t) = pool.instance_types.first() else {
            continue;
        };
        let spot = pool.purchase == Purchase::Spot;
        let price = pool.hourly_price(&t.name, spot).unwrap_or(0.0);
        let execs = t.executors.max(1) as u64;
        let mut events = Vec::new();
        for b in &w.builds {
            // The first pool carrying the label serves it, as in the world.
            if cfg
                .pools
                .iter()
                .find(|p| p.labels.contains(&b.label))
                .map(|p| &p.name)
                != Some(&pool.name)
            {
                continue;
            }
            events.push((b.arrival_ms, 1));
            events.push((b.arrival_ms + b.duration_ms, -1));
            o.used_instance_ms += b.duration_ms as f64 / execs as f64;
        }
        for (s, e) in runs(events, execs, boot) {
            let ms = pricing::billed_ms(e - s + boot);
            o.billed_ms += ms;
            o.cost += pricing::dollars(ms, price);
            o.launches += 1;
        }
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_bridge_short_gaps_and_split_long_ones() {
        // One executor: [0,10) and [20,30) with boot 15: bridged. [100,110): a new run.
        let ev = vec![(0, 1), (10, -1), (20, 1), (30, -1), (100, 1), (110, -1)];
        assert_eq!(runs(ev, 1, 15), vec![(0, 30), (100, 110)]);
        // Two executors: two overlapping builds need one machine.
        let ev = vec![(0, 1), (50, -1), (10, 1), (40, -1)];
        assert_eq!(runs(ev, 2, 5), vec![(0, 50)]);
        // Three overlapping on two executors: a second machine for the overlap of all three.
        let ev = vec![(0, 1), (100, -1), (10, 1), (90, -1), (20, 1), (30, -1)];
        assert_eq!(runs(ev, 2, 5), vec![(0, 100), (20, 30)]);
    }
}
