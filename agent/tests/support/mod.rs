//! The JDK interop peer (`tests/java`): compiled once per test binary with `javac`, run with
//! `java`. A missing JDK is a test failure with instructions, never a skip.

#![allow(dead_code)]

pub mod jenkins;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("agent/ has a parent")
        .to_path_buf()
}

/// A fresh scratch directory under the target dir (tests never write outside the repo).
pub fn scratch(name: &str) -> PathBuf {
    let base = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target"));
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = base
        .join("test-scratch")
        .join(format!("{name}-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create scratch dir");
    dir
}

fn tool(name: &str) -> PathBuf {
    if let Some(home) = std::env::var_os("JAVA_HOME") {
        let p = PathBuf::from(home).join("bin").join(name);
        if p.exists() {
            return p;
        }
    }
    PathBuf::from(name)
}

/// Compiles the peer (once per process) and returns its class directory.
pub fn java_peer() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let out = scratch("java-peer-classes");
        let mut sources = Vec::new();
        collect_java(&repo_root().join("tests/java/src"), &mut sources);
        assert!(!sources.is_empty(), "no Java sources under tests/java/src");
        let status = Command::new(tool("javac"))
            .args(["--release", "17", "-nowarn", "-d"])
            .arg(&out)
            .args(&sources)
            .status()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot run javac ({e}). The interop tests need JDK 17: run scripts/test, \
                     which installs it, or `apt-get install openjdk-17-jdk-headless`"
                )
            });
        assert!(status.success(), "javac failed on tests/java/src");
        out
    })
}

fn collect_java(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir)
        .expect("read tests/java/src")
        .flatten()
    {
        let p = e.path();
        if p.is_dir() {
            collect_java(&p, out);
        } else if p.extension().is_some_and(|x| x == "java") {
            out.push(p);
        }
    }
}

/// Runs `nectr.peer.Main` with `args`; panics with its stderr if it fails.
pub fn run_peer(args: &[&str]) -> String {
    let out = Command::new(tool("java"))
        .args([
            "--add-opens",
            "java.base/java.lang=ALL-UNNAMED",
            "--add-opens",
            "java.base/java.util=ALL-UNNAMED",
            "--add-opens",
            "java.base/java.io=ALL-UNNAMED",
            "-cp",
        ])
        .arg(java_peer())
        .arg("nectr.peer.Main")
        .args(args)
        .output()
        .expect("run java (JDK 17 required: run scripts/test)");
    assert!(
        out.status.success(),
        "java peer {:?} failed: {}",
        args,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Files in `dir` with extension `ext`, sorted by name.
pub fn files_with(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("read dir")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == ext))
        .collect();
    v.sort();
    v
}

/// First difference between two JSON values, as a path and both sides.
pub fn json_diff(a: &serde_json::Value, b: &serde_json::Value, path: &str) -> Option<String> {
    use serde_json::Value as J;
    match (a, b) {
        (J::Object(x), J::Object(y)) => {
            let only_in_y = y.keys().filter(|k| !x.contains_key(*k));
            for k in x.keys().chain(only_in_y) {
                match (x.get(k), y.get(k)) {
                    (Some(p), Some(q)) => {
                        if let Some(d) = json_diff(p, q, &format!("{path}.{k}")) {
                            return Some(d);
                        }
                    }
                    (p, q) => return Some(format!("{path}.{k}: {p:?} vs {q:?}")),
                }
            }
            None
        }
        (J::Array(x), J::Array(y)) => {
            for (i, (p, q)) in x.iter().zip(y).enumerate() {
                if let Some(d) = json_diff(p, q, &format!("{path}[{i}]")) {
                    return Some(d);
                }
            }
            (x.len() != y.len()).then(|| format!("{path}: length {} vs {}", x.len(), y.len()))
        }
        _ => (a != b).then(|| {
            let s = |v: &J| {
                let t = v.to_string();
                if t.chars().count() > 200 {
                    format!("{}…", t.chars().take(200).collect::<String>())
                } else {
                    t
                }
            };
            format!("{path}: {} vs {}", s(a), s(b))
        }),
    }
}

/// Parses JSON of any nesting depth (the corpus has 500-deep object chains; serde_json stops
/// at 128 by default).
pub fn parse_json(bytes: &[u8]) -> Result<serde_json::Value, serde_json::Error> {
    use serde::Deserialize;
    let mut de = serde_json::Deserializer::from_slice(bytes);
    de.disable_recursion_limit();
    let v = serde_json::Value::deserialize(&mut de)?;
    de.end()?;
    Ok(v)
}

/// Runs `f` on a thread with a large stack: deep graphs recurse in the JSON helpers.
pub fn with_big_stack<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::Builder::new()
        .stack_size(256 << 20)
        .spawn(f)
        .expect("spawn test thread")
        .join()
        .unwrap_or_else(|e| std::panic::resume_unwind(e))
}

/// The entry names of a zip archive (read with `unzip -Z1`, the system's unzip).
pub fn unzip_names(zip: &[u8]) -> Vec<String> {
    let f = scratch("unzip").join("a.zip");
    std::fs::write(&f, zip).expect("write zip");
    let out = std::process::Command::new("unzip")
        .arg("-Z1")
        .arg(&f)
        .output()
        .expect("unzip is needed (apt-get install unzip; scripts/test installs it)");
    assert!(
        out.status.success(),
        "unzip: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}
