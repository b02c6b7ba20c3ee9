//! Java strings in *modified UTF-8*, the encoding of `DataOutput.writeUTF` and of every string
//! in a serialization stream.
//!
//! Modified UTF-8 differs from UTF-8 in two ways: U+0000 is written as `c0 80`, and a
//! supplementary character is written as its two UTF-16 surrogates, three bytes each. A Java
//! string may also hold unpaired surrogates, which no Rust `str` can. [`JavaStr`] therefore
//! keeps the validated bytes exactly as they were received: writing them back is a copy, and
//! a stream round-trips byte for byte. Conversion to Rust text is on demand.

use std::borrow::Cow;
use std::fmt;

/// A Java string held as validated modified UTF-8 bytes.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct JavaStr(Box<[u8]>);

/// The bytes are not modified UTF-8 as `java.io.DataInputStream.readUTF` accepts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mutf8Error {
    /// Offset of the offending byte, relative to the start of the string's bytes.
    pub at: usize,
}

impl fmt::Display for Mutf8Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "malformed modified UTF-8 at string byte {}", self.at)
    }
}

impl std::error::Error for Mutf8Error {}

impl JavaStr {
    /// Validates `bytes` with the JDK's rules and keeps them as they are.
    ///
    /// Accepted, exactly as `readUTF` accepts: a lead byte `0xxxxxxx` (a raw NUL included),
    /// `110xxxxx 10xxxxxx`, and `1110xxxx 10xxxxxx 10xxxxxx`. Anything else is an error.
    pub fn from_mutf8(bytes: &[u8]) -> Result<Self, Mutf8Error> {
        validate(bytes)?;
        Ok(JavaStr(bytes.into()))
    }

    /// Encodes Rust text as modified UTF-8.
    pub fn new(s: &str) -> Self {
        if s.bytes().all(|b| b != 0 && b < 0x80) {
            return JavaStr(s.as_bytes().into());
        }
        let units: Vec<u16> = s.encode_utf16().collect();
        Self::from_utf16(&units)
    }

    /// Encodes UTF-16 code units (lone surrogates allowed) as modified UTF-8.
    pub fn from_utf16(units: &[u16]) -> Self {
        let mut out = Vec::with_capacity(units.len());
        for &u in units {
            match u {
                0x0001..=0x007f => out.push(u as u8),
                0x0000 | 0x0080..=0x07ff => {
                    out.push(0xc0 | (u >> 6) as u8);
                    out.push(0x80 | (u & 0x3f) as u8);
                }
                _ => {
                    out.push(0xe0 | (u >> 12) as u8);
                    out.push(0x80 | ((u >> 6) & 0x3f) as u8);
                    out.push(0x80 | (u & 0x3f) as u8);
                }
            }
        }
        JavaStr(out.into_boxed_slice())
    }

    /// The modified UTF-8 bytes, as written on the wire.
    pub fn as_mutf8(&self) -> &[u8] {
        &self.0
    }

    /// Length of the encoded form in bytes.
    pub fn encoded_len(&self) -> usize {
        self.0.len()
    }

    /// True when the string is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The UTF-16 code units, as `String.charAt` would see them.
    pub fn to_utf16(&self) -> Vec<u16> {
        let b = &self.0;
        let mut out = Vec::with_capacity(b.len());
        let mut i = 0;
        while i < b.len() {
            let c = b[i];
            if c < 0x80 {
                out.push(c as u16);
                i += 1;
            } else if c >> 5 == 0b110 {
                out.push((((c & 0x1f) as u16) << 6) | (b[i + 1] & 0x3f) as u16);
                i += 2;
            } else {
                out.push(
                    (((c & 0x0f) as u16) << 12)
                        | (((b[i + 1] & 0x3f) as u16) << 6)
                        | (b[i + 2] & 0x3f) as u16,
                );
                i += 3;
            }
        }
        out
    }

    /// The string as Rust text, or `None` if it holds an unpaired surrogate.
    ///
    /// Borrows when the bytes are plain ASCII (the common case on the wire).
    pub fn to_str(&self) -> Option<Cow<'_, str>> {
        if self.0.iter().all(|&b| b != 0 && b < 0x80) {
            // Validated ASCII is valid UTF-8.
            return std::str::from_utf8(&self.0).ok().map(Cow::Borrowed);
        }
        String::from_utf16(&self.to_utf16()).ok().map(Cow::Owned)
    }

    /// The string as Rust text, unpaired surrogates replaced by U+FFFD.
    pub fn to_string_lossy(&self) -> Cow<'_, str> {
        match self.to_str() {
            Some(s) => s,
            None => Cow::Owned(String::from_utf16_lossy(&self.to_utf16())),
        }
    }

    /// Compares with Rust text without allocating for ASCII.
    pub fn eq_str(&self, s: &str) -> bool {
        if self.0.len() == s.len() && self.0.iter().all(|&b| b != 0 && b < 0x80) {
            return &*self.0 == s.as_bytes();
        }
        self.to_str().is_some_and(|t| t == s)
    }
}

impl From<&str> for JavaStr {
    fn from(s: &str) -> Self {
        JavaStr::new(s)
    }
}

impl fmt::Debug for JavaStr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.to_string_lossy(), f)
    }
}

impl fmt::Display for JavaStr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_string_lossy())
    }
}

fn validate(b: &[u8]) -> Result<(), Mutf8Error> {
    let mut i = 0;
    let n = b.len();
    while i < n {
        let c = b[i];
        if c < 0x80 {
            i += 1;
            continue;
        }
        let need = match c >> 4 {
            0xc | 0xd => 2,
            0xe => 3,
            _ => return Err(Mutf8Error { at: i }),
        };
        if i + need > n {
            return Err(Mutf8Error { at: i });
        }
        for k in 1..need {
            if b[i + k] & 0xc0 != 0x80 {
                return Err(Mutf8Error { at: i + k });
            }
        }
        i += need;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_nul_and_supplementary_like_the_jdk() {
        // Captured from the JDK: "a\0é€😀".
        let s = JavaStr::new("a\0é€😀");
        assert_eq!(
            s.as_mutf8(),
            &[0x61, 0xc0, 0x80, 0xc3, 0xa9, 0xe2, 0x82, 0xac, 0xed, 0xa0, 0xbd, 0xed, 0xb8, 0x80]
        );
        assert_eq!(s.to_str().unwrap(), "a\0é€😀");
    }

    #[test]
    fn lone_surrogates_survive_and_are_not_text() {
        let s = JavaStr::from_utf16(&[0x61, 0xd800, 0x62]);
        assert_eq!(s.to_utf16(), vec![0x61, 0xd800, 0x62]);
        assert!(s.to_str().is_none());
        assert_eq!(s.to_string_lossy(), "a\u{fffd}b");
        assert_eq!(JavaStr::from_mutf8(s.as_mutf8()).unwrap(), s);
    }

    #[test]
    fn rejects_what_read_utf_rejects() {
        assert_eq!(JavaStr::from_mutf8(&[0x80]).unwrap_err().at, 0);
        assert_eq!(JavaStr::from_mutf8(&[0x61, 0xf0, 0x80]).unwrap_err().at, 1);
        assert_eq!(JavaStr::from_mutf8(&[0xc3]).unwrap_err().at, 0);
        assert_eq!(JavaStr::from_mutf8(&[0xe2, 0x82, 0x41]).unwrap_err().at, 2);
        // A raw NUL byte is accepted by the JDK's reader.
        assert_eq!(JavaStr::from_mutf8(&[0]).unwrap().to_utf16(), vec![0]);
    }
}
