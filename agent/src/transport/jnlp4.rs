//! JNLP4-connect over TCP (remoting-protocol.md §2): discovery, preamble and ACK, TLS as
//! client with the server's key pinned to `X-Instance-Identity`, connection headers with the
//! cookie, `OK`/`ERROR`/`FATAL`, the capability frame, then chunk frames over TLS.
//!
//! The secret is sent only inside TLS, after the certificate's public key matched the
//! discovered identity: a mismatch fails the handshake before any header is written.

use std::sync::Arc;

use base64::Engine;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::client::TlsStream;

use super::net::{BoxIo, HttpUrl, Net};
use super::{step, ConnectError, Secret};
use crate::remoting::command;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// What `GET <url>tcpSlaveAgentListener/` said.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Discovery {
    /// Host to connect to (`X-Jenkins-JNLP-Host`, else the URL's host).
    pub host: String,
    /// `X-Jenkins-JNLP-Port`
    pub port: u16,
    /// DER SubjectPublicKeyInfo from `X-Instance-Identity`.
    pub identity: Vec<u8>,
    /// `X-Jenkins-Agent-Protocols`
    pub protocols: Vec<String>,
}

fn failed(m: impl Into<String>) -> ConnectError {
    ConnectError::Failed(m.into())
}

/// `GET <url>tcpSlaveAgentListener/` and its headers, sending `Node-Name` and, with
/// `-credentials`, `Authorization: Basic`.
pub async fn discover(
    net: &Net,
    url: &str,
    name: &str,
    credentials: Option<&Secret>,
) -> Result<Discovery, ConnectError> {
    let u = HttpUrl::parse(url)?;
    let (host, port, path) = (u.host.clone(), u.port, u.path.clone());
    let mut tcp = net.open(&host, port, u.https).await?;
    let mut req = format!(
        "GET {path}tcpSlaveAgentListener/ HTTP/1.1\r\nHost: {host}:{port}\r\nUser-Agent: nectr-agent\r\nConnection: close\r\n"
    );
    if !name.is_empty() && !name.contains(['\r', '\n']) {
        req.push_str(&format!("Node-Name: {name}\r\n"));
    }
    if let Some(c) = credentials {
        req.push_str(&format!(
            "Authorization: Basic {}\r\n",
            B64.encode(c.expose())
        ));
    }
    req.push_str("\r\n");
    let what = format!("discovery (GET {url}tcpSlaveAgentListener/) at");
    let (buf, head_end) = step(&what, &format!("{host}:{port}"), net.timeout, async {
        tcp.write_all(req.as_bytes())
            .await
            .map_err(|e| failed(format!("discovery request failed: {e}")))?;
        let mut buf = Vec::new();
        loop {
            let mut chunk = [0u8; 4096];
            let n = tcp
                .read(&mut chunk)
                .await
                .map_err(|e| failed(format!("discovery answer: {e}")))?;
            if n == 0 {
                return Err(failed("discovery: the controller closed the connection"));
            }
            buf.extend_from_slice(&chunk[..n]);
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                return Ok((buf, i));
            }
            if buf.len() > 64 << 10 {
                return Err(failed("discovery: headers larger than 64 KiB"));
            }
        }
    })
    .await?;
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap_or_default();
    if status.split_whitespace().nth(1) == Some("401") {
        return Err(failed(format!(
            "{url}tcpSlaveAgentListener/ answered {status:?}: it wants HTTP credentials (-credentials USER:PASSWORD)"
        )));
    }
    if status.split_whitespace().nth(1) != Some("200") {
        return Err(failed(format!(
            "{url}tcpSlaveAgentListener/ answered {status:?}: is the controller's TCP agent port enabled?"
        )));
    }
    let header = |name: &str| {
        head.split("\r\n").skip(1).find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_string())
        })
    };
    let port = header("X-Jenkins-JNLP-Port")
        .and_then(|p| p.parse().ok())
        .ok_or_else(|| {
            failed("discovery: no X-Jenkins-JNLP-Port: the TCP agent port is disabled")
        })?;
    let identity = header("X-Instance-Identity")
        .and_then(|v| B64.decode(v).ok())
        .ok_or_else(|| failed("discovery: no valid X-Instance-Identity"))?;
    let protocols = header("X-Jenkins-Agent-Protocols")
        .map(|v| v.split(',').map(|p| p.trim().to_string()).collect())
        .unwrap_or_default();
    let host = header("X-Jenkins-JNLP-Host").unwrap_or(host);
    Ok(Discovery {
        host,
        port,
        identity,
        protocols,
    })
}

/// The TLS verifier: the end-entity certificate's public key must equal the pinned identity.
/// Names, dates and chains are not checked (as the Java agent does); the handshake
/// signatures are.
#[derive(Debug)]
struct PinnedKey {
    spki: Vec<u8>,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl ServerCertVerifier for PinnedKey {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match certificate_spki(end_entity.as_ref()) {
            Some(spki) if spki == self.spki.as_slice() => Ok(ServerCertVerified::assertion()),
            Some(_) => Err(rustls::Error::General(
                "the controller's TLS key does not match X-Instance-Identity (refusing to send the secret)".into(),
            )),
            None => Err(rustls::Error::General("unreadable server certificate".into())),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// One DER TLV: (tag, header length, content length).
fn tlv(b: &[u8]) -> Option<(u8, usize, usize)> {
    let tag = *b.first()?;
    let l0 = *b.get(1)? as usize;
    if l0 < 0x80 {
        return Some((tag, 2, l0));
    }
    let n = l0 & 0x7f;
    if n == 0 || n > 4 {
        return None;
    }
    let mut len = 0usize;
    for i in 0..n {
        len = (len << 8) | *b.get(2 + i)? as usize;
    }
    Some((tag, 2 + n, len))
}

/// The SubjectPublicKeyInfo (whole TLV) of an X.509 certificate.
pub fn certificate_spki(cert: &[u8]) -> Option<&[u8]> {
    let (_, h, _) = tlv(cert)?; // Certificate SEQUENCE
    let tbs = cert.get(h..)?;
    let (_, th, tl) = tlv(tbs)?; // tbsCertificate SEQUENCE
    let mut body = tbs.get(th..th + tl)?;
    // version [0] (optional), serial, signature, issuer, validity, subject, then SPKI.
    if body.first() == Some(&0xa0) {
        let (_, eh, el) = tlv(body)?;
        body = body.get(eh + el..)?;
    }
    for _ in 0..5 {
        let (_, eh, el) = tlv(body)?;
        body = body.get(eh + el..)?;
    }
    let (tag, eh, el) = tlv(body)?;
    (tag == 0x30).then(|| body.get(..eh + el)).flatten()
}

/// An open JNLP4 connection, past the handshake.
pub struct Jnlp4Connection {
    tls: TlsStream<BoxIo>,
    /// The controller's capability mask.
    pub peer_capability: Option<i64>,
    /// The cookie to send on the next connection.
    pub cookie: Option<String>,
}

async fn write_msg(w: &mut (impl AsyncWriteExt + Unpin), m: &[u8]) -> std::io::Result<()> {
    let mut b = Vec::with_capacity(m.len() + 2);
    b.extend_from_slice(&(m.len() as u16).to_be_bytes());
    b.extend_from_slice(m);
    w.write_all(&b).await?;
    w.flush().await
}

async fn read_msg(r: &mut (impl AsyncReadExt + Unpin)) -> std::io::Result<Vec<u8>> {
    let n = r.read_u16().await? as usize;
    let mut b = vec![0; n];
    r.read_exact(&mut b).await?;
    Ok(b)
}

fn json_escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            '\n' => o.push_str("\\n"),
            '\r' => o.push_str("\\r"),
            '\t' => o.push_str("\\t"),
            c if (c as u32) < 0x20 => o.push_str(&format!("\\u{:04x}", c as u32)),
            c => o.push(c),
        }
    }
    o
}

/// Connects: preamble, ACK, TLS with the pinned identity, headers, capability.
pub async fn connect(
    net: &Net,
    via_https_proxy: bool,
    d: &Discovery,
    name: &str,
    secret: &Secret,
    capability: i64,
    cookie: Option<&str>,
) -> Result<Jnlp4Connection, ConnectError> {
    if !d.protocols.is_empty() && !d.protocols.iter().any(|p| p == "JNLP4-connect") {
        return Err(ConnectError::Refused(format!(
            "the controller does not offer JNLP4-connect (it offers {:?}); use -webSocket",
            d.protocols
        )));
    }
    let addr = format!("{}:{}", d.host, d.port);
    let limit = net.timeout;
    let mut tcp = net.tcp(&d.host, d.port, via_https_proxy).await?;
    let mut hello = Vec::new();
    hello.extend_from_slice(b"\x00\x16Protocol:JNLP4-connect");
    hello.extend_from_slice(b"\x00\x03ACK");
    step("JNLP4 preamble and ACK with", &addr, limit, async {
        tcp.write_all(&hello)
            .await
            .map_err(|e| failed(format!("JNLP4 preamble: {e}")))?;
        let mut ack = [0u8; 5];
        tcp.read_exact(&mut ack)
            .await
            .map_err(|e| failed(format!("waiting for the controller's ACK: {e}")))?;
        if &ack != b"\x00\x03ACK" {
            return Err(failed(format!(
                "incorrect acknowledgement from {addr}: is it a Jenkins agent port?"
            )));
        }
        Ok(())
    })
    .await?;

    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| failed(format!("TLS setup: {e}")))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(PinnedKey {
            spki: d.identity.clone(),
            provider,
        }))
        .with_no_client_auth();
    let server_name = ServerName::try_from(d.host.clone())
        .map_err(|_| failed(format!("bad host name {:?}", d.host)))?;
    let mut tls = step("JNLP4 TLS handshake with", &addr, limit, async {
        tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(server_name, tcp)
            .await
            .map_err(|e| {
                ConnectError::Refused(format!("TLS handshake with the controller failed: {e}"))
            })
    })
    .await?;

    // Only now, inside TLS with the identity checked, do the credentials go out.
    let mut headers = format!(
        "{{\"Node-Name\":\"{}\",\"Secret-Key\":\"{}\"",
        json_escape(name),
        json_escape(secret.expose())
    );
    if let Some(c) = cookie {
        headers.push_str(&format!(
            ",\"JnlpAgentProtocol.cookie\":\"{}\"",
            json_escape(c)
        ));
    }
    headers.push('}');
    let io = |e: std::io::Error| failed(format!("JNLP4 connection headers: {e}"));
    let new_cookie = step("JNLP4 connection headers with", &addr, limit, async {
        write_msg(&mut tls, headers.as_bytes()).await.map_err(io)?;
        let mut new_cookie = None;
        loop {
            let m = read_msg(&mut tls).await.map_err(io)?;
            let text = String::from_utf8_lossy(&m).into_owned();
            if text.starts_with('{') {
                new_cookie = header_value(&text, "JnlpAgentProtocol.cookie");
                write_msg(&mut tls, b"OK").await.map_err(io)?;
            } else if text == "OK" {
                return Ok(new_cookie);
            } else if let Some(reason) = text
                .strip_prefix("ERROR: ")
                .or(text.strip_prefix("FATAL: "))
            {
                let _ = tls.write_all(b"\x00\x03BYE").await;
                let _ = tls.flush().await;
                return Err(ConnectError::Refused(reason.to_string()));
            } else {
                return Err(failed(format!(
                    "unexpected connection header answer {text:?}"
                )));
            }
        }
    })
    .await?;
    let cap = B64.encode(command::capability(
        &crate::remoting::classes::registry(),
        capability,
    ));
    let peer = step("JNLP4 capability exchange with", &addr, limit, async {
        write_msg(&mut tls, cap.as_bytes()).await.map_err(io)?;
        read_msg(&mut tls).await.map_err(io)
    })
    .await?;
    let peer_capability = B64
        .decode(&peer)
        .ok()
        .and_then(|b| command::read_capability(&b));
    Ok(Jnlp4Connection {
        tls,
        peer_capability,
        cookie: new_cookie,
    })
}

/// Reads a string value from the flat JSON of connection headers.
fn header_value(json: &str, key: &str) -> Option<String> {
    let needle = format!("\"{key}\"");
    let rest = &json[json.find(&needle)? + needle.len()..];
    let rest = rest.trim_start().strip_prefix(':')?.trim_start();
    let rest = rest.strip_prefix('"')?;
    let mut out = String::new();
    let mut chars = rest.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => return Some(out),
            '\\' => out.push(chars.next()?),
            c => out.push(c),
        }
    }
    None
}

impl Jnlp4Connection {
    /// Next bytes from the controller; `Err` when the connection ended.
    pub async fn recv(&mut self) -> Result<Vec<u8>, String> {
        let mut buf = vec![0u8; 64 << 10];
        match self.tls.read(&mut buf).await {
            Ok(0) => Err("the controller closed the connection".into()),
            Ok(n) => {
                buf.truncate(n);
                Ok(buf)
            }
            Err(e) => Err(format!("connection error: {e}")),
        }
    }

    /// Sends frames.
    pub async fn send(&mut self, frames: Vec<Vec<u8>>) -> Result<(), String> {
        // Frames are 8 KiB at most; handing rustls 64 KiB at a time gives full 16 KiB TLS
        // records and one socket write per batch instead of one per frame.
        const BATCH: usize = 64 << 10;
        let mut batch = Vec::with_capacity(BATCH.min(frames.iter().map(Vec::len).sum()));
        for f in &frames {
            batch.extend_from_slice(f);
            if batch.len() >= BATCH {
                self.tls
                    .write_all(&batch)
                    .await
                    .map_err(|e| format!("send failed: {e}"))?;
                batch.clear();
            }
        }
        if !batch.is_empty() {
            self.tls
                .write_all(&batch)
                .await
                .map_err(|e| format!("send failed: {e}"))?;
        }
        self.tls
            .flush()
            .await
            .map_err(|e| format!("send failed: {e}"))
    }

    /// TLS close_notify and TCP half-close.
    pub async fn close(&mut self) {
        let _ = self.tls.shutdown().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_cookie_from_connection_headers() {
        let h = r#"{"JnlpAgentProtocol.cookie":"00ff"}"#;
        assert_eq!(
            header_value(h, "JnlpAgentProtocol.cookie").as_deref(),
            Some("00ff")
        );
        assert_eq!(json_escape("a\"b\\c\n"), "a\\\"b\\\\c\\n");
    }

    #[test]
    fn spki_of_a_truncated_certificate_is_none() {
        assert_eq!(certificate_spki(&[0x30, 0x82, 0xff]), None);
        assert_eq!(certificate_spki(&[]), None);
    }
}
