//! Typed views of received objects: each callable reads its fields once, through [`Obj`], and
//! a field that is missing or of the wrong type is an error that names the class and the
//! field, never a panic or a silent default.

use std::fmt;

use crate::javaser::{ArrayData, Content, Entry, Heap, Id, Value};

/// Most levels [`Obj::find`] descends through an object graph.
const FIND_DEPTH: usize = 12;

/// Why a received object could not be read as the callable it claims to be.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ViewError(pub String);

impl fmt::Display for ViewError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<ViewError> for String {
    fn from(e: ViewError) -> String {
        e.0
    }
}

/// An object in a received heap, with its class name.
#[derive(Clone, Copy)]
pub struct Obj<'h> {
    /// The heap it lives in.
    pub heap: &'h Heap,
    /// Its entry.
    pub id: Id,
}

impl<'h> Obj<'h> {
    /// The object `v` refers to, if it is one (not null, not a string or array).
    pub fn of(heap: &'h Heap, v: Value) -> Option<Obj<'h>> {
        let id = v.as_ref()?;
        matches!(heap.get(id), Some(Entry::Object(_))).then_some(Obj { heap, id })
    }

    /// Its class name (`?` if unreadable).
    pub fn class(&self) -> String {
        self.heap
            .class_name(self.id)
            .map(|n| n.to_string())
            .unwrap_or_else(|| "?".into())
    }

    fn err(&self, field: &str, what: &str) -> ViewError {
        ViewError(format!("{}: field {field} {what}", short(&self.class())))
    }

    /// The raw value of field `name`, searching from the object's class up.
    pub fn raw(&self, name: &str) -> Option<Value> {
        self.heap.field(self.id, name).copied()
    }

    fn present(&self, name: &str) -> Result<Value, ViewError> {
        self.raw(name)
            .ok_or_else(|| self.err(name, "is missing from the stream"))
    }

    /// A `String` field that may be null.
    pub fn opt_str(&self, name: &str) -> Result<Option<String>, ViewError> {
        match self.present(name)? {
            Value::Null => Ok(None),
            v => string_of(self.heap, v)
                .map(Some)
                .ok_or_else(|| self.err(name, "is not a String")),
        }
    }

    /// A `String` field that must not be null.
    pub fn str(&self, name: &str) -> Result<String, ViewError> {
        self.opt_str(name)?.ok_or_else(|| self.err(name, "is null"))
    }

    /// An `int` field.
    pub fn int(&self, name: &str) -> Result<i32, ViewError> {
        match self.present(name)? {
            Value::Int(i) => Ok(i),
            _ => Err(self.err(name, "is not an int")),
        }
    }

    /// A `long` field.
    pub fn long(&self, name: &str) -> Result<i64, ViewError> {
        match self.present(name)? {
            Value::Long(i) => Ok(i),
            _ => Err(self.err(name, "is not a long")),
        }
    }

    /// A `boolean` field.
    pub fn bool(&self, name: &str) -> Result<bool, ViewError> {
        match self.present(name)? {
            Value::Boolean(b) => Ok(b),
            _ => Err(self.err(name, "is not a boolean")),
        }
    }

    /// An object field that may be null.
    pub fn opt_obj(&self, name: &str) -> Result<Option<Obj<'h>>, ViewError> {
        match self.present(name)? {
            Value::Null => Ok(None),
            v => Obj::of(self.heap, v)
                .map(Some)
                .ok_or_else(|| self.err(name, "is not an object")),
        }
    }

    /// An object field that must not be null.
    pub fn obj(&self, name: &str) -> Result<Obj<'h>, ViewError> {
        self.opt_obj(name)?.ok_or_else(|| self.err(name, "is null"))
    }

    /// The name of an enum constant in field `name` (null: `None`).
    pub fn opt_enum(&self, name: &str) -> Result<Option<String>, ViewError> {
        match self.present(name)? {
            Value::Null => Ok(None),
            Value::Ref(id) => match self.heap.get(id) {
                Some(Entry::Enum(e)) => self
                    .heap
                    .str(e.name)
                    .map(|s| Some(s.to_string()))
                    .ok_or_else(|| self.err(name, "has an unreadable constant name")),
                _ => Err(self.err(name, "is not an enum constant")),
            },
            _ => Err(self.err(name, "is not an enum constant")),
        }
    }

    /// A `String[]` or a `java.util.List` of strings (null: empty).
    pub fn strings(&self, name: &str) -> Result<Vec<String>, ViewError> {
        let v = self.present(name)?;
        strings_of(self.heap, v).ok_or_else(|| self.err(name, "is not a list of strings"))
    }

    /// A `boolean[]` field (null: `None`).
    pub fn opt_bools(&self, name: &str) -> Result<Option<Vec<bool>>, ViewError> {
        match self.present(name)? {
            Value::Null => Ok(None),
            Value::Ref(id) => match self.heap.array(id).map(|a| &a.data) {
                Some(ArrayData::Boolean(b)) => Ok(Some(b.clone())),
                _ => Err(self.err(name, "is not a boolean[]")),
            },
            _ => Err(self.err(name, "is not a boolean[]")),
        }
    }

    /// Everything class `level` (or, with `None`, every class of the hierarchy) wrote in its
    /// `writeObject`, in order.
    pub fn data(&self, level: Option<&str>) -> Vec<&'h Content> {
        let Some(Entry::Object(o)) = self.heap.get(self.id) else {
            return Vec::new();
        };
        let chain = self.heap.hierarchy(o.desc, o.class_data.len().max(1));
        chain
            .iter()
            .zip(&o.class_data)
            .filter(|(d, _)| {
                level.is_none_or(|l| self.heap.class_desc(**d).is_some_and(|d| d.name.eq_str(l)))
            })
            .flat_map(|(_, cd)| cd.annotation.iter().flatten())
            .collect()
    }

    /// The concatenated block data of the whole hierarchy's `writeObject`s.
    pub fn block_data(&self) -> Vec<u8> {
        self.data(None)
            .into_iter()
            .filter_map(|c| match c {
                Content::Block(b) => Some(b.data.as_slice()),
                Content::Value(_) => None,
            })
            .flatten()
            .copied()
            .collect()
    }

    /// The objects and values this one refers to: field values, then `writeObject` data.
    pub fn children(&self) -> Vec<Value> {
        let Some(Entry::Object(o)) = self.heap.get(self.id) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for cd in &o.class_data {
            out.extend(cd.fields.iter().flatten().copied());
            out.extend(cd.annotation.iter().flatten().filter_map(|c| match c {
                Content::Value(v) => Some(*v),
                Content::Block(_) => None,
            }));
        }
        out
    }

    /// Every object reachable from this one (itself included), each once, bounded in depth.
    pub fn all_objects(&self) -> Vec<Obj<'h>> {
        let mut seen = std::collections::HashSet::new();
        let mut out = Vec::new();
        let mut level = vec![Value::Ref(self.id)];
        for _ in 0..FIND_DEPTH * 2 {
            let mut next = Vec::new();
            for v in level {
                let Some(id) = v.as_ref() else { continue };
                if !seen.insert(id) {
                    continue;
                }
                match self.heap.get(id) {
                    Some(Entry::Object(_)) => {
                        let o = Obj {
                            heap: self.heap,
                            id,
                        };
                        next.extend(o.children());
                        out.push(o);
                    }
                    Some(Entry::Array(a)) => {
                        if let ArrayData::Object(items) = &a.data {
                            next.extend(items.iter().copied());
                        }
                    }
                    _ => {}
                }
            }
            if next.is_empty() {
                break;
            }
            level = next;
        }
        out
    }

    /// The first object of class `class` reachable from this one (itself included), breadth
    /// first, through fields, `writeObject` data and object arrays; bounded in depth.
    pub fn find(&self, class: &str) -> Option<Obj<'h>> {
        let mut seen = std::collections::HashSet::new();
        let mut level = vec![Value::Ref(self.id)];
        for _ in 0..FIND_DEPTH {
            let mut next = Vec::new();
            for v in level {
                let Some(id) = v.as_ref() else { continue };
                if !seen.insert(id) {
                    continue;
                }
                match self.heap.get(id) {
                    Some(Entry::Object(_)) => {
                        let o = Obj {
                            heap: self.heap,
                            id,
                        };
                        if self.heap.class_name(id).is_some_and(|n| n.eq_str(class)) {
                            return Some(o);
                        }
                        next.extend(o.children());
                    }
                    Some(Entry::Array(a)) => {
                        if let ArrayData::Object(items) = &a.data {
                            next.extend(items.iter().copied());
                        }
                    }
                    _ => {}
                }
            }
            if next.is_empty() {
                break;
            }
            level = next;
        }
        None
    }
}

/// The text of a string value.
pub fn string_of(heap: &Heap, v: Value) -> Option<String> {
    let id = v.as_ref()?;
    match heap.get(id)? {
        Entry::String(s) => Some(s.to_string_lossy().into_owned()),
        _ => None,
    }
}

/// A `String[]`, an `ArrayList`/`Arrays$ArrayList`/`Collections` list of strings, or null
/// (empty).
pub fn strings_of(heap: &Heap, v: Value) -> Option<Vec<String>> {
    let Some(id) = v.as_ref() else {
        return Some(Vec::new());
    };
    match heap.get(id)? {
        Entry::Array(a) => match &a.data {
            ArrayData::Object(items) => items.iter().map(|i| string_of(heap, *i)).collect(),
            _ => None,
        },
        Entry::Object(_) => {
            let o = Obj { heap, id };
            // ArrayList: size in block data, then the elements; Arrays$ArrayList: field a.
            if let Some(a) = o.raw("a") {
                return strings_of(heap, a);
            }
            let items: Vec<Value> = o
                .data(None)
                .into_iter()
                .filter_map(|c| match c {
                    Content::Value(v) => Some(*v),
                    Content::Block(_) => None,
                })
                .collect();
            items.iter().map(|i| string_of(heap, *i)).collect()
        }
        _ => None,
    }
}

/// The entries of a `java.util.Map` in its serialized form: `HashMap`/`TreeMap`/`EnvVars`
/// (pairs after the size in `writeObject` data) and `Collections$SingletonMap` (fields `k`,
/// `v`). Values that are not strings are skipped.
pub fn string_map(heap: &Heap, v: Value) -> Option<Vec<(String, String)>> {
    let o = Obj::of(heap, v)?;
    if let (Some(k), Some(val)) = (o.raw("k"), o.raw("v")) {
        return Some(match (string_of(heap, k), string_of(heap, val)) {
            (Some(k), Some(v)) => vec![(k, v)],
            _ => Vec::new(),
        });
    }
    let values: Vec<Value> = o
        .data(None)
        .into_iter()
        .filter_map(|c| match c {
            Content::Value(v) => Some(*v),
            Content::Block(_) => None,
        })
        .collect();
    // HashMap and TreeMap write their sizes as block data, then key, value, key, value …
    Some(
        values
            .chunks(2)
            .filter_map(|kv| match kv {
                [k, v] => Some((string_of(heap, *k)?, string_of(heap, *v)?)),
                _ => None,
            })
            .collect(),
    )
}

/// `hudson.FilePath$Mkdirs` → `FilePath$Mkdirs`: class names in messages, as Jenkins users
/// read them.
pub fn short(class: &str) -> &str {
    class.rsplit('.').next().unwrap_or(class)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::javaser::{Builder, ClassSpec, Registry};

    fn registry() -> Registry {
        let mut r = Registry::with_jdk();
        r.declare(
            ClassSpec::new("a.Callable", 1)
                .field("n", "I")
                .field("flag", "Z")
                .field("name", "Ljava/lang/String;")
                .field("list", "Ljava/util/List;"),
        );
        r
    }

    #[test]
    fn fields_read_with_their_types_and_errors_name_class_and_field() {
        let r = registry();
        let mut b = Builder::new(&r);
        let s = b.string("x");
        let one = b.string("one");
        let list = b.array_list(&[one]).unwrap();
        let o = b
            .object(
                "a.Callable",
                &[
                    ("n", Value::Int(7)),
                    ("flag", Value::Boolean(true)),
                    ("name", s),
                    ("list", list),
                ],
            )
            .unwrap();
        let heap = b.finish();
        let v = Obj::of(&heap, o).unwrap();
        assert_eq!(v.int("n"), Ok(7));
        assert_eq!(v.bool("flag"), Ok(true));
        assert_eq!(v.str("name").unwrap(), "x");
        assert_eq!(v.strings("list").unwrap(), vec!["one".to_string()]);
        assert_eq!(
            v.int("flag").unwrap_err().0,
            "Callable: field flag is not an int"
        );
        assert_eq!(
            v.str("missing").unwrap_err().0,
            "Callable: field missing is missing from the stream"
        );
        assert!(v.opt_obj("list").unwrap().is_some());
        assert!(v.find("java.util.ArrayList").is_some());
        assert!(v.find("no.Such").is_none());
    }

    #[test]
    fn null_strings_are_none_or_an_error_when_required() {
        let r = registry();
        let mut b = Builder::new(&r);
        let o = b.object("a.Callable", &[]).unwrap();
        let heap = b.finish();
        let v = Obj::of(&heap, o).unwrap();
        assert_eq!(v.opt_str("name"), Ok(None));
        assert_eq!(v.str("name").unwrap_err().0, "Callable: field name is null");
        assert_eq!(v.strings("list"), Ok(Vec::new()));
    }
}
