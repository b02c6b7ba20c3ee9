//! `FilePath$UntarRemote` (unstash, agent-callables.md G.4): read a tar, gzipped or not, from
//! the controller's `RemoteInputStream` and extract it into the callable's directory.
//!
//! As Jenkins' `readFromTar`: modes `& 0777`, file mtimes, symlinks as links. The path checks
//! Java only runs on the controller are always on here: an entry that leaves the directory, a
//! non-directory entry naming the directory itself, and any write through a symlink are
//! refused.

use std::ffi::OsStr;
use std::fs;
use std::io::{self, BufReader, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, SystemTime};

use super::input::{input_form, RemoteInput};
use super::Remote;
use crate::javaser::{Entry, Heap, Value};
use crate::remoting::Answer;
use crate::tar::{Kind, TarReader};

/// Most decompressed bytes read after the end-of-archive marker (padding), so the stream is
/// drained and its checksum verified without reading an unbounded tail.
const TAIL_LIMIT: u64 = 16 << 20;

/// Runs `FilePath$UntarRemote` on directory `dir`. Returns Void.
pub fn untar_remote(dir: &str, heap: &Heap, callable: Value, remote: &dyn Remote) -> Answer {
    let Some(this) = callable.as_ref() else {
        return Answer::io_error("FilePath$UntarRemote is null");
    };
    let name = heap
        .field(this, "name")
        .and_then(|v| v.as_ref())
        .and_then(|s| heap.str(s))
        .map(|s| s.to_string())
        .unwrap_or_else(|| "archive".into());
    let gzip = match compression(heap, heap.field(this, "compression").copied()) {
        Ok(g) => g,
        Err(e) => return Answer::io_error(e),
    };
    let form = match heap
        .field(this, "in")
        .copied()
        .ok_or_else(|| "FilePath$UntarRemote without an input stream".to_string())
        .and_then(|v| input_form(heap, v))
    {
        Ok(f) => f,
        Err(e) => return Answer::io_error(e),
    };
    let input = match RemoteInput::open(form, remote) {
        Ok(i) => i,
        Err(e) => return Answer::io_error(format!("Failed to extract {name}: {e}")),
    };
    match extract(input, gzip, Path::new(dir)) {
        Ok(_) => Answer::null(),
        Err(e) => Answer::io_error(format!("Failed to extract {name}: {e}")),
    }
}

/// `FilePath$TarCompression`: true for GZIP, false for NONE.
fn compression(heap: &Heap, v: Option<Value>) -> Result<bool, String> {
    let name = v
        .and_then(|v| v.as_ref())
        .and_then(|id| match heap.get(id) {
            Some(Entry::Enum(e)) => heap.str(e.name).map(|s| s.to_string()),
            _ => None,
        })
        .ok_or("FilePath$UntarRemote without a TarCompression")?;
    match name.as_str() {
        "GZIP" => Ok(true),
        "NONE" => Ok(false),
        other => Err(format!("unknown TarCompression {other}")),
    }
}

/// Extracts the tar read from `input` into `base`; returns the number of entries.
pub fn extract(input: impl Read, gzip: bool, base: &Path) -> io::Result<usize> {
    let raw = BufReader::with_capacity(64 << 10, input);
    let reader: Box<dyn Read + '_> = if gzip {
        Box::new(flate2::read::MultiGzDecoder::new(raw))
    } else {
        Box::new(raw)
    };
    fs::create_dir_all(base)
        .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", base.display())))?;
    let mut archive = TarReader::new(reader);
    let mut count = 0;
    // Directory modes are set last, so a read-only directory can still be filled.
    let mut dir_modes = Vec::new();
    while let Some(h) = archive.next_entry()? {
        let raw_name = PathBuf::from(OsStr::from_bytes(&h.path));
        let rel = inside(&raw_name)?;
        if rel.as_os_str().is_empty() && h.kind != Kind::Dir {
            return Err(refused(&raw_name, "names the target directory itself"));
        }
        let target = base.join(&rel);
        let named = |e: io::Error| -> io::Error {
            if e.kind() == io::ErrorKind::InvalidData {
                e
            } else {
                io::Error::new(e.kind(), format!("{}: {e}", target.display()))
            }
        };
        check_parents(base, &rel, &raw_name, true).map_err(named)?;
        let mode = h.mode & 0o777;
        let applied: io::Result<()> = (|| {
            match h.kind {
                Kind::Dir => {
                    if !rel.as_os_str().is_empty() {
                        match fs::symlink_metadata(&target) {
                            Ok(m) if m.is_dir() => {}
                            Ok(_) => {
                                return Err(refused(&raw_name, "exists and is not a directory"))
                            }
                            Err(_) => fs::create_dir(&target)?,
                        }
                    }
                    if mode != 0 {
                        dir_modes.push((target.clone(), mode));
                    }
                }
                Kind::Symlink => {
                    if h.link.is_empty() {
                        return Err(refused(&raw_name, "is a symlink without a target"));
                    }
                    remove_non_dir(&target)?;
                    std::os::unix::fs::symlink(OsStr::from_bytes(&h.link), &target)?;
                }
                Kind::HardLink => {
                    let link = PathBuf::from(OsStr::from_bytes(&h.link));
                    let source_rel = inside(&link)?;
                    if source_rel.as_os_str().is_empty() {
                        return Err(refused(&raw_name, "is a hard link to the target directory"));
                    }
                    check_parents(base, &source_rel, &link, false)?;
                    remove_non_dir(&target)?;
                    fs::hard_link(base.join(&source_rel), &target)?;
                }
                Kind::File => {
                    remove_non_dir(&target)?;
                    let mut f = fs::File::create(&target)?;
                    io::copy(&mut archive, &mut f)?;
                    if mode != 0 {
                        f.set_permissions(fs::Permissions::from_mode(mode))?;
                    }
                    let t = SystemTime::UNIX_EPOCH + Duration::from_secs(h.mtime);
                    f.set_times(fs::FileTimes::new().set_modified(t))?;
                }
                Kind::Other(kind) => {
                    tracing::debug!(entry = %raw_name.display(), kind, "skipped a special file in a tar");
                }
            }
            Ok(())
        })();
        applied.map_err(named)?;
        count += 1;
    }
    for (dir, mode) in dir_modes.into_iter().rev() {
        fs::set_permissions(&dir, fs::Permissions::from_mode(mode))
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", dir.display())))?;
    }
    // Read past the end-of-archive blocks to the end of the stream (bounded), which also
    // checks the gzip trailer.
    let mut rest = archive.into_inner();
    io::copy(&mut (&mut rest).take(TAIL_LIMIT), &mut io::sink())?;
    Ok(count)
}

fn refused(name: &Path, why: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("the tar entry {} {why}", name.display()),
    )
}

/// The entry's path relative to the target directory, normalised: `..` may not climb out of
/// it, and an absolute name is refused (Java's `new File(base, name)` would quietly put it
/// under the directory; an archive that carries one was not made by a stash).
fn inside(name: &Path) -> io::Result<PathBuf> {
    let mut out = PathBuf::new();
    for c in name.components() {
        match c {
            Component::Normal(p) => out.push(p),
            Component::CurDir => {}
            Component::RootDir | Component::Prefix(_) => {
                return Err(refused(name, "is an absolute path"))
            }
            Component::ParentDir => {
                if !out.pop() {
                    return Err(refused(name, "breaks out of the target directory"));
                }
            }
        }
    }
    Ok(out)
}

/// Walks the directories above `rel` (inside `base`), refusing to pass through a symlink or
/// a non-directory. With `create`, missing ones are made (an entry's parents); without, the
/// walk stops at the first missing one (a hard link's source, which must already exist).
fn check_parents(base: &Path, rel: &Path, name: &Path, create: bool) -> io::Result<()> {
    let mut cur = base.to_path_buf();
    let parents: Vec<_> = rel.components().collect();
    for c in parents.iter().take(parents.len().saturating_sub(1)) {
        cur.push(c);
        match fs::symlink_metadata(&cur) {
            Ok(m) if m.file_type().is_symlink() => {
                return Err(refused(
                    name,
                    if create {
                        "would be written through a symlink"
                    } else {
                        "links through a symlink"
                    },
                ))
            }
            Ok(m) if m.is_dir() => {}
            Ok(_) => return Err(refused(name, "has a parent that is not a directory")),
            Err(e) if e.kind() == io::ErrorKind::NotFound && create => fs::create_dir(&cur)?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Removes a file or symlink at `p` (an entry replaces it rather than writing through it).
fn remove_non_dir(p: &Path) -> io::Result<()> {
    match fs::symlink_metadata(p) {
        Ok(m) if m.is_dir() => Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!("{} is a directory", p.display()),
        )),
        Ok(_) => fs::remove_file(p),
        Err(_) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tar(entries: &[(&str, u8, &[u8], &str)]) -> Vec<u8> {
        let mut out = Vec::new();
        for (name, kind, data, link) in entries {
            out.extend(crate::tar::ustar_header(
                name.as_bytes(),
                *kind,
                data.len() as u64,
                link.as_bytes(),
            ));
            out.extend_from_slice(data);
            out.resize(out.len().div_ceil(512) * 512, 0);
        }
        out.resize(out.len() + 1024, 0);
        out
    }

    fn scratch(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("nectr-untar-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn extracts_files_dirs_and_symlinks_with_modes() {
        let d = scratch("ok");
        let t = tar(&[
            ("a/", b'5', b"", ""),
            ("a/b.txt", b'0', b"hello", ""),
            ("./c.txt", b'0', b"x", ""),
            ("a/link", b'2', b"", "b.txt"),
        ]);
        assert_eq!(extract(&t[..], false, &d).unwrap(), 4);
        assert_eq!(fs::read(d.join("a/b.txt")).unwrap(), b"hello");
        assert_eq!(fs::read(d.join("c.txt")).unwrap(), b"x");
        let e = extract(&tar(&[("/abs.txt", b'0', b"x", "")])[..], false, &d).unwrap_err();
        assert!(
            e.to_string().contains("/abs.txt is an absolute path"),
            "{e}"
        );
        assert_eq!(fs::read_link(d.join("a/link")).unwrap(), Path::new("b.txt"));
        let m = fs::metadata(d.join("a/b.txt")).unwrap();
        assert_eq!(m.permissions().mode() & 0o777, 0o644);
        assert_eq!(
            m.modified().unwrap(),
            SystemTime::UNIX_EPOCH + Duration::from_secs(0o14000000000)
        );
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn refuses_entries_that_leave_the_directory() {
        for (tag, entries) in [
            ("dotdot", vec![("../escape", b'0', &b"x"[..], "")]),
            ("deep", vec![("a/../../escape", b'0', &b"x"[..], "")]),
            ("self", vec![(".", b'0', &b"x"[..], "")]),
            (
                "through-link",
                vec![
                    ("l", b'2', &b""[..], "/tmp"),
                    ("l/escape", b'0', &b"x"[..], ""),
                ],
            ),
        ] {
            let d = scratch(tag);
            let err = extract(&tar(&entries)[..], false, &d).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidData, "{tag}: {err}");
            assert!(!d.parent().unwrap().join("escape").exists(), "{tag}");
            fs::remove_dir_all(&d).unwrap();
        }
    }

    #[test]
    fn a_corrupt_gzip_stream_is_an_error_not_a_panic() {
        let d = scratch("gz");
        let err = extract(&b"\x1f\x8b\x08\x00garbage"[..], true, &d).unwrap_err();
        assert!(!err.to_string().is_empty());
        fs::remove_dir_all(&d).unwrap();
    }
}
