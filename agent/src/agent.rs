//! The running agent: connect, serve the channel, reconnect with capped exponential backoff
//! and jitter, stop in order on shutdown.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;
use tracing::{debug, error, info, warn};

use crate::cli::AgentOptions;
use crate::cli::{Jnlp4Route, TransportChoice};
use crate::handlers::{self, Host, Protocol};
use crate::javaser::Registry;
use crate::remoting::{capability, command, Answer, Channel, Event, Reply};
use crate::streams::{Streams, Written};
use crate::transport::jnlp4::{self, Jnlp4Connection};
use crate::transport::net::{Net, ProxyConfig};
use crate::transport::ws::{self, Incoming, WsConnection};
use crate::transport::ConnectError;

/// An open connection of either transport.
enum Connection {
    Ws(Box<WsConnection>),
    Jnlp4(Box<Jnlp4Connection>),
}

impl Connection {
    fn cookie(&self) -> Option<String> {
        match self {
            Connection::Ws(c) => c.cookie.clone(),
            Connection::Jnlp4(c) => c.cookie.clone(),
        }
    }

    fn peer_capability(&self) -> Option<i64> {
        match self {
            Connection::Ws(c) => c.peer_capability,
            Connection::Jnlp4(c) => c.peer_capability,
        }
    }

    fn protocol(&self) -> Protocol {
        match self {
            Connection::Ws(_) => Protocol::WebSocket,
            Connection::Jnlp4(_) => Protocol::Jnlp4,
        }
    }

    async fn recv(&mut self) -> Incoming {
        match self {
            Connection::Ws(c) => c.recv().await,
            Connection::Jnlp4(c) => match c.recv().await {
                Ok(b) => Incoming::Data(b),
                Err(e) => Incoming::Closed(e),
            },
        }
    }

    async fn send(&mut self, frames: Vec<Vec<u8>>) -> Result<(), String> {
        match self {
            Connection::Ws(c) => c.send(frames).await,
            Connection::Jnlp4(c) => c.send(frames).await,
        }
    }

    async fn close(&mut self) {
        match self {
            Connection::Ws(c) => c.close().await,
            Connection::Jnlp4(c) => c.close().await,
        }
    }
}

async fn connect(
    opts: &AgentOptions,
    net: &Net,
    cookie: Option<&str>,
) -> Result<Connection, ConnectError> {
    let (d, https) = match &opts.transport {
        TransportChoice::WebSocket { headers } => {
            let url = opts.urls.first().map(String::as_str).unwrap_or_default();
            return ws::connect(
                net,
                url,
                &opts.name,
                &opts.secret,
                capability::NECTR,
                cookie,
                headers,
            )
            .await
            .map(|c| Connection::Ws(Box::new(c)));
        }
        TransportChoice::Jnlp4(Jnlp4Route::Direct {
            host,
            port,
            identity,
        }) => (
            jnlp4::Discovery {
                host: host.clone(),
                port: *port,
                identity: identity.clone(),
                protocols: Vec::new(),
            },
            false,
        ),
        TransportChoice::Jnlp4(Jnlp4Route::Discover { tunnel }) => {
            // Each -url in turn, as agent.jar does; the first that answers wins.
            let mut errors = Vec::new();
            let mut found = None;
            for url in &opts.urls {
                match jnlp4::discover(net, url, &opts.name, opts.credentials.as_ref()).await {
                    Ok(d) => {
                        found = Some((d, url.starts_with("https://")));
                        break;
                    }
                    Err(e) if opts.urls.len() == 1 => return Err(e),
                    Err(e) => errors.push(format!("{url}: {e}")),
                }
            }
            let Some((mut d, https)) = found else {
                return Err(ConnectError::Failed(format!(
                    "no controller URL answered: {}",
                    errors.join("; ")
                )));
            };
            if let Some(t) = tunnel {
                if let Some(h) = &t.host {
                    d.host = h.clone();
                }
                if let Some(p) = t.port {
                    d.port = p;
                }
            }
            (d, https)
        }
    };
    jnlp4::connect(
        net,
        https,
        &d,
        &opts.name,
        &opts.secret,
        capability::NECTR,
        cookie,
    )
    .await
    .map(|c| Connection::Jnlp4(Box::new(c)))
}

/// Where the agent connects, for the first log line.
fn describe(opts: &AgentOptions) -> String {
    match &opts.transport {
        TransportChoice::WebSocket { .. } => {
            format!("{}wsagents/ (WebSocket)", opts.urls.join(", "))
        }
        TransportChoice::Jnlp4(Jnlp4Route::Direct { host, port, .. }) => {
            format!("{host}:{port} (JNLP4-connect, -direct)")
        }
        TransportChoice::Jnlp4(Jnlp4Route::Discover { tunnel }) => format!(
            "{} (JNLP4-connect{})",
            opts.urls.join(", "),
            match tunnel {
                Some(t) => format!(
                    ", through the tunnel {}:{}",
                    t.host.as_deref().unwrap_or("<discovered host>"),
                    t.port
                        .map(|p| p.to_string())
                        .as_deref()
                        .unwrap_or("<discovered port>")
                ),
                None => String::new(),
            }
        ),
    }
}

/// How a served connection ended.
enum Ended {
    /// Shutdown was requested; the channel was closed in order.
    Shutdown,
    /// The connection ended for this reason; reconnect unless told not to.
    Lost(String),
}

/// Runs the agent until `shutdown` completes or, with `-noReconnect`, the connection ends.
pub async fn run(
    opts: AgentOptions,
    host: Arc<dyn Host>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), String> {
    tokio::pin!(shutdown);
    let registry = Arc::new(handlers::classes::registry());
    let env = |k: &str| std::env::var(k).ok();
    let proxy = ProxyConfig::from_env(&env).with_credentials(opts.proxy_credentials.as_ref());
    for (var, parsed) in [("https_proxy", &proxy.https), ("http_proxy", &proxy.http)] {
        let set = env(var)
            .or_else(|| env(&var.to_uppercase()))
            .filter(|v| !v.is_empty());
        // (The value is not shown: it may carry a password.)
        if let (Some(_), None) = (set, parsed) {
            warn!("{var} is not a proxy URL (http://[user:password@]host[:port]): not using it");
        }
    }
    let mut net = Net::new(proxy, opts.extra_ca_pem.as_deref())?;
    net.timeout = opts.connect_timeout;
    net.keep_alive = opts.keep_alive;
    // The JVM helper for plugin callables (crate::jvm), shared by the connections.
    let jvm = crate::jvm::Jvm::new(
        opts.jvm.clone(),
        &opts.urls,
        opts.work_dir.as_deref(),
        &opts.internal_dir,
        net.clone(),
    );
    let mut cookie: Option<String> = None;
    let mut backoff = Backoff::new();
    // Since when the agent has been trying to (re)connect, for -noReconnectAfter.
    let mut failing_since = tokio::time::Instant::now();
    info!(node = %opts.name, "connecting to {}", describe(&opts));
    let mut attempts = 0u64;
    loop {
        attempts += 1;
        debug!(attempt = attempts, "connecting");
        let attempt = tokio::select! {
            r = connect(&opts, &net, cookie.as_deref()) => r,
            _ = &mut shutdown => return Ok(()),
        };
        let conn = match attempt {
            Ok(c) => c,
            Err(ConnectError::Refused(m)) if !opts.retry_refused => {
                return Err(format!("the controller refused node {:?}: {m}", opts.name))
            }
            Err(e) => {
                if opts.no_reconnect {
                    return Err(format!("{e} (-noReconnect: not retrying)"));
                }
                if let Some(limit) = opts.no_reconnect_after {
                    if failing_since.elapsed() >= limit {
                        return Err(format!(
                            "{e}; giving up after {} without a connection (-noReconnectAfter)",
                            crate::transport::show_duration(limit)
                        ));
                    }
                }
                let wait = backoff.next();
                warn!("{e}; retrying in {:.1}s", wait.as_secs_f64());
                tokio::select! {
                    _ = tokio::time::sleep(wait) => continue,
                    _ = &mut shutdown => return Ok(()),
                }
            }
        };
        info!(
            node = %opts.name,
            protocol = conn.protocol().name(),
            controller_capability = ?conn.peer_capability().map(|c| format!("{c:#x}")),
            "connected"
        );
        jvm.probe(); // once: says whether plugin callables will find a Java
        backoff.reset();
        if let Some(c) = conn.cookie() {
            cookie = Some(c);
        }
        let limits = Limits {
            first_command: opts.connect_timeout,
            idle: opts.idle_timeout,
        };
        match serve(conn, &registry, &host, limits, &jvm, &mut shutdown).await {
            Ended::Shutdown => return Ok(()),
            Ended::Lost(reason) => {
                if opts.no_reconnect {
                    return Err(format!(
                        "connection lost: {reason} (-noReconnect: not reconnecting)"
                    ));
                }
                failing_since = tokio::time::Instant::now();
                let wait = backoff.next();
                warn!(
                    "connection lost: {reason}; reconnecting in {:.1}s",
                    wait.as_secs_f64()
                );
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = &mut shutdown => return Ok(()),
                }
            }
        }
    }
}

/// How long a connection may stay silent.
#[derive(Clone, Copy)]
struct Limits {
    /// From connecting to the controller's first command (a real controller sends
    /// `SlaveVersion` at once).
    first_command: Duration,
    /// Between any two things received after that.
    idle: Duration,
}

async fn serve(
    mut conn: Connection,
    registry: &Arc<Registry>,
    host: &Arc<dyn Host>,
    limits: Limits,
    jvm: &Arc<crate::jvm::Jvm>,
    shutdown: &mut std::pin::Pin<&mut impl Future<Output = ()>>,
) -> Ended {
    // Callables nectr does not run natively go to the JVM helper (crate::jvm).
    let mut helper = crate::jvm::Helper::new(jvm.clone());
    let started = tokio::time::Instant::now();
    let mut last_heard = started;
    let mut commanded = false;
    let mut channel = Channel::with_registry(registry.as_ref().clone());
    // Bounded: a handler streaming a large file waits here instead of filling memory.
    let (tx, mut rx) = mpsc::channel::<Outgoing>(64);
    // The controller advertised PIPE_THROTTLING (real ones always do; unknown counts as
    // yes): its writers wait for the agent's acks, and it acks the agent's chunks, so the
    // agent's writers keep a window (remoting-protocol.md §5.6).
    let ack_chunks = conn
        .peer_capability()
        .is_none_or(|c| c & capability::PIPE_THROTTLING != 0);
    let streams = Arc::new(Streams::new(ack_chunks));
    // Objects handlers exported (a launched process), by oid; oids come from `streams`.
    let objects: Objects = Arc::new(Mutex::new(HashMap::new()));
    // Reads in flight on controller InputStreams: request id → the waiting handler.
    let mut reads: HashMap<i32, std::sync::mpsc::SyncSender<Reply>> = HashMap::new();
    // Calls in progress, with the flag a `Request$Cancel` raises for the handler to see.
    let mut running: HashMap<i32, Arc<AtomicBool>> = HashMap::new();
    let protocol = conn.protocol();
    // A developer's record of the channel's bytes (NECTR_CAPTURE_DIR), for `debug javaser`.
    let mut capture = Capture::from_env();
    // Pings to the controller, once it asked for them (`ChannelPinger$SetUpRemotePing`).
    let mut pinger: Option<Pinger> = None;
    loop {
        let next_ping = pinger.as_ref().map(|p| p.next);
        let silent_until = if commanded {
            last_heard + limits.idle
        } else {
            started + limits.first_command
        };
        let ended = tokio::select! {
            incoming = conn.recv() => match incoming {
                Incoming::Data(bytes) => {
                    last_heard = tokio::time::Instant::now();
                    commanded = true;
                    if let Some(c) = capture.as_mut() {
                        c.record(true, &bytes);
                    }
                    let mut ended = None;
                    for event in channel.receive(&bytes) {
                        match event {
                            Event::Call(req) => {
                                debug!(id = req.id, callable = %req.callable_class, "call");
                                if let Some(p) = Pinger::requested(&req) {
                                    info!(
                                        interval_s = p.interval.as_secs(),
                                        timeout_s = p.timeout.as_secs(),
                                        "pinging the controller as it asked"
                                    );
                                    pinger = Some(p);
                                }
                                let Some(req) = helper.take_call(req, &mut channel) else { continue };
                                let kind = handlers::target(&req).kind();
                                if kind == handlers::Kind::Instant {
                                    let remote = handlers::NoStreams(registry.clone());
                                    let target = handlers::target(&req);
                                    let cx = handlers::Ctx::new(registry, host.as_ref(), protocol, &remote, req.id);
                                    let answer = handlers::dispatch(&target, &cx);
                                    channel.answer(req.id, 0, &answer);
                                    continue;
                                }
                                let cancelled = Arc::new(AtomicBool::new(false));
                                running.insert(req.id, cancelled.clone());
                                let remote = CallRemote {
                                    cancelled,
                                    tx: tx.clone(),
                                    registry: registry.clone(),
                                    streams: streams.clone(),
                                    objects: objects.clone(),
                                    last_io_id: AtomicI32::new(0),
                                    released: Mutex::new(Vec::new()),
                                };
                                let host = host.clone();
                                tokio::task::spawn_blocking(move || {
                                    let target = handlers::target(&req);
                                    let cx = handlers::Ctx::new(&remote.registry, host.as_ref(), protocol, &remote, req.id);
                                    let answer = handlers::dispatch(&target, &cx);
                                    let last_io_id = remote.last_io_id.load(Ordering::SeqCst);
                                    let _ = remote.tx.blocking_send(Outgoing::Answer { id: req.id, last_io_id, answer });
                                });
                            }
                            Event::Cancel(id) => {
                                // As a Java agent interrupts the call's thread: the handler
                                // sees the flag, stops (a process's join ends the process
                                // tree first) and its answer, an exception, goes out then.
                                if let Some(flag) = running.get(&id) {
                                    flag.store(true, Ordering::SeqCst);
                                    info!(id, "request cancelled by the controller");
                                } else {
                                    helper.cancel(id, &channel);
                                }
                            }
                            Event::Response { id, reply } => {
                                if let Some(tx) = reads.remove(&id) {
                                    let _ = tx.send(reply);
                                } else if let Some(p) = pinger.as_mut() {
                                    if p.outstanding.is_some_and(|(pid, _)| pid == id) {
                                        p.outstanding = None;
                                        if let Reply::Failed(e) = reply {
                                            warn!(id, "the controller answered a ping with an exception: {e}");
                                        }
                                    }
                                }
                            }
                            Event::StreamData { oid, data } => {
                                let size = data.len() as i32;
                                match streams.write(oid, &data) {
                                    Written::Applied => {
                                        if ack_chunks {
                                            channel.ack(oid, size);
                                        }
                                    }
                                    Written::Queued => {}
                                    Written::Dropped { notify, reason } => {
                                        warn!(oid, "dropped {size} bytes: {reason}");
                                        if notify {
                                            channel.send_command(&command::stream_dead(channel.registry(), oid));
                                        }
                                        if ack_chunks {
                                            channel.ack(oid, size);
                                        }
                                    }
                                }
                            }
                            Event::StreamFlush(oid) => {
                                if let Err(e) = streams.flush(oid) {
                                    warn!(oid, "flushing exported stream: {e}");
                                }
                            }
                            Event::InputRead { id, oid, len } => {
                                let streams = streams.clone();
                                let tx = tx.clone();
                                tokio::task::spawn_blocking(move || {
                                    let result = streams.read_export(oid, len);
                                    let _ = tx.blocking_send(Outgoing::ReadAnswer { id, result });
                                });
                            }
                            Event::InputClose(oid) => streams.unexport(oid),
                            Event::StreamEnd { oid, close, error } => {
                                if lock(&objects).remove(&oid).is_some() {
                                    debug!(oid, "the controller released an exported object");
                                    continue;
                                }
                                if let Some(e) = &error {
                                    warn!(oid, "the controller closed a stream with an error: {e}");
                                }
                                if let Err(e) = streams.end(oid, close, error) {
                                    warn!(oid, "closing exported stream: {e}");
                                }
                            }
                            Event::StreamAck { oid, size } => {
                                if !helper.ack(oid, size, &channel, &streams) {
                                    streams.ack(oid, size)
                                }
                            }
                            Event::Relay(r) => helper.relay(*r, &mut channel, &streams),
                            Event::StreamDead(oid) => {
                                helper.dead(oid, &channel);
                                info!(oid, "the controller's stream died; its writer stops");
                                streams.dead(oid);
                            }
                            Event::Closed => ended = Some(Ended::Lost("the controller closed the channel".into())),
                            Event::Rejected { id, reason } => warn!(id, "{reason}"),
                            Event::Ignored(what) => debug!("ignored {what}"),
                            Event::Fatal(reason) => {
                                error!("{reason}");
                                ended = Some(Ended::Lost(reason));
                            }
                        }
                    }
                    ended
                }
                Incoming::Nothing => {
                    last_heard = tokio::time::Instant::now();
                    None
                }
                Incoming::Closed(reason) => Some(Ended::Lost(reason)),
            },
            _ = tokio::time::sleep_until(silent_until) => Some(Ended::Lost(if commanded {
                format!(
                    "nothing from the controller for {} (--idle-timeout)",
                    crate::transport::show_duration(limits.idle)
                )
            } else {
                format!(
                    "the controller sent no command within {} of connecting (--connect-timeout)",
                    crate::transport::show_duration(limits.first_command)
                )
            })),
            Some(out) = rx.recv() => {
                match out {
                    Outgoing::Answer { id, last_io_id, answer } => {
                        if running.remove(&id).is_some() {
                            channel.answer(id, last_io_id, &answer);
                        }
                    }
                    Outgoing::Command(c) => channel.send_command(&c),
                    Outgoing::ReadAnswer { id, result } => {
                        channel.answer_read(id, result.as_ref().map(|o| o.as_deref()).map_err(|e| e.as_str()));
                    }
                    Outgoing::Read { oid, len, reply } => {
                        let id = channel.read_input(oid, len);
                        reads.insert(id, reply);
                    }
                }
                None
            }
            work = helper.next() => {
                helper.handle(work, &mut channel, &streams);
                None
            }
            _ = sleep_until_opt(next_ping) => {
                match pinger.as_mut().map(|p| p.tick(&mut channel)) {
                    Some(Err(reason)) => Some(Ended::Lost(reason)),
                    _ => None,
                }
            }
            _ = shutdown.as_mut() => {
                info!("shutting down: closing the channel");
                channel.close();
                Some(Ended::Shutdown)
            }
        };
        let frames = channel.take_frames();
        if let Some(c) = capture.as_mut() {
            for f in &frames {
                c.record(false, f);
            }
        }
        if !frames.is_empty() {
            // A controller that stopped reading must not hold the agent here for ever.
            let stall = pinger.as_ref().map_or(limits.idle, |p| p.timeout);
            let sent = match tokio::time::timeout(stall, conn.send(frames)).await {
                Ok(r) => r,
                Err(_) => Err(format!(
                    "the controller took no data for {}",
                    crate::transport::show_duration(stall)
                )),
            };
            if let Err(e) = sent {
                streams.close();
                return Ended::Lost(e);
            }
        }
        if let Some(e) = ended {
            streams.close();
            conn.close().await;
            return e;
        }
    }
}

/// Appends every chunk frame received from (`in.bin`) and sent to (`out.bin`) the controller
/// to files in `$NECTR_CAPTURE_DIR`, one pair per connection: `nectr-agent debug javaser`
/// reads them. A tool for developers writing the simulator from what real controllers send;
/// the frames carry whatever the build carries, so keep the directory private.
struct Capture {
    inbound: std::fs::File,
    outbound: std::fs::File,
}

impl Capture {
    fn from_env() -> Option<Capture> {
        let dir = std::path::PathBuf::from(std::env::var_os("NECTR_CAPTURE_DIR")?);
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or(0);
        let open = |side: &str| {
            std::fs::create_dir_all(&dir)?;
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(dir.join(format!("{stamp}-{side}.bin")))
        };
        match (open("in"), open("out")) {
            (Ok(inbound), Ok(outbound)) => {
                info!(dir = %dir.display(), "capturing the channel's frames");
                Some(Capture { inbound, outbound })
            }
            (Err(e), _) | (_, Err(e)) => {
                warn!("NECTR_CAPTURE_DIR {}: {e}; not capturing", dir.display());
                None
            }
        }
    }

    fn record(&mut self, inbound: bool, bytes: &[u8]) {
        use std::io::Write;
        let f = if inbound {
            &mut self.inbound
        } else {
            &mut self.outbound
        };
        let _ = f.write_all(bytes);
    }
}

/// What handler threads hand to the connection, in order.
enum Outgoing {
    /// The answer to a call, after every stream command it sent.
    Answer {
        id: i32,
        last_io_id: i32,
        answer: Answer,
    },
    /// A stream command (`ProxyOutputStream$Chunk`, `$EOF`, `$Ack` …).
    Command(Vec<u8>),
    /// The answer to the controller's read of an agent InputStream.
    ReadAnswer {
        id: i32,
        result: Result<Option<Vec<u8>>, String>,
    },
    /// Read up to `len` bytes from the controller's InputStream `oid`; the reply goes back to
    /// the handler waiting on `reply`.
    Read {
        oid: i32,
        len: i32,
        reply: std::sync::mpsc::SyncSender<Reply>,
    },
}

/// The objects handlers exported on one connection.
type Objects = Arc<Mutex<HashMap<i32, Arc<dyn handlers::Exported>>>>;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A call's view of the connection (see [`handlers::Remote`]).
struct CallRemote {
    cancelled: Arc<AtomicBool>,
    tx: mpsc::Sender<Outgoing>,
    registry: Arc<Registry>,
    streams: Arc<Streams>,
    objects: Objects,
    last_io_id: AtomicI32,
    released: Mutex<Vec<i32>>,
}

impl handlers::Remote for CallRemote {
    fn registry(&self) -> &Registry {
        &self.registry
    }

    fn next_io_id(&self) -> i32 {
        let id = self.streams.next_io_id();
        self.last_io_id.fetch_max(id, Ordering::SeqCst);
        id
    }

    fn note_io(&self, io_id: i32) {
        self.last_io_id.fetch_max(io_id, Ordering::SeqCst);
    }

    fn export_input(&self, source: Box<dyn std::io::Read + Send>) -> i32 {
        self.streams.export_input(source)
    }

    fn export_object(&self, object: Arc<dyn handlers::Exported>) -> i32 {
        let oid = self.streams.new_oid();
        lock(&self.objects).insert(oid, object);
        oid
    }

    fn object(&self, oid: i32) -> Option<Arc<dyn handlers::Exported>> {
        lock(&self.objects).get(&oid).cloned()
    }

    fn is_released(&self, oid: i32) -> bool {
        lock(&self.released).contains(&oid)
    }

    fn detach(&self) -> Arc<dyn handlers::Remote> {
        Arc::new(CallRemote {
            cancelled: Arc::new(AtomicBool::new(false)),
            tx: self.tx.clone(),
            registry: self.registry.clone(),
            streams: self.streams.clone(),
            objects: self.objects.clone(),
            last_io_id: AtomicI32::new(0),
            released: Mutex::new(Vec::new()),
        })
    }

    fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::SeqCst)
    }

    fn send(&self, command: Vec<u8>) -> Result<(), String> {
        self.tx
            .blocking_send(Outgoing::Command(command))
            .map_err(|_| "the connection is closed".to_string())
    }

    fn export(&self, sink: std::fs::File) -> i32 {
        self.streams.export_file(sink)
    }

    fn export_pipe(&self) -> Arc<crate::streams::Pipe> {
        self.streams.export_pipe()
    }

    fn unexport(&self, oid: i32) {
        self.streams.unexport(oid)
    }

    fn reserve(&self, oid: i32, n: usize) -> Result<(), String> {
        self.streams.reserve(oid, n, &|| self.is_cancelled())
    }

    fn release(&self, oid: i32) {
        lock(&self.released).push(oid);
        self.streams.release(oid)
    }

    fn read_input(&self, oid: i32, len: i32) -> Result<Option<Vec<u8>>, String> {
        let (reply_tx, reply_rx) = std::sync::mpsc::sync_channel(1);
        self.tx
            .blocking_send(Outgoing::Read {
                oid,
                len,
                reply: reply_tx,
            })
            .map_err(|_| "the connection is closed".to_string())?;
        loop {
            match reply_rx.recv_timeout(Duration::from_millis(200)) {
                Ok(Reply::Buffer(b)) => return Ok(b),
                Ok(Reply::Failed(e)) => return Err(e),
                Ok(Reply::Done) => {
                    return Err(format!(
                        "the controller answered a read of its stream {oid} without a ProxyInputStream$Buffer"
                    ))
                }
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) if self.is_cancelled() => {
                    return Err("cancelled by the controller".into())
                }
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                    return Err("the connection to the controller was lost".into())
                }
            }
        }
    }
}

async fn sleep_until_opt(t: Option<tokio::time::Instant>) {
    match t {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

/// The agent's side of `hudson.remoting.PingThread`: a ping every `interval`; a ping not
/// answered within `timeout` means the controller is gone.
struct Pinger {
    interval: Duration,
    timeout: Duration,
    next: tokio::time::Instant,
    outstanding: Option<(i32, tokio::time::Instant)>,
}

impl Pinger {
    /// The pinger a `ChannelPinger$SetUpRemotePing` call asks for (intervals ≤ 0 disable).
    fn requested(req: &crate::remoting::UserRequest) -> Option<Pinger> {
        if req.callable_class != "hudson.slaves.ChannelPinger$SetUpRemotePing" {
            return None;
        }
        let heap = &req.callable.heap;
        let this = req.callable_value.as_ref()?;
        let secs = |name: &str| match heap.field(this, name) {
            Some(crate::javaser::Value::Int(s)) if *s > 0 => Some(*s as u64),
            _ => None,
        };
        let interval = Duration::from_secs(secs("pingIntervalSeconds")?);
        let timeout = Duration::from_secs(secs("pingTimeoutSeconds").unwrap_or(240));
        Some(Pinger {
            interval,
            timeout,
            next: tokio::time::Instant::now() + interval,
            outstanding: None,
        })
    }

    fn tick(&mut self, channel: &mut Channel) -> Result<(), String> {
        let now = tokio::time::Instant::now();
        if let Some((_, sent)) = self.outstanding {
            if now.duration_since(sent) >= self.timeout {
                return Err(format!(
                    "the controller did not answer a ping within {}",
                    crate::transport::show_duration(self.timeout)
                ));
            }
        } else if let Some(id) = channel.ping() {
            self.outstanding = Some((id, now));
        }
        self.next = now + self.interval.min(self.timeout);
        Ok(())
    }
}

/// Capped exponential backoff with jitter: 1 s, 2 s, 4 s … up to 60 s, each ±25 %.
struct Backoff {
    attempt: u32,
    seed: u64,
}

impl Backoff {
    fn new() -> Self {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1)
            | 1;
        Backoff { attempt: 0, seed }
    }

    fn reset(&mut self) {
        self.attempt = 0;
    }

    fn next(&mut self) -> Duration {
        let base = (1u64 << self.attempt.min(6)).min(60) as f64;
        self.attempt += 1;
        // xorshift: jitter needs no cryptographic randomness.
        self.seed ^= self.seed << 13;
        self.seed ^= self.seed >> 7;
        self.seed ^= self.seed << 17;
        let jitter = 0.75 + (self.seed % 1000) as f64 / 2000.0;
        Duration::from_secs_f64(base * jitter)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        let mut b = Backoff::new();
        let waits: Vec<f64> = (0..10).map(|_| b.next().as_secs_f64()).collect();
        assert!(waits[0] >= 0.75 && waits[0] <= 1.25);
        assert!(waits[3] >= 6.0 && waits[3] <= 10.0);
        assert!(waits.iter().all(|w| *w <= 75.0));
        b.reset();
        assert!(b.next().as_secs_f64() <= 1.25);
    }
}
