//! The agent's command line, mirroring `agent.jar` (`-url`, `-name`, `-secret`, …) and the
//! contract of the inbound-agent image's entry script (`JENKINS_URL`, `JENKINS_SECRET`, …,
//! `REMOTING_OPTS`). Pure: arguments and environment in, options or a message out (the only
//! effects are reading the files named by `-secret @FILE` and `-cert @FILE`).
//!
//! Every option of `agent.jar` is in [`OPTIONS`], with what nectr does with it: implemented,
//! accepted as the no-op it is in `agent.jar`, or refused with the reason and what to use.
//! The parser, `--help` and the README's option table all come from that one list.
//!
//! Why not clap: `agent.jar`'s options are single-dash long names (`-url`, `-jar-cache`,
//! `-noReconnect`), which neither clap nor lexopt parse (both read `-url` as `-u -r -l`);
//! rewriting them to `--url` first would make every error message name an option the user
//! never typed. The table below is the whole parser.

use std::path::PathBuf;
use std::time::Duration;

use base64::Engine;

use crate::transport::net::HttpUrl;
use crate::transport::Secret;

/// Log output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// `-tunnel HOST:PORT`, `HOST:` or `:PORT`: where to open the JNLP4 TCP connection instead
/// of the discovered address; a missing part keeps the discovered one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tunnel {
    /// Host, or the discovered one.
    pub host: Option<String>,
    /// Port, or the discovered one.
    pub port: Option<u16>,
}

/// How JNLP4-connect finds the controller's agent port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Jnlp4Route {
    /// HTTP discovery (`<url>tcpSlaveAgentListener/`) on each `-url` in turn, optionally
    /// through a tunnel.
    Discover {
        /// `-tunnel`
        tunnel: Option<Tunnel>,
    },
    /// `-direct HOST:PORT -instanceIdentity KEY`: no HTTP at all.
    Direct {
        /// Agent port host.
        host: String,
        /// Agent port.
        port: u16,
        /// DER SubjectPublicKeyInfo of the controller's instance identity.
        identity: Vec<u8>,
    },
}

/// How to reach the controller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TransportChoice {
    /// `<url>wsagents/` (`-webSocket`), with any `-webSocketHeader`s.
    WebSocket {
        /// Extra upgrade headers.
        headers: Vec<(String, String)>,
    },
    /// JNLP4-connect over TCP + TLS.
    Jnlp4(Jnlp4Route),
}

/// Everything the agent needs to run.
#[derive(Clone, Debug)]
pub struct AgentOptions {
    /// Controller URLs, each ending in `/`; empty with `-direct`.
    pub urls: Vec<String>,
    /// Node name.
    pub name: String,
    /// Node secret.
    pub secret: Secret,
    /// Working directory (`-workDir`).
    pub work_dir: Option<PathBuf>,
    /// Internal directory under the work dir (`-internalDir`, default `remoting`).
    pub internal_dir: String,
    /// Fail if the work dir (or its internal dir) does not exist.
    pub fail_if_work_dir_is_missing: bool,
    /// `-agentLog`: the log file, instead of the work directory's.
    pub agent_log: Option<PathBuf>,
    /// Exit instead of reconnecting.
    pub no_reconnect: bool,
    /// `-noReconnectAfter`: give up after failing to reconnect for this long.
    pub no_reconnect_after: Option<Duration>,
    /// Keep retrying after the controller refused the credentials.
    pub retry_refused: bool,
    /// Log format.
    pub log_format: LogFormat,
    /// Log level directives (`--log-level`, else `RUST_LOG`, else `info`).
    pub log_level: String,
    /// Transport.
    pub transport: TransportChoice,
    /// Extra CA certificates (PEM) to trust for `https://` controllers (`-cert`).
    pub extra_ca_pem: Option<String>,
    /// TCP keep-alive (off with `-noKeepAlive`).
    pub keep_alive: bool,
    /// `-credentials USER:PASSWORD`: HTTP Basic auth on the discovery request.
    pub credentials: Option<Secret>,
    /// `-proxyCredentials USER:PASSWORD`: Basic auth for the HTTP proxy.
    pub proxy_credentials: Option<Secret>,
    /// Bound on each step of connecting (`--connect-timeout`).
    pub connect_timeout: Duration,
    /// A connection on which nothing arrives for this long is dead (`--idle-timeout`).
    pub idle_timeout: Duration,
    /// Warnings about accepted-but-ignored settings, logged once logging is up.
    pub notes: Vec<String>,
    /// The JVM helper for plugin callables (`--jvm`, `--jvm-idle`; see `crate::jvm`).
    pub jvm: crate::jvm::JvmOptions,
}

/// What the command line asks for.
#[derive(Debug)]
pub enum Command {
    /// `-help`, `--help`, `-h`.
    Help,
    /// `-version`, `--version`, `-V`.
    Version,
    /// Run the agent.
    Run(Box<AgentOptions>),
}

/// What nectr does with an option.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Support {
    /// Does what `agent.jar` does.
    Implemented,
    /// Accepted and ignored, as `agent.jar` ignores it too (or it has no meaning without a JVM).
    NoOp,
    /// Refused with a message.
    Refused,
    /// nectr's own (not in `agent.jar`).
    Extra,
}

impl Support {
    /// The word the README table uses.
    pub fn word(self) -> &'static str {
        match self {
            Support::Implemented => "implemented",
            Support::NoOp => "accepted, no effect",
            Support::Refused => "refused",
            Support::Extra => "nectr only",
        }
    }
}

/// One option of the command line.
#[derive(Debug)]
pub struct OptionSpec {
    /// The name, as typed (`-url`).
    pub name: &'static str,
    /// Other spellings.
    pub aliases: &'static [&'static str],
    /// The value's placeholder, for options that take one.
    pub value: Option<&'static str>,
    /// What nectr does with it.
    pub support: Support,
    /// What it does, or (refused) why not and what to use instead.
    pub text: &'static str,
}

const fn opt(
    name: &'static str,
    aliases: &'static [&'static str],
    value: Option<&'static str>,
    support: Support,
    text: &'static str,
) -> OptionSpec {
    OptionSpec {
        name,
        aliases,
        value,
        support,
        text,
    }
}

use Support::*;

/// Every `agent.jar` option (remoting's `Launcher`) and nectr's own, in `--help` order.
pub const OPTIONS: &[OptionSpec] = &[
    opt("-url", &[], Some("URL"), Implemented,
        "Jenkins root URL. Repeat it to try several in turn (JNLP4-connect); -webSocket takes exactly one"),
    opt("-name", &[], Some("NAME"), Implemented, "the node's name"),
    opt("-secret", &[], Some("SECRET|@FILE"), Implemented,
        "the node's secret, or @FILE to read it from a file. A secret typed on the command line is moved out of nectr's own command line (ps never shows it)"),
    opt("-webSocket", &[], None, Implemented,
        "connect over WebSocket (the URL's wsagents/ path) instead of the TCP agent port; needs exactly one -url"),
    opt("-webSocketHeader", &[], Some("NAME=VALUE"), Implemented,
        "an extra header on the WebSocket upgrade, e.g. for a reverse proxy (repeatable); needs -webSocket"),
    opt("-direct", &["-directConnection"], Some("HOST:PORT"), Implemented,
        "JNLP4-connect straight to this agent port, without HTTP discovery; needs -instanceIdentity, not with -url or -tunnel"),
    opt("-instanceIdentity", &[], Some("KEY"), Implemented,
        "the controller's public key, base64 as its X-Instance-Identity header shows it; needs -direct"),
    opt("-protocols", &[], Some("LIST"), Implemented,
        "the protocols to try with -direct; must include JNLP4-connect, the one protocol current Jenkins (and nectr) speaks"),
    opt("-tunnel", &[], Some("HOST:PORT"), Implemented,
        "open the JNLP4 TCP connection to HOST:PORT instead of the discovered address (HOST: or :PORT keep the other part); not with -webSocket or -direct"),
    opt("-workDir", &[], Some("DIR"), Implemented,
        "the work directory; logs go to DIR/remoting/logs/nectr-agent.log (see -internalDir). Without it nectr, like agent.jar, creates no directory and logs to the console only"),
    opt("-internalDir", &[], Some("NAME"), Implemented,
        "the directory under -workDir for nectr's own files (default remoting); needs -workDir"),
    opt("-failIfWorkDirIsMissing", &[], None, Implemented,
        "exit if the work directory or its internal directory does not exist, instead of creating them; needs -workDir"),
    opt("-agentLog", &[], Some("FILE"), Implemented,
        "write the log to FILE (as well as the console) instead of the work directory's log"),
    opt("-noReconnect", &["-noreconnect"], None, Implemented,
        "exit (status 1) when the connection fails or ends, instead of reconnecting"),
    opt("-noReconnectAfter", &[], Some("DURATION"), Implemented,
        "give up after failing to reconnect for DURATION (10s, 5m, 1h, 2d or ISO-8601 PT1H; a bare number is milliseconds, as in agent.jar); not with -noReconnect"),
    opt("-noKeepAlive", &[], None, Implemented,
        "turn TCP keep-alive off on the agent port connection (it is on by default); not with -webSocket"),
    opt("-cert", &[], Some("PEM|@FILE"), Implemented,
        "an extra CA certificate to trust for https:// controllers: PEM text, or @FILE (repeatable). Checked before connecting"),
    opt("-credentials", &["-jnlpCredentials"], Some("USER:PASSWORD"), Implemented,
        "HTTP Basic credentials for the discovery request (JNLP4-connect); not with -webSocket (use -webSocketHeader). Moved out of the command line like -secret"),
    opt("-proxyCredentials", &[], Some("USER:PASSWORD"), Implemented,
        "Basic credentials for the HTTP proxy (https_proxy / http_proxy, which may also carry user:password@). Moved out of the command line like -secret"),
    opt("-noCertificateCheck", &["-disableHttpsCertValidation"], None, Refused,
        "nectr never turns TLS verification off: give the controller's CA with -cert @ca.pem"),
    opt("-jnlpUrl", &[], Some("URL"), Refused,
        "deprecated in agent.jar: use -url JENKINS_URL -name NAME -secret SECRET (the node's page in Jenkins shows all three)"),
    opt("-loggingConfig", &[], Some("FILE"), Refused,
        "java.util.logging settings do not apply: use --log-level (or RUST_LOG) and --log-format"),
    opt("-jar-cache", &[], Some("DIR"), NoOp,
        "nectr loads no jars itself; its JVM helper keeps its jar cache in DIR/remoting/jvm/jarCache of -workDir"),
    opt("-text", &[], None, NoOp,
        "agent.jar uses it only in its stdin/stdout mode; an inbound agent ignores it"),
    opt("-headless", &[], None, NoOp, "deprecated no-op in agent.jar (always headless)"),
    opt("-ping", &[], None, NoOp, "deprecated no-op in agent.jar (pings always run)"),
    opt("-auth", &[], Some("USER:PASSWORD"), NoOp,
        "deprecated and unused in agent.jar; use -credentials or -proxyCredentials"),
    opt("-tcp", &[], Some("FILE"), Refused,
        "agent.jar's deprecated listen mode: nectr-agent is an inbound agent only; use -url"),
    opt("-connectTo", &[], Some("HOST:PORT"), Refused,
        "agent.jar's deprecated raw TCP mode: use -url, or -direct HOST:PORT -instanceIdentity KEY"),
    opt("-help", &["--help", "-h"], None, Implemented, "print this help and exit 0"),
    opt("-version", &["--version", "-V"], None, Implemented, "print the version and exit 0"),
    opt("--log-level", &[], Some("LEVEL"), Extra,
        "error, warn, info (default), debug, trace or off; or RUST_LOG-style TARGET=LEVEL,... directives. Overrides RUST_LOG"),
    opt("--log-format", &[], Some("text|json"), Extra, "log lines as text (default) or one JSON object per line"),
    opt("--connect-timeout", &[], Some("DURATION"), Extra,
        "bound on each step of connecting (discovery, TCP, TLS, WebSocket upgrade, JNLP4 handshake, the controller's first command); default 30s, a bare number is seconds"),
    opt("--idle-timeout", &[], Some("DURATION"), Extra,
        "a connection on which nothing arrives for this long is dead and is reconnected (agent.jar's 30-minute socket timeout); default 30m. Pings the controller asks for detect a silent controller sooner"),
    opt("--retry-refused", &[], None, Extra,
        "keep retrying after the controller refused the name or secret (by default that exits with status 1)"),
    opt("--jvm", &[], Some("auto|off|PATH"), Extra,
        "the JVM helper for the callables nectr does not run natively (plugin code: checkout scm, junit …): auto (default) starts the controller's agent.jar on a Java 17+ found on the machine when such a call comes; PATH: that java; off: such calls fail with an exception naming the class"),
    opt("--jvm-idle", &[], Some("DURATION"), Extra,
        "stop the JVM helper after it has been idle this long (default 5m; a bare number is seconds); it starts again when a call needs it"),
];

/// One environment variable of the inbound-agent image's contract.
#[derive(Debug)]
pub struct EnvSpec {
    /// The variable.
    pub name: &'static str,
    /// What nectr does with it.
    pub support: Support,
    /// The option it stands for, or what happens.
    pub text: &'static str,
}

const fn env(name: &'static str, support: Support, text: &'static str) -> EnvSpec {
    EnvSpec {
        name,
        support,
        text,
    }
}

/// The environment variables the inbound-agent image's `jenkins-agent` script reads, and
/// nectr's own. An option on the command line wins over its variable.
pub const ENVIRONMENT: &[EnvSpec] = &[
    env("JENKINS_URL", Implemented, "-url"),
    env("JENKINS_AGENT_NAME", Implemented, "-name"),
    env("JENKINS_NAME", Implemented, "-name (wins over JENKINS_AGENT_NAME, as in the image)"),
    env("JENKINS_SECRET", Implemented, "-secret"),
    env("JENKINS_AGENT_WORKDIR", Implemented, "-workDir"),
    env("JENKINS_WEB_SOCKET", Implemented,
        "-webSocket when exactly true; any other non-empty value means TCP, as in the image (with a warning)"),
    env("JENKINS_DIRECT_CONNECTION", Implemented, "-direct"),
    env("JENKINS_INSTANCE_IDENTITY", Implemented, "-instanceIdentity"),
    env("JENKINS_PROTOCOLS", Implemented, "-protocols"),
    env("JENKINS_TUNNEL", Implemented, "-tunnel"),
    env("REMOTING_OPTS", Implemented,
        "more options, split as a shell would (quotes work), placed before the command line's"),
    env("JENKINS_JAVA_BIN", Implemented, "--jvm PATH: the Java of the JVM helper (--jvm and NECTR_JVM win)"),
    env("JENKINS_JAVA_OPTS", Implemented, "options of the JVM helper's java, e.g. -Xmx512m"),
    env("JENKINS_AGENT_FILE", NoOp, "the JVM helper's agent.jar comes from the controller (a warning says so)"),
    env("JAVA_HOME", Implemented, "where --jvm auto looks for the JVM helper's Java first (then PATH, /usr/lib/jvm); builds see it too"),
    env("JAVA_OPTS", NoOp, "not used by the agent; builds still see it"),
    env("RUST_LOG", Extra, "log level directives, as --log-level"),
    env("NECTR_JVM", Extra, "--jvm"),
    env("NECTR_JVM_IDLE", Extra, "--jvm-idle"),
    env("NECTR_CREDENTIALS", Extra, "-credentials (where nectr moves a command-line value)"),
    env("NECTR_PROXY_CREDENTIALS", Extra, "-proxyCredentials (where nectr moves a command-line value)"),
];

/// The spec of an option name or alias.
pub fn spec(name: &str) -> Option<&'static OptionSpec> {
    OPTIONS
        .iter()
        .find(|o| o.name == name || o.aliases.contains(&name))
}

/// The README's option and environment tables (`scripts`-free: a test compares them with
/// the README).
pub fn markdown_tables() -> String {
    let mut s = String::from("| option | status | in nectr-agent |\n|---|---|---|\n");
    for o in OPTIONS {
        let mut names = vec![o.name];
        names.extend(o.aliases);
        let names: Vec<String> = names
            .iter()
            .map(|n| match o.value {
                Some(v) => format!("`{n} {}`", v.replace('|', "\\|")),
                None => format!("`{n}`"),
            })
            .collect();
        s.push_str(&format!(
            "| {} | {} | {} |\n",
            names.join(", "),
            o.support.word(),
            o.text.replace('|', "\\|")
        ));
    }
    s.push_str(
        "| `SECRET NAME` (two positional arguments) | implemented | agent.jar's deprecated form of -secret and -name |\n\
         | neither `-url` nor `-direct` (agent.jar's stdin/stdout mode) | refused | nectr is an inbound agent: give -url or -direct |\n",
    );
    s.push_str("\n| environment variable | status | in nectr-agent |\n|---|---|---|\n");
    for e in ENVIRONMENT {
        s.push_str(&format!(
            "| `{}` | {} | {} |\n",
            e.name,
            e.support.word(),
            e.text
        ));
    }
    s
}

/// The option lines of `--help`.
pub fn help_options() -> String {
    let mut s = String::new();
    for o in OPTIONS {
        let mut head = o.name.to_string();
        for a in o.aliases {
            head.push_str(&format!(" ({a})"));
        }
        if let Some(v) = o.value {
            head.push_str(&format!(" {v}"));
        }
        let tag = match o.support {
            Implemented | Extra => String::new(),
            NoOp => "[accepted, no effect] ".into(),
            Refused => "[refused] ".into(),
        };
        s.push_str(&format!("    {head}\n"));
        s.push_str(&wrap(&format!("{tag}{}", o.text), 10, 92));
    }
    s
}

fn wrap(text: &str, indent: usize, width: usize) -> String {
    let mut out = String::new();
    let mut line = String::new();
    for w in text.split_whitespace() {
        if !line.is_empty() && indent + line.len() + 1 + w.len() > width {
            out.push_str(&format!("{}{line}\n", " ".repeat(indent)));
            line.clear();
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(w);
    }
    if !line.is_empty() {
        out.push_str(&format!("{}{line}\n", " ".repeat(indent)));
    }
    out
}

/// Options whose values must not stay in the process's command line, and the variable
/// each moves to.
const SENSITIVE: &[(&str, &str)] = &[
    ("-secret", "JENKINS_SECRET"),
    ("-credentials", "NECTR_CREDENTIALS"),
    ("-proxyCredentials", "NECTR_PROXY_CREDENTIALS"),
];

/// Environment variables and the values moved into them.
pub type MovedToEnv = Vec<(&'static str, String)>;

/// Splits secrets out of `args`: `-secret VALUE` (not `@FILE`), `-credentials`,
/// `-proxyCredentials`, the positional `SECRET NAME` form, and `-auth`'s (unused) value.
/// Returns the arguments to keep and the variables to set, or `None` if there is nothing to
/// hide. The agent re-executes itself with them, so `ps` and /proc/PID/cmdline never show a
/// secret.
pub fn hide_sensitive(args: &[String]) -> Option<(Vec<String>, MovedToEnv)> {
    let mut keep = Vec::new();
    let mut env = Vec::new();
    let mut positional = Vec::new();
    let mut named_secret = false;
    let mut i = 0;
    while i < args.len() {
        let a = args[i].as_str();
        let Some(s) = spec(a) else {
            if !a.starts_with('-') {
                positional.push(keep.len());
            }
            keep.push(args[i].clone());
            i += 1;
            continue;
        };
        let Some(v) = args.get(i + 1).filter(|_| s.value.is_some()) else {
            keep.push(args[i].clone());
            i += 1;
            continue;
        };
        if s.name == "-secret" {
            named_secret = true;
        }
        match SENSITIVE.iter().find(|(o, _)| *o == s.name) {
            Some((_, var)) if !(s.name == "-secret" && v.starts_with('@')) => {
                env.push((*var, v.clone()));
            }
            _ if s.name == "-auth" => {
                keep.push(args[i].clone());
                keep.push("(hidden)".into());
            }
            _ => {
                keep.push(args[i].clone());
                keep.push(v.clone());
            }
        }
        i += 2;
    }
    if positional.len() == 2 && !named_secret {
        let secret = keep.remove(positional[0]);
        env.push(("JENKINS_SECRET", secret));
        // The name keeps its place, now as -name.
        keep.insert(positional[1] - 1, "-name".into());
    }
    let changed =
        !env.is_empty() || keep.len() != args.len() || keep.iter().zip(args).any(|(k, a)| k != a);
    changed.then_some((keep, env))
}

/// What the command line and the environment gave, before checking.
#[derive(Default)]
struct Given {
    urls: Vec<String>,
    name: Option<String>,
    secret: Option<String>,
    web_socket: bool,
    ws_headers: Vec<String>,
    direct: Option<String>,
    identity: Option<String>,
    protocols: Vec<String>,
    tunnel: Option<String>,
    work_dir: Option<String>,
    internal_dir: Option<String>,
    fail_if_missing: bool,
    agent_log: Option<String>,
    no_reconnect: bool,
    no_reconnect_after: Option<String>,
    no_keep_alive: bool,
    certs: Vec<String>,
    credentials: Option<String>,
    proxy_credentials: Option<String>,
    positional: Vec<String>,
    log_level: Option<String>,
    log_format: Option<String>,
    connect_timeout: Option<String>,
    idle_timeout: Option<String>,
    retry_refused: bool,
    jvm: Option<String>,
    jvm_idle: Option<String>,
    java_opts: Option<String>,
    help: bool,
    version: bool,
    notes: Vec<String>,
}

fn from_environment(env: &dyn Fn(&str) -> Option<String>) -> Given {
    let get = |k: &str| env(k).filter(|v| !v.is_empty());
    let mut g = Given {
        urls: get("JENKINS_URL").into_iter().collect(),
        name: get("JENKINS_NAME").or_else(|| get("JENKINS_AGENT_NAME")),
        secret: get("JENKINS_SECRET"),
        web_socket: get("JENKINS_WEB_SOCKET").is_some_and(|v| v == "true"),
        direct: get("JENKINS_DIRECT_CONNECTION"),
        identity: get("JENKINS_INSTANCE_IDENTITY"),
        protocols: get("JENKINS_PROTOCOLS").into_iter().collect(),
        tunnel: get("JENKINS_TUNNEL"),
        work_dir: get("JENKINS_AGENT_WORKDIR"),
        credentials: get("NECTR_CREDENTIALS"),
        proxy_credentials: get("NECTR_PROXY_CREDENTIALS"),
        log_level: get("RUST_LOG"),
        jvm: get("NECTR_JVM").or_else(|| get("JENKINS_JAVA_BIN")),
        jvm_idle: get("NECTR_JVM_IDLE"),
        java_opts: get("JENKINS_JAVA_OPTS"),
        ..Given::default()
    };
    if let Some(v) = get("JENKINS_WEB_SOCKET").filter(|v| v != "true" && v != "false") {
        g.notes.push(format!(
            "JENKINS_WEB_SOCKET={v:?} is not \"true\": connecting over the TCP agent port, as the inbound-agent image does"
        ));
    }
    if get("JENKINS_AGENT_FILE").is_some() {
        g.notes.push(
            "JENKINS_AGENT_FILE is set but nectr-agent fetches its JVM helper's agent.jar from the controller: ignored"
                .into(),
        );
    }
    g
}

fn from_arguments(words: &[String]) -> Result<Given, String> {
    let mut g = Given::default();
    let mut it = words.iter();
    while let Some(a) = it.next() {
        let (key, inline) = match a.split_once('=') {
            Some((k, v)) if k.starts_with("--") => (k, Some(v.to_string())),
            _ => (a.as_str(), None),
        };
        let Some(s) = spec(key) else {
            if a.starts_with('-') && a.len() > 1 {
                return Err(format!(
                    "unknown option {a}: nectr-agent --help lists every agent.jar option and what nectr does with it"
                ));
            }
            g.positional.push(a.clone());
            continue;
        };
        let value = match (s.value, inline) {
            (Some(_), Some(v)) => Some(v),
            (Some(what), None) => Some(
                it.next()
                    .cloned()
                    .ok_or_else(|| format!("{a} needs a value: {a} {what}"))?,
            ),
            (None, Some(_)) => return Err(format!("{key} takes no value")),
            (None, None) => None,
        };
        let v = || value.clone().unwrap_or_default();
        match s.support {
            Refused => {
                return Err(format!(
                    "the agent.jar option {key} is not supported by nectr-agent: {}",
                    s.text
                ))
            }
            NoOp => {
                g.notes.push(format!("{key} has no effect: {}", s.text));
                continue;
            }
            Implemented | Extra => {}
        }
        match s.name {
            "-url" => g.urls.push(v()),
            "-name" => g.name = Some(v()),
            "-secret" => g.secret = Some(v()),
            "-webSocket" => g.web_socket = true,
            "-webSocketHeader" => g.ws_headers.push(v()),
            "-direct" => g.direct = Some(v()),
            "-instanceIdentity" => g.identity = Some(v()),
            "-protocols" => g.protocols.push(v()),
            "-tunnel" => g.tunnel = Some(v()),
            "-workDir" => g.work_dir = Some(v()),
            "-internalDir" => g.internal_dir = Some(v()),
            "-failIfWorkDirIsMissing" => g.fail_if_missing = true,
            "-agentLog" => g.agent_log = Some(v()),
            "-noReconnect" => g.no_reconnect = true,
            "-noReconnectAfter" => g.no_reconnect_after = Some(v()),
            "-noKeepAlive" => g.no_keep_alive = true,
            "-cert" => g.certs.push(v()),
            "-credentials" => g.credentials = Some(v()),
            "-proxyCredentials" => g.proxy_credentials = Some(v()),
            "-help" => g.help = true,
            "-version" => g.version = true,
            "--log-level" => g.log_level = Some(v()),
            "--log-format" => g.log_format = Some(v()),
            "--connect-timeout" => g.connect_timeout = Some(v()),
            "--idle-timeout" => g.idle_timeout = Some(v()),
            "--retry-refused" => g.retry_refused = true,
            "--jvm" => g.jvm = Some(v()),
            "--jvm-idle" => g.jvm_idle = Some(v()),
            other => unreachable!("option {other} has no parser arm"),
        }
    }
    Ok(g)
}

/// Parses a duration as `agent.jar` does (remoting's `DurationStyle`): `10s`, `5m`, `2h`,
/// `1d`, `250ms`, `10us`, `10ns`, or ISO-8601 (`PT1H30M`, `P2D`); a bare number is in
/// `bare` units.
pub fn parse_duration(v: &str, bare: Duration) -> Result<Duration, String> {
    let bad = || {
        format!("{v:?} is not a duration: write e.g. 30s, 5m, 2h, 1d, 250ms or ISO-8601 PT1H30M")
    };
    let t = v.trim();
    if let Some(iso) = t.strip_prefix(['P', 'p']) {
        return parse_iso_duration(iso).ok_or_else(bad);
    }
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num.parse().map_err(|_| bad())?;
    let unit_len = match unit.to_ascii_lowercase().as_str() {
        "" => {
            return bare
                .checked_mul(n.try_into().map_err(|_| bad())?)
                .ok_or_else(bad)
        }
        "ns" => Duration::from_nanos(1),
        "us" | "µs" => Duration::from_micros(1),
        "ms" => Duration::from_millis(1),
        "s" => Duration::from_secs(1),
        "m" => Duration::from_secs(60),
        "h" => Duration::from_secs(3600),
        "d" => Duration::from_secs(86400),
        _ => return Err(bad()),
    };
    unit_len
        .checked_mul(n.try_into().map_err(|_| bad())?)
        .ok_or_else(bad)
}

/// `[nD][T[nH][nM][n[.n]S]]` (after the `P`).
fn parse_iso_duration(s: &str) -> Option<Duration> {
    let (date, time) = match s.split_once(['T', 't']) {
        Some((d, t)) => (d, Some(t)),
        None => (s, None),
    };
    let mut total = Duration::ZERO;
    let mut any = false;
    if !date.is_empty() {
        let days: u64 = date.strip_suffix(['D', 'd'])?.parse().ok()?;
        total += Duration::from_secs(days.checked_mul(86400)?);
        any = true;
    }
    if let Some(mut t) = time {
        if t.is_empty() {
            return None;
        }
        for (suffix, secs) in [('H', 3600.0), ('M', 60.0), ('S', 1.0)] {
            if let Some(i) = t.find([suffix, suffix.to_ascii_lowercase()]) {
                let n: f64 = t[..i].parse().ok()?;
                if !(n >= 0.0 && n.is_finite()) || (suffix != 'S' && n.fract() != 0.0) {
                    return None;
                }
                total += Duration::try_from_secs_f64(n * secs).ok()?;
                t = &t[i + 1..];
                any = true;
            }
        }
        if !t.is_empty() {
            return None;
        }
    }
    any.then_some(total)
}

/// `HOST:PORT` (IPv6 in brackets), as agent.jar's `HostPort`; with `partial`, `HOST:` and
/// `:PORT` leave that part out.
fn host_port(what: &str, v: &str, partial: bool) -> Result<(Option<String>, Option<u16>), String> {
    let t = v.trim();
    let (host, port) = if let Some(rest) = t.strip_prefix('[') {
        let (h, p) = rest
            .split_once(']')
            .ok_or_else(|| format!("{what} {v:?}: an IPv6 address needs a closing ]"))?;
        let p = p
            .strip_prefix(':')
            .ok_or_else(|| format!("{what} {v:?} must be HOST:PORT"))?;
        (h, p)
    } else {
        t.rsplit_once(':').ok_or_else(|| {
            format!("{what} {v:?} must be HOST:PORT, e.g. jenkins.example.com:50000")
        })?
    };
    let host = (!host.trim().is_empty()).then(|| host.trim().to_string());
    let port = match port.trim() {
        "" => None,
        p => match p.parse::<u16>() {
            Ok(n) if n > 0 => Some(n),
            _ => {
                return Err(format!(
                    "{what} {v:?}: the port must be a number from 1 to 65535"
                ))
            }
        },
    };
    if !partial && (host.is_none() || port.is_none()) {
        return Err(format!(
            "{what} {v:?} must be HOST:PORT, e.g. jenkins.example.com:50000"
        ));
    }
    if host.is_none() && port.is_none() {
        return Err(format!("{what} {v:?} must be HOST:PORT, HOST: or :PORT"));
    }
    Ok((host, port))
}

fn read_secret(v: &str) -> Result<String, String> {
    let s = match v.strip_prefix('@') {
        Some(path) => std::fs::read_to_string(path)
            .map(|s| s.trim().to_string())
            .map_err(|e| format!("cannot read the secret file {path}: {e}"))?,
        None => v.to_string(),
    };
    if s.is_empty() {
        return Err(match v.strip_prefix('@') {
            Some(path) => format!("the secret file {path} is empty"),
            None => "the secret is empty".into(),
        });
    }
    Ok(s)
}

/// Reads one `-cert` value (PEM text or `@FILE`) and checks it holds certificates.
fn read_cert(v: &str) -> Result<String, String> {
    use rustls_pki_types::pem::PemObject;
    let (pem, from) = match v.strip_prefix('@') {
        Some(path) => (
            std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read the -cert file {path}: {e}"))?,
            format!("the -cert file {path}"),
        ),
        None => {
            if !v.contains("-----BEGIN") {
                return Err(if std::path::Path::new(v).is_file() {
                    format!("-cert {v}: to read a file, write -cert @{v} (as in agent.jar); without @ the value is the PEM text itself")
                } else {
                    format!(
                        "-cert expects PEM text (-----BEGIN CERTIFICATE-----…) or @FILE, not {v:?}"
                    )
                });
            }
            (v.to_string(), "-cert".to_string())
        }
    };
    let mut n = 0;
    for c in rustls_pki_types::CertificateDer::pem_slice_iter(pem.as_bytes()) {
        c.map_err(|e| format!("{from}: not a valid PEM certificate: {e}"))?;
        n += 1;
    }
    if n == 0 {
        return Err(format!(
            "{from}: no PEM certificate (-----BEGIN CERTIFICATE-----) found"
        ));
    }
    Ok(pem)
}

fn user_password(opt: &str, v: String) -> Result<Secret, String> {
    if !v.contains(':') {
        return Err(format!("{opt} must be USER:PASSWORD"));
    }
    Ok(Secret::new(v))
}

fn header(v: &str) -> Result<(String, String), String> {
    let (n, val) = v
        .split_once('=')
        .ok_or_else(|| format!("-webSocketHeader {v:?} must be NAME=VALUE"))?;
    let token = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
    if n.is_empty() || !n.chars().all(token) {
        return Err(format!(
            "-webSocketHeader: {n:?} is not a valid HTTP header name"
        ));
    }
    if val.chars().any(|c| c.is_ascii_control() && c != '\t') {
        return Err(format!(
            "-webSocketHeader {n}: the value contains control characters"
        ));
    }
    Ok((n.to_string(), val.to_string()))
}

/// Parses the agent's arguments, with `env` giving the environment variables.
pub fn parse(args: &[String], env: &dyn Fn(&str) -> Option<String>) -> Result<Command, String> {
    let from_env = from_environment(env);
    let mut words = Vec::new();
    if let Some(r) = env("REMOTING_OPTS").filter(|v| !v.trim().is_empty()) {
        words = shlex::split(&r).ok_or_else(|| {
            "REMOTING_OPTS has an unbalanced quote or a trailing backslash".to_string()
        })?;
    }
    words.extend(args.iter().cloned());
    let c = from_arguments(&words)?;
    if c.help {
        return Ok(Command::Help);
    }
    if c.version {
        return Ok(Command::Version);
    }
    let e = from_env;
    let list = |c: Vec<String>, e: Vec<String>| if c.is_empty() { e } else { c };
    let mut notes = e.notes;
    notes.extend(c.notes);

    // agent.jar's deprecated positional form: SECRET NAME.
    let (mut name, mut secret) = (c.name, c.secret);
    match c.positional.as_slice() {
        [] => {}
        [s, n] => {
            if secret.is_some() {
                return Err("the secret is given both by -secret and as an argument: use one".into());
            }
            if name.is_some() {
                return Err("the name is given both by -name and as an argument: use one".into());
            }
            secret = Some(s.clone());
            name = Some(n.clone());
        }
        [one] => {
            return Err(format!(
                "unexpected argument {one:?}: agent.jar's positional form takes two, SECRET NAME. (The inbound-agent image runs a single argument as a command; nectr's image holds only nectr-agent.)"
            ))
        }
        more => {
            return Err(format!(
                "{} unexpected arguments: agent.jar's positional form takes two, SECRET NAME",
                more.len()
            ))
        }
    }
    let name = name.or(e.name);
    let secret = secret.or(e.secret);
    let urls = list(c.urls, e.urls);
    let direct = c.direct.or(e.direct);
    let identity = c.identity.or(e.identity);
    let protocols = list(c.protocols, e.protocols);
    let tunnel = c.tunnel.or(e.tunnel);
    let web_socket = c.web_socket || e.web_socket;
    let work_dir = c.work_dir.or(e.work_dir);
    let credentials = c.credentials.or(e.credentials);
    let proxy_credentials = c.proxy_credentials.or(e.proxy_credentials);

    // Required settings, all named at once.
    let mut missing = Vec::new();
    if urls.is_empty() && direct.is_none() {
        missing.push("the controller: -url URL (or JENKINS_URL), or -direct HOST:PORT -instanceIdentity KEY (or JENKINS_DIRECT_CONNECTION and JENKINS_INSTANCE_IDENTITY)");
    }
    if name.is_none() {
        missing.push("the node name: -name NAME (or JENKINS_AGENT_NAME)");
    }
    if secret.is_none() {
        missing.push("the secret: -secret SECRET, -secret @FILE (or JENKINS_SECRET)");
    }
    if !missing.is_empty() {
        return Err(format!(
            "missing {}. nectr-agent --help lists every option",
            missing.join("; ")
        ));
    }
    let name = name.unwrap_or_default();
    if name.trim().is_empty() {
        return Err("the node name is empty".into());
    }
    let secret = Secret::new(read_secret(&secret.unwrap_or_default())?);

    // agent.jar's `depends` and `forbids` rules.
    let conflict =
        |a: &str, b: &str, why: &str| Err(format!("{a} cannot be combined with {b}: {why}"));
    if direct.is_some() && !urls.is_empty() {
        return conflict(
            "-direct (JENKINS_DIRECT_CONNECTION)",
            "-url (JENKINS_URL)",
            "-direct skips the HTTP discovery that -url is for; keep one (as agent.jar requires)",
        );
    }
    if direct.is_some() && tunnel.is_some() {
        return conflict(
            "-direct",
            "-tunnel (JENKINS_TUNNEL)",
            "with -direct, give the tunnel's address to -direct itself",
        );
    }
    if direct.is_some() && identity.is_none() {
        return Err("-direct needs -instanceIdentity (the controller's public key, base64, as its X-Instance-Identity header shows it; or JENKINS_INSTANCE_IDENTITY)".into());
    }
    if identity.is_some() && direct.is_none() {
        return Err("-instanceIdentity (JENKINS_INSTANCE_IDENTITY) applies only with -direct HOST:PORT; with -url the identity is discovered".into());
    }
    if !protocols.is_empty() && direct.is_none() {
        return Err("-protocols (JENKINS_PROTOCOLS) applies only with -direct HOST:PORT; with -url the controller lists its protocols".into());
    }
    if web_socket {
        if direct.is_some() {
            return conflict(
                "-webSocket",
                "-direct",
                "WebSocket goes through the controller's URL; use -url",
            );
        }
        if tunnel.is_some() {
            return conflict(
                "-webSocket",
                "-tunnel (JENKINS_TUNNEL)",
                "a tunnel is for the TCP agent port; WebSocket uses the URL's own port",
            );
        }
        if credentials.is_some() {
            return conflict(
                "-webSocket",
                "-credentials",
                "give an Authorization header with -webSocketHeader instead",
            );
        }
        if c.no_keep_alive {
            return conflict(
                "-webSocket",
                "-noKeepAlive",
                "as in agent.jar, it applies to the TCP agent port only",
            );
        }
        if urls.len() > 1 {
            return Err(format!(
                "-webSocket takes exactly one -url, not {}",
                urls.len()
            ));
        }
    } else if !c.ws_headers.is_empty() {
        return Err("-webSocketHeader needs -webSocket".into());
    }
    if work_dir.is_none() {
        if c.internal_dir.is_some() {
            return Err("-internalDir needs -workDir (it names a directory inside it)".into());
        }
        if c.fail_if_missing {
            return Err("-failIfWorkDirIsMissing needs -workDir".into());
        }
    }
    if c.no_reconnect && c.no_reconnect_after.is_some() {
        return conflict(
            "-noReconnect",
            "-noReconnectAfter",
            "one says never reconnect, the other for how long",
        );
    }

    // Values.
    let mut checked_urls = Vec::new();
    for u in &urls {
        let parsed = HttpUrl::parse(u).map_err(|e| format!("-url {u:?}: {e}"))?;
        if parsed.host.is_empty() {
            return Err(format!("-url {u:?} has no host"));
        }
        checked_urls.push(if u.ends_with('/') {
            u.clone()
        } else {
            format!("{u}/")
        });
    }
    let transport = if web_socket {
        let headers = c
            .ws_headers
            .iter()
            .map(|h| header(h))
            .collect::<Result<_, _>>()?;
        TransportChoice::WebSocket { headers }
    } else if let Some(d) = &direct {
        let (host, port) = host_port("-direct", d, false)?;
        let id = identity.unwrap_or_default();
        let der = base64::engine::general_purpose::STANDARD
            .decode(id.trim())
            .map_err(|_| format!("-instanceIdentity is not valid base64 ({} characters); copy the X-Instance-Identity header of <jenkins>/tcpSlaveAgentListener/", id.len()))?;
        if der.first() != Some(&0x30) || der.len() < 32 {
            return Err("-instanceIdentity does not hold a public key (a DER SubjectPublicKeyInfo, as in X-Instance-Identity)".into());
        }
        if !protocols.is_empty() {
            let all: Vec<&str> = protocols
                .iter()
                .flat_map(|p| p.split(','))
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .collect();
            if !all.contains(&"JNLP4-connect") {
                return Err(format!("-protocols {all:?}: nectr-agent speaks JNLP4-connect, the only protocol current Jenkins offers; give -protocols JNLP4-connect"));
            }
        }
        TransportChoice::Jnlp4(Jnlp4Route::Direct {
            host: host.unwrap_or_default(),
            port: port.unwrap_or_default(),
            identity: der,
        })
    } else {
        let tunnel = match &tunnel {
            Some(t) => {
                let (host, port) = host_port("-tunnel", t, true)?;
                Some(Tunnel { host, port })
            }
            None => None,
        };
        TransportChoice::Jnlp4(Jnlp4Route::Discover { tunnel })
    };
    let mut extra_ca_pem: Option<String> = None;
    for cert in &c.certs {
        let pem = read_cert(cert)?;
        let all = extra_ca_pem.get_or_insert_with(String::new);
        all.push_str(&pem);
        all.push('\n');
    }
    let log_format = match c.log_format.as_deref() {
        None | Some("text") => LogFormat::Text,
        Some("json") => LogFormat::Json,
        Some(other) => return Err(format!("--log-format must be text or json, not {other:?}")),
    };
    let positive = |opt: &str,
                    v: Option<String>,
                    bare: Duration,
                    default: Duration|
     -> Result<Duration, String> {
        match v {
            None => Ok(default),
            Some(v) => match parse_duration(&v, bare) {
                Ok(d) if !d.is_zero() => Ok(d),
                Ok(_) => Err(format!("{opt} must be longer than zero")),
                Err(e) => Err(format!("{opt}: {e}")),
            },
        }
    };
    let no_reconnect_after = match c.no_reconnect_after {
        Some(v) => Some(
            parse_duration(&v, Duration::from_millis(1))
                .map_err(|e| format!("-noReconnectAfter: {e}"))?,
        ),
        None => None,
    };
    let jvm = crate::jvm::JvmOptions {
        mode: match c.jvm.or(e.jvm) {
            Some(v) => crate::jvm::JvmMode::parse(&v)?,
            None => crate::jvm::JvmMode::Auto,
        },
        idle: positive(
            "--jvm-idle",
            c.jvm_idle.or(e.jvm_idle),
            Duration::from_secs(1),
            crate::jvm::DEFAULT_IDLE,
        )?,
        java_opts: e
            .java_opts
            .map(|o| o.split_whitespace().map(str::to_string).collect())
            .unwrap_or_default(),
    };
    let internal_dir = c.internal_dir.unwrap_or_else(|| "remoting".into());
    if internal_dir.trim().is_empty() {
        return Err("-internalDir is empty".into());
    }
    Ok(Command::Run(Box::new(AgentOptions {
        urls: checked_urls,
        name,
        secret,
        work_dir: work_dir.map(PathBuf::from),
        internal_dir,
        fail_if_work_dir_is_missing: c.fail_if_missing,
        agent_log: c.agent_log.map(PathBuf::from),
        no_reconnect: c.no_reconnect,
        no_reconnect_after,
        retry_refused: c.retry_refused,
        log_format,
        log_level: c.log_level.or(e.log_level).unwrap_or_else(|| "info".into()),
        transport,
        extra_ca_pem,
        keep_alive: !c.no_keep_alive,
        credentials: credentials
            .map(|v| user_password("-credentials", v))
            .transpose()?,
        proxy_credentials: proxy_credentials
            .map(|v| user_password("-proxyCredentials", v))
            .transpose()?,
        connect_timeout: positive(
            "--connect-timeout",
            c.connect_timeout,
            Duration::from_secs(1),
            Duration::from_secs(30),
        )?,
        idle_timeout: positive(
            "--idle-timeout",
            c.idle_timeout,
            Duration::from_secs(1),
            Duration::from_secs(30 * 60),
        )?,
        notes,
        jvm,
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAwd0cqY8v0CqRkQx4Qe3PmYw0dHbqMFG1Tk0x7cI8tzGqz6Z2bQ2Eo2b0Vh9u5hWmJzC1b5a1y7zX9Hq2p5U3kQIDAQAB";

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    fn run_env(a: &[&str], env: &[(&str, &str)]) -> Result<AgentOptions, String> {
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let get = move |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        match parse(&args(a), &get)? {
            Command::Run(o) => Ok(*o),
            other => panic!("expected Run, got {other:?}"),
        }
    }

    fn run(a: &[&str]) -> Result<AgentOptions, String> {
        run_env(a, &[])
    }

    fn base(extra: &[&str]) -> Vec<String> {
        let mut v = args(&["-url", "http://j:8080", "-name", "n1", "-secret", "s"]);
        v.extend(args(extra));
        v
    }

    fn run_base(extra: &[&str]) -> Result<AgentOptions, String> {
        let v = base(extra);
        let r: Vec<&str> = v.iter().map(String::as_str).collect();
        run(&r)
    }

    #[test]
    fn parses_the_agent_jar_form() {
        let o = run_base(&["-webSocket", "-workDir", "/w"]).unwrap();
        assert_eq!(o.urls, ["http://j:8080/"]);
        assert_eq!(o.name, "n1");
        assert_eq!(o.secret.expose(), "s");
        assert_eq!(o.work_dir, Some(PathBuf::from("/w")));
        assert_eq!(o.transport, TransportChoice::WebSocket { headers: vec![] });
        assert!(o.keep_alive);
        assert_eq!(o.connect_timeout, Duration::from_secs(30));
        assert_eq!(o.idle_timeout, Duration::from_secs(1800));
    }

    #[test]
    fn without_web_socket_the_transport_is_jnlp4_with_discovery() {
        let o = run_base(&[]).unwrap();
        assert_eq!(
            o.transport,
            TransportChoice::Jnlp4(Jnlp4Route::Discover { tunnel: None })
        );
    }

    #[test]
    fn direct_needs_no_url() {
        // Issue 8 item 7: agent.jar's -direct works without -url.
        let o = run(&[
            "-direct",
            "jenkins:50000",
            "-instanceIdentity",
            KEY,
            "-protocols",
            "JNLP4-connect",
            "-name",
            "n",
            "-secret",
            "s",
        ])
        .unwrap();
        assert!(o.urls.is_empty());
        match o.transport {
            TransportChoice::Jnlp4(Jnlp4Route::Direct {
                host,
                port,
                identity,
            }) => {
                assert_eq!((host.as_str(), port), ("jenkins", 50000));
                assert_eq!(identity[0], 0x30);
            }
            t => panic!("{t:?}"),
        }
        let o = run(&[
            "-directConnection",
            "[::1]:5",
            "-instanceIdentity",
            KEY,
            "-name",
            "n",
            "-secret",
            "s",
        ])
        .unwrap();
        assert!(
            matches!(o.transport, TransportChoice::Jnlp4(Jnlp4Route::Direct { ref host, port: 5, .. }) if host == "::1")
        );
    }

    #[test]
    fn agent_jar_depends_and_forbids_rules_hold() {
        let d = ["-direct", "h:1", "-instanceIdentity", KEY];
        let cases: &[(&[&str], &str)] = &[
            (&["-instanceIdentity", KEY], "only with -direct"),
            (&["-protocols", "JNLP4-connect"], "only with -direct"),
            (&["-webSocket", "-tunnel", "h:1"], "-tunnel"),
            (&["-webSocket", "-noKeepAlive"], "-noKeepAlive"),
            (&["-webSocket", "-credentials", "u:p"], "-webSocketHeader"),
            (&["-webSocket", "-url", "http://k/"], "exactly one -url"),
            (&["-webSocketHeader", "A=b"], "needs -webSocket"),
            (&["-internalDir", "x"], "needs -workDir"),
            (&["-failIfWorkDirIsMissing"], "needs -workDir"),
            (
                &["-noReconnect", "-noReconnectAfter", "1s"],
                "-noReconnectAfter",
            ),
        ];
        for (extra, want) in cases {
            let e = run_base(extra).unwrap_err();
            assert!(e.contains(want), "{extra:?}: {e}");
        }
        let mut with_url = d.to_vec();
        with_url.extend(["-url", "http://j/", "-name", "n", "-secret", "s"]);
        assert!(run(&with_url).unwrap_err().contains("-direct"));
        let mut with_tunnel = d.to_vec();
        with_tunnel.extend(["-tunnel", "t:1", "-name", "n", "-secret", "s"]);
        assert!(run(&with_tunnel).unwrap_err().contains("-tunnel"));
        let e = run(&["-direct", "h:1", "-name", "n", "-secret", "s"]).unwrap_err();
        assert!(e.contains("needs -instanceIdentity"), "{e}");
        let mut ws = d.to_vec();
        ws.extend(["-webSocket", "-name", "n", "-secret", "s"]);
        assert!(run(&ws).unwrap_err().contains("-webSocket"));
        let mut bad_proto = d.to_vec();
        bad_proto.extend(["-protocols", "JNLP3-connect", "-name", "n", "-secret", "s"]);
        assert!(run(&bad_proto).unwrap_err().contains("JNLP4-connect"));
    }

    #[test]
    fn tunnel_forms() {
        let t = |v: &str| match run_base(&["-tunnel", v]).map(|o| o.transport) {
            Ok(TransportChoice::Jnlp4(Jnlp4Route::Discover { tunnel: Some(t) })) => Ok(t),
            Ok(other) => panic!("{other:?}"),
            Err(e) => Err(e),
        };
        assert_eq!(
            t("lb:5000").unwrap(),
            Tunnel {
                host: Some("lb".into()),
                port: Some(5000)
            }
        );
        assert_eq!(
            t("lb:").unwrap(),
            Tunnel {
                host: Some("lb".into()),
                port: None
            }
        );
        assert_eq!(
            t(":5000").unwrap(),
            Tunnel {
                host: None,
                port: Some(5000)
            }
        );
        assert_eq!(
            t("[::1]:7").unwrap(),
            Tunnel {
                host: Some("::1".into()),
                port: Some(7)
            }
        );
        for bad in ["lb", ":", "lb:0", "lb:70000", "lb:x"] {
            assert!(t(bad).unwrap_err().contains("-tunnel"), "{bad}");
        }
    }

    #[test]
    fn several_urls_are_kept_in_order() {
        let o = run_base(&["-url", "https://k/jenkins"]).unwrap();
        assert_eq!(o.urls, ["http://j:8080/", "https://k/jenkins/"]);
        assert!(run_base(&["-url", "ftp://x/"])
            .unwrap_err()
            .contains("http"));
    }

    #[test]
    fn reads_the_inbound_agent_image_environment() {
        let o = run_env(
            &[],
            &[
                ("JENKINS_URL", "http://j/"),
                ("JENKINS_AGENT_NAME", "n2"),
                ("JENKINS_SECRET", "s2"),
                ("JENKINS_WEB_SOCKET", "true"),
                ("JENKINS_AGENT_WORKDIR", "/home/jenkins/agent"),
            ],
        )
        .unwrap();
        assert_eq!((o.urls[0].as_str(), o.name.as_str()), ("http://j/", "n2"));
        assert!(matches!(o.transport, TransportChoice::WebSocket { .. }));
        assert_eq!(o.work_dir, Some(PathBuf::from("/home/jenkins/agent")));
        // JENKINS_NAME wins over JENKINS_AGENT_NAME, as in the image's script.
        let o = run_env(
            &[],
            &[
                ("JENKINS_URL", "http://j/"),
                ("JENKINS_AGENT_NAME", "a"),
                ("JENKINS_NAME", "b"),
                ("JENKINS_SECRET", "s"),
            ],
        )
        .unwrap();
        assert_eq!(o.name, "b");
        // Direct connection from the environment, no URL.
        let o = run_env(
            &[],
            &[
                ("JENKINS_DIRECT_CONNECTION", "j:50000"),
                ("JENKINS_INSTANCE_IDENTITY", KEY),
                ("JENKINS_PROTOCOLS", "JNLP4-connect"),
                ("JENKINS_AGENT_NAME", "n"),
                ("JENKINS_SECRET", "s"),
            ],
        )
        .unwrap();
        assert!(matches!(
            o.transport,
            TransportChoice::Jnlp4(Jnlp4Route::Direct { port: 50000, .. })
        ));
        // JENKINS_TUNNEL is used, not ignored.
        let o = run_env(
            &[],
            &[
                ("JENKINS_URL", "http://j/"),
                ("JENKINS_AGENT_NAME", "n"),
                ("JENKINS_SECRET", "s"),
                ("JENKINS_TUNNEL", "lb:1"),
            ],
        )
        .unwrap();
        assert!(matches!(
            o.transport,
            TransportChoice::Jnlp4(Jnlp4Route::Discover { tunnel: Some(_) })
        ));
        // Empty variables count as unset, as the script's -n tests do.
        let e = run_env(
            &[],
            &[
                ("JENKINS_URL", ""),
                ("JENKINS_AGENT_NAME", "n"),
                ("JENKINS_SECRET", "s"),
            ],
        )
        .unwrap_err();
        assert!(e.contains("missing the controller"), "{e}");
    }

    #[test]
    fn the_command_line_wins_over_the_environment() {
        let o = run_env(
            &["-url", "http://cli/", "-name", "cli", "-secret", "c"],
            &[
                ("JENKINS_URL", "http://env/"),
                ("JENKINS_AGENT_NAME", "env"),
                ("JENKINS_SECRET", "e"),
            ],
        )
        .unwrap();
        assert_eq!(
            (o.urls[0].as_str(), o.name.as_str(), o.secret.expose()),
            ("http://cli/", "cli", "c")
        );
    }

    #[test]
    fn remoting_opts_are_split_as_a_shell_would() {
        let o = run_env(
            &[],
            &[
                ("JENKINS_URL", "http://j/"),
                ("JENKINS_AGENT_NAME", "n"),
                ("JENKINS_SECRET", "s"),
                (
                    "REMOTING_OPTS",
                    "-webSocket -webSocketHeader 'X-Team=build farm' -noReconnect",
                ),
            ],
        )
        .unwrap();
        assert!(o.no_reconnect);
        assert_eq!(
            o.transport,
            TransportChoice::WebSocket {
                headers: vec![("X-Team".into(), "build farm".into())]
            }
        );
        let e = run_env(&["-name", "n"], &[("REMOTING_OPTS", "-url 'http://j/")]).unwrap_err();
        assert!(e.contains("REMOTING_OPTS"), "{e}");
    }

    #[test]
    fn java_settings_and_odd_values_are_warned_about_not_ignored() {
        let o = run_env(
            &[],
            &[
                ("JENKINS_URL", "http://j/"),
                ("JENKINS_AGENT_NAME", "n"),
                ("JENKINS_SECRET", "s"),
                ("JENKINS_AGENT_FILE", "/agent.jar"),
                ("JENKINS_WEB_SOCKET", "1"),
            ],
        )
        .unwrap();
        assert!(matches!(o.transport, TransportChoice::Jnlp4(_)));
        assert!(
            o.notes.iter().any(|n| n.contains("JENKINS_AGENT_FILE")),
            "{:?}",
            o.notes
        );
        assert!(
            o.notes.iter().any(|n| n.contains("JENKINS_WEB_SOCKET")),
            "{:?}",
            o.notes
        );
    }

    #[test]
    fn the_jvm_helper_takes_the_inbound_agent_images_java_settings() {
        let base = [
            ("JENKINS_URL", "http://j/"),
            ("JENKINS_AGENT_NAME", "n"),
            ("JENKINS_SECRET", "s"),
        ];
        let o = run_env(&[], &base).unwrap();
        assert_eq!(o.jvm.mode, crate::jvm::JvmMode::Auto);
        assert_eq!(o.jvm.idle, crate::jvm::DEFAULT_IDLE);
        let mut env = base.to_vec();
        env.extend([
            ("JENKINS_JAVA_BIN", "/opt/jdk/bin/java"),
            ("JENKINS_JAVA_OPTS", "-Xmx512m -Dx=y"),
            ("NECTR_JVM_IDLE", "90"),
        ]);
        let o = run_env(&[], &env).unwrap();
        assert_eq!(
            o.jvm.mode,
            crate::jvm::JvmMode::Java(PathBuf::from("/opt/jdk/bin/java"))
        );
        assert_eq!(o.jvm.java_opts, vec!["-Xmx512m", "-Dx=y"]);
        assert_eq!(o.jvm.idle, Duration::from_secs(90));
        env.push(("NECTR_JVM", "off"));
        assert_eq!(
            run_env(&[], &env).unwrap().jvm.mode,
            crate::jvm::JvmMode::Off
        );
        let o = run_env(&["--jvm", "auto", "--jvm-idle", "2m"], &env).unwrap();
        assert_eq!(
            (o.jvm.mode, o.jvm.idle),
            (crate::jvm::JvmMode::Auto, Duration::from_secs(120))
        );
    }

    #[test]
    fn positional_secret_and_name() {
        let o = run(&["-url", "http://j/", "sec", "node"]).unwrap();
        assert_eq!((o.secret.expose(), o.name.as_str()), ("sec", "node"));
        assert!(run(&["-url", "http://j/", "-secret", "x", "sec", "node"])
            .unwrap_err()
            .contains("both"));
        let e = run(&["-url", "http://j/", "-name", "n", "-secret", "s", "bash"]).unwrap_err();
        assert!(e.contains("SECRET NAME"), "{e}");
    }

    #[test]
    fn every_option_in_the_table_is_understood() {
        // Each option of OPTIONS gets a sample value and must parse into the agreed outcome.
        for o in OPTIONS {
            for name in std::iter::once(&o.name).chain(o.aliases) {
                let mut extra: Vec<&str> = vec![name];
                match o.name {
                    "-url" => extra.push("http://k/"),
                    "-name" => extra.push("n2"),
                    "-secret" => extra.push("s2"),
                    "-webSocketHeader" => extra.extend(["A=b", "-webSocket"]),
                    "-direct" | "-instanceIdentity" | "-protocols" => continue, // direct_needs_no_url
                    "-tunnel" => extra.push("lb:1"),
                    "-workDir" | "-agentLog" | "-jar-cache" => extra.push("/tmp/x"),
                    "-internalDir" => extra.extend(["int", "-workDir", "/w"]),
                    "-failIfWorkDirIsMissing" => extra.extend(["-workDir", "/w"]),
                    "-noReconnectAfter" => extra.push("5m"),
                    "-cert" => continue, // certificates_are_checked_before_connecting
                    "-credentials" | "-proxyCredentials" | "-auth" => extra.push("u:p"),
                    "--log-level" => extra.push("debug"),
                    "--log-format" => extra.push("json"),
                    "--connect-timeout" | "--idle-timeout" => extra.push("5"),
                    "--jvm" => extra.push("off"),
                    "--jvm-idle" => extra.push("30"),
                    _ if o.support == Refused => {
                        if o.value.is_some() {
                            extra.push("x");
                        }
                    }
                    _ => {
                        if let Some(v) = o.value {
                            panic!("no sample value for {name} {v}");
                        }
                    }
                }
                let v = base(&extra);
                let r: Vec<&str> = v.iter().map(String::as_str).collect();
                let got = parse(&v, &|_| None);
                match (o.support, o.name) {
                    (Implemented, "-help") => assert!(matches!(got, Ok(Command::Help)), "{name}"),
                    (Implemented, "-version") => {
                        assert!(matches!(got, Ok(Command::Version)), "{name}")
                    }
                    (Implemented | Extra, _) => {
                        let got = run(&r).unwrap_or_else(|e| panic!("{name}: {e}"));
                        assert!(got.notes.is_empty(), "{name}: {:?}", got.notes);
                    }
                    (NoOp, _) => {
                        let got = run(&r).unwrap_or_else(|e| panic!("{name}: {e}"));
                        assert!(
                            got.notes.iter().any(|n| n.contains(name)),
                            "{name}: {:?}",
                            got.notes
                        );
                    }
                    (Refused, _) => {
                        let e = got.unwrap_err();
                        assert!(e.contains(name) && e.contains(o.text), "{name}: {e}");
                    }
                }
            }
        }
        let e = run_base(&["-bogus"]).unwrap_err();
        assert!(
            e.contains("unknown option -bogus") && e.contains("--help"),
            "{e}"
        );
        assert!(run_base(&["-url"]).unwrap_err().contains("needs a value"));
    }

    #[test]
    fn option_values_are_checked_before_connecting() {
        let o = run_base(&[
            "-noReconnectAfter",
            "90s",
            "-noKeepAlive",
            "--connect-timeout",
            "1500ms",
        ])
        .unwrap();
        assert_eq!(o.no_reconnect_after, Some(Duration::from_secs(90)));
        assert!(!o.keep_alive);
        assert_eq!(o.connect_timeout, Duration::from_millis(1500));
        for (extra, want) in [
            (&["-noReconnectAfter", "soon"][..], "-noReconnectAfter"),
            (&["--connect-timeout", "0"], "longer than zero"),
            (&["--log-format", "xml"], "text or json"),
            (&["--jvm-idle", "0"], "longer than zero"),
            (&["--jvm", ""], "--jvm needs"),
            (&["-credentials", "nocolon"], "USER:PASSWORD"),
            (
                &["-webSocket", "-webSocketHeader", "Bad Name=x"],
                "header name",
            ),
            (&["-webSocket", "-webSocketHeader", "novalue"], "NAME=VALUE"),
            (&["-secret", "@/nonexistent/secret"], "/nonexistent/secret"),
        ] {
            let e = run_base(extra).unwrap_err();
            assert!(e.contains(want), "{extra:?}: {e}");
        }
        let e = run(&[
            "-direct",
            "h:1",
            "-instanceIdentity",
            "not base64!",
            "-name",
            "n",
            "-secret",
            "s",
        ])
        .unwrap_err();
        assert!(e.contains("base64"), "{e}");
    }

    #[test]
    fn certificates_are_checked_before_connecting() {
        let dir = std::env::temp_dir().join(format!("nectr-cli-cert-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("ca.pem");
        std::fs::write(&file, "not a certificate").unwrap();
        let path = file.to_str().unwrap().to_string();
        // A file name without @: say so, instead of a puzzling PEM error.
        let e = run_base(&["-cert", &path]).unwrap_err();
        assert!(e.contains(&format!("-cert @{path}")), "{e}");
        let e = run_base(&["-cert", &format!("@{path}")]).unwrap_err();
        assert!(e.contains("no PEM certificate"), "{e}");
        let e = run_base(&["-cert", "@/nonexistent/ca.pem"]).unwrap_err();
        assert!(e.contains("cannot read the -cert file"), "{e}");
        let e = run_base(&["-cert", "garbage"]).unwrap_err();
        assert!(e.contains("PEM text"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn durations_as_agent_jar_reads_them() {
        let ms = Duration::from_millis(1);
        let p = |v| parse_duration(v, ms);
        assert_eq!(p("1500").unwrap(), Duration::from_millis(1500));
        assert_eq!(p("10s").unwrap(), Duration::from_secs(10));
        assert_eq!(p("5M").unwrap(), Duration::from_secs(300));
        assert_eq!(p("2h").unwrap(), Duration::from_secs(7200));
        assert_eq!(p("1d").unwrap(), Duration::from_secs(86400));
        assert_eq!(p("PT1H30M").unwrap(), Duration::from_secs(5400));
        assert_eq!(p("P1DT0.5S").unwrap(), Duration::from_millis(86_400_500));
        for bad in ["", "s", "-1s", "10x", "P", "PT", "PT1X", "P1H"] {
            assert!(p(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn secrets_leave_the_command_line() {
        let (keep, env) = hide_sensitive(&args(&[
            "-url",
            "u",
            "-secret",
            "s3",
            "-name",
            "n",
            "-proxyCredentials",
            "a:b",
        ]))
        .unwrap();
        assert_eq!(keep, args(&["-url", "u", "-name", "n"]));
        assert_eq!(
            env,
            vec![
                ("JENKINS_SECRET", "s3".to_string()),
                ("NECTR_PROXY_CREDENTIALS", "a:b".to_string())
            ]
        );
        let (keep, env) =
            hide_sensitive(&args(&["-url", "u", "s3", "node", "-webSocket"])).unwrap();
        assert_eq!(keep, args(&["-url", "u", "-name", "node", "-webSocket"]));
        assert_eq!(env, vec![("JENKINS_SECRET", "s3".to_string())]);
        assert!(hide_sensitive(&args(&["-url", "u", "-secret", "@/f", "-name", "n"])).is_none());
        let (keep, _) = hide_sensitive(&args(&["-auth", "u:p"])).unwrap();
        assert_eq!(keep, args(&["-auth", "(hidden)"]));
    }

    #[test]
    fn the_secret_never_shows_in_debug_output() {
        let o = run_base(&["-credentials", "u:hunter3"]).unwrap();
        let shown = format!("{o:?}");
        assert!(
            !shown.contains("hunter3") && !shown.contains("\"s\""),
            "{shown}"
        );
    }

    #[test]
    fn help_and_version_win() {
        assert!(matches!(
            parse(&args(&["-help"]), &|_| None),
            Ok(Command::Help)
        ));
        assert!(matches!(
            parse(&args(&["--version"]), &|_| None),
            Ok(Command::Version)
        ));
        let e = parse(&[], &|_| None).unwrap_err();
        assert!(
            e.contains("missing the controller") && e.contains("node name") && e.contains("secret"),
            "{e}"
        );
    }
}
