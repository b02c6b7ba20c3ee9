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
        Self::start_with_env(&[])
    }

    /// With extra environment, e.g. `MOTO_RECORDER_FILEPATH` for [`Moto::recording`].
    pub fn start_with_env(env: &[(&str, &str)]) -> Moto {
        let bin = moto_server_path();
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let child = Command::new(&bin)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .envs(env.iter().copied())
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

/// One request moto's recorder saw: the access key it was signed with and the API action
/// (`Action=` of a query-protocol body, or the `X-Amz-Target` operation).
#[derive(Clone, Debug)]
pub struct Recorded {
    pub access_key: String,
    pub action: String,
}

impl Moto {
    /// Start recording requests (moto's recorder; start moto with
    /// `MOTO_RECORDER_FILEPATH` pointing into a temporary directory).
    pub fn start_recording(&self) {
        ureq::post(&format!("{}moto-api/recorder/start-recording", self.url))
            .call()
            .expect("start recording");
    }

    /// The requests recorded so far.
    pub fn recording(&self) -> Vec<Recorded> {
        use base64::Engine;
        let text = ureq::get(&format!("{}moto-api/recorder/download-recording", self.url))
            .call()
            .expect("download recording")
            .into_string()
            .expect("recording text");
        text.lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).expect("recording line");
                let header = |name: &str| {
                    v["headers"]
                        .as_object()
                        .and_then(|h| {
                            h.iter()
                                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                                .and_then(|(_, v)| v.as_str())
                        })
                        .unwrap_or("")
                        .to_string()
                };
                let auth = header("Authorization");
                let access_key = auth
                    .split("Credential=")
                    .nth(1)
                    .and_then(|c| c.split('/').next())
                    .unwrap_or("")
                    .to_string();
                let body = v["body"].as_str().unwrap_or("");
                let body = if v["body_encoded"].as_bool() == Some(true) {
                    String::from_utf8_lossy(
                        &base64::engine::general_purpose::STANDARD
                            .decode(body)
                            .unwrap_or_default(),
                    )
                    .into_owned()
                } else {
                    body.to_string()
                };
                let action = body
                    .split('&')
                    .find_map(|kv| kv.strip_prefix("Action="))
                    .map(str::to_string)
                    .unwrap_or_else(|| {
                        let t = header("X-Amz-Target");
                        t.rsplit('.').next().unwrap_or("").to_string()
                    });
                let action = if action.is_empty() {
                    format!(
                        "{} {}",
                        v["method"].as_str().unwrap_or(""),
                        v["url"].as_str().unwrap_or("")
                    )
                } else {
                    action
                };
                Recorded { access_key, action }
            })
            .collect()
    }
}
