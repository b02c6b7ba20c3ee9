//! A minimal S3 object client (path-style GET/PUT with conditional writes), signed with
//! SigV4. It stores the leader lease; nothing else in the fleet uses S3.

use super::credentials::SharedCredentials;
use super::sigv4::{authorization, sha256_hex};
use super::{CloudError, CloudErrorKind};
use crate::util::{format_amz_date, now_ms, pct_encode};

/// Condition of a PUT.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PutCondition {
    /// `If-None-Match: *`: only if the object does not exist.
    Absent,
    /// `If-Match: ETAG`: only if the object is unchanged.
    Matches(String),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PutOutcome {
    Written {
        etag: String,
    },
    /// 412 (or 409 ConditionalRequestConflict): someone else wrote first.
    Conflict,
}

pub struct S3Object {
    base: String,
    host: String,
    path: String,
    region: String,
    creds: SharedCredentials,
    agent: ureq::Agent,
}

impl std::fmt::Debug for S3Object {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Object")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

fn encode_path(s: &str) -> String {
    s.split('/').map(pct_encode).collect::<Vec<_>>().join("/")
}

impl S3Object {
    /// `endpoint` None means `https://s3.REGION.amazonaws.com/`. `creds` is asked for the
    /// current keys before every request.
    pub fn new(
        endpoint: Option<&str>,
        region: &str,
        bucket: &str,
        key: &str,
        creds: impl Into<SharedCredentials>,
        timeout_ms: u64,
        ca_file: Option<&std::path::Path>,
    ) -> Result<Self, String> {
        let base = endpoint
            .map(|e| e.trim_end_matches('/').to_string())
            .unwrap_or_else(|| format!("https://s3.{region}.amazonaws.com"));
        let host = base
            .split_once("://")
            .map(|x| x.1)
            .unwrap_or("")
            .split('/')
            .next()
            .unwrap_or("")
            .to_string();
        if host.is_empty() {
            return Err(format!("S3 endpoint `{base}` has no host"));
        }
        Ok(S3Object {
            base,
            host,
            path: format!("/{}/{}", encode_path(bucket), encode_path(key)),
            region: region.to_string(),
            creds: creds.into(),
            agent: crate::tls::agent(timeout_ms, ca_file)
                .map_err(|e| format!("aws.ca_file: {e}"))?,
        })
    }

    fn signed(&self, method: &str, path: &str, body: &[u8]) -> Result<ureq::Request, CloudError> {
        let creds = self.creds.current().map_err(|e| CloudError {
            message: format!("S3 {method} {path}: {}", e.message),
            ..e
        })?;
        let amz_date = format_amz_date(now_ms());
        let payload_hash = sha256_hex(body);
        let mut headers = vec![
            ("host".to_string(), self.host.clone()),
            ("x-amz-content-sha256".to_string(), payload_hash.clone()),
            ("x-amz-date".to_string(), amz_date.clone()),
        ];
        if let Some(t) = &creds.session_token {
            headers.push(("x-amz-security-token".to_string(), t.expose().to_string()));
        }
        let auth = authorization(
            method,
            path,
            "",
            &headers,
            body,
            &self.region,
            "s3",
            &creds,
            &amz_date,
        );
        let mut req = self
            .agent
            .request(method, &format!("{}{path}", self.base))
            .set("x-amz-content-sha256", &payload_hash)
            .set("x-amz-date", &amz_date)
            .set("Authorization", &auth);
        if let Some(t) = &creds.session_token {
            req = req.set("x-amz-security-token", t.expose());
        }
        Ok(req)
    }

    fn error(&self, what: &str, e: ureq::Error) -> CloudError {
        match e {
            ureq::Error::Status(status, resp) => {
                let body = resp.into_string().unwrap_or_default();
                let code = body
                    .split("<Code>")
                    .nth(1)
                    .and_then(|r| r.split("</Code>").next())
                    .unwrap_or("")
                    .to_string();
                let kind = match (status, code.as_str()) {
                    (503, _) | (_, "SlowDown") => CloudErrorKind::Throttled,
                    (403, _) => CloudErrorKind::Auth,
                    (404, _) => CloudErrorKind::Invalid,
                    _ => CloudErrorKind::Other,
                };
                CloudError {
                    kind,
                    code: if code.is_empty() {
                        format!("HTTP{status}")
                    } else {
                        code
                    },
                    message: format!("S3 {what} {}: HTTP {status}", self.path),
                }
            }
            ureq::Error::Transport(t) => CloudError {
                kind: CloudErrorKind::Transport,
                code: "Transport".into(),
                message: format!("S3 {what} {}: {t}", self.path),
            },
        }
    }

    /// The object and its ETag, or `None` if it does not exist.
    pub fn get(&self) -> Result<Option<(Vec<u8>, String)>, CloudError> {
        match self.signed("GET", &self.path, b"")?.call() {
            Ok(resp) => {
                let etag = resp.header("ETag").unwrap_or("").to_string();
                let mut buf = Vec::new();
                std::io::Read::read_to_end(
                    &mut std::io::Read::take(resp.into_reader(), 1 << 20),
                    &mut buf,
                )
                .map_err(|e| CloudError {
                    kind: CloudErrorKind::Transport,
                    code: "ReadError".into(),
                    message: format!("S3 read {}: {e}", self.path),
                })?;
                Ok(Some((buf, etag)))
            }
            Err(ureq::Error::Status(404, _)) => Ok(None),
            Err(e) => Err(self.error("read", e)),
        }
    }

    pub fn put(&self, body: &[u8], cond: &PutCondition) -> Result<PutOutcome, CloudError> {
        let mut req = self
            .signed("PUT", &self.path, body)?
            .set("Content-Type", "application/json");
        req = match cond {
            PutCondition::Absent => req.set("If-None-Match", "*"),
            PutCondition::Matches(etag) => req.set("If-Match", etag),
        };
        match req.send_bytes(body) {
            Ok(resp) => Ok(PutOutcome::Written {
                etag: resp.header("ETag").unwrap_or("").to_string(),
            }),
            Err(ureq::Error::Status(412, _)) | Err(ureq::Error::Status(409, _)) => {
                Ok(PutOutcome::Conflict)
            }
            Err(e) => Err(self.error("write", e)),
        }
    }

    /// Create the bucket (tests; in production the bucket already exists).
    pub fn create_bucket(&self) -> Result<(), CloudError> {
        let bucket_path = format!(
            "/{}",
            self.path
                .trim_start_matches('/')
                .split('/')
                .next()
                .unwrap_or("")
        );
        match self.signed("PUT", &bucket_path, b"")?.send_bytes(b"") {
            Ok(_) => Ok(()),
            Err(e) => Err(self.error("create bucket", e)),
        }
    }
}
