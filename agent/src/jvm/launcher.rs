//! Finding a Java, fetching the controller's `agent.jar` into a cache, and running it as the
//! helper process. The only IO of `jvm` besides the driver glue in `super`.

use std::io::{BufRead, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::transport::net::{read_head, HttpUrl, Net};

/// The oldest Java the helper runs on (what current `agent.jar`s need).
pub const MIN_JAVA: u32 = 17;
/// Largest `agent.jar` accepted from the controller.
const MAX_JAR: usize = 64 << 20;
/// How long `java -version` may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(30);
/// Environment variables the helper must not inherit: the agent's secret and the credentials
/// nectr moves out of its command line (`crate::cli`).
const HIDDEN: &[&str] = &[
    "JENKINS_SECRET",
    "JENKINS_AGENT_SECRET",
    "NECTR_CREDENTIALS",
    "NECTR_PROXY_CREDENTIALS",
];
/// Lines of the helper's standard error kept for the message when it exits.
const STDERR_TAIL: usize = 12;

/// A Java runtime.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Java {
    /// The `java` executable.
    pub path: PathBuf,
    /// Its version string (`17.0.15`).
    pub version: String,
    /// The feature release (17).
    pub major: u32,
}

/// The major version in a `java -version` output (`openjdk version "17.0.15" …`,
/// `java version "1.8.0_392"`).
pub fn parse_version(output: &str) -> Option<(u32, String)> {
    let line = output.lines().find(|l| l.contains(" version \""))?;
    let v = line.split('"').nth(1)?.to_string();
    let mut parts = v.split(['.', '_', '-', '+']);
    let first: u32 = parts.next()?.parse().ok()?;
    let major = if first == 1 {
        parts.next()?.parse().ok()?
    } else {
        first
    };
    Some((major, v))
}

/// Runs `java -version` (bounded in time).
fn probe(path: &Path) -> Result<Java, String> {
    let mut child = Command::new(path)
        .arg("-version")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let mut err = child.stderr.take();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        if let Some(e) = err.as_mut() {
            let _ = e.take(64 << 10).read_to_string(&mut s);
        }
        s
    });
    let deadline = Instant::now() + PROBE_TIMEOUT;
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "{} -version did not finish within {}s",
                    path.display(),
                    PROBE_TIMEOUT.as_secs()
                ));
            }
        }
    }
    let out = reader.join().unwrap_or_default();
    let (major, version) = parse_version(&out).ok_or_else(|| {
        format!(
            "{} -version printed no version: {:?}",
            path.display(),
            out.lines().next().unwrap_or("")
        )
    })?;
    Ok(Java {
        path: path.to_path_buf(),
        version,
        major,
    })
}

/// Checks that `path` is a Java 17 or newer.
pub fn check_java(path: &Path) -> Result<Java, String> {
    let j = probe(path)?;
    if j.major < MIN_JAVA {
        return Err(format!(
            "{} is Java {}; the JVM helper needs Java {MIN_JAVA} or newer",
            path.display(),
            j.version
        ));
    }
    Ok(j)
}

/// Where `auto` looks for a Java: `$JAVA_HOME/bin/java`, each `java` on `PATH`, then the
/// usual install directories.
pub fn candidates(env: &dyn Fn(&str) -> Option<String>) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Some(h) = env("JAVA_HOME").filter(|h| !h.is_empty()) {
        out.push(PathBuf::from(h).join("bin/java"));
    }
    if let Some(p) = env("PATH") {
        out.extend(
            std::env::split_paths(&p)
                .filter(|d| !d.as_os_str().is_empty())
                .map(|d| d.join("java")),
        );
    }
    for dir in ["/usr/lib/jvm", "/usr/local/openjdk", "/opt/java"] {
        let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
            .map(|r| r.flatten().map(|e| e.path().join("bin/java")).collect())
            .unwrap_or_default();
        found.sort();
        found.reverse(); // newest versions sort last by name
        out.extend(found);
    }
    out.push(PathBuf::from("/opt/java/openjdk/bin/java"));
    let mut seen = std::collections::HashSet::new();
    out.retain(|p| seen.insert(p.clone()));
    out
}

/// The first Java 17+ among [`candidates`], or why there is none.
pub fn find_java(env: &dyn Fn(&str) -> Option<String>) -> Result<Java, String> {
    let mut tried = Vec::new();
    for c in candidates(env) {
        if !c.is_file() {
            continue;
        }
        match check_java(&c) {
            Ok(j) => return Ok(j),
            Err(e) => tried.push(e),
        }
    }
    Err(if tried.is_empty() {
        "no java found in JAVA_HOME, on PATH or under /usr/lib/jvm".into()
    } else {
        format!("no Java {MIN_JAVA}+ found ({})", tried.join("; "))
    })
}

/// The cached `agent.jar`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AgentJar {
    /// The file.
    pub path: PathBuf,
    /// Its SHA-1, hex.
    pub sha1: String,
    /// True if it was downloaded now (the controller's differed from the cache).
    pub downloaded: bool,
}

/// What identifies the controller's `agent.jar` without downloading it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Validators {
    last_modified: Option<String>,
    length: Option<String>,
    etag: Option<String>,
}

impl Validators {
    fn useful(&self) -> bool {
        self.last_modified.is_some() || self.etag.is_some()
    }

    fn write(&self, sha1: &str) -> String {
        format!(
            "sha1={sha1}\nlast-modified={}\nlength={}\netag={}\n",
            self.last_modified.as_deref().unwrap_or(""),
            self.length.as_deref().unwrap_or(""),
            self.etag.as_deref().unwrap_or("")
        )
    }

    fn read(text: &str) -> (Option<String>, Validators) {
        let get = |k: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(k)?.strip_prefix('='))
                .filter(|v| !v.is_empty())
                .map(str::to_string)
        };
        (
            get("sha1"),
            Validators {
                last_modified: get("last-modified"),
                length: get("length"),
                etag: get("etag"),
            },
        )
    }
}

fn sha1_hex(bytes: &[u8]) -> String {
    use sha1::Digest;
    sha1::Sha1::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Reads an HTTP/1.1 body: `Content-Length`, chunked, or up to the end of the connection.
async fn read_body(
    s: &mut (impl tokio::io::AsyncRead + Unpin),
    length: Option<usize>,
    chunked: bool,
) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    if chunked {
        let mut r = tokio::io::BufReader::new(s);
        loop {
            let mut line = String::new();
            tokio::io::AsyncBufReadExt::read_line(&mut (&mut r).take(1024), &mut line)
                .await
                .map_err(|e| e.to_string())?;
            let size = usize::from_str_radix(line.trim().split(';').next().unwrap_or(""), 16)
                .map_err(|_| format!("bad chunk size line {line:?}"))?;
            if body.len() + size > MAX_JAR {
                return Err(format!("agent.jar is larger than {MAX_JAR} bytes"));
            }
            let start = body.len();
            body.resize(start + size, 0);
            r.read_exact(&mut body[start..])
                .await
                .map_err(|e| e.to_string())?;
            let mut crlf = [0u8; 2];
            r.read_exact(&mut crlf).await.map_err(|e| e.to_string())?;
            if size == 0 {
                return Ok(body);
            }
        }
    }
    match length {
        Some(n) if n > MAX_JAR => Err(format!("agent.jar is {n} bytes, more than {MAX_JAR}")),
        Some(n) => {
            body.resize(n, 0);
            s.read_exact(&mut body).await.map_err(|e| e.to_string())?;
            Ok(body)
        }
        None => {
            s.take(MAX_JAR as u64 + 1)
                .read_to_end(&mut body)
                .await
                .map_err(|e| e.to_string())?;
            if body.len() > MAX_JAR {
                return Err(format!("agent.jar is larger than {MAX_JAR} bytes"));
            }
            Ok(body)
        }
    }
}

/// The controller's `agent.jar` (`<url>jnlpJars/agent.jar`), from the cache in `dir` when the
/// controller still serves the same file (same `Last-Modified`, length and `ETag`), else
/// downloaded, checked and stored under its SHA-1. A controller upgraded or downgraded since
/// serves another file, which replaces the cached one.
pub async fn agent_jar(net: &Net, url: &str, dir: &Path) -> Result<AgentJar, String> {
    let u = HttpUrl::parse(url).map_err(|e| e.to_string())?;
    let where_ = format!("{url}jnlpJars/agent.jar");
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let meta_path = dir.join("agent.jar.meta");
    let (cached_sha, cached) = std::fs::read_to_string(&meta_path)
        .map(|t| Validators::read(&t))
        .unwrap_or_default();
    let mut s = net
        .open(&u.host, u.port, u.https)
        .await
        .map_err(|e| format!("cannot reach {where_}: {e}"))?;
    let req = format!(
        "GET {}jnlpJars/agent.jar HTTP/1.1\r\nHost: {}:{}\r\nUser-Agent: nectr-agent\r\nConnection: close\r\n\r\n",
        u.path, u.host, u.port
    );
    s.write_all(req.as_bytes())
        .await
        .map_err(|e| format!("{where_}: {e}"))?;
    let head = read_head(&mut s)
        .await
        .map_err(|e| format!("{where_}: {e}"))?;
    let status = head.lines().next().unwrap_or_default().to_string();
    if status.split_whitespace().nth(1) != Some("200") {
        return Err(format!("{where_} answered {status:?}"));
    }
    let header = |name: &str| {
        head.lines().skip(1).find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_string())
        })
    };
    let now = Validators {
        last_modified: header("Last-Modified"),
        length: header("Content-Length"),
        etag: header("ETag"),
    };
    if let Some(sha) = &cached_sha {
        let path = dir.join(format!("agent-{sha}.jar"));
        if now.useful() && now == cached && path.is_file() {
            return Ok(AgentJar {
                path,
                sha1: sha.clone(),
                downloaded: false,
            });
        }
    }
    let chunked = header("Transfer-Encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked"));
    let length = now.length.as_deref().and_then(|l| l.parse().ok());
    let body = read_body(&mut s, length, chunked)
        .await
        .map_err(|e| format!("downloading {where_}: {e}"))?;
    if !body.starts_with(b"PK") {
        return Err(format!("{where_} is not a jar file"));
    }
    let sha1 = sha1_hex(&body);
    let path = dir.join(format!("agent-{sha1}.jar"));
    if !path.is_file() {
        let tmp = dir.join(format!("agent-{sha1}.jar.part"));
        std::fs::write(&tmp, &body)
            .and_then(|_| std::fs::rename(&tmp, &path))
            .map_err(|e| format!("cannot store agent.jar in {}: {e}", dir.display()))?;
    }
    std::fs::write(&meta_path, now.write(&sha1))
        .map_err(|e| format!("cannot write {}: {e}", meta_path.display()))?;
    // Older jars are not needed any more.
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            if name.starts_with("agent-") && name.ends_with(".jar") && e.path() != path {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
    Ok(AgentJar {
        downloaded: cached_sha.as_deref() != Some(sha1.as_str()),
        path,
        sha1,
    })
}

/// How to start the helper.
pub struct Spec<'a> {
    /// The Java.
    pub java: &'a Path,
    /// Extra JVM options (`NECTR_JVM_OPTS`).
    pub java_opts: &'a [String],
    /// The cached agent.jar.
    pub jar: &'a Path,
    /// The helper's working directory (the agent's).
    pub work_dir: &'a Path,
    /// For agent.jar's `-jar-cache`.
    pub jar_cache: &'a Path,
    /// The helper's standard error is appended here.
    pub stderr_log: &'a Path,
}

/// A running helper process.
pub struct Process {
    /// Its pid (also its process group).
    pub pid: u32,
    /// Bytes for its standard input.
    pub stdin: std::sync::mpsc::Sender<Vec<u8>>,
    exited: Arc<AtomicBool>,
}

impl Process {
    /// Kills the helper and everything it started, now.
    pub fn kill(&self) {
        if !self.exited.load(Ordering::SeqCst) {
            kill_group(self.pid);
        }
    }

    /// Lets the helper end by itself (its standard input closes), and kills it and its
    /// children after `grace` if it has not.
    pub fn retire(self, grace: Duration) {
        let Process { pid, stdin, exited } = self;
        drop(stdin);
        let _ = std::thread::Builder::new()
            .name("nectr-jvm-reaper".into())
            .spawn(move || {
                let deadline = Instant::now() + grace;
                while Instant::now() < deadline && !exited.load(Ordering::SeqCst) {
                    std::thread::sleep(Duration::from_millis(50));
                }
                if !exited.load(Ordering::SeqCst) {
                    kill_group(pid);
                }
            });
    }
}

fn kill_group(pid: u32) {
    if let Ok(p) = i32::try_from(pid) {
        if p > 1 {
            // SAFETY: plain syscalls on a pid (and its process group) we started.
            unsafe {
                libc::kill(-p, libc::SIGKILL);
                libc::kill(p, libc::SIGKILL);
            }
        }
    }
}

/// Starts the helper: `java [opts] -jar agent.jar -jar-cache DIR`, standard input and output
/// as the remoting link, in its own process group, killed with nectr (PDEATHSIG), without the
/// agent's secret in its environment. `on_bytes` gets its standard output (false: stop
/// reading); `on_exit` gets a description of its end (status and the last lines of its
/// standard error).
pub fn spawn(
    spec: &Spec<'_>,
    on_bytes: impl FnMut(Vec<u8>) -> bool + Send + 'static,
    on_exit: impl FnOnce(String) + Send + 'static,
) -> Result<Process, String> {
    let mut cmd = Command::new(spec.java);
    cmd.args(spec.java_opts)
        .arg("-jar")
        .arg(spec.jar)
        .arg("-jar-cache")
        .arg(spec.jar_cache)
        .current_dir(spec.work_dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for k in HIDDEN {
        cmd.env_remove(k);
    }
    // SAFETY: async-signal-safe calls only, between fork and exec.
    unsafe {
        use std::os::unix::process::CommandExt;
        cmd.pre_exec(|| {
            libc::setpgid(0, 0);
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    let stderr_log = spec.stderr_log.to_path_buf();
    let (tx, rx) = std::sync::mpsc::channel();
    let exited = Arc::new(AtomicBool::new(false));
    let exited2 = exited.clone();
    // The keeper spawns the process and waits for it: PDEATHSIG fires when the thread that
    // forked exits, so that thread must live as long as the process.
    std::thread::Builder::new()
        .name("nectr-jvm-keeper".into())
        .spawn(move || keeper(cmd, tx, exited2, stderr_log, on_bytes, on_exit))
        .map_err(|e| format!("cannot start a thread for the JVM helper: {e}"))?;
    let (pid, stdin) = rx
        .recv()
        .map_err(|_| "the JVM helper's keeper thread ended early".to_string())??;
    Ok(Process { pid, stdin, exited })
}

type Started = Result<(u32, std::sync::mpsc::Sender<Vec<u8>>), String>;

fn keeper(
    mut cmd: Command,
    started: std::sync::mpsc::Sender<Started>,
    exited: Arc<AtomicBool>,
    stderr_log: PathBuf,
    mut on_bytes: impl FnMut(Vec<u8>) -> bool + Send + 'static,
    on_exit: impl FnOnce(String) + Send + 'static,
) {
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            let _ = started.send(Err(format!("cannot start {:?}: {e}", cmd.get_program())));
            return;
        }
    };
    let pid = child.id();
    let (Some(mut stdin), Some(mut stdout), Some(stderr)) =
        (child.stdin.take(), child.stdout.take(), child.stderr.take())
    else {
        kill_group(pid);
        let _ = child.wait();
        let _ = started.send(Err("the JVM helper has no standard streams".into()));
        return;
    };
    let (in_tx, in_rx) = std::sync::mpsc::channel::<Vec<u8>>();
    let _ = std::thread::Builder::new()
        .name("nectr-jvm-stdin".into())
        .spawn(move || {
            for bytes in in_rx {
                if stdin.write_all(&bytes).and_then(|_| stdin.flush()).is_err() {
                    break;
                }
            }
        });
    let _ = std::thread::Builder::new()
        .name("nectr-jvm-stdout".into())
        .spawn(move || {
            let mut buf = vec![0u8; 64 << 10];
            loop {
                match stdout.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if !on_bytes(buf[..n].to_vec()) {
                            break;
                        }
                    }
                }
            }
        });
    let tail = std::thread::Builder::new()
        .name("nectr-jvm-stderr".into())
        .spawn(move || {
            let mut log = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&stderr_log)
                .ok();
            let mut tail = std::collections::VecDeque::new();
            for line in std::io::BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Some(f) = log.as_mut() {
                    let _ = writeln!(f, "[pid {pid}] {line}");
                }
                if tail.len() == STDERR_TAIL {
                    tail.pop_front();
                }
                tail.push_back(line);
            }
            tail.into_iter().collect::<Vec<_>>()
        });
    let _ = started.send(Ok((pid, in_tx)));
    let status = child.wait();
    exited.store(true, Ordering::SeqCst);
    // Whatever it started (git …) goes with it.
    // SAFETY: plain syscall on the process group we created.
    unsafe {
        libc::kill(-(pid as i32), libc::SIGKILL);
    }
    let tail = tail.ok().and_then(|t| t.join().ok()).unwrap_or_default();
    let status = match status {
        Ok(s) => match (s.code(), std::os::unix::process::ExitStatusExt::signal(&s)) {
            (Some(c), _) => format!("exited with status {c}"),
            (None, Some(sig)) => format!("was killed by signal {sig}"),
            _ => "ended".to_string(),
        },
        Err(e) => format!("could not be waited for ({e})"),
    };
    let last: Vec<&String> = tail
        .iter()
        .filter(|l| !l.trim().is_empty())
        .rev()
        .take(3)
        .collect();
    let detail = if last.is_empty() {
        String::new()
    } else {
        let lines: Vec<&str> = last.iter().rev().map(|s| s.trim()).collect();
        format!(" (last output: {})", lines.join(" | "))
    };
    on_exit(format!("(pid {pid}) {status}{detail}"));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn java_versions_are_read_from_both_version_formats() {
        assert_eq!(
            parse_version("openjdk version \"17.0.15\" 2025-04-15\nOpenJDK Runtime"),
            Some((17, "17.0.15".into()))
        );
        assert_eq!(
            parse_version("java version \"1.8.0_392\"\nJava(TM) SE"),
            Some((8, "1.8.0_392".into()))
        );
        assert_eq!(
            parse_version("openjdk version \"21\" 2023-09-19"),
            Some((21, "21".into()))
        );
        assert_eq!(parse_version("Error: no java"), None);
    }

    #[test]
    fn candidates_start_with_java_home_then_path() {
        let env = |k: &str| match k {
            "JAVA_HOME" => Some("/jh".to_string()),
            "PATH" => Some("/a:/b".to_string()),
            _ => None,
        };
        let c = candidates(&env);
        assert_eq!(
            &c[..3],
            &[
                PathBuf::from("/jh/bin/java"),
                PathBuf::from("/a/java"),
                PathBuf::from("/b/java")
            ]
        );
    }

    #[test]
    fn cache_validators_round_trip() {
        let v = Validators {
            last_modified: Some("Tue, 03 Dec 2024 13:39:00 GMT".into()),
            length: Some("1389404".into()),
            etag: None,
        };
        let (sha, back) = Validators::read(&v.write("abc"));
        assert_eq!((sha.as_deref(), back), (Some("abc"), v));
    }
}
