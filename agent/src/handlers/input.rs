//! Reading the controller's `RemoteInputStream`s (remoting-protocol.md §5.7): a greedy one
//! arrives as a local-to-remote `Pipe` (the agent exports a sink, sends
//! `Pipe$ConnectCommand`, and the controller pushes chunks into it under its window); any other
//! as the oid of an InputStream the agent pulls with `ProxyInputStream$Chunk` requests.

use std::io::{self, Read};
use std::sync::Arc;

use super::Remote;
use crate::javaser::{Content, Entry, Heap, Value};
use crate::remoting::{classes, command};
use crate::streams::Pipe;

/// Bytes asked for by each pull (`ProxyInputStream$Chunk.len`).
pub const PULL_SIZE: i32 = 256 << 10;

/// How a `RemoteInputStream` object says it will deliver its bytes.
#[derive(Debug, PartialEq, Eq)]
pub enum InputForm {
    /// Greedy: a local-to-remote pipe whose pending writer is the controller's `oid_ros`.
    Pushed {
        /// `Pipe$ConnectCommand.oidRos`.
        oid_ros: i32,
    },
    /// The controller's exported InputStream `oid`, read by pulls.
    Pulled {
        /// The export.
        oid: i32,
    },
}

/// Reads the `writeObject` data of a `RemoteInputStream` object: `[greedy: bool]` (only when
/// the agent advertised GREEDY_REMOTE_INPUTSTREAM), then a `Pipe` object (greedy) or an int.
pub fn input_form(heap: &Heap, v: Value) -> Result<InputForm, String> {
    let id = v.as_ref().ok_or("the RemoteInputStream is null")?;
    let Some(Entry::Object(o)) = heap.get(id) else {
        return Err("the RemoteInputStream is not an object".into());
    };
    if !heap
        .class_name(id)
        .is_some_and(|n| n.eq_str(classes::REMOTE_INPUT_STREAM))
    {
        return Err("expected a hudson.remoting.RemoteInputStream".into());
    }
    let mut prefix = Vec::new();
    let mut object = None;
    for c in o
        .class_data
        .iter()
        .flat_map(|cd| cd.annotation.iter().flatten())
    {
        match c {
            Content::Block(b) if object.is_none() => prefix.extend_from_slice(&b.data),
            Content::Value(v) if object.is_none() => object = Some(*v),
            _ => return Err("unexpected data after the RemoteInputStream's pipe".into()),
        }
    }
    let int_at = |at: usize| {
        prefix
            .get(at..at + 4)
            .map(|b| i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    };
    match (prefix.as_slice(), object) {
        ([1], Some(pipe)) => {
            let pid = pipe
                .as_ref()
                .ok_or("the greedy RemoteInputStream's pipe is null")?;
            if !heap
                .class_name(pid)
                .is_some_and(|n| n.eq_str(classes::PIPE))
            {
                return Err("a greedy RemoteInputStream without a hudson.remoting.Pipe".into());
            }
            match super::view::Obj::of(heap, Value::Ref(pid))
                .map(|o| o.block_data())
                .unwrap_or_default()
                .as_slice()
            {
                [0, a, b, c, d] => Ok(InputForm::Pushed {
                    oid_ros: i32::from_be_bytes([*a, *b, *c, *d]),
                }),
                _ => {
                    Err("the greedy RemoteInputStream's pipe is not a local-to-remote pipe".into())
                }
            }
        }
        ([0, ..], None) if prefix.len() == 5 => Ok(InputForm::Pulled {
            oid: int_at(1).unwrap_or_default(),
        }),
        (_, None) if prefix.len() == 4 => Ok(InputForm::Pulled {
            oid: int_at(0).unwrap_or_default(),
        }),
        _ => Err(format!(
            "unreadable RemoteInputStream data ({} bytes{})",
            prefix.len(),
            if object.is_some() {
                " and an object"
            } else {
                ""
            }
        )),
    }
}

/// The agent's reading end of a controller `RemoteInputStream`. Dropping it before the end
/// tells the controller: `NotifyDeadWriter` for a pipe, `ProxyInputStream$EOF` for pulls.
pub struct RemoteInput<'a> {
    remote: &'a dyn Remote,
    source: Source,
    buf: Vec<u8>,
    pos: usize,
    done: bool,
}

enum Source {
    Pipe(Arc<Pipe>),
    Pull(i32),
}

impl<'a> RemoteInput<'a> {
    /// Opens `form`: for a pushed stream, exports the pipe and connects it.
    pub fn open(form: InputForm, remote: &'a dyn Remote) -> Result<RemoteInput<'a>, String> {
        let source = match form {
            InputForm::Pushed { oid_ros } => {
                let pipe = remote.export_pipe();
                if let Err(e) = remote.send(command::pipe_connect(
                    remote.registry(),
                    pipe.oid(),
                    oid_ros,
                )) {
                    remote.unexport(pipe.oid());
                    return Err(e);
                }
                Source::Pipe(pipe)
            }
            InputForm::Pulled { oid } => Source::Pull(oid),
        };
        Ok(RemoteInput {
            remote,
            source,
            buf: Vec::new(),
            pos: 0,
            done: false,
        })
    }

    /// Next bytes from the source, `None` at its end.
    fn fill(&mut self) -> Result<Option<Vec<u8>>, String> {
        match &self.source {
            Source::Pipe(p) => {
                let data = p.take(&|| self.remote.is_cancelled())?;
                if let Some(d) = &data {
                    // Taken off the queue: the controller may send that much more.
                    self.remote.send(command::stream_ack(
                        self.remote.registry(),
                        p.oid(),
                        d.len() as i32,
                    ))?;
                }
                Ok(data)
            }
            Source::Pull(oid) => {
                // A peer that keeps answering empty reads would spin: give up after a few.
                for _ in 0..16 {
                    match self.remote.read_input(*oid, PULL_SIZE)? {
                        Some(d) if d.is_empty() => continue,
                        Some(d) if d.len() > PULL_SIZE as usize => {
                            return Err(format!(
                                "the controller returned {} bytes for a read of {PULL_SIZE}",
                                d.len()
                            ))
                        }
                        other => return Ok(other),
                    }
                }
                Err("the controller's stream keeps returning empty reads".into())
            }
        }
    }
}

impl Read for RemoteInput<'_> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if out.is_empty() {
            return Ok(0);
        }
        while self.pos == self.buf.len() {
            if self.done {
                return Ok(0);
            }
            match self.fill().map_err(io::Error::other)? {
                Some(d) => {
                    self.buf = d;
                    self.pos = 0;
                }
                None => self.done = true,
            }
        }
        let n = out.len().min(self.buf.len() - self.pos);
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

impl Drop for RemoteInput<'_> {
    fn drop(&mut self) {
        let reg = self.remote.registry();
        match &self.source {
            Source::Pipe(p) => {
                let (queued, open) = p.abandon();
                self.remote.unexport(p.oid());
                if open {
                    // Ack what was never read so the controller is not left waiting, then
                    // tell it the reader is gone.
                    if queued > 0 {
                        let _ = self
                            .remote
                            .send(command::stream_ack(reg, p.oid(), queued as i32));
                    }
                    let _ = self.remote.send(command::stream_dead(reg, p.oid()));
                }
            }
            // Java's ProxyInputStream.close: the controller closes and unexports its stream.
            Source::Pull(oid) => {
                let _ = self.remote.send(command::input_eof(reg, *oid));
            }
        }
    }
}
