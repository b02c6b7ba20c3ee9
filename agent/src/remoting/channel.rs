//! The channel as a state machine: bytes from the transport in, events and frames out. No IO,
//! no clock. The driver (`crate::agent`) runs handlers for [`Event::Call`] and hands their
//! answers back through [`Channel::answer`].

use super::classes;
use super::command::{self, Answer, Command, Reply, UserRequest};
use super::frame::{self, ChunkReader};
use crate::javaser::Registry;

/// Largest command accepted from the controller.
pub const MAX_COMMAND: usize = 64 << 20;

/// Capability bits (`hudson.remoting.Capability`).
pub mod capability {
    /// Nested streams carry class-loader annotations.
    pub const MULTI_CLASSLOADER: i64 = 1 << 1;
    /// Stream windows with acks.
    pub const PIPE_THROTTLING: i64 = 1 << 2;
    /// Chunked transport (always on for JNLP4 and WebSocket).
    pub const CHUNKED_ENCODING: i64 = 1 << 7;
    /// Answers as `NormalResponse` / `ExceptionResponse`.
    pub const PROXY_EXCEPTION_FALLBACK: i64 = 1 << 8;
    /// Class loading in batches of predicted classes, with jars cached by checksum (only the
    /// JVM helper's link advertises it: nectr itself loads no classes).
    pub const PREFETCH: i64 = 1 << 4;
    /// `RemoteInputStream`s may arrive as pushed pipes (`Pipe` + `ConnectCommand`).
    pub const GREEDY_REMOTE_INPUTSTREAM: i64 = 1 << 5;
    /// Pipe window of each stream when the reader advertised [`PIPE_THROTTLING`]
    /// (`hudson.remoting.Channel.pipeWindowSize`).
    pub const PIPE_WINDOW: i64 = 1 << 20;
    /// What nectr advertises (remoting-protocol.md §4.1): nested streams with class-loader
    /// tags (each class of a callable names the plugin class loader it comes from, which the
    /// JVM helper needs to load plugin code; the agent's answers carry tags too), windows with
    /// acks in both directions, greedy input streams, chunking and the modern answer form.
    pub const NECTR: i64 = MULTI_CLASSLOADER
        | PIPE_THROTTLING
        | GREEDY_REMOTE_INPUTSTREAM
        | CHUNKED_ENCODING
        | PROXY_EXCEPTION_FALLBACK;
}

/// Export ids from here up belong to the JVM helper behind the agent (`crate::jvm`): the
/// agent's own exports stay below (they count up from 2), and commands naming an id at or
/// above it are handed to the relay as [`Event::Relay`].
pub const HELPER_OID_BASE: i32 = 1 << 30;

/// A command for the relay to the JVM helper, as it arrived.
#[derive(Debug)]
pub struct Relayed {
    /// The command's serialization stream, byte for byte.
    pub payload: Vec<u8>,
    /// What the agent read in it.
    pub command: Command,
}

/// What happened on the channel.
#[derive(Debug)]
pub enum Event {
    /// A command for the JVM helper's side of the agent: it names one of the helper's exports
    /// (at or above [`HELPER_OID_BASE`]), answers a request the relay sent
    /// ([`Channel::relay_request`]), or is a stream command only the helper uses
    /// (`ProxyWriter`, `Pipe$ConnectCommand`).
    Relay(Box<Relayed>),
    /// Run this callable and call [`Channel::answer`] with its result.
    Call(Box<UserRequest>),
    /// The controller asks to interrupt request `id`.
    Cancel(i32),
    /// The controller answered one of the agent's requests ([`Channel::ping`],
    /// [`Channel::read_input`]).
    Response {
        /// The request.
        id: i32,
        /// What came back.
        reply: Reply,
    },
    /// The controller consumed `size` bytes of its stream `oid`: the agent may send more.
    StreamAck {
        /// The controller's export.
        oid: i32,
        /// Bytes.
        size: i32,
    },
    /// The controller's stream `oid` failed: stop writing to it.
    StreamDead(i32),
    /// Bytes for one of the agent's exported output streams.
    StreamData {
        /// The export.
        oid: i32,
        /// The bytes.
        data: Vec<u8>,
    },
    /// Flush one of the agent's exported output streams.
    StreamFlush(i32),
    /// Close (EOF) or release (Unexport) one of the agent's exported output streams.
    StreamEnd {
        /// The export.
        oid: i32,
        /// True for EOF.
        close: bool,
        /// The writer's failure carried by the EOF.
        error: Option<String>,
    },
    /// The controller reads up to `len` bytes from the agent's exported InputStream `oid`;
    /// answer with [`Channel::answer_read`].
    InputRead {
        /// The request to answer.
        id: i32,
        /// The agent's export.
        oid: i32,
        /// Most bytes wanted.
        len: i32,
    },
    /// The controller is done reading the agent's exported InputStream `oid`.
    InputClose(i32),
    /// The controller closed the channel in order; the agent's own close was queued.
    Closed,
    /// A command was not understood but answered with an error (log it).
    Rejected {
        /// Request id answered.
        id: i32,
        /// Why.
        reason: String,
    },
    /// A command that needs no action (log at debug).
    Ignored(String),
    /// The byte stream is broken beyond recovery: close the connection.
    Fatal(String),
}

/// One remoting channel.
pub struct Channel {
    reader: ChunkReader,
    registry: Registry,
    outbox: Vec<Vec<u8>>,
    closing: bool,
    /// Ids of the agent's own requests still waiting for a `Response`.
    pending: std::collections::HashSet<i32>,
    next_id: i32,
    /// Ids of requests the relay sent for the JVM helper, still waiting for a `Response`.
    relayed: std::collections::HashSet<i32>,
    /// The controller's class-loader export, learned from its first `UserRequest`.
    loader_oid: Option<i32>,
    /// The class-loader export of each call not answered yet (its answer's classes are tagged
    /// with it under MULTI_CLASSLOADER).
    call_loaders: std::collections::HashMap<i32, i32>,
    /// Nested streams carry class-loader tags (the agent advertised MULTI_CLASSLOADER).
    tagged: bool,
}

impl Default for Channel {
    fn default() -> Self {
        Channel::new()
    }
}

impl Channel {
    /// A channel ready for its first bytes, writing with remoting's own classes.
    pub fn new() -> Self {
        Channel::with_registry(classes::registry())
    }

    /// A channel writing with `registry` (remoting's classes plus whatever exception classes
    /// the agent's answers raise).
    pub fn with_registry(registry: Registry) -> Self {
        Channel {
            reader: ChunkReader::new(MAX_COMMAND),
            registry,
            outbox: Vec::new(),
            closing: false,
            pending: std::collections::HashSet::new(),
            next_id: 1,
            relayed: std::collections::HashSet::new(),
            loader_oid: None,
            call_loaders: std::collections::HashMap::new(),
            tagged: capability::NECTR & capability::MULTI_CLASSLOADER != 0,
        }
    }

    /// The class registry the channel writes with.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Frames to send, in order (one WebSocket message each).
    pub fn take_frames(&mut self) -> Vec<Vec<u8>> {
        std::mem::take(&mut self.outbox)
    }

    /// True once a close was sent or received.
    pub fn is_closing(&self) -> bool {
        self.closing
    }

    /// Queues a command written elsewhere (stream commands from handlers).
    pub fn send_command(&mut self, command: &[u8]) {
        self.send(command);
    }

    fn send(&mut self, command: &[u8]) {
        self.outbox.extend(frame::chunks(command));
    }

    /// Feeds bytes received from the transport.
    pub fn receive(&mut self, bytes: &[u8]) -> Vec<Event> {
        self.reader.push(bytes);
        let mut events = Vec::new();
        loop {
            let payload = match self.reader.next_command() {
                Ok(Some(p)) => p,
                Ok(None) => break,
                Err(e) => {
                    events.push(Event::Fatal(e.to_string()));
                    break;
                }
            };
            match command::read(&payload) {
                Ok(c) if self.is_relayed(&c) => events.push(Event::Relay(Box::new(Relayed {
                    payload,
                    command: c,
                }))),
                read => self.dispatch(read, payload, &mut events),
            }
        }
        events
    }

    /// True for commands the relay to the JVM helper handles (see [`Event::Relay`]).
    fn is_relayed(&mut self, c: &Command) -> bool {
        match c {
            Command::Response { id, .. } => self.relayed.remove(id),
            Command::Rpc { oid, .. }
            | Command::Unexport { oid }
            | Command::StreamChunk { oid, .. }
            | Command::StreamFlush { oid }
            | Command::StreamEnd { oid, .. }
            | Command::InputRead { oid, .. }
            | Command::InputClose { oid } => *oid >= HELPER_OID_BASE,
            Command::Other { class, .. } => {
                class == classes::PIPE_CONNECT || class.starts_with("hudson.remoting.ProxyWriter$")
            }
            _ => false,
        }
    }

    fn dispatch(
        &mut self,
        read: Result<Command, command::CommandError>,
        payload: Vec<u8>,
        events: &mut Vec<Event>,
    ) {
        match read {
            Ok(Command::UserRequest(mut r)) => {
                r.raw = payload;
                if self.loader_oid.is_none() {
                    self.loader_oid = r.class_loader_oid;
                }
                if let Some(oid) = r.class_loader_oid {
                    self.call_loaders.insert(r.id, oid);
                }
                events.push(Event::Call(Box::new(r)))
            }
            Ok(Command::Cancel { id }) => events.push(Event::Cancel(id)),
            Ok(Command::StreamChunk { oid, data }) => events.push(Event::StreamData { oid, data }),
            Ok(Command::StreamFlush { oid }) => events.push(Event::StreamFlush(oid)),
            Ok(Command::StreamEnd { oid, close, error }) => {
                events.push(Event::StreamEnd { oid, close, error })
            }
            Ok(Command::Unexport { oid }) => events.push(Event::StreamEnd {
                oid,
                close: false,
                error: None,
            }),
            Ok(Command::Rpc { id, oid, method }) => {
                let result = command::rpc_result(oid, &method);
                let r = command::plain_response(
                    &self.registry,
                    id,
                    result.as_ref().err().map(String::as_str),
                );
                self.send(&r);
                if let Err(reason) = result {
                    events.push(Event::Rejected { id, reason });
                }
            }
            Ok(Command::Close) => {
                if !self.closing {
                    self.closing = true;
                    let c = command::close(&self.registry);
                    self.send(&c);
                }
                events.push(Event::Closed);
            }
            Ok(Command::StreamAck { oid, size }) => events.push(Event::StreamAck { oid, size }),
            Ok(Command::InputRead { id, oid, len }) => {
                events.push(Event::InputRead { id, oid, len })
            }
            Ok(Command::InputClose { oid }) => events.push(Event::InputClose(oid)),
            Ok(Command::StreamDead { oid }) => events.push(Event::StreamDead(oid)),
            Ok(Command::Response { id, reply }) => {
                if self.pending.remove(&id) {
                    events.push(Event::Response { id, reply });
                } else {
                    events.push(Event::Ignored(format!(
                        "Response to request {id}, which this agent did not send"
                    )))
                }
            }
            Ok(Command::Other {
                class,
                request_id: Some(id),
            }) => {
                let reason = format!("nectr-agent does not support the remoting command {class}");
                // Not a UserRequest: the answer is a plain Response with the exception.
                let r = command::plain_response(&self.registry, id, Some(&reason));
                self.send(&r);
                events.push(Event::Rejected { id, reason });
            }
            Ok(Command::Other {
                class,
                request_id: None,
            }) => events.push(Event::Ignored(class)),
            Err(e) => match e.request_id {
                Some(id) => {
                    let reason = format!("nectr-agent could not read this request: {}", e.message);
                    self.answer(id, 0, &Answer::io_error(reason.clone()));
                    events.push(Event::Rejected { id, reason });
                }
                None => events.push(Event::Fatal(format!(
                    "unreadable command with no recoverable request id ({}); closing the channel",
                    e.message
                ))),
            },
        }
    }

    /// Queues the answer to request `id`.
    pub fn answer(&mut self, id: i32, last_io_id: i32, answer: &Answer) {
        let loader = self.call_loaders.remove(&id).or(self.loader_oid);
        let tags = self.tagged.then_some(loader);
        let r = command::response_tagged(&self.registry, id, last_io_id, answer, tags);
        self.send(&r);
    }

    /// Forgets call `id`, which someone else answers (the JVM helper).
    pub fn forget_call(&mut self, id: i32) {
        self.call_loaders.remove(&id);
    }

    /// Queues the answer to the controller's read `id` of an agent InputStream: the bytes,
    /// `None` at its end, or the read's error.
    pub fn answer_read(&mut self, id: i32, read: Result<Option<&[u8]>, &str>) {
        let r = command::buffer_response(&self.registry, id, read);
        self.send(&r);
    }

    /// Queues a `PingThread$Ping` to the controller and returns its request id; `None` until
    /// the controller's class-loader oid is known (from its first call).
    pub fn ping(&mut self) -> Option<i32> {
        let oid = self.loader_oid?;
        let id = self.new_request();
        let r = command::ping_request(&self.registry, id, oid, self.tagged);
        self.send(&r);
        Some(id)
    }

    /// Queues `ProxyOutputStream$Ack(oid, size)`: the agent consumed `size` bytes the
    /// controller wrote into the agent's stream `oid`.
    pub fn ack(&mut self, oid: i32, size: i32) {
        let a = command::stream_ack(&self.registry, oid, size);
        self.send(&a);
    }

    /// Queues a read of up to `len` bytes from the controller's InputStream `oid`
    /// (`ProxyInputStream$Chunk`) and returns its request id; the bytes come back as
    /// [`Event::Response`] with a [`Reply::Buffer`].
    pub fn read_input(&mut self, oid: i32, len: i32) -> i32 {
        let id = self.new_request();
        let r = command::input_read(&self.registry, id, oid, len);
        self.send(&r);
        id
    }

    /// The id of a new request of the agent's, awaiting its `Response`.
    fn new_request(&mut self) -> i32 {
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1).max(1);
        self.pending.insert(id);
        id
    }

    /// The id for a request the relay sends on behalf of the JVM helper: from the same counter
    /// as the agent's own, so the controller never sees two pending requests with one id. Its
    /// `Response` comes back as [`Event::Relay`].
    pub fn relay_request(&mut self) -> i32 {
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1).max(1);
        self.relayed.insert(id);
        id
    }

    /// Forgets a relayed request whose answer nobody waits for any more.
    pub fn forget_relayed(&mut self, id: i32) {
        self.relayed.remove(&id);
    }

    /// Queues an orderly close (`Channel$CloseCommand`).
    pub fn close(&mut self) {
        if !self.closing {
            self.closing = true;
            let c = command::close(&self.registry);
            self.send(&c);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::javaser::{self, ArrayData, Builder, ClassSpec, Item, Value};
    use crate::remoting::command::{self, Command};

    /// A `UserRequest` as the controller writes it (class-loader proxy in its
    /// `RemoteIClassLoader` form), carrying a callable of class `callable`.
    fn user_request(id: i32, callable: &str) -> Vec<u8> {
        let mut reg = classes::registry();
        reg.declare(ClassSpec::new(callable, 1));
        let mut nb = Builder::new(&reg);
        let c = nb.object(callable, &[]).unwrap();
        let nested = javaser::encode(&nb.into_stream(vec![Item::Value(c)])).unwrap();
        let mut b = Builder::new(&reg);
        let loader = b
            .object(
                "hudson.remoting.RemoteClassLoader$RemoteIClassLoader",
                &[("oid", Value::Int(2))],
            )
            .unwrap();
        let bytes = b.array("[B", ArrayData::Byte(nested)).unwrap();
        let text = b.string(callable);
        let r = b
            .object(
                classes::USER_REQUEST,
                &[
                    ("id", Value::Int(id)),
                    ("classLoaderProxy", loader),
                    ("request", bytes),
                    ("toString", text),
                ],
            )
            .unwrap();
        javaser::encode(&b.into_stream(vec![Item::Value(r)])).unwrap()
    }

    fn answers(frames: Vec<Vec<u8>>) -> Vec<i32> {
        let mut r = ChunkReader::new(MAX_COMMAND);
        r.push(&frames.concat());
        let mut ids = Vec::new();
        while let Some(c) = r.next_command().unwrap() {
            match command::read(&c).unwrap() {
                Command::Response { id, .. } => ids.push(id),
                other => panic!("unexpected {other:?}"),
            }
        }
        ids
    }

    #[test]
    fn a_user_request_becomes_a_call_and_its_answer_a_response() {
        let mut ch = Channel::new();
        let wire: Vec<u8> = frame::chunks(&user_request(5, "a.B")).concat();
        let events = ch.receive(&wire);
        let [Event::Call(req)] = events.as_slice() else {
            panic!("{events:?}")
        };
        assert_eq!((req.id, req.callable_class.as_str()), (5, "a.B"));
        assert_eq!(req.class_loader_oid, Some(2));
        ch.answer(5, 0, &Answer::null());
        assert_eq!(answers(ch.take_frames()), vec![5]);
    }

    #[test]
    fn pings_the_controller_with_its_class_loader_and_matches_the_answer() {
        let mut ch = Channel::new();
        assert_eq!(
            ch.ping(),
            None,
            "no class loader known before the first call"
        );
        ch.receive(&frame::chunks(&user_request(5, "a.B")).concat());
        let _ = ch.take_frames();
        let id = ch.ping().unwrap();
        let sent = ch.take_frames().concat();
        let mut r = ChunkReader::new(MAX_COMMAND);
        r.push(&sent);
        match command::read(&r.next_command().unwrap().unwrap()).unwrap() {
            Command::UserRequest(u) => {
                assert_eq!(u.id, id);
                assert_eq!(u.class_loader_oid, Some(2));
                assert_eq!(u.callable_class, "hudson.remoting.PingThread$Ping");
            }
            other => panic!("{other:?}"),
        }
        let reply = command::response(ch.registry(), id, 0, &Answer::null());
        let events = ch.receive(&frame::chunks(&reply).concat());
        assert!(
            matches!(
                events.as_slice(),
                [Event::Response {
                    reply: Reply::Done,
                    ..
                }]
            ),
            "{events:?}"
        );
    }

    #[test]
    fn a_direct_rpc_on_the_channel_export_gets_a_plain_null_response() {
        let mut reg = classes::registry();
        reg.declare(
            ClassSpec::new(classes::RPC_REQUEST, 1)
                .extends(classes::REQUEST)
                .field("oid", "I")
                .field("methodName", "Ljava/lang/String;"),
        );
        let rpc = |id: i32, oid: i32| {
            let mut b = Builder::new(&reg);
            let m = b.string("getProperty");
            let r = b
                .object(
                    classes::RPC_REQUEST,
                    &[
                        ("id", Value::Int(id)),
                        ("oid", Value::Int(oid)),
                        ("methodName", m),
                    ],
                )
                .unwrap();
            frame::chunks(&javaser::encode(&b.into_stream(vec![Item::Value(r)])).unwrap()).concat()
        };
        let mut ch = Channel::new();
        assert!(ch.receive(&rpc(3, 1)).is_empty());
        assert_eq!(answers(ch.take_frames()), vec![3]);
        let events = ch.receive(&rpc(4, 42));
        assert!(
            matches!(events.as_slice(), [Event::Rejected { id: 4, .. }]),
            "{events:?}"
        );
        assert_eq!(answers(ch.take_frames()), vec![4]);
    }

    #[test]
    fn unexport_releases_an_agent_export() {
        let reg = classes::registry();
        let mut b = Builder::new(&reg);
        let u = b
            .object(classes::UNEXPORT_COMMAND, &[("oid", Value::Int(7))])
            .unwrap();
        let bytes = javaser::encode(&b.into_stream(vec![Item::Value(u)])).unwrap();
        let mut ch = Channel::new();
        let events = ch.receive(&frame::chunks(&bytes).concat());
        assert!(
            matches!(
                events.as_slice(),
                [Event::StreamEnd {
                    oid: 7,
                    close: false,
                    error: None
                }]
            ),
            "{events:?}"
        );
    }

    #[test]
    fn garbage_without_a_request_id_is_fatal_and_nothing_panics() {
        let mut ch = Channel::new();
        let events = ch.receive(&frame::chunks(b"\xac\xed\x00\x05\x73garbage").concat());
        assert!(matches!(events.as_slice(), [Event::Fatal(_)]), "{events:?}");
    }

    #[test]
    fn an_unreadable_callable_is_answered_with_an_error() {
        let mut bytes = user_request(9, "a.B");
        // Corrupt the nested stream's magic: the outer command still decodes.
        let pos = bytes
            .windows(4)
            .rposition(|w| w == [0xac, 0xed, 0, 5])
            .unwrap();
        bytes[pos] = 0;
        let mut ch = Channel::new();
        let events = ch.receive(&frame::chunks(&bytes).concat());
        assert!(
            matches!(events.as_slice(), [Event::Rejected { id: 9, .. }]),
            "{events:?}"
        );
        assert_eq!(answers(ch.take_frames()), vec![9]);
    }
}
