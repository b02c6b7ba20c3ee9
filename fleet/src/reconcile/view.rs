//! What the status page shows beyond the plan: each owned instance as last observed, and
//! the last decisions with their reasons. Pure: built from one observation.

use crate::cloud::Instance;
use crate::config::Config;
use crate::jenkins::Computer;
use crate::scaler::{Memory, Plan};
use serde_json::{json, Value};
use std::collections::{BTreeMap, VecDeque};

/// Decisions kept for the page.
pub const DECISIONS_KEPT: usize = 30;

/// One row per live owned instance: type, age, state, current build(s), idle time, cost so
/// far at the pool's configured price for that type (null without a price).
pub fn instance_rows(
    instances: &[Instance],
    computers: &[Computer],
    builds: &BTreeMap<String, Vec<String>>,
    memory: &Memory,
    cfg: &Config,
    now: u64,
) -> Vec<Value> {
    let mut rows = Vec::new();
    for i in instances.iter().filter(|i| i.is_live()) {
        let pool = i.pool().unwrap_or("");
        let node = i.node();
        let c = node.and_then(|n| computers.iter().find(|c| c.name == n));
        let fenced = node.is_some_and(|n| memory.fences.contains_key(n));
        let notice = i.spot_notice(cfg.pool(pool).is_some_and(|p| p.rebalance));
        let node_state = match c {
            None => "no node",
            Some(_) if notice.is_some() && fenced => "fenced after a spot notice",
            Some(_) if fenced => "fenced",
            Some(c) if !c.connected => "connecting",
            Some(c) if c.is_certainly_idle() => "idle",
            Some(_) => "busy",
        };
        let age = i
            .launch_time_ms
            .map(|t| now.saturating_sub(t) as f64 / 1000.0);
        let idle = match (c, node) {
            (Some(c), Some(n)) if c.connected && c.is_certainly_idle() => memory
                .idle_since
                .get(n)
                .map(|t| now.saturating_sub(*t) as f64 / 1000.0),
            _ => None,
        };
        let price = cfg
            .pool(pool)
            .and_then(|p| p.instance_type(&i.instance_type))
            .and_then(|t| t.price);
        let cost = match (price, age) {
            (Some(p), Some(a)) => Some(p * a / 3600.0),
            _ => None,
        };
        rows.push(json!({
            "id": i.id,
            "pool": pool,
            "node": node,
            "type": i.instance_type,
            "spot": i.spot,
            "state": format!("{} / {node_state}", format!("{:?}", i.state).to_lowercase()),
            "age_seconds": age,
            "builds": node.and_then(|n| builds.get(n)).cloned().unwrap_or_default(),
            "idle_seconds": idle,
            "price_per_hour": price,
            "cost_dollars": cost,
            "spot_notice": notice.map(|k| json!({
                "kind": k,
                "time": i.tag(if k == "interruption" { crate::cloud::TAG_INTERRUPTION } else { crate::cloud::TAG_REBALANCE }),
            })),
        }));
    }
    rows
}

/// Append the decisions of one plan (launches per pool with demand and supply, fences,
/// retires, lifts, orphan clean-ups, each with its reason), keeping the last
/// [`DECISIONS_KEPT`].
pub fn record_decisions(out: &mut VecDeque<Value>, plan: &Plan, time: &str, acted: bool) {
    let mut push = |pool: &str, action: String, reason: String| {
        out.push_back(json!({
            "time": time,
            "pool": pool,
            "action": if acted { action } else { format!("{action} (not acted on: not leader or recovering)") },
            "reason": reason,
        }));
    };
    for (pool, v) in &plan.pools {
        if v.launches > 0 {
            push(
                pool,
                format!("launch {} instance(s)", v.launches),
                format!(
                    "demand {} executor(s); supply idle {}, connecting {}, in flight {}{}",
                    v.demand_executors,
                    v.idle_executors,
                    v.connecting_executors,
                    v.in_flight_executors,
                    v.capped_by
                        .as_ref()
                        .map(|c| format!("; capped by {c}"))
                        .unwrap_or_default()
                ),
            );
        }
    }
    for a in &plan.fences {
        push(&a.pool, format!("fence {}", a.node), a.reason.clone());
    }
    for a in &plan.retires {
        push(
            &a.pool,
            format!(
                "retire {} and terminate {}",
                a.node,
                a.instance.as_deref().unwrap_or("-")
            ),
            a.reason.clone(),
        );
    }
    for a in &plan.lifts {
        push(
            &a.pool,
            format!("lift the fence on {}", a.node),
            a.reason.clone(),
        );
    }
    for o in &plan.orphan_instances {
        push(
            &o.pool,
            format!("terminate orphan instance {}", o.instance),
            o.reason.clone(),
        );
    }
    for a in &plan.orphan_nodes {
        push(
            &a.pool,
            format!("delete orphan node {}", a.node),
            a.reason.clone(),
        );
    }
    while out.len() > DECISIONS_KEPT {
        out.pop_front();
    }
}

/// The page's part of the reconciler's state.
#[derive(Default)]
pub struct PageState {
    pub instances: Vec<Value>,
    pub decisions: VecDeque<Value>,
}

/// A pool's schedules for `/status` and the page: each with its window in force (start and
/// end in the schedule's zone) or its next start.
pub fn schedule_rows(
    pool: &crate::config::Pool,
    in_force: &crate::config::schedule::InForce,
    now: u64,
) -> Vec<serde_json::Value> {
    pool.schedules
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let window = in_force
                .windows
                .iter()
                .find(|(j, _)| *j == i)
                .map(|(_, w)| *w);
            serde_json::json!({
                "schedule": s.describe(),
                "in_force": window.is_some(),
                "since": window.map(|w| s.local_time(w.start_ms)),
                "until": window.map(|w| s.local_time(w.end_ms)),
                "next_start": if window.is_none() {
                    s.next_window(now).map(|w| s.local_time(w.start_ms))
                } else {
                    None
                },
            })
        })
        .collect()
}
