//! Queue-item-to-RunInstances latency against the fake Jenkins and moto. Ignored by default;
//! scripts/bench-fleet runs it with `--ignored --nocapture`.

mod support;

use nectr_fleet::cloud::credentials::Credentials;
use nectr_fleet::cloud::ec2::Ec2Provider;
use nectr_fleet::cloud::{CloudError, CloudProvider, Instance, LaunchSpec, StoredSecret};
use nectr_fleet::reconcile::Reconciler;
use nectr_fleet::secret::Secret;
use nectr_fleet::server::Shared;
use nectr_fleet::util::now_ms;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::fake_jenkins::FakeJenkins;
use support::moto::Moto;

struct Recording {
    inner: Ec2Provider,
    launched_at: Mutex<Vec<u64>>,
}

impl CloudProvider for Recording {
    fn describe_owned(&self, fleet_id: &str) -> Result<Vec<Instance>, CloudError> {
        self.inner.describe_owned(fleet_id)
    }
    fn launch(&self, spec: &LaunchSpec) -> Result<String, CloudError> {
        let r = self.inner.launch(spec);
        if r.is_ok() {
            self.launched_at
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(now_ms());
        }
        r
    }
    fn terminate(&self, ids: &[String]) -> Result<(), CloudError> {
        self.inner.terminate(ids)
    }
    fn newest_image(&self, k: &str, v: &str) -> Result<String, CloudError> {
        self.inner.newest_image(k, v)
    }

    fn image_parameter(&self, name: &str) -> Result<String, CloudError> {
        self.inner.image_parameter(name)
    }
    fn put_agent_secret(&self, f: &str, n: &str, s: &Secret) -> Result<(), CloudError> {
        self.inner.put_agent_secret(f, n, s)
    }
    fn tag_agent_secret(&self, n: &str, id: &str) -> Result<(), CloudError> {
        self.inner.tag_agent_secret(n, id)
    }
    fn delete_agent_secret(&self, n: &str) -> Result<(), CloudError> {
        self.inner.delete_agent_secret(n)
    }
    fn list_agent_secrets(&self, f: &str) -> Result<Vec<StoredSecret>, CloudError> {
        self.inner.list_agent_secrets(f)
    }
}

#[test]
#[ignore = "benchmark: run by scripts/bench-fleet"]
fn queue_to_run_instances_latency() {
    let samples: usize = std::env::var("NECTR_BENCH_SAMPLES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    let jenkins = FakeJenkins::start();
    let moto = Moto::start();
    let dir = support::temp_dir("bench");
    let text = support::config_text("bench", &jenkins.url, &moto.url, "", "")
        .replace("executors = 4", "executors = 1")
        .replace(
            "instance_types = [\"c5.xlarge\", \"m5.xlarge\"]",
            "instance_types = [\"c5.xlarge\"]",
        );
    let (path, cfg) = support::write_config(&dir, &text);
    let poll_ms = cfg.poll_interval_ms;
    let creds = Credentials {
        access_key_id: "testing".into(),
        secret_access_key: Secret::new("testing"),
        session_token: None,
    };
    let cloud = Arc::new(Recording {
        inner: Ec2Provider::new(&cfg.aws, creds).expect("provider"),
        launched_at: Mutex::new(Vec::new()),
    });
    let mut rec = Reconciler::new(cfg, Some(path), cloud.clone(), Arc::new(Shared::default()))
        .expect("reconciler");
    let stop = Arc::new(AtomicBool::new(false));
    let s2 = stop.clone();
    let runner = std::thread::spawn(move || rec.run(s2));
    std::thread::sleep(Duration::from_millis(1500));
    let mut lat = Vec::new();
    for k in 0..samples {
        // A new item at a random phase of the poll cycle.
        let jitter = u64::from_str_radix(&nectr_fleet::util::random_hex(2), 16).unwrap_or(0)
            * poll_ms
            / 65_536;
        std::thread::sleep(Duration::from_millis(jitter));
        let t0 = now_ms();
        jenkins.set_queue_waiting(k + 1, "linux");
        let deadline = t0 + 10 * poll_ms;
        loop {
            let n = cloud
                .launched_at
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .len();
            if n > k {
                break;
            }
            assert!(now_ms() < deadline, "no launch within 10 poll intervals");
            std::thread::sleep(Duration::from_millis(5));
        }
        let at = cloud.launched_at.lock().unwrap_or_else(|p| p.into_inner())[k];
        lat.push(at.saturating_sub(t0));
    }
    stop.store(true, Ordering::Relaxed);
    let _ = runner.join();
    let launched = cloud
        .launched_at
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .len();
    lat.sort_unstable();
    let p50 = lat[lat.len() / 2];
    let max = lat[lat.len() - 1];
    println!(
        "queue_to_run_instances: {} samples, poll interval {poll_ms} ms",
        lat.len()
    );
    println!("queue_to_run_instances_ms p50={p50} max={max} all={lat:?}");
    println!("launches={launched} (expected {samples}: one per new item, no duplicates)");
    assert_eq!(launched, samples, "exactly one launch per new item");
}
