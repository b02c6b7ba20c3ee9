//! Workloads: the builds a simulation replays. Generators are deterministic in their seed.

use super::Rng;
use serde::Serialize;

/// One build: when it enters the queue, how long it runs once on an executor, and the label
/// expression it asks for.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Build {
    pub job: String,
    pub label: String,
    pub arrival_ms: u64,
    pub duration_ms: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Workload {
    pub name: String,
    /// Sorted by arrival; times relative to the start of the simulation.
    pub builds: Vec<Build>,
}

const HOUR: u64 = 3_600_000;
const MIN: u64 = 60_000;

/// Uniform in (0, 1].
fn unit(rng: &mut Rng) -> f64 {
    ((rng.next_u64() >> 11) as f64 + 1.0) / (1u64 << 53) as f64
}

/// Exponential with the given mean.
fn exp(rng: &mut Rng, mean: f64) -> f64 {
    -mean * unit(rng).ln()
}

/// Standard normal (Box–Muller).
fn normal(rng: &mut Rng) -> f64 {
    let (u, v) = (unit(rng), unit(rng));
    (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
}

/// A catalogue of jobs with typical durations: many short checks, fewer long builds.
const JOBS: &[(&str, u64, u32)] = &[
    // (name, median minutes, weight)
    ("lint", 2, 30),
    ("unit-tests", 6, 30),
    ("build", 10, 20),
    ("integration", 18, 12),
    ("release", 30, 3),
    ("nightly-e2e", 45, 5),
];

fn draw_build(rng: &mut Rng, label: &str, arrival_ms: u64) -> Build {
    let total: u32 = JOBS.iter().map(|j| j.2).sum();
    let mut pick = rng.below(total as u64) as u32;
    let mut job = JOBS[0];
    for j in JOBS {
        if pick < j.2 {
            job = *j;
            break;
        }
        pick -= j.2;
    }
    // Log-normal around the median, sigma 0.35, clamped to [20 s, 3 h].
    let d = (job.1 * MIN) as f64 * (0.35 * normal(rng)).exp();
    Build {
        job: job.0.to_string(),
        label: label.to_string(),
        arrival_ms,
        duration_ms: (d as u64).clamp(20_000, 3 * HOUR),
    }
}

/// Arrivals of a Poisson process whose rate (builds per hour) may vary with time, by
/// thinning against `max_rate`.
fn thinned(
    name: &str,
    seed: u64,
    label: &str,
    span_ms: u64,
    max_rate: f64,
    rate: impl Fn(u64) -> f64,
) -> Workload {
    let mut rng = Rng::new(seed);
    let mut builds = Vec::new();
    let mut t = 0.0f64;
    if max_rate > 0.0 {
        loop {
            t += exp(&mut rng, HOUR as f64 / max_rate);
            if t >= span_ms as f64 {
                break;
            }
            let keep = rate(t as u64) / max_rate;
            if unit(&mut rng) <= keep {
                builds.push(draw_build(&mut rng, label, t as u64));
            }
        }
    }
    Workload {
        name: name.to_string(),
        builds,
    }
}

/// A steady Poisson stream of `per_hour` builds for `hours`.
pub fn poisson(seed: u64, label: &str, per_hour: f64, hours: f64) -> Workload {
    thinned(
        "poisson",
        seed,
        label,
        (hours * HOUR as f64) as u64,
        per_hour,
        |_| per_hour,
    )
}

/// Builds per hour of a working day at hour-of-day `h` (0..24), peaking at `peak`.
fn office_rate(h: f64, peak: f64) -> f64 {
    if (8.0..18.0).contains(&h) {
        // Ramp up in the morning, a lunch dip, busiest mid-afternoon.
        let shape = match h {
            h if h < 9.0 => 0.5,
            h if (12.0..13.0).contains(&h) => 0.6,
            h if (14.0..17.0).contains(&h) => 1.0,
            _ => 0.8,
        };
        peak * shape
    } else {
        peak * 0.03
    }
}

/// One working day (24 h): quiet night, office hours 08:00–18:00 peaking at 60 builds/hour.
pub fn office_hours(seed: u64, label: &str) -> Workload {
    let mut w = thinned("office-hours", seed, label, 24 * HOUR, 60.0, |t| {
        office_rate((t % (24 * HOUR)) as f64 / HOUR as f64, 60.0)
    });
    w.name = "office-hours".into();
    w
}

/// A merge wave: a light background (6 builds/hour for 2 h) and 50 builds queued within one
/// minute at 00:30.
pub fn merge_wave(seed: u64, label: &str) -> Workload {
    let mut w = poisson(seed, label, 6.0, 2.0);
    let mut rng = Rng::new(seed ^ 0x5EED);
    for _ in 0..50 {
        let at = 30 * MIN + rng.below(MIN);
        w.builds.push(draw_build(&mut rng, label, at));
    }
    w.builds.sort_by_key(|b| b.arrival_ms);
    w.name = "burst".into();
    w
}

/// A week: five office-hours days (peak `peak` builds/hour) and a quiet weekend (2/hour).
pub fn week(seed: u64, label: &str, peak: f64) -> Workload {
    let mut w = thinned("week", seed, label, 7 * 24 * HOUR, peak, |t| {
        let day = t / (24 * HOUR);
        if day >= 5 {
            2.0
        } else {
            office_rate((t % (24 * HOUR)) as f64 / HOUR as f64, peak)
        }
    });
    w.name = "week".into();
    w
}

/// Import `/api/json?tree=jobs[name,builds[timestamp,duration,builtOn]]` saved as JSON.
/// Folders (`jobs` inside a job) are walked; builds still running (`duration` 0) are left
/// out. Every build asks for `label`.
pub fn import_jenkins(text: &str, label: &str, name: &str) -> Result<Workload, String> {
    let v: serde_json::Value = serde_json::from_str(text).map_err(|e| {
        format!("not JSON ({e}): save the answer of /api/json?tree=jobs[name,builds[timestamp,duration,builtOn]]")
    })?;
    let mut raw = Vec::new();
    fn walk(
        v: &serde_json::Value,
        prefix: &str,
        out: &mut Vec<(String, u64, u64)>,
    ) -> Result<(), String> {
        let Some(jobs) = v.get("jobs") else {
            return Ok(());
        };
        let jobs = jobs
            .as_array()
            .ok_or("`jobs` is not a list: save the controller's /api/json?tree=jobs[...] answer")?;
        for (i, j) in jobs.iter().enumerate() {
            let n = j.get("name").and_then(|n| n.as_str()).ok_or_else(|| {
                format!("jobs[{i}] has no `name`: include name in the tree= filter")
            })?;
            let full = if prefix.is_empty() {
                n.to_string()
            } else {
                format!("{prefix}/{n}")
            };
            if let Some(bs) = j.get("builds") {
                let bs = bs
                    .as_array()
                    .ok_or_else(|| format!("job `{full}`: `builds` is not a list"))?;
                for (k, b) in bs.iter().enumerate() {
                    let ts = b.get("timestamp").and_then(|x| x.as_u64()).ok_or_else(|| {
                        format!("job `{full}` builds[{k}]: no numeric `timestamp`: include timestamp in the tree= filter")
                    })?;
                    let d = b.get("duration").and_then(|x| x.as_u64()).ok_or_else(|| {
                        format!("job `{full}` builds[{k}]: no numeric `duration`: include duration in the tree= filter")
                    })?;
                    if d > 0 {
                        out.push((full.clone(), ts, d));
                    }
                }
            }
            walk(j, &full, out)?;
        }
        Ok(())
    }
    walk(&v, "", &mut raw)?;
    if raw.is_empty() {
        return Err("no finished builds in the file: check the tree= filter names jobs[name,builds[timestamp,duration,builtOn]]".into());
    }
    let t0 = raw.iter().map(|r| r.1).min().unwrap_or(0);
    let mut builds: Vec<Build> = raw
        .into_iter()
        .map(|(job, ts, d)| Build {
            job,
            label: label.to_string(),
            arrival_ms: ts - t0,
            duration_ms: d,
        })
        .collect();
    builds.sort_by(|a, b| a.arrival_ms.cmp(&b.arrival_ms).then(a.job.cmp(&b.job)));
    Ok(Workload {
        name: name.to_string(),
        builds,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generators_are_deterministic_and_sorted() {
        for w in [
            poisson(3, "linux", 200.0, 2.0),
            office_hours(3, "linux"),
            merge_wave(3, "linux"),
        ] {
            assert!(w
                .builds
                .windows(2)
                .all(|p| p[0].arrival_ms <= p[1].arrival_ms));
            assert!(!w.builds.is_empty());
        }
        assert_eq!(office_hours(9, "l"), office_hours(9, "l"));
        assert_ne!(office_hours(9, "l"), office_hours(10, "l"));
    }

    #[test]
    fn rates_are_what_they_say() {
        let w = poisson(1, "l", 200.0, 10.0);
        let n = w.builds.len() as f64;
        assert!((1800.0..2200.0).contains(&n), "{n}");
        let b = merge_wave(1, "l");
        let wave = b
            .builds
            .iter()
            .filter(|x| (30 * MIN..31 * MIN).contains(&x.arrival_ms))
            .count();
        assert!(wave >= 50, "{wave}");
    }

    #[test]
    fn import_reads_history_and_explains_bad_input() {
        let text = r#"{"_class":"hudson.model.Hudson","jobs":[
          {"name":"app","builds":[{"timestamp":1700000060000,"duration":120000,"builtOn":"n1"},
                                  {"timestamp":1700000000000,"duration":30000,"builtOn":""},
                                  {"timestamp":1700000100000,"duration":0,"builtOn":"n2"}]},
          {"name":"folder","jobs":[{"name":"lib","builds":[{"timestamp":1700000030000,"duration":5000}]}]}]}"#;
        let w = import_jenkins(text, "linux", "mine").unwrap();
        let got: Vec<(&str, u64, u64)> = w
            .builds
            .iter()
            .map(|b| (b.job.as_str(), b.arrival_ms, b.duration_ms))
            .collect();
        assert_eq!(
            got,
            vec![
                ("app", 0, 30000),
                ("folder/lib", 30000, 5000),
                ("app", 60000, 120000)
            ]
        );
        let e = import_jenkins("{", "l", "x").unwrap_err();
        assert!(e.contains("not JSON"), "{e}");
        let e = import_jenkins(
            r#"{"jobs":[{"name":"a","builds":[{"duration":1}]}]}"#,
            "l",
            "x",
        )
        .unwrap_err();
        assert!(e.contains("timestamp"), "{e}");
        let e = import_jenkins(r#"{"jobs":[]}"#, "l", "x").unwrap_err();
        assert!(e.contains("no finished builds"), "{e}");
    }
}
