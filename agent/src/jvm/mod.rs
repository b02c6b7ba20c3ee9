//! The JVM helper: callables nectr does not run natively (plugin code such as git-client's
//! or junit's) go to the controller's own `agent.jar`, started on demand as a remoting peer
//! over its standard input and output, with nectr on the controller's side of that link and
//! relaying between the two channels. The controller sees one agent.
//!
//! * [`link`]: the stdio link (preambles, chunk framing), sans-IO.
//! * [`relay`]: which command goes where and the ids translated on the way, sans-IO.
//! * [`launcher`]: finding a Java 17+, fetching and caching `agent.jar`, running it.
//! * This file: the options, and [`Helper`], the driver's view: it starts the helper when a
//!   call needs it, feeds the relay, answers calls when the helper cannot be had, stops it
//!   after an idle period, and counts native and delegated calls.

pub mod launcher;
pub mod link;
pub mod relay;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use crate::handlers;
use crate::remoting::{capability, command, Answer, Channel, Relayed, UserRequest};
use crate::streams::Streams;
use crate::transport::net::Net;

/// How long an idle helper lives by default.
pub const DEFAULT_IDLE: Duration = Duration::from_secs(300);
/// How often the call counters are logged while calls come in.
const STATS_EVERY: Duration = Duration::from_secs(600);
/// How long a stopping helper may take to exit before it is killed.
const GRACE: Duration = Duration::from_secs(10);
/// What nectr advertises to the helper: what it advertised to the controller (so both read and
/// write the same stream forms), plus PREFETCH: the helper loads plugin classes in batches
/// and keeps the jars it fetched from the controller in its jar cache, so a restarted helper
/// loads them from disk.
const LINK_CAPABILITY: i64 = capability::NECTR | capability::PREFETCH;
/// After a failed start (agent.jar could not be fetched, the JVM did not run), calls are
/// answered with that failure for this long before a start is tried again.
const RETRY_START: Duration = Duration::from_secs(30);
/// Most bytes kept from a helper whose start is not handled yet (its preamble is ~100).
const EARLY_LIMIT: usize = 1 << 20;
/// After `auto` found no Java, how long before looking again.
const REPROBE: Duration = Duration::from_secs(60);

/// Which JVM runs the helper.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JvmMode {
    /// A Java 17+ found on the machine; without one, the calls fail with a clear exception.
    Auto,
    /// No helper: callables nectr does not run natively fail with an exception.
    Off,
    /// This `java`.
    Java(PathBuf),
}

impl JvmMode {
    /// `auto`, `off` or the path of a `java` executable.
    pub fn parse(v: &str) -> Result<JvmMode, String> {
        match v {
            "auto" => Ok(JvmMode::Auto),
            "off" => Ok(JvmMode::Off),
            "" => Err("--jvm needs auto, off or the path of a java executable".into()),
            p => Ok(JvmMode::Java(PathBuf::from(p))),
        }
    }
}

/// The helper's options (parsed by `crate::cli`): `--jvm auto|off|PATH` (`NECTR_JVM`, else the
/// inbound-agent image's `JENKINS_JAVA_BIN`), `--jvm-idle DURATION` (`NECTR_JVM_IDLE`), and
/// the image's `JENKINS_JAVA_OPTS`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JvmOptions {
    /// Which JVM.
    pub mode: JvmMode,
    /// A helper with no work stops after this long.
    pub idle: Duration,
    /// Extra JVM options.
    pub java_opts: Vec<String>,
}

impl Default for JvmOptions {
    fn default() -> Self {
        JvmOptions {
            mode: JvmMode::Auto,
            idle: DEFAULT_IDLE,
            java_opts: Vec::new(),
        }
    }
}

/// The helper's settings and the Java found, shared by the connections of one agent.
pub struct Jvm {
    /// The options.
    pub options: JvmOptions,
    /// The controller's URLs (agent.jar is fetched from the first that serves it).
    urls: Vec<String>,
    work_dir: PathBuf,
    /// `<workDir>/<internalDir>/jvm`: the cached agent.jar and the helper's jar cache.
    dir: PathBuf,
    log: PathBuf,
    net: Net,
    java: Mutex<Option<(Result<launcher::Java, String>, std::time::Instant)>>,
    probed: std::sync::atomic::AtomicBool,
}

impl Jvm {
    /// The helper settings of an agent connecting to `urls` with work directory `work_dir`.
    /// The cached agent.jar, the helper's jar cache and its log go to
    /// `<work_dir>/<internal_dir>/jvm` and `…/logs/jvm-helper.log`; without a work directory
    /// (agent.jar's default, which writes no files) to `$XDG_CACHE_HOME/nectr-agent` (else
    /// `~/.cache/nectr-agent`), where the Java agent keeps its jar cache under `~/.jenkins`.
    pub fn new(
        options: JvmOptions,
        urls: &[String],
        work_dir: Option<&Path>,
        internal_dir: &str,
        net: Net,
    ) -> Arc<Jvm> {
        let env = |k: &str| {
            std::env::var_os(k)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        let (dir, log) = match work_dir {
            Some(w) => {
                let internal = w.join(internal_dir);
                (
                    internal.join("jvm"),
                    internal.join("logs").join("jvm-helper.log"),
                )
            }
            None => {
                let cache = env("XDG_CACHE_HOME")
                    .or_else(|| env("HOME").map(|h| h.join(".cache")))
                    .unwrap_or_else(std::env::temp_dir)
                    .join("nectr-agent");
                (cache.join("jvm"), cache.join("jvm-helper.log"))
            }
        };
        let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"));
        Arc::new(Jvm {
            options,
            urls: urls.to_vec(),
            work_dir: work_dir.map(Path::to_path_buf).unwrap_or(cwd),
            dir,
            log,
            net,
            java: Mutex::new(None),
            probed: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// Looks for the Java now (in the background, once per process) and logs what was found,
    /// so that the agent's log says early whether plugin callables will work. The driver calls
    /// it once connected: connecting stays as fast as without a helper.
    pub fn probe(self: &Arc<Self>) {
        if self.probed.swap(true, std::sync::atomic::Ordering::SeqCst) {
            return;
        }
        if self.options.mode == JvmMode::Off {
            info!(
                "JVM helper off (--jvm off): callables nectr-agent does not run natively will fail"
            );
            return;
        }
        let me = self.clone();
        tokio::task::spawn_blocking(move || {
            let _ = me.java();
        });
    }

    /// The Java to run, found once (again after [`REPROBE`] when none was).
    fn java(&self) -> Result<launcher::Java, String> {
        let mut g = self.java.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((r, at)) = g.as_ref() {
            if r.is_ok() || at.elapsed() < REPROBE {
                return r.clone();
            }
        }
        let r = match &self.options.mode {
            JvmMode::Off => Err("the JVM helper is off (--jvm off)".to_string()),
            JvmMode::Java(p) => launcher::check_java(p),
            JvmMode::Auto => launcher::find_java(&|k| std::env::var(k).ok()),
        }
        .map_err(|e| {
            format!(
                "{e}. Install a Java {}+ (or pass --jvm /path/to/java) for plugin callables; --jvm off runs without the helper",
                launcher::MIN_JAVA
            )
        });
        match &r {
            Ok(j) => info!(
                java = %j.path.display(),
                version = %j.version,
                "JVM helper: plugin callables nectr-agent does not run natively will go to the controller's agent.jar on this Java (started on demand)"
            ),
            Err(e) => warn!(
                "JVM helper unavailable, callables nectr-agent does not run natively (checkout scm, junit …) will fail: {e}"
            ),
        }
        *g = Some((r.clone(), std::time::Instant::now()));
        r
    }
}

/// What the helper's threads and start-up task report.
enum Msg {
    Started(u32, Result<(launcher::Process, String), String>),
    Bytes(u32, Vec<u8>),
    Exited(u32, String),
}

/// Something for [`Helper::handle`] to do.
pub struct Work(WorkKind);

enum WorkKind {
    Msg(Msg),
    Idle,
    Stats,
}

enum State {
    /// No helper process.
    Down,
    /// Being started: commands for it wait here, and what it wrote before its start was
    /// handled.
    Starting {
        queued: Vec<Vec<u8>>,
        early: Vec<u8>,
    },
    /// Running.
    Up {
        process: launcher::Process,
        reader: link::LinkReader,
    },
}

/// The JVM helper of one controller connection, as the driver sees it.
pub struct Helper {
    jvm: Arc<Jvm>,
    relay: relay::Relay,
    state: State,
    tx: mpsc::Sender<Msg>,
    rx: mpsc::Receiver<Msg>,
    last_activity: Instant,
    native: u64,
    delegated: u64,
    classes: HashSet<String>,
    logged: (u64, u64),
    next_stats: Instant,
    /// The last failed start and when.
    start_failed: Option<(String, Instant)>,
}

fn lock_free_io(streams: &Streams) -> impl Fn() -> i32 + '_ {
    move || streams.next_io_id()
}

impl Helper {
    /// The helper of a new connection (none running yet).
    pub fn new(jvm: Arc<Jvm>) -> Helper {
        let (tx, rx) = mpsc::channel(64);
        Helper {
            jvm,
            relay: relay::Relay::new(),
            state: State::Down,
            tx,
            rx,
            last_activity: Instant::now(),
            native: 0,
            delegated: 0,
            classes: HashSet::new(),
            logged: (0, 0),
            next_stats: Instant::now() + STATS_EVERY,
            start_failed: None,
        }
    }

    /// A call from the controller: returned for nectr to run natively, or taken (handed to
    /// the helper, or answered here when no helper can be had).
    pub fn take_call(
        &mut self,
        req: Box<UserRequest>,
        channel: &mut Channel,
    ) -> Option<Box<UserRequest>> {
        let (what, rpc_oid) = match handlers::target(&req) {
            handlers::Target::Unknown(class) => (class, None),
            handlers::Target::Rpc { oid, method, .. }
                if oid >= crate::remoting::HELPER_OID_BASE =>
            {
                (format!("RPC {method}"), Some(oid))
            }
            _ => {
                self.native += 1;
                return Some(req);
            }
        };
        let rpc = rpc_oid.is_some();
        if self.jvm.options.mode == JvmMode::Off && !rpc {
            self.native += 1;
            return Some(req); // handlers::unknown names the class and --jvm
        }
        self.delegated += 1;
        if self.classes.insert(what.clone()) {
            info!(id = req.id, callable = %what, "delegated to the JVM helper (first call of this class on this connection)");
        } else {
            debug!(id = req.id, callable = %what, "delegated to the JVM helper");
        }
        self.last_activity = Instant::now();
        if rpc && !matches!(self.state, State::Up { .. } | State::Starting { .. }) {
            let msg = format!(
                "{what} on object {}: the JVM helper that exported it has stopped (it was restarted or idled out)",
                rpc_oid.unwrap_or(0)
            );
            channel.answer(req.id, 0, &Answer::io_error(msg));
            return None;
        }
        if !rpc {
            if let Err(e) = self.jvm_ready().and_then(|_| self.recent_start_failure()) {
                let msg = format!(
                    "nectr-agent does not run {what} natively, and its JVM helper is not available: {e}"
                );
                channel.answer(req.id, 0, &Answer::io_error(msg));
                return None;
            }
        }
        match self.relay.call(&req, &what) {
            Ok(payload) => self.send_helper(vec![payload]),
            Err(e) => channel.answer(req.id, 0, &Answer::io_error(e)),
        }
        None
    }

    /// The failure of a start tried less than [`RETRY_START`] ago, when none runs now.
    fn recent_start_failure(&self) -> Result<(), String> {
        match (&self.state, &self.start_failed) {
            (State::Down, Some((e, at))) if at.elapsed() < RETRY_START => Err(e.clone()),
            _ => Ok(()),
        }
    }

    /// Whether a helper can be started: the Java is known (no wait when found before).
    fn jvm_ready(&self) -> Result<(), String> {
        if matches!(self.state, State::Up { .. } | State::Starting { .. }) {
            return Ok(());
        }
        // Never wait here (this runs on the connection task): while a probe holds the lock,
        // the start-up task waits for it instead.
        let cached = match self.jvm.java.try_lock() {
            Ok(g) => g.as_ref().map(|(r, at)| (r.clone(), at.elapsed())),
            Err(_) => None,
        };
        match cached {
            Some((Err(e), age)) if age < REPROBE => Err(e),
            _ => Ok(()), // found, or looked for by the start-up task
        }
    }

    /// Sends commands to the helper, starting it if none runs.
    fn send_helper(&mut self, payloads: Vec<Vec<u8>>) {
        if payloads.is_empty() {
            return;
        }
        match &mut self.state {
            State::Up { process, .. } => {
                for p in payloads {
                    let _ = process.stdin.send(link::frame(&p));
                }
            }
            State::Starting { queued, .. } => queued.extend(payloads),
            State::Down => {
                let gen = self.relay.generation() + 1;
                self.relay.start(gen);
                self.state = State::Starting {
                    queued: payloads,
                    early: Vec::new(),
                };
                let jvm = self.jvm.clone();
                let tx = self.tx.clone();
                tokio::spawn(async move {
                    let r = start(&jvm, gen, tx.clone()).await;
                    let _ = tx.send(Msg::Started(gen, r)).await;
                });
            }
        }
    }

    /// A command the channel handed to the relay.
    pub fn relay(&mut self, r: Relayed, channel: &mut Channel, streams: &Streams) {
        self.last_activity = Instant::now();
        let live = matches!(self.state, State::Up { .. } | State::Starting { .. });
        let next_io = lock_free_io(streams);
        let mut up = relay::Up {
            channel,
            next_io: &next_io,
        };
        let out = self.relay.from_controller(r, &mut up, live);
        self.send_helper(out);
    }

    /// The controller cancels request `id`: true if the helper runs it (the cancel is passed on).
    pub fn cancel(&mut self, id: i32, channel: &Channel) -> bool {
        match self.relay.cancel(channel.registry(), id) {
            Some(c) => {
                info!(
                    id,
                    "request cancelled by the controller; passed on to the JVM helper"
                );
                self.send_helper(vec![c]);
                true
            }
            None => false,
        }
    }

    /// The controller acked `size` bytes of its stream `oid`: true if they were the helper's.
    pub fn ack(&mut self, oid: i32, size: i32, channel: &Channel, streams: &Streams) -> bool {
        match self
            .relay
            .ack(channel.registry(), oid, size, streams.unacked(oid))
        {
            Some(a) => {
                self.send_helper(vec![a]);
                true
            }
            None => false,
        }
    }

    /// The controller's stream `oid` died: told to the helper if it writes into it.
    pub fn dead(&mut self, oid: i32, channel: &Channel) {
        if let Some(d) = self.relay.dead(channel.registry(), oid) {
            self.send_helper(vec![d]);
        }
    }

    /// The next thing to handle: output of the helper, its start or end, the idle stop or the
    /// counters' log line.
    pub async fn next(&mut self) -> Work {
        let idle = match self.state {
            State::Up { .. } if self.relay.is_quiet() => {
                Some(self.last_activity + self.jvm.options.idle)
            }
            _ => None,
        };
        let stats = (self.native, self.delegated) != self.logged;
        tokio::select! {
            Some(m) = self.rx.recv() => Work(WorkKind::Msg(m)),
            _ = sleep_until_opt(idle) => Work(WorkKind::Idle),
            _ = sleep_until_opt(stats.then_some(self.next_stats)) => Work(WorkKind::Stats),
        }
    }

    /// Handles what [`Helper::next`] returned.
    pub fn handle(&mut self, work: Work, channel: &mut Channel, streams: &Streams) {
        let next_io = lock_free_io(streams);
        let mut up = relay::Up {
            channel,
            next_io: &next_io,
        };
        match work.0 {
            WorkKind::Stats => {
                self.log_counts("");
                self.next_stats = Instant::now() + STATS_EVERY;
            }
            WorkKind::Idle => {
                if let State::Up { .. } = self.state {
                    if self.relay.is_quiet()
                        && self.last_activity.elapsed() >= self.jvm.options.idle
                    {
                        info!(
                            idle_s = self.jvm.options.idle.as_secs(),
                            "stopping the idle JVM helper; it starts again when a call needs it"
                        );
                        self.stop(&mut up);
                        self.log_counts(" (helper stopped)");
                    }
                }
            }
            WorkKind::Msg(Msg::Started(gen, r)) => {
                if gen != self.relay.generation() || !matches!(self.state, State::Starting { .. }) {
                    if let Ok((p, _)) = r {
                        p.retire(GRACE);
                    }
                    return;
                }
                let State::Starting { queued, early } =
                    std::mem::replace(&mut self.state, State::Down)
                else {
                    return;
                };
                match r {
                    Ok((process, jar)) => {
                        self.start_failed = None;
                        info!(
                            pid = process.pid,
                            generation = gen,
                            agent_jar = %jar,
                            "JVM helper started"
                        );
                        let _ = process
                            .stdin
                            .send(link::hello(up.channel.registry(), LINK_CAPABILITY));
                        for p in queued {
                            let _ = process.stdin.send(link::frame(&p));
                        }
                        self.state = State::Up {
                            process,
                            reader: link::LinkReader::new(),
                        };
                        if !early.is_empty() {
                            self.on_bytes(early, &mut up);
                        }
                    }
                    Err(e) => {
                        warn!("the JVM helper could not be started: {e}");
                        self.start_failed = Some((e.clone(), Instant::now()));
                        self.relay
                            .ended(&mut up, &format!("could not be started: {e}"), true);
                    }
                }
            }
            WorkKind::Msg(Msg::Bytes(gen, bytes)) => {
                if gen != self.relay.generation() {
                    return;
                }
                match &mut self.state {
                    State::Starting { early, .. } if early.len() + bytes.len() > EARLY_LIMIT => {
                        warn!("the JVM helper wrote more than {EARLY_LIMIT} bytes before its start was handled");
                    }
                    State::Starting { early, .. } => early.extend_from_slice(&bytes),
                    State::Up { .. } => self.on_bytes(bytes, &mut up),
                    State::Down => {}
                }
            }
            WorkKind::Msg(Msg::Exited(gen, how)) => {
                if gen != self.relay.generation() {
                    debug!(generation = gen, "an earlier JVM helper {how}");
                    return;
                }
                if matches!(self.state, State::Down) {
                    return;
                }
                warn!(generation = gen, "the JVM helper {how}");
                self.state = State::Down;
                self.relay.ended(
                    &mut up,
                    &format!("died: it {how}; nectr-agent starts a new one for the next call"),
                    true,
                );
            }
        }
    }

    /// Output of the running helper: its commands go through the relay.
    fn on_bytes(&mut self, bytes: Vec<u8>, up: &mut relay::Up<'_>) {
        let State::Up { reader, .. } = &mut self.state else {
            return;
        };
        let events = match reader.push(&bytes) {
            Ok(e) => e,
            Err(e) => {
                warn!("the JVM helper's output is broken ({e}); stopping it");
                self.kill(up, &format!("broke the link ({e})"));
                return;
            }
        };
        self.last_activity = Instant::now();
        let mut back = Vec::new();
        for ev in events {
            match ev {
                link::LinkEvent::Hello { capability } => {
                    debug!(
                        capability = format!("{capability:#x}"),
                        "the JVM helper is up"
                    );
                }
                link::LinkEvent::Command(c) => match self.relay.from_helper(c, up, &mut back) {
                    Ok(relay::Next::Continue) => {}
                    Ok(relay::Next::Closed) => {
                        info!("the JVM helper closed its channel");
                        self.kill(up, "closed its channel");
                        return;
                    }
                    Err(e) => warn!("a command from the JVM helper was dropped: {e}"),
                },
            }
        }
        self.send_helper(back);
    }

    /// Stops the helper in order (no call in flight): its channel is closed, the controller
    /// streams it held are released.
    fn stop(&mut self, up: &mut relay::Up<'_>) {
        if let State::Up { process, .. } = std::mem::replace(&mut self.state, State::Down) {
            let _ = process
                .stdin
                .send(link::frame(&command::close(up.channel.registry())));
            process.retire(GRACE);
        }
        self.relay.ended(up, "was stopped", false);
    }

    /// Ends a misbehaving helper now.
    fn kill(&mut self, up: &mut relay::Up<'_>, why: &str) {
        if let State::Up { process, .. } = std::mem::replace(&mut self.state, State::Down) {
            process.kill();
            process.retire(Duration::ZERO);
        }
        self.relay.ended(up, why, true);
    }

    fn log_counts(&mut self, suffix: &str) {
        info!(
            native = self.native,
            delegated = self.delegated,
            "calls on this connection: {} run natively, {} delegated to the JVM helper{suffix}",
            self.native,
            self.delegated
        );
        self.logged = (self.native, self.delegated);
    }
}

impl Drop for Helper {
    fn drop(&mut self) {
        if let State::Up { process, .. } = std::mem::replace(&mut self.state, State::Down) {
            process.retire(Duration::from_secs(2));
        }
        if self.delegated > 0 {
            self.log_counts(" (connection ended)");
        }
    }
}

async fn sleep_until_opt(t: Option<Instant>) {
    match t {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

/// Starts generation `gen`: the Java, the controller's agent.jar (cached), the process.
async fn start(
    jvm: &Arc<Jvm>,
    gen: u32,
    tx: mpsc::Sender<Msg>,
) -> Result<(launcher::Process, String), String> {
    let j = jvm.clone();
    let java = tokio::task::spawn_blocking(move || j.java())
        .await
        .map_err(|e| e.to_string())??;
    if jvm.urls.is_empty() {
        return Err(
            "the JVM helper fetches the controller's agent.jar from its URL: give -url too (with -direct there is none)"
                .into(),
        );
    }
    let mut fetched = Err(String::new());
    for url in &jvm.urls {
        fetched = launcher::agent_jar(&jvm.net, url, &jvm.dir).await;
        if fetched.is_ok() {
            break;
        }
    }
    let jar = fetched?;
    if jar.downloaded {
        info!(sha1 = %jar.sha1, "downloaded the controller's agent.jar for the JVM helper");
    }
    let jvm2 = jvm.clone();
    tokio::task::spawn_blocking(move || {
        let jar_cache = jvm2.dir.join("jarCache");
        let spec = launcher::Spec {
            java: &java.path,
            java_opts: &jvm2.options.java_opts,
            jar: &jar.path,
            work_dir: &jvm2.work_dir,
            jar_cache: &jar_cache,
            stderr_log: &jvm2.log,
        };
        let bytes_tx = tx.clone();
        launcher::spawn(
            &spec,
            move |b| bytes_tx.blocking_send(Msg::Bytes(gen, b)).is_ok(),
            move |how| {
                let _ = tx.blocking_send(Msg::Exited(gen, how));
            },
        )
        .map(|p| (p, jar.sha1.clone()))
    })
    .await
    .map_err(|e| e.to_string())?
}
