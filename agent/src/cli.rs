//! The agent's command line, mirroring `agent.jar` (`-url`, `-name`, `-secret`, …) and the
//! inbound-agent image's environment variables. Pure: arguments and environment in, options
//! or a message out.

use std::path::PathBuf;

use crate::transport::Secret;

/// Log output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// How to reach the controller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TransportChoice {
    /// `<url>wsagents/` (the default of this agent's docs; `-webSocket`).
    WebSocket,
    /// JNLP4-connect over TCP + TLS.
    Jnlp4 {
        /// `-direct HOST:PORT`: skip discovery.
        direct: Option<(String, u16)>,
        /// `-instanceIdentity`: base64 SPKI of the controller (needed with `-direct`).
        identity: Option<String>,
    },
}

/// Everything the agent needs to run.
#[derive(Clone, Debug)]
pub struct AgentOptions {
    /// Controller URL, ending in `/`.
    pub url: String,
    /// Node name.
    pub name: String,
    /// Node secret.
    pub secret: Secret,
    /// Working directory (`-workDir`).
    pub work_dir: Option<PathBuf>,
    /// Internal directory under the work dir (`-internalDir`, default `remoting`).
    pub internal_dir: String,
    /// Fail if the work dir does not exist.
    pub fail_if_work_dir_is_missing: bool,
    /// Exit instead of reconnecting.
    pub no_reconnect: bool,
    /// Keep retrying after the controller refused the credentials.
    pub retry_refused: bool,
    /// Log format.
    pub log_format: LogFormat,
    /// Transport.
    pub transport: TransportChoice,
    /// Extra CA certificates (PEM) to trust for `https://` controllers (`-cert`).
    pub extra_ca_pem: Option<String>,
}

/// `agent.jar` options that nectr does not implement: refused by name, never ignored.
const UNSUPPORTED: &[(&str, &str)] = &[
    ("-jnlpUrl", "use -url and -name instead"),
    (
        "-jnlpCredentials",
        "HTTP basic credentials are not supported",
    ),
    ("-proxyCredentials", "proxy credentials are not supported"),
    ("-credentials", "HTTP basic credentials are not supported"),
    ("-auth", "HTTP basic credentials are not supported"),
    (
        "-noCertificateCheck",
        "disabling certificate checks is not supported",
    ),
    (
        "-disableHttpsCertValidation",
        "disabling certificate checks is not supported",
    ),
    ("-tunnel", "tunnelling is not supported"),
    (
        "-loggingConfig",
        "use --log-format and RUST_LOG-style levels instead",
    ),
    (
        "-webSocketHeader",
        "extra WebSocket headers are not supported yet",
    ),
    ("-headless", "not applicable"),
    (
        "-agentLog",
        "logs go to the console and <workDir>/remoting/logs",
    ),
];

fn read_secret(v: &str) -> Result<String, String> {
    match v.strip_prefix('@') {
        Some(path) => std::fs::read_to_string(path)
            .map(|s| s.trim().to_string())
            .map_err(|e| format!("cannot read the secret file {path}: {e}")),
        None => Ok(v.to_string()),
    }
}

/// Parses the agent's arguments, with `env` giving the environment variables.
pub fn parse(
    args: &[String],
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<AgentOptions, String> {
    let mut url = env("JENKINS_URL");
    let mut name = env("JENKINS_AGENT_NAME");
    let mut secret = env("JENKINS_SECRET");
    let mut web_socket = env("JENKINS_WEB_SOCKET").is_some_and(|v| v == "true");
    let mut work_dir = env("JENKINS_AGENT_WORKDIR").map(PathBuf::from);
    let nonempty = |k: &str| env(k).filter(|v| !v.is_empty());
    let mut direct = nonempty("JENKINS_DIRECT_CONNECTION");
    let mut identity = nonempty("JENKINS_INSTANCE_IDENTITY");
    let mut protocols = nonempty("JENKINS_PROTOCOLS");
    let mut opts = AgentOptions {
        url: String::new(),
        name: String::new(),
        secret: Secret::new(String::new()),
        work_dir: None,
        internal_dir: "remoting".into(),
        fail_if_work_dir_is_missing: false,
        no_reconnect: false,
        retry_refused: false,
        log_format: LogFormat::Text,
        transport: TransportChoice::WebSocket,
        extra_ca_pem: None,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = |what: &str| -> Result<String, String> {
            it.next()
                .cloned()
                .ok_or_else(|| format!("{a} needs {what}"))
        };
        match a.as_str() {
            "-url" => url = Some(value("the controller URL")?),
            "-name" => name = Some(value("the agent name")?),
            "-secret" => secret = Some(read_secret(&value("the secret or @file")?)?),
            "-webSocket" => web_socket = true,
            "-direct" => direct = Some(value("HOST:PORT")?),
            "-instanceIdentity" => identity = Some(value("the base64 instance identity")?),
            "-protocols" => protocols = Some(value("a protocol list")?),
            "-workDir" => work_dir = Some(PathBuf::from(value("a directory")?)),
            "-internalDir" => opts.internal_dir = value("a directory name")?,
            "-failIfWorkDirIsMissing" => opts.fail_if_work_dir_is_missing = true,
            "-noReconnect" => opts.no_reconnect = true,
            "-cert" => {
                let v = value("a PEM certificate or @FILE")?;
                let pem = match v.strip_prefix('@') {
                    Some(path) => std::fs::read_to_string(path)
                        .map_err(|e| format!("cannot read the -cert file {path}: {e}"))?,
                    None => v,
                };
                let all = opts.extra_ca_pem.get_or_insert_with(String::new);
                all.push_str(&pem);
                all.push('\n');
            }
            "-jar-cache" => {
                value("a directory")?; // accepted for compatibility; nectr loads no jars
            }
            "--retry-refused" => opts.retry_refused = true,
            "--log-format" => {
                opts.log_format = match value("text or json")?.as_str() {
                    "text" => LogFormat::Text,
                    "json" => LogFormat::Json,
                    other => {
                        return Err(format!("--log-format must be text or json, not {other:?}"))
                    }
                }
            }
            "--runtime" => match value("native or jvm")?.as_str() {
                "native" => {}
                "jvm" => return Err(
                    "--runtime jvm (supervising the controller's agent.jar) is not implemented yet"
                        .into(),
                ),
                other => return Err(format!("--runtime must be native or jvm, not {other:?}")),
            },
            other => {
                if let Some((_, why)) = UNSUPPORTED.iter().find(|(o, _)| *o == other) {
                    return Err(format!(
                        "the agent.jar option {other} is not supported by nectr-agent: {why}"
                    ));
                }
                return Err(format!("unknown option {other}; see nectr-agent --help"));
            }
        }
    }
    let url = url.ok_or("no controller URL: give -url http://jenkins:8080/ or JENKINS_URL")?;
    if !url.starts_with("http://") && !url.starts_with("https://") {
        return Err(format!("-url {url:?} must start with http:// or https://"));
    }
    opts.url = if url.ends_with('/') {
        url
    } else {
        format!("{url}/")
    };
    opts.name = name.ok_or("no agent name: give -name NAME or JENKINS_AGENT_NAME")?;
    let secret = secret.ok_or("no secret: give -secret SECRET, -secret @FILE or JENKINS_SECRET")?;
    if secret.is_empty() {
        return Err("the secret is empty".into());
    }
    opts.secret = Secret::new(secret);
    if let Some(p) = &protocols {
        if !p.split(',').any(|p| p.trim() == "JNLP4-connect") {
            return Err(format!(
                "-protocols {p:?}: nectr-agent speaks only JNLP4-connect over TCP"
            ));
        }
    }
    opts.transport = if web_socket {
        if direct.is_some() {
            return Err(
                "-direct applies to JNLP4-connect (TCP); it cannot be combined with -webSocket"
                    .into(),
            );
        }
        TransportChoice::WebSocket
    } else {
        let direct = match direct {
            Some(d) => {
                let (h, p) = d
                    .rsplit_once(':')
                    .ok_or_else(|| format!("-direct {d:?} must be HOST:PORT"))?;
                let port = p.parse().map_err(|_| format!("-direct {d:?}: bad port"))?;
                if identity.is_none() {
                    return Err("-direct needs -instanceIdentity (the controller's public key, as X-Instance-Identity shows it)".into());
                }
                Some((h.trim_matches(|c| c == '[' || c == ']').to_string(), port))
            }
            None => None,
        };
        TransportChoice::Jnlp4 { direct, identity }
    };
    opts.work_dir = work_dir;
    Ok(opts)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn parses_the_agent_jar_form() {
        let o = parse(
            &args(&[
                "-url",
                "http://j:8080",
                "-name",
                "n1",
                "-secret",
                "s",
                "-webSocket",
                "-workDir",
                "/w",
            ]),
            &|_| None,
        )
        .unwrap();
        assert_eq!(o.url, "http://j:8080/");
        assert_eq!(o.name, "n1");
        assert_eq!(o.secret.expose(), "s");
        assert_eq!(o.work_dir, Some(PathBuf::from("/w")));
    }

    #[test]
    fn reads_the_inbound_agent_image_environment() {
        let env = |k: &str| match k {
            "JENKINS_URL" => Some("http://j/".to_string()),
            "JENKINS_AGENT_NAME" => Some("n2".to_string()),
            "JENKINS_SECRET" => Some("s2".to_string()),
            "JENKINS_WEB_SOCKET" => Some("true".to_string()),
            _ => None,
        };
        let o = parse(&[], &env).unwrap();
        assert_eq!((o.url.as_str(), o.name.as_str()), ("http://j/", "n2"));
    }

    #[test]
    fn without_web_socket_the_transport_is_jnlp4() {
        let o = parse(
            &args(&["-url", "http://j/", "-name", "n", "-secret", "s"]),
            &|_| None,
        )
        .unwrap();
        assert_eq!(
            o.transport,
            TransportChoice::Jnlp4 {
                direct: None,
                identity: None
            }
        );
        let e = parse(
            &args(&[
                "-url",
                "http://j/",
                "-name",
                "n",
                "-secret",
                "s",
                "-direct",
                "h:1",
            ]),
            &|_| None,
        )
        .unwrap_err();
        assert!(e.contains("-instanceIdentity"), "{e}");
    }

    #[test]
    fn refuses_unsupported_agent_jar_options_by_name() {
        let e = parse(&args(&["-url", "http://j/", "-tunnel", "x:1"]), &|_| None).unwrap_err();
        assert!(e.contains("-tunnel"), "{e}");
    }

    #[test]
    fn the_secret_never_shows_in_debug_output() {
        let o = parse(
            &args(&[
                "-url",
                "http://j/",
                "-name",
                "n",
                "-secret",
                "hunter2",
                "-webSocket",
            ]),
            &|_| None,
        )
        .unwrap();
        assert!(!format!("{o:?}").contains("hunter2"));
    }
}
