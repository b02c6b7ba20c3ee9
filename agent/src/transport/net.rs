//! Byte streams to the controller's HTTP side: TCP, optionally through an HTTP proxy
//! (`CONNECT`, from `https_proxy` / `http_proxy` unless `no_proxy` matches), optionally TLS
//! with normal certificate verification (Mozilla's roots plus any `-cert` CAs).

use std::sync::Arc;

use rustls::pki_types::{CertificateDer, ServerName};
use rustls_pki_types::pem::PemObject;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use std::time::Duration;

use base64::Engine;

use super::{step, ConnectError, Secret};

/// Any byte stream to the controller.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// A boxed stream.
pub type BoxIo = Box<dyn Io>;

/// A proxy server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Proxy {
    /// Proxy host.
    pub host: String,
    /// Proxy port.
    pub port: u16,
    /// `USER:PASSWORD` for `Proxy-Authorization: Basic` (from `user:password@` in the
    /// variable, or `-proxyCredentials`).
    pub auth: Option<Secret>,
}

/// Proxy settings from the environment.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProxyConfig {
    /// For `https://` controllers (`https_proxy`).
    pub https: Option<Proxy>,
    /// For `http://` controllers (`http_proxy`).
    pub http: Option<Proxy>,
    /// `no_proxy` entries: host names, domain suffixes (`.corp`, `corp`), or `*`.
    pub no_proxy: Vec<String>,
}

fn parse_proxy(v: &str) -> Option<Proxy> {
    let rest = v.trim().strip_prefix("http://").unwrap_or(v.trim());
    let authority = rest.split('/').next()?;
    let (auth, authority) = match authority.rsplit_once('@') {
        Some((a, h)) => (Some(Secret::new(percent_decode(a))), h),
        None => (None, authority),
    };
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) => (h, p.parse().ok()?),
        None => (authority, 80),
    };
    (!host.is_empty()).then(|| Proxy {
        host: host.trim_matches(|c| c == '[' || c == ']').to_string(),
        port,
        auth,
    })
}

/// `%XX` escapes in a proxy URL's user info.
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        match (
            b[i],
            b.get(i + 1).and_then(|c| hex(*c)),
            b.get(i + 2).and_then(|c| hex(*c)),
        ) {
            (b'%', Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            (c, _, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl ProxyConfig {
    /// `-proxyCredentials`: credentials for every proxy (overriding any in the URLs).
    pub fn with_credentials(mut self, auth: Option<&Secret>) -> Self {
        if let Some(a) = auth {
            for p in [&mut self.https, &mut self.http].into_iter().flatten() {
                p.auth = Some(a.clone());
            }
        }
        self
    }

    /// Reads `https_proxy`, `http_proxy` and `no_proxy` (either case) through `env`.
    pub fn from_env(env: &dyn Fn(&str) -> Option<String>) -> Self {
        let get = |k: &str| {
            env(k)
                .or_else(|| env(&k.to_uppercase()))
                .filter(|v| !v.is_empty())
        };
        ProxyConfig {
            https: get("https_proxy").and_then(|v| parse_proxy(&v)),
            http: get("http_proxy").and_then(|v| parse_proxy(&v)),
            no_proxy: get("no_proxy")
                .map(|v| {
                    v.split(',')
                        .map(|s| s.trim().to_lowercase())
                        .filter(|s| !s.is_empty())
                        .collect()
                })
                .unwrap_or_default(),
        }
    }

    /// The proxy to use for `host`, if any.
    pub fn for_host(&self, host: &str, https: bool) -> Option<&Proxy> {
        let host = host.to_lowercase();
        let bypass = self.no_proxy.iter().any(|n| {
            let n = n.trim_start_matches('.');
            n == "*" || host == n || host.ends_with(&format!(".{n}"))
        });
        if bypass {
            return None;
        }
        if https {
            self.https.as_ref()
        } else {
            self.http.as_ref()
        }
    }
}

/// How to reach the controller: proxies, TLS trust, the bound on each step and TCP
/// keep-alive.
#[derive(Clone)]
pub struct Net {
    /// Proxies.
    pub proxy: ProxyConfig,
    tls: Arc<rustls::ClientConfig>,
    /// Bound on each step of connecting (TCP connect, proxy CONNECT, TLS, …).
    pub timeout: Duration,
    /// `SO_KEEPALIVE` on TCP connections (agent.jar's default; off with `-noKeepAlive`).
    pub keep_alive: bool,
}

impl Net {
    /// Mozilla's roots (webpki-roots) plus the PEM certificates in `extra_ca_pem`; a 30 s
    /// bound on each step and keep-alive on (see [`Net::timeout`], [`Net::keep_alive`]).
    pub fn new(proxy: ProxyConfig, extra_ca_pem: Option<&str>) -> Result<Net, String> {
        let mut roots = rustls::RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        if let Some(pem) = extra_ca_pem {
            let mut added = 0;
            for cert in CertificateDer::pem_slice_iter(pem.as_bytes()) {
                let cert = cert.map_err(|e| format!("-cert: not a valid PEM certificate: {e}"))?;
                roots
                    .add(cert)
                    .map_err(|e| format!("-cert: unusable CA certificate: {e}"))?;
                added += 1;
            }
            if added == 0 {
                return Err("-cert: no PEM certificate (-----BEGIN CERTIFICATE-----) found".into());
            }
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS setup: {e}"))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Net {
            proxy,
            tls: Arc::new(tls),
            timeout: Duration::from_secs(30),
            keep_alive: true,
        })
    }

    fn socket(&self, s: TcpStream) -> TcpStream {
        let _ = s.set_nodelay(true);
        let _ = socket2::SockRef::from(&s).set_keepalive(self.keep_alive);
        s
    }

    /// A TCP stream to `host:port`, through the proxy for it if one applies (`CONNECT`).
    pub async fn tcp(&self, host: &str, port: u16, https: bool) -> Result<BoxIo, ConnectError> {
        let limit = self.timeout;
        match self.proxy.for_host(host, https) {
            None => {
                let s = step("TCP connect to", &format!("{host}:{port}"), limit, async {
                    TcpStream::connect((host, port)).await.map_err(|e| {
                        ConnectError::Failed(format!("cannot connect to {host}:{port}: {e}"))
                    })
                })
                .await?;
                Ok(Box::new(self.socket(s)))
            }
            Some(p) => {
                let proxy = format!("{}:{}", p.host, p.port);
                let s = step("TCP connect to the proxy", &proxy, limit, async {
                    TcpStream::connect((p.host.as_str(), p.port))
                        .await
                        .map_err(|e| {
                            ConnectError::Failed(format!(
                                "cannot connect to the proxy {proxy}: {e}"
                            ))
                        })
                })
                .await?;
                let mut s = self.socket(s);
                let what = format!("HTTP CONNECT {host}:{port} through the proxy");
                step(&what, &proxy, limit, async {
                    let mut req = format!("CONNECT {host}:{port} HTTP/1.1\r\nHost: {host}:{port}\r\n");
                    if let Some(a) = &p.auth {
                        req.push_str(&format!(
                            "Proxy-Authorization: Basic {}\r\n",
                            base64::engine::general_purpose::STANDARD.encode(a.expose())
                        ));
                    }
                    req.push_str("\r\n");
                    let fail = |e: String| ConnectError::Failed(format!("proxy {proxy}: {e}"));
                    s.write_all(req.as_bytes())
                        .await
                        .map_err(|e| fail(e.to_string()))?;
                    let head = read_head(&mut s).await.map_err(fail)?;
                    let status = head.lines().next().unwrap_or_default().to_string();
                    match status.split_whitespace().nth(1) {
                        Some("200") => Ok(()),
                        Some("407") => Err(ConnectError::Failed(format!(
                            "the proxy {proxy} wants credentials for CONNECT {host}:{port} ({status}): give -proxyCredentials USER:PASSWORD or user:password@ in the proxy variable"
                        ))),
                        _ => Err(ConnectError::Failed(format!(
                            "the proxy {proxy} refused CONNECT {host}:{port}: {status}"
                        ))),
                    }
                })
                .await?;
                Ok(Box::new(s))
            }
        }
    }

    /// A stream to an HTTP(S) origin: TCP (maybe proxied), then TLS for `https`.
    pub async fn open(&self, host: &str, port: u16, https: bool) -> Result<BoxIo, ConnectError> {
        let tcp = self.tcp(host, port, https).await?;
        if !https {
            return Ok(tcp);
        }
        let name = ServerName::try_from(host.to_string())
            .map_err(|_| ConnectError::Refused(format!("bad host name {host:?}")))?;
        let addr = format!("{host}:{port}");
        let tls = step("TLS handshake with", &addr, self.timeout, async {
            tokio_rustls::TlsConnector::from(self.tls.clone())
                .connect(name, tcp)
                .await
                .map_err(|e| {
                    ConnectError::Failed(format!(
                        "TLS to {addr} failed: {e} (for a private CA, pass it with -cert @ca.pem)"
                    ))
                })
        })
        .await?;
        Ok(Box::new(tls))
    }
}

/// Reads an HTTP response head (up to the blank line), at most 64 KiB.
pub async fn read_head(s: &mut (impl AsyncRead + Unpin)) -> Result<String, String> {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        let n = s.read(&mut byte).await.map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("connection closed before the end of the HTTP headers".into());
        }
        buf.push(byte[0]);
        if buf.len() > 64 << 10 {
            return Err("HTTP headers larger than 64 KiB".into());
        }
    }
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

/// An `http(s)://host[:port]/path/` URL in parts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpUrl {
    /// True for `https`.
    pub https: bool,
    /// Host name or address.
    pub host: String,
    /// Port (default 80 / 443).
    pub port: u16,
    /// Path, starting and ending with `/`.
    pub path: String,
}

impl HttpUrl {
    /// Parses a controller URL.
    pub fn parse(url: &str) -> Result<HttpUrl, ConnectError> {
        let (https, rest) = if let Some(r) = url.strip_prefix("https://") {
            (true, r)
        } else if let Some(r) = url.strip_prefix("http://") {
            (false, r)
        } else {
            return Err(ConnectError::Refused(format!(
                "controller URL {url:?} must start with http:// or https://"
            )));
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) if !h.contains(']') || h.ends_with(']') => (
                h,
                p.parse()
                    .map_err(|_| ConnectError::Refused(format!("bad port in {url}")))?,
            ),
            _ => (authority, if https { 443 } else { 80 }),
        };
        let mut path = path.to_string();
        if !path.ends_with('/') {
            path.push('/');
        }
        Ok(HttpUrl {
            https,
            host: host.trim_matches(|c| c == '[' || c == ']').to_string(),
            port,
            path,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxies_from_the_environment_honour_no_proxy() {
        let env = |k: &str| match k {
            "https_proxy" => Some("http://user:pw@proxy.corp:3128/".to_string()),
            "NO_PROXY" => Some("localhost, .internal,jenkins.corp".to_string()),
            _ => None,
        };
        let p = ProxyConfig::from_env(&env);
        let proxy = Proxy {
            host: "proxy.corp".into(),
            port: 3128,
            auth: Some(Secret::new("user:pw".into())),
        };
        assert_eq!(p.for_host("ci.example.com", true), Some(&proxy));
        let p = p.with_credentials(Some(&Secret::new("a:b".into())));
        assert_eq!(
            p.for_host("ci.example.com", true).unwrap().auth,
            Some(Secret::new("a:b".into()))
        );
        assert_eq!(percent_decode("us%40er:p%3Aw"), "us@er:p:w");
        assert_eq!(
            p.for_host("ci.example.com", false),
            None,
            "no http_proxy set"
        );
        assert_eq!(p.for_host("a.internal", true), None);
        assert_eq!(p.for_host("jenkins.corp", true), None);
        assert_eq!(p.for_host("LOCALHOST", true), None);
    }

    #[test]
    fn parses_controller_urls() {
        let u = HttpUrl::parse("https://ci.corp/jenkins").unwrap();
        assert_eq!(
            (u.https, u.host.as_str(), u.port, u.path.as_str()),
            (true, "ci.corp", 443, "/jenkins/")
        );
        let u = HttpUrl::parse("http://127.0.0.1:8080/").unwrap();
        assert_eq!((u.https, u.port), (false, 8080));
        let u = HttpUrl::parse("http://[::1]:9/").unwrap();
        assert_eq!((u.host.as_str(), u.port), ("::1", 9));
        assert!(HttpUrl::parse("ftp://x/").is_err());
    }

    #[test]
    fn a_cert_option_without_a_certificate_is_refused() {
        let e = Net::new(ProxyConfig::default(), Some("not pem"))
            .err()
            .unwrap();
        assert!(e.contains("-cert"), "{e}");
    }
}
