//! durable-task (agent-callables.md §D.2): what a Pipeline `sh` step asks of the agent in the
//! default polling mode. The controller launches a wrapper script (through
//! `Launcher$RemoteLaunchCallable`, see [`super::process`]) that writes the step's output to
//! `jenkins-log.txt` and its exit code to `jenkins-result.txt` in a control directory; it then
//! polls: `WriteLog` sends the log from the offset it asks for (the live log),
//! `StatusCheck` reads the exit code, `GetOutput` returns `returnStdout`'s output. The wrapper
//! is a detached process, so a step survives the agent's reconnect and a controller restart.

use std::fs;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

use super::files::bytes_answer;
use super::sink::{remote_output_stream_oid, Sink, CHUNK};
use super::view::Obj;
use super::{integer, string, value, void, Ctx, Failure, Kind, Native, Run, R};
use crate::javaser::Value;

const FMC: &str = "org.jenkinsci.plugins.durabletask.FileMonitoringTask$FileMonitoringController";

/// durable-task callables.
pub const CALLABLES: &[Native] = &[
    Native {
        class: "org.jenkinsci.plugins.durabletask.AgentInfo$GetAgentInfo",
        kind: Kind::Blocking,
        run: Run::File(agent_info),
    },
    Native {
        class: "org.jenkinsci.plugins.durabletask.FileMonitoringTask$FileMonitoringController$WriteLog",
        kind: Kind::Streaming,
        run: Run::File(write_log),
    },
    Native {
        class: "org.jenkinsci.plugins.durabletask.FileMonitoringTask$FileMonitoringController$StatusCheck",
        kind: Kind::Blocking,
        run: Run::File(status_check),
    },
    Native {
        class: "org.jenkinsci.plugins.durabletask.FileMonitoringTask$FileMonitoringController$GetOutput",
        kind: Kind::Blocking,
        run: Run::File(get_output),
    },
    Native {
        class: "org.jenkinsci.plugins.durabletask.FileMonitoringTask$FileMonitoringController$TranscodingCharsetForSystemDefault",
        kind: Kind::Instant,
        run: Run::Call(transcoding_charset),
    },
];

/// `os.arch` as a JVM names it.
fn java_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "x86" => "x86",
        "aarch64" => "aarch64",
        "powerpc64" if cfg!(target_endian = "little") => "ppc64le",
        other => other,
    }
}

/// `AgentInfo$GetAgentInfo` on the node's root: the OS and architecture for durable-task's
/// optional native wrapper, and whether it is cached (`caches/durable-task/`, created here).
fn agent_info(cx: &Ctx, root: &str, o: Obj) -> R {
    let version = o.opt_str("binaryVersion")?.unwrap_or_default();
    let arch = match java_arch() {
        "aarch64" => "aarch64",
        "ppc64le" => "ppc64le",
        "amd64" => "64",
        "x86" => "32",
        _ => "NOTSUPPORTED",
    };
    let name = format!("durable_task_monitor_{version}_linux_{arch}");
    let cache = Path::new(root).join("caches/durable-task");
    let (path, cached, available) = match fs::create_dir_all(&cache) {
        Ok(()) => {
            let p = cache.join(&name);
            let cached = p.exists();
            (p.to_string_lossy().into_owned(), cached, true)
        }
        Err(_) => (name, false, false),
    };
    let mut b = cx.builder();
    let os = b.enum_const(
        "org.jenkinsci.plugins.durabletask.AgentInfo$OsType",
        "LINUX",
    )?;
    let a = b.string(arch);
    let p = b.string(&path);
    let v = b.object(
        "org.jenkinsci.plugins.durabletask.AgentInfo",
        &[
            ("binaryCached", Value::Boolean(cached)),
            ("binaryCompatible", Value::Boolean(true)),
            ("cachingAvailable", Value::Boolean(available)),
            ("architecture", a),
            ("binaryPath", p),
            ("os", os),
        ],
    )?;
    Ok(value(b, v))
}

/// `WriteLog`: the log from `lastLocation` to its current end, into the controller's `sink`,
/// which is then released (not closed: the controller counts what it received). Read and sent
/// in chunks, so a burst of output costs one window of memory, not the burst.
fn write_log(cx: &Ctx, path: &str, o: Obj) -> R {
    let last = o.long("lastLocation")?;
    let oid = o
        .opt_obj("sink")?
        .and_then(remote_output_stream_oid)
        .ok_or_else(|| Failure::io(format!("{FMC}$WriteLog without a sink")))?;
    let mut sink = Sink::buffered(cx.remote, oid, cx.request_id);
    let len = fs::metadata(path).map_or(0, |m| m.len());
    if last >= 0 && len > last as u64 {
        let mut f = fs::File::open(path).map_err(|e| Failure::fs(&e, "cannot read", path))?;
        f.seek(SeekFrom::Start(last as u64))
            .map_err(|e| Failure::fs(&e, "cannot read", path))?;
        // Only what was there when the call began, as Java reads `length()` once.
        let mut left = len - last as u64;
        let mut buf = vec![0u8; CHUNK.min(left as usize)];
        while left > 0 {
            let want = buf.len().min(left as usize);
            let n = f
                .read(&mut buf[..want])
                .map_err(|e| Failure::fs(&e, "cannot read", path))?;
            if n == 0 {
                break;
            }
            sink.write_all(&buf[..n])
                .map_err(|e| Failure::io(format!("cannot send the log of {path}: {e}")))?;
            left -= n as u64;
        }
    }
    sink.release()
        .map_err(|e| Failure::io(format!("cannot send the log of {path}: {e}")))?;
    void()
}

/// `StatusCheck`: the exit code in `jenkins-result.txt`, null while there is none.
fn status_check(cx: &Ctx, path: &str, _: Obj) -> R {
    let text = match fs::read(path) {
        Ok(b) if !b.is_empty() => String::from_utf8_lossy(&b).trim().to_string(),
        _ => return Ok(value(cx.builder(), Value::Null)),
    };
    if text.is_empty() {
        return Ok(value(cx.builder(), Value::Null));
    }
    let code: i64 = text.parse().map_err(|_| {
        Failure::io(format!(
            "corrupted content in {path}: java.lang.NumberFormatException: For input string: \"{text}\""
        ))
    })?;
    integer(cx, code.min(i32::MAX as i64) as i32)
}

/// `GetOutput` (`returnStdout: true`): the output file, transcoded to UTF-8 when the step's
/// charset is another one.
fn get_output(cx: &Ctx, path: &str, o: Obj) -> R {
    let charset = o.opt_str("charset")?;
    let data = fs::read(path).map_err(|e| Failure::fs(&e, "cannot read", path))?;
    let data = match charset.as_deref() {
        None | Some("SYSTEM_DEFAULT") => data,
        Some(cs) => transcode_to_utf8(data, cs)?,
    };
    bytes_answer(cx, data)
}

/// Bytes in charset `cs` re-encoded as UTF-8 (UTF-8 itself unchanged).
fn transcode_to_utf8(data: Vec<u8>, cs: &str) -> Result<Vec<u8>, Failure> {
    match cs.to_ascii_uppercase().replace('_', "-").as_str() {
        "UTF-8" | "UTF8" => Ok(data),
        "US-ASCII" | "ASCII" => Ok(data
            .iter()
            .map(|b| if b.is_ascii() { *b as char } else { '\u{FFFD}' })
            .collect::<String>()
            .into_bytes()),
        "ISO-8859-1" | "ISO8859-1" | "LATIN1" => {
            Ok(data.iter().map(|b| *b as char).collect::<String>().into_bytes())
        }
        other => Err(Failure::io(format!(
            "java.nio.charset.UnsupportedCharsetException: {other} (nectr-agent transcodes UTF-8, US-ASCII and ISO-8859-1)"
        ))),
    }
}

/// `TranscodingCharsetForSystemDefault`: null, the agent's charset is UTF-8.
fn transcoding_charset(cx: &Ctx, _: Obj) -> R {
    let _ = string;
    Ok(value(cx.builder(), Value::Null))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latin1_output_becomes_utf8() {
        assert_eq!(
            transcode_to_utf8(vec![0x63, 0x61, 0x66, 0xe9], "ISO-8859-1").unwrap(),
            "café".as_bytes()
        );
        assert!(transcode_to_utf8(vec![1], "EBCDIC").is_err());
    }
}
