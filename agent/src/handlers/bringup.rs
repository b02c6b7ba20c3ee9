//! Bring-up and monitors (agent-callables.md §A, §B): what the controller asks before and
//! while a node is online. Answered from the host facts behind [`super::Host`].

use super::view::Obj;
use super::{boolean, string, value, void, Ctx, Failure, Kind, Native, Run, R, REMOTING_VERSION};
use crate::javaser::{Block, BuildError, Builder, Content, Value};

/// Bring-up and monitor callables.
pub const CALLABLES: &[Native] = &[
    instant("hudson.remoting.PingThread$Ping", null),
    instant("hudson.remoting.Channel$IOSyncer", null),
    instant("hudson.slaves.SlaveComputer$SlaveInitializer", null),
    instant("hudson.slaves.ChannelPinger$SetUpRemotePing", null),
    instant("hudson.logging.LogRecorder$SetLevel", null),
    instant(
        "jenkins.util.SystemProperties$AgentCopier$CopySystemProperties",
        null,
    ),
    instant(
        "jenkins.slaves.restarter.JnlpSlaveRestarterInstaller$FindEffectiveRestarters",
        null,
    ),
    instant("hudson.slaves.SlaveComputer$SlaveVersion", slave_version),
    instant(
        "hudson.slaves.SlaveComputer$CommunicationProtocol",
        communication_protocol,
    ),
    instant("hudson.slaves.SlaveComputer$DetectOS", detect_os),
    instant("hudson.slaves.SlaveComputer$DetectDefaultCharset", charset),
    instant("jenkins.slaves.StandardOutputSwapper$ChannelSwapper", no),
    instant("hudson.slaves.SlaveComputer$AbsolutePath", absolute_path),
    instant("hudson.node_monitors.ArchitectureMonitor$GetArchTask", arch),
    instant("hudson.model.Slave$GetClockDifference1", clock),
    instant("hudson.model.Slave$GetClockDifference2", clock),
    instant("hudson.node_monitors.ResponseTimeMonitor$Step2", step2),
    Native {
        class: "hudson.node_monitors.SwapSpaceMonitor$MonitorTask",
        kind: Kind::Blocking,
        run: Run::Call(memory),
    },
    Native {
        class: "hudson.node_monitors.DiskSpaceMonitorDescriptor$GetUsableSpace",
        kind: Kind::Blocking,
        run: Run::File(usable_space),
    },
    Native {
        class: "hudson.node_monitors.TemporarySpaceMonitor$GetTempSpace",
        kind: Kind::Blocking,
        run: Run::File(temp_space),
    },
    Native {
        class: "hudson.slaves.SlaveComputer$SlaveLogFetcher",
        kind: Kind::Blocking,
        run: Run::Call(log_records),
    },
];

const fn instant(class: &'static str, f: fn(&Ctx, Obj) -> R) -> Native {
    Native {
        class,
        kind: Kind::Instant,
        run: Run::Call(f),
    }
}

fn null(_: &Ctx, _: Obj) -> R {
    void()
}

fn slave_version(cx: &Ctx, _: Obj) -> R {
    string(cx, REMOTING_VERSION)
}

fn communication_protocol(cx: &Ctx, _: Obj) -> R {
    string(cx, cx.protocol.name())
}

fn detect_os(cx: &Ctx, _: Obj) -> R {
    boolean(cx, true)
}

fn charset(cx: &Ctx, _: Obj) -> R {
    string(cx, "UTF-8")
}

fn no(cx: &Ctx, _: Obj) -> R {
    boolean(cx, false)
}

fn absolute_path(cx: &Ctx, o: Obj) -> R {
    let rel = o.str("relativePath")?;
    string(cx, &cx.host.absolute_path(&rel))
}

fn arch(cx: &Ctx, _: Obj) -> R {
    string(cx, &cx.host.architecture())
}

fn clock(cx: &Ctx, o: Obj) -> R {
    let start = o.long("startTime")?;
    let mut b = cx.builder();
    let v = b.object(
        "hudson.model.Slave$GetClockDifference3",
        &[
            ("remoteTime", Value::Long(cx.host.now_millis())),
            ("startTime", Value::Long(start)),
        ],
    )?;
    Ok(value(b, v))
}

/// `ResponseTimeMonitor$Step2` → `$Step3` echoing the start time and the `Data` it carried.
fn step2(cx: &Ctx, o: Obj) -> R {
    let start = o.long("start")?;
    let mut b = cx.builder();
    let cur = match o.raw("cur") {
        Some(v) => b.import(o.heap, v),
        None => Value::Null,
    };
    let v = b.object(
        "hudson.node_monitors.ResponseTimeMonitor$Step3",
        &[("start", Value::Long(start)), ("cur", cur)],
    )?;
    Ok(value(b, v))
}

fn memory(cx: &Ctx, _: Obj) -> R {
    let m = cx
        .host
        .memory()
        .map_err(|e| Failure::io(format!("cannot read memory figures: {e}")))?;
    let mut b = cx.builder();
    let v = b.object(
        "hudson.node_monitors.SwapSpaceMonitor$MemoryUsage2",
        &[
            ("availablePhysicalMemory", Value::Long(m.available_physical)),
            ("availableSwapSpace", Value::Long(m.available_swap)),
            ("totalPhysicalMemory", Value::Long(m.total_physical)),
            ("totalSwapSpace", Value::Long(m.total_swap)),
        ],
    )?;
    Ok(value(b, v))
}

fn usable_space(cx: &Ctx, path: &str, _: Obj) -> R {
    disk_space(cx, path)
}

fn temp_space(cx: &Ctx, _: &str, _: Obj) -> R {
    disk_space(cx, &cx.host.temp_dir())
}

/// `DiskSpaceMonitorDescriptor$DiskSpace` of the filesystem holding `path`; null when nothing
/// is usable (as Java's monitor does).
fn disk_space(cx: &Ctx, path: &str) -> R {
    let d = cx
        .host
        .disk_space(path)
        .map_err(|e| Failure::io(format!("cannot read the free space of {path}: {e}")))?;
    let mut b = cx.builder();
    if d.usable <= 0 {
        return Ok(value(b, Value::Null));
    }
    let p = b.string(&d.canonical_path);
    let v = b.object(
        "hudson.node_monitors.DiskSpaceMonitorDescriptor$DiskSpace",
        &[
            ("size", Value::Long(d.usable)),
            ("totalSize", Value::Long(d.total)),
            ("path", p),
        ],
    )?;
    Ok(value(b, v))
}

/// `ArrayList<java.util.logging.LogRecord>` of the agent's recent log, as JDK 17 writes it:
/// default fields, then `writeObject`'s version bytes (1, 0) and a parameter count of -1.
fn log_records(cx: &Ctx, _: Obj) -> R {
    let mut b = cx.builder();
    let list = build_log_records(&mut b, cx)?;
    Ok(value(b, list))
}

fn build_log_records(b: &mut Builder, cx: &Ctx) -> Result<Value, BuildError> {
    let bundle = b.string("sun.util.logging.resources.logging");
    let mut records = Vec::new();
    for (seq, entry) in cx.host.recent_log().iter().enumerate() {
        let (name, number) = match entry.level {
            tracing::Level::ERROR => ("SEVERE", 1000),
            tracing::Level::WARN => ("WARNING", 900),
            tracing::Level::INFO => ("INFO", 800),
            tracing::Level::DEBUG => ("FINE", 500),
            tracing::Level::TRACE => ("FINEST", 300),
        };
        let level_name = b.string(name);
        let level = b.object(
            "java.util.logging.Level",
            &[
                ("value", Value::Int(number)),
                ("name", level_name),
                ("resourceBundleName", bundle),
            ],
        )?;
        let logger = b.string(&entry.target);
        let message = b.string(&entry.message);
        let record = b.object(
            "java.util.logging.LogRecord",
            &[
                ("longThreadID", Value::Long(1)),
                ("millis", Value::Long(entry.millis)),
                ("sequenceNumber", Value::Long(seq as i64)),
                ("threadID", Value::Int(1)),
                ("level", level),
                ("loggerName", logger),
                ("message", message),
            ],
        )?;
        b.set_data(
            record,
            "java.util.logging.LogRecord",
            vec![Content::Block(Block::new(vec![
                1, 0, 0xff, 0xff, 0xff, 0xff,
            ]))],
        )?;
        records.push(record);
    }
    b.array_list(&records)
}
