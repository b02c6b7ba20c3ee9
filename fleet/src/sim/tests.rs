//! The cost simulator's tests: determinism, the optimum as a lower bound, conservation of
//! builds, and small cases computed by hand.

use super::cli;
use super::engine::{Params, World};
use super::optimum;
use super::policy::{Classic, Nectr};
use super::report::compare;
use super::workload::{self, Build, Workload};
use crate::config::{load_str, Config};
use std::path::Path;

fn cfg(pool_extra: &str) -> Config {
    pool_cfg(2, "c6i.xlarge", 200, pool_extra)
}

/// One pool `linux` of `executors` per `instance_type`.
fn pool_cfg(executors: u32, instance_type: &str, max_instances: u32, pool_extra: &str) -> Config {
    let text = format!(
        r#"
fleet_id = "sim"
[jenkins]
url = "https://jenkins.example.com/"
user = "u"
token_file = "t"
[aws]
region = "us-east-1"
[[pool]]
name = "linux"
labels = ["linux"]
executors = {executors}
instance_types = ["{instance_type}"]
ami = "ami-1"
max_instances = {max_instances}
{pool_extra}
"#
    );
    match load_str(&text, Path::new("/")) {
        Ok(c) => c,
        Err(e) => panic!("{e:?}"),
    }
}

fn one(arrival_s: u64, duration_s: u64) -> Build {
    Build {
        job: "j".into(),
        label: "linux".into(),
        arrival_ms: arrival_s * 1000,
        duration_ms: duration_s * 1000,
    }
}

fn fixed_boot(s: u64) -> Params {
    Params {
        boot_min_ms: s * 1000,
        boot_max_ms: s * 1000,
        ..Params::default()
    }
}

#[test]
fn same_seed_same_report_other_seed_other_report() {
    let c = cfg("");
    let p = Params::default();
    let w = workload::merge_wave(7, "linux");
    let a = serde_json::to_string(&compare(&c, &p, &w)).unwrap();
    let b = serde_json::to_string(&compare(&c, &p, &w)).unwrap();
    assert_eq!(a, b);
    let p2 = Params { seed: 8, ..p };
    let w2 = workload::merge_wave(8, "linux");
    let d = serde_json::to_string(&compare(&c, &p2, &w2)).unwrap();
    assert_ne!(a, d);
}

#[test]
fn no_policy_beats_the_optimum_and_every_build_runs_once() {
    let c = cfg("");
    for seed in 1..=3 {
        let p = Params {
            seed,
            ..Params::default()
        };
        for w in [
            workload::office_hours(seed, "linux"),
            workload::merge_wave(seed, "linux"),
            workload::poisson(seed, "linux", 120.0, 3.0),
        ] {
            let r = compare(&c, &p, &w);
            assert!(r.optimum.cost > 0.0);
            for pol in &r.policies {
                assert!(
                    pol.cost >= r.optimum.cost * (1.0 - 1e-9),
                    "{} beat the optimum on {} seed {seed}: {} < {}",
                    pol.policy,
                    w.name,
                    pol.cost,
                    r.optimum.cost
                );
                assert_eq!(pol.builds_finished + pol.builds_lost, w.builds.len() as u64);
                assert_eq!(
                    pol.builds_lost, 0,
                    "{} lost builds on {}",
                    pol.policy, w.name
                );
                assert_eq!(pol.busy_terminations, 0, "{} on {}", pol.policy, w.name);
                assert!(pol.idle_share >= 0.0 && pol.idle_share < 1.0);
            }
            assert_eq!(r.policy("nectr").unwrap().retires_aborted, 0);
        }
    }
}

/// The figures of fleet/README.md's "what limits it" table: with one executor per machine and
/// no idle timeout, nectr's `decide` stays within a few percent of the offline optimum on the
/// bundled workloads at a p95 wait no worse than ec2-fleet-like's. A regression in how tightly
/// decide launches and retires shows here first.
#[test]
fn a_lean_pool_stays_near_the_optimum() {
    let c = pool_cfg(1, "c6i.large", 400, r#"idle_timeout = "0s""#);
    let p = Params::default(); // seed 1, as scripts/bench-sim
    for w in [
        workload::office_hours(1, "linux"),
        workload::merge_wave(1, "linux"),
    ] {
        let r = compare(&c, &p, &w);
        let n = r.policy("nectr").expect("nectr");
        let f = r.policy("ec2_fleet_like").expect("ec2_fleet_like");
        let ratio = n.cost / r.optimum.cost;
        assert!(
            ratio <= 1.05,
            "{}: nectr at {ratio:.3}x the optimum",
            w.name
        );
        assert!(
            n.wait_p95_s <= f.wait_p95_s,
            "{}: p95 {} s vs ec2_fleet_like {} s",
            w.name,
            n.wait_p95_s,
            f.wait_p95_s
        );
        assert_eq!(n.busy_terminations, 0);
    }
}

#[test]
fn spot_interruptions_and_capacity_errors_lose_no_build() {
    let c = cfg("purchase = \"spot-then-on-demand\"");
    let p = Params {
        seed: 5,
        spot_interruptions_per_hour: 0.5,
        capacity_error_percent: 20,
        ..Params::default()
    };
    let w = workload::poisson(5, "linux", 60.0, 4.0);
    let mut world = World::new(c.clone(), p, &w);
    world.run(&mut Nectr::new(c));
    let n = &world.counters;
    assert!(n.spot_interruptions > 0, "{n:?}");
    assert!(n.capacity_errors > 0, "{n:?}");
    assert!(n.interrupted_builds > 0, "{n:?}");
    assert_eq!(n.busy_terminations, 0, "{n:?}");
    for (i, r) in world.records.iter().enumerate() {
        assert!(r.finished_ms.is_some(), "build {i} never finished: {r:?}");
        assert!(r.starts >= 1);
    }
    let reruns: u64 = world.records.iter().map(|r| r.starts as u64 - 1).sum();
    assert_eq!(reruns, n.interrupted_builds);
    assert!(world.instances.is_empty());
}

#[test]
fn optimum_of_small_cases_by_hand() {
    let c = cfg("");
    let p = fixed_boot(45);
    // One 10-minute build: a machine from 45 s before it to its end: 645 s at $0.17/h.
    let w = Workload {
        name: "one".into(),
        builds: vec![one(0, 600)],
    };
    let o = optimum::compute(&c, &p, &w);
    assert_eq!((o.billed_ms, o.launches), (645_000, 1));
    assert!((o.cost - 645.0 / 3600.0 * 0.17).abs() < 1e-12);
    // Two builds 30 s apart on one executor each of the same machine (2 executors): one
    // machine 45 s before the first to the end of the last.
    let w = Workload {
        name: "two".into(),
        builds: vec![one(0, 100), one(30, 100)],
    };
    let o = optimum::compute(&c, &p, &w);
    assert_eq!((o.billed_ms, o.launches), (175_000, 1));
    // Three overlapping: a second machine for the third build only; a 10 s build is billed
    // the 60 s minimum (45 s boot + 10 s = 55 s).
    let w = Workload {
        name: "three".into(),
        builds: vec![one(0, 100), one(0, 100), one(20, 10)],
    };
    let o = optimum::compute(&c, &p, &w);
    assert_eq!((o.billed_ms, o.launches), (145_000 + 60_000, 2));
    // A gap longer than a boot is not bridged: two machines.
    let w = Workload {
        name: "gap".into(),
        builds: vec![one(0, 100), one(200, 100)],
    };
    let o = optimum::compute(&c, &p, &w);
    assert_eq!((o.billed_ms, o.launches), (290_000, 2));
}

#[test]
fn ec2_fleet_like_small_case_by_hand() {
    // Idle timeout 0, boot exactly 60 s, ticks every 10 s from 0: launched at 0, online at
    // 60 s, the build runs 60–660 s, the tick at 660 s (after the build's end) terminates
    // it: 660 s billed, 60 s wait.
    let c = cfg("idle_timeout = \"0s\"");
    let w = Workload {
        name: "one".into(),
        builds: vec![one(0, 600)],
    };
    let mut world = World::new(c.clone(), fixed_boot(60), &w);
    world.run(&mut Classic::ec2_fleet_like(c));
    assert_eq!(world.counters.launches, 1);
    assert_eq!(world.counters.billed_ms, 660_000);
    assert!((world.counters.cost - 660.0 / 3600.0 * 0.17).abs() < 1e-12);
    assert_eq!(world.records[0].wait_ms, Some(60_000));
    assert_eq!(world.records[0].finished_ms, Some(660_000));
}

#[test]
fn nectr_small_case_runs_the_build_and_retires_the_instance() {
    let c = cfg("idle_timeout = \"0s\"");
    let w = Workload {
        name: "one".into(),
        builds: vec![one(0, 600)],
    };
    let mut world = World::new(c.clone(), fixed_boot(60), &w);
    world.run(&mut Nectr::new(c.clone()));
    assert_eq!(world.counters.launches, 1);
    let r = &world.records[0];
    // Launched on the first poll (t = 0), online 60 s later.
    assert_eq!(r.wait_ms, Some(60_000));
    // Retired within a few polls of going idle (fence, then retire after the settle).
    let billed = world.counters.billed_ms;
    assert!(
        (660_000..=660_000 + 4 * c.poll_interval_ms + c.settle_interval_ms).contains(&billed),
        "{billed}"
    );
    assert_eq!(world.counters.busy_terminations, 0);
}

#[test]
fn billing_has_a_minute_minimum() {
    // A 5 s build with boot 10 s and idle timeout 0 (ec2-fleet-like): the instance lives 20 s
    // (terminated at the tick at 20 s) but is billed 60 s.
    let c = cfg("idle_timeout = \"0s\"");
    let w = Workload {
        name: "short".into(),
        builds: vec![one(0, 5)],
    };
    let mut world = World::new(c.clone(), fixed_boot(10), &w);
    world.run(&mut Classic::ec2_fleet_like(c));
    assert_eq!(world.counters.billed_ms, 60_000);
}

#[test]
fn the_last_line_has_the_promised_fields() {
    let a = cli::parse(&[
        "--workload".into(),
        "burst".into(),
        "--seed".into(),
        "3".into(),
    ])
    .unwrap();
    let (cmp, out) = cli::execute(&a).unwrap();
    let line = cmp.last_line();
    let keys: Vec<&str> = line
        .strip_prefix("simulate: ")
        .unwrap()
        .split(' ')
        .map(|kv| kv.split_once('=').unwrap().0)
        .collect();
    assert_eq!(
        keys,
        [
            "workload",
            "builds",
            "nectr_cost",
            "optimum_cost",
            "ratio",
            "p95_wait_s",
            "ec2_plugin_like_cost",
            "busy_terminations"
        ]
    );
    assert!(line.contains("workload=burst "), "{line}");
    assert!(line.ends_with("busy_terminations=0"), "{line}");
    for p in [
        "nectr",
        "jenkins_core_like",
        "ec2_plugin_like",
        "ec2_fleet_like",
        "optimum",
    ] {
        assert!(out.contains(p), "{p} missing from the table:\n{out}");
    }
}

#[test]
fn bad_arguments_say_what_to_do() {
    for (args, want) in [
        (vec!["--sweep", "spare=1..2"], "only idle_timeout"),
        (
            vec!["--sweep", "idle_timeout=30m..1m"],
            "start is after the end",
        ),
        (vec!["--rate", "-3"], "builds per hour"),
        (vec!["--capacity-errors", "101"], "percent"),
        (vec!["--frobnicate"], "unknown argument"),
        (vec!["--seed"], "needs a value"),
    ] {
        let args: Vec<String> = args.into_iter().map(String::from).collect();
        let e = cli::parse(&args).unwrap_err();
        assert!(e.contains(want), "{args:?}: {e}");
    }
    let a = cli::parse(&["--workload".into(), "/nonexistent.json".into()]).unwrap();
    let e = cli::execute(&a).unwrap_err();
    assert!(
        e.contains("/nonexistent.json") && e.contains("office-hours"),
        "{e}"
    );
    let a = cli::parse(&["--label".into(), "windows".into()]).unwrap();
    assert!(cli::execute(&a).unwrap_err().contains("no pool carries it"));
}

#[test]
fn sweep_points_cover_the_range() {
    assert_eq!(
        cli::sweep_points(60_000, 1_800_000),
        vec![60_000, 120_000, 180_000, 300_000, 600_000, 900_000, 1_200_000, 1_800_000]
    );
    assert_eq!(cli::sweep_points(90_000, 100_000), vec![90_000, 100_000]);
}

#[test]
fn plots_are_written_as_svg() {
    let dir = std::env::temp_dir().join(format!("nectr-sim-plots-{}", std::process::id()));
    let a = cli::parse(&[
        "--workload".into(),
        "burst".into(),
        "--plots".into(),
        dir.display().to_string(),
        "--sweep".into(),
        "idle_timeout=1m..2m".into(),
    ])
    .unwrap();
    cli::execute(&a).unwrap();
    for f in [
        "queue.svg",
        "instances.svg",
        "cost.svg",
        "wait-cdf.svg",
        "sweep.svg",
        "sweep-cost.svg",
    ] {
        let text = std::fs::read_to_string(dir.join(f)).unwrap();
        assert!(text.starts_with("<svg") && text.contains("nectr"), "{f}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
