//! The encoder: [`Stream`] (or any values in a [`Heap`]) to bytes. No IO.
//!
//! Handles are handed out in write order exactly as `ObjectOutputStream` does: the first time
//! an entry is met it is written in full and gets the next handle; later meetings write a
//! `TC_REFERENCE`. Because the decoder met entries in the same order, a decoded stream
//! encodes to the bytes it came from.

use super::error::{EncodeError, Limits};
use super::model::*;
use super::mutf8::JavaStr;
use super::tc;

/// Encodes a whole stream: header and items.
pub fn encode(stream: &Stream) -> Result<Vec<u8>, EncodeError> {
    encode_with_limits(stream, Limits::DEFAULT)
}

/// Encodes a whole stream under `limits` (only `max_depth` applies to writing).
pub fn encode_with_limits(stream: &Stream, limits: Limits) -> Result<Vec<u8>, EncodeError> {
    let mut w = Encoder::new(&stream.heap).with_limits(limits);
    for item in &stream.items {
        w.item(item)?;
    }
    Ok(w.finish())
}

/// Writes values from a heap into one stream, item by item.
///
/// ```
/// use nectr_agent::javaser::{Encoder, Heap, Value};
/// let mut heap = Heap::new();
/// let s = heap.string("hello");
/// let mut w = Encoder::new(&heap);
/// w.value(s).unwrap();
/// assert_eq!(w.finish(), b"\xac\xed\x00\x05\x74\x00\x05hello");
/// ```
pub struct Encoder<'h> {
    heap: &'h Heap,
    out: Vec<u8>,
    /// Per entry: (generation, handle). A handle is valid only in the current generation,
    /// so a reset is O(1) however large the heap.
    handles: Vec<(u32, u32)>,
    generation: u32,
    next_handle: u32,
    depth: usize,
    limits: Limits,
}

impl<'h> Encoder<'h> {
    /// Starts a stream (writes the header).
    pub fn new(heap: &'h Heap) -> Self {
        Self::with_capacity(heap, 256)
    }

    /// Starts a stream with an output buffer of `capacity` bytes.
    pub fn with_capacity(heap: &'h Heap, capacity: usize) -> Self {
        let mut out = Vec::with_capacity(capacity.max(4));
        out.extend_from_slice(&tc::HEADER);
        Encoder {
            heap,
            out,
            handles: vec![(0, 0); heap.len()],
            generation: 1,
            next_handle: tc::BASE_WIRE_HANDLE,
            depth: 0,
            limits: Limits::DEFAULT,
        }
    }

    /// Replaces the limits (only `max_depth` applies to writing).
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// The bytes written so far.
    pub fn finish(self) -> Vec<u8> {
        self.out
    }

    /// Writes one top-level item.
    pub fn item(&mut self, item: &Item) -> Result<(), EncodeError> {
        match item {
            Item::Value(v) => self.value(*v),
            Item::Block(b) => {
                self.block(b);
                Ok(())
            }
            Item::Reset => {
                self.out.push(tc::TC_RESET);
                self.reset_handles();
                Ok(())
            }
            Item::Aborted { partial, exception } => {
                self.out.extend_from_slice(partial);
                self.out.push(tc::TC_EXCEPTION);
                self.reset_handles();
                self.value(*exception)?;
                self.reset_handles();
                Ok(())
            }
        }
    }

    /// Writes primitive data at top level, split into records as the JDK does (at most 1024
    /// bytes each).
    pub fn block_data(&mut self, data: &[u8]) {
        for chunk in data.chunks(1024) {
            self.block(&Block::new(chunk.to_vec()));
        }
    }

    fn reset_handles(&mut self) {
        self.generation += 1;
        self.next_handle = tc::BASE_WIRE_HANDLE;
    }

    fn lookup(&self, id: Id) -> Option<u32> {
        match self.handles.get(id.index()) {
            Some(&(g, h)) if g == self.generation => Some(h),
            _ => None,
        }
    }

    fn assign(&mut self, id: Id) {
        let h = self.next_handle;
        self.next_handle += 1;
        if let Some(slot) = self.handles.get_mut(id.index()) {
            *slot = (self.generation, h);
        }
    }

    fn entry(&self, id: Id) -> Result<&'h Entry, EncodeError> {
        match self.heap.get(id) {
            Some(Entry::Pending) => Err(EncodeError::new(format!(
                "entry {id:?} was never completed (decoding stopped inside it)"
            ))),
            Some(e) => Ok(e),
            None => Err(EncodeError::new(format!("entry {id:?} is not in the heap"))),
        }
    }

    fn block(&mut self, b: &Block) {
        if b.long || b.data.len() > 0xff {
            self.out.push(tc::TC_BLOCKDATALONG);
            self.out
                .extend_from_slice(&(b.data.len() as i32).to_be_bytes());
        } else {
            self.out.push(tc::TC_BLOCKDATA);
            self.out.push(b.data.len() as u8);
        }
        self.out.extend_from_slice(&b.data);
    }

    fn utf(&mut self, s: &JavaStr, what: &str) -> Result<(), EncodeError> {
        let b = s.as_mutf8();
        let len = u16::try_from(b.len()).map_err(|_| {
            EncodeError::new(format!(
                "{what} {s:?} is {} bytes in modified UTF-8; at most 65535 fit",
                b.len()
            ))
        })?;
        self.out.extend_from_slice(&len.to_be_bytes());
        self.out.extend_from_slice(b);
        Ok(())
    }

    fn string_body(&mut self, s: &JavaStr) {
        let b = s.as_mutf8();
        if b.len() > 0xffff {
            self.out.push(tc::TC_LONGSTRING);
            self.out.extend_from_slice(&(b.len() as i64).to_be_bytes());
        } else {
            self.out.push(tc::TC_STRING);
            self.out.extend_from_slice(&(b.len() as u16).to_be_bytes());
        }
        self.out.extend_from_slice(b);
    }

    fn enter(&mut self) -> Result<(), EncodeError> {
        self.depth += 1;
        if self.depth > self.limits.max_depth {
            return Err(EncodeError::new(format!(
                "object graph nests deeper than {} levels",
                self.limits.max_depth
            )));
        }
        Ok(())
    }

    /// Writes an object position: null, or an entry (in full the first time, then as a
    /// reference).
    pub fn value(&mut self, v: Value) -> Result<(), EncodeError> {
        let id = match v {
            Value::Null => {
                self.out.push(tc::TC_NULL);
                return Ok(());
            }
            Value::Ref(id) => id,
            other => {
                return Err(EncodeError::new(format!(
                    "primitive {other:?} where an object is required"
                )))
            }
        };
        if let Some(h) = self.lookup(id) {
            self.out.push(tc::TC_REFERENCE);
            self.out.extend_from_slice(&h.to_be_bytes());
            return Ok(());
        }
        self.enter()?;
        let r = self.new_entry(id);
        self.depth -= 1;
        r
    }

    fn new_entry(&mut self, id: Id) -> Result<(), EncodeError> {
        match self.entry(id)? {
            Entry::Pending => unreachable!("entry() rejects pending entries"),
            Entry::String(s) => {
                self.assign(id);
                self.string_body(s);
                Ok(())
            }
            Entry::Object(o) => {
                self.out.push(tc::TC_OBJECT);
                self.class_desc(Some(o.desc))?;
                self.assign(id);
                self.object_data(id, o)
            }
            Entry::Array(a) => {
                self.out.push(tc::TC_ARRAY);
                self.class_desc(Some(a.desc))?;
                self.assign(id);
                self.array_data(id, a)
            }
            Entry::Enum(e) => {
                self.out.push(tc::TC_ENUM);
                self.class_desc(Some(e.desc))?;
                self.assign(id);
                match self.entry(e.name)? {
                    Entry::String(_) => self.value(Value::Ref(e.name)),
                    _ => Err(EncodeError::new(format!(
                        "enum constant {id:?}: its name {:?} is not a string",
                        e.name
                    ))),
                }
            }
            Entry::Class(desc) => {
                self.out.push(tc::TC_CLASS);
                self.class_desc(Some(*desc))?;
                self.assign(id);
                Ok(())
            }
            Entry::ClassDesc(_) | Entry::ProxyDesc(_) => self.class_desc(Some(id)),
        }
    }

    fn class_desc(&mut self, desc: Option<Id>) -> Result<(), EncodeError> {
        let Some(id) = desc else {
            self.out.push(tc::TC_NULL);
            return Ok(());
        };
        if let Some(h) = self.lookup(id) {
            self.out.push(tc::TC_REFERENCE);
            self.out.extend_from_slice(&h.to_be_bytes());
            return Ok(());
        }
        self.enter()?;
        let r = self.new_class_desc(id);
        self.depth -= 1;
        r
    }

    fn new_class_desc(&mut self, id: Id) -> Result<(), EncodeError> {
        match self.entry(id)? {
            Entry::ClassDesc(d) => {
                self.out.push(tc::TC_CLASSDESC);
                self.utf(&d.name, "class name")?;
                self.out.extend_from_slice(&d.suid.to_be_bytes());
                self.assign(id);
                self.out.push(d.flags);
                let n = u16::try_from(d.fields.len()).map_err(|_| {
                    EncodeError::new(format!("class {:?} has more than 65535 fields", d.name))
                })?;
                self.out.extend_from_slice(&n.to_be_bytes());
                for f in &d.fields {
                    self.out.push(f.field_type.code());
                    self.utf(&f.name, "field name")?;
                    if !f.field_type.is_primitive() {
                        let Some(sig) = f.signature else {
                            return Err(EncodeError::new(format!(
                                "class {:?}: object field {:?} has no type signature",
                                d.name, f.name
                            )));
                        };
                        if !matches!(self.entry(sig)?, Entry::String(_)) {
                            return Err(EncodeError::new(format!(
                                "class {:?}: signature of field {:?} is not a string",
                                d.name, f.name
                            )));
                        }
                        self.value(Value::Ref(sig))?;
                    }
                }
                self.contents(&d.annotation)?;
                self.class_desc(d.super_desc)
            }
            Entry::ProxyDesc(p) => {
                self.out.push(tc::TC_PROXYCLASSDESC);
                self.assign(id);
                self.out
                    .extend_from_slice(&(p.interfaces.len() as i32).to_be_bytes());
                for i in &p.interfaces {
                    self.utf(i, "interface name")?;
                }
                self.contents(&p.annotation)?;
                self.class_desc(p.super_desc)
            }
            _ => Err(EncodeError::new(format!(
                "entry {id:?} is used as a class descriptor but is not one"
            ))),
        }
    }

    fn contents(&mut self, contents: &[Content]) -> Result<(), EncodeError> {
        for c in contents {
            match c {
                Content::Value(v) => self.value(*v)?,
                Content::Block(b) => self.block(b),
            }
        }
        self.out.push(tc::TC_ENDBLOCKDATA);
        Ok(())
    }

    fn object_data(&mut self, id: Id, o: &Object) -> Result<(), EncodeError> {
        if let Some(d) = self.heap.class_desc(o.desc) {
            if d.has(flags::SC_EXTERNALIZABLE) {
                return match o.class_data.as_slice() {
                    [ClassData {
                        annotation: Some(a),
                        ..
                    }] if d.has(flags::SC_BLOCK_DATA) => self.contents(a),
                    _ => Err(EncodeError::new(format!(
                        "externalizable object {id:?} of {:?} needs exactly one block of external data and SC_BLOCK_DATA",
                        d.name
                    ))),
                };
            }
        }
        let chain = self.heap.hierarchy(o.desc, self.limits.max_depth);
        if chain.len() != o.class_data.len() {
            return Err(EncodeError::new(format!(
                "object {id:?} of {:?} has data for {} classes but its descriptor chain has {}",
                self.heap
                    .class_name(id)
                    .map(|n| n.to_string())
                    .unwrap_or_default(),
                o.class_data.len(),
                chain.len()
            )));
        }
        for (level, data) in chain.iter().zip(&o.class_data) {
            match self.entry(*level)? {
                Entry::ClassDesc(d) => {
                    let wm = d.has(flags::SC_WRITE_METHOD);
                    match &data.fields {
                        Some(values) => {
                            if values.len() != d.fields.len() {
                                return Err(EncodeError::new(format!(
                                    "object {id:?}: class {:?} declares {} fields but {} values were given",
                                    d.name,
                                    d.fields.len(),
                                    values.len()
                                )));
                            }
                            for (f, v) in d.fields.iter().zip(values) {
                                self.field_value(d, f, *v)?;
                            }
                        }
                        None if wm || d.fields.is_empty() => {}
                        None => {
                            return Err(EncodeError::new(format!(
                                "object {id:?}: class {:?} has no writeObject, so its field values are required",
                                d.name
                            )))
                        }
                    }
                    match (&data.annotation, wm) {
                        (Some(a), true) => self.contents(a)?,
                        (None, false) => {}
                        (Some(_), false) => {
                            return Err(EncodeError::new(format!(
                                "object {id:?}: class {:?} has no writeObject (SC_WRITE_METHOD) but custom data was given",
                                d.name
                            )))
                        }
                        (None, true) => {
                            return Err(EncodeError::new(format!(
                                "object {id:?}: class {:?} has writeObject (SC_WRITE_METHOD); its data must be given (possibly empty)",
                                d.name
                            )))
                        }
                    }
                }
                Entry::ProxyDesc(_) => {}
                _ => {
                    return Err(EncodeError::new(format!(
                        "object {id:?}: {level:?} in its class chain is not a class descriptor"
                    )))
                }
            }
        }
        Ok(())
    }

    fn field_value(&mut self, d: &ClassDesc, f: &FieldDesc, v: Value) -> Result<(), EncodeError> {
        if !v.fits(f.field_type) {
            return Err(EncodeError::new(format!(
                "class {:?}: field {:?} of type {} cannot hold {v:?}",
                d.name,
                f.name,
                f.field_type.code() as char
            )));
        }
        match v {
            Value::Boolean(b) => self.out.push(b as u8),
            Value::Byte(b) => self.out.push(b as u8),
            Value::Char(c) => self.out.extend_from_slice(&c.to_be_bytes()),
            Value::Short(s) => self.out.extend_from_slice(&s.to_be_bytes()),
            Value::Int(i) => self.out.extend_from_slice(&i.to_be_bytes()),
            Value::Long(l) => self.out.extend_from_slice(&l.to_be_bytes()),
            Value::Float(x) => self.out.extend_from_slice(&x.to_bits().to_be_bytes()),
            Value::Double(x) => self.out.extend_from_slice(&x.to_bits().to_be_bytes()),
            Value::Null | Value::Ref(_) => self.value(v)?,
        }
        Ok(())
    }

    fn array_data(&mut self, id: Id, a: &Array) -> Result<(), EncodeError> {
        let elem = self
            .heap
            .class_desc(a.desc)
            .and_then(|d| d.name.as_mutf8().get(1).copied())
            .and_then(FieldType::from_code);
        let ok = matches!(
            (elem, &a.data),
            (Some(FieldType::Byte), ArrayData::Byte(_))
                | (Some(FieldType::Boolean), ArrayData::Boolean(_))
                | (Some(FieldType::Char), ArrayData::Char(_))
                | (Some(FieldType::Short), ArrayData::Short(_))
                | (Some(FieldType::Int), ArrayData::Int(_))
                | (Some(FieldType::Long), ArrayData::Long(_))
                | (Some(FieldType::Float), ArrayData::Float(_))
                | (Some(FieldType::Double), ArrayData::Double(_))
                | (
                    Some(FieldType::Object | FieldType::Array),
                    ArrayData::Object(_)
                )
        );
        if !ok {
            return Err(EncodeError::new(format!(
                "array {id:?}: elements do not match its class {:?}",
                self.heap
                    .class_name(id)
                    .map(|n| n.to_string())
                    .unwrap_or_default()
            )));
        }
        let n = i32::try_from(a.data.len())
            .map_err(|_| EncodeError::new(format!("array {id:?} has more than 2^31-1 elements")))?;
        self.out.extend_from_slice(&n.to_be_bytes());
        let out = &mut self.out;
        match &a.data {
            ArrayData::Byte(v) => out.extend_from_slice(v),
            ArrayData::Boolean(v) => out.extend(v.iter().map(|b| *b as u8)),
            ArrayData::Char(v) => v
                .iter()
                .for_each(|x| out.extend_from_slice(&x.to_be_bytes())),
            ArrayData::Short(v) => v
                .iter()
                .for_each(|x| out.extend_from_slice(&x.to_be_bytes())),
            ArrayData::Int(v) => v
                .iter()
                .for_each(|x| out.extend_from_slice(&x.to_be_bytes())),
            ArrayData::Long(v) => v
                .iter()
                .for_each(|x| out.extend_from_slice(&x.to_be_bytes())),
            ArrayData::Float(v) => v
                .iter()
                .for_each(|x| out.extend_from_slice(&x.to_bits().to_be_bytes())),
            ArrayData::Double(v) => v
                .iter()
                .for_each(|x| out.extend_from_slice(&x.to_bits().to_be_bytes())),
            ArrayData::Object(v) => {
                for e in v {
                    self.value(*e)?;
                }
            }
        }
        Ok(())
    }
}
