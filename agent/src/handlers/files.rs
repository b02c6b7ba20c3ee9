//! `FilePath` callables that move bytes through remote streams: `FilePath$CopyTo` (the agent
//! writes a file into a controller `RemoteOutputStream`, then closes it) and
//! `FilePath$WritePipe` (the agent exports a file for the controller to write into).

use std::io::Read;

use super::{value, Remote};
use crate::javaser::{Block, Builder, Content, Entry, Heap, Registry, Value};
use crate::remoting::{classes, command, Answer};

/// Chunk payload size for files: half the 1 MiB window, as remoting's own writer allows.
/// The controller's cost is mostly per command, so big chunks carry a file at several times
/// the rate of agent.jar's 8 KiB ones (see the README), and the window keeps the agent's
/// memory flat whatever the size.
const CHUNK: usize = 512 << 10;

/// The oid in a `RemoteOutputStream` object: its `writeObject` data is one int.
pub fn remote_output_stream_oid(heap: &Heap, v: Value) -> Option<i32> {
    let id = v.as_ref()?;
    if !heap.class_name(id)?.eq_str(classes::REMOTE_OUTPUT_STREAM) {
        return None;
    }
    let data = block_data(heap, id);
    Some(i32::from_be_bytes(data.get(..4)?.try_into().ok()?))
}

/// The first `RemoteOutputStream` among the fields of object `obj`.
fn find_sink(heap: &Heap, obj: Value) -> Option<i32> {
    let Some(Entry::Object(o)) = obj.as_ref().and_then(|id| heap.get(id)) else {
        return None;
    };
    o.class_data
        .iter()
        .flat_map(|cd| cd.fields.iter().flatten())
        .find_map(|v| remote_output_stream_oid(heap, *v))
}

/// The `(writer, oid)` of a `hudson.remoting.Pipe` among the fields of object `obj`: its
/// `writeObject` data is a boolean (true: the receiver writes) and an int.
fn find_pipe(heap: &Heap, obj: Value) -> Option<(bool, i32)> {
    let Some(Entry::Object(o)) = obj.as_ref().and_then(|id| heap.get(id)) else {
        return None;
    };
    o.class_data
        .iter()
        .flat_map(|cd| cd.fields.iter().flatten())
        .find_map(|v| {
            let id = v.as_ref()?;
            if !heap.class_name(id)?.eq_str("hudson.remoting.Pipe") {
                return None;
            }
            let data = block_data(heap, id);
            let oid = i32::from_be_bytes(data.get(1..5)?.try_into().ok()?);
            Some((*data.first()? != 0, oid))
        })
}

/// All `writeObject` block data of object `id`, concatenated.
pub(crate) fn block_data(heap: &Heap, id: crate::javaser::Id) -> Vec<u8> {
    let Some(Entry::Object(o)) = heap.get(id) else {
        return Vec::new();
    };
    o.class_data
        .iter()
        .flat_map(|cd| cd.annotation.iter().flatten())
        .filter_map(|c| match c {
            Content::Block(b) => Some(b.data.clone()),
            _ => None,
        })
        .flatten()
        .collect()
}

/// Sends the bytes of `path` to the controller's stream `oid` as chunks; stops when the call
/// is cancelled.
fn stream_file(path: &str, oid: i32, remote: &dyn Remote, request_id: i32) -> std::io::Result<()> {
    let mut f = std::fs::File::open(path)?;
    let mut buf = vec![0u8; CHUNK];
    loop {
        if remote.is_cancelled() {
            return Err(std::io::Error::other("cancelled by the controller"));
        }
        let n = f.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        remote.reserve(oid, n).map_err(std::io::Error::other)?;
        let io = remote.next_io_id();
        remote
            .send(command::stream_chunk(io, oid, request_id, &buf[..n]))
            .map_err(std::io::Error::other)?;
    }
}

/// Closes the controller's stream `oid` (`ProxyOutputStream$EOF`), with the error that ended
/// it if any. Best effort: a closed connection has nothing left to close.
fn close_stream(
    remote: &dyn Remote,
    oid: i32,
    request_id: i32,
    error: Option<command::StreamError<'_>>,
) {
    let io = remote.next_io_id();
    let _ = remote.send(command::stream_eof(
        remote.registry(),
        io,
        oid,
        request_id,
        error,
    ));
    remote.release(oid);
}

/// `FilePath$CopyTo`: stream `path` into the controller's `RemoteOutputStream`, then EOF it
/// (in every case: CopyTo's Java code closes it too).
pub fn copy_to(
    path: &str,
    heap: &Heap,
    callable: Value,
    remote: &dyn Remote,
    request_id: i32,
) -> Answer {
    let Some(oid) = find_sink(heap, callable) else {
        return Answer::io_error("FilePath$CopyTo without a RemoteOutputStream");
    };
    let result = stream_file(path, oid, remote, request_id);
    close_stream(remote, oid, request_id, None);
    match result {
        Ok(()) => Answer::null(),
        Err(e) => Answer::io_error(format!("cannot copy {path}: {e}")),
    }
}

/// `FilePath$Read` (readFile): stream `path` into the controller's end of a remote-to-local
/// pipe and close it; a failure travels in the EOF (`NoSuchFileException` for a missing
/// file), as the Java agent does. Returns Void.
pub fn read(
    path: &str,
    heap: &Heap,
    callable: Value,
    remote: &dyn Remote,
    request_id: i32,
) -> Answer {
    let Some((true, oid)) = find_pipe(heap, callable) else {
        return Answer::io_error("FilePath$Read without a remote-to-local Pipe");
    };
    let result = stream_file(path, oid, remote, request_id);
    let text = result
        .as_ref()
        .err()
        .map(|e| format!("cannot read {path}: {e}"))
        .unwrap_or_default();
    let error = result.as_ref().err().map(|e| match e.kind() {
        std::io::ErrorKind::NotFound => command::StreamError {
            class: "java.nio.file.NoSuchFileException",
            message: path,
        },
        _ => command::StreamError {
            class: "java.io.IOException",
            message: &text,
        },
    });
    close_stream(remote, oid, request_id, error);
    Answer::null()
}

/// `FilePath$WritePipe`: create `path` (and its parents), export it, return the
/// `RemoteOutputStream` the controller then writes into.
pub fn write_pipe(path: &str, registry: &Registry, remote: &dyn Remote) -> Answer {
    let file = std::path::Path::new(path)
        .parent()
        .map_or(Ok(()), std::fs::create_dir_all)
        .and_then(|()| std::fs::File::create(path));
    let file = match file {
        Ok(f) => f,
        Err(e) => return Answer::io_error(format!("cannot open {path} for writing: {e}")),
    };
    let oid = remote.export(file);
    let mut b = Builder::new(registry);
    let ros = match b
        .object(classes::REMOTE_OUTPUT_STREAM, &[])
        .and_then(|ros| {
            b.set_data(
                ros,
                classes::REMOTE_OUTPUT_STREAM,
                vec![Content::Block(Block::new(oid.to_be_bytes().to_vec()))],
            )
            .map(|()| ros)
        }) {
        Ok(v) => v,
        Err(e) => return Answer::io_error(e.to_string()),
    };
    value(b, ros)
}
