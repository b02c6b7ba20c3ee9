//! Jenkins behind a private CA: `jenkins.ca_file` makes the client trust it; without it the
//! connection is refused. The fixtures in tests/fixtures/tls are a throw-away test CA and a
//! server certificate for 127.0.0.1 (test-only key, valid for 100 years).

use nectr_fleet::jenkins::{JenkinsApi, JenkinsClient};
use nectr_fleet::secret::Secret;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::Arc;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/tls")
        .join(name)
}

/// A one-thread HTTPS server on 127.0.0.1 answering every request with an empty queue.
fn https_server() -> String {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(fixture("server.pem"))
        .expect("cert file")
        .collect::<Result<_, _>>()
        .expect("certs");
    let key = PrivateKeyDer::from_pem_file(fixture("server.key")).expect("key");
    let cfg = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .expect("server config");
    let cfg = Arc::new(cfg);
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!(
        "https://127.0.0.1:{}/",
        listener.local_addr().expect("addr").port()
    );
    std::thread::spawn(move || {
        for tcp in listener.incoming().flatten() {
            let Ok(conn) = rustls::ServerConnection::new(cfg.clone()) else {
                continue;
            };
            let mut tls = rustls::StreamOwned::new(conn, tcp);
            let mut buf = Vec::new();
            let mut chunk = [0u8; 1024];
            while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                match tls.read(&mut chunk) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                }
            }
            let body = r#"{"_class":"hudson.model.Queue","items":[]}"#;
            let _ = write!(tls, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len());
            let _ = tls.flush();
            tls.conn.send_close_notify();
            let _ = tls.flush();
        }
    });
    url
}

#[test]
fn private_ca_is_trusted_only_when_configured() {
    let url = https_server();
    let with = JenkinsClient::with_ca(&url, "u", Secret::new("t"), 5_000, Some(&fixture("ca.pem")))
        .expect("client");
    assert_eq!(
        with.queue()
            .expect("queue over TLS with the private CA")
            .len(),
        0
    );

    let without = JenkinsClient::new(&url, "u", Secret::new("t"), 5_000);
    let err = without
        .queue()
        .expect_err("untrusted certificate must be refused")
        .to_string();
    assert!(err.contains("cannot reach Jenkins"), "{err}");
    assert!(
        err.to_lowercase().contains("certificate") || err.contains("UnknownIssuer"),
        "{err}"
    );

    let bad = JenkinsClient::with_ca(
        &url,
        "u",
        Secret::new("t"),
        5_000,
        Some(&fixture("server.key")),
    );
    assert!(bad.is_err(), "a key file is not a CA file");
}

#[test]
fn ca_file_is_validated_in_the_config() {
    let text = format!(
        "fleet_id = \"t\"\n[jenkins]\nurl = \"https://ci/\"\nuser = \"u\"\ntoken_file = \"t\"\nca_file = \"{}\"\n[aws]\nregion = \"us-east-1\"\n[[pool]]\nname = \"p\"\nlabels = [\"l\"]\ninstance_types = [\"c5.xlarge\"]\nami = \"ami-1\"\nmax_instances = 1\n",
        fixture("server.key").display()
    );
    let errs =
        nectr_fleet::config::load_str(&text, std::path::Path::new("/")).expect_err("invalid");
    assert_eq!(errs[0].key, "jenkins.ca_file");
    assert_eq!(errs[0].line, Some(6));
    let ok = text.replace("server.key", "ca.pem");
    let cfg = nectr_fleet::config::load_str(&ok, std::path::Path::new("/")).expect("valid");
    assert_eq!(cfg.jenkins.ca_file, Some(fixture("ca.pem")));
}
