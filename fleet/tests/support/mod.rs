//! Test peers for fleet integration tests: a scripted fake Jenkins and a fake instance
//! metadata service (in-process HTTP servers on 127.0.0.1), and moto (`moto_server`, installed
//! by scripts/fleet-test-peers).
#![allow(dead_code)]

pub mod aws;
pub mod fake_imds;
pub mod fake_jenkins;
pub mod faulty_cloud;
pub mod moto;
pub mod world;

use nectr_fleet::config::{load_str, Config};
use std::path::{Path, PathBuf};

/// The service under test is the first to run against this Jenkins, so no write of a
/// predecessor can still land: skip the wait a real start keeps before destructive actions
/// (`scaler::jenkins_write_settle_ms`, 2 x `jenkins.timeout`).
pub fn first_start(
    mut r: nectr_fleet::reconcile::Reconciler,
) -> nectr_fleet::reconcile::Reconciler {
    r.memory.started_ms = Some(0);
    r
}

/// A fresh temporary directory under the target dir.
pub fn temp_dir(name: &str) -> PathBuf {
    let base = std::env::var_os("CARGO_TARGET_TMPDIR")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let dir = base.join(format!(
        "fleet-{name}-{}-{}",
        std::process::id(),
        nectr_fleet::util::random_hex(4)
    ));
    std::fs::create_dir_all(&dir).expect("create temp dir");
    dir
}

/// Removes a test's directory when the test passes (declare it before whatever writes into the
/// directory, so it drops last); a failing test keeps it for reading.
pub struct RemoveOnSuccess(pub PathBuf);

impl Drop for RemoveOnSuccess {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// A config for the tests: one pool `linux` (4 executors per c5.xlarge).
pub fn config_text(
    fleet: &str,
    jenkins: &str,
    moto: &str,
    pool_extra: &str,
    top_extra: &str,
) -> String {
    let grace = if top_extra.contains("orphan_grace") {
        ""
    } else {
        "orphan_grace = \"60s\""
    };
    let settle = if top_extra.contains("settle_interval") {
        ""
    } else {
        "settle_interval = \"0s\""
    };
    format!(
        r#"fleet_id = "{fleet}"
poll_interval = "1s"
{settle}
{grace}
{top_extra}
[jenkins]
url = "{jenkins}"
user = "fleet"
token_file = "token"
timeout = "2s"

[aws]
region = "us-east-1"
endpoint = "{moto}"
timeout = "10s"

[[pool]]
name = "linux"
labels = ["linux", "x64"]
executors = 4
instance_types = ["c5.xlarge", "m5.xlarge"]
ami = "ami-12345678"
max_instances = 40
idle_timeout = "0s"
boot_deadline = "5m"
{pool_extra}
"#
    )
}

pub fn write_config(dir: &Path, text: &str) -> (PathBuf, Config) {
    std::fs::write(dir.join("token"), "tok-123-secret\n").expect("write token");
    let path = dir.join("fleet.toml");
    std::fs::write(&path, text).expect("write config");
    let cfg = load_str(text, dir).unwrap_or_else(|e| panic!("test config invalid: {e:?}"));
    (path, cfg)
}
