//! The streams of one connection, shared by the connection task and the handler threads
//! (remoting-protocol.md §5.6–§5.8):
//! * the agent's exports the controller writes into: files (`FilePath$WritePipe`) and pipes a
//!   handler reads from (the agent's end of a local-to-remote `Pipe`, [`Pipe`]);
//! * the send windows of the controller's streams the agent writes into (PIPE_THROTTLING: a
//!   writer may have at most [`capability::PIPE_WINDOW`] bytes not yet acked).
//!
//! The connection task feeds it from channel events and never blocks on a handler; handlers
//! block on it (a window with no room, a pipe with no data) and wake on acks, data, the end of
//! the stream, cancellation or the loss of the connection.

use std::collections::{HashMap, VecDeque};
use std::fs::File;
use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use crate::remoting::capability;

/// Most bytes a pipe holds for its reader. The controller's window is 1 MiB, so only a
/// controller ignoring its window reaches this; the stream is then failed, not buffered.
pub const PIPE_LIMIT: usize = 8 << 20;

/// How often a blocked handler looks at its cancellation flag.
const POLL: Duration = Duration::from_millis(200);

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A local InputStream the controller reads (`ProxyInputStream$Chunk`): process output.
type Input = Arc<Mutex<Box<dyn std::io::Read + Send>>>;

enum Export {
    File(File),
    Pipe(Arc<Pipe>),
    Input(Input),
}

/// What became of bytes the controller wrote into an agent export.
#[derive(Debug, PartialEq, Eq)]
pub enum Written {
    /// Written: ack them now.
    Applied,
    /// Queued for a pipe's reader, which acks them as it takes them.
    Queued,
    /// Dropped: ack them anyway (the controller's window must not stall) and, if `notify`,
    /// tell the controller with `NotifyDeadWriter` that the stream is dead.
    Dropped {
        /// Send `NotifyDeadWriter` (once per stream).
        notify: bool,
        /// Why, for the log.
        reason: String,
    },
}

struct Window {
    available: i64,
    dead: bool,
}

/// The stream state of one connection.
pub struct Streams {
    /// Writers wait for acks (the controller advertised PIPE_THROTTLING, so it acks).
    windowed: bool,
    io_id: AtomicI32,
    next_oid: AtomicI32,
    exports: Mutex<HashMap<i32, Export>>,
    windows: Mutex<HashMap<i32, Window>>,
    window_changed: Condvar,
    closed: AtomicBool,
}

impl Default for Streams {
    fn default() -> Self {
        Streams::new(true)
    }
}

impl Streams {
    /// Stream state for a connection; `windowed` when the controller advertised
    /// PIPE_THROTTLING. As in remoting, a writer keeps a window only if its reader acks.
    pub fn new(windowed: bool) -> Self {
        Streams {
            windowed,
            io_id: AtomicI32::new(0),
            next_oid: AtomicI32::new(0),
            exports: Mutex::new(HashMap::new()),
            windows: Mutex::new(HashMap::new()),
            window_changed: Condvar::new(),
            closed: AtomicBool::new(false),
        }
    }

    /// The next I/O id (`ProxyOutputStream` commands are applied in this order).
    pub fn next_io_id(&self) -> i32 {
        self.io_id.fetch_add(1, Ordering::SeqCst) + 1
    }

    /// A new export id (streams and the objects handlers export share one counter).
    pub fn new_oid(&self) -> i32 {
        // Oid 1 is the channel itself (remoting's convention); ours start above it.
        self.next_oid.fetch_add(1, Ordering::SeqCst) + 2
    }

    /// Exports a file for the controller to write into; returns its oid.
    pub fn export_file(&self, file: File) -> i32 {
        let oid = self.new_oid();
        lock(&self.exports).insert(oid, Export::File(file));
        oid
    }

    /// Exports a new pipe for the controller to write into; a handler reads it.
    pub fn export_pipe(&self) -> Arc<Pipe> {
        let oid = self.new_oid();
        let pipe = Arc::new(Pipe::new(oid));
        if self.closed.load(Ordering::SeqCst) {
            pipe.finish(Err("the connection is closed".into()));
        }
        lock(&self.exports).insert(oid, Export::Pipe(pipe.clone()));
        pipe
    }

    /// Exports a local InputStream for the controller to read with pulls; returns its oid.
    pub fn export_input(&self, source: Box<dyn std::io::Read + Send>) -> i32 {
        let oid = self.new_oid();
        lock(&self.exports).insert(oid, Export::Input(Arc::new(Mutex::new(source))));
        oid
    }

    /// Reads up to `len` bytes (at most 1 MiB) of the exported InputStream `oid` for the
    /// controller: `None` at its end. Blocks until bytes come; call it off the connection
    /// task.
    pub fn read_export(&self, oid: i32, len: i32) -> Result<Option<Vec<u8>>, String> {
        let input = match lock(&self.exports).get(&oid) {
            Some(Export::Input(i)) => i.clone(),
            Some(_) => return Err(format!("export {oid} is not an InputStream")),
            None => return Err(format!("no exported InputStream {oid} (already closed)")),
        };
        let mut buf = vec![0u8; len.clamp(1, 1 << 20) as usize];
        let n = lock(&input)
            .read(&mut buf)
            .map_err(|e| format!("reading exported stream {oid}: {e}"))?;
        if n == 0 {
            return Ok(None);
        }
        buf.truncate(n);
        Ok(Some(buf))
    }

    /// Forgets export `oid` (its reader went away).
    pub fn unexport(&self, oid: i32) {
        lock(&self.exports).remove(&oid);
    }

    /// Bytes the controller wrote into export `oid` (`ProxyOutputStream$Chunk`).
    pub fn write(&self, oid: i32, data: &[u8]) -> Written {
        let mut exports = lock(&self.exports);
        match exports.get_mut(&oid) {
            Some(Export::File(f)) => match tokio::task::block_in_place(|| f.write_all(data)) {
                Ok(()) => Written::Applied,
                Err(e) => {
                    exports.remove(&oid);
                    Written::Dropped {
                        notify: true,
                        reason: format!("writing to exported file {oid} failed: {e}"),
                    }
                }
            },
            Some(Export::Input(_)) => Written::Dropped {
                notify: true,
                reason: format!("export {oid} is an InputStream, not an OutputStream"),
            },
            Some(Export::Pipe(p)) => match p.push(data) {
                Ok(()) => Written::Queued,
                Err(reason) => {
                    exports.remove(&oid);
                    Written::Dropped {
                        notify: true,
                        reason,
                    }
                }
            },
            None => Written::Dropped {
                notify: false,
                reason: format!("no exported stream {oid} (already closed or never exported)"),
            },
        }
    }

    /// `ProxyOutputStream$Flush`.
    pub fn flush(&self, oid: i32) -> std::io::Result<()> {
        match lock(&self.exports).get_mut(&oid) {
            Some(Export::File(f)) => f.flush(),
            _ => Ok(()),
        }
    }

    /// `ProxyOutputStream$EOF` (`close`, with the writer's `error` if it failed) or
    /// `$Unexport`/`UnexportCommand` (release without closing).
    pub fn end(&self, oid: i32, close: bool, error: Option<String>) -> std::io::Result<()> {
        let export = lock(&self.exports).remove(&oid);
        match export {
            Some(Export::File(f)) if close => f.sync_all(),
            Some(Export::File(_)) | Some(Export::Input(_)) | None => Ok(()),
            Some(Export::Pipe(p)) => {
                p.finish(match (close, error) {
                    (true, None) => Ok(()),
                    (true, Some(e)) => Err(format!("the controller's writer failed: {e}")),
                    (false, _) => {
                        Err("the controller released the stream without closing it".into())
                    }
                });
                Ok(())
            }
        }
    }

    /// Waits until `n` more bytes may be written into the controller's stream `oid`, and
    /// takes them from its window. Fails when the stream died, the call was cancelled or the
    /// connection closed.
    pub fn reserve(&self, oid: i32, n: usize, cancelled: &dyn Fn() -> bool) -> Result<(), String> {
        let n = (n as i64).min(capability::PIPE_WINDOW);
        let mut windows = lock(&self.windows);
        loop {
            if self.closed.load(Ordering::SeqCst) {
                return Err("the connection is closed".into());
            }
            if cancelled() {
                return Err("cancelled by the controller".into());
            }
            let w = windows.entry(oid).or_insert(Window {
                available: capability::PIPE_WINDOW,
                dead: false,
            });
            if w.dead {
                return Err(format!(
                    "the controller's stream {oid} is closed (its writer was told it is dead)"
                ));
            }
            if !self.windowed {
                return Ok(());
            }
            if w.available >= n {
                w.available -= n;
                return Ok(());
            }
            windows = self
                .window_changed
                .wait_timeout(windows, POLL)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    /// The agent is done writing into the controller's stream `oid` (EOF or Unexport sent).
    pub fn release(&self, oid: i32) {
        lock(&self.windows).remove(&oid);
    }

    /// Bytes the agent's writers sent into the controller's stream `oid` that the controller
    /// has not acked yet (the JVM helper's relay routes acks with it).
    pub fn unacked(&self, oid: i32) -> i64 {
        lock(&self.windows)
            .get(&oid)
            .map(|w| (capability::PIPE_WINDOW - w.available).max(0))
            .unwrap_or(0)
    }

    /// `ProxyOutputStream$Ack`: the controller consumed `size` bytes of its stream `oid`.
    pub fn ack(&self, oid: i32, size: i32) {
        if let Some(w) = lock(&self.windows).get_mut(&oid) {
            w.available = w.available.saturating_add(size.max(0) as i64);
            self.window_changed.notify_all();
        }
    }

    /// `ProxyOutputStream$NotifyDeadWriter`: the controller's stream `oid` failed.
    pub fn dead(&self, oid: i32) {
        lock(&self.windows)
            .entry(oid)
            .or_insert(Window {
                available: 0,
                dead: true,
            })
            .dead = true;
        self.window_changed.notify_all();
    }

    /// The connection is gone: every blocked writer and reader fails.
    pub fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        for (_, e) in lock(&self.exports).drain() {
            if let Export::Pipe(p) = e {
                p.finish(Err("the connection to the controller was lost".into()));
            }
        }
        let _guard = lock(&self.windows);
        self.window_changed.notify_all();
    }
}

#[derive(Default)]
struct PipeState {
    queue: VecDeque<Vec<u8>>,
    queued: usize,
    end: Option<Result<(), String>>,
    reader_gone: bool,
}

/// The agent's end of a local-to-remote pipe: the controller's chunks queue here until the
/// reading handler takes them (and acks them, so the controller's window bounds the queue).
pub struct Pipe {
    oid: i32,
    state: Mutex<PipeState>,
    changed: Condvar,
}

impl Pipe {
    fn new(oid: i32) -> Pipe {
        Pipe {
            oid,
            state: Mutex::new(PipeState::default()),
            changed: Condvar::new(),
        }
    }

    /// A pipe that is not exported and already ended with `reason`: reading it fails.
    pub fn failed(reason: &str) -> Arc<Pipe> {
        let p = Pipe::new(0);
        p.finish(Err(reason.into()));
        Arc::new(p)
    }

    /// The export id the controller writes into (`Pipe$ConnectCommand.oidPos`).
    pub fn oid(&self) -> i32 {
        self.oid
    }

    fn push(&self, data: &[u8]) -> Result<(), String> {
        let mut s = lock(&self.state);
        if s.reader_gone {
            return Err(format!("the reader of pipe {} is gone", self.oid));
        }
        if s.end.is_some() {
            return Err(format!("pipe {} was already closed", self.oid));
        }
        if s.queued + data.len() > PIPE_LIMIT {
            let reason = format!(
                "the controller wrote more than {PIPE_LIMIT} bytes into pipe {} without waiting for acks",
                self.oid
            );
            s.end = Some(Err(reason.clone()));
            self.changed.notify_all();
            return Err(reason);
        }
        if !data.is_empty() {
            s.queued += data.len();
            s.queue.push_back(data.to_vec());
            self.changed.notify_all();
        }
        Ok(())
    }

    fn finish(&self, result: Result<(), String>) {
        let mut s = lock(&self.state);
        if s.end.is_none() {
            s.end = Some(result);
        }
        self.changed.notify_all();
    }

    /// The next bytes, `None` at the end of the stream; waits for them. Fails if the
    /// controller's writer failed, the connection was lost, or `cancelled()` turns true.
    pub fn take(&self, cancelled: &dyn Fn() -> bool) -> Result<Option<Vec<u8>>, String> {
        let mut s = lock(&self.state);
        loop {
            if let Some(data) = s.queue.pop_front() {
                s.queued -= data.len();
                return Ok(Some(data));
            }
            match &s.end {
                Some(Ok(())) => return Ok(None),
                Some(Err(e)) => return Err(e.clone()),
                None => {}
            }
            if cancelled() {
                return Err("cancelled by the controller".into());
            }
            s = self
                .changed
                .wait_timeout(s, POLL)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    /// The reader stops reading. Returns the bytes still queued (to ack) and whether the
    /// stream had not ended, in which case the controller must be told it is dead.
    pub fn abandon(&self) -> (usize, bool) {
        let mut s = lock(&self.state);
        s.reader_gone = true;
        let queued = std::mem::take(&mut s.queued);
        s.queue.clear();
        (queued, s.end.is_none())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn never() -> bool {
        false
    }

    #[test]
    fn a_writer_waits_for_acks_once_its_window_is_used() {
        let s = Arc::new(Streams::default());
        let window = capability::PIPE_WINDOW as usize;
        for _ in 0..window / 65536 {
            s.reserve(7, 65536, &never).unwrap();
        }
        let t = {
            let s = s.clone();
            std::thread::spawn(move || s.reserve(7, 65536, &never))
        };
        std::thread::sleep(Duration::from_millis(100));
        assert!(
            !t.is_finished(),
            "the window is used up: the writer must wait"
        );
        s.ack(7, 65536);
        assert_eq!(t.join().unwrap(), Ok(()));
    }

    #[test]
    fn without_pipe_throttling_a_writer_never_waits_but_still_sees_a_dead_stream() {
        let s = Streams::new(false);
        for _ in 0..64 {
            s.reserve(7, 1 << 20, &never).unwrap();
        }
        s.dead(7);
        assert!(s.reserve(7, 1, &never).is_err());
    }

    #[test]
    fn a_dead_stream_or_a_lost_connection_wakes_the_writer_with_an_error() {
        let s = Arc::new(Streams::default());
        s.reserve(3, capability::PIPE_WINDOW as usize, &never)
            .unwrap();
        let t = {
            let s = s.clone();
            std::thread::spawn(move || s.reserve(3, 1, &never))
        };
        s.dead(3);
        assert!(t.join().unwrap().unwrap_err().contains("closed"));
        s.reserve(4, capability::PIPE_WINDOW as usize, &never)
            .unwrap();
        let t = {
            let s = s.clone();
            std::thread::spawn(move || s.reserve(4, 1, &never))
        };
        s.close();
        assert!(t.join().unwrap().unwrap_err().contains("connection"));
    }

    #[test]
    fn a_pipe_hands_over_bytes_in_order_then_its_end() {
        let s = Streams::default();
        let p = s.export_pipe();
        assert_eq!(s.write(p.oid(), b"ab"), Written::Queued);
        assert_eq!(s.write(p.oid(), b"c"), Written::Queued);
        s.end(p.oid(), true, None).unwrap();
        assert_eq!(p.take(&never), Ok(Some(b"ab".to_vec())));
        assert_eq!(p.take(&never), Ok(Some(b"c".to_vec())));
        assert_eq!(p.take(&never), Ok(None));
        assert!(
            matches!(
                s.write(p.oid(), b"x"),
                Written::Dropped { notify: false, .. }
            ),
            "a closed export takes no more bytes"
        );
    }

    #[test]
    fn a_pipe_carries_the_writers_error_and_refuses_an_overrun() {
        let s = Streams::default();
        let p = s.export_pipe();
        s.end(p.oid(), true, Some("java.io.IOException: disk".into()))
            .unwrap();
        assert!(p.take(&never).unwrap_err().contains("disk"));
        let q = s.export_pipe();
        let big = vec![0u8; PIPE_LIMIT];
        assert_eq!(s.write(q.oid(), &big), Written::Queued);
        assert!(matches!(
            s.write(q.oid(), b"x"),
            Written::Dropped { notify: true, .. }
        ));
        assert!(q.take(&never).is_ok(), "queued bytes are still delivered");
        assert!(q.take(&never).unwrap_err().contains("without waiting"));
    }

    #[test]
    fn an_abandoned_pipe_reports_what_to_ack_and_that_the_writer_must_stop() {
        let s = Streams::default();
        let p = s.export_pipe();
        s.write(p.oid(), b"abc");
        assert_eq!(p.abandon(), (3, true));
        assert!(matches!(
            s.write(p.oid(), b"x"),
            Written::Dropped { notify: true, .. }
        ));
    }

    #[test]
    fn a_lost_connection_ends_every_pipe_with_an_error() {
        let s = Streams::default();
        let p = s.export_pipe();
        s.close();
        assert!(p.take(&never).unwrap_err().contains("lost"));
        let late = s.export_pipe();
        assert!(late.take(&never).is_err());
    }
}
