//! Errors and limits of the codec.

use std::fmt;

/// Hard limits applied while decoding (and, where they make sense, encoding).
///
/// Every length, count and depth in a stream is checked against these before anything is
/// allocated, and every allocation is also bounded by the bytes left in the input, so no input
/// can make the decoder use memory out of proportion to its size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest stream accepted, in bytes.
    pub max_total_bytes: usize,
    /// Deepest nesting of objects, arrays and class descriptors.
    pub max_depth: usize,
    /// Most handles alive at once (between resets).
    pub max_handles: usize,
    /// Most elements in one array.
    pub max_array_len: usize,
    /// Longest string, in encoded bytes.
    pub max_string_len: usize,
    /// Longest single block-data record, in bytes.
    pub max_block_len: usize,
    /// Most interfaces of one proxy class descriptor.
    pub max_interfaces: usize,
}

impl Limits {
    /// Limits for the agent's traffic: generous for real commands, small enough that a hostile
    /// peer cannot exhaust the machine.
    pub const DEFAULT: Limits = Limits {
        max_total_bytes: 256 << 20,
        max_depth: 400,
        max_handles: 1 << 22,
        max_array_len: 64 << 20,
        max_string_len: 64 << 20,
        max_block_len: 64 << 20,
        max_interfaces: 65_535,
    };
}

impl Default for Limits {
    fn default() -> Self {
        Limits::DEFAULT
    }
}

/// Which limit was hit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Limit {
    /// [`Limits::max_total_bytes`]
    TotalBytes,
    /// [`Limits::max_depth`]
    Depth,
    /// [`Limits::max_handles`]
    Handles,
    /// [`Limits::max_array_len`]
    ArrayLength,
    /// [`Limits::max_string_len`]
    StringLength,
    /// [`Limits::max_block_len`]
    BlockLength,
    /// [`Limits::max_interfaces`]
    Interfaces,
}

impl Limit {
    fn name(self) -> &'static str {
        match self {
            Limit::TotalBytes => "max_total_bytes",
            Limit::Depth => "max_depth",
            Limit::Handles => "max_handles",
            Limit::ArrayLength => "max_array_len",
            Limit::StringLength => "max_string_len",
            Limit::BlockLength => "max_block_len",
            Limit::Interfaces => "max_interfaces",
        }
    }
}

/// What was wrong with the bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DecodeErrorKind {
    /// The input ended inside an item.
    Truncated {
        /// What was being read.
        reading: &'static str,
    },
    /// The stream does not start with `ac ed`.
    BadMagic(u16),
    /// The stream version is not 5.
    BadVersion(u16),
    /// A type code that is not valid where it appears.
    UnexpectedTypeCode {
        /// The byte found.
        code: u8,
        /// What the grammar allows here.
        expected: &'static str,
    },
    /// A field descriptor with an unknown type code.
    BadFieldType(u8),
    /// A `TC_REFERENCE` to a handle that was never assigned.
    UnknownHandle(u32),
    /// A `TC_REFERENCE` to an entry of the wrong kind (for example a string where a class
    /// descriptor must be), or to a descriptor still being read.
    WrongReference {
        /// The handle.
        handle: u32,
        /// What the grammar needs here.
        expected: &'static str,
    },
    /// A negative length or count.
    NegativeLength(i64),
    /// A limit was exceeded.
    Limit {
        /// Which limit.
        limit: Limit,
        /// The value found.
        value: u64,
        /// The limit in force.
        max: u64,
    },
    /// A length larger than the bytes left in the input.
    LengthBeyondInput {
        /// The declared length in bytes (or elements × element size).
        length: u64,
        /// Bytes left.
        available: u64,
    },
    /// A string that is not modified UTF-8.
    BadString {
        /// Offset of the bad byte inside the string.
        at: usize,
    },
    /// An array descriptor whose name is not an array type.
    BadArrayClass(String),
    /// `TC_ENUM` with a descriptor not flagged `SC_ENUM`.
    NotAnEnum(String),
    /// An externalizable class written without block data (protocol version 1), whose data
    /// cannot be parsed without the class.
    ExternalizableV1(String),
    /// `TC_RESET` inside an object.
    ResetInsideObject,
    /// `TC_EXCEPTION` inside the writer's own exception.
    NestedException,
    /// Bytes after the end of the stream when the caller wanted exactly one stream.
    TrailingBytes,
}

impl fmt::Display for DecodeErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use DecodeErrorKind::*;
        match self {
            Truncated { reading } => write!(f, "input ends in the middle of {reading}"),
            BadMagic(m) => write!(
                f,
                "not a Java serialization stream: starts with {m:04x}, expected aced"
            ),
            BadVersion(v) => write!(f, "unsupported stream version {v}, expected 5"),
            UnexpectedTypeCode { code, expected } => {
                write!(f, "unexpected type code 0x{code:02x}, expected {expected}")
            }
            BadFieldType(c) => write!(f, "unknown field type code 0x{c:02x}"),
            UnknownHandle(h) => write!(f, "reference to unassigned handle 0x{h:x}"),
            WrongReference { handle, expected } => {
                write!(f, "reference to handle 0x{handle:x} where {expected} is required")
            }
            NegativeLength(n) => write!(f, "negative length {n}"),
            Limit { limit, value, max } => write!(
                f,
                "limit {} exceeded: {value} > {max}",
                limit.name()
            ),
            LengthBeyondInput { length, available } => write!(
                f,
                "length {length} is larger than the {available} bytes left in the input"
            ),
            BadString { at } => write!(f, "string is not modified UTF-8 (string byte {at})"),
            BadArrayClass(n) => write!(f, "array with non-array class descriptor {n:?}"),
            NotAnEnum(n) => write!(f, "enum constant of class {n:?}, which is not flagged as enum"),
            ExternalizableV1(n) => write!(
                f,
                "externalizable class {n:?} written with stream protocol 1, which cannot be parsed without the class"
            ),
            ResetInsideObject => write!(f, "TC_RESET inside an object"),
            NestedException => write!(f, "TC_EXCEPTION while reading the writer's exception"),
            TrailingBytes => write!(f, "bytes after the end of the stream"),
        }
    }
}

/// A decoding failure: what, and where.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecodeError {
    /// Offset in the input of the item at fault.
    pub offset: usize,
    /// What was wrong.
    pub kind: DecodeErrorKind,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "at byte {} (0x{:x}): {}",
            self.offset, self.offset, self.kind
        )
    }
}

impl std::error::Error for DecodeError {}

/// Why a value could not be written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EncodeError {
    /// What is wrong with the value, naming the entry and class involved.
    pub message: String,
}

impl EncodeError {
    pub(crate) fn new(message: impl Into<String>) -> Self {
        EncodeError {
            message: message.into(),
        }
    }
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cannot encode: {}", self.message)
    }
}

impl std::error::Error for EncodeError {}
