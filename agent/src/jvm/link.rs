//! The link to the helper JVM over its standard input and output, with nectr on the
//! controller's side: the stdio transport of remoting (remoting-protocol.md §4.4), as
//! `java -jar agent.jar` without `-url` speaks it (`hudson.remoting.Launcher` →
//! `ChannelBuilder.negotiate`). Sans-IO: bytes in, events out.
//!
//! Each side first writes the capability preamble `<===[JENKINS REMOTING CAPACITY]===>`, the
//! base64 of its `Capability` object, and the BINARY mode preamble (four zero bytes); then both
//! speak chunked commands (§4.2) when both advertised CHUNKED_ENCODING. Anything before the
//! preamble (a JVM warning on stdout) is skipped, as `negotiate` does, up to a bound.

use base64::Engine;

use crate::javaser::Registry;
use crate::remoting::capability;
use crate::remoting::command;
use crate::remoting::frame::{self, ChunkReader};

/// `Capability.PREAMBLE`.
pub const CAPACITY_PREAMBLE: &[u8] = b"<===[JENKINS REMOTING CAPACITY]===>";
/// `Channel.Mode.BINARY.preamble`.
pub const BINARY_PREAMBLE: [u8; 4] = [0; 4];
/// `Channel.Mode.TEXT.preamble` (refused: nectr asks for BINARY).
pub const TEXT_PREAMBLE: &[u8] = b"<===[HUDSON TRANSMISSION BEGINS]===>";

/// Most bytes skipped before the helper's preamble.
const MAX_GARBAGE: usize = 1 << 20;
/// Longest base64 text of a capability accepted (the standard one is 84 characters).
const MAX_CAPABILITY_TEXT: usize = 4096;
/// Largest command accepted from the helper.
pub const MAX_COMMAND: usize = crate::remoting::channel::MAX_COMMAND;

/// What nectr writes first: its capability (`mask`) and the BINARY mode preamble.
pub fn hello(reg: &Registry, mask: i64) -> Vec<u8> {
    let cap = command::capability(reg, mask);
    let mut out = CAPACITY_PREAMBLE.to_vec();
    out.extend_from_slice(
        base64::engine::general_purpose::STANDARD
            .encode(cap)
            .as_bytes(),
    );
    out.extend_from_slice(&BINARY_PREAMBLE);
    out
}

/// One command for the helper, framed in chunks.
pub fn frame(payload: &[u8]) -> Vec<u8> {
    frame::chunks(payload).concat()
}

/// What the helper said.
#[derive(Debug, PartialEq, Eq)]
pub enum LinkEvent {
    /// Its preamble: the capability it advertised.
    Hello {
        /// `Capability.mask`
        capability: i64,
    },
    /// One command (a serialization stream).
    Command(Vec<u8>),
}

enum Phase {
    /// Looking for the capability preamble.
    Preamble,
    /// After the capability, looking for the mode preamble.
    Mode,
    /// Chunked commands.
    Chunks,
}

/// Reads what the helper writes on its standard output.
pub struct LinkReader {
    phase: Phase,
    buf: Vec<u8>,
    skipped: usize,
    chunks: ChunkReader,
}

impl Default for LinkReader {
    fn default() -> Self {
        LinkReader::new()
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn is_base64(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'+' || b == b'/' || b == b'='
}

impl LinkReader {
    /// A reader before the helper's preamble.
    pub fn new() -> Self {
        LinkReader {
            phase: Phase::Preamble,
            buf: Vec::new(),
            skipped: 0,
            chunks: ChunkReader::new(MAX_COMMAND),
        }
    }

    /// Drops `n` bytes from the front of the buffer, counting them against the garbage bound.
    fn skip(&mut self, n: usize) -> Result<(), String> {
        self.skipped += n;
        self.buf.drain(..n);
        if self.skipped > MAX_GARBAGE {
            return Err(format!(
                "the JVM helper wrote more than {MAX_GARBAGE} bytes without the remoting preamble: \
                 is it really agent.jar?"
            ));
        }
        Ok(())
    }

    /// Feeds bytes from the helper's standard output.
    pub fn push(&mut self, bytes: &[u8]) -> Result<Vec<LinkEvent>, String> {
        let mut events = Vec::new();
        if let Phase::Chunks = self.phase {
            self.chunks.push(bytes);
        } else {
            self.buf.extend_from_slice(bytes);
        }
        loop {
            match self.phase {
                Phase::Preamble => {
                    if find(&self.buf, TEXT_PREAMBLE).is_some() {
                        return Err(
                            "the JVM helper chose the TEXT mode; nectr speaks BINARY".into()
                        );
                    }
                    let Some(at) = find(&self.buf, CAPACITY_PREAMBLE) else {
                        // Keep a tail that may be the start of the preamble.
                        let keep = CAPACITY_PREAMBLE.len() - 1;
                        if self.buf.len() > keep {
                            self.skip(self.buf.len() - keep)?;
                        }
                        return Ok(events);
                    };
                    let start = at + CAPACITY_PREAMBLE.len();
                    let len = self.buf[start..]
                        .iter()
                        .take_while(|b| is_base64(**b))
                        .count();
                    if len > MAX_CAPABILITY_TEXT {
                        return Err("the JVM helper's capability is implausibly long".into());
                    }
                    if start + len == self.buf.len() {
                        return Ok(events); // the text may go on
                    }
                    let text = &self.buf[start..start + len];
                    let mut raw = Vec::new();
                    // BinarySafeStream pads every flush, so `=` may appear mid-text: decode
                    // each quartet on its own.
                    for q in text.chunks(4) {
                        let part = base64::engine::general_purpose::STANDARD
                            .decode(q)
                            .map_err(|e| {
                                format!("the JVM helper's capability is not base64: {e}")
                            })?;
                        raw.extend_from_slice(&part);
                    }
                    let mask = command::read_capability(&raw)
                        .ok_or("the JVM helper's capability is not a hudson.remoting.Capability")?;
                    if mask & capability::CHUNKED_ENCODING == 0 {
                        return Err(format!(
                            "the JVM helper's agent.jar does not speak chunked commands (capability {mask:#x}): it is too old"
                        ));
                    }
                    events.push(LinkEvent::Hello { capability: mask });
                    self.skip(start + len)?;
                    self.phase = Phase::Mode;
                }
                Phase::Mode => {
                    let Some(at) = find(&self.buf, &BINARY_PREAMBLE) else {
                        if find(&self.buf, TEXT_PREAMBLE).is_some() {
                            return Err(
                                "the JVM helper chose the TEXT mode; nectr speaks BINARY".into()
                            );
                        }
                        let keep = BINARY_PREAMBLE.len() - 1;
                        if self.buf.len() > keep {
                            self.skip(self.buf.len() - keep)?;
                        }
                        return Ok(events);
                    };
                    self.skip(at)?;
                    let rest = self.buf.split_off(BINARY_PREAMBLE.len());
                    self.buf.clear();
                    self.chunks.push(&rest);
                    self.phase = Phase::Chunks;
                }
                Phase::Chunks => {
                    while let Some(c) = self.chunks.next_command().map_err(|e| e.to_string())? {
                        events.push(LinkEvent::Command(c));
                    }
                    return Ok(events);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::remoting::classes;

    #[test]
    fn nectr_says_hello_as_remoting_does() {
        let h = hello(&classes::registry(), 0x1fe);
        let expected = [
            CAPACITY_PREAMBLE,
            b"rO0ABXNyABpodWRzb24ucmVtb3RpbmcuQ2FwYWJpbGl0eQAAAAAAAAABAgABSgAEbWFza3hwAAAAAAAAAf4=",
            &BINARY_PREAMBLE,
        ]
        .concat();
        assert_eq!(h, expected);
    }

    #[test]
    fn reads_the_helpers_preamble_after_garbage_and_then_commands_in_any_split() {
        let reg = classes::registry();
        let mut wire = b"Picked up JAVA_TOOL_OPTIONS: -Dx=<===[JENK\n".to_vec();
        wire.extend_from_slice(&hello(&reg, 0x1fe));
        let cmd1 = command::close(&reg);
        let cmd2: Vec<u8> = (0..20_000u32).map(|i| i as u8).collect();
        wire.extend_from_slice(&frame(&cmd1));
        wire.extend_from_slice(&frame(&cmd2));
        for step in [1, 3, 17, 100, wire.len()] {
            let mut r = LinkReader::new();
            let mut events = Vec::new();
            for piece in wire.chunks(step) {
                events.extend(r.push(piece).unwrap());
            }
            assert_eq!(
                events,
                vec![
                    LinkEvent::Hello { capability: 0x1fe },
                    LinkEvent::Command(cmd1.clone()),
                    LinkEvent::Command(cmd2.clone())
                ],
                "step {step}"
            );
        }
    }

    #[test]
    fn a_capability_padded_mid_text_is_read() {
        // BinarySafeStream flushes may pad: decode quartet by quartet.
        let cap = command::capability(&classes::registry(), 0x1a4);
        let (a, b) = cap.split_at(10);
        let e = &base64::engine::general_purpose::STANDARD;
        let mut wire = CAPACITY_PREAMBLE.to_vec();
        wire.extend_from_slice(e.encode(a).as_bytes());
        wire.extend_from_slice(e.encode(b).as_bytes());
        wire.extend_from_slice(&BINARY_PREAMBLE);
        let mut r = LinkReader::new();
        assert_eq!(
            r.push(&wire).unwrap(),
            vec![LinkEvent::Hello { capability: 0x1a4 }]
        );
    }

    #[test]
    fn any_bytes_in_any_split_never_panic() {
        use proptest::prelude::*;
        let mut runner = proptest::test_runner::TestRunner::default();
        let reg = classes::registry();
        let hello_bytes = hello(&reg, 0x1fe);
        runner
            .run(
                &(
                    proptest::collection::vec(any::<u8>(), 0..2000),
                    1usize..64,
                    any::<bool>(),
                ),
                |(bytes, step, with_hello)| {
                    let mut r = LinkReader::new();
                    let mut wire = if with_hello {
                        hello_bytes.clone()
                    } else {
                        Vec::new()
                    };
                    wire.extend_from_slice(&bytes);
                    for piece in wire.chunks(step) {
                        if r.push(piece).is_err() {
                            break;
                        }
                    }
                    Ok(())
                },
            )
            .unwrap();
    }

    #[test]
    fn refuses_text_mode_endless_garbage_and_helpers_without_chunking() {
        let mut r = LinkReader::new();
        assert!(r.push(TEXT_PREAMBLE).is_err());
        let mut r = LinkReader::new();
        let junk = vec![b'x'; 64 << 10];
        let mut failed = None;
        for _ in 0..20 {
            if let Err(e) = r.push(&junk) {
                failed = Some(e);
                break;
            }
        }
        assert!(failed.is_some_and(|e| e.contains("preamble")));
        let mut r = LinkReader::new();
        let e = r.push(&hello(&classes::registry(), 0x2)).unwrap_err();
        assert!(e.contains("chunked"), "{e}");
    }
}
