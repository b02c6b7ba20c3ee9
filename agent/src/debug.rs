//! `nectr-agent debug …`: turning bytes captured from the wire into something people read.
//! Pure functions; the binary does the IO.

use std::fmt;

use serde_json::{json, Value as J};

use crate::javaser::{self, json::debug_json, tc, DecodeError, DecodeOptions, Limits};

/// Why a dump failed: a one-line message with the byte offset in the input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DumpError {
    /// Offset in the whole input.
    pub offset: usize,
    /// What was wrong there.
    pub message: String,
}

impl fmt::Display for DumpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "malformed input at byte {} (0x{:x}): {}",
            self.offset, self.offset, self.message
        )
    }
}

fn shift(e: DecodeError, base: usize) -> DumpError {
    DumpError {
        offset: base + e.offset,
        message: e.kind.to_string(),
    }
}

/// Writes `json` pretty-printed, through one buffer: the standard output is line-buffered,
/// so writing to it directly costs one system call per line (a million for a 700 KB stream).
pub fn write_pretty(out: impl std::io::Write, json: &J) -> std::io::Result<()> {
    use std::io::Write;
    let mut out = std::io::BufWriter::with_capacity(64 << 10, out);
    serde_json::to_writer_pretty(&mut out, json)?;
    writeln!(out)?;
    out.flush()
}

/// Decoder options for dumps: no size limit (the input is the user's own file), the
/// default no-default-fields list plus `extra` classes.
pub fn options(extra: &[String]) -> DecodeOptions {
    let mut o = DecodeOptions {
        limits: Limits {
            max_total_bytes: usize::MAX,
            ..Limits::DEFAULT
        },
        ..DecodeOptions::default()
    };
    o.no_default_fields.extend(extra.iter().cloned());
    o
}

/// Dumps `bytes` as JSON. Accepted inputs:
/// * one serialization stream, or several back to back (`{"streams": [...]}`);
/// * a capture of remoting chunk frames (2-byte headers, §4.2 of the protocol notes), whose
///   commands are each one stream (`{"commands": [...]}`).
///
/// Byte arrays that themselves hold a stream (remoting's nested request/response bytes) are
/// decoded too, under `"nested_stream"`.
pub fn dump(bytes: &[u8], opts: &DecodeOptions) -> Result<J, DumpError> {
    if bytes.is_empty() {
        return Err(DumpError {
            offset: 0,
            message: "empty input: expected a Java serialization stream (ac ed 00 05 …) or remoting chunk frames".into(),
        });
    }
    if bytes.starts_with(&tc::HEADER[..2]) {
        let mut streams = streams(bytes, 0, opts)?;
        return Ok(if streams.len() == 1 {
            streams.remove(0)
        } else {
            json!({ "streams": streams })
        });
    }
    commands(bytes, opts)
}

fn streams(bytes: &[u8], base: usize, opts: &DecodeOptions) -> Result<Vec<J>, DumpError> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < bytes.len() {
        let (stream, used) =
            javaser::decode_prefix(&bytes[pos..], opts).map_err(|e| shift(e, base + pos))?;
        let mut j = debug_json(&stream);
        expand_nested(&mut j, 0, opts);
        out.push(j);
        pos += used;
    }
    Ok(out)
}

fn commands(bytes: &[u8], opts: &DecodeOptions) -> Result<J, DumpError> {
    let mut out = Vec::new();
    let mut pos = 0;
    let mut payload = Vec::new();
    let mut start = 0;
    while pos < bytes.len() {
        if bytes.len() - pos < 2 {
            return Err(DumpError {
                offset: pos,
                message: "input is neither a serialization stream (no ac ed header) nor complete remoting chunk frames: 1 stray byte at the end".into(),
            });
        }
        let h = u16::from_be_bytes([bytes[pos], bytes[pos + 1]]);
        let len = (h & 0x7fff) as usize;
        let more = h & 0x8000 != 0;
        if payload.is_empty() {
            start = pos + 2;
        }
        if bytes.len() - pos - 2 < len {
            return Err(DumpError {
                offset: pos,
                message: format!(
                    "input is neither a serialization stream (no ac ed header) nor complete remoting chunk frames: frame of {len} bytes but {} left",
                    bytes.len() - pos - 2
                ),
            });
        }
        payload.extend_from_slice(&bytes[pos + 2..pos + 2 + len]);
        pos += 2 + len;
        if !more {
            let command = std::mem::take(&mut payload);
            if !command.starts_with(&tc::HEADER) {
                return Err(DumpError {
                    offset: start,
                    message: "remoting command does not start with a serialization stream header (ac ed 00 05)".into(),
                });
            }
            // Offsets inside a multi-chunk command are relative to its first payload byte.
            let mut s = streams(&command, start, opts)?;
            out.push(if s.len() == 1 {
                s.remove(0)
            } else {
                json!({ "streams": s })
            });
        }
    }
    if !payload.is_empty() {
        return Err(DumpError {
            offset: pos,
            message: "input ends inside a remoting command (last frame has the more-chunks bit)"
                .into(),
        });
    }
    Ok(json!({ "commands": out }))
}

/// Replaces `{"hex": …}` of byte arrays holding a whole stream with the decoded stream too.
fn expand_nested(j: &mut J, depth: usize, opts: &DecodeOptions) {
    if depth > 8 {
        return;
    }
    match j {
        J::Object(m) => {
            let nested = match m.get("hex") {
                Some(J::String(h)) if h.starts_with("aced0005") => hex_decode(h).and_then(|b| {
                    javaser::decode(&b, opts).ok().map(|s| {
                        let mut d = debug_json(&s);
                        expand_nested(&mut d, depth + 1, opts);
                        d
                    })
                }),
                _ => None,
            };
            if let Some(n) = nested {
                m.insert("nested_stream".into(), n);
            }
            for (k, v) in m.iter_mut() {
                if k != "nested_stream" {
                    expand_nested(v, depth, opts);
                }
            }
        }
        J::Array(a) => a.iter_mut().for_each(|v| expand_nested(v, depth, opts)),
        _ => {}
    }
}

fn hex_decode(h: &str) -> Option<Vec<u8>> {
    let b = h.as_bytes();
    if !b.len().is_multiple_of(2) {
        return None;
    }
    b.chunks(2)
        .map(|p| {
            let d = |c: u8| (c as char).to_digit(16);
            Some((d(p[0])? * 16 + d(p[1])?) as u8)
        })
        .collect()
}

#[cfg(test)]
mod tests {

    #[test]
    fn pretty_output_is_written_in_large_blocks_not_per_line() {
        struct Counting(usize, usize);
        impl std::io::Write for Counting {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0 += 1;
                self.1 += b.len();
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let big: Vec<J> = (0..40_000).map(|i| json!({ "n": i })).collect();
        let mut w = Counting(0, 0);
        write_pretty(&mut w, &J::Array(big)).unwrap();
        let (calls, bytes) = (w.0, w.1);
        assert!(bytes > 500_000, "{bytes}");
        assert!(
            calls <= bytes / (64 << 10) + 2,
            "{calls} writes for {bytes} bytes"
        );
    }
    use super::*;

    #[test]
    fn dumps_a_string_stream() {
        let j = dump(b"\xac\xed\x00\x05\x74\x00\x02hi", &options(&[])).unwrap();
        assert_eq!(j["items"][0]["str"], "hi");
    }

    #[test]
    fn malformed_input_reports_the_offset() {
        let e = dump(b"\xac\xed\x00\x05\x73\x72\x00\x05", &options(&[])).unwrap_err();
        assert_eq!(e.offset, 8);
        assert!(e.to_string().contains("byte 8"), "{e}");
    }

    #[test]
    fn reads_chunk_framed_commands() {
        let stream = b"\xac\xed\x00\x05\x74\x00\x02hi";
        let mut capture = vec![0x80, 4];
        capture.extend_from_slice(&stream[..4]);
        capture.extend_from_slice(&[0, 5]);
        capture.extend_from_slice(&stream[4..]);
        let j = dump(&capture, &options(&[])).unwrap();
        assert_eq!(j["commands"][0]["items"][0]["str"], "hi");
    }
}
