//! Writing into a stream the controller exported (`RemoteOutputStream`, the writing end of a
//! remote-to-local `Pipe`): bytes become `ProxyOutputStream$Chunk`s within the stream's window,
//! and the stream ends with `$EOF` (close) or `$Unexport` (release without closing: a build log
//! that other writers share). Releasing is never forgotten: dropping an unfinished sink
//! releases it.

use std::io::{self, Write};

use super::Remote;
use crate::javaser::{Content, Value};
use crate::remoting::{classes, command};

/// Largest chunk: half the 1 MiB window, as remoting's own writer allows (see the README:
/// big chunks carry files at several times agent.jar's rate).
pub const CHUNK: usize = 512 << 10;

/// The oid of a `RemoteOutputStream` object (`writeObject` data: one int).
pub fn remote_output_stream_oid(o: super::view::Obj) -> Option<i32> {
    if o.class() != classes::REMOTE_OUTPUT_STREAM {
        return None;
    }
    let data = o.block_data();
    Some(i32::from_be_bytes(data.get(..4)?.try_into().ok()?))
}

/// The `(writer, oid)` of a `hudson.remoting.Pipe` object: its `writeObject` data is a
/// boolean (true: the receiver writes) and an int.
pub fn pipe_of(o: super::view::Obj) -> Option<(bool, i32)> {
    if o.class() != classes::PIPE {
        return None;
    }
    let data = o.block_data();
    let oid = i32::from_be_bytes(data.get(1..5)?.try_into().ok()?);
    Some((*data.first()? != 0, oid))
}

/// The stream a listener (`TaskListener`: `StreamBuildListener`,
/// `BufferedBuildListener$Replacement`, a decorated listener …) prints to: the first
/// `RemoteOutputStream` in its graph.
pub fn listener_stream(listener: super::view::Obj) -> Option<i32> {
    listener
        .find(classes::REMOTE_OUTPUT_STREAM)
        .and_then(remote_output_stream_oid)
}

/// The controller's output streams anywhere in a callable's graph: `RemoteOutputStream`s and
/// the writing ends (flag true) of remote-to-local `Pipe`s, each once.
pub fn controller_streams(callable: super::view::Obj) -> Vec<i32> {
    let mut out = Vec::new();
    for o in callable.all_objects() {
        let oid = match o.class().as_str() {
            classes::REMOTE_OUTPUT_STREAM => remote_output_stream_oid(o),
            classes::PIPE => match pipe_of(o) {
                Some((true, oid)) => Some(oid),
                _ => None,
            },
            _ => None,
        };
        if let Some(oid) = oid {
            if !out.contains(&oid) {
                out.push(oid);
            }
        }
    }
    out
}

/// A `RemoteOutputStream` object for the agent's export `oid`.
pub fn remote_output_stream(b: &mut crate::javaser::Builder, oid: i32) -> Result<Value, String> {
    let ros = b
        .object(classes::REMOTE_OUTPUT_STREAM, &[])
        .map_err(|e| e.to_string())?;
    b.set_data(
        ros,
        classes::REMOTE_OUTPUT_STREAM,
        vec![Content::Block(crate::javaser::Block::new(
            oid.to_be_bytes().to_vec(),
        ))],
    )
    .map_err(|e| e.to_string())?;
    Ok(ros)
}

/// How a sink ends.
enum End {
    Open,
    Done,
}

/// The agent's writing end of the controller's stream `oid`.
pub struct Sink<'r> {
    remote: &'r dyn Remote,
    oid: i32,
    request_id: i32,
    buf: Vec<u8>,
    /// Bytes buffered before a chunk goes out; 0 sends every write at once (live logs).
    limit: usize,
    state: End,
}

impl<'r> Sink<'r> {
    /// A sink that gathers writes into chunks of [`CHUNK`] bytes (archives, copies).
    pub fn buffered(remote: &'r dyn Remote, oid: i32, request_id: i32) -> Sink<'r> {
        Sink {
            remote,
            oid,
            request_id,
            buf: Vec::new(),
            limit: CHUNK,
            state: End::Open,
        }
    }

    /// A sink that sends every write at once (process output, live logs).
    pub fn live(remote: &'r dyn Remote, oid: i32, request_id: i32) -> Sink<'r> {
        let mut s = Sink::buffered(remote, oid, request_id);
        s.limit = 0;
        s
    }

    /// The controller's stream.
    pub fn oid(&self) -> i32 {
        self.oid
    }

    fn send(&self, mut data: &[u8]) -> io::Result<()> {
        while !data.is_empty() {
            if self.remote.is_cancelled() {
                return Err(io::Error::other("cancelled by the controller"));
            }
            let n = data.len().min(CHUNK);
            self.remote.reserve(self.oid, n).map_err(io::Error::other)?;
            let io = self.remote.next_io_id();
            self.remote
                .send(command::stream_chunk(
                    io,
                    self.oid,
                    self.request_id,
                    &data[..n],
                ))
                .map_err(io::Error::other)?;
            data = &data[n..];
        }
        Ok(())
    }

    fn drain(&mut self) -> io::Result<()> {
        if !self.buf.is_empty() {
            let buf = std::mem::take(&mut self.buf);
            let r = self.send(&buf);
            self.buf = buf;
            self.buf.clear();
            r?;
        }
        Ok(())
    }

    /// Sends what is buffered, then `$EOF` (the controller closes its stream), with `error`
    /// raised on the reading side if given.
    pub fn close(mut self, error: Option<command::StreamError<'_>>) -> io::Result<()> {
        let flushed = if error.is_none() {
            self.drain()
        } else {
            Ok(())
        };
        self.state = End::Done;
        let io = self.remote.next_io_id();
        let sent = self.remote.send(command::stream_eof(
            self.remote.registry(),
            io,
            self.oid,
            self.request_id,
            error,
        ));
        self.remote.release(self.oid);
        flushed?;
        sent.map_err(io::Error::other)
    }

    /// Sends what is buffered, then `$Unexport`: the agent is done with the stream but the
    /// controller keeps it open (a build log).
    pub fn release(mut self) -> io::Result<()> {
        let flushed = self.drain();
        self.finish_release();
        flushed
    }

    /// Sends what is buffered and leaves the stream to someone else: the same stream object
    /// may be used again in this call (a listener that is also the process's stdout), and the
    /// call's clean-up releases it once.
    pub fn leave_open(mut self) -> io::Result<()> {
        let flushed = self.drain();
        self.state = End::Done;
        flushed
    }

    fn finish_release(&mut self) {
        self.state = End::Done;
        let io = self.remote.next_io_id();
        let _ = self.remote.send(command::stream_unexport(
            self.remote.registry(),
            io,
            self.oid,
        ));
        self.remote.release(self.oid);
    }
}

impl Write for Sink<'_> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if self.limit == 0 {
            self.send(data)?;
            return Ok(data.len());
        }
        if self.buf.len() + data.len() > self.limit {
            self.drain()?;
        }
        if data.len() >= self.limit {
            self.send(data)?;
        } else {
            self.buf.extend_from_slice(data);
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.drain()
    }
}

impl Drop for Sink<'_> {
    fn drop(&mut self) {
        if matches!(self.state, End::Open) {
            let _ = self.drain();
            self.finish_release();
        }
    }
}
