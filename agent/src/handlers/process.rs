//! Processes (agent-callables.md §C): the build's environment (`EnvVars$GetEnvVars`), the
//! shell (`Shell$DescriptorImpl$Shellinterpreter`), `Launcher$RemoteLaunchCallable` with the
//! exported `Launcher$RemoteProcess` the controller then calls (`getIOtriplet`, `join`,
//! `kill`, `isAlive`), and `Launcher$RemoteLauncher$KillTask`.
//!
//! A launch does what Jenkins' `LocalLauncher` + `Proc.LocalProc` do on a Java agent: print
//! `[dir] $ cmd` unless quiet, build the environment (the agent's own, the overrides applied
//! with Jenkins' semantics, `HUDSON_COOKIE` added), expand `$VARS` in the arguments, refuse a
//! missing working directory, pump stdout/stderr live into the controller's streams (or export
//! them when the controller reads them itself), and end the whole process tree on abort.

use std::collections::HashSet;
use std::io::{Read, Write};
use std::os::unix::process::ExitStatusExt;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use super::input::{input_form, RemoteInput};
use super::sink::{listener_stream, remote_output_stream, remote_output_stream_oid, Sink};
use super::view::{string_map, Obj};
use super::{
    boolean, classes, integer, string, value, void, Ctx, Exported, Failure, Kind, Native, Remote,
    Run, R,
};
use crate::envvars::EnvVars;
use crate::javaser::{Block, Builder, Content, Heap, Value};
use crate::proctree;

/// Process callables.
pub const CALLABLES: &[Native] = &[
    Native {
        class: "hudson.EnvVars$GetEnvVars",
        kind: Kind::Instant,
        run: Run::Call(get_env_vars),
    },
    Native {
        class: "hudson.tasks.Shell$DescriptorImpl$Shellinterpreter",
        kind: Kind::Instant,
        run: Run::Call(shell_interpreter),
    },
    Native {
        class: "hudson.Launcher$RemoteLaunchCallable",
        kind: Kind::Streaming,
        run: Run::Call(launch),
    },
    Native {
        class: "hudson.Launcher$RemoteLauncher$KillTask",
        kind: Kind::Blocking,
        run: Run::Call(kill_task),
    },
];

/// The interface of the exported process.
const REMOTE_PROCESS: &str = "hudson.Launcher$RemoteProcess";

/// How long `join` waits for output still being pumped after the process exited before it
/// reports leaked file descriptors (Jenkins: 10 s per stream).
const PUMP_WAIT: Duration = Duration::from_secs(10);

/// Environment variables of the agent that builds never see: the node's secret and the
/// credentials nectr moves out of its command line into its environment.
const HIDDEN: &[&str] = &[
    "JENKINS_SECRET",
    "NECTR_CREDENTIALS",
    "NECTR_PROXY_CREDENTIALS",
];

/// The agent's environment as builds inherit it (`EnvVars.masterEnvVars`).
pub fn agent_environment(cx: &Ctx) -> EnvVars {
    EnvVars::from_pairs(
        cx.host
            .environment()
            .into_iter()
            .filter(|(k, _)| !HIDDEN.contains(&k.as_str())),
    )
}

/// An `EnvVars` object (a case-insensitive `TreeMap` plus `platform`, null as a Java agent
/// sends it).
pub fn env_vars_object(b: &mut Builder, env: &EnvVars) -> Result<Value, Failure> {
    let cmp = b.object("java.lang.String$CaseInsensitiveComparator", &[])?;
    let obj = b.object(classes::ENV_VARS, &[("comparator", cmp)])?;
    let mut data = vec![Content::Block(Block::new(
        (env.len() as i32).to_be_bytes().to_vec(),
    ))];
    for (k, v) in env.iter() {
        data.push(Content::Value(b.string(k)));
        data.push(Content::Value(b.string(v)));
    }
    b.set_data(obj, "java.util.TreeMap", data)?;
    Ok(obj)
}

fn get_env_vars(cx: &Ctx, _: Obj) -> R {
    let env = agent_environment(cx);
    let mut b = cx.builder();
    let v = env_vars_object(&mut b, &env)?;
    Ok(value(b, v))
}

fn shell_interpreter(cx: &Ctx, _: Obj) -> R {
    string(cx, "/bin/sh")
}

/// `Launcher.printCommandLine`: `[dir] $ a "b c" 'say "hi"'`, masked arguments as stars.
pub fn command_line(cmd: &[String], masks: Option<&[bool]>, work_dir: Option<&str>) -> String {
    let mut line = String::new();
    if let Some(d) = work_dir {
        let last = match d.trim_end_matches(['/', '\\']).rfind(['/', '\\']) {
            Some(i) if i + 1 < d.len() => &d[i + 1..],
            _ => d,
        };
        line.push('[');
        line.push_str(last);
        line.push_str("] ");
    }
    line.push('$');
    for (i, c) in cmd.iter().enumerate() {
        line.push(' ');
        let masked = masks.is_some_and(|m| m.get(i).copied().unwrap_or(false));
        let c = if masked { "********" } else { c.as_str() };
        if c.contains(' ') {
            if c.contains('"') {
                line.push('\'');
                line.push_str(c);
                line.push('\'');
            } else {
                line.push('"');
                line.push_str(c);
                line.push('"');
            }
        } else {
            line.push_str(c);
        }
    }
    line
}

/// The fields of `Launcher$RemoteLaunchCallable` (the class before 2.485 and the record of
/// 2.485 and later have the same names).
struct Launch<'h> {
    cmd: Vec<String>,
    masks: Option<Vec<bool>>,
    env: Vec<String>,
    work_dir: Option<String>,
    quiet: bool,
    reverse_stdin: bool,
    reverse_stdout: bool,
    reverse_stderr: bool,
    input: Option<Obj<'h>>,
    out: Option<i32>,
    err: Option<i32>,
    listener: Option<i32>,
    stdout_listener: Option<i32>,
    filter_rules: usize,
}

impl<'h> Launch<'h> {
    fn read(o: Obj<'h>) -> Result<Launch<'h>, Failure> {
        let ros = |name: &str| -> Result<Option<i32>, Failure> {
            Ok(o.opt_obj(name)?.and_then(remote_output_stream_oid))
        };
        let listener = |name: &str| -> Result<Option<i32>, Failure> {
            Ok(o.opt_obj(name)?.and_then(listener_stream))
        };
        let filter_rules = match o.opt_obj("envVarsFilterRuleWrapper")? {
            Some(w) => match w.opt_obj("rules")? {
                Some(rules) => rules
                    .children()
                    .iter()
                    .filter(|v| Obj::of(o.heap, **v).is_some())
                    .count(),
                None => 0,
            },
            None => 0,
        };
        Ok(Launch {
            cmd: o.strings("cmd")?,
            masks: o.opt_bools("masks")?,
            env: o.strings("env")?,
            work_dir: o.opt_str("workDir")?,
            quiet: o.bool("quiet")?,
            reverse_stdin: o.bool("reverseStdin")?,
            reverse_stdout: o.bool("reverseStdout")?,
            reverse_stderr: o.bool("reverseStderr")?,
            input: o.opt_obj("in")?,
            out: ros("out")?,
            err: ros("err")?,
            listener: listener("listener")?,
            stdout_listener: listener("stdoutListener")?,
            filter_rules,
        })
    }
}

/// `Launcher$RemoteLaunchCallable`: start the process, return the exported `RemoteProcess`.
fn launch(cx: &Ctx, o: Obj) -> R {
    let l = Launch::read(o)?;
    if l.cmd.is_empty() {
        return Err(Failure::io("RemoteLaunchCallable with an empty command"));
    }
    if l.filter_rules > 0 {
        return Err(Failure::abort(format!(
            "this step uses {} environment filter rule(s) (jenkins.tasks.filters), which are \
             plugin code nectr-agent does not run natively; remove the rules from the job or \
             start nectr-agent with --jvm auto",
            l.filter_rules
        )));
    }
    if !l.quiet {
        if let Some(oid) = l.listener {
            let line = command_line(&l.cmd, l.masks.as_deref(), l.work_dir.as_deref());
            let mut sink = Sink::live(cx.remote, oid, cx.request_id);
            let _ = sink.write_all(format!("{line}\n").as_bytes());
            // The listener is often the stdout listener too: one stream object, one
            // reference, released once (by the output pump or the call's clean-up).
            let _ = sink.leave_open();
        }
    }
    let mut env = agent_environment(cx);
    env.override_expanding_all(&EnvVars::from_assignments(&l.env));
    let args: Vec<String> = l.cmd.iter().map(|a| env.expand(a)).collect();
    let cookie = uuid_like(&format!(
        "{:016x}{:016x}",
        super::files::random_u64(),
        super::files::random_u64()
    ));
    if let Some(d) = &l.work_dir {
        if !std::path::Path::new(d).exists() {
            return Err(Failure::io(format!(
                "Process working directory '{}' doesn't exist!",
                super::files::absolute(std::path::Path::new(d)).display()
            )));
        }
    }
    let mut command = Command::new(&args[0]);
    command.args(&args[1..]).env_clear();
    for (k, v) in env.iter() {
        command.env(k, v);
    }
    command.env("HUDSON_COOKIE", &cookie);
    if let Some(d) = &l.work_dir {
        command.current_dir(d);
    }
    // stderr joins stdout unless the controller gave its own stream for it (Java's
    // redirectErrorStream when err is null or read by the controller).
    let merge_err = l.err.is_none() || l.reverse_stderr;
    let (out_reader, out_writer) =
        std::io::pipe().map_err(|e| Failure::io(format!("cannot create a pipe: {e}")))?;
    let err_pipe = if merge_err {
        None
    } else {
        Some(std::io::pipe().map_err(|e| Failure::io(format!("cannot create a pipe: {e}")))?)
    };
    let err_stdio = match &err_pipe {
        Some((_, w)) => Stdio::from(
            w.try_clone()
                .map_err(|e| Failure::io(format!("cannot create a pipe: {e}")))?,
        ),
        None => Stdio::from(
            out_writer
                .try_clone()
                .map_err(|e| Failure::io(format!("cannot create a pipe: {e}")))?,
        ),
    };
    command.stdout(Stdio::from(out_writer)).stderr(err_stdio);
    let pipe_stdin = l.reverse_stdin || l.input.is_some();
    command.stdin(if pipe_stdin {
        Stdio::piped()
    } else {
        Stdio::null()
    });
    let spawned = command.spawn();
    // The command holds our copies of the write ends: drop them so readers see EOF.
    drop(command);
    let mut child = spawned.map_err(|e| {
        Failure::io(format!(
            "Cannot run program \"{}\"{}: {e}",
            args[0],
            l.work_dir
                .as_ref()
                .map(|d| format!(" (in directory \"{d}\")"))
                .unwrap_or_default()
        ))
    })?;
    let err_reader = err_pipe.map(|(r, w)| {
        drop(w);
        r
    });
    let pid = child.id() as i32;
    tracing::info!(pid, "launched {}", args[0]);

    let proc = Arc::new(Launched {
        pid,
        cookie,
        reverse_stdout: l.reverse_stdout,
        reverse_stderr: l.reverse_stderr,
        state: Mutex::new(State::default()),
        changed: Condvar::new(),
        last_io: Arc::new(AtomicI32::new(0)),
        reverse: Mutex::new(Reverse::default()),
    });

    let background = cx.remote.detach();
    let mut pumps = Vec::new();
    // stdout: into the stdout listener, `out`, or kept for the controller to read.
    let stdout_sink = l.stdout_listener.or(l.out);
    if l.reverse_stdout {
        proc.reverse
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .stdout = Some(out_reader);
    } else {
        if let Some(oid) = stdout_sink {
            cx.keep(oid);
        }
        pumps.push(pump(
            out_reader,
            stdout_sink,
            background.clone(),
            proc.last_io.clone(),
        ));
    }
    if let Some(r) = err_reader {
        if let Some(oid) = l.err {
            cx.keep(oid);
        }
        pumps.push(pump(r, l.err, background.clone(), proc.last_io.clone()));
    }
    if let Some(stdin) = child.stdin.take() {
        if l.reverse_stdin {
            proc.reverse.lock().unwrap_or_else(|p| p.into_inner()).stdin = Some(stdin);
        } else if let Some(input) = l.input {
            match input_form(input.heap, Value::Ref(input.id)) {
                Ok(form) => feed_stdin(form, stdin, background.clone()),
                Err(e) => tracing::warn!(pid, "cannot read the process's stdin: {e}"),
            }
        }
    }
    let leak_sink = stdout_sink.filter(|_| !l.reverse_stdout);
    wait_in_background(child, pumps, proc.clone(), background, leak_sink);

    let oid = cx.remote.export_object(proc);
    let mut b = cx.builder();
    let proxy = exported_proxy(&mut b, REMOTE_PROCESS, oid)?;
    Ok(value(b, proxy))
}

/// A version-4-looking UUID string from 32 hex digits (the cookie only needs to be unique).
fn uuid_like(hex: &str) -> String {
    let h: String = format!("{hex:0<32}").chars().take(32).collect();
    format!(
        "{}-{}-4{}-a{}-{}",
        &h[0..8],
        &h[8..12],
        &h[13..16],
        &h[17..20],
        &h[20..32]
    )
}

/// A proxy of `interface` for the agent's export `oid` (`Channel.export`).
pub fn exported_proxy(b: &mut Builder, interface: &str, oid: i32) -> Result<Value, Failure> {
    let h = b.object(
        classes::INVOCATION_HANDLER,
        &[
            ("oid", Value::Int(oid)),
            ("userProxy", Value::Boolean(true)),
            ("userSpace", Value::Boolean(true)),
        ],
    )?;
    Ok(b.proxy(&[interface, classes::IREAD_RESOLVE], h)?)
}

/// Copies a process's output into the controller's stream `oid` as it comes (nothing when
/// `oid` is None: the output is read and dropped), then releases the stream.
fn pump(
    mut from: std::io::PipeReader,
    oid: Option<i32>,
    remote: Arc<dyn Remote>,
    last_io: Arc<AtomicI32>,
) -> std::thread::JoinHandle<()> {
    std::thread::Builder::new()
        .name("nectr-output".into())
        .spawn(move || {
            let tracked = Tracked {
                inner: remote.as_ref(),
                last_io: &last_io,
            };
            let mut sink = oid.map(|oid| Sink::live(&tracked, oid, 0));
            let mut buf = vec![0u8; 64 << 10];
            loop {
                let n = match from.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                if let Some(s) = sink.as_mut() {
                    if let Err(e) = s.write_all(&buf[..n]) {
                        tracing::warn!("process output could not reach the controller: {e}");
                        // Keep draining so the process never blocks on a full pipe.
                        sink = None;
                    }
                }
            }
            if let Some(s) = sink {
                let _ = s.release();
            }
        })
        .expect("spawning a thread")
}

/// Feeds the controller's `RemoteInputStream` into the process's stdin, then closes it.
fn feed_stdin(
    form: super::input::InputForm,
    mut stdin: std::process::ChildStdin,
    remote: Arc<dyn Remote>,
) {
    let _ = std::thread::Builder::new()
        .name("nectr-stdin".into())
        .spawn(move || {
            if let Ok(mut input) = RemoteInput::open(form, remote.as_ref()) {
                let _ = std::io::copy(&mut input, &mut stdin);
            }
        });
}

/// A [`Remote`] that records the last I/O id its writes took, so `join` can make its answer
/// wait for the process's last output chunk.
struct Tracked<'a> {
    inner: &'a dyn Remote,
    last_io: &'a AtomicI32,
}

impl Remote for Tracked<'_> {
    fn registry(&self) -> &crate::javaser::Registry {
        self.inner.registry()
    }
    fn next_io_id(&self) -> i32 {
        let id = self.inner.next_io_id();
        self.last_io.fetch_max(id, Ordering::SeqCst);
        id
    }
    fn note_io(&self, io_id: i32) {
        self.inner.note_io(io_id)
    }
    fn is_cancelled(&self) -> bool {
        self.inner.is_cancelled()
    }
    fn send(&self, command: Vec<u8>) -> Result<(), String> {
        self.inner.send(command)
    }
    fn export(&self, sink: std::fs::File) -> i32 {
        self.inner.export(sink)
    }
    fn export_pipe(&self) -> Arc<crate::streams::Pipe> {
        self.inner.export_pipe()
    }
    fn export_input(&self, source: Box<dyn Read + Send>) -> i32 {
        self.inner.export_input(source)
    }
    fn export_object(&self, object: Arc<dyn Exported>) -> i32 {
        self.inner.export_object(object)
    }
    fn object(&self, oid: i32) -> Option<Arc<dyn Exported>> {
        self.inner.object(oid)
    }
    fn unexport(&self, oid: i32) {
        self.inner.unexport(oid)
    }
    fn reserve(&self, oid: i32, n: usize) -> Result<(), String> {
        self.inner.reserve(oid, n)
    }
    fn release(&self, oid: i32) {
        self.inner.release(oid)
    }
    fn is_released(&self, oid: i32) -> bool {
        self.inner.is_released(oid)
    }
    fn read_input(&self, oid: i32, len: i32) -> Result<Option<Vec<u8>>, String> {
        self.inner.read_input(oid, len)
    }
    fn detach(&self) -> Arc<dyn Remote> {
        self.inner.detach()
    }
}

/// Waits for the process, then for its output to be sent, then records the exit code.
fn wait_in_background(
    mut child: Child,
    pumps: Vec<std::thread::JoinHandle<()>>,
    proc: Arc<Launched>,
    remote: Arc<dyn Remote>,
    leak_sink: Option<i32>,
) {
    let _ = std::thread::Builder::new()
        .name("nectr-wait".into())
        .spawn(move || {
            let status = child.wait();
            let code = match status {
                Ok(s) => s.code().unwrap_or_else(|| 128 + s.signal().unwrap_or(0)),
                Err(e) => {
                    tracing::warn!(pid = proc.pid, "waiting for the process failed: {e}");
                    -1
                }
            };
            // As Jenkins: wait a while for the output still in the pipes; a background child
            // holding them open is reported, not waited for.
            let deadline = std::time::Instant::now() + PUMP_WAIT;
            let mut leaked = false;
            for p in pumps {
                while !p.is_finished() && std::time::Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(5));
                }
                if p.is_finished() {
                    let _ = p.join();
                } else {
                    leaked = true;
                }
            }
            if leaked {
                let msg = "Process leaked file descriptors. See https://www.jenkins.io/redirect/troubleshooting/process-leaked-file-descriptors for more information\n";
                tracing::warn!(pid = proc.pid, "{}", msg.trim_end());
                if let Some(oid) = leak_sink {
                    // The pump still owns the stream; this note goes in as its own chunk.
                    let io = remote.next_io_id();
                    proc.last_io.fetch_max(io, Ordering::SeqCst);
                    let _ = remote.send(crate::remoting::command::stream_chunk(
                        io,
                        oid,
                        0,
                        msg.as_bytes(),
                    ));
                }
            }
            tracing::info!(pid = proc.pid, code, "process exited");
            let mut s = proc.state.lock().unwrap_or_else(|p| p.into_inner());
            s.exit = Some(code);
            proc.changed.notify_all();
        });
}

#[derive(Default)]
struct State {
    exit: Option<i32>,
}

#[derive(Default)]
struct Reverse {
    stdout: Option<std::io::PipeReader>,
    stdin: Option<std::process::ChildStdin>,
    handed_out: bool,
}

/// A launched process, exported to the controller as `Launcher$RemoteProcess`.
struct Launched {
    pid: i32,
    cookie: String,
    reverse_stdout: bool,
    reverse_stderr: bool,
    state: Mutex<State>,
    changed: Condvar,
    last_io: Arc<AtomicI32>,
    reverse: Mutex<Reverse>,
}

impl Launched {
    fn exit_code(&self) -> Option<i32> {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).exit
    }

    /// Ends the process tree: the process, its descendants, and everything carrying its
    /// `HUDSON_COOKIE` (as `ProcessTree.killAll(proc, cookie)`).
    fn destroy(&self) {
        if self.exit_code().is_some() {
            // Descendants that outlived it still carry the cookie.
            let model = vec![("HUDSON_COOKIE".to_string(), self.cookie.clone())];
            proctree::kill_all(None, &model, proctree::GRACE);
            return;
        }
        let model = vec![("HUDSON_COOKIE".to_string(), self.cookie.clone())];
        let n = proctree::kill_all(Some(self.pid), &model, proctree::GRACE);
        tracing::info!(pid = self.pid, "ended the process tree ({n} processes)");
    }

    /// Waits for the exit code; `cancelled` stops the wait (and kills the tree, as Java's
    /// `join` does when interrupted).
    fn join(&self, cancelled: &dyn Fn() -> bool) -> Result<i32, Failure> {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if let Some(code) = s.exit {
                return Ok(code);
            }
            if cancelled() {
                drop(s);
                tracing::info!(
                    pid = self.pid,
                    "join cancelled by the controller: ending the process tree"
                );
                self.destroy();
                return Err(Failure {
                    class: "java.lang.InterruptedException",
                    message: "the build was aborted".into(),
                });
            }
            s = self
                .changed
                .wait_timeout(s, Duration::from_millis(100))
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    /// `getIOtriplet()`: the streams the controller reads itself.
    fn triplet(&self, cx: &Ctx) -> R {
        let mut r = self.reverse.lock().unwrap_or_else(|p| p.into_inner());
        let mut b = cx.builder();
        let mut fields = Vec::new();
        if self.reverse_stdout && !r.handed_out {
            let oid = match r.stdout.take() {
                Some(reader) => cx.remote.export_input(Box::new(reader)),
                None => cx.remote.export_input(Box::new(std::io::empty())),
            };
            fields.push(("stdout", input_stream_object(&mut b, oid)?));
        }
        if self.reverse_stderr && !r.handed_out {
            // Merged into stdout (Java's redirectErrorStream): the stream is empty.
            let oid = cx.remote.export_input(Box::new(std::io::empty()));
            fields.push(("stderr", input_stream_object(&mut b, oid)?));
        }
        if let Some(stdin) = r.stdin.take() {
            let f = std::fs::File::from(std::os::fd::OwnedFd::from(stdin));
            let oid = cx.remote.export(f);
            fields.push((
                "stdin",
                remote_output_stream(&mut b, oid).map_err(Failure::io)?,
            ));
        }
        r.handed_out = true;
        let t = b.object("hudson.Launcher$IOTriplet", &fields)?;
        Ok(value(b, t))
    }
}

/// A `RemoteInputStream` for the agent's export `oid`, read by pulls (not greedy).
fn input_stream_object(b: &mut Builder, oid: i32) -> Result<Value, Failure> {
    let mut data = vec![0u8];
    data.extend_from_slice(&oid.to_be_bytes());
    Ok(b.custom_object(
        crate::remoting::classes::REMOTE_INPUT_STREAM,
        vec![Content::Block(Block::new(data))],
    )?)
}

impl Exported for Launched {
    fn interface(&self) -> &'static str {
        REMOTE_PROCESS
    }

    fn call(&self, cx: &Ctx, method: &str, _: &[Value], _: &Heap) -> R {
        match method {
            "join" => {
                let code = self.join(&|| cx.remote.is_cancelled())?;
                cx.remote.note_io(self.last_io.load(Ordering::SeqCst));
                integer(cx, code)
            }
            "kill" => {
                self.destroy();
                self.join(&|| false)?;
                cx.remote.note_io(self.last_io.load(Ordering::SeqCst));
                void()
            }
            "isAlive" => boolean(cx, self.exit_code().is_none()),
            "getIOtriplet" => self.triplet(cx),
            other => Err(Failure::io(format!(
                "Launcher$RemoteProcess has no method {other}()"
            ))),
        }
    }
}

/// `Launcher$RemoteLauncher$KillTask`: end every process whose environment carries all the
/// model variables (the build's cookies), with its descendants.
fn kill_task(_: &Ctx, o: Obj) -> R {
    let model = match o.raw("modelEnvVars") {
        Some(v) => string_map(o.heap, v).unwrap_or_default(),
        None => Vec::new(),
    };
    let unique: HashSet<&String> = model.iter().map(|(k, _)| k).collect();
    if unique.len() != model.len() {
        return Err(Failure::io("KillTask with a repeated variable"));
    }
    let n = proctree::kill_all(None, &model, proctree::GRACE);
    if n > 0 {
        tracing::info!(
            "KillTask ended {n} process(es) carrying {}",
            model
                .iter()
                .map(|(k, _)| k.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    void()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::handlers::testing::FakeRemote;
    use crate::handlers::{dispatch, host::RealHost, Protocol, Target};
    use crate::javaser::{ArrayData, ClassSpec, Registry};

    const LAUNCH: &str = "hudson.Launcher$RemoteLaunchCallable";

    /// The class form (before 2.485) or the record form (2.485 and later).
    fn launch_registry(record: bool) -> Registry {
        let mut r = crate::handlers::classes::registry();
        r.declare(ClassSpec::new("jenkins.security.MasterToSlaveCallable", 1));
        let spec = if record {
            ClassSpec::new(LAUNCH, 0)
        } else {
            ClassSpec::new(LAUNCH, 7_766_542_137_650_103_251)
                .extends("jenkins.security.MasterToSlaveCallable")
        };
        r.declare(
            spec.field("quiet", "Z")
                .field("reverseStderr", "Z")
                .field("reverseStdin", "Z")
                .field("reverseStdout", "Z")
                .field("cmd", "Ljava/util/List;")
                .field("env", "[Ljava/lang/String;")
                .field(
                    "envVarsFilterRuleWrapper",
                    "Ljenkins/tasks/filters/EnvVarsFilterRuleWrapper;",
                )
                .field("err", "Ljava/io/OutputStream;")
                .field("in", "Ljava/io/InputStream;")
                .field("listener", "Lhudson/model/TaskListener;")
                .field("masks", "[Z")
                .field("out", "Ljava/io/OutputStream;")
                .field("stdoutListener", "Lhudson/model/TaskListener;")
                .field("workDir", "Ljava/lang/String;"),
        );
        r.declare(ClassSpec::new("hudson.model.StreamBuildListener", 1).write_method());
        r.declare(ClassSpec::array("[Z"));
        r
    }

    fn launch_callable(reg: &Registry, script: &str, dir: &str) -> crate::javaser::Stream {
        let mut b = Builder::new(reg);
        let args: Vec<Value> = ["sh", "-c", script].iter().map(|a| b.string(a)).collect();
        let cmd = b.array_list(&args).unwrap();
        let envs: Vec<Value> = ["FOO=bar$$", "GONE=", "PATH+X=/opt/x"]
            .iter()
            .map(|a| b.string(a))
            .collect();
        let env = b
            .array("[Ljava.lang.String;", ArrayData::Object(envs))
            .unwrap();
        let out = remote_output_stream(&mut b, 77).unwrap();
        let log = remote_output_stream(&mut b, 78).unwrap();
        let listener = b.object("hudson.model.StreamBuildListener", &[]).unwrap();
        b.set_data(
            listener,
            "hudson.model.StreamBuildListener",
            vec![Content::Value(log), Content::Value(Value::Null)],
        )
        .unwrap();
        let wd = b.string(dir);
        let v = b
            .object(
                LAUNCH,
                &[
                    ("cmd", cmd),
                    ("env", env),
                    ("out", out),
                    ("listener", listener),
                    ("workDir", wd),
                ],
            )
            .unwrap();
        b.into_stream(vec![crate::javaser::Item::Value(v)])
    }

    fn launches_and_joins(record: bool) {
        let reg = launch_registry(record);
        let dir = std::env::temp_dir();
        std::env::set_var("GONE", "present");
        let stream = launch_callable(
            &reg,
            "echo out; echo err >&2; echo \"$FOO $GONE\"; echo \"$PATH\" | cut -d: -f1; exit 3",
            &dir.to_string_lossy(),
        );
        let crate::javaser::Item::Value(v) = stream.items[0] else {
            unreachable!()
        };
        let obj = Obj::of(&stream.heap, v).unwrap();
        let fake = FakeRemote::default();
        let host = RealHost {
            work_dir: dir.clone(),
            log: None,
        };
        let cx = Ctx::new(&reg, &host, Protocol::WebSocket, &fake, 5);
        let entry = crate::handlers::catalog::lookup(LAUNCH).unwrap();
        let answer = dispatch(
            &Target::Native {
                entry,
                obj,
                path: None,
            },
            &cx,
        );
        assert!(
            matches!(answer, crate::remoting::Answer::Value(_)),
            "{answer:?}"
        );
        let (oid, process) = fake.log.lock().unwrap().objects[0].clone();
        assert!(oid > 1);
        assert_eq!(process.interface(), REMOTE_PROCESS);
        let joined = process.call(&cx, "join", &[], &stream.heap).unwrap();
        let crate::remoting::Answer::Value(s) = joined else {
            panic!("join failed")
        };
        let crate::javaser::Item::Value(Value::Ref(id)) = s.items[0] else {
            panic!()
        };
        assert_eq!(s.heap.field(id, "value"), Some(&Value::Int(3)));
        // Output (stdout and stderr merged, as err was null) went live into `out`; the
        // command line into the listener; `$$` became `$`, an empty value removed the
        // variable, PATH+X was prepended.
        let out = String::from_utf8(fake.chunks_to(77)).unwrap();
        assert_eq!(out, "out\nerr\nbar$ \n/opt/x\n");
        let log = String::from_utf8(fake.chunks_to(78)).unwrap();
        assert!(log.starts_with("[") && log.contains("] $ sh -c "), "{log}");
        // Both controller streams were released: the listener's by the call, `out` by the
        // output pump when the process ended.
        let released = fake.log.lock().unwrap().released.clone();
        assert!(
            released.contains(&77) && released.contains(&78),
            "{released:?}"
        );
    }

    #[test]
    fn a_launch_in_the_class_form_runs_with_jenkins_environment_semantics() {
        launches_and_joins(false);
    }

    #[test]
    fn a_launch_in_the_record_form_of_2_485_runs_the_same() {
        launches_and_joins(true);
    }

    #[test]
    fn command_lines_print_as_jenkins_prints_them() {
        let cmd: Vec<String> = ["/bin/sh", "-xe", "/tmp/a b.sh", "say \"hi\" now", "pw"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(
            command_line(
                &cmd,
                Some(&[false, false, false, false, true]),
                Some("/var/lib/jenkins/workspace/my job")
            ),
            "[my job] $ /bin/sh -xe \"/tmp/a b.sh\" 'say \"hi\" now' ********"
        );
        assert_eq!(command_line(&cmd[..1], None, None), "$ /bin/sh");
    }

    #[test]
    fn cookies_look_like_uuids() {
        let c = uuid_like("0123456789abcdef0123456789abcdef");
        assert_eq!(c, "01234567-89ab-4def-a123-456789abcdef");
    }
}
