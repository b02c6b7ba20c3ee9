//! Java Object Serialization (protocol version 2), sans-IO.
//!
//! Bytes in, values out, and back: [`decode`] turns a stream into a [`Stream`] (a [`Heap`] of
//! entries plus the top-level items), [`encode`] writes it back byte for byte, and
//! [`Builder`] with a [`Registry`] of class descriptors makes new streams the JDK accepts.
//!
//! What this module does not do: no IO, no tokio, no class loading. Unknown classes are kept
//! as data (descriptor + field values + custom data); only `writeObject` data of classes that
//! skip `defaultWriteObject` needs outside knowledge ([`DecodeOptions::no_default_fields`]).
//!
//! Every length, count and depth is bounded ([`Limits`]); no input can panic the decoder or
//! make it allocate more than a small multiple of the input's size.

pub mod classfile;
mod error;
pub mod json;
mod model;
mod mutf8;
mod read;
mod registry;
pub mod suid;
mod write;

pub use error::{DecodeError, DecodeErrorKind, EncodeError, Limit, Limits};
pub use model::*;
pub use mutf8::{JavaStr, Mutf8Error};
pub use read::{decode, decode_prefix, DecodeOptions};
pub use registry::{BuildError, Builder, ClassSpec, FieldSpec, Registry};
pub use write::{encode, encode_with_limits, Encoder};

/// Stream constants of `java.io.ObjectStreamConstants`.
pub mod tc {
    /// `STREAM_MAGIC`
    pub const STREAM_MAGIC: u16 = 0xaced;
    /// `STREAM_VERSION`
    pub const STREAM_VERSION: u16 = 5;
    /// The four header bytes.
    pub const HEADER: [u8; 4] = [0xac, 0xed, 0x00, 0x05];
    /// First handle of a stream.
    pub const BASE_WIRE_HANDLE: u32 = 0x7e_0000;
    /// `TC_NULL`
    pub const TC_NULL: u8 = 0x70;
    /// `TC_REFERENCE`
    pub const TC_REFERENCE: u8 = 0x71;
    /// `TC_CLASSDESC`
    pub const TC_CLASSDESC: u8 = 0x72;
    /// `TC_OBJECT`
    pub const TC_OBJECT: u8 = 0x73;
    /// `TC_STRING`
    pub const TC_STRING: u8 = 0x74;
    /// `TC_ARRAY`
    pub const TC_ARRAY: u8 = 0x75;
    /// `TC_CLASS`
    pub const TC_CLASS: u8 = 0x76;
    /// `TC_BLOCKDATA`
    pub const TC_BLOCKDATA: u8 = 0x77;
    /// `TC_ENDBLOCKDATA`
    pub const TC_ENDBLOCKDATA: u8 = 0x78;
    /// `TC_RESET`
    pub const TC_RESET: u8 = 0x79;
    /// `TC_BLOCKDATALONG`
    pub const TC_BLOCKDATALONG: u8 = 0x7a;
    /// `TC_EXCEPTION`
    pub const TC_EXCEPTION: u8 = 0x7b;
    /// `TC_LONGSTRING`
    pub const TC_LONGSTRING: u8 = 0x7c;
    /// `TC_PROXYCLASSDESC`
    pub const TC_PROXYCLASSDESC: u8 = 0x7d;
    /// `TC_ENUM`
    pub const TC_ENUM: u8 = 0x7e;
}

/// Entry point for fuzzers: decode arbitrary bytes; if they decode, the result must encode,
/// and decode again to the same value. Panics only on a codec bug.
#[doc(hidden)]
pub fn fuzz_roundtrip(data: &[u8]) {
    let opts = DecodeOptions {
        limits: Limits {
            max_total_bytes: 1 << 20,
            max_depth: 64,
            ..Limits::DEFAULT
        },
        ..DecodeOptions::default()
    };
    if let Ok(stream) = decode(data, &opts) {
        let _ = json::debug_json(&stream);
        let _ = json::oracle_json(&stream);
        if let Ok(bytes) = encode(&stream) {
            let again = decode(&bytes, &opts).expect("re-encoded stream must decode");
            assert_eq!(json::oracle_json(&again), json::oracle_json(&stream));
        }
    }
}
