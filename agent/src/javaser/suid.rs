//! The default serialVersionUID, computed as `java.io.ObjectStreamClass.computeDefaultSUID`
//! (and the `serialver` tool) does, from a class's shape.
//!
//! The shape comes from a class file ([`super::classfile::parse`]) or is built by hand.

use sha1::{Digest, Sha1};

/// Access flags as `java.lang.reflect.Modifier` numbers them.
pub mod modifiers {
    /// `public`
    pub const PUBLIC: u16 = 0x0001;
    /// `private`
    pub const PRIVATE: u16 = 0x0002;
    /// `protected`
    pub const PROTECTED: u16 = 0x0004;
    /// `static`
    pub const STATIC: u16 = 0x0008;
    /// `final`
    pub const FINAL: u16 = 0x0010;
    /// `synchronized`
    pub const SYNCHRONIZED: u16 = 0x0020;
    /// `volatile` (fields)
    pub const VOLATILE: u16 = 0x0040;
    /// `transient` (fields)
    pub const TRANSIENT: u16 = 0x0080;
    /// `native`
    pub const NATIVE: u16 = 0x0100;
    /// `interface`
    pub const INTERFACE: u16 = 0x0200;
    /// `abstract`
    pub const ABSTRACT: u16 = 0x0400;
    /// `strictfp`
    pub const STRICT: u16 = 0x0800;
}
use modifiers::*;

/// A field or method as reflection reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    /// Name (`<init>` for constructors).
    pub name: String,
    /// Modifiers as `getModifiers()` returns them.
    pub modifiers: u16,
    /// JVM descriptor with slashes: `I`, `(Ljava/lang/String;)V`.
    pub descriptor: String,
}

/// What the default serialVersionUID depends on.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClassShape {
    /// Binary name with dots: `java.util.ArrayList`, `a.Outer$Inner`.
    pub name: String,
    /// Class modifiers as `Class.getModifiers()` returns them (for nested classes the
    /// InnerClasses attribute's flags, not the class file's).
    pub modifiers: u16,
    /// Directly implemented interfaces, binary names with dots.
    pub interfaces: Vec<String>,
    /// Declared fields.
    pub fields: Vec<Member>,
    /// True if the class has a static initializer (`<clinit>`).
    pub has_static_initializer: bool,
    /// Declared constructors.
    pub constructors: Vec<Member>,
    /// Declared methods, excluding `<init>` and `<clinit>`.
    pub methods: Vec<Member>,
}

fn write_utf(out: &mut Vec<u8>, s: &str) {
    let js = super::JavaStr::new(s);
    let b = js.as_mutf8();
    out.extend_from_slice(&(b.len() as u16).to_be_bytes());
    out.extend_from_slice(b);
}

fn utf16_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    a.encode_utf16().cmp(b.encode_utf16())
}

fn finish(data: &[u8]) -> i64 {
    let digest = Sha1::digest(data);
    let mut hash: i64 = 0;
    for i in (0..8).rev() {
        hash = (hash << 8) | digest[i] as i64;
    }
    hash
}

/// The default serialVersionUID of a class.
pub fn default_suid(c: &ClassShape) -> i64 {
    let mut d = Vec::with_capacity(256);
    write_utf(&mut d, &c.name);
    let mut class_mods = c.modifiers & (PUBLIC | FINAL | INTERFACE | ABSTRACT);
    if class_mods & INTERFACE != 0 {
        if c.methods.is_empty() {
            class_mods &= !ABSTRACT;
        } else {
            class_mods |= ABSTRACT;
        }
    }
    d.extend_from_slice(&(class_mods as i32).to_be_bytes());

    let mut ifaces: Vec<&String> = c.interfaces.iter().collect();
    ifaces.sort_by(|a, b| utf16_cmp(a, b));
    for i in ifaces {
        write_utf(&mut d, i);
    }

    let mut fields: Vec<&Member> = c.fields.iter().collect();
    fields.sort_by(|a, b| utf16_cmp(&a.name, &b.name));
    for f in fields {
        let mods =
            f.modifiers & (PUBLIC | PRIVATE | PROTECTED | STATIC | FINAL | VOLATILE | TRANSIENT);
        if mods & PRIVATE == 0 || mods & (STATIC | TRANSIENT) == 0 {
            write_utf(&mut d, &f.name);
            d.extend_from_slice(&(mods as i32).to_be_bytes());
            write_utf(&mut d, &f.descriptor);
        }
    }

    if c.has_static_initializer {
        write_utf(&mut d, "<clinit>");
        d.extend_from_slice(&(STATIC as i32).to_be_bytes());
        write_utf(&mut d, "()V");
    }

    let method_mask =
        PUBLIC | PRIVATE | PROTECTED | STATIC | FINAL | SYNCHRONIZED | NATIVE | ABSTRACT | STRICT;
    let mut ctors: Vec<&Member> = c.constructors.iter().collect();
    ctors.sort_by(|a, b| utf16_cmp(&a.descriptor, &b.descriptor));
    for m in ctors {
        let mods = m.modifiers & method_mask;
        if mods & PRIVATE == 0 {
            write_utf(&mut d, "<init>");
            d.extend_from_slice(&(mods as i32).to_be_bytes());
            write_utf(&mut d, &m.descriptor.replace('/', "."));
        }
    }

    let mut methods: Vec<&Member> = c.methods.iter().collect();
    methods
        .sort_by(|a, b| utf16_cmp(&a.name, &b.name).then(utf16_cmp(&a.descriptor, &b.descriptor)));
    for m in methods {
        let mods = m.modifiers & method_mask;
        if mods & PRIVATE == 0 {
            write_utf(&mut d, &m.name);
            d.extend_from_slice(&(mods as i32).to_be_bytes());
            write_utf(&mut d, &m.descriptor.replace('/', "."));
        }
    }
    finish(&d)
}

/// The serialVersionUID of an array class (`[I`, `[Ljava.lang.String;`): arrays declare no
/// members, so only the name and the modifiers count. `public_component` is whether the
/// element type is public (primitives are).
pub fn array_suid(name: &str, public_component: bool) -> i64 {
    let mods = if public_component {
        PUBLIC | FINAL | ABSTRACT
    } else {
        FINAL | ABSTRACT
    };
    let mut d = Vec::with_capacity(64);
    write_utf(&mut d, name);
    d.extend_from_slice(&(mods as i32).to_be_bytes());
    finish(&d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn array_suids_match_the_jdk() {
        // Values the JDK writes for these array classes (remoting-protocol.md, Appendix B).
        assert_eq!(array_suid("[B", true), -5984413125824719648);
        assert_eq!(
            array_suid("[Ljava.lang.String;", true),
            -5921575005990323385
        );
        assert_eq!(
            array_suid("[Ljava.lang.Object;", true),
            -8012369246846506644
        );
    }
}
