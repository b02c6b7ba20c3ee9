//! Pages a Jenkins admin opens on a node (agent-callables.md §A13–§A17, §F): its environment,
//! its "system properties", a thread dump, the class-loading statistics, and the host names
//! the controller may ask for. Answers carry real values of this machine and process, named
//! as a JVM names them where a page expects Java names.

use std::fs;

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
