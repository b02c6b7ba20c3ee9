//! `nectr-fleet simulate`: parses its own arguments (so `main.rs` only dispatches).

use super::engine::Params;
use super::policy::{Classic, Nectr};
use super::report::{compare, run_policy, Comparison};
use super::{optimum, plot, workload};
use crate::config::{self, Config};
use crate::util::{format_duration_ms, parse_duration_ms};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

pub const USAGE: &str = "\
nectr-fleet simulate: replay a build workload through nectr's decide and the alternatives

usage:
  nectr-fleet simulate [--config FILE] [--workload NAME|FILE.json] [options]

workloads (--workload):
  office-hours     one working day, 08:00-18:00 peaking at 60 builds/hour (default)
  burst            a 50-build merge wave over a light 2 h background
  poisson          a steady stream: --rate BUILDS_PER_HOUR (default 200) for --hours (default 24)
  week             five office-hours days peaking at --rate (default 60) and a quiet weekend
  FILE.json        a controller's history: save
                   JENKINS/api/json?tree=jobs[name,builds[timestamp,duration,builtOn]]

options:
  --config FILE            the fleet.toml to simulate (default: one pool `linux`, c6i.xlarge,
                           2 executors, the config defaults); `nectr` uses it as given
  --label LABEL            label the workload's builds ask for (default: the first pool's first)
  --seed N                 seed of the workload and the world (default 1)
  --boot MIN..MAX          launch-to-online time, uniform (default 45s..75s)
  --spot-interruptions X   interruptions per spot instance-hour (default 0)
  --capacity-errors PCT    percent of launches failing for capacity (default 0)
  --sweep idle_timeout=A..B  nectr's cost and wait for idle timeouts from A to B
  --json                   the report as JSON on stdout instead of the table
  --plots DIR              write SVG plots (queue, instances, cost over time; wait CDF) to DIR

The last line is always:
simulate: workload=NAME builds=N nectr_cost=X optimum_cost=Y ratio=X/Y p95_wait_s=W ec2_plugin_like_cost=Z busy_terminations=B";

/// The config used without `--config`.
pub const DEFAULT_CONFIG: &str = r#"
fleet_id = "sim"
[jenkins]
url = "https://jenkins.example.com/"
user = "sim"
token_file = "unused"
[aws]
region = "us-east-1"
[[pool]]
name = "linux"
labels = ["linux"]
executors = 2
instance_types = ["c6i.xlarge"]
ami = "ami-00000000000000000"
max_instances = 200
"#;

#[derive(Debug)]
pub struct Args {
    pub config: Option<PathBuf>,
    pub workload: String,
    pub label: Option<String>,
    pub rate: Option<f64>,
    pub hours: f64,
    pub params: Params,
    pub sweep: Option<(u64, u64)>,
    pub json: bool,
    pub plots: Option<PathBuf>,
}

fn range_ms(s: &str, what: &str) -> Result<(u64, u64), String> {
    let (a, b) = s
        .split_once("..")
        .ok_or_else(|| format!("{what} `{s}`: write a range like 1m..30m"))?;
    let a = parse_duration_ms(a).map_err(|e| format!("{what} `{s}`: {e}"))?;
    let b = parse_duration_ms(b).map_err(|e| format!("{what} `{s}`: {e}"))?;
    if a > b {
        return Err(format!("{what} `{s}`: the start is after the end"));
    }
    Ok((a, b))
}

pub fn parse(args: &[String]) -> Result<Args, String> {
    let mut a = Args {
        config: None,
        workload: "office-hours".into(),
        label: None,
        rate: None,
        hours: 24.0,
        params: Params::default(),
        sweep: None,
        json: false,
        plots: None,
    };
    let mut it = args.iter();
    while let Some(k) = it.next() {
        let (k, inline) = match k.split_once('=') {
            Some((k, v)) if k.starts_with("--") => (k, Some(v.to_string())),
            _ => (k.as_str(), None),
        };
        let mut val = |name: &str| -> Result<String, String> {
            inline
                .clone()
                .or_else(|| it.next().cloned())
                .ok_or_else(|| format!("{name} needs a value (see --help)"))
        };
        match k {
            "-h" | "--help" => return Err(String::new()),
            "--config" | "-c" => a.config = Some(PathBuf::from(val(k)?)),
            "--workload" => a.workload = val(k)?,
            "--label" => a.label = Some(val(k)?),
            "--seed" => {
                let v = val(k)?;
                a.params.seed = v
                    .parse()
                    .map_err(|_| format!("--seed `{v}`: use a whole number"))?
            }
            "--rate" => {
                let v = val(k)?;
                a.rate = Some(
                    v.parse::<f64>()
                        .ok()
                        .filter(|r| r.is_finite() && *r > 0.0 && *r <= 100_000.0)
                        .ok_or_else(|| {
                            format!("--rate `{v}`: use builds per hour, 0 < rate <= 100000")
                        })?,
                )
            }
            "--hours" => {
                let v = val(k)?;
                a.hours = v
                    .parse::<f64>()
                    .ok()
                    .filter(|h| h.is_finite() && *h > 0.0 && *h <= 24.0 * 366.0)
                    .ok_or_else(|| format!("--hours `{v}`: use 0 < hours <= 8784"))?
            }
            "--boot" => {
                let (lo, hi) = range_ms(&val(k)?, "--boot")?;
                a.params.boot_min_ms = lo;
                a.params.boot_max_ms = hi;
            }
            "--spot-interruptions" => {
                let v = val(k)?;
                a.params.spot_interruptions_per_hour = v
                    .parse::<f64>()
                    .ok()
                    .filter(|r| r.is_finite() && *r >= 0.0 && *r <= 60.0)
                    .ok_or_else(|| format!("--spot-interruptions `{v}`: use interruptions per instance-hour, 0 to 60"))?
            }
            "--capacity-errors" => {
                let v = val(k)?;
                a.params.capacity_error_percent =
                    v.parse::<u64>().ok().filter(|p| *p <= 100).ok_or_else(|| {
                        format!("--capacity-errors `{v}`: use a percent, 0 to 100")
                    })?
            }
            "--sweep" => {
                let v = val(k)?;
                let r = v.strip_prefix("idle_timeout=").ok_or_else(|| {
                    format!("--sweep `{v}`: only idle_timeout can be swept: --sweep idle_timeout=1m..30m")
                })?;
                a.sweep = Some(range_ms(r, "--sweep idle_timeout")?);
            }
            "--json" => a.json = true,
            "--plots" => a.plots = Some(PathBuf::from(val(k)?)),
            other => {
                return Err(format!(
                    "unknown argument `{other}` (see nectr-fleet simulate --help)"
                ))
            }
        }
    }
    Ok(a)
}

pub fn load_config(path: Option<&Path>) -> Result<Config, String> {
    match path {
        Some(p) => config::load_file(p).map_err(|e| e.to_string()),
        None => config::load_str(DEFAULT_CONFIG, Path::new("/")).map_err(|e| {
            e.iter()
                .map(|x| x.to_string())
                .collect::<Vec<_>>()
                .join("\n")
        }),
    }
}

pub fn load_workload(a: &Args, label: &str) -> Result<workload::Workload, String> {
    let seed = a.params.seed;
    Ok(match a.workload.as_str() {
        "office-hours" => workload::office_hours(seed, label),
        "burst" => workload::merge_wave(seed, label),
        "poisson" => workload::poisson(seed, label, a.rate.unwrap_or(200.0), a.hours),
        "week" => workload::week(seed, label, a.rate.unwrap_or(60.0)),
        file => {
            let text = std::fs::read_to_string(file).map_err(|e| {
                format!("--workload {file}: {e}; use office-hours, burst, poisson, week or a saved /api/json file")
            })?;
            let name = Path::new(file)
                .file_stem()
                .map_or("import".into(), |s| s.to_string_lossy().into_owned());
            workload::import_jenkins(&text, label, &name)
                .map_err(|e| format!("--workload {file}: {e}"))?
        }
    })
}

/// Idle timeouts of a sweep: a readable ladder within [lo, hi], both ends included.
pub fn sweep_points(lo: u64, hi: u64) -> Vec<u64> {
    let ladder = [
        0u64, 30_000, 60_000, 120_000, 180_000, 300_000, 600_000, 900_000, 1_200_000, 1_800_000,
        2_700_000, 3_600_000, 7_200_000,
    ];
    let mut v: Vec<u64> = ladder
        .into_iter()
        .filter(|t| (lo..=hi).contains(t))
        .collect();
    v.push(lo);
    v.push(hi);
    v.sort();
    v.dedup();
    v
}

#[derive(serde::Serialize)]
struct SweepRow {
    idle_timeout: String,
    idle_timeout_s: u64,
    nectr_cost: f64,
    nectr_p95_wait_s: f64,
    nectr_idle_share: f64,
    ec2_fleet_like_cost: f64,
    ec2_fleet_like_p95_wait_s: f64,
}

fn sweep(cfg: &Config, a: &Args, w: &workload::Workload, lo: u64, hi: u64) -> Vec<SweepRow> {
    let opt = optimum::compute(cfg, &a.params, w);
    sweep_points(lo, hi)
        .into_iter()
        .map(|t| {
            let mut c = cfg.clone();
            for p in &mut c.pools {
                p.idle_timeout_ms = t;
            }
            let n = run_policy(&c, &a.params, w, &mut Nectr::new(c.clone()), &opt);
            let f = run_policy(
                &c,
                &a.params,
                w,
                &mut Classic::ec2_fleet_like(c.clone()),
                &opt,
            );
            SweepRow {
                idle_timeout: format_duration_ms(t),
                idle_timeout_s: t / 1000,
                nectr_cost: n.cost,
                nectr_p95_wait_s: n.wait_p95_s,
                nectr_idle_share: n.idle_share,
                ec2_fleet_like_cost: f.cost,
                ec2_fleet_like_p95_wait_s: f.wait_p95_s,
            }
        })
        .collect()
}

/// Everything but printing: the comparison, the sweep rows, the files written.
pub fn execute(a: &Args) -> Result<(Comparison, String), String> {
    let cfg = load_config(a.config.as_deref())?;
    let label = match &a.label {
        Some(l) => l.clone(),
        None => cfg
            .pools
            .first()
            .and_then(|p| p.labels.iter().next().cloned())
            .ok_or("the config has no pool labels")?,
    };
    if !cfg.pools.iter().any(|p| p.labels.contains(&label)) {
        return Err(format!(
            "--label {label}: no pool carries it; use one of the pools' labels"
        ));
    }
    let w = load_workload(a, &label)?;
    let cmp = compare(&cfg, &a.params, &w);
    let rows = match a.sweep {
        Some((lo, hi)) => sweep(&cfg, a, &w, lo, hi),
        None => Vec::new(),
    };
    let mut out = String::new();
    if let Some(dir) = &a.plots {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("--plots {}: cannot create it: {e}", dir.display()))?;
        let files = plot::write_all(&cmp, dir)?;
        if !a.json {
            for f in files {
                out += &format!("plot: {}\n", f.display());
            }
        }
        if !rows.is_empty() {
            let pts: Vec<(f64, f64, f64)> = rows
                .iter()
                .map(|r| {
                    (
                        r.idle_timeout_s as f64 / 60.0,
                        r.nectr_cost,
                        r.nectr_p95_wait_s,
                    )
                })
                .collect();
            let f = plot::sweep(&pts, dir)?;
            if !a.json {
                out += &format!("plot: {}\n", f.display());
            }
        }
    }
    if a.json {
        let mut v = serde_json::to_value(&cmp).map_err(|e| e.to_string())?;
        if !rows.is_empty() {
            v["sweep"] = serde_json::to_value(&rows).map_err(|e| e.to_string())?;
        }
        out += &serde_json::to_string_pretty(&v).map_err(|e| e.to_string())?;
        out.push('\n');
    } else {
        out.insert_str(0, &cmp.table());
        if !rows.is_empty() {
            out += &format!(
                "\nidle_timeout sweep (nectr vs ec2_fleet_like)\n{:<12} {:>10} {:>8} {:>6} {:>12} {:>8}\n",
                "idle_timeout", "nectr $", "p95 s", "idle%", "ec2_fleet $", "p95 s"
            );
            for r in &rows {
                out += &format!(
                    "{:<12} {:>10.2} {:>8.0} {:>6.1} {:>12.2} {:>8.0}\n",
                    r.idle_timeout,
                    r.nectr_cost,
                    r.nectr_p95_wait_s,
                    r.nectr_idle_share * 100.0,
                    r.ec2_fleet_like_cost,
                    r.ec2_fleet_like_p95_wait_s
                );
            }
        }
    }
    Ok((cmp, out))
}

/// Entry point of `nectr-fleet simulate ARGS…` (the arguments after `simulate`).
pub fn run(args: Vec<String>) -> ExitCode {
    let a = match parse(&args) {
        Ok(a) => a,
        Err(e) if e.is_empty() => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    match execute(&a) {
        Ok((cmp, out)) => {
            print!("{out}");
            // With --json, stdout stays one JSON document; the line goes to stderr.
            if a.json {
                eprintln!("{}", cmp.last_line());
            } else {
                println!("{}", cmp.last_line());
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}
