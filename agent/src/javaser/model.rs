//! The value model: what a stream holds, faithful enough to be written back byte for byte.
//!
//! Everything that can carry a handle in a stream (strings, objects, arrays, enum constants,
//! `Class` objects, class descriptors) is an [`Entry`] in a [`Heap`], addressed by an [`Id`].
//! References between entries are `Id`s, so shared objects and cycles are plain data. Stream
//! handles themselves are not stored: the writer hands them out again in write order, which is
//! the order in which the reader met them, so a decoded stream encodes to the same bytes.

use super::mutf8::JavaStr;

/// Index of an entry in a [`Heap`].
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Id(pub(crate) u32);

impl Id {
    /// The position of the entry in its heap.
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

impl std::fmt::Debug for Id {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// `classDescFlags` bits.
pub mod flags {
    /// The class has a `writeObject` method.
    pub const SC_WRITE_METHOD: u8 = 0x01;
    /// The class is `Serializable`.
    pub const SC_SERIALIZABLE: u8 = 0x02;
    /// The class is `Externalizable`.
    pub const SC_EXTERNALIZABLE: u8 = 0x04;
    /// Externalizable data is in block-data mode (protocol version 2).
    pub const SC_BLOCK_DATA: u8 = 0x08;
    /// The class is an enum.
    pub const SC_ENUM: u8 = 0x10;
}

/// A field's type, from its descriptor's type code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FieldType {
    /// `B`
    Byte,
    /// `C`
    Char,
    /// `D`
    Double,
    /// `F`
    Float,
    /// `I`
    Int,
    /// `J`
    Long,
    /// `S`
    Short,
    /// `Z`
    Boolean,
    /// `L`: an object of a class type.
    Object,
    /// `[`: an array.
    Array,
}

impl FieldType {
    /// Maps a type code byte (`B`, `C`, … `L`, `[`) to a field type.
    pub fn from_code(code: u8) -> Option<Self> {
        Some(match code {
            b'B' => FieldType::Byte,
            b'C' => FieldType::Char,
            b'D' => FieldType::Double,
            b'F' => FieldType::Float,
            b'I' => FieldType::Int,
            b'J' => FieldType::Long,
            b'S' => FieldType::Short,
            b'Z' => FieldType::Boolean,
            b'L' => FieldType::Object,
            b'[' => FieldType::Array,
            _ => return None,
        })
    }

    /// The type code byte.
    pub fn code(self) -> u8 {
        match self {
            FieldType::Byte => b'B',
            FieldType::Char => b'C',
            FieldType::Double => b'D',
            FieldType::Float => b'F',
            FieldType::Int => b'I',
            FieldType::Long => b'J',
            FieldType::Short => b'S',
            FieldType::Boolean => b'Z',
            FieldType::Object => b'L',
            FieldType::Array => b'[',
        }
    }

    /// True for the eight primitive types.
    pub fn is_primitive(self) -> bool {
        !matches!(self, FieldType::Object | FieldType::Array)
    }

    /// Encoded size of a value of this primitive type (object types: 0).
    pub fn primitive_size(self) -> usize {
        match self {
            FieldType::Byte | FieldType::Boolean => 1,
            FieldType::Char | FieldType::Short => 2,
            FieldType::Int | FieldType::Float => 4,
            FieldType::Long | FieldType::Double => 8,
            FieldType::Object | FieldType::Array => 0,
        }
    }
}

/// A field value, an array element, or an object reference inside annotations.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Value {
    /// `null`
    Null,
    /// `boolean`
    Boolean(bool),
    /// `byte`
    Byte(i8),
    /// `char`: one UTF-16 code unit.
    Char(u16),
    /// `short`
    Short(i16),
    /// `int`
    Int(i32),
    /// `long`
    Long(i64),
    /// `float`
    Float(f32),
    /// `double`
    Double(f64),
    /// A string, object, array, enum constant or `Class` in the heap.
    Ref(Id),
}

impl Value {
    /// The referenced entry, if this is a reference.
    pub fn as_ref(&self) -> Option<Id> {
        match self {
            Value::Ref(id) => Some(*id),
            _ => None,
        }
    }

    /// Does this value fit a field of type `t`?
    pub fn fits(&self, t: FieldType) -> bool {
        matches!(
            (self, t),
            (
                Value::Null | Value::Ref(_),
                FieldType::Object | FieldType::Array
            ) | (Value::Boolean(_), FieldType::Boolean)
                | (Value::Byte(_), FieldType::Byte)
                | (Value::Char(_), FieldType::Char)
                | (Value::Short(_), FieldType::Short)
                | (Value::Int(_), FieldType::Int)
                | (Value::Long(_), FieldType::Long)
                | (Value::Float(_), FieldType::Float)
                | (Value::Double(_), FieldType::Double)
        )
    }
}

/// A block-data record: bytes written with `writeInt`, `write(byte[])` and the like.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Block {
    /// The record's bytes.
    pub data: Vec<u8>,
    /// Written as `TC_BLOCKDATALONG` (`7a`, i32 length) rather than `TC_BLOCKDATA` (`77`).
    pub long: bool,
}

impl Block {
    /// A record in the form the JDK picks for this length (`77` up to 255 bytes).
    pub fn new(data: Vec<u8>) -> Self {
        let long = data.len() > 0xff;
        Block { data, long }
    }
}

/// What may appear inside class annotations, `writeObject` data and externalizable data.
#[derive(Clone, Debug, PartialEq)]
pub enum Content {
    /// An object (or `null`) written with `writeObject`.
    Value(Value),
    /// Primitive data.
    Block(Block),
}

/// A top-level item of a stream.
#[derive(Clone, Debug, PartialEq)]
pub enum Item {
    /// An object (or `null`) written with `writeObject`.
    Value(Value),
    /// Primitive data written at top level.
    Block(Block),
    /// `TC_RESET`: the handle table was cleared.
    Reset,
    /// The writer failed part-way (`TC_EXCEPTION`): what it had written of the failed object,
    /// then the exception it wrote.
    Aborted {
        /// Raw bytes of the interrupted object, kept verbatim.
        partial: Vec<u8>,
        /// The `Throwable` the writer sent (a reference into the heap).
        exception: Value,
    },
}

/// A field descriptor of a class descriptor.
#[derive(Clone, Debug, PartialEq)]
pub struct FieldDesc {
    /// The field's type.
    pub field_type: FieldType,
    /// The field's name.
    pub name: JavaStr,
    /// For object and array fields: the JVM type signature, a string entry in the heap
    /// (`Ljava/lang/String;`, `[I`). `None` for primitives.
    pub signature: Option<Id>,
}

/// A class descriptor (`TC_CLASSDESC`).
#[derive(Clone, Debug, PartialEq)]
pub struct ClassDesc {
    /// Binary class name (`java.util.HashMap`, `[Ljava.lang.String;`).
    pub name: JavaStr,
    /// serialVersionUID.
    pub suid: i64,
    /// `classDescFlags`; see [`flags`].
    pub flags: u8,
    /// Serializable fields in stream order (primitives by name, then objects by name).
    pub fields: Vec<FieldDesc>,
    /// What `annotateClass` wrote.
    pub annotation: Vec<Content>,
    /// The superclass descriptor, `None` for `TC_NULL`.
    pub super_desc: Option<Id>,
}

impl ClassDesc {
    /// True if `flag` is set.
    pub fn has(&self, flag: u8) -> bool {
        self.flags & flag != 0
    }
}

/// A dynamic proxy class descriptor (`TC_PROXYCLASSDESC`).
#[derive(Clone, Debug, PartialEq)]
pub struct ProxyDesc {
    /// Interface names, in declaration order.
    pub interfaces: Vec<JavaStr>,
    /// What `annotateProxyClass` wrote.
    pub annotation: Vec<Content>,
    /// The superclass descriptor (normally `java.lang.reflect.Proxy`).
    pub super_desc: Option<Id>,
}

/// The data one class of an object's hierarchy contributed.
#[derive(Clone, Debug, PartialEq)]
pub struct ClassData {
    /// Default field values in descriptor order; `None` when the class's `writeObject` wrote
    /// none (classes in [`super::DecodeOptions::no_default_fields`]) and for externalizable
    /// data.
    pub fields: Option<Vec<Value>>,
    /// What `writeObject` or `writeExternal` wrote after the fields, up to `TC_ENDBLOCKDATA`;
    /// `None` for classes without `writeObject`.
    pub annotation: Option<Vec<Content>>,
}

/// An object (`TC_OBJECT`).
#[derive(Clone, Debug, PartialEq)]
pub struct Object {
    /// Its class descriptor (class or proxy).
    pub desc: Id,
    /// One entry per class in the hierarchy, topmost superclass first. An externalizable
    /// object has exactly one, holding its external data as annotation.
    pub class_data: Vec<ClassData>,
}

/// Array elements, typed by the array class.
#[derive(Clone, Debug, PartialEq)]
pub enum ArrayData {
    /// `boolean[]`
    Boolean(Vec<bool>),
    /// `byte[]`
    Byte(Vec<u8>),
    /// `char[]`
    Char(Vec<u16>),
    /// `short[]`
    Short(Vec<i16>),
    /// `int[]`
    Int(Vec<i32>),
    /// `long[]`
    Long(Vec<i64>),
    /// `float[]`
    Float(Vec<f32>),
    /// `double[]`
    Double(Vec<f64>),
    /// Arrays of objects and of arrays.
    Object(Vec<Value>),
}

impl ArrayData {
    /// Number of elements.
    pub fn len(&self) -> usize {
        match self {
            ArrayData::Boolean(v) => v.len(),
            ArrayData::Byte(v) => v.len(),
            ArrayData::Char(v) => v.len(),
            ArrayData::Short(v) => v.len(),
            ArrayData::Int(v) => v.len(),
            ArrayData::Long(v) => v.len(),
            ArrayData::Float(v) => v.len(),
            ArrayData::Double(v) => v.len(),
            ArrayData::Object(v) => v.len(),
        }
    }

    /// True when there are no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// An array (`TC_ARRAY`).
#[derive(Clone, Debug, PartialEq)]
pub struct Array {
    /// Its class descriptor (`[I`, `[Ljava.lang.Object;` …).
    pub desc: Id,
    /// The elements.
    pub data: ArrayData,
}

/// An enum constant (`TC_ENUM`).
#[derive(Clone, Debug, PartialEq)]
pub struct EnumConst {
    /// Descriptor of the declaring enum class.
    pub desc: Id,
    /// The constant's name, a string entry.
    pub name: Id,
}

/// Anything a stream gives a handle to.
#[derive(Clone, Debug, PartialEq)]
pub enum Entry {
    /// Allocated while decoding and not filled in: only seen if decoding stopped part-way.
    Pending,
    /// `TC_STRING` / `TC_LONGSTRING`
    String(JavaStr),
    /// `TC_OBJECT`
    Object(Object),
    /// `TC_ARRAY`
    Array(Array),
    /// `TC_ENUM`
    Enum(EnumConst),
    /// `TC_CLASS`: a `Class` object, by its descriptor.
    Class(Id),
    /// `TC_CLASSDESC`
    ClassDesc(ClassDesc),
    /// `TC_PROXYCLASSDESC`
    ProxyDesc(ProxyDesc),
}

impl Value {
    fn map_ref(self, f: &dyn Fn(Id) -> Id) -> Value {
        match self {
            Value::Ref(id) => Value::Ref(f(id)),
            v => v,
        }
    }
}

fn map_contents(c: Vec<Content>, f: &dyn Fn(Id) -> Id) -> Vec<Content> {
    c.into_iter()
        .map(|c| match c {
            Content::Value(v) => Content::Value(v.map_ref(f)),
            b => b,
        })
        .collect()
}

fn contents_refs(c: &[Content], g: &mut dyn FnMut(Id)) {
    for c in c {
        if let Content::Value(Value::Ref(id)) = c {
            g(*id);
        }
    }
}

impl Entry {
    /// Calls `g` for every entry this one refers to.
    pub fn for_each_ref(&self, g: &mut dyn FnMut(Id)) {
        match self {
            Entry::Pending | Entry::String(_) => {}
            Entry::Object(o) => {
                g(o.desc);
                for cd in &o.class_data {
                    for v in cd.fields.iter().flatten() {
                        if let Value::Ref(id) = v {
                            g(*id);
                        }
                    }
                    contents_refs(cd.annotation.as_deref().unwrap_or(&[]), g);
                }
            }
            Entry::Array(a) => {
                g(a.desc);
                if let ArrayData::Object(v) = &a.data {
                    for x in v {
                        if let Value::Ref(id) = x {
                            g(*id);
                        }
                    }
                }
            }
            Entry::Enum(e) => {
                g(e.desc);
                g(e.name);
            }
            Entry::Class(d) => g(*d),
            Entry::ClassDesc(d) => {
                d.fields
                    .iter()
                    .filter_map(|f| f.signature)
                    .for_each(&mut *g);
                contents_refs(&d.annotation, g);
                if let Some(s) = d.super_desc {
                    g(s);
                }
            }
            Entry::ProxyDesc(p) => {
                contents_refs(&p.annotation, g);
                if let Some(s) = p.super_desc {
                    g(s);
                }
            }
        }
    }

    /// The same entry with every reference passed through `f`.
    pub fn map_refs(self, f: &dyn Fn(Id) -> Id) -> Entry {
        match self {
            Entry::Object(o) => Entry::Object(Object {
                desc: f(o.desc),
                class_data: o
                    .class_data
                    .into_iter()
                    .map(|cd| ClassData {
                        fields: cd
                            .fields
                            .map(|v| v.into_iter().map(|x| x.map_ref(f)).collect()),
                        annotation: cd.annotation.map(|a| map_contents(a, f)),
                    })
                    .collect(),
            }),
            Entry::Array(a) => Entry::Array(Array {
                desc: f(a.desc),
                data: match a.data {
                    ArrayData::Object(v) => {
                        ArrayData::Object(v.into_iter().map(|x| x.map_ref(f)).collect())
                    }
                    d => d,
                },
            }),
            Entry::Enum(e) => Entry::Enum(EnumConst {
                desc: f(e.desc),
                name: f(e.name),
            }),
            Entry::Class(d) => Entry::Class(f(d)),
            Entry::ClassDesc(d) => Entry::ClassDesc(ClassDesc {
                fields: d
                    .fields
                    .into_iter()
                    .map(|fd| FieldDesc {
                        signature: fd.signature.map(f),
                        ..fd
                    })
                    .collect(),
                annotation: map_contents(d.annotation, f),
                super_desc: d.super_desc.map(f),
                ..d
            }),
            Entry::ProxyDesc(p) => Entry::ProxyDesc(ProxyDesc {
                annotation: map_contents(p.annotation, f),
                super_desc: p.super_desc.map(f),
                ..p
            }),
            e => e,
        }
    }
}

/// Owner of all entries of one or more streams.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Heap {
    entries: Vec<Entry>,
}

impl Heap {
    /// An empty heap.
    pub fn new() -> Self {
        Heap::default()
    }

    /// Adds an entry and returns its id.
    pub fn add(&mut self, entry: Entry) -> Id {
        let id = Id(u32::try_from(self.entries.len()).expect("heap holds fewer than 2^32 entries"));
        self.entries.push(entry);
        id
    }

    /// Adds a string entry.
    pub fn string(&mut self, s: &str) -> Value {
        Value::Ref(self.add(Entry::String(JavaStr::new(s))))
    }

    /// The entry `id`, if it exists.
    pub fn get(&self, id: Id) -> Option<&Entry> {
        self.entries.get(id.index())
    }

    /// Mutable access to the entry `id`.
    pub fn get_mut(&mut self, id: Id) -> Option<&mut Entry> {
        self.entries.get_mut(id.index())
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when the heap holds nothing.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// All entries with their ids.
    pub fn iter(&self) -> impl Iterator<Item = (Id, &Entry)> {
        self.entries
            .iter()
            .enumerate()
            .map(|(i, e)| (Id(i as u32), e))
    }

    pub(crate) fn set(&mut self, id: Id, entry: Entry) {
        self.entries[id.index()] = entry;
    }

    /// The string entry `id`.
    pub fn str(&self, id: Id) -> Option<&JavaStr> {
        match self.get(id)? {
            Entry::String(s) => Some(s),
            _ => None,
        }
    }

    /// The class descriptor `id`.
    pub fn class_desc(&self, id: Id) -> Option<&ClassDesc> {
        match self.get(id)? {
            Entry::ClassDesc(d) => Some(d),
            _ => None,
        }
    }

    /// The object `id`.
    pub fn object(&self, id: Id) -> Option<&Object> {
        match self.get(id)? {
            Entry::Object(o) => Some(o),
            _ => None,
        }
    }

    /// The array `id`.
    pub fn array(&self, id: Id) -> Option<&Array> {
        match self.get(id)? {
            Entry::Array(a) => Some(a),
            _ => None,
        }
    }

    /// The superclass of descriptor `id` (class or proxy descriptor).
    pub fn super_of(&self, desc: Id) -> Option<Id> {
        match self.get(desc)? {
            Entry::ClassDesc(d) => d.super_desc,
            Entry::ProxyDesc(p) => p.super_desc,
            _ => None,
        }
    }

    /// The descriptor chain of `desc`, topmost superclass first (the order of class data).
    /// Stops at `limit` entries so a corrupt cyclic chain cannot loop.
    pub fn hierarchy(&self, desc: Id, limit: usize) -> Vec<Id> {
        let mut chain = vec![desc];
        let mut cur = desc;
        while let Some(s) = self.super_of(cur) {
            if chain.len() >= limit || chain.contains(&s) {
                break;
            }
            chain.push(s);
            cur = s;
        }
        chain.reverse();
        chain
    }

    /// The name of the class of an object, array or descriptor, for messages and dispatch.
    pub fn class_name(&self, id: Id) -> Option<&JavaStr> {
        let desc = match self.get(id)? {
            Entry::Object(o) => o.desc,
            Entry::Array(a) => a.desc,
            Entry::Enum(e) => e.desc,
            Entry::ClassDesc(d) => return Some(&d.name),
            _ => return None,
        };
        self.class_desc(desc).map(|d| &d.name)
    }

    /// Copies the graph reachable from `v` in `src` into this heap (descriptors included),
    /// preserving sharing and cycles, and returns the copied value. Used to echo a received
    /// object in an answer (`ResponseTimeMonitor$Step3` carries the `Data` it was sent).
    pub fn import(&mut self, src: &Heap, v: Value) -> Value {
        let Value::Ref(root) = v else { return v };
        let mut map: std::collections::HashMap<Id, Id> = std::collections::HashMap::new();
        let mut order = Vec::new();
        let mut stack = vec![root];
        while let Some(id) = stack.pop() {
            if map.contains_key(&id) || src.get(id).is_none() {
                continue;
            }
            map.insert(id, self.add(Entry::Pending));
            order.push(id);
            if let Some(e) = src.get(id) {
                e.for_each_ref(&mut |r| stack.push(r));
            }
        }
        for id in order {
            let entry = src.get(id).cloned().unwrap_or(Entry::Pending);
            let copied = entry.map_refs(&|r| map.get(&r).copied().unwrap_or(r));
            self.set(map[&id], copied);
        }
        Value::Ref(map[&root])
    }

    /// The value of field `name` of object `obj`, searching from the object's own class up.
    pub fn field(&self, obj: Id, name: &str) -> Option<&Value> {
        let o = self.object(obj)?;
        let chain = self.hierarchy(o.desc, o.class_data.len().max(1));
        for (desc, data) in chain.iter().zip(&o.class_data).rev() {
            let (Some(d), Some(values)) = (self.class_desc(*desc), data.fields.as_ref()) else {
                continue;
            };
            if let Some(i) = d.fields.iter().position(|f| f.name.eq_str(name)) {
                return values.get(i);
            }
        }
        None
    }
}

/// A decoded stream: the heap and the top-level items in order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Stream {
    /// Everything the items refer to.
    pub heap: Heap,
    /// Top-level items in stream order.
    pub items: Vec<Item>,
}
