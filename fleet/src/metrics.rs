//! Prometheus text exposition, without a metrics crate.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;

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
    Meta { name: "nectr_fleet_polls_total", help: "Polls by result (ok, jenkins_error, cloud_error, backoff).", kind: Kind::Counter },
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
    Meta { name: "nectr_fleet_orphans_cleaned_total", help: "Orphans cleaned up, by kind (instance, node).", kind: Kind::Counter },
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

#[derive(Clone, Default)]
struct Hist {
    buckets: Vec<u64>,
    sum: f64,
    count: u64,
}

#[derive(Default)]
struct Inner {
    values: BTreeMap<(&'static str, Labels), f64>,
    hists: BTreeMap<(&'static str, Labels), Hist>,
}

#[derive(Default)]
pub struct Metrics {
    inner: Mutex<Inner>,
}

fn labels(l: &[(&str, &str)]) -> Labels {
    l.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn buckets_for(name: &str) -> &'static [f64] {
    if name == "nectr_fleet_decision_seconds" {
        DECISION_BUCKETS
    } else {
        LATENCY_BUCKETS
    }
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn fmt_labels(l: &Labels, extra: Option<(&str, String)>) -> String {
    let mut parts: Vec<String> = l
        .iter()
        .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
        .collect();
    if let Some((k, v)) = extra {
        parts.push(format!("{k}=\"{v}\""));
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!("{{{}}}", parts.join(","))
    }
}

impl Metrics {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn inc(&self, name: &'static str, l: &[(&str, &str)], by: f64) {
        *self.lock().values.entry((name, labels(l))).or_insert(0.0) += by;
    }

    pub fn set(&self, name: &'static str, l: &[(&str, &str)], v: f64) {
        self.lock().values.insert((name, labels(l)), v);
    }

    /// Drop every series of a gauge (before re-setting it from a fresh observation).
    pub fn clear(&self, name: &'static str) {
        self.lock().values.retain(|(n, _), _| *n != name);
    }

    pub fn observe(&self, name: &'static str, l: &[(&str, &str)], v: f64) {
        let b = buckets_for(name);
        let mut g = self.lock();
        let h = g.hists.entry((name, labels(l))).or_insert_with(|| Hist {
            buckets: vec![0; b.len()],
            sum: 0.0,
            count: 0,
        });
        for (i, le) in b.iter().enumerate() {
            if v <= *le {
                h.buckets[i] += 1;
            }
        }
        h.sum += v;
        h.count += 1;
    }

    pub fn get(&self, name: &'static str, l: &[(&str, &str)]) -> f64 {
        self.lock()
            .values
            .get(&(name, labels(l)))
            .copied()
            .unwrap_or(0.0)
    }

    pub fn render(&self) -> String {
        let g = self.lock();
        let mut out = String::new();
        for m in METRICS {
            let _ = writeln!(out, "# HELP {} {}", m.name, m.help);
            let t = match m.kind {
                Kind::Counter => "counter",
                Kind::Gauge => "gauge",
                Kind::Histogram => "histogram",
            };
            let _ = writeln!(out, "# TYPE {} {t}", m.name);
            if m.kind == Kind::Histogram {
                for ((n, l), h) in g.hists.iter().filter(|((n, _), _)| *n == m.name) {
                    for (i, le) in buckets_for(n).iter().enumerate() {
                        let _ = writeln!(
                            out,
                            "{n}_bucket{} {}",
                            fmt_labels(l, Some(("le", le.to_string()))),
                            h.buckets[i]
                        );
                    }
                    let _ = writeln!(
                        out,
                        "{n}_bucket{} {}",
                        fmt_labels(l, Some(("le", "+Inf".into()))),
                        h.count
                    );
                    let _ = writeln!(out, "{n}_sum{} {}", fmt_labels(l, None), h.sum);
                    let _ = writeln!(out, "{n}_count{} {}", fmt_labels(l, None), h.count);
                }
            } else {
                let mut any = false;
                for ((n, l), v) in g.values.iter().filter(|((n, _), _)| *n == m.name) {
                    any = true;
                    let _ = writeln!(out, "{n}{} {v}", fmt_labels(l, None));
                }
                if !any
                    && m.kind == Kind::Counter
                    && m.name == "nectr_fleet_busy_terminations_total"
                {
                    let _ = writeln!(out, "{} 0", m.name);
                }
            }
        }
        out
    }
}

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
        assert!(t.contains("# TYPE nectr_fleet_fence_outcomes_total counter"));
    }
}
