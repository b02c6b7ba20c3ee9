//! The `nectr-agent` command.

use std::io::{Read, Write};
use std::process::ExitCode;

use nectr_agent::debug;

const USAGE: &str = "\
nectr-agent: a Jenkins inbound agent without a JVM

USAGE:
    nectr-agent -url URL -name NAME -secret SECRET|@FILE [-webSocket] [-workDir DIR] [options]
                                            run the agent: WebSocket with -webSocket, else
                                            JNLP4-connect over TCP + TLS (agent.jar's options;
                                            environment: JENKINS_URL, JENKINS_AGENT_NAME,
                                            JENKINS_SECRET, JENKINS_WEB_SOCKET,
                                            JENKINS_AGENT_WORKDIR, JENKINS_DIRECT_CONNECTION,
                                            JENKINS_INSTANCE_IDENTITY, JENKINS_PROTOCOLS)
        -direct HOST:PORT -instanceIdentity KEY   JNLP4 without discovery
        -protocols JNLP4-connect
        -internalDir NAME   -failIfWorkDirIsMissing   -noReconnect   -jar-cache DIR (ignored)
        --retry-refused     keep retrying after the controller refused the secret
        --log-format text|json
    nectr-agent debug javaser [--no-default-fields CLASS]... [FILE|-]
                                            print a Java serialization stream (or a capture of
                                            remoting chunk frames) as JSON. CLASS: a class whose
                                            writeObject skips defaultWriteObject (the stream
                                            cannot say so)
    nectr-agent debug serialver CLASSFILE.. print the default serialVersionUID of class files
    nectr-agent --version
    nectr-agent --help

Exit status: 0 success, 2 malformed input or bad usage, 1 other errors.
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    match args.as_slice() {
        [] | ["-h" | "--help" | "help"] => {
            print!("{USAGE}");
            ExitCode::SUCCESS
        }
        ["-V" | "--version" | "-version"] => {
            println!("nectr-agent {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        ["debug", "javaser", rest @ ..] => debug_javaser(rest),
        ["debug", "serialver", files @ ..] if !files.is_empty() => debug_serialver(files),
        _ => run_agent(&args),
    }
}

/// A secret given as `-secret VALUE` is visible to every user in the process's command line
/// (`ps`, /proc/PID/cmdline). Re-execute without it, passing it in the environment, which
/// only the same user can read. `-secret @FILE` and JENKINS_SECRET need nothing.
fn hide_secret_from_command_line(args: &[&str]) -> Option<ExitCode> {
    use std::os::unix::process::CommandExt;
    let i = args.iter().position(|a| *a == "-secret")?;
    let secret = args.get(i + 1)?;
    if secret.starts_with('@') {
        return None;
    }
    let rest: Vec<&str> = args[..i].iter().chain(&args[i + 2..]).copied().collect();
    let exe = std::env::current_exe().ok()?;
    let err = std::process::Command::new(exe)
        .args(rest)
        .env("JENKINS_SECRET", secret)
        .exec();
    eprintln!("nectr-agent: cannot re-execute to hide the secret from the command line: {err}");
    Some(ExitCode::from(1))
}

fn run_agent(args: &[&str]) -> ExitCode {
    if let Some(code) = hide_secret_from_command_line(args) {
        return code;
    }
    let owned: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let opts = match nectr_agent::cli::parse(&owned, &|k| std::env::var(k).ok()) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("nectr-agent: {e}");
            return ExitCode::from(2);
        }
    };
    let work_dir = match prepare_work_dir(&opts) {
        Ok(w) => w,
        Err(e) => {
            eprintln!("nectr-agent: {e}");
            return ExitCode::from(2);
        }
    };
    let ring = std::sync::Arc::new(nectr_agent::logring::LogRing::new(256));
    init_logging(&opts, &work_dir, ring.clone());
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(64)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("nectr-agent: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let host = std::sync::Arc::new(nectr_agent::handlers::RealHost {
        work_dir: work_dir.clone(),
        log: Some(ring),
    });
    let result = rt.block_on(nectr_agent::agent::run(opts, host, shutdown_signal()));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("nectr-agent: {e}");
            ExitCode::from(1)
        }
    }
}

fn prepare_work_dir(opts: &nectr_agent::cli::AgentOptions) -> Result<std::path::PathBuf, String> {
    let dir = match &opts.work_dir {
        Some(d) => d.clone(),
        None => std::env::current_dir().map_err(|e| format!("no working directory: {e}"))?,
    };
    if !dir.is_dir() {
        if opts.fail_if_work_dir_is_missing {
            return Err(format!(
                "the work directory {} does not exist (-failIfWorkDirIsMissing)",
                dir.display()
            ));
        }
        std::fs::create_dir_all(&dir)
            .map_err(|e| format!("cannot create the work directory {}: {e}", dir.display()))?;
    }
    let logs = dir.join(&opts.internal_dir).join("logs");
    std::fs::create_dir_all(&logs).map_err(|e| format!("cannot create {}: {e}", logs.display()))?;
    Ok(dir)
}

fn init_logging(
    opts: &nectr_agent::cli::AgentOptions,
    work_dir: &std::path::Path,
    ring: std::sync::Arc<nectr_agent::logring::LogRing>,
) {
    use tracing_subscriber::fmt::writer::MakeWriterExt;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let path = work_dir
        .join(&opts.internal_dir)
        .join("logs")
        .join("nectr-agent.log");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path);
    let (file, file_error) = match file {
        Ok(f) => (Some(std::sync::Mutex::new(f)), None),
        Err(e) => (None, Some(e)),
    };
    let file = std::sync::Arc::new(file);
    let writer = std::io::stderr.and(move || LockedFile(file.clone()));
    let filter = tracing_subscriber::filter::LevelFilter::INFO;
    let fmt = tracing_subscriber::fmt::layer()
        .with_ansi(false)
        .with_writer(writer);
    let registry = tracing_subscriber::registry()
        .with(filter)
        .with(nectr_agent::logring::RingLayer(ring));
    match opts.log_format {
        nectr_agent::cli::LogFormat::Json => registry.with(fmt.json()).init(),
        nectr_agent::cli::LogFormat::Text => registry.with(fmt).init(),
    }
    if let Some(e) = file_error {
        tracing::warn!("cannot open the log file {}: {e}", path.display());
    }
}

/// The shared log file as a writer (writes are dropped if it could not be opened).
struct LockedFile(std::sync::Arc<Option<std::sync::Mutex<std::fs::File>>>);

impl std::io::Write for LockedFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match &*self.0 {
            Some(f) => f.lock().unwrap_or_else(|p| p.into_inner()).write(buf),
            None => Ok(buf.len()),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match &*self.0 {
            Some(f) => f.lock().unwrap_or_else(|p| p.into_inner()).flush(),
            None => Ok(()),
        }
    }
}

async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
}

fn read_input(path: &str) -> Result<Vec<u8>, String> {
    let mut buf = Vec::new();
    let r = if path == "-" {
        std::io::stdin().lock().read_to_end(&mut buf).map(|_| ())
    } else {
        std::fs::File::open(path).and_then(|mut f| f.read_to_end(&mut buf).map(|_| ()))
    };
    r.map_err(|e| format!("cannot read {path}: {e}"))?;
    Ok(buf)
}

fn debug_javaser(args: &[&str]) -> ExitCode {
    let mut extra = Vec::new();
    let mut paths = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match *a {
            "--no-default-fields" => match it.next() {
                Some(c) => extra.push(c.to_string()),
                None => {
                    eprintln!("nectr-agent debug javaser: --no-default-fields needs a class name");
                    return ExitCode::from(2);
                }
            },
            p if p.starts_with("--") => {
                eprintln!("nectr-agent debug javaser: unknown option {p}; see --help");
                return ExitCode::from(2);
            }
            p => paths.push(p),
        }
    }
    let path = match paths.as_slice() {
        [] => "-",
        [p] => p,
        _ => {
            eprintln!("nectr-agent debug javaser: expected one FILE or - (stdin), got {paths:?}");
            return ExitCode::from(2);
        }
    };
    let opts = debug::options(&extra);
    let bytes = match read_input(path) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("nectr-agent debug javaser: {e}");
            return ExitCode::from(1);
        }
    };
    // Deeply nested graphs recurse while rendering: give them room.
    let dumped = std::thread::Builder::new()
        .stack_size(256 << 20)
        .spawn(move || debug::dump(&bytes, &opts))
        .map_err(|e| e.to_string())
        .and_then(|h| {
            h.join()
                .map_err(|_| "internal error while rendering".to_string())
        });
    let dumped = match dumped {
        Ok(d) => d,
        Err(e) => {
            eprintln!("nectr-agent debug javaser: {e}");
            return ExitCode::from(1);
        }
    };
    match dumped {
        Ok(json) => {
            let mut out = std::io::stdout().lock();
            let _ = serde_json::to_writer_pretty(&mut out, &json);
            let _ = writeln!(out);
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("nectr-agent debug javaser: {path}: {e}");
            ExitCode::from(2)
        }
    }
}

fn debug_serialver(files: &[&str]) -> ExitCode {
    let mut status = ExitCode::SUCCESS;
    for f in files {
        let result = read_input(f).and_then(|b| {
            nectr_agent::javaser::classfile::parse(&b).map_err(|e| format!("{f}: {e}"))
        });
        match result {
            Ok(shape) => println!(
                "{}:    private static final long serialVersionUID = {}L;",
                shape.name,
                nectr_agent::javaser::suid::default_suid(&shape)
            ),
            Err(e) => {
                eprintln!("nectr-agent debug serialver: {e}");
                status = ExitCode::from(2);
            }
        }
    }
    status
}
