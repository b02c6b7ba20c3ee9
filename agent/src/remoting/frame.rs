//! Chunk framing (`hudson.remoting.ChunkHeader`): a command is a sequence of chunks, each a
//! big-endian u16 header (`length & 0x7fff`, `0x8000` = more chunks follow) and its payload.
//! Pure push/pull: feed bytes, take out complete commands.

use std::fmt;

/// Largest chunk payload the writer produces (what Java writes on JNLP4 and WebSocket).
pub const MAX_CHUNK: usize = 8192;

/// A command larger than the reader's limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameTooLarge {
    /// The limit in bytes.
    pub max: usize,
}

impl fmt::Display for FrameTooLarge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "remoting command larger than {} bytes", self.max)
    }
}

impl std::error::Error for FrameTooLarge {}

/// Reassembles commands from chunk frames arriving in any split.
#[derive(Debug)]
pub struct ChunkReader {
    buf: Vec<u8>,
    command: Vec<u8>,
    max_command: usize,
}

impl ChunkReader {
    /// A reader that refuses commands larger than `max_command` bytes.
    pub fn new(max_command: usize) -> Self {
        ChunkReader {
            buf: Vec::new(),
            command: Vec::new(),
            max_command,
        }
    }

    /// Adds received bytes.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next complete command, `Ok(None)` if more bytes are needed.
    pub fn next_command(&mut self) -> Result<Option<Vec<u8>>, FrameTooLarge> {
        let mut pos = 0;
        let result = loop {
            if self.buf.len() - pos < 2 {
                break Ok(None);
            }
            let h = u16::from_be_bytes([self.buf[pos], self.buf[pos + 1]]);
            let len = (h & 0x7fff) as usize;
            if self.buf.len() - pos - 2 < len {
                break Ok(None);
            }
            if self.command.len() + len > self.max_command {
                break Err(FrameTooLarge {
                    max: self.max_command,
                });
            }
            self.command
                .extend_from_slice(&self.buf[pos + 2..pos + 2 + len]);
            pos += 2 + len;
            if h & 0x8000 == 0 {
                break Ok(Some(std::mem::take(&mut self.command)));
            }
        };
        self.buf.drain(..pos);
        result
    }
}

/// Splits a command into chunk frames of at most [`MAX_CHUNK`] payload bytes each.
pub fn chunks(command: &[u8]) -> Vec<Vec<u8>> {
    if command.is_empty() {
        return vec![vec![0, 0]];
    }
    let n = command.len().div_ceil(MAX_CHUNK);
    command
        .chunks(MAX_CHUNK)
        .enumerate()
        .map(|(i, c)| {
            let more = if i + 1 < n { 0x8000 } else { 0 };
            let h = (c.len() as u16) | more;
            let mut f = Vec::with_capacity(c.len() + 2);
            f.extend_from_slice(&h.to_be_bytes());
            f.extend_from_slice(c);
            f
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reassembles_across_any_split() {
        let cmd: Vec<u8> = (0..20_000u32).map(|i| i as u8).collect();
        let wire: Vec<u8> = chunks(&cmd).concat();
        for step in [1, 7, 8194, wire.len()] {
            let mut r = ChunkReader::new(1 << 20);
            let mut got = Vec::new();
            for piece in wire.chunks(step) {
                r.push(piece);
                while let Some(c) = r.next_command().unwrap() {
                    got.push(c);
                }
            }
            assert_eq!(got, vec![cmd.clone()], "step {step}");
        }
    }

    #[test]
    fn refuses_oversized_commands() {
        let mut r = ChunkReader::new(100);
        r.push(&chunks(&[0u8; 300]).concat());
        assert_eq!(r.next_command(), Err(FrameTooLarge { max: 100 }));
    }
}
