//! Class descriptors declared in code or learned from streams, and a builder that writes new
//! object graphs from them.
//!
//! The JDK refuses an object whose serialVersionUID, flags or field types differ from its own
//! class, so everything the agent sends must use exactly the controller's descriptors. They
//! are declared once here ([`ClassSpec`]) or learned from what the controller sent
//! ([`Registry::learn`]).

use std::collections::HashMap;
use std::fmt;

use super::model::*;
use super::mutf8::JavaStr;
use super::suid;

/// A field of a [`ClassSpec`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldSpec {
    /// The field's name.
    pub name: String,
    /// JVM type signature: `I`, `Z`, `Ljava/lang/String;`, `[B` …
    pub signature: String,
}

impl FieldSpec {
    fn field_type(&self) -> FieldType {
        FieldType::from_code(self.signature.as_bytes()[0]).unwrap_or(FieldType::Object)
    }
}

/// What the stream says about one class: name, serialVersionUID, flags, fields, superclass.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClassSpec {
    /// Binary name, e.g. `hudson.remoting.UserRequest` or `[Ljava.lang.String;`.
    pub name: String,
    /// serialVersionUID.
    pub suid: i64,
    /// `classDescFlags`.
    pub flags: u8,
    /// Fields in stream order (kept sorted as `ObjectStreamClass` sorts them).
    pub fields: Vec<FieldSpec>,
    /// Serializable superclass, if any.
    pub super_class: Option<String>,
}

impl ClassSpec {
    /// A plain `Serializable` class without fields.
    pub fn new(name: &str, suid: i64) -> Self {
        ClassSpec {
            name: name.into(),
            suid,
            flags: flags::SC_SERIALIZABLE,
            fields: Vec::new(),
            super_class: None,
        }
    }

    /// An array class; its serialVersionUID is computed as the JDK does.
    pub fn array(name: &str) -> Self {
        ClassSpec::new(name, suid::array_suid(name, true))
    }

    /// An enum class (serialVersionUID 0, superclass `java.lang.Enum`).
    pub fn enumeration(name: &str) -> Self {
        ClassSpec {
            flags: flags::SC_SERIALIZABLE | flags::SC_ENUM,
            super_class: Some("java.lang.Enum".into()),
            ..ClassSpec::new(name, 0)
        }
    }

    /// Marks the class as having a `writeObject` method.
    pub fn write_method(mut self) -> Self {
        self.flags |= flags::SC_WRITE_METHOD;
        self
    }

    /// Makes the class `Externalizable` (block-data mode, as every modern JDK writes it).
    pub fn externalizable(mut self) -> Self {
        self.flags = flags::SC_EXTERNALIZABLE | flags::SC_BLOCK_DATA;
        self
    }

    /// Sets the serializable superclass.
    pub fn extends(mut self, super_class: &str) -> Self {
        self.super_class = Some(super_class.into());
        self
    }

    /// Adds a field given its JVM signature, keeping `ObjectStreamClass` order: primitive
    /// fields by name, then object fields by name.
    pub fn field(mut self, name: &str, signature: &str) -> Self {
        self.fields.push(FieldSpec {
            name: name.into(),
            signature: signature.into(),
        });
        self.fields.sort_by(|a, b| {
            let pa = !a.field_type().is_primitive();
            let pb = !b.field_type().is_primitive();
            (pa, utf16_key(&a.name)).cmp(&(pb, utf16_key(&b.name)))
        });
        self
    }

    fn check(&self) -> Result<(), BuildError> {
        for f in &self.fields {
            let ok = match f.signature.as_bytes().first() {
                Some(b'L') => f.signature.len() > 2 && f.signature.ends_with(';'),
                Some(b'[') => f.signature.len() > 1,
                Some(c) => f.signature.len() == 1 && FieldType::from_code(*c).is_some(),
                None => false,
            };
            if !ok {
                return Err(BuildError(format!(
                    "class {}: field {} has invalid type signature {:?} (use e.g. I, Z, Ljava/lang/String;, [B)",
                    self.name, f.name, f.signature
                )));
            }
        }
        Ok(())
    }
}

fn utf16_key(s: &str) -> Vec<u16> {
    s.encode_utf16().collect()
}

/// A misuse of the builder: unknown class or field, wrong value type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BuildError(pub String);

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BuildError {}

/// Known classes by name.
#[derive(Clone, Debug, Default)]
pub struct Registry {
    classes: HashMap<String, ClassSpec>,
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Registry::default()
    }

    /// A registry with the JDK classes remoting traffic uses (boxed primitives, collections,
    /// exceptions, common arrays).
    pub fn with_jdk() -> Self {
        let mut r = Registry::new();
        for spec in jdk_classes() {
            r.declare(spec);
        }
        r
    }

    /// Declares (or replaces) a class.
    pub fn declare(&mut self, spec: ClassSpec) {
        self.classes.insert(spec.name.clone(), spec);
    }

    /// The class `name`, if known. Array classes are known implicitly.
    pub fn get(&self, name: &str) -> Option<ClassSpec> {
        if let Some(c) = self.classes.get(name) {
            return Some(c.clone());
        }
        name.starts_with('[').then(|| ClassSpec::array(name))
    }

    /// Number of declared classes.
    pub fn len(&self) -> usize {
        self.classes.len()
    }

    /// True when nothing is declared.
    pub fn is_empty(&self) -> bool {
        self.classes.is_empty()
    }

    /// Learns every class descriptor of `heap` that is not known yet. Returns how many were
    /// added. Declared classes are never replaced by learned ones.
    pub fn learn(&mut self, heap: &Heap) -> usize {
        let mut added = 0;
        for (_, entry) in heap.iter() {
            let Entry::ClassDesc(d) = entry else { continue };
            let Some(name) = d.name.to_str() else {
                continue;
            };
            if self.classes.contains_key(&*name) {
                continue;
            }
            let fields = d
                .fields
                .iter()
                .map(|f| FieldSpec {
                    name: f.name.to_string(),
                    signature: match f.signature.and_then(|s| heap.str(s)) {
                        Some(s) => s.to_string(),
                        None => (f.field_type.code() as char).to_string(),
                    },
                })
                .collect();
            let super_class = d
                .super_desc
                .and_then(|s| heap.class_desc(s))
                .map(|s| s.name.to_string());
            self.classes.insert(
                name.to_string(),
                ClassSpec {
                    name: name.to_string(),
                    suid: d.suid,
                    flags: d.flags,
                    fields,
                    super_class,
                },
            );
            added += 1;
        }
        added
    }
}

/// Builds object graphs in a [`Heap`] from a [`Registry`]'s classes, ready for
/// [`super::Encoder`].
pub struct Builder<'r> {
    registry: &'r Registry,
    heap: Heap,
    descs: HashMap<String, Id>,
    signatures: HashMap<String, Id>,
}

impl<'r> Builder<'r> {
    /// A builder writing into a new heap.
    pub fn new(registry: &'r Registry) -> Self {
        Builder {
            registry,
            heap: Heap::new(),
            descs: HashMap::new(),
            signatures: HashMap::new(),
        }
    }

    /// The heap built so far.
    pub fn heap(&self) -> &Heap {
        &self.heap
    }

    /// Ends building and returns the heap.
    pub fn finish(self) -> Heap {
        self.heap
    }

    /// Ends building and returns a stream of `items`.
    pub fn into_stream(self, items: Vec<Item>) -> Stream {
        Stream {
            heap: self.heap,
            items,
        }
    }

    /// Copies a value (and everything it refers to) from another heap: echoes of received
    /// objects.
    pub fn import(&mut self, src: &Heap, v: Value) -> Value {
        self.heap.import(src, v)
    }

    /// A new string.
    pub fn string(&mut self, s: &str) -> Value {
        self.heap.string(s)
    }

    /// The descriptor of class `name` (created once per builder, with its superclasses).
    pub fn desc(&mut self, name: &str) -> Result<Id, BuildError> {
        self.desc_depth(name, 0)
    }

    fn desc_depth(&mut self, name: &str, depth: usize) -> Result<Id, BuildError> {
        if let Some(id) = self.descs.get(name) {
            return Ok(*id);
        }
        if depth > 64 {
            return Err(BuildError(format!(
                "class {name}: superclass chain longer than 64 (cycle in declarations?)"
            )));
        }
        let spec = self
            .registry
            .get(name)
            .ok_or_else(|| BuildError(format!("class {name} is not declared in the registry")))?;
        spec.check()?;
        let super_desc = match &spec.super_class {
            Some(s) => Some(self.desc_depth(s, depth + 1)?),
            None => None,
        };
        let mut fields = Vec::with_capacity(spec.fields.len());
        for f in &spec.fields {
            let field_type = f.field_type();
            let signature = if field_type.is_primitive() {
                None
            } else {
                // The JDK interns signatures, so equal ones share one handle.
                Some(match self.signatures.get(&f.signature) {
                    Some(id) => *id,
                    None => {
                        let id = self.heap.add(Entry::String(JavaStr::new(&f.signature)));
                        self.signatures.insert(f.signature.clone(), id);
                        id
                    }
                })
            };
            fields.push(FieldDesc {
                field_type,
                name: JavaStr::new(&f.name),
                signature,
            });
        }
        let id = self.heap.add(Entry::ClassDesc(ClassDesc {
            name: JavaStr::new(&spec.name),
            suid: spec.suid,
            flags: spec.flags,
            fields,
            annotation: Vec::new(),
            super_desc,
        }));
        self.descs.insert(name.to_string(), id);
        Ok(id)
    }

    /// A new object of class `class`. Fields are given by name; a name is looked up from the
    /// class itself up to its superclasses, and fields not given get Java's defaults (0, false,
    /// null). Classes with `writeObject` get empty custom data; see [`Builder::set_data`].
    pub fn object(&mut self, class: &str, fields: &[(&str, Value)]) -> Result<Value, BuildError> {
        let desc = self.desc(class)?;
        let chain = self.heap.hierarchy(desc, 64);
        let mut class_data = Vec::with_capacity(chain.len());
        for level in &chain {
            let d = self.heap.class_desc(*level).ok_or_else(|| {
                BuildError(format!("class {class}: hierarchy holds a non-class entry"))
            })?;
            class_data.push(ClassData {
                fields: Some(
                    d.fields
                        .iter()
                        .map(|f| default_value(f.field_type))
                        .collect(),
                ),
                annotation: d.has(flags::SC_WRITE_METHOD).then(Vec::new),
            });
        }
        'given: for (name, value) in fields {
            for (level, data) in chain.iter().zip(class_data.iter_mut()).rev() {
                let Some(d) = self.heap.class_desc(*level) else {
                    continue;
                };
                if let Some(i) = d.fields.iter().position(|f| f.name.eq_str(name)) {
                    if !value.fits(d.fields[i].field_type) {
                        return Err(BuildError(format!(
                            "class {class}: field {name} of type {} cannot hold {value:?}",
                            d.fields[i].field_type.code() as char
                        )));
                    }
                    if let Some(v) = data.fields.as_mut() {
                        v[i] = *value;
                    }
                    continue 'given;
                }
            }
            return Err(BuildError(format!(
                "class {class} and its superclasses have no serializable field {name}"
            )));
        }
        if let Some(d) = self.heap.class_desc(desc) {
            if d.has(flags::SC_EXTERNALIZABLE) {
                class_data = vec![ClassData {
                    fields: None,
                    annotation: Some(Vec::new()),
                }];
            }
        }
        Ok(Value::Ref(
            self.heap.add(Entry::Object(Object { desc, class_data })),
        ))
    }

    /// A new object of class `class` (which has a `writeObject`) that writes no default fields,
    /// only `data`: remoting's `RemoteInputStream` and `Pipe` do this. Superclasses keep their
    /// default (empty) data.
    pub fn custom_object(&mut self, class: &str, data: Vec<Content>) -> Result<Value, BuildError> {
        let v = self.object(class, &[])?;
        let Some(Entry::Object(o)) = v.as_ref().and_then(|id| self.heap.get_mut(id)) else {
            return Err(BuildError(format!("class {class}: not an object")));
        };
        match o.class_data.last_mut() {
            Some(cd) if cd.annotation.is_some() => {
                cd.fields = None;
                cd.annotation = Some(data);
                Ok(v)
            }
            _ => Err(BuildError(format!(
                "class {class} has no writeObject: its default fields are always written"
            ))),
        }
    }

    /// Sets field `name` of object `obj` after creation (to close cycles), searching from the
    /// object's own class up.
    pub fn set_field(&mut self, obj: Value, name: &str, value: Value) -> Result<(), BuildError> {
        let id = obj
            .as_ref()
            .ok_or_else(|| BuildError("set_field needs an object reference".into()))?;
        let desc = self
            .heap
            .object(id)
            .map(|o| o.desc)
            .ok_or_else(|| BuildError(format!("{id:?} is not an object")))?;
        let chain = self.heap.hierarchy(desc, 64);
        let found = chain.iter().enumerate().rev().find_map(|(level, d)| {
            let d = self.heap.class_desc(*d)?;
            let i = d.fields.iter().position(|f| f.name.eq_str(name))?;
            Some((level, i, d.fields[i].field_type))
        });
        let Some((level, i, t)) = found else {
            return Err(BuildError(format!(
                "object {id:?} has no serializable field {name}"
            )));
        };
        if !value.fits(t) {
            return Err(BuildError(format!(
                "field {name} of type {} cannot hold {value:?}",
                t.code() as char
            )));
        }
        match self.heap.get_mut(id) {
            Some(Entry::Object(o)) => {
                match o.class_data.get_mut(level).and_then(|c| c.fields.as_mut()) {
                    Some(values) => {
                        values[i] = value;
                        Ok(())
                    }
                    None => Err(BuildError(format!(
                        "object {id:?} has no default fields at that level"
                    ))),
                }
            }
            _ => Err(BuildError(format!("{id:?} is not an object"))),
        }
    }

    /// Sets what class `level` of object `obj` wrote in `writeObject` (or `writeExternal`)
    /// after its fields.
    pub fn set_data(
        &mut self,
        obj: Value,
        level: &str,
        data: Vec<Content>,
    ) -> Result<(), BuildError> {
        let id = obj
            .as_ref()
            .ok_or_else(|| BuildError("set_data needs an object reference".into()))?;
        let desc = self
            .heap
            .object(id)
            .map(|o| o.desc)
            .ok_or_else(|| BuildError(format!("{id:?} is not an object")))?;
        let chain = self.heap.hierarchy(desc, 64);
        let pos = chain
            .iter()
            .position(|d| {
                self.heap
                    .class_desc(*d)
                    .is_some_and(|d| d.name.eq_str(level))
            })
            .ok_or_else(|| {
                BuildError(format!(
                    "object {id:?} has no class {level} in its hierarchy"
                ))
            })?;
        let externalizable = self
            .heap
            .class_desc(desc)
            .is_some_and(|d| d.has(flags::SC_EXTERNALIZABLE));
        let Some(Entry::Object(o)) = self.heap.get_mut(id) else {
            return Err(BuildError(format!("{id:?} is not an object")));
        };
        let slot = if externalizable { 0 } else { pos };
        match o.class_data.get_mut(slot) {
            Some(cd) if cd.annotation.is_some() => {
                cd.annotation = Some(data);
                Ok(())
            }
            _ => Err(BuildError(format!(
                "class {level} has no writeObject/writeExternal data to set"
            ))),
        }
    }

    /// A new array of class `class` (`[I`, `[Ljava.lang.String;` …).
    pub fn array(&mut self, class: &str, data: ArrayData) -> Result<Value, BuildError> {
        let desc = self.desc(class)?;
        Ok(Value::Ref(
            self.heap.add(Entry::Array(Array { desc, data })),
        ))
    }

    /// An enum constant.
    pub fn enum_const(&mut self, class: &str, name: &str) -> Result<Value, BuildError> {
        let desc = self.desc(class)?;
        let Value::Ref(name) = self.string(name) else {
            unreachable!("string() returns a reference")
        };
        Ok(Value::Ref(
            self.heap.add(Entry::Enum(EnumConst { desc, name })),
        ))
    }

    /// A dynamic proxy implementing `interfaces` with invocation handler `handler`
    /// (`java.lang.reflect.Proxy` must be declared): a proxy class descriptor with an empty
    /// annotation, then the `Proxy` level holding `h`.
    pub fn proxy(&mut self, interfaces: &[&str], handler: Value) -> Result<Value, BuildError> {
        let proxy_class = self.desc("java.lang.reflect.Proxy")?;
        let fields = self
            .heap
            .class_desc(proxy_class)
            .map(|d| d.fields.len())
            .unwrap_or(0);
        if fields != 1 {
            return Err(BuildError(
                "java.lang.reflect.Proxy must be declared with its one field h".into(),
            ));
        }
        let desc = self.heap.add(Entry::ProxyDesc(ProxyDesc {
            interfaces: interfaces.iter().map(|i| JavaStr::new(i)).collect(),
            annotation: Vec::new(),
            super_desc: Some(proxy_class),
        }));
        let class_data = vec![
            ClassData {
                fields: Some(vec![handler]),
                annotation: None,
            },
            ClassData {
                fields: Some(Vec::new()),
                annotation: None,
            },
        ];
        Ok(Value::Ref(
            self.heap.add(Entry::Object(Object { desc, class_data })),
        ))
    }

    /// A `java.lang.Integer`.
    pub fn integer(&mut self, v: i32) -> Result<Value, BuildError> {
        self.object("java.lang.Integer", &[("value", Value::Int(v))])
    }

    /// A `java.lang.Long`.
    pub fn long(&mut self, v: i64) -> Result<Value, BuildError> {
        self.object("java.lang.Long", &[("value", Value::Long(v))])
    }

    /// A `java.lang.Boolean`.
    pub fn boolean(&mut self, v: bool) -> Result<Value, BuildError> {
        self.object("java.lang.Boolean", &[("value", Value::Boolean(v))])
    }

    /// A `java.util.ArrayList` of `elements`, laid out as `ArrayList.writeObject` does.
    pub fn array_list(&mut self, elements: &[Value]) -> Result<Value, BuildError> {
        let n = elements.len() as i32;
        let list = self.object("java.util.ArrayList", &[("size", Value::Int(n))])?;
        let mut data = vec![Content::Block(Block::new(n.to_be_bytes().to_vec()))];
        data.extend(elements.iter().map(|e| Content::Value(*e)));
        self.set_data(list, "java.util.ArrayList", data)?;
        Ok(list)
    }

    /// A `java.util.HashMap` with `entries` in the given order, laid out as
    /// `HashMap.writeObject` does (capacity: the JDK's table size for this many entries).
    pub fn hash_map(&mut self, entries: &[(Value, Value)]) -> Result<Value, BuildError> {
        let n = entries.len();
        let mut capacity = 16usize;
        while (n as f64) > capacity as f64 * 0.75 {
            capacity *= 2;
        }
        let threshold = (capacity as f64 * 0.75) as i32;
        let map = self.object(
            "java.util.HashMap",
            &[
                ("loadFactor", Value::Float(0.75)),
                ("threshold", Value::Int(threshold)),
            ],
        )?;
        let mut block = (capacity as i32).to_be_bytes().to_vec();
        block.extend_from_slice(&(n as i32).to_be_bytes());
        let mut data = vec![Content::Block(Block::new(block))];
        for (k, v) in entries {
            data.push(Content::Value(*k));
            data.push(Content::Value(*v));
        }
        self.set_data(map, "java.util.HashMap", data)?;
        Ok(map)
    }
}

fn default_value(t: FieldType) -> Value {
    match t {
        FieldType::Byte => Value::Byte(0),
        FieldType::Char => Value::Char(0),
        FieldType::Double => Value::Double(0.0),
        FieldType::Float => Value::Float(0.0),
        FieldType::Int => Value::Int(0),
        FieldType::Long => Value::Long(0),
        FieldType::Short => Value::Short(0),
        FieldType::Boolean => Value::Boolean(false),
        FieldType::Object | FieldType::Array => Value::Null,
    }
}

/// Descriptors of the JDK classes that remoting traffic carries, as JDK 17 writes them.
fn jdk_classes() -> Vec<ClassSpec> {
    let number = "java.lang.Number";
    vec![
        ClassSpec::new(number, -8742448824652078965),
        ClassSpec::new("java.lang.Integer", 1360826667806852920)
            .extends(number)
            .field("value", "I"),
        ClassSpec::new("java.lang.Long", 4290774380558885855)
            .extends(number)
            .field("value", "J"),
        ClassSpec::new("java.lang.Short", 7515723908773894738)
            .extends(number)
            .field("value", "S"),
        ClassSpec::new("java.lang.Byte", -7183698231559129828)
            .extends(number)
            .field("value", "B"),
        ClassSpec::new("java.lang.Float", -2671257302660747028)
            .extends(number)
            .field("value", "F"),
        ClassSpec::new("java.lang.Double", -9172774392245257468)
            .extends(number)
            .field("value", "D"),
        ClassSpec::new("java.lang.Boolean", -3665804199014368530).field("value", "Z"),
        ClassSpec::new("java.lang.Character", 3786198910865385080).field("value", "C"),
        ClassSpec {
            flags: flags::SC_SERIALIZABLE | flags::SC_ENUM,
            ..ClassSpec::new("java.lang.Enum", 0)
        },
        ClassSpec::new("java.util.ArrayList", 8683452581122892189)
            .write_method()
            .field("size", "I"),
        ClassSpec::new("java.util.HashMap", 362498820763181265)
            .write_method()
            .field("loadFactor", "F")
            .field("threshold", "I"),
        ClassSpec::new("java.util.Collections$EmptyList", 8842843931221139166),
        ClassSpec::new("java.lang.Throwable", -3042686055658047285)
            .write_method()
            .field("cause", "Ljava/lang/Throwable;")
            .field("detailMessage", "Ljava/lang/String;")
            .field("stackTrace", "[Ljava/lang/StackTraceElement;")
            .field("suppressedExceptions", "Ljava/util/List;"),
        ClassSpec::new("java.lang.Exception", -3387516993124229948).extends("java.lang.Throwable"),
        ClassSpec::new("java.lang.RuntimeException", -7034897190745766939)
            .extends("java.lang.Exception"),
        ClassSpec::new("java.io.IOException", 7818375828146090155).extends("java.lang.Exception"),
    ]
}
