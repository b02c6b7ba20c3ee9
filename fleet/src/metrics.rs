//! The fleet's metrics, exposed through the `prometheus-client` crate (OpenMetrics text).
//!
//! The reconcile loop names metrics by their exposed name (`METRICS` below); each is a
//! family labelled by `(key, value)` pairs. Counters and gauges hold an `f64` and are encoded
//! as integers when the value is whole (`…_total{pool="linux"} 1`, not `1.0`), so dollar and
//! second metrics keep their fractions and counts read as counts.

use prometheus_client::encoding::{EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::{MetricType, TypedMetric};
use prometheus_client::registry::Registry;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Counter,
    Gauge,
    Histogram,
}

struct Meta {
    name: &'static str,
    help: &'static str,
    kind: Kind,
}

const METRICS: &[Meta] = &[
    Meta { name: "nectr_fleet_polls_total", help: "Polls by result: ok (observed and decided), error (a read of Jenkins or the cloud failed; no action), backoff (skipped while the cloud API throttles).", kind: Kind::Counter },
    Meta { name: "nectr_fleet_queue_oldest_wait_seconds", help: "Age of the oldest waiting item attributed to the pool.", kind: Kind::Gauge },
    Meta { name: "nectr_fleet_demand_executors", help: "Waiting queue items attributed to the pool (one executor each).", kind: Kind::Gauge },
    Meta { name: "nectr_fleet_supply_executors", help: "Executors of the pool by state (idle, busy, connecting, in_flight).", kind: Kind::Gauge },
    Meta { name: "nectr_fleet_instances", help: "Live owned instances of the pool (launches in flight excluded).", kind: Kind::Gauge },
    Meta { name: "nectr_fleet_dollars_per_hour", help: "Configured price of the pool's live and in-flight instances.", kind: Kind::Gauge },
    Meta { name: "nectr_fleet_not_launchable_items", help: "Waiting items nectr does not launch for, by reason.", kind: Kind::Gauge },
    Meta { name: "nectr_fleet_launches_total", help: "Instances launched, by pool and offering.", kind: Kind::Counter },
    Meta { name: "nectr_fleet_launch_failures_total", help: "Failed launch attempts, by pool and reason.", kind: Kind::Counter },
    Meta { name: "nectr_fleet_decision_seconds", help: "Time spent in decide().", kind: Kind::Histogram },
    Meta { name: "nectr_fleet_queue_to_launch_seconds", help: "From an item becoming buildable to the RunInstances answer for it (oldest item of the pool).", kind: Kind::Histogram },
    Meta { name: "nectr_fleet_launch_to_online_seconds", help: "From RunInstances to the node connecting.", kind: Kind::Histogram },
    Meta { name: "nectr_fleet_idle_instance_seconds_total", help: "Instance-seconds spent connected and idle.", kind: Kind::Counter },
    Meta { name: "nectr_fleet_fence_outcomes_total", help: "Scale-in fence steps by outcome (fenced, retired, lifted, aborted).", kind: Kind::Counter },
    Meta { name: "nectr_fleet_busy_terminations_total", help: "Terminations of an instance whose node was seen busy. Must stay 0.", kind: Kind::Counter },
    Meta { name: "nectr_fleet_orphans_cleaned_total", help: "Orphans cleaned up, by kind (instance, node, secret).", kind: Kind::Counter },
    Meta { name: "nectr_fleet_spot_interruptions_total", help: "Spot notices instances reported about themselves (tag nectr:interruption or, in pools with rebalance = true, nectr:rebalance), by pool and kind (interruption, rebalance); each instance counted once per process.", kind: Kind::Counter },
    Meta { name: "nectr_fleet_job_cost_dollars_total", help: "Dollars of finished builds by job and pool: the build's instance-seconds (first to last poll seeing it on an executor) times the instance's price per second divided by its executors. The first 200 jobs by name, later ones as job=\"other\".", kind: Kind::Counter },
    Meta { name: "nectr_fleet_job_instance_seconds_total", help: "Executor-seconds of finished builds by job and pool (the time attributed in nectr_fleet_job_cost_dollars_total); jobs capped as there.", kind: Kind::Counter },
    Meta { name: "nectr_fleet_asg_adoptions_total", help: "Auto Scaling group instances adopted, by pool and kind (scale_out: a node waiting for it; group: launched by the group itself).", kind: Kind::Counter },
    Meta { name: "nectr_fleet_config_reloads_total", help: "Config file reloads by result (applied, rejected).", kind: Kind::Counter },
    Meta { name: "nectr_fleet_leader", help: "1 while this replica holds the leader lease (absent without a lease).", kind: Kind::Gauge },
    Meta { name: "nectr_fleet_errors_total", help: "Errors by source (jenkins, cloud) and kind.", kind: Kind::Counter },
];

const DECISION_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
];
const LATENCY_BUCKETS: &[f64] = &[
    1.0, 2.5, 5.0, 10.0, 15.0, 30.0, 60.0, 90.0, 120.0, 180.0, 300.0, 600.0,
];

type Labels = Vec<(String, String)>;

/// A counter or gauge value: an `f64` in an atomic, encoded as an integer when whole.
#[derive(Debug, Default)]
pub struct Value<const COUNTER: bool>(AtomicU64);

impl<const COUNTER: bool> Value<COUNTER> {
    fn get(&self) -> f64 {
        f64::from_bits(self.0.load(Ordering::Relaxed))
    }

    fn set(&self, v: f64) {
        self.0.store(v.to_bits(), Ordering::Relaxed);
    }

    fn add(&self, by: f64) {
        let _ = self
            .0
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |old| {
                Some((f64::from_bits(old) + by).to_bits())
            });
    }
}

impl<const COUNTER: bool> TypedMetric for Value<COUNTER> {
    const TYPE: MetricType = if COUNTER {
        MetricType::Counter
    } else {
        MetricType::Gauge
    };
}

impl<const COUNTER: bool> EncodeMetric for Value<COUNTER> {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        let v = self.get();
        let whole = v.fract() == 0.0 && v.abs() < 9.0e15;
        match (COUNTER, whole) {
            (true, true) => {
                encoder.encode_counter::<NoLabelSet, _, u64>(&(v.max(0.0) as u64), None)
            }
            (true, false) => encoder.encode_counter::<NoLabelSet, _, u64>(&v, None),
            (false, true) => encoder.encode_gauge(&(v as i64)),
            (false, false) => encoder.encode_gauge(&v),
        }
    }

    fn metric_type(&self) -> MetricType {
        <Self as TypedMetric>::TYPE
    }
}

fn decision_histogram() -> Histogram {
    Histogram::new(DECISION_BUCKETS.iter().copied())
}

fn latency_histogram() -> Histogram {
    Histogram::new(LATENCY_BUCKETS.iter().copied())
}

enum Handle {
    Counter(Family<Labels, Value<true>>),
    Gauge(Family<Labels, Value<false>>),
    Histogram(Family<Labels, Histogram, fn() -> Histogram>),
}

pub struct Metrics {
    registry: Registry,
    handles: BTreeMap<&'static str, Handle>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::default();
        let mut handles = BTreeMap::new();
        for m in METRICS {
            // The crate appends `_total` to counters and a full stop to help texts.
            let name = m.name.strip_suffix("_total").unwrap_or(m.name);
            let help = m.help.strip_suffix('.').unwrap_or(m.help);
            let h = match m.kind {
                Kind::Counter => {
                    let f = Family::<Labels, Value<true>>::default();
                    registry.register(name, help, f.clone());
                    Handle::Counter(f)
                }
                Kind::Gauge => {
                    let f = Family::<Labels, Value<false>>::default();
                    registry.register(name, help, f.clone());
                    Handle::Gauge(f)
                }
                Kind::Histogram => {
                    let ctor: fn() -> Histogram = if m.name == "nectr_fleet_decision_seconds" {
                        decision_histogram
                    } else {
                        latency_histogram
                    };
                    let f = Family::new_with_constructor(ctor);
                    registry.register(name, help, f.clone());
                    Handle::Histogram(f)
                }
            };
            handles.insert(m.name, h);
        }
        // Shown at 0 from the start: the promise is that it stays there.
        if let Some(Handle::Counter(f)) = handles.get("nectr_fleet_busy_terminations_total") {
            let _ = f.get_or_create(&Vec::new());
        }
        Metrics { registry, handles }
    }
}

fn labels(l: &[(&str, &str)]) -> Labels {
    l.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

impl Metrics {
    fn handle(&self, name: &'static str) -> Option<&Handle> {
        let h = self.handles.get(name);
        debug_assert!(h.is_some(), "metric {name} is not declared in METRICS");
        h
    }

    pub fn inc(&self, name: &'static str, l: &[(&str, &str)], by: f64) {
        match self.handle(name) {
            Some(Handle::Counter(f)) => f.get_or_create(&labels(l)).add(by),
            Some(Handle::Gauge(f)) => f.get_or_create(&labels(l)).add(by),
            _ => {}
        }
    }

    pub fn set(&self, name: &'static str, l: &[(&str, &str)], v: f64) {
        match self.handle(name) {
            Some(Handle::Counter(f)) => f.get_or_create(&labels(l)).set(v),
            Some(Handle::Gauge(f)) => f.get_or_create(&labels(l)).set(v),
            _ => {}
        }
    }

    /// Drop every series of a gauge (before re-setting it from a fresh observation).
    pub fn clear(&self, name: &'static str) {
        match self.handle(name) {
            Some(Handle::Counter(f)) => f.clear(),
            Some(Handle::Gauge(f)) => f.clear(),
            Some(Handle::Histogram(f)) => f.clear(),
            None => {}
        }
    }

    pub fn observe(&self, name: &'static str, l: &[(&str, &str)], v: f64) {
        if let Some(Handle::Histogram(f)) = self.handle(name) {
            f.get_or_create(&labels(l)).observe(v);
        }
    }

    /// The current value of a counter or gauge series (0 when it does not exist).
    pub fn get(&self, name: &'static str, l: &[(&str, &str)]) -> f64 {
        let l = labels(l);
        match self.handle(name) {
            Some(Handle::Counter(f)) => f.get(&l).map(|v| v.get()).unwrap_or(0.0),
            Some(Handle::Gauge(f)) => f.get(&l).map(|v| v.get()).unwrap_or(0.0),
            _ => 0.0,
        }
    }

    /// The OpenMetrics text exposition (content type [`CONTENT_TYPE`]).
    pub fn render(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.push_str("# EOF\n");
        }
        out
    }
}

/// What `/metrics` answers with.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_text_format() {
        let m = Metrics::default();
        m.inc(
            "nectr_fleet_launches_total",
            &[("pool", "linux"), ("offering", "c5 spot")],
            2.0,
        );
        m.set("nectr_fleet_demand_executors", &[("pool", "a\"b")], 3.0);
        m.observe("nectr_fleet_decision_seconds", &[], 0.002);
        let t = m.render();
        assert!(
            t.contains("nectr_fleet_launches_total{pool=\"linux\",offering=\"c5 spot\"} 2"),
            "{t}"
        );
        assert!(t.contains("nectr_fleet_demand_executors{pool=\"a\\\"b\"} 3"));
        assert!(t.contains("nectr_fleet_decision_seconds_bucket{le=\"0.0025\"} 1"));
        assert!(t.contains("nectr_fleet_decision_seconds_bucket{le=\"0.001\"} 0"));
        assert!(t.contains("nectr_fleet_decision_seconds_count 1"));
        assert!(t.contains("nectr_fleet_busy_terminations_total 0"));
        assert!(
            t.contains("# TYPE nectr_fleet_busy_terminations counter"),
            "{t}"
        );
        assert!(t.ends_with("# EOF\n"), "{t}");
        m.inc(
            "nectr_fleet_idle_instance_seconds_total",
            &[("pool", "linux")],
            1.5,
        );
        m.set("nectr_fleet_dollars_per_hour", &[("pool", "linux")], 0.34);
        let t = m.render();
        assert!(
            t.contains("nectr_fleet_idle_instance_seconds_total{pool=\"linux\"} 1.5"),
            "{t}"
        );
        assert!(
            t.contains("nectr_fleet_dollars_per_hour{pool=\"linux\"} 0.34"),
            "{t}"
        );
        m.clear("nectr_fleet_dollars_per_hour");
        assert!(!m.render().contains("nectr_fleet_dollars_per_hour{"));
        assert_eq!(
            m.get(
                "nectr_fleet_launches_total",
                &[("pool", "linux"), ("offering", "c5 spot")]
            ),
            2.0
        );
    }

    /// The help text of `nectr_fleet_polls_total` lists exactly the `result` values the loop
    /// emits (issue 12 item 15: it once named results the code never emitted).
    #[test]
    fn polls_total_help_names_exactly_the_emitted_results() {
        let key = "\"nectr_fleet_polls_total\", &[(\"result\", \"";
        let mut emitted: Vec<&str> = Vec::new();
        for src in [
            include_str!("reconcile/mod.rs"),
            include_str!("reconcile/asg.rs"),
            include_str!("reconcile/view.rs"),
            include_str!("main.rs"),
            include_str!("server.rs"),
        ] {
            for (i, _) in src.match_indices(key) {
                let rest = &src[i + key.len()..];
                emitted.push(&rest[..rest.find('"').expect("closing quote")]);
            }
        }
        emitted.sort_unstable();
        emitted.dedup();
        assert_eq!(
            emitted,
            ["backoff", "error", "ok"],
            "update the help text too"
        );
        let help = METRICS
            .iter()
            .find(|m| m.name == "nectr_fleet_polls_total")
            .expect("declared")
            .help;
        let list = help.strip_prefix("Polls by result: ").expect("help prefix");
        let mut named: Vec<&str> = list
            .split("), ")
            .map(|part| part.split(" (").next().unwrap_or("").trim())
            .collect();
        named.sort_unstable();
        assert_eq!(named, emitted, "{help}");
        let m = Metrics::default();
        m.inc("nectr_fleet_polls_total", &[("result", "ok")], 1.0);
        let t = m.render();
        assert!(
            t.contains(&format!("# HELP nectr_fleet_polls {help}")),
            "{t}"
        );
    }
}
