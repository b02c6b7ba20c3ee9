//! The relay between the controller's channel and the helper JVM's link, sans-IO: which
//! command goes where, and the ids that must change on the way so that the controller sees
//! one agent (remoting-protocol.md §5).
//!
//! * **Request ids.** Requests from the controller keep their ids on the way to the helper
//!   (the controller's ids are unique among its pending requests; the helper only answers
//!   them). Requests from the helper (class loading through the controller's `IClassLoader`,
//!   reads of controller InputStreams, its own `UserRequest`s) get a fresh id from the
//!   agent's channel, which nectr's own requests share, and their answers get the helper's
//!   id back.
//! * **I/O ids.** Stream commands from the helper get a fresh I/O id from the agent's counter
//!   (its native writers use the same one); a `Response.lastIoId` of the helper is mapped to
//!   the agent id of that write, so the controller waits for the right one. The controller's
//!   I/O ids go to the helper unchanged (a `lastIoId` it never saw is "done" for remoting's
//!   `PipeWriter`).
//! * **Export ids.** The helper's exports are shown to the controller at
//!   `HELPER_OID_BASE + generation slot × 2^24 + helper oid`, above every native export. A
//!   restarted helper gets the next slot, so an id of a stopped helper is recognised as stale
//!   and answered with an error instead of reaching another object. Export ids are found at
//!   any depth ([`rewrite::map_exports`]): the sender's own ids are mapped on the way out, the
//!   ids going home on the way in.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};

use crate::javaser::Registry;
use crate::remoting::classes::*;
use crate::remoting::command::{self, Answer, StreamError, UserRequest};
use crate::remoting::rewrite::{self, Owner, Parsed};
use crate::remoting::{Channel, Relayed, HELPER_OID_BASE};

/// Export ids of one helper generation: `[1, SPAN)`.
pub const SPAN: i32 = 1 << 24;
/// Generation slots above [`HELPER_OID_BASE`]: 64 × 2^24 fills the ints up to `i32::MAX`.
pub const SLOTS: u32 = 64;
/// Helper→agent I/O id translations kept (a `lastIoId` older than that counts as done).
const IO_HISTORY: usize = 1 << 16;

/// What a relayed call of the controller was, to answer it if the helper goes away.
#[derive(Clone, Debug)]
enum Call {
    /// A `UserRequest`: answered with a `UserRequest$ExceptionResponse`.
    User(String),
    /// A direct `RPCRequest`: a plain `Response` with an exception.
    Plain(String),
    /// A `ProxyInputStream$Chunk` read: a `Response` with an exception.
    Read,
}

/// The helper's writes into one controller stream, for routing the controller's acks.
#[derive(Default)]
struct Writes {
    /// Sizes of the helper's chunks not yet acked, oldest first.
    sizes: VecDeque<i32>,
    /// The helper ended the stream (EOF or Unexport).
    ended: bool,
}

/// What to do after a command from the helper.
#[derive(Debug, PartialEq, Eq)]
pub enum Next {
    /// Keep going.
    Continue,
    /// The helper closed its channel (`Channel$CloseCommand`).
    Closed,
}

/// The relay's state for one controller connection.
pub struct Relay {
    gen: u32,
    /// Controller requests the helper is working on.
    calls: HashMap<i32, Call>,
    /// Helper requests at the controller: agent id → helper id.
    up: HashMap<i32, i32>,
    /// The same, helper id → agent id (for the helper's `Request$Cancel`).
    up_rev: HashMap<i32, i32>,
    /// Helper I/O id → agent I/O id.
    io: BTreeMap<i32, i32>,
    /// Controller streams the helper writes into (`ProxyOutputStream`), by controller oid.
    writes: HashMap<i32, Writes>,
    /// Controller InputStreams the helper reads, by controller oid.
    reads: HashSet<i32>,
}

impl Default for Relay {
    fn default() -> Self {
        Relay::new()
    }
}

/// The agent side the relay writes to.
pub struct Up<'a> {
    /// The controller's channel.
    pub channel: &'a mut Channel,
    /// The agent's I/O id counter (shared with native writers).
    pub next_io: &'a dyn Fn() -> i32,
}

fn registry_of<'a>(up: &'a Up<'_>) -> &'a Registry {
    up.channel.registry()
}

impl Relay {
    /// A relay with no helper yet.
    pub fn new() -> Self {
        Relay {
            gen: 0,
            calls: HashMap::new(),
            up: HashMap::new(),
            up_rev: HashMap::new(),
            io: BTreeMap::new(),
            writes: HashMap::new(),
            reads: HashSet::new(),
        }
    }

    /// A new helper (generation `gen`, counting from 1) takes over.
    pub fn start(&mut self, gen: u32) {
        self.gen = gen;
        self.io.clear();
    }

    /// The current generation (0: none yet).
    pub fn generation(&self) -> u32 {
        self.gen
    }

    /// Nothing is in flight: no call at the helper, no helper request at the controller.
    pub fn is_quiet(&self) -> bool {
        self.calls.is_empty() && self.up.is_empty()
    }

    /// Calls the helper is working on.
    pub fn pending(&self) -> usize {
        self.calls.len()
    }

    fn base(&self) -> i32 {
        HELPER_OID_BASE + ((self.gen % SLOTS) as i32) * SPAN
    }

    /// The id the controller sees for the helper's export `oid`.
    pub fn visible(&self, oid: i32) -> Result<i32, String> {
        if !(1..SPAN).contains(&oid) {
            return Err(format!(
                "the JVM helper used export id {oid}, outside the {SPAN} ids nectr-agent maps per helper"
            ));
        }
        Ok(self.base() + oid)
    }

    /// The helper's export id for the controller's `id`; an error for an id of an earlier
    /// helper or of nothing.
    pub fn local(&self, id: i32) -> Result<i32, String> {
        if id < HELPER_OID_BASE {
            return Err(format!(
                "object {id} was exported by nectr-agent itself, not by its JVM helper: plugin code cannot use it"
            ));
        }
        let slot = ((id - HELPER_OID_BASE) / SPAN) as u32;
        let oid = (id - HELPER_OID_BASE) % SPAN;
        if self.gen == 0 || slot != self.gen % SLOTS {
            return Err(format!(
                "object {id} belonged to a JVM helper that has stopped since (it was restarted or idled out); \
                 the object is gone"
            ));
        }
        Ok(oid)
    }

    /// Maps the export ids of a stream going to the helper: ids going home (the helper's own,
    /// as the controller knows them) become the helper's.
    fn inbound(&self, p: &mut Parsed) -> Result<bool, String> {
        rewrite::map_exports(
            &mut p.stream,
            &mut |owner, id| match owner {
                Owner::Sender => Ok(None),
                // Oid 1 is "the channel" on both sides (the agent's IChannel).
                Owner::Receiver if id == 1 => Ok(None),
                Owner::Receiver => self.local(id).map(Some),
            },
            &mut |e| {
                tracing::debug!("a nested stream for the JVM helper was passed on unread: {e}")
            },
        )
    }

    /// Maps the export ids of a stream from the helper: the helper's own exports get the ids
    /// the controller sees.
    fn outbound(&self, p: &mut Parsed) -> Result<bool, String> {
        rewrite::map_exports(
            &mut p.stream,
            &mut |owner, oid| match owner {
                Owner::Sender => self.visible(oid).map(Some),
                Owner::Receiver => Ok(None),
            },
            &mut |e| {
                tracing::warn!("a nested stream from the JVM helper was passed on unread: {e}")
            },
        )
    }

    /// A controller `UserRequest` for the helper (a callable nectr does not run natively, or
    /// an RPC on one of the helper's exports): the command to send to the helper. An error
    /// (a stale export id in the call) is the call's answer.
    pub fn call(&mut self, req: &UserRequest, what: &str) -> Result<Vec<u8>, String> {
        let mut p = rewrite::parse(&req.raw)?;
        let payload = if self.inbound(&mut p)? {
            p.encode()?
        } else {
            req.raw.clone()
        };
        self.calls.insert(req.id, Call::User(what.to_string()));
        Ok(payload)
    }

    /// A command from the controller the channel handed to the relay ([`Relayed`]): what to
    /// send to the helper. `live` is false when no helper is running: requests are then
    /// answered with an error and the rest is dropped.
    pub fn from_controller(&mut self, r: Relayed, up: &mut Up<'_>, live: bool) -> Vec<Vec<u8>> {
        let Relayed { payload, command } = r;
        let request = match &command {
            command::Command::Rpc { id, method, .. } => Some((*id, Call::Plain(method.clone()))),
            command::Command::InputRead { id, .. } => Some((*id, Call::Read)),
            _ => None,
        };
        // Answers to the helper's requests.
        if let command::Command::Response { id, .. } = &command {
            let Some(hid) = self.up.remove(id) else {
                return Vec::new();
            };
            self.up_rev.remove(&hid);
            if !live {
                return Vec::new();
            }
            return match self.rewrite_in(&payload, |p| {
                p.set_int("id", hid);
            }) {
                Ok(b) => vec![b],
                Err(e) => {
                    tracing::warn!("a controller answer for the JVM helper was dropped: {e}");
                    Vec::new()
                }
            };
        }
        let refused = if live {
            match self.rewrite_in(&payload, |_| {}) {
                Ok(b) => {
                    if let Some((id, call)) = request {
                        self.calls.insert(id, call);
                    }
                    return vec![b];
                }
                Err(e) => e,
            }
        } else {
            "no JVM helper is running on this agent any more (it stopped or was restarted)".into()
        };
        let reg = registry_of(up).clone();
        match (&command, request) {
            (_, Some((id, Call::Read))) => {
                let a = command::buffer_response(&reg, id, Err(&refused));
                up.channel.send_command(&a);
            }
            (_, Some((id, _))) => {
                let a = command::plain_response(&reg, id, Some(&refused));
                up.channel.send_command(&a);
            }
            (command::Command::StreamChunk { oid, data }, None) => {
                // Keep the controller's writer from waiting on its window forever.
                up.channel.send_command(&command::stream_dead(&reg, *oid));
                up.channel.ack(*oid, data.len() as i32);
            }
            _ => {}
        }
        tracing::debug!("dropped a command for the JVM helper: {refused}");
        Vec::new()
    }

    /// Parses a command for the helper, lets `edit` change it, maps its export ids inbound.
    fn rewrite_in(
        &self,
        payload: &[u8],
        edit: impl FnOnce(&mut Parsed),
    ) -> Result<Vec<u8>, String> {
        let mut p = rewrite::parse(payload)?;
        edit(&mut p);
        self.inbound(&mut p)?;
        p.encode()
    }

    /// The controller cancels request `id`: the command for the helper, if it runs it.
    pub fn cancel(&mut self, reg: &Registry, id: i32) -> Option<Vec<u8>> {
        self.calls
            .contains_key(&id)
            .then(|| command::cancel(reg, id))
    }

    /// The controller acked `size` bytes of its stream `oid`: the ack for the helper if the
    /// helper wrote them. `native_unacked` is what nectr's own writers have outstanding on
    /// that stream: when both wrote, the ack goes to the helper if it matches its oldest chunk
    /// (the controller acks chunk by chunk, in order).
    pub fn ack(
        &mut self,
        reg: &Registry,
        oid: i32,
        size: i32,
        native_unacked: i64,
    ) -> Option<Vec<u8>> {
        let w = self.writes.get_mut(&oid)?;
        let front = *w.sizes.front()?;
        if native_unacked > 0 && front != size {
            return None;
        }
        w.sizes.pop_front();
        if w.ended && w.sizes.is_empty() {
            self.writes.remove(&oid);
        }
        Some(command::stream_ack(reg, oid, size))
    }

    /// The controller's stream `oid` died: the notice for the helper if it writes into it.
    pub fn dead(&mut self, reg: &Registry, oid: i32) -> Option<Vec<u8>> {
        self.writes
            .contains_key(&oid)
            .then(|| command::stream_dead(reg, oid))
    }

    fn io(&mut self, helper_io: i32, up: &Up<'_>) -> i32 {
        let agent = (up.next_io)();
        self.io.insert(helper_io, agent);
        while self.io.len() > IO_HISTORY {
            self.io.pop_first();
        }
        agent
    }

    /// The agent I/O id standing for the helper's `lastIoId`: the last write the helper
    /// issued up to it (0: none, or long done).
    fn last_io(&self, helper_io: i32) -> i32 {
        if helper_io == 0 {
            return 0;
        }
        self.io
            .range(..=helper_io)
            .next_back()
            .map(|(_, a)| *a)
            .unwrap_or(0)
    }

    /// A command from the helper: sent on to the controller (ids translated), answered here
    /// (the helper's pings), or the end of the helper. What goes back to the helper is pushed
    /// onto `to_helper`. A command that cannot be passed on is an error; if it was an answer
    /// to a controller call or a request of the helper, that call or request is answered with
    /// the error first, so that nobody waits forever.
    pub fn from_helper(
        &mut self,
        payload: Vec<u8>,
        up: &mut Up<'_>,
        to_helper: &mut Vec<Vec<u8>>,
    ) -> Result<Next, String> {
        let mut p = rewrite::parse(&payload).map_err(|e| format!("unreadable command: {e}"))?;
        let class = p.class.clone();
        let hid = p.int("id");
        // Every `hudson.remoting.Request` has `id` and `lastIoId`.
        let request = class != RESPONSE && hid.is_some() && p.int("lastIoId").is_some();
        match class.as_str() {
            CLOSE_COMMAND => return Ok(Next::Closed),
            "hudson.remoting.GCCommand" => return Ok(Next::Continue),
            RESPONSE => {
                let Some(id) = hid else {
                    return Err("a Response without id".into());
                };
                if !self.calls.contains_key(&id) {
                    tracing::debug!(id, "the JVM helper answered a call nobody waits for");
                    return Ok(Next::Continue);
                }
                let last = p.int("lastIoId").unwrap_or(0);
                p.set_int("lastIoId", self.last_io(last));
                return match self.outbound(&mut p).and_then(|_| p.encode()) {
                    Ok(out) => {
                        self.calls.remove(&id);
                        up.channel.forget_call(id);
                        up.channel.send_command(&out);
                        Ok(Next::Continue)
                    }
                    Err(e) => {
                        let e = format!("the JVM helper's answer could not be passed on: {e}");
                        self.calls.remove(&id);
                        up.channel.answer(id, 0, &Answer::io_error(e.clone()));
                        Err(e)
                    }
                };
            }
            USER_REQUEST if is_ping(&payload) => {
                let id = hid.unwrap_or(0);
                to_helper.push(command::response(registry_of(up), id, 0, &Answer::null()));
                return Ok(Next::Continue);
            }
            CANCEL => {
                let Some(id) = hid.and_then(|h| self.up_rev.get(&h).copied()) else {
                    return Ok(Next::Continue);
                };
                p.set_int("id", id);
            }
            _ => {}
        }
        // A request: a fresh agent id, and the helper's back in its answer.
        let agent_id = match (request, hid) {
            (true, Some(_)) => {
                let id = up.channel.relay_request();
                p.set_int("id", id);
                let last = p.int("lastIoId").unwrap_or(0);
                p.set_int("lastIoId", self.last_io(last));
                Some(id)
            }
            _ => None,
        };
        // Writes into controller streams: a fresh I/O id.
        if let Some(hio) = p.int("ioId") {
            let io = self.io(hio, up);
            p.set_int("ioId", io);
        }
        let out = match self.outbound(&mut p).and_then(|_| p.encode()) {
            Ok(out) => out,
            Err(e) => {
                let e = format!("a {class} of the JVM helper could not be passed on: {e}");
                if let (Some(id), Some(hid)) = (agent_id, hid) {
                    up.channel.forget_relayed(id);
                    to_helper.push(command::plain_response(registry_of(up), hid, Some(&e)));
                }
                return Err(e);
            }
        };
        if let (Some(id), Some(hid)) = (agent_id, hid) {
            self.up.insert(id, hid);
            self.up_rev.insert(hid, id);
        }
        if let Some(oid) = p.int("oid") {
            self.note_stream(&class, oid, &p);
        }
        up.channel.send_command(&out);
        Ok(Next::Continue)
    }

    /// Bookkeeping of the controller streams the helper uses (for acks and its end).
    fn note_stream(&mut self, class: &str, oid: i32, p: &Parsed) {
        match class {
            STREAM_CHUNK => {
                let len = p
                    .object("buf")
                    .and_then(|a| p.stream.heap.array(a))
                    .map(|a| a.data.len() as i32)
                    .unwrap_or(0);
                self.writes.entry(oid).or_default().sizes.push_back(len);
            }
            STREAM_EOF | STREAM_UNEXPORT => {
                let done = self.writes.get_mut(&oid).is_some_and(|w| {
                    w.ended = true;
                    w.sizes.is_empty()
                });
                if done {
                    self.writes.remove(&oid);
                }
            }
            INPUT_CHUNK => {
                self.reads.insert(oid);
            }
            INPUT_EOF => {
                self.reads.remove(&oid);
            }
            _ => {}
        }
    }

    /// The helper is gone. Its calls are answered with an error naming `reason`, its requests
    /// at the controller forgotten, and the controller streams it was using are released:
    /// closed with the error if it `crashed` (a reader is waiting for their end), released
    /// without closing after an orderly stop.
    pub fn ended(&mut self, up: &mut Up<'_>, reason: &str, crashed: bool) {
        let reg = registry_of(up).clone();
        let mut calls: Vec<(i32, Call)> = self.calls.drain().collect();
        calls.sort_by_key(|(id, _)| *id);
        for (id, call) in calls {
            let (what, bytes) = match &call {
                Call::User(what) => {
                    // Through the channel: the answer's classes get the call's loader tags.
                    let msg = format!("the JVM helper running {what} for nectr-agent {reason}");
                    tracing::warn!(id, "answered {what} with an error: the JVM helper {reason}");
                    up.channel.answer(id, 0, &Answer::io_error(msg));
                    continue;
                }
                Call::Plain(method) => {
                    let msg = format!("the JVM helper running {method}() for nectr-agent {reason}");
                    (
                        method.clone(),
                        command::plain_response(&reg, id, Some(&msg)),
                    )
                }
                Call::Read => {
                    let msg = format!("the JVM helper reading its stream for nectr-agent {reason}");
                    (
                        "a stream read".into(),
                        command::buffer_response(&reg, id, Err(&msg)),
                    )
                }
            };
            tracing::warn!(id, "answered {what} with an error: the JVM helper {reason}");
            up.channel.send_command(&bytes);
        }
        for (id, _) in self.up.drain() {
            up.channel.forget_relayed(id);
        }
        self.up_rev.clear();
        let mut writes: Vec<i32> = self
            .writes
            .drain()
            .filter(|(_, w)| !w.ended)
            .map(|(oid, _)| oid)
            .collect();
        writes.sort();
        for oid in writes {
            let io = (up.next_io)();
            let c = if crashed {
                let msg = format!("the JVM helper writing this stream {reason}");
                command::stream_eof(
                    &reg,
                    io,
                    oid,
                    0,
                    Some(StreamError {
                        class: "java.io.IOException",
                        message: &msg,
                    }),
                )
            } else {
                command::stream_unexport(&reg, io, oid)
            };
            up.channel.send_command(&c);
        }
        let mut reads: Vec<i32> = self.reads.drain().collect();
        reads.sort();
        for oid in reads {
            up.channel.send_command(&command::input_eof(&reg, oid));
        }
        self.io.clear();
    }
}

/// True for a `UserRequest` running `hudson.remoting.PingThread$Ping`.
fn is_ping(payload: &[u8]) -> bool {
    matches!(
        command::read(payload),
        Ok(command::Command::UserRequest(u)) if u.callable_class == "hudson.remoting.PingThread$Ping"
    )
}

#[cfg(test)]
mod tests;
