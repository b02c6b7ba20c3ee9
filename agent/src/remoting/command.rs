//! Commands: each one Java serialization stream holding one `hudson.remoting.Command`.
//! Reading turns a decoded stream into a [`Command`]; writing builds the agent's answers.

use std::fmt;

use super::classes::*;
use crate::javaser::{
    self, ArrayData, Builder, DecodeOptions, Entry, Heap, Item, Limits, Registry, Stream, Value,
};

/// A command from the controller, as far as the agent cares.
#[derive(Debug)]
pub enum Command {
    /// `UserRequest`: run a callable and answer.
    UserRequest(UserRequest),
    /// `Response` to one of the agent's own requests.
    Response {
        /// The request id it answers.
        id: i32,
        /// What it carried.
        reply: Reply,
    },
    /// `ProxyOutputStream$Ack`: the controller consumed `size` bytes of its stream `oid`.
    StreamAck {
        /// The controller's export the agent writes into.
        oid: i32,
        /// Bytes consumed.
        size: i32,
    },
    /// `ProxyOutputStream$NotifyDeadWriter`: the controller's sink `oid` failed; stop writing.
    StreamDead {
        /// The controller's export.
        oid: i32,
    },
    /// `Request$Cancel`: interrupt request `id`. No answer.
    Cancel {
        /// The request to cancel.
        id: i32,
    },
    /// `Channel$CloseCommand`: orderly shutdown.
    Close,
    /// `RemoteInvocationHandler$RPCRequest` sent as a command: a method call on an agent
    /// export, answered with a plain `Response`.
    Rpc {
        /// `Request.id`.
        id: i32,
        /// The agent export called.
        oid: i32,
        /// The method.
        method: String,
    },
    /// `UnexportCommand`: the controller released the agent export `oid`.
    Unexport {
        /// The agent export.
        oid: i32,
    },
    /// `ProxyOutputStream$Chunk`: bytes for the agent's exported stream `oid`.
    StreamChunk {
        /// The agent's export.
        oid: i32,
        /// The bytes.
        data: Vec<u8>,
    },
    /// `ProxyOutputStream$Flush`.
    StreamFlush {
        /// The agent's export.
        oid: i32,
    },
    /// `ProxyOutputStream$EOF` (close) or `$Unexport` (release without closing).
    StreamEnd {
        /// The agent's export.
        oid: i32,
        /// True for EOF.
        close: bool,
        /// The writer's failure that ended the stream (`EOF.error`), as text.
        error: Option<String>,
    },
    /// `ProxyInputStream$Chunk`: request `id` reads up to `len` bytes from the agent's
    /// exported InputStream `oid`; answered with a `ProxyInputStream$Buffer`.
    InputRead {
        /// `Request.id`.
        id: i32,
        /// The agent's export.
        oid: i32,
        /// Most bytes wanted.
        len: i32,
    },
    /// `ProxyInputStream$EOF`: the controller is done reading the agent's InputStream `oid`.
    InputClose {
        /// The agent's export.
        oid: i32,
    },
    /// Any other command (`UnexportCommand`, `GCCommand`, stream commands …), by class name.
    Other {
        /// Its class.
        class: String,
        /// `Request.id` if it is a request (it must be answered).
        request_id: Option<i32>,
    },
}

/// What a `Response` to one of the agent's requests carried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// A value the agent does not look into (null, a `NormalResponse`).
    Done,
    /// `ProxyInputStream$Buffer`: the bytes read, or `None` at the end of the stream.
    Buffer(Option<Vec<u8>>),
    /// An exception (in `exception` or an `ExceptionResponse`), as text.
    Failed(String),
}

/// A `UserRequest` with its callable decoded.
pub struct UserRequest {
    /// `Request.id`.
    pub id: i32,
    /// `Request.lastIoId`.
    pub last_io_id: i32,
    /// The export id of the controller's class loader for this callable, if given.
    pub class_loader_oid: Option<i32>,
    /// `toString` of the callable as the controller rendered it.
    pub to_string: Option<String>,
    /// Class name of the callable (the top object of the nested stream).
    pub callable_class: String,
    /// The nested stream holding the callable.
    pub callable: Stream,
    /// The callable object in `callable.heap`.
    pub callable_value: Value,
    /// The whole command as it arrived (set by [`super::Channel`]; empty from [`read`]), for
    /// relaying it unchanged.
    pub raw: Vec<u8>,
}

impl fmt::Debug for UserRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UserRequest")
            .field("id", &self.id)
            .field("callable", &self.callable_class)
            .finish()
    }
}

/// A command that could not be understood.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandError {
    /// The request id, when it could be recovered: the request must still be answered.
    pub request_id: Option<i32>,
    /// What was wrong.
    pub message: String,
}

impl fmt::Display for CommandError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// Decoder options for command streams.
pub fn decode_options() -> DecodeOptions {
    DecodeOptions {
        limits: Limits {
            max_total_bytes: 64 << 20,
            ..Limits::DEFAULT
        },
        ..DecodeOptions::default()
    }
}

fn int(heap: &Heap, obj: javaser::Id, name: &str) -> Option<i32> {
    match heap.field(obj, name)? {
        Value::Int(i) => Some(*i),
        _ => None,
    }
}

/// Reads one command payload (a complete serialization stream).
pub fn read(payload: &[u8]) -> Result<Command, CommandError> {
    let stream = javaser::decode(payload, &decode_options()).map_err(|e| CommandError {
        request_id: None,
        message: format!("undecodable command: {e}"),
    })?;
    let top = match stream.items.as_slice() {
        [Item::Value(Value::Ref(id))] => *id,
        _ => {
            return Err(CommandError {
                request_id: None,
                message: "command stream does not hold exactly one object".into(),
            })
        }
    };
    let heap = &stream.heap;
    let class = heap
        .class_name(top)
        .map(|n| n.to_string())
        .unwrap_or_default();
    let request_id = int(heap, top, "id");
    let fail = |message: String| CommandError {
        request_id,
        message,
    };
    Ok(match class.as_str() {
        USER_REQUEST => {
            let id = request_id.ok_or_else(|| fail("UserRequest without id".into()))?;
            let bytes = match heap.field(top, "request") {
                Some(Value::Ref(a)) => match heap.array(*a).map(|a| &a.data) {
                    Some(ArrayData::Byte(b)) => b.clone(),
                    _ => return Err(fail("UserRequest.request is not a byte[]".into())),
                },
                _ => return Err(fail("UserRequest without request bytes".into())),
            };
            let callable = javaser::decode(&bytes, &decode_options())
                .map_err(|e| fail(format!("undecodable callable: {e}")))?;
            let callable_value = match callable.items.first() {
                Some(Item::Value(v)) => *v,
                _ => return Err(fail("callable stream holds no object".into())),
            };
            let callable_class = callable_value
                .as_ref()
                .and_then(|id| callable.heap.class_name(id))
                .map(|n| n.to_string())
                .unwrap_or_else(|| "null".into());
            let to_string = heap
                .field(top, "toString")
                .and_then(|v| v.as_ref())
                .and_then(|s| heap.str(s))
                .map(|s| s.to_string());
            Command::UserRequest(UserRequest {
                id,
                last_io_id: int(heap, top, "lastIoId").unwrap_or(0),
                class_loader_oid: class_loader_oid(heap, top),
                to_string,
                callable_class,
                callable,
                callable_value,
                raw: Vec::new(),
            })
        }
        RESPONSE => Command::Response {
            id: request_id.ok_or_else(|| fail("Response without id".into()))?,
            reply: reply(heap, top),
        },
        STREAM_ACK => Command::StreamAck {
            oid: int(heap, top, "oid").ok_or_else(|| fail("Ack without oid".into()))?,
            size: int(heap, top, "size").ok_or_else(|| fail("Ack without size".into()))?,
        },
        STREAM_DEAD => Command::StreamDead {
            oid: int(heap, top, "oid")
                .ok_or_else(|| fail("NotifyDeadWriter without oid".into()))?,
        },
        CANCEL => Command::Cancel {
            id: request_id.ok_or_else(|| fail("Cancel without id".into()))?,
        },
        CLOSE_COMMAND => Command::Close,
        RPC_REQUEST | USER_RPC_REQUEST => {
            let id = request_id.ok_or_else(|| fail(format!("{class} without id")))?;
            Command::Rpc {
                id,
                oid: int(heap, top, "oid").unwrap_or(0),
                method: heap
                    .field(top, "methodName")
                    .and_then(|v| v.as_ref())
                    .and_then(|s| heap.str(s))
                    .map(|s| s.to_string())
                    .unwrap_or_default(),
            }
        }
        INPUT_CHUNK => Command::InputRead {
            id: request_id.ok_or_else(|| fail("ProxyInputStream$Chunk without id".into()))?,
            oid: int(heap, top, "oid")
                .ok_or_else(|| fail("ProxyInputStream$Chunk without oid".into()))?,
            len: int(heap, top, "len")
                .ok_or_else(|| fail("ProxyInputStream$Chunk without len".into()))?,
        },
        INPUT_EOF => Command::InputClose {
            oid: int(heap, top, "oid")
                .ok_or_else(|| fail("ProxyInputStream$EOF without oid".into()))?,
        },
        UNEXPORT_COMMAND => Command::Unexport {
            oid: int(heap, top, "oid").ok_or_else(|| fail("UnexportCommand without oid".into()))?,
        },
        STREAM_CHUNK | STREAM_FLUSH | STREAM_EOF | STREAM_UNEXPORT => {
            let oid = int(heap, top, "oid").ok_or_else(|| fail(format!("{class} without oid")))?;
            match class.as_str() {
                STREAM_CHUNK => {
                    let data = match heap.field(top, "buf").and_then(|v| v.as_ref()) {
                        Some(a) => match heap.array(a).map(|a| &a.data) {
                            Some(ArrayData::Byte(b)) => b.clone(),
                            _ => {
                                return Err(fail(
                                    "ProxyOutputStream$Chunk.buf is not a byte[]".into(),
                                ))
                            }
                        },
                        None => Vec::new(),
                    };
                    Command::StreamChunk { oid, data }
                }
                STREAM_FLUSH => Command::StreamFlush { oid },
                _ => Command::StreamEnd {
                    oid,
                    close: class == STREAM_EOF,
                    error: heap
                        .field(top, "error")
                        .and_then(|v| v.as_ref())
                        .map(|e| throwable_text(heap, e)),
                },
            }
        }
        _ => Command::Other {
            // Only subclasses of Request carry `lastIoId` next to `id`.
            request_id: int(heap, top, "lastIoId").and(request_id),
            class,
        },
    })
}

/// `class: detailMessage` of a Throwable object, as Java's `toString` shows it.
fn throwable_text(heap: &Heap, e: javaser::Id) -> String {
    let class = heap
        .class_name(e)
        .map(|n| n.to_string())
        .unwrap_or_else(|| "java.lang.Throwable".into());
    match heap
        .field(e, "detailMessage")
        .and_then(|v| v.as_ref())
        .and_then(|s| heap.str(s))
    {
        Some(m) => format!("{class}: {m}"),
        None => class,
    }
}

/// What `Response` object `top` carries.
fn reply(heap: &Heap, top: javaser::Id) -> Reply {
    if let Some(e) = heap.field(top, "exception").and_then(|v| v.as_ref()) {
        return Reply::Failed(throwable_text(heap, e));
    }
    let Some(rv) = heap.field(top, "returnValue").and_then(|v| v.as_ref()) else {
        return Reply::Done;
    };
    let class = heap
        .class_name(rv)
        .map(|n| n.to_string())
        .unwrap_or_default();
    match class.as_str() {
        INPUT_BUFFER => {
            let len = int(heap, rv, "len").unwrap_or(-1);
            if len < 0 {
                return Reply::Buffer(None);
            }
            match heap
                .field(rv, "buf")
                .and_then(|v| v.as_ref())
                .and_then(|a| heap.array(a))
                .map(|a| &a.data)
            {
                Some(ArrayData::Byte(b)) if len as usize <= b.len() => {
                    Reply::Buffer(Some(b[..len as usize].to_vec()))
                }
                _ => Reply::Failed(format!(
                    "ProxyInputStream$Buffer with len {len} and no byte[] that long"
                )),
            }
        }
        EXCEPTION_RESPONSE => Reply::Failed("the controller answered with an exception".into()),
        _ => Reply::Done,
    }
}

/// `classLoaderProxy`: a proxy whose handler holds the oid, or a `RemoteIClassLoader`.
fn class_loader_oid(heap: &Heap, top: javaser::Id) -> Option<i32> {
    let proxy = heap.field(top, "classLoaderProxy")?.as_ref()?;
    if let Some(oid) = int(heap, proxy, "oid") {
        return Some(oid);
    }
    let h = heap.field(proxy, "h")?.as_ref()?;
    int(heap, h, "oid")
}

/// What a callable produced: a value (in its own heap) or a Java exception to raise.
pub enum Answer {
    /// The return value: a stream with one item (possibly null).
    Value(Stream),
    /// The call failed: raised on the controller as `class: message`.
    Exception {
        /// Java class of the exception (declared in the registry, e.g. `java.io.IOException`).
        class: String,
        /// Its message.
        message: String,
    },
}

impl Answer {
    /// A `null` / `Void` answer.
    pub fn null() -> Answer {
        Answer::Value(Stream {
            heap: Heap::new(),
            items: vec![Item::Value(Value::Null)],
        })
    }

    /// An `IOException` answer.
    pub fn io_error(message: impl Into<String>) -> Answer {
        Answer::Exception {
            class: "java.io.IOException".into(),
            message: message.into(),
        }
    }
}

impl fmt::Debug for Answer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Answer::Value(s) => write!(f, "Value({:?})", s.items.first()),
            Answer::Exception { class, message } => write!(f, "Exception({class}: {message})"),
        }
    }
}

fn encode_or_io_error(stream: &Stream) -> Result<Vec<u8>, String> {
    javaser::encode(stream).map_err(|e| e.to_string())
}

/// `MultiClassLoaderSerializer`'s tag for a class of the bootstrap class loader.
pub const TAG_SYSTEM: i32 = -3;
/// Its tag for "your own class loader export `oid`" (followed by the oid).
pub const TAG_LOCAL: i32 = -1;

/// True for classes the controller must load from the bootstrap class loader: `java.*`
/// classes and arrays of them or of primitives.
fn is_system_class(name: &str) -> bool {
    let element = name.trim_start_matches('[');
    if element.len() < name.len() {
        // An array: `[I`, `[Ljava.lang.String;` …
        return match element.strip_prefix('L') {
            Some(c) => c.starts_with("java."),
            None => true,
        };
    }
    name.starts_with("java.")
}

/// Gives every class descriptor of a nested stream the class-loader tag remoting's
/// `MultiClassLoaderSerializer` reads when the agent advertised MULTI_CLASSLOADER
/// (remoting-protocol.md §6.2): `-3` for JDK classes, `-1 <loader>` (the controller's own
/// class-loader export, from the request's `classLoaderProxy`) for the others. Tags already
/// there (objects echoed from the controller's stream) are replaced: they belong to that
/// stream. Without a loader every class gets `-3`, which the controller resolves in its
/// default loader.
pub fn tag_class_loaders(stream: &mut Stream, loader: Option<i32>) {
    let ids: Vec<javaser::Id> = stream.heap.iter().map(|(id, _)| id).collect();
    for id in ids {
        let system = match stream.heap.get(id) {
            Some(Entry::ClassDesc(d)) => is_system_class(&d.name.to_string()),
            Some(Entry::ProxyDesc(p)) => {
                p.interfaces.iter().all(|i| is_system_class(&i.to_string()))
            }
            _ => continue,
        };
        let mut tag = Vec::with_capacity(8);
        match loader {
            Some(oid) if !system => {
                tag.extend_from_slice(&TAG_LOCAL.to_be_bytes());
                tag.extend_from_slice(&oid.to_be_bytes());
            }
            _ => tag.extend_from_slice(&TAG_SYSTEM.to_be_bytes()),
        }
        let annotation = vec![javaser::Content::Block(javaser::Block::new(tag))];
        match stream.heap.get_mut(id) {
            Some(Entry::ClassDesc(d)) => d.annotation = annotation,
            Some(Entry::ProxyDesc(p)) => p.annotation = annotation,
            _ => {}
        }
    }
}

/// Encodes a nested stream (a callable or an answer), with class-loader tags when `tags`
/// holds `Some(loader)` (see [`tag_class_loaders`]).
fn encode_nested(stream: &Stream, tags: Option<Option<i32>>) -> Result<Vec<u8>, String> {
    match tags {
        None => encode_or_io_error(stream),
        Some(loader) => {
            let mut s = stream.clone();
            tag_class_loaders(&mut s, loader);
            encode_or_io_error(&s)
        }
    }
}

/// A Throwable of `class` (a declared IOException-like class) with `message`: no cause
/// (self-reference), empty stack trace, an empty suppressed list.
pub fn exception(
    b: &mut Builder,
    class: &str,
    message: &str,
) -> Result<Value, javaser::BuildError> {
    let msg = b.string(message);
    let trace = b.array("[Ljava.lang.StackTraceElement;", ArrayData::Object(vec![]))?;
    let suppressed = b.array_list(&[])?;
    let e = b.object(
        class,
        &[
            ("detailMessage", msg),
            ("stackTrace", trace),
            ("suppressedExceptions", suppressed),
        ],
    )?;
    b.set_field(e, "cause", e)?;
    b.set_data(e, "java.lang.Throwable", vec![])?;
    Ok(e)
}

fn exception_stream(
    reg: &Registry,
    class: &str,
    message: &str,
    tags: Option<Option<i32>>,
) -> Result<Vec<u8>, String> {
    let mut b = Builder::new(reg);
    let e = exception(&mut b, class, message).map_err(|e| e.to_string())?;
    encode_nested(&b.into_stream(vec![Item::Value(e)]), tags)
}

/// The holder of a `UserRequest`'s result, with its nested streams already written.
enum Holder {
    Normal(Vec<u8>),
    Exception {
        proxy: Vec<u8>,
        raw: Option<Vec<u8>>,
    },
    /// The answer could not be serialized: the call fails with this message.
    Unwritable(String),
}

fn holder(reg: &Registry, answer: &Answer, tags: Option<Option<i32>>) -> Holder {
    let written = match answer {
        Answer::Value(stream) => encode_nested(stream, tags).map(Holder::Normal),
        Answer::Exception { class, message } => {
            exception_stream(reg, PROXY_EXCEPTION, &format!("{class}: {message}"), tags).map(
                |proxy| Holder::Exception {
                    proxy,
                    raw: exception_stream(reg, class, message, tags).ok(),
                },
            )
        }
    };
    written.unwrap_or_else(Holder::Unwritable)
}

/// The `Response` command answering request `id` with `answer`, its nested streams without
/// class-loader tags (for a peer that did not get MULTI_CLASSLOADER from us).
pub fn response(reg: &Registry, id: i32, last_io_id: i32, answer: &Answer) -> Vec<u8> {
    response_tagged(reg, id, last_io_id, answer, None)
}

/// The `Response` command answering request `id` with `answer`; with `tags` =
/// `Some(loader)` its nested streams carry class-loader tags ([`tag_class_loaders`]), as a
/// controller that got MULTI_CLASSLOADER from the agent reads them.
pub fn response_tagged(
    reg: &Registry,
    id: i32,
    last_io_id: i32,
    answer: &Answer,
    tags: Option<Option<i32>>,
) -> Vec<u8> {
    let holder = holder(reg, answer, tags);
    let mut b = Builder::new(reg);
    let built = (|| -> Result<Value, javaser::BuildError> {
        let (return_value, exception) = match holder {
            Holder::Normal(bytes) => {
                let arr = b.array("[B", ArrayData::Byte(bytes))?;
                (
                    b.object(NORMAL_RESPONSE, &[("response", arr)])?,
                    Value::Null,
                )
            }
            Holder::Exception { proxy, raw } => {
                let p = b.array("[B", ArrayData::Byte(proxy))?;
                let r = match raw {
                    Some(r) => b.array("[B", ArrayData::Byte(r))?,
                    None => Value::Null,
                };
                let h = b.object(
                    EXCEPTION_RESPONSE,
                    &[("proxyResponse", p), ("rawResponse", r)],
                )?;
                (h, Value::Null)
            }
            Holder::Unwritable(msg) => {
                (Value::Null, exception(&mut b, "java.io.IOException", &msg)?)
            }
        };
        b.object(
            RESPONSE,
            &[
                ("id", Value::Int(id)),
                ("lastIoId", Value::Int(last_io_id)),
                ("exception", exception),
                ("returnValue", return_value),
            ],
        )
    })();
    let resp = built.expect("remoting classes are declared in classes::registry");
    javaser::encode(&b.into_stream(vec![Item::Value(resp)]))
        .expect("a Response built from declared classes always encodes")
}

/// `ProxyOutputStream$Chunk`: `data` for the controller's exported stream `oid`, built
/// through the codec (the reference form; [`stream_chunk`] is the fast path).
pub fn stream_chunk_via_codec(
    reg: &Registry,
    io_id: i32,
    oid: i32,
    request_id: i32,
    data: &[u8],
) -> Vec<u8> {
    let mut b = Builder::new(reg);
    let built = (|| -> Result<Value, javaser::BuildError> {
        let buf = b.array("[B", ArrayData::Byte(data.to_vec()))?;
        b.object(
            STREAM_CHUNK,
            &[
                ("ioId", Value::Int(io_id)),
                ("oid", Value::Int(oid)),
                ("requestId", Value::Int(request_id)),
                ("buf", buf),
            ],
        )
    })();
    let c = built.expect("ProxyOutputStream$Chunk is declared");
    javaser::encode(&b.into_stream(vec![Item::Value(c)])).expect("Chunk encodes")
}

/// A `ProxyOutputStream$Chunk` stream with its three ints and the byte[] length as holes:
/// only they and the data change from chunk to chunk, so the hot path of a file transfer
/// copies the data once instead of going through the codec.
struct ChunkTemplate {
    bytes: Vec<u8>,
    io_id_at: usize,
    oid_at: usize,
    request_id_at: usize,
}

const MARK_IO: i32 = 0x7a5a_0001;
const MARK_OID: i32 = 0x7a5a_0002;
const MARK_REQ: i32 = 0x7a5a_0003;

fn chunk_template() -> &'static ChunkTemplate {
    static T: std::sync::OnceLock<ChunkTemplate> = std::sync::OnceLock::new();
    T.get_or_init(|| {
        let bytes = stream_chunk_via_codec(&registry(), MARK_IO, MARK_OID, MARK_REQ, &[]);
        let find = |m: i32| {
            bytes
                .windows(4)
                .position(|w| w == m.to_be_bytes())
                .expect("the template holds each marker")
        };
        // The stream ends with the array length (0) and no data.
        debug_assert_eq!(&bytes[bytes.len() - 4..], &[0, 0, 0, 0]);
        ChunkTemplate {
            io_id_at: find(MARK_IO),
            oid_at: find(MARK_OID),
            request_id_at: find(MARK_REQ),
            bytes,
        }
    })
}

/// `ProxyOutputStream$Chunk`: `data` for the controller's exported stream `oid`. Byte for
/// byte what [`stream_chunk_via_codec`] writes, with one copy of `data`.
pub fn stream_chunk(io_id: i32, oid: i32, request_id: i32, data: &[u8]) -> Vec<u8> {
    let t = chunk_template();
    let head = t.bytes.len() - 4;
    let mut out = Vec::with_capacity(head + 4 + data.len());
    out.extend_from_slice(&t.bytes[..head]);
    out[t.io_id_at..t.io_id_at + 4].copy_from_slice(&io_id.to_be_bytes());
    out[t.oid_at..t.oid_at + 4].copy_from_slice(&oid.to_be_bytes());
    out[t.request_id_at..t.request_id_at + 4].copy_from_slice(&request_id.to_be_bytes());
    out.extend_from_slice(&(data.len() as i32).to_be_bytes());
    out.extend_from_slice(data);
    out
}

/// An error carried by `ProxyOutputStream$EOF`, raised on the reading side.
pub struct StreamError<'a> {
    /// Exception class: `java.io.IOException` or `java.nio.file.NoSuchFileException`.
    pub class: &'a str,
    /// Its message (for `NoSuchFileException`: the file).
    pub message: &'a str,
}

/// `ProxyOutputStream$EOF`: close (and unexport) the controller's stream `oid`, optionally
/// with the error that ended it.
pub fn stream_eof(
    reg: &Registry,
    io_id: i32,
    oid: i32,
    request_id: i32,
    error: Option<StreamError<'_>>,
) -> Vec<u8> {
    let mut b = Builder::new(reg);
    let built = (|| -> Result<Value, javaser::BuildError> {
        let error = match error {
            None => Value::Null,
            Some(e) if e.class == "java.nio.file.NoSuchFileException" => {
                let x = exception(&mut b, e.class, "")?;
                b.set_field(x, "detailMessage", Value::Null)?;
                let file = b.string(e.message);
                b.set_field(x, "file", file)?;
                x
            }
            Some(e) => exception(&mut b, e.class, e.message)?,
        };
        b.object(
            STREAM_EOF,
            &[
                ("ioId", Value::Int(io_id)),
                ("oid", Value::Int(oid)),
                ("requestId", Value::Int(request_id)),
                ("error", error),
            ],
        )
    })();
    let c = built.expect("ProxyOutputStream$EOF and its exceptions are declared");
    javaser::encode(&b.into_stream(vec![Item::Value(c)])).expect("EOF encodes")
}

/// One command object of `class` with int fields, as a stream (createdAt null).
fn int_command(reg: &Registry, class: &str, fields: &[(&str, i32)]) -> Vec<u8> {
    let mut b = Builder::new(reg);
    let fields: Vec<(&str, Value)> = fields.iter().map(|(n, v)| (*n, Value::Int(*v))).collect();
    let c = b
        .object(class, &fields)
        .expect("stream commands are declared in classes::registry");
    javaser::encode(&b.into_stream(vec![Item::Value(c)])).expect("a stream command encodes")
}

/// `ProxyOutputStream$Unexport`: the agent stops writing into the controller's stream `oid`
/// without closing it (a build log that other writers share).
pub fn stream_unexport(reg: &Registry, io_id: i32, oid: i32) -> Vec<u8> {
    int_command(reg, STREAM_UNEXPORT, &[("ioId", io_id), ("oid", oid)])
}

/// The `Response` to a `ProxyInputStream$Chunk` read of the agent's InputStream: a
/// `ProxyInputStream$Buffer` with the bytes (`None`: the end, `len` -1), or the read's error.
pub fn buffer_response(reg: &Registry, id: i32, read: Result<Option<&[u8]>, &str>) -> Vec<u8> {
    let mut b = Builder::new(reg);
    let built = (|| -> Result<Value, javaser::BuildError> {
        let (value, exception) = match read {
            Ok(data) => {
                let (len, bytes) = match data {
                    Some(d) => (d.len() as i32, d.to_vec()),
                    None => (-1, Vec::new()),
                };
                let buf = b.array("[B", ArrayData::Byte(bytes))?;
                let v = b.object(INPUT_BUFFER, &[("len", Value::Int(len)), ("buf", buf)])?;
                (v, Value::Null)
            }
            Err(e) => (Value::Null, exception(&mut b, "java.io.IOException", e)?),
        };
        b.object(
            RESPONSE,
            &[
                ("id", Value::Int(id)),
                ("exception", exception),
                ("returnValue", value),
            ],
        )
    })();
    let r = built.expect("Response and ProxyInputStream$Buffer are declared");
    javaser::encode(&b.into_stream(vec![Item::Value(r)])).expect("Response encodes")
}

/// `ProxyOutputStream$Ack`: the agent consumed `size` bytes the controller wrote into the
/// agent's stream `oid`; the controller's window for it grows by that much.
pub fn stream_ack(reg: &Registry, oid: i32, size: i32) -> Vec<u8> {
    int_command(reg, STREAM_ACK, &[("oid", oid), ("size", size)])
}

/// `ProxyOutputStream$NotifyDeadWriter`: the agent's stream `oid` can take no more bytes.
pub fn stream_dead(reg: &Registry, oid: i32) -> Vec<u8> {
    int_command(reg, STREAM_DEAD, &[("oid", oid)])
}

/// `ProxyInputStream$Chunk`: request `id` to read up to `len` bytes from the controller's
/// exported InputStream `oid`; answered by a `ProxyInputStream$Buffer`.
pub fn input_read(reg: &Registry, id: i32, oid: i32, len: i32) -> Vec<u8> {
    int_command(reg, INPUT_CHUNK, &[("id", id), ("len", len), ("oid", oid)])
}

/// `ProxyInputStream$EOF`: the agent is done reading the controller's InputStream `oid`.
pub fn input_eof(reg: &Registry, oid: i32) -> Vec<u8> {
    int_command(reg, INPUT_EOF, &[("oid", oid)])
}

/// `Pipe$ConnectCommand`: the agent reads the local-to-remote pipe the controller announced
/// as `oid_ros` through its own export `oid_pos`.
pub fn pipe_connect(reg: &Registry, oid_pos: i32, oid_ros: i32) -> Vec<u8> {
    int_command(
        reg,
        PIPE_CONNECT,
        &[("oidPos", oid_pos), ("oidRos", oid_ros)],
    )
}

/// A `UserRequest` from the agent running `hudson.remoting.PingThread$Ping` on the
/// controller. The class loader is named by the controller's own oid
/// (`RemoteClassLoader$RemoteIClassLoader`, remoting-protocol.md §7.2), so no export of the
/// agent is involved. With `tagged` (MULTI_CLASSLOADER) the nested stream names that loader
/// as `-1 <oid>` (§7.2).
pub fn ping_request(reg: &Registry, id: i32, loader_oid: i32, tagged: bool) -> Vec<u8> {
    let mut nb = Builder::new(reg);
    let ping = nb
        .object("hudson.remoting.PingThread$Ping", &[])
        .expect("PingThread$Ping is declared");
    let mut stream = nb.into_stream(vec![Item::Value(ping)]);
    if tagged {
        tag_class_loaders(&mut stream, Some(loader_oid));
    }
    let nested = javaser::encode(&stream).expect("Ping encodes");
    let mut b = Builder::new(reg);
    let built = (|| -> Result<Value, javaser::BuildError> {
        let loader = b.object(
            "hudson.remoting.RemoteClassLoader$RemoteIClassLoader",
            &[("oid", Value::Int(loader_oid))],
        )?;
        let bytes = b.array("[B", ArrayData::Byte(nested))?;
        let text = b.string("hudson.remoting.PingThread$Ping");
        b.object(
            USER_REQUEST,
            &[
                ("id", Value::Int(id)),
                ("classLoaderProxy", loader),
                ("request", bytes),
                ("toString", text),
            ],
        )
    })();
    let r = built.expect("UserRequest classes are declared");
    javaser::encode(&b.into_stream(vec![Item::Value(r)])).expect("UserRequest encodes")
}

/// A plain `Response` (for requests that are not `UserRequest`s): `returnValue` null, or
/// `exception` an `IOException` with `error`.
pub fn plain_response(reg: &Registry, id: i32, error: Option<&str>) -> Vec<u8> {
    let mut b = Builder::new(reg);
    let built = (|| -> Result<Value, javaser::BuildError> {
        let exception = match error {
            Some(m) => exception(&mut b, "java.io.IOException", m)?,
            None => Value::Null,
        };
        b.object(
            RESPONSE,
            &[("id", Value::Int(id)), ("exception", exception)],
        )
    })();
    let r = built.expect("Response is declared");
    javaser::encode(&b.into_stream(vec![Item::Value(r)])).expect("Response encodes")
}

/// What an RPC on agent export `oid` answers: the channel (oid 1) has no properties, so
/// `getProperty` and `waitForProperty` return null; anything else is an error.
pub fn rpc_result(oid: i32, method: &str) -> Result<(), String> {
    match (oid, method) {
        (1, "getProperty" | "waitForProperty") => Ok(()),
        _ => Err(format!(
            "nectr-agent has no exported object {oid} with a method {method:?} (it was released, or it belongs to plugin code nectr does not run)"
        )),
    }
}

/// `Request$Cancel`: interrupt the peer's execution of request `id`.
pub fn cancel(reg: &Registry, id: i32) -> Vec<u8> {
    int_command(reg, CANCEL, &[("id", id)])
}

/// `Channel$CloseCommand`.
pub fn close(reg: &Registry) -> Vec<u8> {
    let mut b = Builder::new(reg);
    let c = b
        .object(CLOSE_COMMAND, &[])
        .expect("CloseCommand is declared");
    javaser::encode(&b.into_stream(vec![Item::Value(c)])).expect("CloseCommand encodes")
}

/// The `hudson.remoting.Capability` object with `mask`, as a serialization stream.
pub fn capability(reg: &Registry, mask: i64) -> Vec<u8> {
    let mut b = Builder::new(reg);
    let c = b
        .object(CAPABILITY, &[("mask", Value::Long(mask))])
        .expect("Capability is declared");
    javaser::encode(&b.into_stream(vec![Item::Value(c)])).expect("Capability encodes")
}

/// Reads a `Capability` stream and returns its mask.
pub fn read_capability(bytes: &[u8]) -> Option<i64> {
    let s = javaser::decode(bytes, &decode_options()).ok()?;
    let Some(Item::Value(Value::Ref(id))) = s.items.first() else {
        return None;
    };
    if !matches!(s.heap.get(*id), Some(Entry::Object(_)))
        || !s.heap.class_name(*id)?.eq_str(CAPABILITY)
    {
        return None;
    }
    match s.heap.field(*id, "mask")? {
        Value::Long(m) => Some(*m),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fast_chunk_equals_the_codec_chunk() {
        let reg = registry();
        for (io, oid, req, len) in [(1, 2, 3, 0), (-1, 7, 0, 5), (i32::MAX, 1, 9, 70_000)] {
            let data: Vec<u8> = (0..len).map(|i| i as u8).collect();
            assert_eq!(
                stream_chunk(io, oid, req, &data),
                stream_chunk_via_codec(&reg, io, oid, req, &data)
            );
        }
    }

    #[test]
    fn capability_is_byte_identical_to_the_java_agent() {
        // remoting-protocol.md §2.5: the standard agent's capability (mask 0x1FE), base64.
        let expected =
            "rO0ABXNyABpodWRzb24ucmVtb3RpbmcuQ2FwYWJpbGl0eQAAAAAAAAABAgABSgAEbWFza3hwAAAAAAAAAf4=";
        let bytes = capability(&registry(), 0x1fe);
        use base64::Engine;
        assert_eq!(
            base64::engine::general_purpose::STANDARD.encode(&bytes),
            expected
        );
        assert_eq!(read_capability(&bytes), Some(0x1fe));
    }

    #[test]
    fn nested_streams_get_class_loader_tags_jdk_classes_the_system_tag() {
        let reg = registry();
        let answer = Answer::io_error("boom");
        let bytes = response_tagged(&reg, 7, 0, &answer, Some(Some(5)));
        let s = javaser::decode(&bytes, &decode_options()).unwrap();
        let Some(Item::Value(Value::Ref(top))) = s.items.first() else {
            panic!()
        };
        let holder = s.heap.field(*top, "returnValue").unwrap().as_ref().unwrap();
        let mut seen = Vec::new();
        for field in ["proxyResponse", "rawResponse"] {
            let arr = s.heap.field(holder, field).unwrap().as_ref().unwrap();
            let ArrayData::Byte(nested) = &s.heap.array(arr).unwrap().data else {
                panic!()
            };
            let n = javaser::decode(nested, &decode_options()).unwrap();
            for (_, e) in n.heap.iter() {
                if let Entry::ClassDesc(d) = e {
                    let tag = match d.annotation.as_slice() {
                        [javaser::Content::Block(b)] => b.data.clone(),
                        other => panic!("{}: {other:?}", d.name),
                    };
                    seen.push((d.name.to_string(), tag));
                }
            }
        }
        let tag_of = |c: &str| seen.iter().find(|(n, _)| n == c).unwrap().1.clone();
        assert_eq!(tag_of(PROXY_EXCEPTION), [255, 255, 255, 255, 0, 0, 0, 5]);
        assert_eq!(tag_of("java.io.IOException"), [255, 255, 255, 253]);
        assert_eq!(
            tag_of("[Ljava.lang.StackTraceElement;"),
            [255, 255, 255, 253]
        );
        assert!(is_system_class("[B") && !is_system_class("[Lhudson.FilePath;"));
        // Untagged, the same answer has empty annotations.
        let plain = response(&reg, 7, 0, &answer);
        assert!(plain.len() < bytes.len());
    }

    #[test]
    fn a_void_response_holds_the_null_stream() {
        let reg = registry();
        let bytes = response(&reg, 7, 0, &Answer::null());
        match read(&bytes).unwrap() {
            Command::Response { id, reply } => assert_eq!((id, reply), (7, Reply::Done)),
            other => panic!("{other:?}"),
        }
        let s = javaser::decode(&bytes, &decode_options()).unwrap();
        let Some(Item::Value(Value::Ref(top))) = s.items.first() else {
            panic!()
        };
        let holder = s.heap.field(*top, "returnValue").unwrap().as_ref().unwrap();
        let arr = s.heap.field(holder, "response").unwrap().as_ref().unwrap();
        assert_eq!(
            s.heap.array(arr).unwrap().data,
            ArrayData::Byte(vec![0xac, 0xed, 0, 5, 0x70])
        );
    }
}
