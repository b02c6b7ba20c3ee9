//! moto_server on 127.0.0.1, one process per test (killed on drop). A missing moto fails the
//! test with a clear message; it never skips.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Moto {
    pub url: String,
    child: Child,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

pub fn moto_server_path() -> PathBuf {
    if let Some(p) = std::env::var_os("NECTR_MOTO_SERVER") {
        return PathBuf::from(p);
    }
    let script = repo_root().join("scripts/fleet-test-peers");
    let out = Command::new(&script)
        .stderr(Stdio::inherit())
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "moto is required for this test: running {} failed: {e}",
                script.display()
            )
        });
    assert!(
        out.status.success(),
        "moto is required for this test and could not be installed by {} (exit {:?}); install python3 and python3-venv, or set NECTR_MOTO_SERVER to a moto_server binary",
        script.display(),
        out.status.code()
    );
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

impl Moto {
    pub fn start() -> Moto {
        let bin = moto_server_path();
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let child = Command::new(&bin)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "moto is required for this test: cannot start {}: {e}",
                    bin.display()
                )
            });
        let url = format!("http://127.0.0.1:{port}/");
        let m = Moto {
            url: url.clone(),
            child,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if ureq::post(&format!("{url}moto-api/reset")).call().is_ok() {
                return m;
            }
            assert!(
                Instant::now() < deadline,
                "moto_server did not answer on {url} within 60 s"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}
