//! Just enough of the JVM class file format (JVMS §4) to get a class's [`ClassShape`]:
//! name, modifiers, interfaces, fields and methods. Sans-IO; every index and length is
//! checked.

use std::fmt;

use super::mutf8::JavaStr;
use super::suid::{ClassShape, Member};

/// A class file that could not be read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClassFileError {
    /// Offset in the file.
    pub offset: usize,
    /// What was wrong.
    pub message: String,
}

impl fmt::Display for ClassFileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "class file byte {}: {}", self.offset, self.message)
    }
}

impl std::error::Error for ClassFileError {}

struct Cur<'a> {
    b: &'a [u8],
    pos: usize,
}

impl<'a> Cur<'a> {
    fn fail<T>(&self, message: impl Into<String>) -> Result<T, ClassFileError> {
        Err(ClassFileError {
            offset: self.pos,
            message: message.into(),
        })
    }
    fn take(&mut self, n: usize) -> Result<&'a [u8], ClassFileError> {
        if self.b.len() - self.pos < n {
            return self.fail("file ends early");
        }
        let s = &self.b[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }
    fn u1(&mut self) -> Result<u8, ClassFileError> {
        Ok(self.take(1)?[0])
    }
    fn u2(&mut self) -> Result<u16, ClassFileError> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }
    fn u4(&mut self) -> Result<u32, ClassFileError> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
}

enum Const {
    Utf8(String),
    Class(u16),
    Other,
}

/// Reads the shape of the class in `bytes`.
pub fn parse(bytes: &[u8]) -> Result<ClassShape, ClassFileError> {
    let mut c = Cur { b: bytes, pos: 0 };
    if c.u4()? != 0xCAFE_BABE {
        return c.fail("not a class file (magic is not CAFEBABE)");
    }
    c.u2()?;
    c.u2()?;
    let count = c.u2()? as usize;
    let mut pool: Vec<Const> = Vec::with_capacity(count);
    pool.push(Const::Other);
    while pool.len() < count {
        let tag = c.u1()?;
        let (entry, slots) = match tag {
            1 => {
                let n = c.u2()? as usize;
                let at = c.pos;
                let raw = c.take(n)?;
                let s = JavaStr::from_mutf8(raw).map_err(|e| ClassFileError {
                    offset: at + e.at,
                    message: "bad modified UTF-8 in constant pool".into(),
                })?;
                (Const::Utf8(s.to_string_lossy().into_owned()), 1)
            }
            7 => (Const::Class(c.u2()?), 1),
            3 | 4 => {
                c.take(4)?;
                (Const::Other, 1)
            }
            5 | 6 => {
                c.take(8)?;
                (Const::Other, 2)
            }
            8 | 16 | 19 | 20 => {
                c.take(2)?;
                (Const::Other, 1)
            }
            9..=12 | 17 | 18 => {
                c.take(4)?;
                (Const::Other, 1)
            }
            15 => {
                c.take(3)?;
                (Const::Other, 1)
            }
            t => return c.fail(format!("unknown constant pool tag {t}")),
        };
        pool.push(entry);
        if slots == 2 {
            pool.push(Const::Other);
        }
    }
    let utf = |c: &Cur, i: u16| -> Result<String, ClassFileError> {
        match pool.get(i as usize) {
            Some(Const::Utf8(s)) => Ok(s.clone()),
            _ => c.fail(format!("constant {i} is not a UTF-8 entry")),
        }
    };
    let class_name = |c: &Cur, i: u16| -> Result<String, ClassFileError> {
        match pool.get(i as usize) {
            Some(Const::Class(n)) => Ok(utf(c, *n)?.replace('/', ".")),
            _ => c.fail(format!("constant {i} is not a class entry")),
        }
    };

    let access = c.u2()?;
    let this_class = c.u2()?;
    let name = class_name(&c, this_class)?;
    c.u2()?; // super_class
    let n = c.u2()?;
    let mut interfaces = Vec::with_capacity(n as usize);
    for _ in 0..n {
        let i = c.u2()?;
        interfaces.push(class_name(&c, i)?);
    }

    let mut fields = Vec::new();
    let mut methods = Vec::new();
    let mut constructors = Vec::new();
    let mut has_static_initializer = false;
    for is_method in [false, true] {
        let n = c.u2()?;
        for _ in 0..n {
            let modifiers = c.u2()?;
            let ni = c.u2()?;
            let name = utf(&c, ni)?;
            let di = c.u2()?;
            let descriptor = utf(&c, di)?;
            skip_attributes(&mut c)?;
            let m = Member {
                name,
                modifiers,
                descriptor,
            };
            if !is_method {
                fields.push(m);
            } else if m.name == "<clinit>" {
                has_static_initializer = true;
            } else if m.name == "<init>" {
                constructors.push(m);
            } else {
                methods.push(m);
            }
        }
    }

    // Class.getModifiers() of a nested class comes from the InnerClasses attribute.
    let mut modifiers = access;
    let n = c.u2()?;
    for _ in 0..n {
        let ni = c.u2()?;
        let len = c.u4()? as usize;
        let body = c.take(len)?;
        if utf(&c, ni)? != "InnerClasses" {
            continue;
        }
        let mut a = Cur { b: body, pos: 0 };
        let k = a.u2()?;
        for _ in 0..k {
            let inner = a.u2()?;
            a.u2()?;
            a.u2()?;
            let flags = a.u2()?;
            if inner == this_class {
                modifiers = flags;
            }
        }
    }
    Ok(ClassShape {
        name,
        modifiers: modifiers & !0x0020, // ACC_SUPER is not a modifier
        interfaces,
        fields,
        has_static_initializer,
        constructors,
        methods,
    })
}

fn skip_attributes(c: &mut Cur) -> Result<(), ClassFileError> {
    let n = c.u2()?;
    for _ in 0..n {
        c.u2()?;
        let len = c.u4()? as usize;
        c.take(len)?;
    }
    Ok(())
}
