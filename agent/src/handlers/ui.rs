//! Pages a Jenkins admin opens on a node (agent-callables.md §A13–§A17, §F): its environment,
//! its "system properties", a thread dump, the class-loading statistics, and the host names
//! the controller may ask for. Answers carry real values of this machine and process, named
//! as a JVM names them where a page expects Java names.

use std::fs;
use std::path::{Path, PathBuf};

use super::process::agent_environment;
use super::view::Obj;
use super::{integer, long, value, Ctx, Failure, Kind, Native, Run, R};
use crate::javaser::{Block, Builder, Content, Value};

/// UI callables.
pub const CALLABLES: &[Native] = &[
    instant(
        "hudson.slaves.SlaveComputer$ListFullEnvironment",
        full_environment,
    ),
    blocking(
        "hudson.util.RemotingDiagnostics$GetSystemProperties",
        system_properties,
    ),
    blocking("hudson.util.RemotingDiagnostics$GetThreadDump", thread_dump),
    instant("hudson.slaves.SlaveComputer$LoadingCount", zero_int),
    instant(
        "hudson.slaves.SlaveComputer$LoadingPrefetchCacheCount",
        zero_int,
    ),
    instant("hudson.slaves.SlaveComputer$LoadingTime", zero_long),
    blocking("hudson.model.Computer$ListPossibleNames", possible_names),
    instant("hudson.model.Computer$GetFallbackName", null),
];

const fn instant(class: &'static str, f: fn(&Ctx, Obj) -> R) -> Native {
    Native {
        class,
        kind: Kind::Instant,
        run: Run::Call(f),
    }
}

const fn blocking(class: &'static str, f: fn(&Ctx, Obj) -> R) -> Native {
    Native {
        class,
        kind: Kind::Blocking,
        run: Run::Call(f),
    }
}

/// A `java.util.TreeMap<String,String>` in natural order.
fn tree_map(b: &mut Builder, entries: &[(String, String)]) -> Result<Value, Failure> {
    let mut sorted: Vec<&(String, String)> = entries.iter().collect();
    sorted.sort_by(|a, c| {
        a.0.encode_utf16()
            .collect::<Vec<_>>()
            .cmp(&c.0.encode_utf16().collect::<Vec<_>>())
    });
    sorted.dedup_by(|a, c| a.0 == c.0);
    let map = b.object("java.util.TreeMap", &[])?;
    let mut data = vec![Content::Block(Block::new(
        (sorted.len() as i32).to_be_bytes().to_vec(),
    ))];
    for (k, v) in sorted {
        data.push(Content::Value(b.string(k)));
        data.push(Content::Value(b.string(v)));
    }
    b.set_data(map, "java.util.TreeMap", data)?;
    Ok(map)
}

/// A `java.util.LinkedHashMap<String,String>` in the given order.
fn linked_hash_map(b: &mut Builder, entries: &[(String, String)]) -> Result<Value, Failure> {
    let n = entries.len();
    let mut capacity = 16usize;
    while (n as f64) > capacity as f64 * 0.75 {
        capacity *= 2;
    }
    let map = b.object(
        "java.util.LinkedHashMap",
        &[
            ("loadFactor", Value::Float(0.75)),
            ("threshold", Value::Int((capacity as f64 * 0.75) as i32)),
        ],
    )?;
    let mut block = (capacity as i32).to_be_bytes().to_vec();
    block.extend_from_slice(&(n as i32).to_be_bytes());
    let mut data = vec![Content::Block(Block::new(block))];
    for (k, v) in entries {
        data.push(Content::Value(b.string(k)));
        data.push(Content::Value(b.string(v)));
    }
    b.set_data(map, "java.util.HashMap", data)?;
    Ok(map)
}

fn full_environment(cx: &Ctx, _: Obj) -> R {
    let env: Vec<(String, String)> = agent_environment(cx)
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let mut b = cx.builder();
    let m = tree_map(&mut b, &env)?;
    Ok(value(b, m))
}

fn uname() -> (String, String) {
    // SAFETY: uname fills the zeroed struct; the fields are NUL-terminated.
    let mut u: libc::utsname = unsafe { std::mem::zeroed() };
    if unsafe { libc::uname(&mut u) } != 0 {
        return ("unknown".into(), "unknown".into());
    }
    let s = |f: &[libc::c_char]| {
        let bytes: Vec<u8> = f
            .iter()
            .take_while(|c| **c != 0)
            .map(|c| *c as u8)
            .collect();
        String::from_utf8_lossy(&bytes).into_owned()
    };
    (s(&u.release), s(&u.nodename))
}

/// What a JVM's `System.getProperties()` would hold that is true of this process, plus
/// nectr's own facts.
fn system_properties(cx: &Ctx, _: Obj) -> R {
    let (release, hostname) = uname();
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_default();
    let arch = cx.host.architecture();
    let os_arch = arch
        .rsplit_once('(')
        .map(|(_, a)| a.trim_end_matches(')').to_string())
        .unwrap_or_default();
    let props = vec![
        ("file.encoding", "UTF-8".to_string()),
        ("file.separator", "/".to_string()),
        ("java.io.tmpdir", cx.host.temp_dir()),
        ("line.separator", "\n".to_string()),
        ("native.encoding", "UTF-8".to_string()),
        ("os.arch", os_arch),
        ("os.name", "Linux".to_string()),
        ("os.version", release),
        ("path.separator", ":".to_string()),
        ("sun.jnu.encoding", "UTF-8".to_string()),
        ("user.dir", cx.host.absolute_path(".")),
        ("user.home", std::env::var("HOME").unwrap_or_default()),
        ("user.name", user),
        ("nectr.agent.version", env!("CARGO_PKG_VERSION").to_string()),
        ("nectr.agent.pid", std::process::id().to_string()),
        ("nectr.agent.hostname", hostname),
        (
            "nectr.agent.runtime",
            "native (Rust, no JVM): java.* properties do not apply".to_string(),
        ),
    ];
    let entries: Vec<(String, String)> =
        props.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
    let mut b = cx.builder();
    let m = tree_map(&mut b, &entries)?;
    Ok(value(b, m))
}

/// The agent's threads as the thread-dump page lists them: name → state, from
/// `/proc/self/task`. A native agent has no Java stacks; the text says so.
fn thread_dump(cx: &Ctx, _: Obj) -> R {
    let mut threads = Vec::new();
    if let Ok(rd) = fs::read_dir("/proc/self/task") {
        let mut tids: Vec<u32> = rd
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
            .collect();
        tids.sort_unstable();
        for tid in tids {
            let comm = fs::read_to_string(format!("/proc/self/task/{tid}/comm"))
                .unwrap_or_default()
                .trim()
                .to_string();
            let state = fs::read_to_string(format!("/proc/self/task/{tid}/status"))
                .ok()
                .and_then(|s| {
                    s.lines()
                        .find_map(|l| l.strip_prefix("State:").map(|v| v.trim().to_string()))
                })
                .unwrap_or_else(|| "unknown".into());
            threads.push((
                format!("{comm} (tid {tid})"),
                format!("state: {state}\n\tnative thread of nectr-agent (no Java stack)\n"),
            ));
        }
    }
    let mut b = cx.builder();
    let m = linked_hash_map(&mut b, &threads)?;
    Ok(value(b, m))
}

fn zero_int(cx: &Ctx, _: Obj) -> R {
    integer(cx, 0)
}

fn zero_long(cx: &Ctx, _: Obj) -> R {
    long(cx, 0)
}

fn null(cx: &Ctx, _: Obj) -> R {
    Ok(value(cx.builder(), Value::Null))
}

/// `Computer$ListPossibleNames`: the machine's non-loopback IPv4 addresses.
fn possible_names(cx: &Ctx, _: Obj) -> R {
    let mut names = Vec::new();
    let mut ifs: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs allocates a list we walk read-only and free once.
    unsafe {
        if libc::getifaddrs(&mut ifs) == 0 {
            let mut cur = ifs;
            while !cur.is_null() {
                let a = (*cur).ifa_addr;
                if !a.is_null() && (*a).sa_family as i32 == libc::AF_INET {
                    let sin = a as *const libc::sockaddr_in;
                    let ip = std::net::Ipv4Addr::from(u32::from_be((*sin).sin_addr.s_addr));
                    if !ip.is_loopback() && !names.contains(&ip.to_string()) {
                        names.push(ip.to_string());
                    }
                }
                cur = (*cur).ifa_next;
            }
            libc::freeifaddrs(ifs);
        }
    }
    let mut b = cx.builder();
    let items: Vec<Value> = names.iter().map(|n| b.string(n)).collect();
    let list = b.array_list(&items)?;
    Ok(value(b, list))
}

// The workspace browser (agent-callables.md §D.7): `/job/X/ws/…` on a freestyle job, the
// "Workspace" link of a Pipeline step.

/// Workspace-browser callables.
pub const WORKSPACE: &[Native] = &[
    instant(
        "hudson.model.DirectoryBrowserSupport$IsAbsolute",
        is_absolute,
    ),
    blocking(
        "hudson.model.DirectoryBrowserSupport$BuildChildPaths",
        build_child_paths,
    ),
    Native {
        class: "hudson.FilePath$HasSymlink",
        kind: Kind::Blocking,
        run: Run::File(has_symlink),
    },
    Native {
        class: "hudson.FilePath$IsDescendant",
        kind: Kind::Blocking,
        run: Run::File(is_descendant),
    },
    Native {
        class: "jenkins.util.VirtualFile$Readable",
        kind: Kind::Blocking,
        run: Run::File(readable),
    },
    Native {
        class: "jenkins.util.VirtualFile$Scanner",
        kind: Kind::Blocking,
        run: Run::File(pattern_scan),
    },
    Native {
        class: "hudson.FilePath$ListFilter",
        kind: Kind::Blocking,
        run: Run::File(list_filter),
    },
    Native {
        class: "hudson.FilePath$ListGlob",
        kind: Kind::Blocking,
        run: Run::File(list_glob),
    },
];

/// The `OpenOption`s of a callable: (NOFOLLOW_LINKS, IGNORE_TMP_DIRS).
fn open_options(o: Obj, field: &str) -> (bool, bool) {
    let Some(Value::Ref(id)) = o.raw(field) else {
        return (false, false);
    };
    let Some(arr) = o.heap.array(id) else {
        return (false, false);
    };
    let crate::javaser::ArrayData::Object(items) = &arr.data else {
        return (false, false);
    };
    let mut r = (false, false);
    for i in items {
        if let Some(crate::javaser::Entry::Enum(e)) = i.as_ref().and_then(|id| o.heap.get(id)) {
            match o.heap.str(e.name).map(|n| n.to_string()).as_deref() {
                Some("NOFOLLOW_LINKS") => r.0 = true,
                Some("IGNORE_TMP_DIRS") => r.1 = true,
                _ => {}
            }
        }
    }
    r
}

fn is_link(p: &Path) -> bool {
    fs::symlink_metadata(p).is_ok_and(|m| m.file_type().is_symlink())
}

/// `FilePath.isTmpDir(String)`: a name ending in `@tmp` (longer than the suffix).
fn tmp_name(name: &str) -> bool {
    name.len() > 4 && name.ends_with("@tmp")
}

/// `doesFileAncestorMatch`: `test` holds for `file` or an ancestor below `root`.
fn ancestor_matches(file: &Path, root: Option<&str>, test: &dyn Fn(&Path) -> bool) -> bool {
    let Some(root) = root else { return false };
    let Ok(real_root) = fs::canonicalize(root) else {
        return false;
    };
    let mut cur = Some(file);
    while let Some(c) = cur {
        match fs::canonicalize(c) {
            Ok(real) if real == real_root => return false,
            Ok(_) => {}
            Err(_) => return false,
        }
        if test(c) {
            return true;
        }
        cur = c.parent();
    }
    false
}

/// `FilePath.isSymlink(file, root, options)`.
fn hidden_link(file: &Path, root: Option<&str>, no_follow: bool) -> bool {
    no_follow && (is_link(file) || ancestor_matches(file, root, &is_link))
}

/// `FilePath.isTmpDir(file, root, options)`.
fn hidden_tmp(file: &Path, root: Option<&str>, ignore_tmp: bool) -> bool {
    let tmp = |p: &Path| {
        p.is_dir()
            && p.file_name()
                .is_some_and(|n| tmp_name(&n.to_string_lossy()))
    };
    ignore_tmp && (tmp(file) || ancestor_matches(file, root, &tmp))
}

fn is_absolute(cx: &Ctx, o: Obj) -> R {
    super::boolean(cx, o.str("fragment")?.starts_with('/'))
}

fn has_symlink(cx: &Ctx, path: &str, o: Obj) -> R {
    let (no_follow, _) = open_options(o, "openOptions");
    let root = o.opt_str("verificationRoot")?;
    super::boolean(cx, hidden_link(Path::new(path), root.as_deref(), no_follow))
}

fn readable(cx: &Ctx, path: &str, _: Obj) -> R {
    let c = std::ffi::CString::new(path).map_err(|_| Failure::io("a path with a NUL byte"))?;
    // SAFETY: access(2) on a NUL-terminated path.
    let ok = unsafe { libc::access(c.as_ptr(), libc::R_OK) } == 0;
    super::boolean(cx, ok)
}

/// `FilePath$IsDescendant`: is `potentialChildRelativePath` under this directory once every
/// link on the way is resolved?
fn is_descendant(cx: &Ctx, path: &str, o: Obj) -> R {
    let child = o.str("potentialChildRelativePath")?;
    if child.starts_with('/') {
        return Err(Failure {
            class: "java.lang.IllegalArgumentException",
            message: format!(
                "Only a relative path is supported, the given path is absolute: {child}"
            ),
        });
    }
    let parent = super::files::absolute(Path::new(path));
    let Ok(real_parent) = fs::canonicalize(&parent) else {
        return super::boolean(cx, false);
    };
    let target = parent.join(&child);
    let answer = match fs::canonicalize(&target) {
        Ok(real) => real.starts_with(&real_parent),
        // A missing file: judged on the normalised path, as Jenkins does.
        Err(_) => normalize(&target).starts_with(normalize(&parent)),
    };
    super::boolean(cx, answer)
}

fn normalize(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            std::path::Component::ParentDir => {
                out.pop();
            }
            std::path::Component::CurDir => {}
            other => out.push(other.as_os_str()),
        }
    }
    out
}

/// `Util.rawEncode`: a path segment for a URL.
pub fn raw_encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        let safe = b.is_ascii_alphanumeric() || b"!$&'()*+,-.=@_".contains(&b);
        if safe {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// One child as the browser lists it.
struct Child {
    path: PathBuf,
    name: String,
    dir: bool,
}

/// `FilePath.list(root, options)`: children without the links and tmp dirs the options hide.
fn children(dir: &Path, root: Option<&str>, no_follow: bool, ignore_tmp: bool) -> Vec<Child> {
    let Ok(rd) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<Child> = rd
        .flatten()
        .map(|e| e.path())
        .filter(|p| !hidden_link(p, root, no_follow) && !hidden_tmp(p, root, ignore_tmp))
        .map(|p| Child {
            name: p
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            dir: p.is_dir(),
            path: p,
        })
        .collect();
    // Directories first, then by name as a collator orders them (case folded first).
    out.sort_by(|a, b| {
        (!a.dir, a.name.to_lowercase(), &a.name).cmp(&(!b.dir, b.name.to_lowercase(), &b.name))
    });
    out
}

fn dbs_path(b: &mut Builder, href: &str, c: &Child) -> Result<Value, Failure> {
    let meta = fs::metadata(&c.path).ok();
    let c_path = std::ffi::CString::new(c.path.as_os_str().as_encoded_bytes()).ok();
    // SAFETY: access(2) on a NUL-terminated path.
    let readable = c_path.is_some_and(|p| unsafe { libc::access(p.as_ptr(), libc::R_OK) } == 0);
    let href = b.string(href);
    let title = b.string(&c.name);
    Ok(b.object(
        "hudson.model.DirectoryBrowserSupport$Path",
        &[
            ("isFolder", Value::Boolean(c.dir)),
            ("isReadable", Value::Boolean(readable)),
            (
                "lastModified",
                Value::Long(super::files::mtime_millis(&c.path)),
            ),
            ("size", Value::Long(meta.map_or(0, |m| m.len() as i64))),
            ("href", href),
            ("title", title),
        ],
    )?)
}

/// `DirectoryBrowserSupport$BuildChildPaths`: the listing of a workspace directory, a
/// directory whose only meaningful child is a directory collapsed into one row.
fn build_child_paths(cx: &Ctx, o: Obj) -> R {
    let cur = o.obj("cur")?;
    let dir = cur.obj("f")?.str("remote")?;
    let root = match cur.opt_obj("root")? {
        Some(r) => r.opt_str("remote")?,
        None => None,
    };
    let (no_follow, ignore_tmp) = open_options(o, "openOptions");
    let mut b = cx.builder();
    let mut rows = Vec::new();
    let kids = children(Path::new(&dir), root.as_deref(), no_follow, ignore_tmp);
    for k in &kids {
        let mut row = vec![dbs_path(&mut b, &raw_encode(&k.name), k)?];
        if k.dir {
            let mut rel = raw_encode(&k.name);
            let mut cur_dir = k.path.clone();
            loop {
                let sub: Vec<Child> = children(&cur_dir, root.as_deref(), no_follow, ignore_tmp)
                    .into_iter()
                    .filter(|c| !c.name.starts_with('.') && c.name != "CVS" && c.name != ".svn")
                    .collect();
                if sub.len() != 1 || !sub[0].dir {
                    break;
                }
                rel = format!("{rel}/{}", raw_encode(&sub[0].name));
                row.push(dbs_path(&mut b, &rel, &sub[0])?);
                cur_dir = sub[0].path.clone();
            }
        }
        rows.push(b.array_list(&row)?);
    }
    let glob = b.array_list(&rows)?;
    let all = fs::read_dir(&dir)
        .map(|rd| rd.flatten().map(|e| e.path()).collect::<Vec<_>>())
        .unwrap_or_default();
    let contains_link = no_follow && all.iter().any(|p| hidden_link(p, root.as_deref(), true));
    let contains_tmp = ignore_tmp
        && all.iter().any(|p| {
            p.is_dir()
                && p.file_name()
                    .is_some_and(|n| tmp_name(&n.to_string_lossy()))
        });
    let r = b.object(
        "hudson.model.DirectoryBrowserSupport$BuildChildPathsResult",
        &[
            ("containsSymLink", Value::Boolean(contains_link)),
            ("containsTmpDir", Value::Boolean(contains_tmp)),
            ("glob", glob),
        ],
    )?;
    Ok(value(b, r))
}

/// `VirtualFile$Scanner`: the relative paths an Ant pattern selects (the browser's pattern
/// view), hidden links and tmp dirs left out.
fn pattern_scan(cx: &Ctx, path: &str, o: Obj) -> R {
    let includes = o.opt_str("includes")?.unwrap_or_default();
    let excludes = o.opt_str("excludes")?;
    let root = o.opt_str("verificationRoot")?;
    let (no_follow, ignore_tmp) = open_options(o, "openOptions");
    let mut b = cx.builder();
    let mut names = Vec::new();
    if !includes.is_empty() {
        let set = crate::antglob::FileSet::new(
            &includes,
            excludes.as_deref(),
            o.bool("useDefaultExcludes")?,
            true,
        );
        let found = super::archive::scan(Path::new(path), &set, !no_follow)
            .map_err(|e| Failure::fs(&e, "cannot scan", path))?;
        for (rel, file) in found {
            if !hidden_link(&file, root.as_deref(), no_follow)
                && !hidden_tmp(&file, root.as_deref(), ignore_tmp)
            {
                names.push(b.string(&rel));
            }
        }
    }
    let list = b.array_list(&names)?;
    Ok(value(b, list))
}

/// `FilePath$ListFilter` with one of core's filters (plugin filters are plugin code).
fn list_filter(cx: &Ctx, path: &str, o: Obj) -> R {
    let filter = o.opt_obj("filter")?;
    let mut b = cx.builder();
    let Ok(rd) = fs::read_dir(path) else {
        let empty = b.array_list(&[])?;
        return Ok(value(b, empty));
    };
    let mut kids: Vec<PathBuf> = rd.flatten().map(|e| e.path()).collect();
    kids.sort();
    let keep: Box<dyn Fn(&Path) -> bool> = match filter {
        None => Box::new(|_| true),
        Some(f) => match f.class().as_str() {
            "hudson.FilePath$DirectoryFilter" => Box::new(|p: &Path| p.is_dir()),
            "hudson.FilePath$OptionalDiscardingFileFilter" => {
                let root = f.opt_str("verificationRoot")?;
                let (nf, it) = open_options(f, "openOptions");
                Box::new(move |p: &Path| {
                    !hidden_link(p, root.as_deref(), nf) && !hidden_tmp(p, root.as_deref(), it)
                })
            }
            "hudson.FilePath$SymlinkRetainingFileFilter" => {
                let root = f.opt_str("verificationRoot")?;
                let (nf, _) = open_options(f, "openOptions");
                Box::new(move |p: &Path| hidden_link(p, root.as_deref(), nf))
            }
            other => {
                return Err(Failure::abort(format!(
                    "the file filter {other} is plugin code nectr-agent does not run natively; start nectr-agent with --jvm auto"
                )))
            }
        },
    };
    let mut items = Vec::new();
    for k in kids.iter().filter(|k| keep(k)) {
        items.push(super::files::file_path(&mut b, &k.to_string_lossy())?);
    }
    let list = b.array_list(&items)?;
    Ok(value(b, list))
}

/// `FilePath$ListGlob`: the files an Ant pattern selects, as agent-local `FilePath[]`.
fn list_glob(cx: &Ctx, path: &str, o: Obj) -> R {
    let includes = o.opt_str("includes")?.unwrap_or_default();
    let excludes = o.opt_str("excludes")?;
    let set = crate::antglob::FileSet::new(
        &includes,
        excludes.as_deref(),
        o.bool("defaultExcludes")?,
        true,
    );
    let base = Path::new(path);
    let found = if base.exists() {
        super::archive::scan(base, &set, true).map_err(|e| Failure::fs(&e, "cannot scan", path))?
    } else {
        Vec::new()
    };
    let mut b = cx.builder();
    let mut items = Vec::new();
    for (_, file) in found {
        items.push(super::files::file_path(&mut b, &file.to_string_lossy())?);
    }
    let arr = b.array(
        "[Lhudson.FilePath;",
        crate::javaser::ArrayData::Object(items),
    )?;
    Ok(value(b, arr))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_encode_matches_jenkins() {
        assert_eq!(raw_encode("a b#c/d"), "a%20b%23c%2Fd");
        assert_eq!(raw_encode("ok!$&'()*+,-.=@_Z9"), "ok!$&'()*+,-.=@_Z9");
        assert_eq!(raw_encode("é"), "%C3%A9");
    }
}
