//! The `nectr-agent` command.

use std::io::Read;
use std::process::ExitCode;

use nectr_agent::debug;

const USAGE_HEAD: &str = "\
nectr-agent: a Jenkins inbound agent without a JVM, a drop-in for `java -jar agent.jar`

USAGE:
    nectr-agent -url URL -name NAME -secret SECRET|@FILE [-webSocket] [-workDir DIR] [options]
    nectr-agent -direct HOST:PORT -instanceIdentity KEY -name NAME -secret @FILE [options]
    nectr-agent push [--bucket BUCKET] [--key TEMPLATE] PATTERN...   (nectr-agent push --help)
    nectr-agent fetch [--bucket BUCKET] [--to DIR] KEY-PATTERN...    (nectr-agent fetch --help)
    nectr-agent debug javaser|serialver ...   (nectr-agent debug --help)
    nectr-agent -help | -version

Without -webSocket the agent uses JNLP4-connect over the TCP agent port (TLS pinned to the
controller's instance identity), as agent.jar does.

OPTIONS (agent.jar's, then nectr's own):
";

const USAGE_TAIL: &str = "\
ENVIRONMENT (the inbound-agent image's; an option on the command line wins):
    JENKINS_URL, JENKINS_AGENT_NAME (JENKINS_NAME), JENKINS_SECRET, JENKINS_AGENT_WORKDIR,
    JENKINS_WEB_SOCKET=true, JENKINS_DIRECT_CONNECTION, JENKINS_INSTANCE_IDENTITY,
    JENKINS_PROTOCOLS, JENKINS_TUNNEL, REMOTING_OPTS (more options), RUST_LOG (log level),
    https_proxy / http_proxy / no_proxy.

EXIT STATUS:
    0 after -help, -version or an orderly stop (SIGTERM, Ctrl-C); 2 for bad usage or
    configuration (nothing was tried); 1 when the agent could not connect or lost its
    connection with -noReconnect, gave up after -noReconnectAfter, or the controller
    refused it.
";

const DEBUG_USAGE: &str = "\
nectr-agent debug: tools for looking at what travels on the wire

    nectr-agent debug javaser [--no-default-fields CLASS]... [FILE|-]
        print a Java serialization stream (or a capture of remoting chunk frames) as JSON.
        CLASS: a class whose writeObject skips defaultWriteObject (the stream cannot say so)
    nectr-agent debug serialver CLASSFILE...
        print the default serialVersionUID of class files, as the JDK's serialver does

Exit status: 0 success, 2 malformed input or bad usage, 1 other errors.
";

fn usage() -> String {
    format!(
        "{USAGE_HEAD}{}\n{USAGE_TAIL}",
        nectr_agent::cli::help_options()
    )
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Some(sub @ ("push" | "fetch")) = args.first().map(String::as_str) {
        return run_push(sub, &args);
    }
    if args.first().map(String::as_str) == Some("debug") {
        let rest: Vec<&str> = args[1..].iter().map(String::as_str).collect();
        return debug_command(&rest);
    }
    if let Some(code) = hide_secrets_from_command_line(&args) {
        return code;
    }
    match nectr_agent::cli::parse(&args, &|k| std::env::var(k).ok()) {
        Ok(nectr_agent::cli::Command::Help) => {
            print!("{}", usage());
            ExitCode::SUCCESS
        }
        Ok(nectr_agent::cli::Command::Version) => {
            println!("nectr-agent {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        Ok(nectr_agent::cli::Command::Run(opts)) => run_agent(*opts),
        Err(e) => {
            eprintln!("nectr-agent: {e}");
            ExitCode::from(2)
        }
    }
}

fn debug_command(args: &[&str]) -> ExitCode {
    match args {
        ["javaser", rest @ ..] => debug_javaser(rest),
        ["serialver", files @ ..] if !files.is_empty() => debug_serialver(files),
        ["-h" | "--help" | "-help" | "help"] => {
            print!("{DEBUG_USAGE}");
            ExitCode::SUCCESS
        }
        ["serialver"] => {
            eprintln!("nectr-agent debug serialver: give one or more class files\n\n{DEBUG_USAGE}");
            ExitCode::from(2)
        }
        [] => {
            eprintln!("nectr-agent debug: which one?\n\n{DEBUG_USAGE}");
            ExitCode::from(2)
        }
        [other, ..] => {
            eprintln!("nectr-agent debug: unknown subcommand {other:?}\n\n{DEBUG_USAGE}");
            ExitCode::from(2)
        }
    }
}

/// The binary behind `nectr-agent push` and `fetch`, installed beside `nectr-agent`.
const PUSH_BINARY: &str = "nectr-agent-push";

/// `nectr-agent push|fetch …`: replaces this process with `nectr-agent-push push|fetch …`
/// from the directory of this executable (symlinks resolved). The S3 code and the AWS SDK
/// live only in that binary, so the agent itself neither links nor loads them.
fn run_push(sub: &str, args: &[String]) -> ExitCode {
    use std::os::unix::process::CommandExt;
    let exe = match std::env::current_exe() {
        Ok(e) => e,
        Err(e) => {
            eprintln!("nectr-agent {sub}: cannot find this executable's directory: {e}");
            return ExitCode::from(2);
        }
    };
    let dir = exe.parent().unwrap_or(std::path::Path::new("/"));
    let push = dir.join(PUSH_BINARY);
    if !push.is_file() {
        eprintln!(
            "nectr-agent {sub}: {} is missing: `nectr-agent {sub}` runs the {PUSH_BINARY} binary \
             of the same release, installed in the same directory as nectr-agent ({}); \
             install it there (README.md, \"Installing\")",
            push.display(),
            dir.display()
        );
        return ExitCode::from(2);
    }
    let err = std::process::Command::new(&push)
        .arg0("nectr-agent")
        .args(args)
        .exec();
    eprintln!("nectr-agent {sub}: cannot run {}: {err}", push.display());
    ExitCode::from(2)
}

/// A secret given as `-secret VALUE` (or `-credentials`, `-proxyCredentials`, the positional
/// `SECRET NAME`) is visible to every user in the process's command line (`ps`,
/// /proc/PID/cmdline). Re-execute without it, passing it in the environment, which only the
/// same user can read. `-secret @FILE` and JENKINS_SECRET need nothing.
fn hide_secrets_from_command_line(args: &[String]) -> Option<ExitCode> {
    use std::os::unix::process::CommandExt;
    let (keep, env) = nectr_agent::cli::hide_sensitive(args)?;
    let exe = std::env::current_exe().ok()?;
    let err = std::process::Command::new(exe).args(keep).envs(env).exec();
    eprintln!("nectr-agent: cannot re-execute to hide the secret from the command line: {err}");
    Some(ExitCode::from(1))
}

fn run_agent(opts: nectr_agent::cli::AgentOptions) -> ExitCode {
    let filter: tracing_subscriber::filter::Targets = match opts.log_level.parse() {
        Ok(f) => f,
        Err(e) => {
            eprintln!(
                "nectr-agent: log level {:?} (--log-level or RUST_LOG): {e}; use error, warn, info, debug, trace, off or TARGET=LEVEL,...",
                opts.log_level
            );
            return ExitCode::from(2);
        }
    };
    let log_file = match prepare_work_dir(&opts) {
        Ok(w) => w,
        Err(e) => {
            eprintln!("nectr-agent: {e}");
            return ExitCode::from(2);
        }
    };
    let file = match &log_file {
        Some(path) => match std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
        {
            Ok(f) => Some(f),
            Err(e) => {
                eprintln!(
                    "nectr-agent: cannot open the log file {}: {e}",
                    path.display()
                );
                return ExitCode::from(2);
            }
        },
        None => None,
    };
    let work_dir = match &opts.work_dir {
        Some(d) => d.clone(),
        None => match std::env::current_dir() {
            Ok(d) => d,
            Err(e) => {
                eprintln!("nectr-agent: no current directory: {e}");
                return ExitCode::from(2);
            }
        },
    };
    let ring = std::sync::Arc::new(nectr_agent::logring::LogRing::new(256));
    init_logging(opts.log_format, filter, file, ring.clone());
    for note in &opts.notes {
        tracing::warn!("{note}");
    }
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(64)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            fatal(&format!("cannot start the runtime: {e}"));
            return ExitCode::from(1);
        }
    };
    let host = std::sync::Arc::new(nectr_agent::handlers::RealHost {
        work_dir,
        log: Some(ring),
    });
    let result = rt.block_on(nectr_agent::agent::run(opts, host, shutdown_signal()));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            fatal(&e);
            ExitCode::from(1)
        }
    }
}

/// A fatal error, printed once: as a log record (console and log file), or as a plain line
/// if logging is turned off.
fn fatal(e: &str) {
    if tracing::enabled!(tracing::Level::ERROR) {
        tracing::error!("{e}");
    } else {
        eprintln!("nectr-agent: {e}");
    }
}

/// Checks or creates the work directory (`-workDir`) and its log directory, and returns the
/// log file to use: `-agentLog`, else `<workDir>/<internalDir>/logs/nectr-agent.log`, else
/// none (as agent.jar, which without a work directory logs to the console only and creates
/// nothing).
fn prepare_work_dir(
    opts: &nectr_agent::cli::AgentOptions,
) -> Result<Option<std::path::PathBuf>, String> {
    let mut log = opts.agent_log.clone();
    if let Some(dir) = &opts.work_dir {
        let internal = dir.join(&opts.internal_dir);
        if opts.fail_if_work_dir_is_missing {
            for d in [dir, &internal] {
                if !d.is_dir() {
                    return Err(format!(
                        "the directory {} does not exist (-failIfWorkDirIsMissing)",
                        d.display()
                    ));
                }
            }
        }
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create the work directory {}: {e}", dir.display()))?;
        if log.is_none() {
            let logs = internal.join("logs");
            std::fs::create_dir_all(&logs)
                .map_err(|e| format!("cannot create {}: {e}", logs.display()))?;
            log = Some(logs.join("nectr-agent.log"));
        }
    }
    Ok(log)
}

fn init_logging(
    format: nectr_agent::cli::LogFormat,
    filter: tracing_subscriber::filter::Targets,
    file: Option<std::fs::File>,
    ring: std::sync::Arc<nectr_agent::logring::LogRing>,
) {
    use tracing_subscriber::fmt::writer::MakeWriterExt;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let file = std::sync::Arc::new(file.map(std::sync::Mutex::new));
    let writer = std::io::stderr.and(move || LockedFile(file.clone()));
    let fmt = tracing_subscriber::fmt::layer()
        .with_ansi(false)
        .with_writer(writer);
    let registry = tracing_subscriber::registry()
        .with(filter)
        .with(nectr_agent::logring::RingLayer(ring));
    match format {
        nectr_agent::cli::LogFormat::Json => registry.with(fmt.json()).init(),
        nectr_agent::cli::LogFormat::Text => registry.with(fmt).init(),
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
        Ok(json) => match debug::write_pretty(std::io::stdout().lock(), &json) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("nectr-agent debug javaser: writing the output: {e}");
                ExitCode::from(1)
            }
        },
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
