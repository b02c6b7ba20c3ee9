//! `FilePath` callables (agent-callables.md §C, §D.2, §D.4, §F): the file operations every
//! build step makes, with the semantics of Jenkins 2.460's `hudson.FilePath` — what a missing
//! file means, which exception a failure raises (`NoSuchFileException`,
//! `AccessDeniedException`, `IOException` with the path), and the streams of `readFile`,
//! `writeFile` (Base64) and copies.

use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use super::sink::{pipe_of, remote_output_stream, remote_output_stream_oid, Sink};
use super::view::Obj;
use super::{boolean, integer, long, string, value, void, Ctx, Failure, Kind, Native, Run, R};
use crate::javaser::{ArrayData, Block, Content, Value};
use crate::remoting::command;

/// FilePath callables.
pub const CALLABLES: &[Native] = &[
    file("hudson.FilePath$Mkdirs", Kind::Blocking, mkdirs),
    file("hudson.FilePath$Exists", Kind::Blocking, exists),
    file("hudson.FilePath$IsDirectory", Kind::Blocking, is_directory),
    file(
        "hudson.FilePath$LastModified",
        Kind::Blocking,
        last_modified,
    ),
    file("hudson.FilePath$Length", Kind::Blocking, length),
    file("hudson.FilePath$Mode", Kind::Blocking, mode),
    file("hudson.FilePath$Chmod", Kind::Blocking, chmod),
    file("hudson.FilePath$Delete", Kind::Blocking, delete),
    file(
        "hudson.FilePath$DeleteRecursive",
        Kind::Blocking,
        delete_recursive,
    ),
    file(
        "hudson.FilePath$DeleteContents",
        Kind::Blocking,
        delete_contents,
    ),
    file("hudson.FilePath$Write", Kind::Blocking, write),
    file(
        "hudson.FilePath$CreateTextTempFile",
        Kind::Blocking,
        create_text_temp_file,
    ),
    file(
        "hudson.FilePath$CreateTempFile",
        Kind::Blocking,
        create_temp_file,
    ),
    file(
        "hudson.FilePath$CreateTempDir",
        Kind::Blocking,
        create_temp_dir,
    ),
    file("hudson.FilePath$Touch", Kind::Blocking, touch),
    file(
        "hudson.FilePath$SetLastModified",
        Kind::Blocking,
        set_last_modified,
    ),
    file("hudson.FilePath$RenameTo", Kind::Blocking, rename_to),
    file(
        "hudson.FilePath$ReadToString",
        Kind::Blocking,
        read_to_string,
    ),
    file("hudson.FilePath$Digest", Kind::Blocking, digest),
    file("hudson.FilePath$Absolutize", Kind::Blocking, absolutize),
    file("hudson.FilePath$ReadLink", Kind::Blocking, read_link),
    file("hudson.FilePath$SymlinkTo", Kind::Blocking, symlink_to),
    file(
        "hudson.FilePath$GetFreeDiskSpace",
        Kind::Blocking,
        free_space,
    ),
    file(
        "hudson.FilePath$GetTotalDiskSpace",
        Kind::Blocking,
        total_space,
    ),
    file(
        "hudson.FilePath$GetUsableDiskSpace",
        Kind::Blocking,
        usable_space,
    ),
    file("hudson.FilePath$CopyTo", Kind::Streaming, copy_to),
    file("hudson.FilePath$WritePipe", Kind::Streaming, write_pipe),
    file("hudson.FilePath$Read", Kind::Streaming, read),
    Native {
        class: "hudson.FilePath$IsUnix",
        kind: Kind::Instant,
        run: Run::Call(is_unix),
    },
];

const fn file(class: &'static str, kind: Kind, f: fn(&Ctx, &str, Obj) -> R) -> Native {
    Native {
        class,
        kind,
        run: Run::File(f),
    }
}

fn mkdirs(cx: &Ctx, path: &str, _: Obj) -> R {
    // As Java: true if the directory now exists; one retry after 10 ms (Ant's race guard).
    let ok = match fs::create_dir_all(path) {
        Ok(()) => true,
        Err(e) if Path::new(path).exists() => {
            let _ = e;
            true
        }
        Err(_) => {
            std::thread::sleep(Duration::from_millis(10));
            match fs::create_dir_all(path) {
                Ok(()) => true,
                Err(_) if Path::new(path).exists() => true,
                Err(e) => return Err(Failure::fs(&e, "cannot create directory", path)),
            }
        }
    };
    boolean(cx, ok)
}

fn exists(cx: &Ctx, path: &str, _: Obj) -> R {
    boolean(cx, Path::new(path).exists())
}

fn is_directory(cx: &Ctx, path: &str, _: Obj) -> R {
    boolean(cx, Path::new(path).is_dir())
}

/// `File.lastModified()`: milliseconds, 0 when the file is missing.
pub fn mtime_millis(path: &Path) -> i64 {
    fs::metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_millis() as i64)
}

fn last_modified(cx: &Ctx, path: &str, _: Obj) -> R {
    long(cx, mtime_millis(Path::new(path)))
}

fn length(cx: &Ctx, path: &str, _: Obj) -> R {
    long(cx, fs::metadata(path).map_or(0, |m| m.len() as i64))
}

fn mode(cx: &Ctx, path: &str, _: Obj) -> R {
    let m = fs::metadata(path).map_err(|e| Failure::fs(&e, "cannot read the mode of", path))?;
    integer(cx, (m.mode() & 0o777) as i32)
}

fn chmod(_: &Ctx, path: &str, o: Obj) -> R {
    let mask = o.int("mask")? & 0o7777;
    if mask & 0o777 != mask {
        return Err(Failure::io(format!("Invalid mode: {mask}")));
    }
    fs::set_permissions(path, fs::Permissions::from_mode(mask as u32))
        .map_err(|e| Failure::fs(&e, "cannot change the mode of", path))?;
    void()
}

/// Makes `p` (and its directory) writable by its owner so it can be removed, as Jenkins'
/// `PathRemover` does.
fn make_removable(p: &Path) {
    for q in [Some(p), p.parent()].into_iter().flatten() {
        if let Ok(m) = fs::symlink_metadata(q) {
            if !m.file_type().is_symlink() && m.mode() & 0o200 == 0 {
                let _ = fs::set_permissions(q, fs::Permissions::from_mode(m.mode() | 0o200));
            }
        }
    }
}

/// Removes one file, link or empty directory; a missing one is fine (`deleteIfExists`).
fn remove_one(p: &Path) -> io::Result<()> {
    let first = match fs::symlink_metadata(p) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => Err(e),
        Ok(m) if m.is_dir() => fs::remove_dir(p),
        Ok(_) => fs::remove_file(p),
    };
    match first {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(_) => {
            make_removable(p);
            match fs::symlink_metadata(p) {
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(e),
                Ok(m) if m.is_dir() => fs::remove_dir(p),
                Ok(_) => fs::remove_file(p),
            }
        }
    }
}

/// Removes `p` and, if it is a directory (not a link to one), everything in it. Every error
/// is collected and the walk goes on, as `PathRemover.forceRemoveRecursive` does.
pub fn remove_tree(p: &Path, errors: &mut Vec<String>) {
    remove_contents(p, errors);
    if let Err(e) = remove_one(p) {
        errors.push(format!("{}: {e}", p.display()));
    }
}

fn remove_contents(p: &Path, errors: &mut Vec<String>) {
    let is_dir = fs::symlink_metadata(p).is_ok_and(|m| m.is_dir());
    if !is_dir {
        return;
    }
    make_removable(p);
    match fs::read_dir(p) {
        Ok(entries) => {
            for entry in entries {
                match entry {
                    Ok(e) => remove_tree(&e.path(), errors),
                    Err(e) => errors.push(format!("{}: {e}", p.display())),
                }
            }
        }
        Err(e) => errors.push(format!("{}: {e}", p.display())),
    }
}

fn removal_failed(path: &str, errors: Vec<String>) -> Failure {
    let more = if errors.len() > 3 {
        format!(" (and {} more)", errors.len() - 3)
    } else {
        String::new()
    };
    Failure::io(format!(
        "Unable to delete '{path}': {}{more}",
        errors.into_iter().take(3).collect::<Vec<_>>().join("; ")
    ))
}

fn delete(_: &Ctx, path: &str, _: Obj) -> R {
    remove_one(Path::new(path)).map_err(|e| removal_failed(path, vec![e.to_string()]))?;
    void()
}

fn delete_recursive(_: &Ctx, path: &str, _: Obj) -> R {
    let mut errors = Vec::new();
    remove_tree(Path::new(path), &mut errors);
    if !errors.is_empty() {
        return Err(removal_failed(path, errors));
    }
    void()
}

fn delete_contents(_: &Ctx, path: &str, _: Obj) -> R {
    let mut errors = Vec::new();
    remove_contents(Path::new(path), &mut errors);
    if !errors.is_empty() {
        return Err(removal_failed(path, errors));
    }
    void()
}

/// Text in `charset` (a Java charset name; null is the agent's default, UTF-8).
pub fn encode_text(text: &str, charset: Option<&str>) -> Result<Vec<u8>, Failure> {
    let name = charset.unwrap_or("UTF-8");
    match name.to_ascii_uppercase().replace('_', "-").as_str() {
        "UTF-8" | "UTF8" => Ok(text.as_bytes().to_vec()),
        "US-ASCII" | "ASCII" => Ok(text
            .chars()
            .map(|c| if c.is_ascii() { c as u8 } else { b'?' })
            .collect()),
        "ISO-8859-1" | "ISO8859-1" | "LATIN1" => Ok(text
            .chars()
            .map(|c| if (c as u32) < 256 { c as u32 as u8 } else { b'?' })
            .collect()),
        "UTF-16BE" => Ok(text.encode_utf16().flat_map(|u| u.to_be_bytes()).collect()),
        "UTF-16LE" => Ok(text.encode_utf16().flat_map(|u| u.to_le_bytes()).collect()),
        _ => Err(Failure {
            class: "java.io.IOException",
            message: format!(
                "java.io.UnsupportedEncodingException: {name} (nectr-agent writes UTF-8, US-ASCII, ISO-8859-1 and UTF-16BE/LE)"
            ),
        }),
    }
}

fn create_parent(path: &Path) -> Result<(), Failure> {
    if let Some(parent) = path.parent() {
        if !parent.as_os_str().is_empty() {
            fs::create_dir_all(parent).map_err(|e| {
                Failure::fs(&e, "cannot create directory", &parent.to_string_lossy())
            })?;
        }
    }
    Ok(())
}

/// `FilePath$Write` (`writeFile` text, the durable-task script): parents created, the file
/// replaced.
fn write(_: &Ctx, path: &str, o: Obj) -> R {
    let content = o.opt_str("content")?.unwrap_or_default();
    let encoding = o.opt_str("encoding")?;
    let bytes = encode_text(&content, encoding.as_deref())?;
    create_parent(Path::new(path))?;
    fs::write(path, bytes).map_err(|e| Failure::fs(&e, "cannot write", path))?;
    void()
}

/// A fresh name `prefix` + random digits + `suffix` in `dir`, created exclusively (Java's
/// `File.createTempFile` naming).
fn create_unique(dir: &Path, prefix: &str, suffix: &str, make_dir: bool) -> io::Result<PathBuf> {
    for _ in 0..100 {
        let n = random_u64();
        let p = dir.join(format!("{prefix}{n}{suffix}"));
        let made = if make_dir {
            fs::create_dir(&p)
        } else {
            fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&p)
                .map(|_| ())
        };
        match made {
            Ok(()) => return Ok(p),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::other("no free temporary name after 100 tries"))
}

/// Random bits for names and cookies (not for secrets).
pub fn random_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.write_u32(std::process::id());
    h.finish()
}

fn create_text_temp_file(cx: &Ctx, path: &str, o: Obj) -> R {
    let in_this_directory = o.bool("inThisDirectory")?;
    let prefix = o.str("prefix")?;
    let suffix = o.opt_str("suffix")?.unwrap_or_else(|| ".tmp".into());
    let contents = o.opt_str("contents")?.unwrap_or_default();
    let dir = if in_this_directory {
        fs::create_dir_all(path).map_err(|e| Failure::fs(&e, "cannot create directory", path))?;
        PathBuf::from(path)
    } else {
        PathBuf::from(cx.host.temp_dir())
    };
    let f = create_unique(&dir, &prefix, &suffix, false).map_err(|e| {
        Failure::io(format!(
            "Failed to create a temporary file in {}: {e}",
            dir.display()
        ))
    })?;
    fs::write(&f, contents.as_bytes())
        .map_err(|e| Failure::fs(&e, "cannot write", &f.to_string_lossy()))?;
    string(cx, &absolute(&f).to_string_lossy())
}

fn create_temp_file(cx: &Ctx, path: &str, o: Obj) -> R {
    let prefix = o.str("prefix")?;
    let suffix = o.opt_str("suffix")?.unwrap_or_else(|| ".tmp".into());
    let f = create_unique(Path::new(path), &prefix, &suffix, false)
        .map_err(|e| Failure::fs(&e, "cannot create a temporary file in", path))?;
    string(cx, &name_of(&f))
}

fn create_temp_dir(cx: &Ctx, path: &str, o: Obj) -> R {
    let name = o.str("name")?;
    let d = create_unique(Path::new(path), &name, "", true)
        .map_err(|e| Failure::fs(&e, "cannot create a temporary directory in", path))?;
    string(cx, &name_of(&d))
}

fn name_of(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// `path` made absolute against the agent's working directory, without resolving links.
pub fn absolute(p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        std::env::current_dir().map_or_else(|_| p.to_path_buf(), |d| d.join(p))
    }
}

fn set_mtime(path: &str, millis: i64) -> Result<(), Failure> {
    let t = if millis >= 0 {
        SystemTime::UNIX_EPOCH + Duration::from_millis(millis as u64)
    } else {
        SystemTime::UNIX_EPOCH - Duration::from_millis(millis.unsigned_abs())
    };
    fs::File::options()
        .write(true)
        .open(path)
        .or_else(|_| fs::File::open(path))
        .and_then(|f| f.set_modified(t))
        .map_err(|e| {
            Failure::io(format!(
                "Failed to set the timestamp of {path} to {millis}: {e}"
            ))
        })
}

fn touch(_: &Ctx, path: &str, o: Obj) -> R {
    let timestamp = o.long("timestamp")?;
    if !Path::new(path).exists() {
        fs::File::create(path).map_err(|e| Failure::fs(&e, "cannot create", path))?;
    }
    set_mtime(path, timestamp)?;
    void()
}

fn set_last_modified(cx: &Ctx, path: &str, o: Obj) -> R {
    let timestamp = o.long("timestamp")?;
    set_mtime(path, timestamp)?;
    let _ = cx;
    Ok(value(cx.builder(), Value::Null))
}

fn rename_to(_: &Ctx, path: &str, o: Obj) -> R {
    let target = o.obj("target")?.str("remote")?;
    // Files.move without REPLACE_EXISTING: an existing target is an error.
    if fs::symlink_metadata(&target).is_ok() {
        return Err(Failure {
            class: "java.nio.file.FileAlreadyExistsException",
            message: target,
        });
    }
    fs::rename(path, &target).map_err(|e| Failure::fs(&e, "cannot move", path))?;
    void()
}

fn read_to_string(cx: &Ctx, path: &str, _: Obj) -> R {
    let bytes = fs::read(path).map_err(|e| Failure::fs(&e, "cannot read", path))?;
    let text = String::from_utf8(bytes).map_err(|e| {
        Failure::io(format!(
            "{path} is not valid UTF-8 (java.nio.charset.MalformedInputException at byte {})",
            e.utf8_error().valid_up_to()
        ))
    })?;
    string(cx, &text)
}

fn digest(cx: &Ctx, path: &str, _: Obj) -> R {
    use md5::Digest as _;
    let mut f = fs::File::open(path).map_err(|e| Failure::fs(&e, "cannot read", path))?;
    let mut h = md5::Md5::new();
    let mut buf = vec![0u8; 256 << 10];
    loop {
        let n = f
            .read(&mut buf)
            .map_err(|e| Failure::fs(&e, "cannot read", path))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    let hex: String = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
    string(cx, &hex)
}

fn absolutize(cx: &Ctx, path: &str, _: Obj) -> R {
    string(cx, &absolute(Path::new(path)).to_string_lossy())
}

/// `Util.resolveSymlink`: the link's target, or null when `path` is not a link.
fn read_link(cx: &Ctx, path: &str, _: Obj) -> R {
    match fs::read_link(path) {
        Ok(t) => string(cx, &t.to_string_lossy()),
        Err(_) => Ok(value(cx.builder(), Value::Null)),
    }
}

/// `Util.createSymlink(f.getParentFile(), target, f.getName(), listener)`: replaces what is
/// there.
fn symlink_to(_: &Ctx, path: &str, o: Obj) -> R {
    let target = o.str("target")?;
    if fs::symlink_metadata(path).is_ok() {
        remove_one(Path::new(path)).map_err(|e| Failure::fs(&e, "cannot replace", path))?;
    }
    create_parent(Path::new(path))?;
    std::os::unix::fs::symlink(&target, path)
        .map_err(|e| Failure::fs(&e, "cannot create a symbolic link at", path))?;
    void()
}

fn statvfs(path: &str) -> Result<libc::statvfs, Failure> {
    let c = std::ffi::CString::new(path).map_err(|_| Failure::io("a path with a NUL byte"))?;
    let mut s: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a valid NUL-terminated string and `s` a writable statvfs.
    if unsafe { libc::statvfs(c.as_ptr(), &mut s) } != 0 {
        // Java's File.getFreeSpace() returns 0 for a path it cannot read.
        return Ok(unsafe { std::mem::zeroed() });
    }
    Ok(s)
}

fn free_space(cx: &Ctx, path: &str, _: Obj) -> R {
    let s = statvfs(path)?;
    long(cx, (s.f_bfree * s.f_frsize) as i64)
}

fn total_space(cx: &Ctx, path: &str, _: Obj) -> R {
    let s = statvfs(path)?;
    long(cx, (s.f_blocks * s.f_frsize) as i64)
}

fn usable_space(cx: &Ctx, path: &str, _: Obj) -> R {
    let s = statvfs(path)?;
    long(cx, (s.f_bavail * s.f_frsize) as i64)
}

fn is_unix(cx: &Ctx, _: Obj) -> R {
    boolean(cx, true)
}

/// Sends the bytes of `path` into `sink`; stops when the call is cancelled.
fn stream_file(path: &str, sink: &mut Sink) -> io::Result<()> {
    let mut f = fs::File::open(path)?;
    let mut buf = vec![0u8; super::sink::CHUNK];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        sink.write_all(&buf[..n])?;
    }
}

/// The first `RemoteOutputStream` among the fields of `o`.
fn sink_field(o: Obj) -> Option<i32> {
    o.children()
        .into_iter()
        .filter_map(|v| Obj::of(o.heap, v))
        .find_map(remote_output_stream_oid)
}

/// `FilePath$CopyTo`: stream `path` into the controller's `RemoteOutputStream`, then EOF it
/// (in every case: CopyTo's Java code closes it too).
fn copy_to(cx: &Ctx, path: &str, o: Obj) -> R {
    let oid =
        sink_field(o).ok_or_else(|| Failure::io("FilePath$CopyTo without a RemoteOutputStream"))?;
    let mut sink = Sink::live(cx.remote, oid, cx.request_id);
    let result = stream_file(path, &mut sink);
    let _ = sink.close(None);
    result.map_err(|e| Failure::fs(&e, "cannot copy", path))?;
    void()
}

/// `FilePath$Read` (readFile): stream `path` into the controller's end of a remote-to-local
/// pipe and close it; a failure travels in the EOF (`NoSuchFileException` for a missing
/// file), as the Java agent does. Returns Void.
fn read(cx: &Ctx, path: &str, o: Obj) -> R {
    let oid = match o.opt_obj("p")?.and_then(pipe_of) {
        Some((true, oid)) => oid,
        _ => return Err(Failure::io("FilePath$Read without a remote-to-local Pipe")),
    };
    let mut sink = Sink::live(cx.remote, oid, cx.request_id);
    let result = stream_file(path, &mut sink);
    let text = result
        .as_ref()
        .err()
        .map(|e| format!("cannot read {path}: {e}"))
        .unwrap_or_default();
    let error = result.as_ref().err().map(|e| match e.kind() {
        io::ErrorKind::NotFound => command::StreamError {
            class: "java.nio.file.NoSuchFileException",
            message: path,
        },
        _ => command::StreamError {
            class: "java.io.IOException",
            message: &text,
        },
    });
    let _ = sink.close(error);
    void()
}

/// `FilePath$WritePipe`: create `path` (and its parents), export it, return the
/// `RemoteOutputStream` the controller then writes into.
fn write_pipe(cx: &Ctx, path: &str, _: Obj) -> R {
    create_parent(Path::new(path))?;
    let f = fs::File::create(path).map_err(|e| Failure::fs(&e, "cannot open for writing", path))?;
    let oid = cx.remote.export(f);
    let mut b = cx.builder();
    let ros = remote_output_stream(&mut b, oid).map_err(Failure::io)?;
    Ok(value(b, ros))
}

/// A `hudson.FilePath` the agent hands back: the path with the "local to the writer" flag
/// set, so the controller binds it to this agent's channel.
pub fn file_path(b: &mut crate::javaser::Builder, path: &str) -> Result<Value, Failure> {
    let remote = b.string(path);
    let fp = b.object(super::classes::FILE_PATH, &[("remote", remote)])?;
    b.set_data(
        fp,
        super::classes::FILE_PATH,
        vec![Content::Block(Block::new(vec![1]))],
    )?;
    Ok(fp)
}

/// A `byte[]` answer.
pub fn bytes_answer(cx: &Ctx, data: Vec<u8>) -> R {
    let mut b = cx.builder();
    let v = b.array("[B", ArrayData::Byte(data))?;
    Ok(value(b, v))
}
