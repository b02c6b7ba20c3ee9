//! What the agent does for each callable the controller sends.
//!
//! Every callable nectr runs natively is listed once, in the table of its family module
//! ([`catalog`] merges them): its Java class name, its [`Kind`] and its handler. A handler reads
//! the callable's fields once through a typed view ([`view::Obj`]), so a missing or mistyped
//! field is an error naming the class and the field. The envelopes around callables
//! (`FilePath$FileCallableWrapper`, `FilePath$CallableWith`, RPC on an exported object) are
//! opened here, in [`target`]; [`dispatch`] runs the result.
//!
//! Families, one file each: [`bringup`] (bring-up and monitors), [`files`] (FilePath),
//! [`process`] (launching and killing processes, the build's environment), [`durable`]
//! (durable-task: Pipeline `sh`), [`archive`] (stash, unstash, archiveArtifacts) and [`ui`]
//! (pages a Jenkins admin opens). Host effects of the monitors go through [`Host`], so they are
//! tested with a fake host; file and process handlers act on the paths and commands the
//! controller names.

pub mod archive;
pub mod bringup;
pub mod catalog;
pub mod classes;
pub mod durable;
pub mod files;
pub mod host;
pub mod input;
pub mod process;
pub mod sink;
#[cfg(test)]
pub mod testing;
pub mod ui;
pub mod untar;
pub mod view;

use std::sync::Arc;

use crate::javaser::{BuildError, Builder, Heap, Item, Registry, Value};
use crate::remoting::{Answer, UserRequest};

pub use host::{DiskSpace, Host, Memory, RealHost};
use view::{short, Obj, ViewError};

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

/// How a callable runs, which decides where the driver runs it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Answered at once from memory or a clock read: run on the connection task, no thread.
    Instant,
    /// Touches the file system or waits (a process, a lock): runs on a blocking thread.
    Blocking,
    /// Moves bytes through remote streams (windows, pipes): runs on a blocking thread and
    /// may wait for the controller's acks.
    Streaming,
}

/// A callable's handler: plain callables get the callable object, file callables (sent in a
/// `FilePath$FileCallableWrapper` or `FilePath$CallableWith`) also the path they act on.
#[derive(Clone, Copy)]
pub enum Run {
    /// `Callable.call()`.
    Call(fn(&Ctx, Obj) -> R),
    /// `FileCallable.invoke(File, VirtualChannel)`.
    File(fn(&Ctx, &str, Obj) -> R),
}

/// One entry of the catalog.
pub struct Native {
    /// The Java class name.
    pub class: &'static str,
    /// Where it runs.
    pub kind: Kind,
    /// What it does.
    pub run: Run,
}

/// A Java exception a handler raises on the controller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    /// A JDK or Jenkins exception class declared in [`classes::registry`].
    pub class: &'static str,
    /// Its message.
    pub message: String,
}

impl Failure {
    /// A `java.io.IOException`.
    pub fn io(message: impl Into<String>) -> Failure {
        Failure {
            class: "java.io.IOException",
            message: message.into(),
        }
    }

    /// A `hudson.AbortException`: the build fails with just this message, no stack trace.
    pub fn abort(message: impl Into<String>) -> Failure {
        Failure {
            class: "hudson.AbortException",
            message: message.into(),
        }
    }

    /// The exception Java's `java.nio.file` API throws for `e` on `path`:
    /// `NoSuchFileException(path)`, `AccessDeniedException(path)`, otherwise an IOException
    /// saying what failed (`doing` is e.g. "cannot create directory").
    pub fn fs(e: &std::io::Error, doing: &str, path: &str) -> Failure {
        match e.kind() {
            std::io::ErrorKind::NotFound => Failure {
                class: "java.nio.file.NoSuchFileException",
                message: path.to_string(),
            },
            std::io::ErrorKind::PermissionDenied => Failure {
                class: "java.nio.file.AccessDeniedException",
                message: path.to_string(),
            },
            _ => Failure::io(format!("{doing} {path}: {e}")),
        }
    }
}

impl From<ViewError> for Failure {
    fn from(e: ViewError) -> Failure {
        Failure::io(e.0)
    }
}

impl From<BuildError> for Failure {
    fn from(e: BuildError) -> Failure {
        Failure::io(format!("nectr-agent could not write its answer: {e}"))
    }
}

/// What a handler returns.
pub type R = Result<Answer, Failure>;

/// An object the agent exported (`Channel.export`): the controller calls its methods over RPC.
pub trait Exported: Send + Sync {
    /// The Java interface the controller's proxy implements.
    fn interface(&self) -> &'static str;
    /// Runs method `method` with `args` (values in `heap`).
    fn call(&self, cx: &Ctx, method: &str, args: &[Value], heap: &Heap) -> R;
}

/// The channel as handlers see it: send stream commands, export local streams and objects.
pub trait Remote: Send + Sync {
    /// The registry commands are written with.
    fn registry(&self) -> &Registry;
    /// The next I/O id (`ProxyOutputStream` ordering); the call's `Response.lastIoId` will be
    /// at least this.
    fn next_io_id(&self) -> i32;
    /// The call's answer must wait for I/O `io_id` (sent by another thread for this call).
    fn note_io(&self, io_id: i32);
    /// True once the controller cancelled this call (`Request$Cancel`): stop working.
    fn is_cancelled(&self) -> bool;
    /// Sends a command, waiting while the channel's outbox is full (bounded memory).
    fn send(&self, command: Vec<u8>) -> Result<(), String>;
    /// Exports a local sink; returns its oid for a `RemoteOutputStream`.
    fn export(&self, sink: std::fs::File) -> i32;
    /// Exports a new pipe the controller writes into and this call reads.
    fn export_pipe(&self) -> Arc<crate::streams::Pipe>;
    /// Exports a local InputStream the controller reads with `ProxyInputStream$Chunk`.
    fn export_input(&self, source: Box<dyn std::io::Read + Send>) -> i32;
    /// Exports an object whose methods the controller calls over RPC.
    fn export_object(&self, object: Arc<dyn Exported>) -> i32;
    /// The exported object `oid`.
    fn object(&self, oid: i32) -> Option<Arc<dyn Exported>>;
    /// Forgets export `oid`.
    fn unexport(&self, oid: i32);
    /// Waits for room for `n` more bytes in the window of the controller's stream `oid`
    /// (PIPE_THROTTLING); fails if the stream died, the call was cancelled or the connection
    /// closed.
    fn reserve(&self, oid: i32, n: usize) -> Result<(), String>;
    /// This call is done writing into the controller's stream `oid` (it sent `$EOF` or
    /// `$Unexport`).
    fn release(&self, oid: i32);
    /// True once this call released the controller's stream `oid`.
    fn is_released(&self, oid: i32) -> bool;
    /// Reads up to `len` bytes from the controller's InputStream `oid`
    /// (`ProxyInputStream$Chunk`): `None` at its end.
    fn read_input(&self, oid: i32, len: i32) -> Result<Option<Vec<u8>>, String>;
    /// A handle on the same connection for work that outlives this call (a process's output
    /// pumps): never cancelled by this call's cancellation.
    fn detach(&self) -> Arc<dyn Remote>;
}

/// What a handler sees of its call.
pub struct Ctx<'a> {
    /// Classes answers are written with.
    pub registry: &'a Registry,
    /// The machine (monitors, environment).
    pub host: &'a dyn Host,
    /// The transport.
    pub protocol: Protocol,
    /// The channel.
    pub remote: &'a dyn Remote,
    /// The controller's request id (`Chunk.requestId` of streams written for it).
    pub request_id: i32,
    /// Controller streams this call handed to work that outlives it (see [`Ctx::keep`]).
    kept: std::cell::RefCell<Vec<i32>>,
}

impl<'a> Ctx<'a> {
    /// The context of request `request_id`.
    pub fn new(
        registry: &'a Registry,
        host: &'a dyn Host,
        protocol: Protocol,
        remote: &'a dyn Remote,
        request_id: i32,
    ) -> Ctx<'a> {
        Ctx {
            registry,
            host,
            protocol,
            remote,
            request_id,
            kept: Default::default(),
        }
    }

    /// A builder over the agent's classes.
    pub fn builder(&self) -> Builder<'_> {
        Builder::new(self.registry)
    }

    /// The controller's stream `oid`, received in this call, is now owned by work that
    /// outlives the call (a process's output pump), which releases it; the call's own
    /// clean-up leaves it alone.
    pub fn keep(&self, oid: i32) {
        self.kept.borrow_mut().push(oid);
    }
}

/// The [`Remote`] of an instant callable: it has no streams, and any use is an error.
pub struct NoStreams(pub Arc<Registry>);

const NO_STREAMS: &str = "an instant callable has no streams";

impl Remote for NoStreams {
    fn registry(&self) -> &Registry {
        &self.0
    }
    fn next_io_id(&self) -> i32 {
        0
    }
    fn note_io(&self, _: i32) {}
    fn is_cancelled(&self) -> bool {
        false
    }
    fn send(&self, _: Vec<u8>) -> Result<(), String> {
        Err(NO_STREAMS.into())
    }
    fn export(&self, _: std::fs::File) -> i32 {
        0
    }
    fn export_pipe(&self) -> Arc<crate::streams::Pipe> {
        crate::streams::Pipe::failed(NO_STREAMS)
    }
    fn export_input(&self, _: Box<dyn std::io::Read + Send>) -> i32 {
        0
    }
    fn export_object(&self, _: Arc<dyn Exported>) -> i32 {
        0
    }
    fn object(&self, _: i32) -> Option<Arc<dyn Exported>> {
        None
    }
    fn unexport(&self, _: i32) {}
    fn reserve(&self, _: i32, _: usize) -> Result<(), String> {
        Err(NO_STREAMS.into())
    }
    fn release(&self, _: i32) {}
    fn is_released(&self, _: i32) -> bool {
        false
    }
    fn read_input(&self, _: i32, _: i32) -> Result<Option<Vec<u8>>, String> {
        Err(NO_STREAMS.into())
    }
    fn detach(&self) -> Arc<dyn Remote> {
        Arc::new(NoStreams(self.0.clone()))
    }
}

/// Remoting's class of a method call on an exported object sent inside a `UserRequest`.
const USER_RPC: &str = crate::remoting::classes::USER_RPC_REQUEST;
/// The same call sent as a plain `RPCRequest` (only for `userProxy=false` exports).
const RPC: &str = crate::remoting::classes::RPC_REQUEST;
/// `FilePath.act(FileCallable)` on a remote channel.
const FILE_WRAPPER: &str = "hudson.FilePath$FileCallableWrapper";
/// `FilePath.asCallableWith(task)` (the disk-space monitors).
const CALLABLE_WITH: &str = "hudson.FilePath$CallableWith";
/// A plugin's wrapper around a `FileCallableWrapper` (`FilePath.FileCallableWrapperFactory`).
const INTERCEPTOR: &str = "hudson.FilePath$AbstractInterceptorCallableWrapper";

/// What a `UserRequest` asks for, envelopes opened.
pub enum Target<'h> {
    /// A callable of the catalog.
    Native {
        /// Its entry.
        entry: &'static Native,
        /// The callable object.
        obj: Obj<'h>,
        /// For file callables: the path it acts on.
        path: Option<String>,
    },
    /// A method call on an object the agent exported.
    Rpc {
        /// The export.
        oid: i32,
        /// The method name.
        method: String,
        /// Its arguments.
        args: Vec<Value>,
        /// The heap the arguments live in.
        heap: &'h Heap,
    },
    /// A class nectr does not run natively (the innermost callable's class).
    Unknown(String),
    /// The envelope itself could not be read.
    Invalid(String),
}

impl Target<'_> {
    /// Where the driver should run it.
    pub fn kind(&self) -> Kind {
        match self {
            Target::Native { entry, .. } => entry.kind,
            // The channel's own export answers from memory; a process's join waits.
            Target::Rpc { oid: 1, .. } => Kind::Instant,
            Target::Rpc { .. } => Kind::Blocking,
            Target::Unknown(_) | Target::Invalid(_) => Kind::Instant,
        }
    }

    /// The class name to log for this call.
    pub fn describe(&self) -> String {
        match self {
            Target::Native { entry, .. } => entry.class.to_string(),
            Target::Rpc { oid, method, .. } => format!("RPC {method} on export {oid}"),
            Target::Unknown(c) => c.clone(),
            Target::Invalid(why) => format!("unreadable call ({why})"),
        }
    }
}

/// Opens the envelopes of `req` and finds its handler.
pub fn target(req: &UserRequest) -> Target<'_> {
    let heap = &req.callable.heap;
    let Some(obj) = Obj::of(heap, req.callable_value) else {
        return Target::Invalid("the callable is null or not an object".into());
    };
    match open(obj, 0) {
        Ok(t) => t,
        Err(e) => Target::Invalid(e.0),
    }
}

fn open(obj: Obj<'_>, depth: usize) -> Result<Target<'_>, ViewError> {
    let class = obj.class();
    if depth > 4 {
        return Err(ViewError(format!("{class}: wrappers nested too deeply")));
    }
    match class.as_str() {
        FILE_WRAPPER => {
            let inner = obj.obj("callable")?;
            let path = obj.obj("filePath")?.str("remote")?;
            file_target(inner, path)
        }
        CALLABLE_WITH => {
            let inner = obj.obj("task")?;
            let path = obj.obj("this$0")?.str("remote")?;
            file_target(inner, path)
        }
        INTERCEPTOR => open(obj.obj("callable")?, depth + 1),
        USER_RPC | RPC => {
            let args = match obj.raw("arguments") {
                Some(Value::Ref(id)) => match obj.heap.array(id).map(|a| &a.data) {
                    Some(crate::javaser::ArrayData::Object(v)) => v.clone(),
                    _ => return Err(ViewError("RPC arguments are not an Object[]".into())),
                },
                _ => Vec::new(),
            };
            Ok(Target::Rpc {
                oid: obj.int("oid")?,
                method: obj.str("methodName")?,
                args,
                heap: obj.heap,
            })
        }
        _ => Ok(match catalog::lookup(&class) {
            Some(
                entry @ Native {
                    run: Run::Call(_), ..
                },
            ) => Target::Native {
                entry,
                obj,
                path: None,
            },
            Some(Native {
                run: Run::File(_), ..
            }) => {
                return Err(ViewError(format!(
                    "{} is a file callable but came without a FilePath",
                    short(&class)
                )))
            }
            None => Target::Unknown(class),
        }),
    }
}

fn file_target(inner: Obj<'_>, path: String) -> Result<Target<'_>, ViewError> {
    let class = inner.class();
    Ok(match catalog::lookup(&class) {
        Some(
            entry @ Native {
                run: Run::File(_), ..
            },
        ) => Target::Native {
            entry,
            obj: inner,
            path: Some(path),
        },
        Some(_) => {
            return Err(ViewError(format!(
                "{} is not a file callable but came wrapped with a FilePath",
                short(&class)
            )))
        }
        None => Target::Unknown(class),
    })
}

/// Runs `target` (from [`target`] of the same request). Never panics on input; the answer is
/// an exception when the handler fails.
pub fn dispatch(target: &Target<'_>, cx: &Ctx) -> Answer {
    let result = match target {
        Target::Native { entry, obj, path } => match (entry.run, path) {
            (Run::Call(f), _) => f(cx, *obj),
            (Run::File(f), Some(p)) => f(cx, p, *obj),
            (Run::File(_), None) => Err(Failure::io("a file callable without its path")),
        },
        Target::Rpc {
            oid,
            method,
            args,
            heap,
        } => rpc(cx, *oid, method, args, heap),
        Target::Unknown(class) => Ok(unknown(class)),
        Target::Invalid(why) => Err(Failure::io(format!(
            "nectr-agent could not read this call: {why}"
        ))),
    };
    let answer = match result {
        Ok(a) => a,
        Err(f) => Answer::Exception {
            class: f.class.into(),
            message: f.message,
        },
    };
    if let Answer::Exception { class, message } = &answer {
        tracing::warn!(
            id = cx.request_id,
            callable = %target.describe(),
            "answered with {class}: {message}"
        );
    }
    if let Target::Native { obj, .. } = target {
        release_unused_streams(*obj, cx);
    }
    answer
}

/// Every controller output stream a callable carries (a `RemoteOutputStream`, the writing end
/// of a remote-to-local `Pipe`, the stream inside a listener) holds a reference on the
/// controller's export table until the agent ends it with `$EOF` or `$Unexport`. Streams the
/// handler neither ended nor kept for later are released here, as a Java agent's garbage
/// collector eventually does.
fn release_unused_streams(obj: Obj<'_>, cx: &Ctx) {
    let kept = cx.kept.borrow();
    for oid in sink::controller_streams(obj) {
        if kept.contains(&oid) || cx.remote.is_released(oid) {
            continue;
        }
        let io = cx.remote.next_io_id();
        let _ = cx.remote.send(crate::remoting::command::stream_unexport(
            cx.remote.registry(),
            io,
            oid,
        ));
        cx.remote.release(oid);
    }
}

/// A method call on an export: the channel itself (oid 1) or an object a handler exported.
fn rpc(cx: &Ctx, oid: i32, method: &str, args: &[Value], heap: &Heap) -> R {
    if oid == 1 {
        return match crate::remoting::command::rpc_result(oid, method) {
            Ok(()) => Ok(Answer::null()),
            Err(e) => Err(Failure::io(e)),
        };
    }
    match cx.remote.object(oid) {
        Some(object) => object.call(cx, method, args, heap),
        None => Err(Failure::io(format!(
            "no exported object {oid} on this agent for {method}() (it was released, or it belongs to an earlier connection)"
        ))),
    }
}

/// A value answer.
pub fn value(b: Builder, v: Value) -> Answer {
    Answer::Value(b.into_stream(vec![Item::Value(v)]))
}

/// A `String` answer.
pub fn string(cx: &Ctx, s: &str) -> R {
    let mut b = cx.builder();
    let v = b.string(s);
    Ok(value(b, v))
}

/// A `Boolean` answer.
pub fn boolean(cx: &Ctx, x: bool) -> R {
    let mut b = cx.builder();
    let v = b.boolean(x)?;
    Ok(value(b, v))
}

/// An `Integer` answer.
pub fn integer(cx: &Ctx, x: i32) -> R {
    let mut b = cx.builder();
    let v = b.integer(x)?;
    Ok(value(b, v))
}

/// A `Long` answer.
pub fn long(cx: &Ctx, x: i64) -> R {
    let mut b = cx.builder();
    let v = b.long(x)?;
    Ok(value(b, v))
}

/// A `null` (Void) answer.
pub fn void() -> R {
    Ok(Answer::null())
}

/// The answer for a callable nectr does not implement natively, when no JVM helper takes it:
/// an exception naming the class and the way forward, so the build fails readably and the
/// channel stays up. The node's script console gets its explanation as the script's output.
pub fn unknown(class: &str) -> Answer {
    const HOW: &str =
        "Start nectr-agent with --jvm auto (uses a Java 17+ found on the machine) or \
                       --jvm /path/to/java to hand such calls to the controller's agent.jar";
    if class == "hudson.util.RemotingDiagnostics$Script" {
        let registry = classes::registry();
        let mut b = Builder::new(&registry);
        let v = b.string(&format!(
            "This node runs nectr-agent, a native agent with no JVM, and its JVM helper is off: \
             Groovy scripts cannot run here. {HOW}.\n"
        ));
        return value(b, v);
    }
    Answer::io_error(format!(
        "nectr-agent does not run {class} natively: it is code only a JVM can run. {HOW}"
    ))
}

/// Entry point for fuzzers: the text builds parse from the controller (environment
/// overrides and expansion, Ant patterns) and the envelopes of a received callable. Must
/// never panic.
#[doc(hidden)]
pub fn fuzz_build_text(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let mut parts = text.split('\n');
    let pattern = parts.next().unwrap_or_default();
    let rest: Vec<String> = parts.map(str::to_string).collect();
    let mut env = crate::envvars::EnvVars::from_assignments(&rest);
    let overrides =
        crate::envvars::EnvVars::from_assignments(&rest.iter().rev().cloned().collect::<Vec<_>>());
    env.override_expanding_all(&overrides);
    let _ = env.expand(pattern);
    let set = crate::antglob::FileSet::new(pattern, rest.first().map(String::as_str), true, false);
    for r in &rest {
        let _ = set.selects(r);
        let _ = set.worth_entering(r);
    }
    let _ = process::command_line(&rest, None, Some(pattern));
    if let Ok(stream) = crate::javaser::decode(data, &crate::remoting::command::decode_options()) {
        if let Some(crate::javaser::Item::Value(v)) = stream.items.first() {
            if let Some(obj) = Obj::of(&stream.heap, *v) {
                let _ = open(obj, 0).map(|t| (t.kind(), t.describe()));
                let _ = obj.all_objects().len();
                let _ = sink::controller_streams(obj);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_text_survives_odd_input() {
        for input in [
            &b""[..],
            b"$",
            b"${\n$$$\nA=${A}${B}\nB=$A\nPATH+=x\n=\n+=\nA+B+C=1",
            b"**/**/\n/\n\\\n\xff\xfe",
            b"\xac\xed\x00\x05\x73\x72",
        ] {
            fuzz_build_text(input);
        }
    }

    #[test]
    fn every_class_name_appears_once_in_the_catalog() {
        let mut seen = std::collections::HashSet::new();
        for n in catalog::all() {
            assert!(seen.insert(n.class), "{} is listed twice", n.class);
        }
        assert!(
            seen.len() > 40,
            "the catalog holds {} callables",
            seen.len()
        );
    }
}
