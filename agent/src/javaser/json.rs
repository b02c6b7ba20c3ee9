//! Two JSON views of a decoded stream.
//!
//! * [`debug_json`]: everything the stream says, for people (`nectr-agent debug javaser`):
//!   class descriptors with serialVersionUIDs and flags, handles, field names and values,
//!   block data in hex.
//! * [`oracle_json`]: the canonical *value* view shared with the JDK interop peer
//!   (`tests/java`), which renders what Java wrote or read in the same form. Two streams with
//!   equal oracle views hold the same values. The format is specified in
//!   `tests/java/README.md`.

use std::collections::HashMap;

use serde_json::{json, Map, Value as J};

use super::model::*;
use super::mutf8::JavaStr;
use super::tc;

fn hex(b: &[u8]) -> String {
    const D: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(b.len() * 2);
    for x in b {
        s.push(D[(x >> 4) as usize] as char);
        s.push(D[(x & 15) as usize] as char);
    }
    s
}

/// A Java string as JSON: text, or its UTF-16 units in hex if it holds an unpaired surrogate.
pub fn string_json(s: &JavaStr) -> J {
    match s.to_str() {
        Some(t) => json!({ "str": t }),
        None => {
            let units: Vec<u8> = s.to_utf16().iter().flat_map(|u| u.to_be_bytes()).collect();
            json!({ "utf16": hex(&units) })
        }
    }
}

fn prim_oracle(v: &Value) -> Option<J> {
    Some(match *v {
        Value::Boolean(b) => J::from(b),
        Value::Byte(b) => J::from(b),
        Value::Char(c) => J::from(c),
        Value::Short(s) => J::from(s),
        Value::Int(i) => J::from(i),
        Value::Long(l) => J::from(l),
        Value::Float(f) => J::from(format!("f:{:08x}", f.to_bits())),
        Value::Double(d) => J::from(format!("d:{:016x}", d.to_bits())),
        Value::Null | Value::Ref(_) => return None,
    })
}

/// Classes whose `writeObject` data the oracle view shows as their contents.
enum Semantic {
    Entries,
    Elements,
}

fn semantic(name: &JavaStr) -> Option<Semantic> {
    match name.as_mutf8() {
        b"java.util.HashMap" | b"java.util.TreeMap" => Some(Semantic::Entries),
        b"java.util.ArrayList" | b"java.util.HashSet" | b"java.util.LinkedList" => {
            Some(Semantic::Elements)
        }
        _ => None,
    }
}

/// The oracle view of a stream: a JSON array of its top-level items.
pub fn oracle_json(stream: &Stream) -> J {
    let mut o = Oracle {
        heap: &stream.heap,
        ids: HashMap::new(),
        next: 1,
    };
    let mut out: Vec<J> = Vec::new();
    let mut pending_block: Option<Vec<u8>> = None;
    for item in &stream.items {
        if let Item::Block(b) = item {
            pending_block
                .get_or_insert_with(Vec::new)
                .extend_from_slice(&b.data);
            continue;
        }
        if let Some(b) = pending_block.take() {
            out.push(json!({ "block": hex(&b) }));
        }
        match item {
            Item::Value(v) => out.push(o.value(v)),
            Item::Block(_) => {}
            Item::Reset => {
                o.ids.clear();
                out.push(json!({ "reset": true }));
            }
            Item::Aborted { exception, .. } => {
                o.ids.clear();
                let e = o.value(exception);
                o.ids.clear();
                out.push(json!({ "aborted": e }));
            }
        }
    }
    if let Some(b) = pending_block.take() {
        out.push(json!({ "block": hex(&b) }));
    }
    J::Array(out)
}

struct Oracle<'a> {
    heap: &'a Heap,
    ids: HashMap<Id, u64>,
    next: u64,
}

impl Oracle<'_> {
    fn name(&self, desc: Id) -> String {
        self.heap
            .class_desc(desc)
            .map(|d| d.name.to_string())
            .unwrap_or_else(|| "<proxy>".into())
    }

    fn value(&mut self, v: &Value) -> J {
        if let Some(p) = prim_oracle(v) {
            return p;
        }
        let Value::Ref(id) = *v else { return J::Null };
        let heap = self.heap;
        match heap.get(id) {
            None | Some(Entry::Pending) => json!({ "pending": true }),
            Some(Entry::String(s)) => string_json(s),
            Some(Entry::Enum(e)) => {
                let name = heap.str(e.name).map(|s| s.to_string()).unwrap_or_default();
                json!({ "enum": self.name(e.desc), "name": name })
            }
            Some(Entry::Class(desc)) => match heap.get(*desc) {
                Some(Entry::ProxyDesc(p)) => {
                    let ifaces: Vec<String> = p.interfaces.iter().map(|i| i.to_string()).collect();
                    json!({ "class_of_proxy": ifaces })
                }
                _ => json!({ "class_of": self.name(*desc) }),
            },
            Some(Entry::ClassDesc(d)) => json!({ "class_desc": d.name.to_string() }),
            Some(Entry::ProxyDesc(_)) => json!({ "class_desc": "<proxy>" }),
            Some(Entry::Array(a)) => {
                if let Some(n) = self.ids.get(&id) {
                    return json!({ "ref": n });
                }
                let n = self.fresh(id);
                let mut m = Map::new();
                m.insert("id".into(), J::from(n));
                m.insert("array".into(), J::from(self.name(a.desc)));
                let items: Vec<J> = match &a.data {
                    ArrayData::Byte(b) => {
                        m.insert("hex".into(), J::from(hex(b)));
                        return J::Object(m);
                    }
                    ArrayData::Boolean(v) => v.iter().map(|x| J::from(*x)).collect(),
                    ArrayData::Char(v) => v.iter().map(|x| J::from(*x)).collect(),
                    ArrayData::Short(v) => v.iter().map(|x| J::from(*x)).collect(),
                    ArrayData::Int(v) => v.iter().map(|x| J::from(*x)).collect(),
                    ArrayData::Long(v) => v.iter().map(|x| J::from(*x)).collect(),
                    ArrayData::Float(v) => v
                        .iter()
                        .map(|x| J::from(format!("f:{:08x}", x.to_bits())))
                        .collect(),
                    ArrayData::Double(v) => v
                        .iter()
                        .map(|x| J::from(format!("d:{:016x}", x.to_bits())))
                        .collect(),
                    ArrayData::Object(v) => v.iter().map(|x| self.value(x)).collect(),
                };
                m.insert("items".into(), J::Array(items));
                J::Object(m)
            }
            Some(Entry::Object(o)) => {
                if let Some(n) = self.ids.get(&id) {
                    return json!({ "ref": n });
                }
                let n = self.fresh(id);
                self.object(n, id, o)
            }
        }
    }

    fn fresh(&mut self, id: Id) -> u64 {
        let n = self.next;
        self.next += 1;
        self.ids.insert(id, n);
        n
    }

    fn object(&mut self, n: u64, id: Id, o: &Object) -> J {
        let heap = self.heap;
        if let Some(Entry::ProxyDesc(p)) = heap.get(o.desc) {
            let ifaces: Vec<String> = p.interfaces.iter().map(|i| i.to_string()).collect();
            let h = heap.field(id, "h").copied().unwrap_or(Value::Null);
            let h = self.value(&h);
            return json!({ "id": n, "proxy": ifaces, "h": h });
        }
        let class = self.name(o.desc);
        if heap
            .class_desc(o.desc)
            .is_some_and(|d| d.has(flags::SC_EXTERNALIZABLE))
        {
            let data = o
                .class_data
                .first()
                .and_then(|c| c.annotation.as_deref())
                .unwrap_or(&[]);
            let items = self.contents(data);
            return json!({ "id": n, "class": class, "external": items });
        }
        let chain = heap.hierarchy(o.desc, o.class_data.len().max(1));
        let mut levels = Vec::with_capacity(chain.len());
        for (level, data) in chain.iter().zip(&o.class_data) {
            let Some(d) = heap.class_desc(*level) else {
                continue; // the proxy class itself contributes nothing
            };
            let mut m = Map::new();
            m.insert("class".into(), J::from(d.name.to_string()));
            match (semantic(&d.name), &data.annotation) {
                (Some(kind), Some(a)) => {
                    let values: Vec<J> = a
                        .iter()
                        .filter_map(|c| match c {
                            Content::Value(v) => Some(self.value(v)),
                            Content::Block(_) => None,
                        })
                        .collect();
                    match kind {
                        Semantic::Elements => {
                            m.insert("elements".into(), J::Array(values));
                        }
                        Semantic::Entries => {
                            let pairs = values.chunks(2).map(|p| J::Array(p.to_vec())).collect();
                            m.insert("entries".into(), J::Array(pairs));
                        }
                    }
                }
                _ => {
                    let mut fields = Map::new();
                    if let Some(values) = &data.fields {
                        for (f, v) in d.fields.iter().zip(values) {
                            let j = self.value(v);
                            fields.insert(f.name.to_string(), j);
                        }
                    }
                    m.insert("fields".into(), J::Object(fields));
                    if let Some(a) = &data.annotation {
                        let items = self.contents(a);
                        m.insert("data".into(), items);
                    }
                }
            }
            levels.push(J::Object(m));
        }
        json!({ "id": n, "class": class, "levels": levels })
    }

    fn contents(&mut self, contents: &[Content]) -> J {
        let mut out = Vec::new();
        let mut block: Option<Vec<u8>> = None;
        for c in contents {
            match c {
                Content::Block(b) => block
                    .get_or_insert_with(Vec::new)
                    .extend_from_slice(&b.data),
                Content::Value(v) => {
                    if let Some(b) = block.take() {
                        out.push(json!({ "block": hex(&b) }));
                    }
                    out.push(self.value(v));
                }
            }
        }
        if let Some(b) = block {
            out.push(json!({ "block": hex(&b) }));
        }
        J::Array(out)
    }
}

/// The full, human-oriented view: every item, every class descriptor with its handle,
/// serialVersionUID, flags and fields, and the handle of every object.
pub fn debug_json(stream: &Stream) -> J {
    let mut d = Debug {
        heap: &stream.heap,
        handles: HashMap::new(),
        next: tc::BASE_WIRE_HANDLE,
        classes: Vec::new(),
    };
    let mut items = Vec::new();
    for item in &stream.items {
        items.push(match item {
            Item::Value(v) => d.value(v),
            Item::Block(b) => json!({ "block": hex(&b.data) }),
            Item::Reset => {
                d.reset();
                json!({ "reset": true })
            }
            Item::Aborted { partial, exception } => {
                d.reset();
                let e = d.value(exception);
                d.reset();
                json!({ "aborted": { "partial_bytes": partial.len(), "exception": e } })
            }
        });
    }
    json!({ "items": items, "classes": d.classes })
}

struct Debug<'a> {
    heap: &'a Heap,
    handles: HashMap<Id, u32>,
    next: u32,
    classes: Vec<J>,
}

fn flag_names(f: u8) -> Vec<&'static str> {
    let mut v = Vec::new();
    for (bit, name) in [
        (flags::SC_WRITE_METHOD, "SC_WRITE_METHOD"),
        (flags::SC_SERIALIZABLE, "SC_SERIALIZABLE"),
        (flags::SC_EXTERNALIZABLE, "SC_EXTERNALIZABLE"),
        (flags::SC_BLOCK_DATA, "SC_BLOCK_DATA"),
        (flags::SC_ENUM, "SC_ENUM"),
    ] {
        if f & bit != 0 {
            v.push(name);
        }
    }
    v
}

impl Debug<'_> {
    fn reset(&mut self) {
        self.handles.clear();
        self.next = tc::BASE_WIRE_HANDLE;
    }

    fn seen(&self, id: Id) -> Option<J> {
        self.handles
            .get(&id)
            .map(|h| json!({ "ref": format!("0x{h:x}") }))
    }

    fn assign(&mut self, id: Id) -> String {
        let h = self.next;
        self.next += 1;
        self.handles.insert(id, h);
        format!("0x{h:x}")
    }

    fn prim(v: &Value) -> Option<J> {
        Some(match *v {
            Value::Boolean(b) => J::from(b),
            Value::Byte(b) => J::from(b),
            Value::Char(c) => match char::from_u32(c as u32) {
                Some(ch) if !ch.is_control() => J::from(ch.to_string()),
                _ => json!({ "char": c }),
            },
            Value::Short(s) => J::from(s),
            Value::Int(i) => J::from(i),
            Value::Long(l) => J::from(l),
            Value::Float(f) if f.is_finite() => J::from(f as f64),
            Value::Double(x) if x.is_finite() => J::from(x),
            Value::Float(f) => J::from(f.to_string()),
            Value::Double(x) => J::from(x.to_string()),
            Value::Null | Value::Ref(_) => return None,
        })
    }

    /// Renders a class descriptor (once, into `classes`) and returns its name.
    fn desc(&mut self, desc: Option<Id>) -> J {
        let Some(id) = desc else { return J::Null };
        if self.handles.contains_key(&id) {
            return self.desc_name(id);
        }
        let heap = self.heap;
        match heap.get(id) {
            Some(Entry::ClassDesc(d)) => {
                let handle = self.assign(id);
                // Field signature strings take the next handles, in field order.
                for f in &d.fields {
                    if let Some(s) = f.signature {
                        if !self.handles.contains_key(&s) {
                            self.assign(s);
                        }
                    }
                }
                let fields: Vec<J> = d
                    .fields
                    .iter()
                    .map(|f| {
                        let sig = f.signature.and_then(|s| heap.str(s)).map(|s| s.to_string());
                        json!({ "name": f.name.to_string(), "type": (f.field_type.code() as char).to_string(), "signature": sig })
                    })
                    .collect();
                let annotation = self.contents(&d.annotation);
                let sup = self.desc(d.super_desc);
                self.classes.push(json!({
                    "handle": handle,
                    "name": d.name.to_string(),
                    "suid": d.suid,
                    "flags": flag_names(d.flags),
                    "fields": fields,
                    "annotation": annotation,
                    "super": sup,
                }));
            }
            Some(Entry::ProxyDesc(p)) => {
                let handle = self.assign(id);
                let annotation = self.contents(&p.annotation);
                let sup = self.desc(p.super_desc);
                let ifaces: Vec<String> = p.interfaces.iter().map(|i| i.to_string()).collect();
                self.classes.push(json!({
                    "handle": handle,
                    "proxy": ifaces,
                    "annotation": annotation,
                    "super": sup,
                }));
            }
            _ => return J::Null,
        }
        self.desc_name(id)
    }

    fn desc_name(&self, id: Id) -> J {
        match self.heap.get(id) {
            Some(Entry::ClassDesc(d)) => J::from(d.name.to_string()),
            Some(Entry::ProxyDesc(p)) => {
                let ifaces: Vec<String> = p.interfaces.iter().map(|i| i.to_string()).collect();
                J::from(format!("proxy[{}]", ifaces.join(",")))
            }
            _ => J::Null,
        }
    }

    fn contents(&mut self, c: &[Content]) -> J {
        J::Array(
            c.iter()
                .map(|c| match c {
                    Content::Value(v) => self.value(v),
                    Content::Block(b) => json!({ "block": hex(&b.data) }),
                })
                .collect(),
        )
    }

    fn value(&mut self, v: &Value) -> J {
        if let Some(p) = Self::prim(v) {
            return p;
        }
        let Value::Ref(id) = *v else { return J::Null };
        if let Some(r) = self.seen(id) {
            return match self.heap.get(id) {
                Some(Entry::String(s)) => string_json(s),
                _ => r,
            };
        }
        let heap = self.heap;
        match heap.get(id) {
            None | Some(Entry::Pending) => json!({ "pending": true }),
            Some(Entry::String(s)) => {
                self.assign(id);
                string_json(s)
            }
            Some(Entry::ClassDesc(_) | Entry::ProxyDesc(_)) => {
                json!({ "class_desc": self.desc(Some(id)) })
            }
            Some(Entry::Class(desc)) => {
                let c = self.desc(Some(*desc));
                let h = self.assign(id);
                json!({ "handle": h, "class_of": c })
            }
            Some(Entry::Enum(e)) => {
                let c = self.desc(Some(e.desc));
                let h = self.assign(id);
                let name = self.value(&Value::Ref(e.name));
                json!({ "handle": h, "enum": c, "name": name })
            }
            Some(Entry::Array(a)) => {
                let c = self.desc(Some(a.desc));
                let h = self.assign(id);
                let items = match &a.data {
                    ArrayData::Byte(b) => json!({ "hex": hex(b) }),
                    ArrayData::Object(v) => J::Array(v.iter().map(|x| self.value(x)).collect()),
                    ArrayData::Boolean(v) => J::from(v.clone()),
                    ArrayData::Char(v) => J::from(v.clone()),
                    ArrayData::Short(v) => J::from(v.clone()),
                    ArrayData::Int(v) => J::from(v.clone()),
                    ArrayData::Long(v) => J::from(v.clone()),
                    ArrayData::Float(v) => J::Array(
                        v.iter()
                            .map(|x| Self::prim(&Value::Float(*x)).unwrap_or(J::Null))
                            .collect(),
                    ),
                    ArrayData::Double(v) => J::Array(
                        v.iter()
                            .map(|x| Self::prim(&Value::Double(*x)).unwrap_or(J::Null))
                            .collect(),
                    ),
                };
                json!({ "handle": h, "array": c, "length": a.data.len(), "items": items })
            }
            Some(Entry::Object(o)) => {
                let c = self.desc(Some(o.desc));
                let h = self.assign(id);
                let chain = heap.hierarchy(o.desc, o.class_data.len().max(1));
                let external = heap
                    .class_desc(o.desc)
                    .is_some_and(|d| d.has(flags::SC_EXTERNALIZABLE));
                let mut data = Vec::new();
                for (i, cd) in o.class_data.iter().enumerate() {
                    let level = if external {
                        o.desc
                    } else {
                        chain.get(i).copied().unwrap_or(o.desc)
                    };
                    let mut m = Map::new();
                    m.insert("class".into(), self.desc_name(level));
                    if let (Some(values), Some(d)) = (&cd.fields, heap.class_desc(level)) {
                        let mut f = Map::new();
                        for (fd, v) in d.fields.iter().zip(values) {
                            let j = self.value(v);
                            f.insert(fd.name.to_string(), j);
                        }
                        m.insert("fields".into(), J::Object(f));
                    }
                    if let Some(a) = &cd.annotation {
                        let key = if external { "external" } else { "write_object" };
                        let j = self.contents(a);
                        m.insert(key.into(), j);
                    }
                    data.push(J::Object(m));
                }
                json!({ "handle": h, "class": c, "data": data })
            }
        }
    }
}
