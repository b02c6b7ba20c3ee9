//! Reading and rewriting the ids inside any command, for a relay between two channels (the
//! JVM helper behind nectr, `crate::jvm`): request ids, I/O ids and export ids (oids).
//!
//! A command is decoded into the codec's model, the int fields named by the relay are changed
//! in place, and the stream is encoded again: the codec reproduces every other byte exactly
//! (handles, block boundaries, descriptors), so the peer reads the same command with new ids.
//!
//! Export ids also travel inside objects, at any depth, and inside the nested streams of
//! `UserRequest.request` and of the answers. [`map_exports`] finds every one of them that
//! remoting itself writes (remoting-protocol.md §5.5, §5.7, §6.1) and says whose export
//! table it names: the sender's (an object the sender exported) or the receiver's (an object
//! going home).

use super::classes::*;
use super::command::decode_options;
use crate::javaser::{self, ArrayData, Content, Entry, Id, Item, Stream, Value};

/// `hudson.remoting.RemoteInvocationHandler`: the handler of every exported-object proxy.
pub const INVOCATION_HANDLER: &str = "hudson.remoting.RemoteInvocationHandler";
/// `hudson.remoting.RemoteClassLoader$RemoteIClassLoader`: a class loader going home.
pub const REMOTE_ICLASSLOADER: &str = "hudson.remoting.RemoteClassLoader$RemoteIClassLoader";
/// `hudson.remoting.RemoteWriter`: like `RemoteOutputStream`, for characters.
pub const REMOTE_WRITER: &str = "hudson.remoting.RemoteWriter";
/// `hudson.remoting.UserResponse`: the legacy answer holder.
pub const USER_RESPONSE: &str = "hudson.remoting.UserResponse";
/// `hudson.remoting.ProxyWriter` commands: character streams, as `ProxyOutputStream`'s.
pub const WRITER_CHUNK: &str = "hudson.remoting.ProxyWriter$Chunk";
/// `ProxyWriter$Flush`
pub const WRITER_FLUSH: &str = "hudson.remoting.ProxyWriter$Flush";
/// `ProxyWriter$EOF`
pub const WRITER_EOF: &str = "hudson.remoting.ProxyWriter$EOF";
/// `ProxyWriter$Unexport`
pub const WRITER_UNEXPORT: &str = "hudson.remoting.ProxyWriter$Unexport";
/// `ProxyWriter$Ack`
pub const WRITER_ACK: &str = "hudson.remoting.ProxyWriter$Ack";
/// `ProxyWriter$NotifyDeadWriter`
pub const WRITER_DEAD: &str = "hudson.remoting.ProxyWriter$NotifyDeadWriter";
/// `RemoteClassLoader$ClassFile` and `$ClassFile2`: a class image and the oid of its loader.
const CLASS_FILES: [&str; 2] = [
    "hudson.remoting.RemoteClassLoader$ClassFile",
    "hudson.remoting.RemoteClassLoader$ClassFile2",
];

/// Deepest nesting of streams in byte arrays that is followed (a command holds a callable or
/// an answer; those hold no further streams).
const MAX_NESTING: usize = 2;

/// A decoded command whose fields can be changed.
pub struct Parsed {
    /// The stream.
    pub stream: Stream,
    /// The command object.
    pub top: Id,
    /// Its class name.
    pub class: String,
}

/// Decodes a command payload (one serialization stream holding one object).
pub fn parse(payload: &[u8]) -> Result<Parsed, String> {
    let stream = javaser::decode(payload, &decode_options()).map_err(|e| e.to_string())?;
    let top = match stream.items.as_slice() {
        [Item::Value(Value::Ref(id))] => *id,
        _ => return Err("the command stream does not hold exactly one object".into()),
    };
    let class = stream
        .heap
        .class_name(top)
        .map(|n| n.to_string())
        .ok_or("the command is not an object")?;
    Ok(Parsed { stream, top, class })
}

impl Parsed {
    /// The int field `name` of the command (searched from its own class up).
    pub fn int(&self, name: &str) -> Option<i32> {
        match self.stream.heap.field(self.top, name)? {
            Value::Int(i) => Some(*i),
            _ => None,
        }
    }

    /// Sets the int field `name` of the command; false if it has no such int field.
    pub fn set_int(&mut self, name: &str, value: i32) -> bool {
        set_field(&mut self.stream, self.top, name, Value::Int(value))
    }

    /// The object in field `name` of the command.
    pub fn object(&self, name: &str) -> Option<Id> {
        self.stream.heap.field(self.top, name)?.as_ref()
    }

    /// Encodes the (changed) command.
    pub fn encode(&self) -> Result<Vec<u8>, String> {
        javaser::encode(&self.stream).map_err(|e| e.to_string())
    }
}

/// Where an object's field `name` sits: (class data index, field index).
fn field_slot(stream: &Stream, obj: Id, name: &str) -> Option<(usize, usize)> {
    let heap = &stream.heap;
    let o = heap.object(obj)?;
    let chain = heap.hierarchy(o.desc, o.class_data.len().max(1));
    for (i, (desc, data)) in chain.iter().zip(&o.class_data).enumerate().rev() {
        let (Some(d), Some(_)) = (heap.class_desc(*desc), data.fields.as_ref()) else {
            continue;
        };
        if let Some(j) = d.fields.iter().position(|f| f.name.eq_str(name)) {
            return Some((i, j));
        }
    }
    None
}

/// Sets field `name` of object `obj` when it holds a value of the same kind.
fn set_field(stream: &mut Stream, obj: Id, name: &str, value: Value) -> bool {
    let Some((i, j)) = field_slot(stream, obj, name) else {
        return false;
    };
    let Some(Entry::Object(o)) = stream.heap.get_mut(obj) else {
        return false;
    };
    match o.class_data[i].fields.as_mut().and_then(|f| f.get_mut(j)) {
        Some(slot) if std::mem::discriminant(slot) == std::mem::discriminant(&value) => {
            *slot = value;
            true
        }
        _ => false,
    }
}

/// Whose export table an export id names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Owner {
    /// The side that wrote the stream exported it (a new proxy, a stream it offers).
    Sender,
    /// The side that reads the stream exported it (a proxy going home).
    Receiver,
}

/// Where an export id sits in an object.
enum Slot {
    /// An int field.
    Field(&'static str),
    /// Four bytes at this offset of the first block of the custom data of class data `usize`.
    Block(usize, usize),
}

/// The export ids object `id` carries itself: (owner, slot, value).
fn exports_of(stream: &Stream, id: Id) -> Vec<(Owner, Slot, i32)> {
    let heap = &stream.heap;
    let Some(o) = heap.object(id) else {
        return Vec::new();
    };
    let Some(class) = heap.class_name(id).map(|c| c.to_string()) else {
        return Vec::new();
    };
    let int = |name: &str| match heap.field(id, name) {
        Some(Value::Int(i)) => Some(*i),
        _ => None,
    };
    let mut out = Vec::new();
    match class.as_str() {
        INVOCATION_HANDLER => {
            let home = matches!(heap.field(id, "goingHome"), Some(Value::Boolean(true)));
            if let Some(oid) = int("oid") {
                let owner = if home { Owner::Receiver } else { Owner::Sender };
                out.push((owner, Slot::Field("oid"), oid));
            }
        }
        REMOTE_ICLASSLOADER => {
            if let Some(oid) = int("oid") {
                out.push((Owner::Receiver, Slot::Field("oid"), oid));
            }
        }
        c if CLASS_FILES.contains(&c) => {
            if let Some(oid) = int("classLoader") {
                out.push((Owner::Sender, Slot::Field("classLoader"), oid));
            }
        }
        // Commands that name an export by their own int fields (§5.3, §5.4, §5.6).
        STREAM_CHUNK | STREAM_FLUSH | STREAM_EOF | STREAM_UNEXPORT | INPUT_CHUNK | INPUT_EOF
        | UNEXPORT_COMMAND | RPC_REQUEST | USER_RPC_REQUEST | WRITER_CHUNK | WRITER_FLUSH
        | WRITER_EOF | WRITER_UNEXPORT => {
            if let Some(oid) = int("oid") {
                out.push((Owner::Receiver, Slot::Field("oid"), oid));
            }
        }
        STREAM_ACK | STREAM_DEAD | WRITER_ACK | WRITER_DEAD => {
            // Sent by the reader about its own export.
            if let Some(oid) = int("oid") {
                out.push((Owner::Sender, Slot::Field("oid"), oid));
            }
        }
        PIPE_CONNECT => {
            if let Some(oid) = int("oidPos") {
                out.push((Owner::Sender, Slot::Field("oidPos"), oid));
            }
            if let Some(oid) = int("oidRos") {
                out.push((Owner::Receiver, Slot::Field("oidRos"), oid));
            }
        }
        REMOTE_OUTPUT_STREAM | REMOTE_WRITER | PIPE | REMOTE_INPUT_STREAM => {
            // The custom data of the class's own level: an int oid, after a boolean for
            // `Pipe` (its direction) and for a `RemoteInputStream` written to a peer that
            // takes greedy streams (a greedy one is a lone `true` followed by a `Pipe`).
            let chain = heap.hierarchy(o.desc, o.class_data.len().max(1));
            let Some(level) = chain
                .iter()
                .position(|d| heap.class_desc(*d).is_some_and(|d| d.name.eq_str(&class)))
            else {
                return out;
            };
            let Some(Content::Block(b)) = o
                .class_data
                .get(level)
                .and_then(|d| d.annotation.as_ref())
                .and_then(|a| a.first())
            else {
                return out;
            };
            let at = match (class.as_str(), b.data.len()) {
                (PIPE, n) if n >= 5 => 1,
                (REMOTE_INPUT_STREAM, 5) => 1,
                (REMOTE_INPUT_STREAM, 4) => 0,
                (REMOTE_OUTPUT_STREAM | REMOTE_WRITER, n) if n >= 4 => 0,
                _ => return out,
            };
            let v =
                i32::from_be_bytes([b.data[at], b.data[at + 1], b.data[at + 2], b.data[at + 3]]);
            out.push((Owner::Sender, Slot::Block(level, at), v));
        }
        _ => {}
    }
    out
}

fn set_slot(stream: &mut Stream, id: Id, slot: &Slot, v: i32) {
    match slot {
        Slot::Field(name) => {
            set_field(stream, id, name, Value::Int(v));
        }
        Slot::Block(level, at) => {
            if let Some(Entry::Object(o)) = stream.heap.get_mut(id) {
                if let Some(Content::Block(b)) = o
                    .class_data
                    .get_mut(*level)
                    .and_then(|d| d.annotation.as_mut())
                    .and_then(|a| a.first_mut())
                {
                    b.data[*at..*at + 4].copy_from_slice(&v.to_be_bytes());
                }
            }
        }
    }
}

/// The byte-array fields of remoting's request and answer holders that hold a nested stream.
fn nested_fields(class: &str) -> &'static [&'static str] {
    match class {
        USER_REQUEST => &["request"],
        NORMAL_RESPONSE | USER_RESPONSE => &["response"],
        EXCEPTION_RESPONSE => &["rawResponse", "proxyResponse"],
        _ => &[],
    }
}

/// Calls `f` with every export id in `stream` (objects at any depth and the nested streams of
/// requests and answers) and writes back the ids it replaces. `f` returns `Ok(None)` to keep
/// an id, `Ok(Some(new))` to replace it, or an error (for example a stale id) that stops the
/// walk. Returns true if anything changed. A nested stream the codec cannot read is left as
/// it is (`on_opaque` is told why).
pub fn map_exports(
    stream: &mut Stream,
    f: &mut dyn FnMut(Owner, i32) -> Result<Option<i32>, String>,
    on_opaque: &mut dyn FnMut(String),
) -> Result<bool, String> {
    map_exports_at(stream, f, on_opaque, 0)
}

fn map_exports_at(
    stream: &mut Stream,
    f: &mut dyn FnMut(Owner, i32) -> Result<Option<i32>, String>,
    on_opaque: &mut dyn FnMut(String),
    depth: usize,
) -> Result<bool, String> {
    let mut changed = map_class_loader_tags(stream, f)?;
    let ids: Vec<Id> = stream
        .heap
        .iter()
        .filter(|(_, e)| matches!(e, Entry::Object(_)))
        .map(|(id, _)| id)
        .collect();
    for id in ids {
        for (owner, slot, oid) in exports_of(stream, id) {
            if let Some(new) = f(owner, oid)? {
                if new != oid {
                    set_slot(stream, id, &slot, new);
                    changed = true;
                }
            }
        }
        if depth >= MAX_NESTING {
            continue;
        }
        let class = stream
            .heap
            .class_name(id)
            .map(|c| c.to_string())
            .unwrap_or_default();
        for field in nested_fields(&class) {
            let Some(arr) = stream.heap.field(id, field).and_then(|v| v.as_ref()) else {
                continue;
            };
            let Some(ArrayData::Byte(bytes)) = stream.heap.array(arr).map(|a| &a.data) else {
                continue;
            };
            let mut inner = match javaser::decode(bytes, &decode_options()) {
                Ok(s) => s,
                Err(e) => {
                    on_opaque(format!("{class}.{field}: {e}"));
                    continue;
                }
            };
            if map_exports_at(&mut inner, f, on_opaque, depth + 1)? {
                let encoded = javaser::encode(&inner)
                    .map_err(|e| format!("re-encoding {class}.{field}: {e}"))?;
                if let Some(Entry::Array(a)) = stream.heap.get_mut(arr) {
                    a.data = ArrayData::Byte(encoded);
                }
                changed = true;
            }
        }
    }
    Ok(changed)
}

/// The class-loader tags of `MultiClassLoaderSerializer` in the class descriptors of a nested
/// stream (remoting-protocol.md §6.2): `-2 <oid>` is a loader the sender exported, `-1 <oid>`
/// one the receiver exported; `-3` and indices carry no id.
fn map_class_loader_tags(
    stream: &mut Stream,
    f: &mut dyn FnMut(Owner, i32) -> Result<Option<i32>, String>,
) -> Result<bool, String> {
    let ids: Vec<Id> = stream
        .heap
        .iter()
        .filter(|(_, e)| matches!(e, Entry::ClassDesc(_) | Entry::ProxyDesc(_)))
        .map(|(id, _)| id)
        .collect();
    let mut changed = false;
    for id in ids {
        let annotation = match stream.heap.get_mut(id) {
            Some(Entry::ClassDesc(d)) => &mut d.annotation,
            Some(Entry::ProxyDesc(p)) => &mut p.annotation,
            _ => continue,
        };
        for c in annotation.iter_mut() {
            let Content::Block(b) = c else { continue };
            let mut at = 0;
            while at + 4 <= b.data.len() {
                let int = |i: usize| {
                    i32::from_be_bytes([b.data[i], b.data[i + 1], b.data[i + 2], b.data[i + 3]])
                };
                let tag = int(at);
                let owner = match tag {
                    -2 => Owner::Sender,
                    -1 => Owner::Receiver,
                    _ => {
                        at += 4;
                        continue;
                    }
                };
                if at + 8 > b.data.len() {
                    break;
                }
                let oid = int(at + 4);
                if let Some(new) = f(owner, oid)? {
                    if new != oid {
                        b.data[at + 4..at + 8].copy_from_slice(&new.to_be_bytes());
                        changed = true;
                    }
                }
                at += 8;
            }
        }
    }
    Ok(changed)
}

/// Every export id in `stream`, with its owner (for tests and logs).
pub fn exports(stream: &Stream) -> Vec<(Owner, i32)> {
    let mut copy = stream.clone();
    let mut found = Vec::new();
    let _ = map_exports(
        &mut copy,
        &mut |o, oid| {
            found.push((o, oid));
            Ok(None)
        },
        &mut |_| {},
    );
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::javaser::{Builder, ClassSpec, Registry};
    use crate::remoting::classes;

    fn registry() -> Registry {
        let mut reg = classes::registry();
        reg.declare(
            ClassSpec::new(INVOCATION_HANDLER, 1)
                .write_method()
                .field("autoUnexportByCaller", "Z")
                .field("goingHome", "Z")
                .field("oid", "I")
                .field("recordCreatedAt", "Z")
                .field("userProxy", "Z")
                .field("userSpace", "Z")
                .field("origin", "Ljava/lang/Throwable;"),
        );
        reg.declare(
            ClassSpec::new(PIPE, 1)
                .write_method()
                .field("in", "Ljava/io/InputStream;")
                .field("out", "Ljava/io/OutputStream;"),
        );
        reg.declare(
            ClassSpec::new(REMOTE_INPUT_STREAM, 1)
                .write_method()
                .field("autoUnexport", "Z")
                .field("greedy", "Z"),
        );
        reg.declare(
            ClassSpec::new("nectr.test.Holder", 1)
                .field("a", "Ljava/lang/Object;")
                .field("b", "Ljava/lang/Object;")
                .field("c", "Ljava/lang/Object;"),
        );
        reg
    }

    fn handler(b: &mut Builder, oid: i32, home: bool) -> Value {
        let h = b
            .object(
                INVOCATION_HANDLER,
                &[
                    ("oid", Value::Int(oid)),
                    ("goingHome", Value::Boolean(home)),
                ],
            )
            .unwrap();
        b.set_data(h, INVOCATION_HANDLER, vec![]).unwrap();
        b.proxy(&["nectr.test.Api", "hudson.remoting.IReadResolve"], h)
            .unwrap()
    }

    /// A callable holding a new proxy (sender's 5), a proxy going home (receiver's 9) and a
    /// RemoteOutputStream (sender's 7).
    fn callable(reg: &Registry) -> Vec<u8> {
        let mut b = Builder::new(reg);
        let a = handler(&mut b, 5, false);
        let h = handler(&mut b, 9, true);
        let ros = b
            .custom_object(
                REMOTE_OUTPUT_STREAM,
                vec![Content::Block(javaser::Block::new(
                    7i32.to_be_bytes().to_vec(),
                ))],
            )
            .unwrap();
        let top = b
            .object("nectr.test.Holder", &[("a", a), ("b", h), ("c", ros)])
            .unwrap();
        javaser::encode(&b.into_stream(vec![Item::Value(top)])).unwrap()
    }

    fn user_request(reg: &Registry, nested: Vec<u8>) -> Vec<u8> {
        let mut b = Builder::new(reg);
        let bytes = b.array("[B", ArrayData::Byte(nested)).unwrap();
        let loader = b
            .object(REMOTE_ICLASSLOADER, &[("oid", Value::Int(3))])
            .unwrap();
        let r = b
            .object(
                USER_REQUEST,
                &[
                    ("id", Value::Int(41)),
                    ("lastIoId", Value::Int(12)),
                    ("classLoaderProxy", loader),
                    ("request", bytes),
                ],
            )
            .unwrap();
        javaser::encode(&b.into_stream(vec![Item::Value(r)])).unwrap()
    }

    #[test]
    fn ids_are_read_and_rewritten_and_nothing_else_changes() {
        let reg = registry();
        let payload = user_request(&reg, callable(&reg));
        let mut p = parse(&payload).unwrap();
        assert_eq!(p.class, USER_REQUEST);
        assert_eq!((p.int("id"), p.int("lastIoId")), (Some(41), Some(12)));
        assert_eq!(
            p.encode().unwrap(),
            payload,
            "decode -> encode is byte-exact"
        );
        assert!(p.set_int("id", 0x0102_0304));
        assert!(!p.set_int("toString", 1), "not an int field");
        let out = p.encode().unwrap();
        assert_eq!(out.len(), payload.len());
        let diff: Vec<usize> = (0..out.len()).filter(|i| out[*i] != payload[*i]).collect();
        assert_eq!(diff.len(), 4, "only the four bytes of the id differ");
        assert_eq!(parse(&out).unwrap().int("id"), Some(0x0102_0304));
    }

    #[test]
    fn export_ids_are_found_with_their_owner_in_nested_streams() {
        let reg = registry();
        let p = parse(&user_request(&reg, callable(&reg))).unwrap();
        let mut found = exports(&p.stream);
        found.sort_by_key(|(_, oid)| *oid);
        assert_eq!(
            found,
            vec![
                (Owner::Receiver, 3),
                (Owner::Sender, 5),
                (Owner::Sender, 7),
                (Owner::Receiver, 9)
            ]
        );
    }

    #[test]
    fn mapping_rewrites_only_the_chosen_ids_and_can_refuse() {
        let reg = registry();
        let mut p = parse(&user_request(&reg, callable(&reg))).unwrap();
        let changed = map_exports(
            &mut p.stream,
            &mut |owner, oid| Ok((owner == Owner::Sender).then_some(oid + 1000)),
            &mut |e| panic!("{e}"),
        )
        .unwrap();
        assert!(changed);
        let again = parse(&p.encode().unwrap()).unwrap();
        let mut found = exports(&again.stream);
        found.sort_by_key(|(_, oid)| *oid);
        assert_eq!(
            found,
            vec![
                (Owner::Receiver, 3),
                (Owner::Receiver, 9),
                (Owner::Sender, 1005),
                (Owner::Sender, 1007)
            ]
        );
        let refused = map_exports(
            &mut p.stream,
            &mut |_, oid| {
                if oid == 9 {
                    Err("stale".into())
                } else {
                    Ok(None)
                }
            },
            &mut |_| {},
        );
        assert_eq!(refused, Err("stale".into()));
    }

    #[test]
    fn class_loader_tags_name_exports_too() {
        let reg = registry();
        let mut b = Builder::new(&reg);
        let h = b
            .object("nectr.test.Holder", &[("a", Value::Null)])
            .unwrap();
        let mut s = b.into_stream(vec![Item::Value(h)]);
        // -2 7 (the sender's loader 7), then -1 9 in one block, and -3 elsewhere.
        for (_, e) in s.heap.iter() {
            assert!(!matches!(e, Entry::ProxyDesc(_)));
        }
        let desc = s
            .heap
            .iter()
            .find(|(_, e)| matches!(e, Entry::ClassDesc(_)))
            .map(|(id, _)| id)
            .unwrap();
        if let Some(Entry::ClassDesc(d)) = s.heap.get_mut(desc) {
            let mut tag = Vec::new();
            for i in [-2i32, 7, -1, 9, -3] {
                tag.extend_from_slice(&i.to_be_bytes());
            }
            d.annotation = vec![Content::Block(javaser::Block::new(tag))];
        }
        let s = javaser::decode(&javaser::encode(&s).unwrap(), &decode_options()).unwrap();
        let mut found = exports(&s);
        found.sort_by_key(|(_, oid)| *oid);
        assert_eq!(found, vec![(Owner::Sender, 7), (Owner::Receiver, 9)]);
    }

    #[test]
    fn pipe_and_input_stream_blocks_keep_their_flags() {
        let reg = registry();
        let mut b = Builder::new(&reg);
        let pipe = b
            .custom_object(
                PIPE,
                vec![Content::Block(javaser::Block::new(vec![1, 0, 0, 0, 4]))],
            )
            .unwrap();
        let ris = b
            .custom_object(
                REMOTE_INPUT_STREAM,
                vec![Content::Block(javaser::Block::new(vec![0, 0, 0, 0, 6]))],
            )
            .unwrap();
        let greedy = b
            .custom_object(
                REMOTE_INPUT_STREAM,
                vec![
                    Content::Block(javaser::Block::new(vec![1])),
                    Content::Value(pipe),
                ],
            )
            .unwrap();
        let top = b
            .object("nectr.test.Holder", &[("a", ris), ("b", greedy)])
            .unwrap();
        let mut s = b.into_stream(vec![Item::Value(top)]);
        let bytes = javaser::encode(&s).unwrap();
        s = javaser::decode(&bytes, &decode_options()).unwrap();
        let mut found = exports(&s);
        found.sort_by_key(|(_, oid)| *oid);
        assert_eq!(found, vec![(Owner::Sender, 4), (Owner::Sender, 6)]);
        map_exports(&mut s, &mut |_, oid| Ok(Some(oid * 10)), &mut |_| {}).unwrap();
        let s = javaser::decode(&javaser::encode(&s).unwrap(), &decode_options()).unwrap();
        let mut found = exports(&s);
        found.sort_by_key(|(_, oid)| *oid);
        assert_eq!(found, vec![(Owner::Sender, 40), (Owner::Sender, 60)]);
    }
}
