//! Archives (agent-callables.md §D.5, §D.6, §G.4): `stash` (`FilePath$Archive`, a tar.gz of
//! an Ant glob into a controller stream), `unstash` (`FilePath$UntarRemote`, see
//! [`super::untar`]), and `archiveArtifacts` (`ArtifactArchiver$ListFiles`, then
//! `FilePath$CopyRecursiveRemoteToLocal` into a pipe).
//!
//! Scans follow Ant's `DirectoryScanner` ([`crate::antglob`]): files only (directories are
//! not "included files"), symlinks to directories followed unless `NOFOLLOW_LINKS`, a symlink
//! itself stored as a link entry. Entries are written as Jenkins' `TarArchiver` writes them:
//! the mode, the mtime, directories with a trailing `/`, GNU long names, UTF-8 names.

use std::collections::HashSet;
use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use super::sink::{pipe_of, remote_output_stream_oid, Sink};
use super::view::{string_map, Obj};
use super::{integer, value, Ctx, Failure, Kind, Native, Run, R};
use crate::antglob::FileSet;
use crate::javaser::Value;
use crate::remoting::Answer;

/// Archive callables.
pub const CALLABLES: &[Native] = &[
    Native {
        class: "hudson.FilePath$Archive",
        kind: Kind::Streaming,
        run: Run::File(archive),
    },
    Native {
        class: "hudson.FilePath$UntarRemote",
        kind: Kind::Streaming,
        run: Run::File(untar),
    },
    Native {
        class: "hudson.tasks.ArtifactArchiver$ListFiles",
        kind: Kind::Blocking,
        run: Run::File(list_files),
    },
    Native {
        class: "hudson.FilePath$CopyRecursiveRemoteToLocal",
        kind: Kind::Streaming,
        run: Run::File(copy_recursive),
    },
    Native {
        class: "hudson.tasks.Fingerprinter$FindRecords",
        kind: Kind::Blocking,
        run: Run::File(find_records),
    },
    Native {
        class: "hudson.FilePath$ValidateAntFileMask",
        kind: Kind::Blocking,
        run: Run::File(validate_mask),
    },
];

/// Most directory levels a scan descends (a guard against link loops Ant counts by name).
const MAX_DEPTH: usize = 256;

/// What a scan found, in scan order: (relative path as archived, file on disk).
pub type Found = Vec<(String, PathBuf)>;

/// Ant's `DirectoryScanner.getIncludedFiles()` under `base`: every non-directory entry (a
/// dangling link counts) that `set` selects. Symlinked directories are walked when
/// `follow_links`; loops are cut by remembering the real directories on the current path.
pub fn scan(base: &Path, set: &FileSet, follow_links: bool) -> io::Result<Found> {
    let mut out = Vec::new();
    if !base.exists() {
        return Ok(out);
    }
    let mut on_path = HashSet::new();
    if let Ok(real) = fs::canonicalize(base) {
        on_path.insert(real);
    }
    walk(base, "", set, follow_links, &mut on_path, 0, &mut out)?;
    Ok(out)
}

fn walk(
    dir: &Path,
    rel: &str,
    set: &FileSet,
    follow: bool,
    on_path: &mut HashSet<PathBuf>,
    depth: usize,
    out: &mut Found,
) -> io::Result<()> {
    if depth > MAX_DEPTH {
        return Ok(());
    }
    let mut names: Vec<std::ffi::OsString> = match fs::read_dir(dir) {
        Ok(rd) => rd.filter_map(|e| e.ok().map(|e| e.file_name())).collect(),
        Err(e) if depth == 0 => return Err(e),
        Err(_) => return Ok(()),
    };
    names.sort();
    for name in names {
        let path = dir.join(&name);
        let name = String::from_utf8_lossy(name.as_bytes()).into_owned();
        let r = if rel.is_empty() {
            name
        } else {
            format!("{rel}/{name}")
        };
        let link = fs::symlink_metadata(&path).is_ok_and(|m| m.file_type().is_symlink());
        if link && !follow {
            // Ant with followSymlinks=false leaves links out entirely.
            continue;
        }
        // As Ant: a directory is what `File.list()` can list (links followed).
        let is_dir = fs::metadata(&path).is_ok_and(|m| m.is_dir());
        if is_dir && fs::read_dir(&path).is_ok() {
            if !set.worth_entering(&r) {
                continue;
            }
            let real = fs::canonicalize(&path).ok();
            if let Some(real) = &real {
                if on_path.contains(real) {
                    tracing::info!("skipping symbolic link {} -- it loops", path.display());
                    continue;
                }
                on_path.insert(real.clone());
            }
            walk(&path, &r, set, follow, on_path, depth + 1, out)?;
            if let Some(real) = &real {
                on_path.remove(real);
            }
        } else if set.selects(&r) {
            out.push((r, path));
        }
    }
    Ok(())
}

/// Every entry under `base`, directories included, as `DirScanner$Full` lists them.
fn scan_full(base: &Path) -> io::Result<Found> {
    let mut out = Vec::new();
    fn full(dir: &Path, rel: &str, depth: usize, out: &mut Found) {
        if depth > MAX_DEPTH {
            return;
        }
        let Ok(rd) = fs::read_dir(dir) else { return };
        let mut names: Vec<_> = rd.filter_map(|e| e.ok().map(|e| e.file_name())).collect();
        names.sort();
        for name in names {
            let path = dir.join(&name);
            let r = format!("{rel}{}", String::from_utf8_lossy(name.as_bytes()));
            let link = fs::symlink_metadata(&path).is_ok_and(|m| m.file_type().is_symlink());
            out.push((r.clone(), path.clone()));
            if !link && path.is_dir() {
                full(&path, &format!("{r}/"), depth + 1, out);
            }
        }
    }
    if base.is_dir() {
        full(base, "", 0, &mut out);
    }
    Ok(out)
}

/// Writes scanned entries as Jenkins' `TarArchiver` does; returns the entry count.
pub struct TarOut<W: Write> {
    tar: ::tar::Builder<W>,
    count: usize,
}

impl<W: Write> TarOut<W> {
    /// A tar writer into `w`.
    pub fn new(w: W) -> TarOut<W> {
        let mut tar = ::tar::Builder::new(w);
        tar.follow_symlinks(false);
        tar.mode(::tar::HeaderMode::Complete);
        TarOut { tar, count: 0 }
    }

    /// One entry: `file` on disk stored as `name`.
    pub fn add(&mut self, file: &Path, name: &str) -> io::Result<()> {
        let lmeta = fs::symlink_metadata(file)?;
        if lmeta.file_type().is_symlink() {
            let target = fs::read_link(file)?;
            let mut h = ::tar::Header::new_gnu();
            h.set_entry_type(::tar::EntryType::Symlink);
            h.set_size(0);
            h.set_mode(0o777);
            h.set_mtime(
                SystemTime::now()
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs()),
            );
            self.tar.append_link(&mut h, name, &target)?;
            self.count += 1;
            return Ok(());
        }
        let meta = fs::metadata(file)?;
        let mut h = ::tar::Header::new_gnu();
        h.set_mode(meta.mode() & 0o7777);
        h.set_mtime(meta.mtime().max(0) as u64);
        h.set_uid(0);
        h.set_gid(0);
        if meta.is_dir() {
            h.set_entry_type(::tar::EntryType::Directory);
            h.set_size(0);
            let dir_name = format!("{}/", name.trim_end_matches('/'));
            self.tar.append_data(&mut h, dir_name, io::empty())?;
        } else {
            h.set_entry_type(::tar::EntryType::Regular);
            let size = meta.len();
            h.set_size(size);
            let f = fs::File::open(file)
                .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", file.display())))?;
            // Never more than declared, never less: a file that shrinks while being read is
            // padded with zeros, as the header is already written.
            let body = f.take(size).chain(io::repeat(0).take(size));
            self.tar
                .append_data(&mut h, name, body.take(size))
                .map_err(|e| {
                    io::Error::new(
                        e.kind(),
                        format!("Error writing to tar file from: {}: {e}", file.display()),
                    )
                })?;
        }
        self.count += 1;
        Ok(())
    }

    /// Writes the end-of-archive blocks; returns the count and the writer.
    pub fn finish(self) -> io::Result<(usize, W)> {
        let count = self.count;
        Ok((count, self.tar.into_inner()?))
    }
}

/// `FilePath$TarCompression`: GZIP or NONE.
fn gzip(o: Obj, field: &str) -> Result<bool, Failure> {
    match o.opt_enum(field)?.as_deref() {
        Some("GZIP") => Ok(true),
        Some("NONE") | None => Ok(false),
        Some(other) => Err(Failure::io(format!("unknown TarCompression {other}"))),
    }
}

/// The gzip level: Java's `GZIPOutputStream` default.
const GZIP_LEVEL: u32 = 6;

/// Writes `found` as a tar (gzipped if asked) into `sink`; returns the entry count.
fn write_tar(found: &Found, gz: bool, sink: &mut Sink) -> io::Result<usize> {
    let count = write_tree(found, gz, &mut *sink)?;
    sink.flush()?;
    Ok(count)
}

/// Writes `found` as a tar, gzipped if `gz`, into `out`; returns the entry count. What stash
/// and archiveArtifacts send, and what `benches/builds.rs` times against `tar czf`.
pub fn write_tree(found: &Found, gz: bool, out: impl Write) -> io::Result<usize> {
    let mut out = out;
    let sink = &mut out;
    let count = if gz {
        let enc = flate2::write::GzEncoder::new(&mut *sink, flate2::Compression::new(GZIP_LEVEL));
        let mut t = TarOut::new(io::BufWriter::with_capacity(256 << 10, enc));
        for (name, path) in found {
            t.add(path, name)?;
        }
        let (count, w) = t.finish()?;
        let enc = w.into_inner().map_err(|e| e.into_error())?;
        enc.finish()?;
        count
    } else {
        let mut t = TarOut::new(&mut *sink);
        for (name, path) in found {
            t.add(path, name)?;
        }
        t.finish()?.0
    };
    out.flush()?;
    Ok(count)
}

/// What `FilePath$Archive` writes.
enum Format {
    Tar { gzip: bool },
    Zip { prefix: String },
}

/// Writes `found` as a zip (Jenkins' `ZipArchiver`: deflated entries under `prefix/`, modes,
/// mtimes, directories with a trailing `/`, zip64 as needed) into `sink`. The zip writer needs
/// to seek, so the archive is built in a temporary file first (removed afterwards).
fn write_zip(found: &Found, prefix: &str, sink: &mut Sink) -> io::Result<usize> {
    let tmp = std::env::temp_dir().join(format!(
        "nectr-zip-{}-{}",
        std::process::id(),
        super::files::random_u64()
    ));
    let file = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&tmp)?;
    let result = build_zip(found, prefix, file).and_then(|(count, mut f)| {
        use std::io::Seek;
        f.seek(io::SeekFrom::Start(0))?;
        io::copy(&mut f, &mut *sink)?;
        Ok(count)
    });
    let _ = fs::remove_file(&tmp);
    result
}

fn build_zip(found: &Found, prefix: &str, file: fs::File) -> io::Result<(usize, fs::File)> {
    let prefix = if prefix.trim().is_empty() {
        String::new()
    } else {
        format!("{}/", prefix.trim_end_matches('/'))
    };
    let mut zip = zip::ZipWriter::new(file);
    let mut count = 0;
    for (name, path) in found {
        let meta = fs::metadata(path)?;
        let mtime = meta.modified().ok().map(zip_time).unwrap_or_default();
        let options = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated)
            .unix_permissions(meta.mode() & 0o777)
            .last_modified_time(mtime)
            .large_file(meta.len() >= u32::MAX as u64);
        if meta.is_dir() {
            zip.add_directory(format!("{prefix}{name}/"), options)
                .map_err(io::Error::other)?;
        } else {
            zip.start_file(format!("{prefix}{name}"), options)
                .map_err(io::Error::other)?;
            let mut f = fs::File::open(path)?;
            io::copy(&mut f, &mut zip)?;
        }
        count += 1;
    }
    let f = zip.finish().map_err(io::Error::other)?;
    Ok((count, f))
}

/// A zip timestamp (local DOS time, as Java writes it; UTC here).
fn zip_time(t: SystemTime) -> zip::DateTime {
    let secs = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs()) as i64;
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil date from days since the epoch (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u8;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u8;
    let year = (yoe + era * 400 + i64::from(month <= 2)) as u16;
    zip::DateTime::from_date_and_time(
        year.clamp(1980, 2107),
        month,
        day,
        (rem / 3600) as u8,
        (rem % 3600 / 60) as u8,
        (rem % 60) as u8,
    )
    .unwrap_or_default()
}

/// The files a `DirScanner` names under `base`.
fn scanned(base: &Path, scanner: Obj) -> Result<Found, Failure> {
    let class = scanner.class();
    let found = match class.as_str() {
        "hudson.util.DirScanner$Glob" => {
            let includes = scanner.opt_str("includes")?.unwrap_or_default();
            let excludes = scanner.opt_str("excludes")?;
            let default_excludes = scanner.raw("useDefaultExcludes").is_none_or(|v| v == Value::Boolean(true));
            let no_follow = scanner
                .raw("openOptions")
                .is_some_and(|v| no_follow_links(scanner, v));
            if includes.trim().is_empty() && excludes.is_none() {
                scan_full(base)
            } else {
                let set = FileSet::new(&includes, excludes.as_deref(), default_excludes, true);
                scan(base, &set, !no_follow)
            }
        }
        "hudson.util.DirScanner$Full" => scan_full(base),
        "hudson.FilePath$ExplicitlySpecifiedDirScanner" => {
            let files = scanner
                .raw("files")
                .and_then(|v| string_map(scanner.heap, v))
                .ok_or_else(|| Failure::io("ExplicitlySpecifiedDirScanner without files"))?;
            Ok(files
                .into_iter()
                .map(|(archived, workspace)| (archived, base.join(workspace)))
                .collect())
        }
        other => {
            return Err(Failure::abort(format!(
                "{other} is a file filter from plugin code, which nectr-agent does not run natively; start nectr-agent with --jvm auto"
            )))
        }
    };
    found.map_err(|e| Failure::fs(&e, "cannot scan", &base.to_string_lossy()))
}

/// True if an `OpenOption[]` holds `LinkOption.NOFOLLOW_LINKS`.
fn no_follow_links(o: Obj, v: Value) -> bool {
    let Some(id) = v.as_ref() else { return false };
    let Some(arr) = o.heap.array(id) else {
        return false;
    };
    let crate::javaser::ArrayData::Object(items) = &arr.data else {
        return false;
    };
    items
        .iter()
        .any(|i| match i.as_ref().and_then(|id| o.heap.get(id)) {
            Some(crate::javaser::Entry::Enum(e)) => o
                .heap
                .str(e.name)
                .is_some_and(|n| n.eq_str("NOFOLLOW_LINKS")),
            _ => false,
        })
}

/// `FilePath$Archive` (stash; also "all files in zip" with a zip factory): scan, write a tar
/// (gzipped for `ArchiverFactory$TarArchiverFactory` GZIP) into the controller's stream, close
/// it; returns the entry count.
fn archive(cx: &Ctx, path: &str, o: Obj) -> R {
    let factory = o.obj("factory")?;
    let format = match factory.class().as_str() {
        "hudson.util.io.ArchiverFactory$TarArchiverFactory" => Format::Tar {
            gzip: gzip(factory, "method")?,
        },
        "hudson.util.io.ArchiverFactory$ZipArchiverFactory" => Format::Zip {
            prefix: factory.opt_str("prefix")?.unwrap_or_default(),
        },
        other => {
            return Err(Failure::abort(format!(
                "the archive format {other} is plugin code nectr-agent does not run natively; start nectr-agent with --jvm auto"
            )))
        }
    };
    let oid = o
        .opt_obj("out")?
        .and_then(remote_output_stream_oid)
        .ok_or_else(|| Failure::io("FilePath$Archive without an output stream"))?;
    let scanner = o.obj("scanner")?;
    let mut sink = Sink::buffered(cx.remote, oid, cx.request_id);
    let found = scanned(Path::new(path), scanner);
    let written = found.and_then(|f| {
        match format {
            Format::Tar { gzip } => write_tar(&f, gzip, &mut sink),
            Format::Zip { prefix } => write_zip(&f, &prefix, &mut sink),
        }
        .map_err(|e| Failure::io(format!("cannot archive {path}: {e}")))
    });
    // As Java's try-with-resources: the stream is closed whatever happened.
    let closed = sink.close(None);
    let count = written?;
    closed.map_err(|e| Failure::io(format!("cannot archive {path}: {e}")))?;
    integer(cx, count as i32)
}

fn untar(cx: &Ctx, path: &str, o: Obj) -> R {
    Ok(super::untar::untar_remote(
        path,
        o.heap,
        Value::Ref(o.id),
        cx.remote,
    ))
}

/// `ArtifactArchiver$ListFiles`: the files an archiveArtifacts pattern selects, as a
/// `HashMap` from path to path (`/`-separated).
fn list_files(cx: &Ctx, path: &str, o: Obj) -> R {
    let includes = o.opt_str("includes")?.unwrap_or_default();
    let excludes = o.opt_str("excludes")?;
    let set = FileSet::new(
        &includes,
        excludes.as_deref(),
        o.bool("defaultExcludes")?,
        o.bool("caseSensitive")?,
    );
    let base = Path::new(path);
    let found = if base.exists() {
        scan(base, &set, o.bool("followSymlinks")?)
            .map_err(|e| Failure::fs(&e, "cannot scan", path))?
    } else {
        // Ant: "basedir does not exist".
        return Err(Failure::io(format!("basedir {path} does not exist.")));
    };
    let mut b = cx.builder();
    let entries: Vec<(Value, Value)> = found
        .iter()
        .map(|(rel, _)| {
            let k = b.string(rel);
            (k, k)
        })
        .collect();
    let map = b.hash_map(&entries)?;
    Ok(value(b, map))
}

/// `FilePath$CopyRecursiveRemoteToLocal` (archiveArtifacts' transfer): the named files as a
/// tar (gzipped unless the controller turned compression off) into a remote-to-local pipe.
fn copy_recursive(cx: &Ctx, path: &str, o: Obj) -> R {
    let gz = gzip(o, "compression")?;
    let oid = match o.opt_obj("pipe")?.and_then(pipe_of) {
        Some((true, oid)) => oid,
        _ => {
            return Err(Failure::io(
                "CopyRecursiveRemoteToLocal without a remote-to-local pipe",
            ))
        }
    };
    let scanner = o.obj("scanner")?;
    let mut sink = Sink::buffered(cx.remote, oid, cx.request_id);
    let written = scanned(Path::new(path), scanner).and_then(|f| {
        write_tar(&f, gz, &mut sink)
            .map_err(|e| Failure::io(format!("cannot copy from {path}: {e}")))
    });
    let closed = match &written {
        Ok(_) => sink.close(None),
        Err(f) => sink.close(Some(crate::remoting::command::StreamError {
            class: "java.io.IOException",
            message: &f.message,
        })),
    };
    let count = written?;
    closed.map_err(|e| Failure::io(format!("cannot copy from {path}: {e}")))?;
    integer(cx, count as i32)
}

/// `Fingerprinter$FindRecords` (`fingerprint: true`): the MD5 of every file the pattern
/// selects, and whether this build produced it (modified after the build began, with
/// Jenkins' 2 s margin).
fn find_records(cx: &Ctx, path: &str, o: Obj) -> R {
    use md5::Digest as _;
    let targets = o.opt_str("targets")?.unwrap_or_default();
    let excludes = o.opt_str("excludes")?;
    let started = o.long("buildTimestamp")?;
    let set = FileSet::new(
        &targets,
        excludes.as_deref(),
        o.bool("defaultExcludes")?,
        o.bool("caseSensitive")?,
    );
    let found =
        scan(Path::new(path), &set, true).map_err(|e| Failure::fs(&e, "cannot scan", path))?;
    let mut b = cx.builder();
    let mut records = Vec::new();
    for (rel, file) in found {
        let mut f = fs::File::open(&file).map_err(|e| {
            Failure::io(format!(
                "Failed to compute digest for {}: {e}",
                file.display()
            ))
        })?;
        let mut h = md5::Md5::new();
        let mut buf = vec![0u8; 256 << 10];
        loop {
            let n = f.read(&mut buf).map_err(|e| {
                Failure::io(format!(
                    "Failed to compute digest for {}: {e}",
                    file.display()
                ))
            })?;
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
        }
        let md5: String = h.finalize().iter().map(|x| format!("{x:02x}")).collect();
        let produced = started <= super::files::mtime_millis(&file) + 2000;
        let name = file
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let rel = b.string(&rel);
        let name = b.string(&name);
        let md5 = b.string(&md5);
        records.push(b.object(
            "hudson.tasks.Fingerprinter$Record",
            &[
                ("produced", Value::Boolean(produced)),
                ("fileName", name),
                ("md5sum", md5),
                ("relativePath", rel),
            ],
        )?);
    }
    let list = b.array_list(&records)?;
    Ok(value(b, list))
}

/// `FilePath$ValidateAntFileMask`: asked only when a pattern matched nothing, for a hint. A
/// null answer (no hint) is always valid; nectr gives the simple hint Jenkins gives for a
/// pattern whose first directory does not exist.
fn validate_mask(cx: &Ctx, path: &str, o: Obj) -> R {
    let masks = o.opt_str("fileMasks")?.unwrap_or_default();
    for mask in crate::antglob::split_patterns(&masks) {
        let first = mask.split(['/', '\\']).next().unwrap_or("");
        if !first.is_empty()
            && !first.contains(['*', '?'])
            && mask.contains(['/', '\\'])
            && !Path::new(path).join(first).exists()
        {
            let mut b = cx.builder();
            let v = b.string(&format!("‘{first}’ doesn’t match anything"));
            return Ok(value(b, v));
        }
    }
    Ok(Answer::null())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!(
            "nectr-archive-{tag}-{}-{}",
            std::process::id(),
            super::super::files::random_u64()
        ));
        fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn scans_files_like_ant_with_links_and_excludes() {
        let d = scratch("scan");
        fs::create_dir_all(d.join("a/b")).unwrap();
        fs::create_dir_all(d.join("empty")).unwrap();
        fs::create_dir_all(d.join(".git")).unwrap();
        fs::write(d.join("a/b/x.txt"), "x").unwrap();
        fs::write(d.join("a/y.log"), "y").unwrap();
        fs::write(d.join(".git/config"), "c").unwrap();
        fs::write(d.join("top~"), "t").unwrap();
        std::os::unix::fs::symlink("a", d.join("link")).unwrap();
        std::os::unix::fs::symlink("nowhere", d.join("dangling")).unwrap();
        let all = FileSet::new("**", None, true, true);
        let names: Vec<String> = scan(&d, &all, true)
            .unwrap()
            .into_iter()
            .map(|f| f.0)
            .collect();
        assert_eq!(
            names,
            vec![
                "a/b/x.txt",
                "a/y.log",
                "dangling",
                "link/b/x.txt",
                "link/y.log"
            ]
        );
        let names: Vec<String> = scan(&d, &all, false)
            .unwrap()
            .into_iter()
            .map(|f| f.0)
            .collect();
        assert_eq!(names, vec!["a/b/x.txt", "a/y.log"]);
        let txt = FileSet::new("**/*.txt", Some("link/**"), true, true);
        let names: Vec<String> = scan(&d, &txt, true)
            .unwrap()
            .into_iter()
            .map(|f| f.0)
            .collect();
        assert_eq!(names, vec!["a/b/x.txt"]);
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_link_loop_ends() {
        let d = scratch("loop");
        fs::create_dir_all(d.join("a")).unwrap();
        fs::write(d.join("a/f"), "f").unwrap();
        std::os::unix::fs::symlink("..", d.join("a/up")).unwrap();
        let all = FileSet::new("**", None, true, true);
        let names: Vec<String> = scan(&d, &all, true)
            .unwrap()
            .into_iter()
            .map(|f| f.0)
            .collect();
        assert_eq!(names, vec!["a/f"]);
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn tar_entries_round_trip_through_our_reader() {
        let d = scratch("tar");
        let long = "d".repeat(120);
        fs::create_dir_all(d.join(&long)).unwrap();
        fs::write(d.join(&long).join("é ü.txt"), "hello").unwrap();
        std::os::unix::fs::symlink("target", d.join("ln")).unwrap();
        let found = scan_full(&d).unwrap();
        let mut t = TarOut::new(Vec::new());
        for (n, p) in &found {
            t.add(p, n).unwrap();
        }
        let (count, bytes) = t.finish().unwrap();
        assert_eq!(count, 3);
        let out = scratch("tar-out");
        super::super::untar::extract(&bytes[..], false, &out).unwrap();
        assert_eq!(
            fs::read_to_string(out.join(&long).join("é ü.txt")).unwrap(),
            "hello"
        );
        assert_eq!(
            fs::read_link(out.join("ln")).unwrap(),
            PathBuf::from("target")
        );
        fs::remove_dir_all(&d).unwrap();
        fs::remove_dir_all(&out).unwrap();
    }
}
