//! Per-job cost attribution (issue 12 item 7). Pure: fed one observation per poll (the
//! computers with the build on each executor, the instances, the config, the poll's time).
//!
//! A build's share of an instance is one executor: from the first poll that shows it on an
//! executor of a fleet node until the first poll that no longer does, it costs the
//! instance's price per second (the pool's `price`, or the bundled table; spot at the pool's
//! `spot_discount`) divided by the node's executors. It is added to its job when it is gone
//! (a finished build), on the UTC day of that poll. A Pipeline build holding two executors
//! (two `node` blocks at once) costs two shares and counts as one build.
//!
//! Bounded: the first [`MAX_JOBS`] distinct jobs are kept by name, later ones are added to
//! the job [`OTHER`] (so metric label sets stay bounded too). Held in memory by the
//! reconciler: survives config reloads, starts empty at each process start.

use crate::cloud::Instance;
use crate::config::Config;
use crate::jenkins::{Computer, NodeTag};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};

/// Distinct jobs kept by name; the rest are summed as [`OTHER`].
pub const MAX_JOBS: usize = 200;
/// The job name under which jobs beyond [`MAX_JOBS`] are summed.
pub const OTHER: &str = "other";

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Totals {
    pub builds: u64,
    pub instance_seconds: f64,
    pub dollars: f64,
}

impl Totals {
    fn add(&mut self, builds: u64, seconds: f64, dollars: f64) {
        self.builds += builds;
        self.instance_seconds += seconds;
        self.dollars += dollars;
    }

    fn json(&self) -> Value {
        json!({
            "builds": self.builds,
            "instance_seconds": self.instance_seconds,
            "dollars": self.dollars,
        })
    }
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct JobCost {
    pub total: Totals,
    pub pools: BTreeMap<String, Totals>,
    /// By UTC day (`YYYY-MM-DD`) of the poll that saw the build gone.
    pub days: BTreeMap<String, Totals>,
}

/// One build on one executor, being timed.
#[derive(Clone, Debug, PartialEq)]
struct Running {
    job: String,
    pool: String,
    /// The build's identity across executors (URL, else display name).
    build: String,
    since_ms: u64,
    /// Dollars per second of this executor's share; `None` when no price is known.
    per_second: Option<f64>,
}

/// A share of an instance that ended this poll: what to add to the metrics.
#[derive(Clone, Debug, PartialEq)]
pub struct Finished {
    /// The build's URL (else its display name).
    pub build: String,
    pub job: String,
    pub pool: String,
    pub seconds: f64,
    pub dollars: f64,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct CostBook {
    /// (node, executor index) → the build timed there.
    running: BTreeMap<(String, usize), Running>,
    jobs: BTreeMap<String, JobCost>,
    /// Shares whose instance had no known price (their seconds count, their dollars are 0).
    pub unpriced_seconds: f64,
}

impl CostBook {
    /// The name a job is kept under: its own while fewer than [`MAX_JOBS`] are kept.
    fn slot(&self, job: &str) -> String {
        if self.jobs.contains_key(job) || self.jobs.len() < MAX_JOBS || job == OTHER {
            job.to_string()
        } else {
            OTHER.to_string()
        }
    }

    /// Fold one observation in; returns the shares that ended in it.
    pub fn observe(
        &mut self,
        computers: &[Computer],
        instances: &[Instance],
        cfg: &Config,
        now: u64,
    ) -> Vec<Finished> {
        let by_node: BTreeMap<&str, &Instance> = instances
            .iter()
            .filter(|i| i.is_owned_by(&cfg.fleet_id, &cfg.jenkins.url))
            .filter_map(|i| Some((i.node()?, i)))
            .collect();
        let mut seen: BTreeSet<(String, usize)> = BTreeSet::new();
        let mut ended: Vec<Running> = Vec::new();
        for c in computers {
            let Some(tag) = c.description.as_deref().and_then(NodeTag::parse) else {
                continue;
            };
            if tag.fleet != cfg.fleet_id {
                continue;
            }
            for b in &c.builds {
                let key = (c.name.clone(), b.executor);
                let build = b.url.clone().unwrap_or_else(|| b.display_name.clone());
                if let Some(r) = self.running.get(&key) {
                    if r.build == build {
                        seen.insert(key);
                        continue;
                    }
                    // Another build on the same executor between two polls: the previous
                    // one ended (seen at most one poll interval late) and is replaced below.
                }
                let per_second = by_node.get(c.name.as_str()).and_then(|i| {
                    let pool = cfg.pool(&tag.pool)?;
                    let hourly = pool.hourly_price(&i.instance_type, i.spot)?;
                    let executors = c.num_executors.max(c.executors.len() as u32).max(1);
                    Some(hourly / 3600.0 / executors as f64)
                });
                let fresh = Running {
                    job: b.job.clone(),
                    pool: tag.pool.clone(),
                    build,
                    since_ms: now,
                    per_second,
                };
                if let Some(prev) = self.running.insert(key.clone(), fresh) {
                    ended.push(prev);
                }
                seen.insert(key);
            }
        }
        let gone: Vec<(String, usize)> = self
            .running
            .keys()
            .filter(|k| !seen.contains(*k))
            .cloned()
            .collect();
        ended.extend(gone.iter().filter_map(|k| self.running.remove(k)));
        let mut out = Vec::new();
        let day = crate::util::format_iso8601_ms(now)
            .get(..10)
            .unwrap_or("")
            .to_string();
        for r in ended {
            let seconds = now.saturating_sub(r.since_ms) as f64 / 1000.0;
            let dollars = r.per_second.map_or(0.0, |p| p * seconds);
            if r.per_second.is_none() {
                self.unpriced_seconds += seconds;
            }
            // One build however many executors it held: counted with its last share.
            let builds = u64::from(
                !self.running.values().any(|o| o.build == r.build)
                    && !out.iter().any(|f: &Finished| f.build == r.build),
            );
            let name = self.slot(&r.job);
            let j = self.jobs.entry(name.clone()).or_default();
            j.total.add(builds, seconds, dollars);
            j.pools
                .entry(r.pool.clone())
                .or_default()
                .add(builds, seconds, dollars);
            j.days
                .entry(day.clone())
                .or_default()
                .add(builds, seconds, dollars);
            out.push(Finished {
                build: r.build,
                job: name,
                pool: r.pool,
                seconds,
                dollars,
            });
        }
        out
    }

    pub fn job(&self, name: &str) -> Option<&JobCost> {
        self.jobs.get(name)
    }

    /// Builds being timed now.
    pub fn running(&self) -> usize {
        self.running.len()
    }

    /// The `/status` view: jobs by dollars (highest first), each with its pools and days.
    pub fn json(&self) -> Value {
        let mut jobs: Vec<(&String, &JobCost)> = self.jobs.iter().collect();
        jobs.sort_by(|a, b| {
            b.1.total
                .dollars
                .total_cmp(&a.1.total.dollars)
                .then_with(|| a.0.cmp(b.0))
        });
        json!({
            "jobs": jobs.iter().map(|(name, j)| json!({
                "job": name,
                "builds": j.total.builds,
                "instance_seconds": j.total.instance_seconds,
                "dollars": j.total.dollars,
                "pools": j.pools.iter().map(|(p, t)| (p.clone(), t.json())).collect::<serde_json::Map<_, _>>(),
                "days": j.days.iter().map(|(d, t)| (d.clone(), t.json())).collect::<serde_json::Map<_, _>>(),
            })).collect::<Vec<_>>(),
            "running_builds": self.running.len(),
            "unpriced_instance_seconds": self.unpriced_seconds,
            "max_jobs": MAX_JOBS,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cloud::{InstanceState, TAG_FLEET, TAG_JENKINS, TAG_NODE, TAG_POOL};
    use crate::jenkins::{job_of_build, RunningBuild};
    use std::path::Path;

    const T: u64 = 1_800_000_000_000;

    fn cfg() -> Config {
        crate::config::load_str(
            r#"
fleet_id = "ci"
[jenkins]
url = "https://ci.example.com/"
user = "u"
token_file = "t"
[aws]
region = "us-east-1"
[[pool]]
name = "linux"
labels = ["linux"]
executors = 4
instance_types = [{ type = "c5.xlarge", price = 0.72 }]
ami = "ami-1"
max_instances = 10
spot_discount = 0.5
"#,
            Path::new("/"),
        )
        .unwrap_or_else(|e| panic!("{e:?}"))
    }

    fn node(name: &str, fleet: &str, builds: &[(usize, &str, &str)]) -> Computer {
        Computer {
            class: "hudson.slaves.SlaveComputer".into(),
            name: name.into(),
            description: Some(
                NodeTag {
                    fleet: fleet.into(),
                    pool: "linux".into(),
                    token: format!("tok-{name}"),
                    instance: None,
                    created_ms: T,
                }
                .render(),
            ),
            num_executors: 4,
            offline: false,
            temporarily_offline: false,
            offline_cause_reason: None,
            idle: Some(builds.is_empty()),
            connected: true,
            executors: (0..4)
                .map(|i| Some(!builds.iter().any(|b| b.0 == i)))
                .collect(),
            one_off_busy: 0,
            labels: vec![],
            builds: builds
                .iter()
                .map(|(e, url, name)| RunningBuild {
                    executor: *e,
                    url: Some(url.to_string()),
                    display_name: name.to_string(),
                    job: job_of_build(Some(url), name),
                })
                .collect(),
        }
    }

    fn inst(node: &str, spot: bool) -> Instance {
        let tags = [
            (TAG_FLEET, "ci"),
            (TAG_JENKINS, "https://ci.example.com/"),
            (TAG_POOL, "linux"),
            (TAG_NODE, node),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        Instance {
            id: format!("i-{node}"),
            state: InstanceState::Running,
            instance_type: "c5.xlarge".into(),
            launch_time_ms: Some(T),
            spot,
            tags,
        }
    }

    #[test]
    fn jobs_from_urls_and_display_names() {
        let j = |u: Option<&str>, n: &str| job_of_build(u, n);
        assert_eq!(j(Some("https://ci/job/app/12/"), "app #12"), "app");
        assert_eq!(
            j(Some("https://ci/jenkins/job/f/job/mb/job/PR-1/3/"), "x"),
            "f/mb/PR-1"
        );
        assert_eq!(j(Some("http://h/job/a%20b/1/"), "a b #1"), "a b");
        assert_eq!(j(None, "f » app #9"), "f » app");
        assert_eq!(j(None, "no number"), "no number");
        assert_eq!(j(Some("https://ci/computer/x/"), "odd #x"), "odd #x");
        assert_eq!(crate::util::pct_decode("%e2%82%ac%2"), "€%2");
    }

    #[test]
    fn parallel_branches_of_one_build_count_once_and_spot_is_discounted() {
        let cfg = cfg();
        let mut book = CostBook::default();
        let url = "https://ci/job/p/5/";
        let both = [node("n1", "ci", &[(0, url, "p #5"), (2, url, "p #5")])];
        let i = [inst("n1", true)];
        assert!(book.observe(&both, &i, &cfg, T).is_empty());
        // One branch ends after 100 s, the other after 300 s.
        let one = [node("n1", "ci", &[(2, url, "p #5")])];
        let f = book.observe(&one, &i, &cfg, T + 100_000);
        assert_eq!(f.len(), 1);
        assert_eq!(book.job("p").expect("p").total.builds, 0, "still running");
        let none = [node("n1", "ci", &[])];
        book.observe(&none, &i, &cfg, T + 300_000);
        let p = book.job("p").expect("p");
        assert_eq!(p.total.builds, 1);
        assert_eq!(p.total.instance_seconds, 400.0);
        // $0.72/h spot at 50 % off, 4 executors: $0.000025 per executor-second.
        assert!((p.total.dollars - 400.0 * 0.36 / 3600.0 / 4.0).abs() < 1e-12);
    }

    #[test]
    fn a_new_build_on_the_same_executor_ends_the_previous_one() {
        let cfg = cfg();
        let mut book = CostBook::default();
        let i = [inst("n1", false)];
        book.observe(
            &[node("n1", "ci", &[(0, "https://ci/job/a/1/", "a #1")])],
            &i,
            &cfg,
            T,
        );
        let f = book.observe(
            &[node("n1", "ci", &[(0, "https://ci/job/b/1/", "b #1")])],
            &i,
            &cfg,
            T + 60_000,
        );
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].job, "a");
        assert_eq!(f[0].seconds, 60.0);
        assert_eq!(book.running(), 1);
    }

    #[test]
    fn foreign_nodes_are_ignored_and_unknown_instances_unpriced() {
        let cfg = cfg();
        let mut book = CostBook::default();
        let b = [(0, "https://ci/job/a/1/", "a #1")];
        // Another fleet's node, and one of ours whose instance is not in the describe.
        book.observe(
            &[node("x", "other", &b), node("n2", "ci", &b)],
            &[],
            &cfg,
            T,
        );
        assert_eq!(book.running(), 1);
        book.observe(&[], &[], &cfg, T + 10_000);
        let a = book.job("a").expect("a");
        assert_eq!((a.total.builds, a.total.dollars), (1, 0.0));
        assert_eq!(book.unpriced_seconds, 10.0);
    }

    #[test]
    fn jobs_beyond_the_cap_are_summed_as_other() {
        let cfg = cfg();
        let mut book = CostBook::default();
        let i = [inst("n1", false)];
        for k in 0..MAX_JOBS + 5 {
            let url = format!("https://ci/job/j{k}/1/");
            let name = format!("j{k} #1");
            book.observe(&[node("n1", "ci", &[(0, &url, &name)])], &i, &cfg, T);
            book.observe(&[], &i, &cfg, T + 1000);
        }
        let v = book.json();
        assert_eq!(v["jobs"].as_array().expect("jobs").len(), MAX_JOBS + 1);
        assert_eq!(book.job(OTHER).expect("other").total.builds, 5);
        assert!(book.job("j0").is_some() && book.job("j204").is_none());
    }
}
