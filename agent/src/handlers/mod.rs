//! What the agent does for each callable the controller sends, dispatched by Java class name.
//!
//! Host effects (clock, disk, memory, paths) go through [`Host`], so handlers are tested with a
//! fake host. Callables nectr does not implement are answered with an exception naming the
//! class and the way forward (`--runtime jvm`); nothing is left unanswered.

pub mod files;
pub mod host;
pub mod input;
pub mod untar;

use crate::javaser::Registry;
use crate::javaser::{Builder, Heap, Item, Value};
use crate::remoting::{Answer, UserRequest};

pub use host::{DiskSpace, Host, Memory, RealHost};

/// The remoting version the agent reports (`SlaveComputer$SlaveVersion`): the version embedded
/// in current controllers, above every supported minimum (agent-callables.md §1.4).
pub const REMOTING_VERSION: &str = "3386.v353e57a_1b_ea_0";

/// The transport name reported by `SlaveComputer$CommunicationProtocol`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    /// `/wsagents/`
    WebSocket,
    /// JNLP4-connect over TCP + TLS.
    Jnlp4,
}

impl Protocol {
    /// The name Jenkins shows.
    pub fn name(self) -> &'static str {
        match self {
            Protocol::WebSocket => "WebSocket",
            Protocol::Jnlp4 => "JNLP4-connect",
        }
    }
}

/// The channel as handlers see it: send stream commands, export local streams.
pub trait Remote: Send + Sync {
    /// The registry commands are written with.
    fn registry(&self) -> &Registry;
    /// The next I/O id (`ProxyOutputStream` ordering).
    fn next_io_id(&self) -> i32;
    /// True once the controller cancelled this call (`Request$Cancel`): stop working.
    fn is_cancelled(&self) -> bool;
    /// Sends a command, waiting while the channel's outbox is full (bounded memory).
    fn send(&self, command: Vec<u8>) -> Result<(), String>;
    /// Exports a local sink; returns its oid for a `RemoteOutputStream`.
    fn export(&self, sink: std::fs::File) -> i32;
    /// Exports a new pipe the controller writes into and this call reads.
    fn export_pipe(&self) -> std::sync::Arc<crate::streams::Pipe>;
    /// Forgets export `oid`.
    fn unexport(&self, oid: i32);
    /// Waits for room for `n` more bytes in the window of the controller's stream `oid`
    /// (PIPE_THROTTLING); fails if the stream died, the call was cancelled or the connection
    /// closed.
    fn reserve(&self, oid: i32, n: usize) -> Result<(), String>;
    /// This call is done writing into the controller's stream `oid`.
    fn release(&self, oid: i32);
    /// Reads up to `len` bytes from the controller's InputStream `oid`
    /// (`ProxyInputStream$Chunk`): `None` at its end.
    fn read_input(&self, oid: i32, len: i32) -> Result<Option<Vec<u8>>, String>;
}

/// Callables answered at once from memory or a clock read: no streams, no file system, no
/// waiting. The driver runs them on the connection task instead of a blocking thread, so a
/// burst of pings costs no threads.
pub fn is_instant(class: &str) -> bool {
    matches!(
        class,
        "hudson.remoting.PingThread$Ping"
            | "hudson.remoting.Channel$IOSyncer"
            | "hudson.slaves.SlaveComputer$SlaveInitializer"
            | "hudson.slaves.ChannelPinger$SetUpRemotePing"
            | "hudson.logging.LogRecorder$SetLevel"
            | "jenkins.util.SystemProperties$AgentCopier$CopySystemProperties"
            | "jenkins.slaves.restarter.JnlpSlaveRestarterInstaller$FindEffectiveRestarters"
            | "hudson.slaves.SlaveComputer$SlaveVersion"
            | "hudson.slaves.SlaveComputer$CommunicationProtocol"
            | "hudson.slaves.SlaveComputer$DetectOS"
            | "hudson.slaves.SlaveComputer$DetectDefaultCharset"
            | "jenkins.slaves.StandardOutputSwapper$ChannelSwapper"
            | "hudson.node_monitors.ArchitectureMonitor$GetArchTask"
            | "hudson.model.Slave$GetClockDifference1"
            | "hudson.model.Slave$GetClockDifference2"
            | "hudson.node_monitors.ResponseTimeMonitor$Step2"
    )
}

/// The [`Remote`] of an instant callable: it has no streams, and any use is an error.
pub struct NoStreams<'a>(pub &'a Registry);

impl Remote for NoStreams<'_> {
    fn registry(&self) -> &Registry {
        self.0
    }
    fn next_io_id(&self) -> i32 {
        0
    }
    fn is_cancelled(&self) -> bool {
        false
    }
    fn send(&self, _: Vec<u8>) -> Result<(), String> {
        Err("an instant callable has no streams".into())
    }
    fn export(&self, _: std::fs::File) -> i32 {
        0
    }
    fn export_pipe(&self) -> std::sync::Arc<crate::streams::Pipe> {
        crate::streams::Pipe::failed("an instant callable has no streams")
    }
    fn unexport(&self, _: i32) {}
    fn reserve(&self, _: i32, _: usize) -> Result<(), String> {
        Err("an instant callable has no streams".into())
    }
    fn release(&self, _: i32) {}
    fn read_input(&self, _: i32, _: i32) -> Result<Option<Vec<u8>>, String> {
        Err("an instant callable has no streams".into())
    }
}

/// Runs one callable. Pure apart from `host` and `remote`.
pub fn dispatch(
    req: &UserRequest,
    registry: &Registry,
    host: &dyn Host,
    protocol: Protocol,
    remote: &dyn Remote,
) -> Answer {
    let answer = match run(req, registry, host, protocol, remote) {
        Ok(a) => a,
        Err(e) => Answer::io_error(format!("{}: {e}", req.callable_class)),
    };
    if let Answer::Exception { message, .. } = &answer {
        tracing::warn!(id = req.id, callable = %req.callable_class, "answered with an exception: {message}");
    }
    answer
}

type R = Result<Answer, String>;

pub(crate) fn value(b: Builder, v: Value) -> Answer {
    Answer::Value(b.into_stream(vec![Item::Value(v)]))
}

fn string(registry: &Registry, s: &str) -> Answer {
    let mut b = Builder::new(registry);
    let v = b.string(s);
    value(b, v)
}

fn boolean(registry: &Registry, x: bool) -> R {
    let mut b = Builder::new(registry);
    let v = b.boolean(x).map_err(|e| e.to_string())?;
    Ok(value(b, v))
}

fn long_field(heap: &Heap, v: Value, name: &str) -> Option<i64> {
    match heap.field(v.as_ref()?, name)? {
        Value::Long(l) => Some(*l),
        _ => None,
    }
}

fn string_field(heap: &Heap, v: Value, name: &str) -> Option<String> {
    let s = heap.field(v.as_ref()?, name)?.as_ref()?;
    heap.str(s).map(|s| s.to_string())
}

fn run(
    req: &UserRequest,
    registry: &Registry,
    host: &dyn Host,
    protocol: Protocol,
    remote: &dyn Remote,
) -> R {
    let heap = &req.callable.heap;
    let this = req.callable_value;
    let e = |e: crate::javaser::BuildError| e.to_string();
    Ok(match req.callable_class.as_str() {
        "hudson.remoting.PingThread$Ping"
        | "hudson.slaves.SlaveComputer$SlaveInitializer"
        | "hudson.slaves.ChannelPinger$SetUpRemotePing"
        | "hudson.logging.LogRecorder$SetLevel"
        | "jenkins.util.SystemProperties$AgentCopier$CopySystemProperties"
        | "jenkins.slaves.restarter.JnlpSlaveRestarterInstaller$FindEffectiveRestarters"
        | "hudson.remoting.Channel$IOSyncer" => Answer::null(),
        "hudson.slaves.SlaveComputer$SlaveVersion" => string(registry, REMOTING_VERSION),
        "hudson.slaves.SlaveComputer$CommunicationProtocol" => string(registry, protocol.name()),
        "hudson.slaves.SlaveComputer$DetectOS" => boolean(registry, true)?,
        "hudson.slaves.SlaveComputer$DetectDefaultCharset" => string(registry, "UTF-8"),
        "jenkins.slaves.StandardOutputSwapper$ChannelSwapper" => boolean(registry, false)?,
        "hudson.slaves.SlaveComputer$AbsolutePath" => {
            let rel = string_field(heap, this, "relativePath").unwrap_or_default();
            string(registry, &host.absolute_path(&rel))
        }
        "hudson.node_monitors.ArchitectureMonitor$GetArchTask" => {
            string(registry, &host.architecture())
        }
        "hudson.model.Slave$GetClockDifference2" | "hudson.model.Slave$GetClockDifference1" => {
            let start = long_field(heap, this, "startTime").unwrap_or(0);
            let mut b = Builder::new(registry);
            let v = b
                .object(
                    "hudson.model.Slave$GetClockDifference3",
                    &[
                        ("remoteTime", Value::Long(host.now_millis())),
                        ("startTime", Value::Long(start)),
                    ],
                )
                .map_err(e)?;
            value(b, v)
        }
        "hudson.node_monitors.ResponseTimeMonitor$Step2" => {
            let start = long_field(heap, this, "start").unwrap_or(0);
            let mut b = Builder::new(registry);
            let cur = match this.as_ref().and_then(|t| heap.field(t, "cur")) {
                Some(v) => b.import(heap, *v),
                None => Value::Null,
            };
            let v = b
                .object(
                    "hudson.node_monitors.ResponseTimeMonitor$Step3",
                    &[("start", Value::Long(start)), ("cur", cur)],
                )
                .map_err(e)?;
            value(b, v)
        }
        "hudson.node_monitors.SwapSpaceMonitor$MonitorTask" => {
            let m = host
                .memory()
                .map_err(|e| format!("cannot read memory figures: {e}"))?;
            let mut b = Builder::new(registry);
            let v = b
                .object(
                    "hudson.node_monitors.SwapSpaceMonitor$MemoryUsage2",
                    &[
                        ("availablePhysicalMemory", Value::Long(m.available_physical)),
                        ("availableSwapSpace", Value::Long(m.available_swap)),
                        ("totalPhysicalMemory", Value::Long(m.total_physical)),
                        ("totalSwapSpace", Value::Long(m.total_swap)),
                    ],
                )
                .map_err(e)?;
            value(b, v)
        }
        "hudson.FilePath$CallableWith" => file_callable(req, registry, host)?,
        // RPC wrapped in a UserRequest (userProxy=true): getRemoteProperty and the like.
        crate::remoting::classes::RPC_REQUEST | crate::remoting::classes::USER_RPC_REQUEST => {
            let oid = match this.as_ref().and_then(|t| heap.field(t, "oid")) {
                Some(Value::Int(o)) => *o,
                _ => 0,
            };
            let method = string_field(heap, this, "methodName").unwrap_or_default();
            match crate::remoting::command::rpc_result(oid, &method) {
                Ok(()) => Answer::null(),
                Err(e) => Answer::io_error(e),
            }
        }
        "hudson.FilePath$FileCallableWrapper" => {
            let inner = this
                .as_ref()
                .and_then(|t| heap.field(t, "callable"))
                .copied()
                .unwrap_or(Value::Null);
            let path = this
                .as_ref()
                .and_then(|t| heap.field(t, "filePath"))
                .and_then(|fp| string_field(heap, *fp, "remote"))
                .ok_or("FilePath$FileCallableWrapper without a path")?;
            let inner_class = inner
                .as_ref()
                .and_then(|i| heap.class_name(i))
                .map(|n| n.to_string())
                .unwrap_or_default();
            match inner_class.as_str() {
                "hudson.FilePath$CopyTo" => files::copy_to(&path, heap, inner, remote, req.id),
                "hudson.FilePath$WritePipe" => files::write_pipe(&path, registry, remote),
                "hudson.FilePath$Read" => files::read(&path, heap, inner, remote, req.id),
                "hudson.FilePath$UntarRemote" => untar::untar_remote(&path, heap, inner, remote),
                other => unknown(other),
            }
        }
        "hudson.slaves.SlaveComputer$SlaveLogFetcher" => log_records(registry, host).map_err(e)?,
        other => unknown(other),
    })
}

/// A `FilePath.asCallableWith(task)`: `task` runs on the path `this$0.remote`.
fn file_callable(req: &UserRequest, registry: &Registry, host: &dyn Host) -> R {
    let heap = &req.callable.heap;
    let this = req.callable_value;
    let task = this
        .as_ref()
        .and_then(|t| heap.field(t, "task"))
        .and_then(|v| v.as_ref());
    let task_class = task
        .and_then(|t| heap.class_name(t))
        .map(|n| n.to_string())
        .unwrap_or_default();
    let file_path = this.as_ref().and_then(|t| heap.field(t, "this$0")).copied();
    let remote = file_path.and_then(|fp| string_field(heap, fp, "remote"));
    let path = match task_class.as_str() {
        "hudson.node_monitors.DiskSpaceMonitorDescriptor$GetUsableSpace" => {
            remote.ok_or("FilePath$CallableWith without a path")?
        }
        "hudson.node_monitors.TemporarySpaceMonitor$GetTempSpace" => host.temp_dir(),
        other => return Ok(unknown(other)),
    };
    let d = host
        .disk_space(&path)
        .map_err(|e| format!("cannot read the free space of {path}: {e}"))?;
    let mut b = Builder::new(registry);
    if d.usable <= 0 {
        return Ok(value(b, Value::Null));
    }
    let p = b.string(&d.canonical_path);
    let v = b
        .object(
            "hudson.node_monitors.DiskSpaceMonitorDescriptor$DiskSpace",
            &[
                ("size", Value::Long(d.usable)),
                ("totalSize", Value::Long(d.total)),
                ("path", p),
            ],
        )
        .map_err(|e| e.to_string())?;
    Ok(value(b, v))
}

/// `ArrayList<java.util.logging.LogRecord>` of the agent's recent log, as JDK 17 writes it:
/// default fields, then `writeObject`'s version bytes (1, 0) and a parameter count of -1.
fn log_records(registry: &Registry, host: &dyn Host) -> Result<Answer, crate::javaser::BuildError> {
    let mut b = Builder::new(registry);
    let bundle = b.string("sun.util.logging.resources.logging");
    let mut records = Vec::new();
    for (seq, entry) in host.recent_log().iter().enumerate() {
        let (name, number) = match entry.level {
            tracing::Level::ERROR => ("SEVERE", 1000),
            tracing::Level::WARN => ("WARNING", 900),
            tracing::Level::INFO => ("INFO", 800),
            tracing::Level::DEBUG => ("FINE", 500),
            tracing::Level::TRACE => ("FINEST", 300),
        };
        let level_name = b.string(name);
        let level = b.object(
            "java.util.logging.Level",
            &[
                ("value", Value::Int(number)),
                ("name", level_name),
                ("resourceBundleName", bundle),
            ],
        )?;
        let logger = b.string(&entry.target);
        let message = b.string(&entry.message);
        let record = b.object(
            "java.util.logging.LogRecord",
            &[
                ("longThreadID", Value::Long(1)),
                ("millis", Value::Long(entry.millis)),
                ("sequenceNumber", Value::Long(seq as i64)),
                ("threadID", Value::Int(1)),
                ("level", level),
                ("loggerName", logger),
                ("message", message),
            ],
        )?;
        b.set_data(
            record,
            "java.util.logging.LogRecord",
            vec![crate::javaser::Content::Block(crate::javaser::Block::new(
                vec![1, 0, 0xff, 0xff, 0xff, 0xff],
            ))],
        )?;
        records.push(record);
    }
    let list = b.array_list(&records)?;
    Ok(value(b, list))
}

/// The answer for a callable nectr does not implement.
pub fn unknown(class: &str) -> Answer {
    Answer::io_error(format!(
        "nectr-agent (native runtime) does not implement the callable {class}; run the agent with --runtime jvm to use the controller's agent.jar for builds that need it"
    ))
}
