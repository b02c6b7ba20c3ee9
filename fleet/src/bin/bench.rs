//! `nectr-fleet-bench`: times `decide` on a large synthetic snapshot (default 1,000 instances
//! and 10,000 queue items). Used by scripts/bench-fleet.
//!
//! usage: nectr-fleet-bench [--instances N] [--items N] [--iterations N]

use nectr_fleet::cloud::{
    Instance, InstanceState, TAG_FLEET, TAG_JENKINS, TAG_NODE, TAG_POOL, TAG_TOKEN,
};
use nectr_fleet::config::load_str;
use nectr_fleet::jenkins::{Computer, NodeTag, QueueItem};
use nectr_fleet::scaler::{decide, observe, Memory, Snapshot};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

const CONFIG: &str = r#"
fleet_id = "bench"
[jenkins]
url = "https://ci.example.com/"
user = "u"
token_file = "t"
[aws]
region = "us-east-1"
[[pool]]
name = "linux"
labels = ["linux", "x64", "docker"]
executors = 4
instance_types = [{ type = "c5.9xlarge", executors = 8 }, "c5.4xlarge"]
ami = "ami-1"
max_instances = 2000
spare_executors = 4
[[pool]]
name = "arm"
labels = ["linux", "arm64"]
executors = 4
instance_types = ["c7g.4xlarge"]
ami = "ami-2"
max_instances = 2000
[[pool]]
name = "gpu"
labels = ["gpu"]
executors = 1
instance_types = ["g5.xlarge"]
ami = "ami-3"
max_instances = 500
"#;

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let n_inst = arg("--instances", 1000);
    let n_items = arg("--items", 10_000);
    let iters = arg("--iterations", 30).max(1);
    let cfg = match load_str(CONFIG, Path::new("/")) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("bench config invalid: {e:?}");
            std::process::exit(2);
        }
    };
    let now: u64 = 1_800_000_000_000;
    let pools = ["linux", "arm", "gpu"];
    let mut computers = Vec::with_capacity(n_inst + 2);
    let mut instances = Vec::with_capacity(n_inst);
    for i in 0..n_inst {
        let pool = pools[i % 3];
        let name = format!("nectr-{pool}-{i:06x}");
        let execs = if pool == "gpu" { 1 } else { 4 };
        let busy = i % 4 != 0;
        computers.push(Computer {
            class: "hudson.slaves.SlaveComputer".into(),
            name: name.clone(),
            description: Some(
                NodeTag {
                    fleet: "bench".into(),
                    pool: pool.into(),
                    token: format!("t{i}"),
                    instance: Some(format!("i-{i:08x}")),
                    created_ms: now - 3_600_000,
                }
                .render(),
            ),
            num_executors: execs,
            offline: i % 50 == 0,
            temporarily_offline: false,
            offline_cause_reason: None,
            idle: Some(!busy),
            connected: i % 50 != 0,
            executors: (0..execs).map(|k| Some(!busy || k % 2 == 1)).collect(),
            one_off_busy: 0,
            builds: Vec::new(),
            labels: vec![],
        });
        let mut tags = BTreeMap::new();
        tags.insert(TAG_FLEET.to_string(), "bench".to_string());
        tags.insert(
            TAG_JENKINS.to_string(),
            "https://ci.example.com/".to_string(),
        );
        tags.insert(TAG_POOL.to_string(), pool.to_string());
        tags.insert(TAG_NODE.to_string(), name);
        tags.insert(TAG_TOKEN.to_string(), format!("t{i}"));
        instances.push(Instance {
            id: format!("i-{i:08x}"),
            state: InstanceState::Running,
            instance_type: if pool == "gpu" {
                "g5.xlarge".into()
            } else {
                "c5.4xlarge".into()
            },
            launch_time_ms: Some(now - 3_600_000),
            spot: false,
            tags,
        });
    }
    let whys = [
        "Waiting for next available executor on \u{2018}linux&&x64\u{2019}",
        "Waiting for next available executor on \u{2018}linux&&arm64\u{2019}",
        "There are no nodes with the label \u{2018}gpu\u{2019}",
        "All nodes of label \u{2018}(linux||mac)&&docker\u{2019} are offline",
        "\u{2018}built-in\u{2019} doesn\u{2019}t have label \u{2018}linux&&!arm64\u{2019}; \u{2018}static-1\u{2019} is offline",
        "Waiting for next available executor on \u{2018}windows\u{2019}",
        "In the quiet period. Expires in 3 sec",
        "Build #12 is already in progress (ETA: 3 min)",
    ];
    let queue: Vec<QueueItem> = (0..n_items)
        .map(|i| {
            let mut why = whys[i % whys.len()].to_string();
            if i % 97 == 0 && n_inst > 0 {
                why = format!("\u{2018}{}\u{2019} is offline", computers[i % n_inst].name);
            }
            QueueItem {
                id: i as u64,
                class: "hudson.model.Queue$BuildableItem".into(),
                why: Some(why),
                buildable: i % 8 < 6,
                blocked: i % 8 == 7,
                pending: false,
                stuck: false,
                in_queue_since_ms: Some(now - (i as u64 % 600) * 1000),
                buildable_start_ms: Some(now - (i as u64 % 600) * 1000),
                task_name: None,
                task_label: None,
            }
        })
        .collect();
    let mut mem = Memory {
        polls: 10,
        // Running for an hour: past the start-up wait, so scale-in and orphans are decided too.
        started_ms: Some(now - 3_600_000),
        ..Memory::default()
    };
    for c in &computers {
        if c.is_certainly_idle() {
            mem.idle_since.insert(c.name.clone(), now - 120_000);
        }
    }

    let mut observe_ns = Vec::with_capacity(iters);
    let mut decide_ns = Vec::with_capacity(iters);
    let mut launches = 0;
    let mut fences = 0;
    for _ in 0..iters {
        let t = Instant::now();
        let m = observe(&mem, &computers, &instances, &cfg, now);
        observe_ns.push(t.elapsed().as_nanos() as u64);
        let t = Instant::now();
        let plan = decide(
            &Snapshot {
                queue: &queue,
                computers: &computers,
                instances: &instances,
                memory: &m,
            },
            &cfg,
            now,
        );
        decide_ns.push(t.elapsed().as_nanos() as u64);
        launches = plan.launches.len();
        fences = plan.fences.len();
    }
    let stats = |v: &mut Vec<u64>| {
        v.sort_unstable();
        let ms = |ns: u64| ns as f64 / 1e6;
        (
            ms(v[v.len() / 2]),
            ms(v[(v.len() * 99 / 100).min(v.len() - 1)]),
            ms(v[v.len() - 1]),
        )
    };
    let (d50, d99, dmax) = stats(&mut decide_ns);
    let (o50, _, omax) = stats(&mut observe_ns);
    println!("decide: {n_inst} instances, {n_items} queue items, {iters} iterations");
    println!("decide_ms p50={d50:.3} p99={d99:.3} max={dmax:.3} (goal <= 10 ms)");
    println!("observe_ms p50={o50:.3} max={omax:.3}");
    println!("plan: {launches} launch(es), {fences} fence(s)");
    if d50 > 10.0 {
        println!("WARNING: decide median above the 10 ms goal");
    }
}
