//! The decoder: bytes in, [`Stream`] out. No IO; the whole stream is a byte slice.
//!
//! It follows the grammar of the *Java Object Serialization Specification* §6.4 with the
//! JDK's `ObjectInputStream` as the reference for every choice the specification leaves open
//! (when handles are assigned, which type codes each position accepts).

use super::error::{DecodeError, DecodeErrorKind as K, Limit, Limits};
use super::model::*;
use super::mutf8::JavaStr;
use super::tc;

/// Options of the decoder.
#[derive(Clone, Debug)]
pub struct DecodeOptions {
    /// Hard limits.
    pub limits: Limits,
    /// Classes that declare serializable fields but whose `writeObject` does not write them
    /// (no `defaultWriteObject`). The stream does not say so; without this list their custom
    /// data would be read as field values.
    pub no_default_fields: Vec<String>,
}

impl Default for DecodeOptions {
    fn default() -> Self {
        DecodeOptions {
            limits: Limits::DEFAULT,
            no_default_fields: vec![
                "hudson.remoting.RemoteInputStream".into(),
                "hudson.remoting.Pipe".into(),
            ],
        }
    }
}

/// Decodes exactly one stream: header, items, nothing after.
pub fn decode(bytes: &[u8], opts: &DecodeOptions) -> Result<Stream, DecodeError> {
    let (stream, used) = decode_prefix(bytes, opts)?;
    if used != bytes.len() {
        return Err(DecodeError {
            offset: used,
            kind: K::TrailingBytes,
        });
    }
    Ok(stream)
}

/// Decodes one stream from the start of `bytes` and returns it with the number of bytes it
/// used. The stream ends at the end of the input or where another stream header
/// (`ac ed 00 05`) begins, as in a capture of several streams back to back.
pub fn decode_prefix(bytes: &[u8], opts: &DecodeOptions) -> Result<(Stream, usize), DecodeError> {
    if bytes.len() > opts.limits.max_total_bytes {
        return Err(DecodeError {
            offset: 0,
            kind: K::Limit {
                limit: Limit::TotalBytes,
                value: bytes.len() as u64,
                max: opts.limits.max_total_bytes as u64,
            },
        });
    }
    let mut r = Reader {
        buf: bytes,
        pos: 0,
        heap: Heap::new(),
        handles: Vec::new(),
        depth: 0,
        opts,
    };
    let magic = r.u16("the stream header").map_err(Fail::into_error)?;
    if magic != tc::STREAM_MAGIC {
        return Err(DecodeError {
            offset: 0,
            kind: K::BadMagic(magic),
        });
    }
    let version = r.u16("the stream header").map_err(Fail::into_error)?;
    if version != tc::STREAM_VERSION {
        return Err(DecodeError {
            offset: 2,
            kind: K::BadVersion(version),
        });
    }
    let mut items = Vec::new();
    while r.pos < r.buf.len() && !r.buf[r.pos..].starts_with(&tc::HEADER) {
        items.push(r.top_item()?);
    }
    let used = r.pos;
    Ok((
        Stream {
            heap: r.heap,
            items,
        },
        used,
    ))
}

/// Internal failure: a real error, or the writer's `TC_EXCEPTION` unwinding to top level.
enum Fail {
    Error(DecodeError),
    Aborted { at: usize, exception: Value },
}

impl Fail {
    fn into_error(self) -> DecodeError {
        match self {
            Fail::Error(e) => e,
            Fail::Aborted { at, .. } => DecodeError {
                offset: at,
                kind: K::NestedException,
            },
        }
    }
}

type R<T> = Result<T, Fail>;

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    heap: Heap,
    /// The handle table: handle `BASE_WIRE_HANDLE + i` is `handles[i]`.
    handles: Vec<Id>,
    depth: usize,
    opts: &'a DecodeOptions,
}

impl<'a> Reader<'a> {
    #[cold]
    #[inline(never)]
    fn err<T>(&self, offset: usize, kind: K) -> R<T> {
        Err(Fail::Error(DecodeError { offset, kind }))
    }

    fn take(&mut self, n: usize, reading: &'static str) -> R<&'a [u8]> {
        if self.buf.len() - self.pos < n {
            return self.err(self.pos, K::Truncated { reading });
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn u8(&mut self, reading: &'static str) -> R<u8> {
        Ok(self.take(1, reading)?[0])
    }

    fn u16(&mut self, reading: &'static str) -> R<u16> {
        let b = self.take(2, reading)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    fn i32(&mut self, reading: &'static str) -> R<i32> {
        let b = self.take(4, reading)?;
        Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn i64(&mut self, reading: &'static str) -> R<i64> {
        let b = self.take(8, reading)?;
        Ok(i64::from_be_bytes(b.try_into().unwrap_or([0; 8])))
    }

    fn peek(&self, reading: &'static str) -> R<u8> {
        match self.buf.get(self.pos) {
            Some(b) => Ok(*b),
            None => self.err(self.pos, K::Truncated { reading }),
        }
    }

    fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// Checks a declared length against a limit and against the input left.
    fn check_len(&self, at: usize, len: u64, elem: u64, limit: Limit, max: usize) -> R<usize> {
        if len > max as u64 {
            return self.err(
                at,
                K::Limit {
                    limit,
                    value: len,
                    max: max as u64,
                },
            );
        }
        let need = len.saturating_mul(elem.max(1));
        if need > self.remaining() as u64 {
            return self.err(
                at,
                K::LengthBeyondInput {
                    length: need,
                    available: self.remaining() as u64,
                },
            );
        }
        Ok(len as usize)
    }

    fn assign(&mut self, at: usize, id: Id) -> R<()> {
        if self.handles.len() >= self.opts.limits.max_handles {
            return self.err(
                at,
                K::Limit {
                    limit: Limit::Handles,
                    value: self.handles.len() as u64 + 1,
                    max: self.opts.limits.max_handles as u64,
                },
            );
        }
        self.handles.push(id);
        Ok(())
    }

    fn enter(&mut self, at: usize) -> R<()> {
        self.depth += 1;
        if self.depth > self.opts.limits.max_depth {
            return self.err(
                at,
                K::Limit {
                    limit: Limit::Depth,
                    value: self.depth as u64,
                    max: self.opts.limits.max_depth as u64,
                },
            );
        }
        Ok(())
    }

    /// Reads a `TC_REFERENCE` handle (the type code already consumed) and resolves it.
    fn handle(&mut self, at: usize) -> R<(u32, Id)> {
        let h = self.i32("a handle")? as u32;
        let idx = h.wrapping_sub(tc::BASE_WIRE_HANDLE) as usize;
        match self.handles.get(idx) {
            Some(id) => Ok((h, *id)),
            None => self.err(at, K::UnknownHandle(h)),
        }
    }

    fn utf(&mut self, reading: &'static str) -> R<JavaStr> {
        let len = self.u16(reading)? as usize;
        let at = self.pos;
        let bytes = self.take(len, reading)?;
        JavaStr::from_mutf8(bytes).or_else(|e| self.err(at, K::BadString { at: e.at }))
    }

    fn long_utf(&mut self, reading: &'static str) -> R<JavaStr> {
        let at = self.pos;
        let len = self.i64(reading)?;
        if len < 0 {
            return self.err(at, K::NegativeLength(len));
        }
        let max = self.opts.limits.max_string_len;
        let len = self.check_len(at, len as u64, 1, Limit::StringLength, max)?;
        let start = self.pos;
        let bytes = self.take(len, reading)?;
        JavaStr::from_mutf8(bytes).or_else(|e| self.err(start, K::BadString { at: e.at }))
    }

    fn top_item(&mut self) -> Result<Item, DecodeError> {
        let start = self.pos;
        let result = match self.buf[self.pos] {
            tc::TC_RESET => {
                self.pos += 1;
                self.handles.clear();
                return Ok(Item::Reset);
            }
            tc::TC_BLOCKDATA | tc::TC_BLOCKDATALONG => self.block().map(Item::Block),
            _ => self.value().map(Item::Value),
        };
        match result {
            Ok(item) => Ok(item),
            Err(Fail::Error(e)) => Err(e),
            Err(Fail::Aborted { at, exception }) => {
                self.depth = 0;
                Ok(Item::Aborted {
                    partial: self.buf[start..at].to_vec(),
                    exception,
                })
            }
        }
    }

    fn block(&mut self) -> R<Block> {
        let at = self.pos;
        let long = self.u8("a block-data header")? == tc::TC_BLOCKDATALONG;
        let len = if long {
            let n = self.i32("a block-data length")?;
            if n < 0 {
                return self.err(at, K::NegativeLength(n as i64));
            }
            n as u64
        } else {
            self.u8("a block-data length")? as u64
        };
        let max = self.opts.limits.max_block_len;
        let len = self.check_len(at, len, 1, Limit::BlockLength, max)?;
        let data = self.take(len, "block data")?.to_vec();
        Ok(Block { data, long })
    }

    /// Contents up to and including `TC_ENDBLOCKDATA`: class annotations, `writeObject` and
    /// externalizable data.
    fn contents(&mut self) -> R<Vec<Content>> {
        let mut out = Vec::new();
        loop {
            match self.peek("annotation data")? {
                tc::TC_ENDBLOCKDATA => {
                    self.pos += 1;
                    return Ok(out);
                }
                tc::TC_BLOCKDATA | tc::TC_BLOCKDATALONG => out.push(Content::Block(self.block()?)),
                _ => out.push(Content::Value(self.value()?)),
            }
        }
    }

    /// An object position (`readObject0`): anything that is an object, or null.
    fn value(&mut self) -> R<Value> {
        let at = self.pos;
        let code = self.u8("an object")?;
        match code {
            tc::TC_NULL => Ok(Value::Null),
            tc::TC_REFERENCE => {
                // Any handle may be referenced from an object position, including objects
                // still being read: that is how cycles are written.
                let (_, id) = self.handle(at)?;
                Ok(Value::Ref(id))
            }
            tc::TC_STRING | tc::TC_LONGSTRING => self.string(at, code == tc::TC_LONGSTRING),
            tc::TC_OBJECT => {
                self.enter(at)?;
                let v = self.object(at);
                self.depth -= 1;
                v
            }
            tc::TC_ARRAY => {
                self.enter(at)?;
                let v = self.array(at);
                self.depth -= 1;
                v
            }
            tc::TC_ENUM => {
                self.enter(at)?;
                let v = self.enum_const(at);
                self.depth -= 1;
                v
            }
            tc::TC_CLASS => {
                let desc = self.class_desc_required(at)?;
                let id = self.heap.add(Entry::Class(desc));
                self.assign(at, id)?;
                Ok(Value::Ref(id))
            }
            tc::TC_CLASSDESC | tc::TC_PROXYCLASSDESC => {
                self.pos = at;
                let desc = self.class_desc_required(at)?;
                Ok(Value::Ref(desc))
            }
            tc::TC_EXCEPTION => self.exception(at),
            tc::TC_RESET => self.err(at, K::ResetInsideObject),
            code => self.err(
                at,
                K::UnexpectedTypeCode {
                    code,
                    expected: "an object",
                },
            ),
        }
    }

    #[inline(never)]
    fn string(&mut self, at: usize, long: bool) -> R<Value> {
        let s = if long {
            self.long_utf("a long string")?
        } else {
            self.utf("a string")?
        };
        let id = self.heap.add(Entry::String(s));
        self.assign(at, id)?;
        Ok(Value::Ref(id))
    }

    #[cold]
    #[inline(never)]
    fn exception(&mut self, at: usize) -> R<Value> {
        // The writer failed part-way: it cleared its handle table, wrote the
        // exception, and cleared it again. Unwind to the top-level item.
        self.handles.clear();
        let exception = match self.value() {
            Ok(v) => v,
            Err(Fail::Aborted { at, .. }) => return self.err(at, K::NestedException),
            Err(e) => return Err(e),
        };
        self.handles.clear();
        Err(Fail::Aborted { at, exception })
    }

    fn class_desc_required(&mut self, at: usize) -> R<Id> {
        match self.class_desc()? {
            Some(id) => Ok(id),
            None => self.err(
                at,
                K::UnexpectedTypeCode {
                    code: tc::TC_NULL,
                    expected: "a class descriptor",
                },
            ),
        }
    }

    /// A class descriptor position: `TC_CLASSDESC`, `TC_PROXYCLASSDESC`, a reference to a
    /// completed descriptor, or null.
    fn class_desc(&mut self) -> R<Option<Id>> {
        let at = self.pos;
        match self.u8("a class descriptor")? {
            tc::TC_NULL => Ok(None),
            tc::TC_REFERENCE => {
                let (h, id) = self.handle(at)?;
                match self.heap.get(id) {
                    Some(Entry::ClassDesc(_) | Entry::ProxyDesc(_)) => Ok(Some(id)),
                    _ => self.err(
                        at,
                        K::WrongReference {
                            handle: h,
                            expected: "a completed class descriptor",
                        },
                    ),
                }
            }
            tc::TC_CLASSDESC => {
                self.enter(at)?;
                let r = self.new_class_desc(at);
                self.depth -= 1;
                r.map(Some)
            }
            tc::TC_PROXYCLASSDESC => {
                self.enter(at)?;
                let r = self.new_proxy_desc(at);
                self.depth -= 1;
                r.map(Some)
            }
            code => self.err(
                at,
                K::UnexpectedTypeCode {
                    code,
                    expected: "a class descriptor (TC_CLASSDESC, TC_PROXYCLASSDESC, TC_REFERENCE or TC_NULL)",
                },
            ),
        }
    }

    fn new_class_desc(&mut self, at: usize) -> R<Id> {
        let name = self.utf("a class name")?;
        let suid = self.i64("a serialVersionUID")?;
        let id = self.heap.add(Entry::Pending);
        self.assign(at, id)?;
        let flags = self.u8("class descriptor flags")?;
        let count_at = self.pos;
        let nfields = self.u16("a field count")? as usize;
        // Each field descriptor takes at least 3 bytes.
        self.check_len(count_at, nfields as u64, 3, Limit::ArrayLength, usize::MAX)?;
        let mut fields = Vec::with_capacity(nfields);
        for _ in 0..nfields {
            let fat = self.pos;
            let code = self.u8("a field type code")?;
            let Some(field_type) = FieldType::from_code(code) else {
                return self.err(fat, K::BadFieldType(code));
            };
            let fname = self.utf("a field name")?;
            let signature = if field_type.is_primitive() {
                None
            } else {
                Some(self.type_string()?)
            };
            fields.push(FieldDesc {
                field_type,
                name: fname,
                signature,
            });
        }
        let annotation = self.contents()?;
        let super_desc = self.class_desc()?;
        self.heap.set(
            id,
            Entry::ClassDesc(ClassDesc {
                name,
                suid,
                flags,
                fields,
                annotation,
                super_desc,
            }),
        );
        Ok(id)
    }

    fn new_proxy_desc(&mut self, at: usize) -> R<Id> {
        let id = self.heap.add(Entry::Pending);
        self.assign(at, id)?;
        let count_at = self.pos;
        let n = self.i32("an interface count")?;
        if n < 0 {
            return self.err(count_at, K::NegativeLength(n as i64));
        }
        let max = self.opts.limits.max_interfaces;
        let n = self.check_len(count_at, n as u64, 2, Limit::Interfaces, max)?;
        let mut interfaces = Vec::with_capacity(n);
        for _ in 0..n {
            interfaces.push(self.utf("an interface name")?);
        }
        let annotation = self.contents()?;
        let super_desc = self.class_desc()?;
        self.heap.set(
            id,
            Entry::ProxyDesc(ProxyDesc {
                interfaces,
                annotation,
                super_desc,
            }),
        );
        Ok(id)
    }

    /// The JVM signature of an object field: a string or a reference to one.
    fn type_string(&mut self) -> R<Id> {
        let at = self.pos;
        match self.u8("a field type signature")? {
            tc::TC_STRING => {
                let s = self.utf("a field type signature")?;
                let id = self.heap.add(Entry::String(s));
                self.assign(at, id)?;
                Ok(id)
            }
            tc::TC_LONGSTRING => {
                let s = self.long_utf("a field type signature")?;
                let id = self.heap.add(Entry::String(s));
                self.assign(at, id)?;
                Ok(id)
            }
            tc::TC_REFERENCE => {
                let (h, id) = self.handle(at)?;
                match self.heap.get(id) {
                    Some(Entry::String(_)) => Ok(id),
                    _ => self.err(
                        at,
                        K::WrongReference {
                            handle: h,
                            expected: "a string (field type signature)",
                        },
                    ),
                }
            }
            code => self.err(
                at,
                K::UnexpectedTypeCode {
                    code,
                    expected: "a field type signature string",
                },
            ),
        }
    }

    fn object(&mut self, at: usize) -> R<Value> {
        let desc = self.class_desc_required(at)?;
        let id = self.heap.add(Entry::Pending);
        self.assign(at, id)?;
        let externalizable = match self.heap.get(desc) {
            Some(Entry::ClassDesc(d)) if d.has(flags::SC_EXTERNALIZABLE) => {
                if !d.has(flags::SC_BLOCK_DATA) {
                    let name = d.name.to_string();
                    return self.err(at, K::ExternalizableV1(name));
                }
                true
            }
            _ => false,
        };
        let class_data = if externalizable {
            vec![ClassData {
                fields: None,
                annotation: Some(self.contents()?),
            }]
        } else {
            let chain = self.heap.hierarchy(desc, self.opts.limits.max_depth);
            let mut class_data = Vec::with_capacity(chain.len());
            for level in chain {
                class_data.push(self.class_data(level)?);
            }
            class_data
        };
        self.heap
            .set(id, Entry::Object(Object { desc, class_data }));
        Ok(Value::Ref(id))
    }

    fn class_data(&mut self, level: Id) -> R<ClassData> {
        let (types, write_method, skip_fields) = match self.heap.get(level) {
            Some(Entry::ClassDesc(d)) => {
                let wm = d.has(flags::SC_WRITE_METHOD);
                let skip = wm
                    && !d.fields.is_empty()
                    && self.opts.no_default_fields.iter().any(|n| d.name.eq_str(n));
                let types: Vec<FieldType> = d.fields.iter().map(|f| f.field_type).collect();
                (types, wm, skip)
            }
            _ => (Vec::new(), false, false),
        };
        let fields = if skip_fields {
            None
        } else {
            let mut values = Vec::with_capacity(types.len());
            for t in types {
                values.push(self.field_value(t)?);
            }
            Some(values)
        };
        let annotation = if write_method {
            Some(self.contents()?)
        } else {
            None
        };
        Ok(ClassData { fields, annotation })
    }

    fn field_value(&mut self, t: FieldType) -> R<Value> {
        Ok(match t {
            FieldType::Byte => Value::Byte(self.u8("a byte field")? as i8),
            FieldType::Boolean => Value::Boolean(self.u8("a boolean field")? != 0),
            FieldType::Char => Value::Char(self.u16("a char field")?),
            FieldType::Short => Value::Short(self.u16("a short field")? as i16),
            FieldType::Int => Value::Int(self.i32("an int field")?),
            FieldType::Long => Value::Long(self.i64("a long field")?),
            FieldType::Float => Value::Float(f32::from_bits(self.i32("a float field")? as u32)),
            FieldType::Double => Value::Double(f64::from_bits(self.i64("a double field")? as u64)),
            FieldType::Object | FieldType::Array => self.value()?,
        })
    }

    fn array(&mut self, at: usize) -> R<Value> {
        let desc = self.class_desc_required(at)?;
        let elem = match self.heap.get(desc) {
            Some(Entry::ClassDesc(d)) => {
                let b = d.name.as_mutf8();
                match (b.first(), b.get(1).and_then(|c| FieldType::from_code(*c))) {
                    (Some(b'['), Some(t)) => t,
                    _ => {
                        let name = d.name.to_string();
                        return self.err(at, K::BadArrayClass(name));
                    }
                }
            }
            _ => return self.err(at, K::BadArrayClass("<proxy>".into())),
        };
        let id = self.heap.add(Entry::Pending);
        self.assign(at, id)?;
        let len_at = self.pos;
        let n = self.i32("an array length")?;
        if n < 0 {
            return self.err(len_at, K::NegativeLength(n as i64));
        }
        let size = elem.primitive_size() as u64;
        let max = self.opts.limits.max_array_len;
        let n = self.check_len(len_at, n as u64, size, Limit::ArrayLength, max)?;
        let data = if elem.is_primitive() {
            self.prim_array(elem, n)?
        } else {
            let mut v = Vec::with_capacity(n);
            for _ in 0..n {
                v.push(self.value()?);
            }
            ArrayData::Object(v)
        };
        self.heap.set(id, Entry::Array(Array { desc, data }));
        Ok(Value::Ref(id))
    }

    /// Primitive array elements; kept out of `array` so the recursive path has a small frame.
    #[inline(never)]
    fn prim_array(&mut self, elem: FieldType, n: usize) -> R<ArrayData> {
        Ok(match elem {
            FieldType::Byte => ArrayData::Byte(self.take(n, "byte array")?.to_vec()),
            FieldType::Boolean => ArrayData::Boolean(
                self.take(n, "boolean array")?
                    .iter()
                    .map(|b| *b != 0)
                    .collect(),
            ),
            FieldType::Char => ArrayData::Char(
                self.take(n * 2, "char array")?
                    .chunks_exact(2)
                    .map(|c| u16::from_be_bytes([c[0], c[1]]))
                    .collect(),
            ),
            FieldType::Short => ArrayData::Short(
                self.take(n * 2, "short array")?
                    .chunks_exact(2)
                    .map(|c| i16::from_be_bytes([c[0], c[1]]))
                    .collect(),
            ),
            FieldType::Int => ArrayData::Int(
                self.take(n * 4, "int array")?
                    .chunks_exact(4)
                    .map(|c| i32::from_be_bytes([c[0], c[1], c[2], c[3]]))
                    .collect(),
            ),
            FieldType::Float => ArrayData::Float(
                self.take(n * 4, "float array")?
                    .chunks_exact(4)
                    .map(|c| f32::from_bits(u32::from_be_bytes([c[0], c[1], c[2], c[3]])))
                    .collect(),
            ),
            FieldType::Long => ArrayData::Long(
                self.take(n * 8, "long array")?
                    .chunks_exact(8)
                    .map(|c| i64::from_be_bytes(c.try_into().unwrap_or([0; 8])))
                    .collect(),
            ),
            FieldType::Double => ArrayData::Double(
                self.take(n * 8, "double array")?
                    .chunks_exact(8)
                    .map(|c| f64::from_bits(u64::from_be_bytes(c.try_into().unwrap_or([0; 8]))))
                    .collect(),
            ),
            FieldType::Object | FieldType::Array => {
                unreachable!("object arrays are read by array()")
            }
        })
    }

    fn enum_const(&mut self, at: usize) -> R<Value> {
        let desc = self.class_desc_required(at)?;
        match self.heap.get(desc) {
            Some(Entry::ClassDesc(d)) if d.has(flags::SC_ENUM) => {}
            Some(Entry::ClassDesc(d)) => {
                let name = d.name.to_string();
                return self.err(at, K::NotAnEnum(name));
            }
            _ => return self.err(at, K::NotAnEnum("<proxy>".into())),
        }
        let id = self.heap.add(Entry::Pending);
        self.assign(at, id)?;
        let name_at = self.pos;
        let name = match self.value()? {
            Value::Ref(s) if matches!(self.heap.get(s), Some(Entry::String(_))) => s,
            _ => {
                return self.err(
                    name_at,
                    K::UnexpectedTypeCode {
                        code: self.buf[name_at],
                        expected: "the enum constant's name string",
                    },
                )
            }
        };
        self.heap.set(id, Entry::Enum(EnumConst { desc, name }));
        Ok(Value::Ref(id))
    }
}
