//! Where the AWS keys come from: static keys (`aws.credentials_file` or the environment,
//! read once at start) or the EC2 instance role, read from the instance metadata service
//! (IMDSv2) and refreshed before it expires. [`Ec2Provider`](super::ec2::Ec2Provider) and
//! [`S3Object`](super::s3::S3Object) share one source and ask it for the current keys before
//! signing each request.
//!
//! IMDSv2, as used here:
//! 1. `PUT /latest/api/token` with `X-aws-ec2-metadata-token-ttl-seconds: 21600` gives a
//!    session token (kept until a minute before the TTL IMDS granted ends, or until IMDS
//!    answers 401);
//! 2. `GET /latest/meta-data/iam/security-credentials/` (with `X-aws-ec2-metadata-token`)
//!    lists the role name;
//! 3. `GET /latest/meta-data/iam/security-credentials/<role>` gives JSON with `Code`,
//!    `AccessKeyId`, `SecretAccessKey`, `Token` and `Expiration`.
//!
//! The keys are cached and fetched again once less than [`REFRESH_BEFORE_MS`] is left before
//! `Expiration`. One mutex guards the cache, so concurrent callers wait for a single refresh.
//! No secret key, session token or IMDS token is ever part of an error, a log line or `Debug`.

use super::sigv4::Credentials;
use super::{CloudError, CloudErrorKind};
use crate::config::{AwsConfig, CredentialsMode};
use crate::secret::Secret;
use crate::util::{format_iso8601_ms, now_ms, parse_iso8601_ms};
use crate::{log_info, log_warn};
use serde::Deserialize;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The IMDS address when neither `aws.imds_endpoint` nor the environment names one.
pub const DEFAULT_IMDS_ENDPOINT: &str = "http://169.254.169.254";
/// The environment variable the AWS tools use to point at another IMDS.
pub const IMDS_ENDPOINT_ENV: &str = "AWS_EC2_METADATA_SERVICE_ENDPOINT";
/// Keys are fetched again when less than this is left before their `Expiration`.
pub const REFRESH_BEFORE_MS: u64 = 5 * 60 * 1000;
/// Timeout of each IMDS request.
pub const IMDS_TIMEOUT: Duration = Duration::from_secs(2);
/// The session-token lifetime asked for (the IMDS maximum, 6 hours).
pub const IMDS_TOKEN_TTL_SECONDS: u64 = 21_600;
/// A session token is replaced when less than this (at most half its lifetime) is left.
const TOKEN_MARGIN: Duration = Duration::from_secs(60);
/// After a refresh that failed, or that replaced cached keys with keys which are themselves
/// within [`REFRESH_BEFORE_MS`] of expiry, the still-valid cached keys are used for this long
/// before IMDS is asked again (so a slow rotation does not turn every request into three IMDS calls).
const RETRY_AFTER: Duration = Duration::from_secs(10);
/// Cached keys are still handed out (after a failed refresh) only while they have at least
/// this much life left: a request signed now must still be valid when AWS checks it.
const STILL_VALID_MS: u64 = 30_000;

/// Gives the keys to sign the next request with. Shared by the EC2 and S3 clients.
pub trait CredentialSource: Send + Sync + std::fmt::Debug {
    fn current(&self) -> Result<Credentials, CloudError>;
}

/// Static keys: the same every time.
impl CredentialSource for Credentials {
    fn current(&self) -> Result<Credentials, CloudError> {
        Ok(self.clone())
    }
}

/// The handle the clients hold.
pub type SharedCredentials = Arc<dyn CredentialSource>;

impl From<Credentials> for Arc<dyn CredentialSource> {
    fn from(c: Credentials) -> Self {
        Arc::new(c)
    }
}

/// The credential source `cfg` asks for. `aws.credentials = "static"` reads the file or the
/// environment now (errors name the key or variable); `"instance-role"` contacts nothing
/// until the first request.
pub fn credential_source(cfg: &AwsConfig) -> Result<SharedCredentials, String> {
    match cfg.credentials {
        CredentialsMode::Static => Ok(Arc::new(super::ec2::load_credentials(cfg)?)),
        CredentialsMode::InstanceRole => {
            let endpoint = imds_endpoint(cfg)?;
            Ok(Arc::new(InstanceRoleCredentials::new(&endpoint)?))
        }
    }
}

/// `aws.imds_endpoint`, else `$AWS_EC2_METADATA_SERVICE_ENDPOINT`, else the link-local
/// default. Only meaningful with `aws.credentials = "instance-role"`.
pub fn imds_endpoint(cfg: &AwsConfig) -> Result<String, String> {
    if let Some(e) = &cfg.imds_endpoint {
        return Ok(e.clone());
    }
    match std::env::var(IMDS_ENDPOINT_ENV) {
        Ok(v) if !v.trim().is_empty() => {
            normalize_imds_endpoint(v.trim()).map_err(|e| format!("{IMDS_ENDPOINT_ENV}: {e}"))
        }
        _ => Ok(DEFAULT_IMDS_ENDPOINT.to_string()),
    }
}

/// `http(s)://host[:port]` with no path, without a trailing `/`.
pub fn normalize_imds_endpoint(s: &str) -> Result<String, String> {
    let lower = s.to_ascii_lowercase();
    let rest = if lower.starts_with("http://") {
        &s[7..]
    } else if lower.starts_with("https://") {
        &s[8..]
    } else {
        return Err(format!(
            "`{s}` is not an http URL: write it like \"http://169.254.169.254\""
        ));
    };
    let rest = rest.trim_end_matches('/');
    if rest.is_empty() {
        return Err(format!("`{s}` has no host name"));
    }
    if rest.contains(['/', '?', '#']) || rest.contains(char::is_whitespace) {
        return Err(format!(
            "`{s}` must be scheme, host and port only (no path): like \"http://169.254.169.254\""
        ));
    }
    Ok(s.trim_end_matches('/').to_string())
}

/// The role's keys from IMDSv2, cached until [`REFRESH_BEFORE_MS`] before they expire.
pub struct InstanceRoleCredentials {
    endpoint: String,
    agent: ureq::Agent,
    cache: Mutex<Cache>,
}

#[derive(Default)]
struct Cache {
    /// IMDS session token and when it stops being used.
    token: Option<(Secret, Instant)>,
    keys: Option<CachedKeys>,
    /// Don't ask IMDS again before this while the cached keys are still valid.
    quiet_until: Option<Instant>,
}

#[derive(Debug)] // Credentials print their secrets as ***
struct CachedKeys {
    creds: Credentials,
    role: String,
    expires_ms: u64,
}

impl std::fmt::Debug for InstanceRoleCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InstanceRoleCredentials")
            .field("endpoint", &self.endpoint)
            .finish_non_exhaustive()
    }
}

/// The JSON answer for a role. Only strings are expected, so a parse error never quotes a
/// value (serde quotes values only when their type is wrong); no `Debug`, it holds secrets.
#[derive(Deserialize)]
struct RoleAnswer {
    #[serde(rename = "Code")]
    code: Option<String>,
    #[serde(rename = "Message")]
    message: Option<String>,
    #[serde(rename = "AccessKeyId")]
    access_key_id: Option<String>,
    #[serde(rename = "SecretAccessKey")]
    secret_access_key: Option<String>,
    #[serde(rename = "Token")]
    token: Option<String>,
    #[serde(rename = "Expiration")]
    expiration: Option<String>,
}

const TOKEN_PATH: &str = "/latest/api/token";
const ROLES_PATH: &str = "/latest/meta-data/iam/security-credentials/";

fn imds_error(code: &str, message: String) -> CloudError {
    CloudError {
        kind: CloudErrorKind::Transport,
        code: code.into(),
        message,
    }
}

/// What a GET with the session token gave.
enum Got {
    Body(String),
    Status(u16),
}

impl InstanceRoleCredentials {
    /// `endpoint` like `http://169.254.169.254` (checked, trailing `/` dropped). Contacts
    /// nothing.
    pub fn new(endpoint: &str) -> Result<Self, String> {
        let endpoint = normalize_imds_endpoint(endpoint)?;
        // IMDS is plain HTTP on a link-local address: no CA, no proxy (ureq reads no proxy
        // variables unless told to), no redirects.
        let agent = ureq::AgentBuilder::new()
            .timeout(IMDS_TIMEOUT)
            .redirects(0)
            .build();
        Ok(InstanceRoleCredentials {
            endpoint,
            agent,
            cache: Mutex::new(Cache::default()),
        })
    }

    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    fn unreachable(&self, step: &str, e: &ureq::Transport) -> CloudError {
        // A transport error names the URL and the failure, never a header.
        imds_error(
            "ImdsUnreachable",
            format!(
                "instance-role credentials: IMDS unreachable at {} ({step}: {e}); check that nectr-fleet runs on an EC2 instance with the metadata service enabled (in a container, the instance's metadata hop limit must be at least 2), or set aws.imds_endpoint, or use aws.credentials = \"static\"",
                self.endpoint
            ),
        )
    }

    fn fetch_token(&self) -> Result<(Secret, Instant), CloudError> {
        let url = format!("{}{TOKEN_PATH}", self.endpoint);
        let asked = Instant::now();
        let resp = self
            .agent
            .put(&url)
            .set(
                "X-aws-ec2-metadata-token-ttl-seconds",
                &IMDS_TOKEN_TTL_SECONDS.to_string(),
            )
            .call();
        match resp {
            Ok(r) => {
                let ttl = r
                    .header("X-aws-ec2-metadata-token-ttl-seconds")
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .unwrap_or(IMDS_TOKEN_TTL_SECONDS);
                let token = r.into_string().map_err(|e| {
                    imds_error(
                        "ImdsUnreachable",
                        format!(
                            "instance-role credentials: reading the IMDS session token from {url} failed: {e}"
                        ),
                    )
                })?;
                let token = token.trim();
                if token.is_empty() {
                    return Err(imds_error(
                        "ImdsBadAnswer",
                        format!("instance-role credentials: IMDS at {} answered the session-token request with an empty body", self.endpoint),
                    ));
                }
                let ttl = Duration::from_secs(ttl);
                let until = asked + ttl.saturating_sub(TOKEN_MARGIN.min(ttl / 2));
                Ok((Secret::new(token), until))
            }
            Err(ureq::Error::Status(status, _)) => Err(imds_error(
                "ImdsTokenRefused",
                format!(
                    "instance-role credentials: IMDS at {} refused a session token (PUT {TOKEN_PATH}: HTTP {status}); check that the metadata service is enabled on this instance and accepts IMDSv2 tokens",
                    self.endpoint
                ),
            )),
            Err(ureq::Error::Transport(t)) => Err(self.unreachable("PUT session token", &t)),
        }
    }

    /// A session token, new if there is none, it is about to expire, or `fresh` is set.
    fn token(&self, cache: &mut Cache, fresh: bool) -> Result<Secret, CloudError> {
        if !fresh {
            if let Some((t, until)) = &cache.token {
                if Instant::now() < *until {
                    return Ok(t.clone());
                }
            }
        }
        cache.token = None;
        let (t, until) = self.fetch_token()?;
        cache.token = Some((t.clone(), until));
        Ok(t)
    }

    /// GET `path` with the session token; a 401 (expired or revoked token) gets one retry
    /// with a new token.
    fn get(&self, cache: &mut Cache, path: &str, step: &str) -> Result<Got, CloudError> {
        let url = format!("{}{path}", self.endpoint);
        let mut fresh = false;
        loop {
            let token = self.token(cache, fresh)?;
            let resp = self
                .agent
                .get(&url)
                .set("X-aws-ec2-metadata-token", token.expose())
                .call();
            return match resp {
                Ok(r) => r.into_string().map(Got::Body).map_err(|e| {
                    imds_error(
                        "ImdsUnreachable",
                        format!("instance-role credentials: reading {url} ({step}) failed: {e}"),
                    )
                }),
                Err(ureq::Error::Status(401, _)) if !fresh => {
                    cache.token = None;
                    fresh = true;
                    continue;
                }
                Err(ureq::Error::Status(401, _)) => Err(imds_error(
                    "ImdsTokenRefused",
                    format!(
                        "instance-role credentials: IMDS at {} rejected a new session token ({step}: HTTP 401)",
                        self.endpoint
                    ),
                )),
                Err(ureq::Error::Status(status, _)) => Ok(Got::Status(status)),
                Err(ureq::Error::Transport(t)) => Err(self.unreachable(step, &t)),
            };
        }
    }

    fn no_role(&self, what: String) -> CloudError {
        imds_error(
            "ImdsNoRole",
            format!(
                "instance-role credentials: no instance role attached? {what}; attach an instance profile with an IAM role to this instance, or use aws.credentials = \"static\"",
            ),
        )
    }

    /// Role name and keys, straight from IMDS.
    fn fetch(&self, cache: &mut Cache) -> Result<CachedKeys, CloudError> {
        let listing = self.get(cache, ROLES_PATH, "list the instance role")?;
        let listing = self.body(listing, ROLES_PATH, &format!("no {ROLES_PATH}"))?;
        let role = listing
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty())
            .map(str::to_string)
            .ok_or_else(|| {
                self.no_role(format!(
                    "IMDS at {} lists no IAM role under {ROLES_PATH}",
                    self.endpoint
                ))
            })?;
        if role.contains(['/', '?', '#', '%']) || role.len() > 128 {
            return Err(imds_error(
                "ImdsBadAnswer",
                format!(
                    "instance-role credentials: IMDS at {} listed `{role}`, which is not a role name",
                    self.endpoint
                ),
            ));
        }
        let path = format!("{ROLES_PATH}{role}");
        let got = self.get(cache, &path, "read the role's credentials")?;
        let body = self.body(got, &path, &format!("no credentials for role `{role}`"))?;
        self.parse_keys(&role, &body)
    }

    /// The body of an answer to `GET path`: a 404 means no role (`missing` says what is
    /// missing), any other status is an error.
    fn body(&self, got: Got, path: &str, missing: &str) -> Result<String, CloudError> {
        match got {
            Got::Body(b) => Ok(b),
            Got::Status(404) => Err(self.no_role(format!(
                "IMDS at {} has {missing} (HTTP 404)",
                self.endpoint
            ))),
            Got::Status(s) => Err(imds_error(
                "ImdsError",
                format!(
                    "instance-role credentials: IMDS at {} answered HTTP {s} to GET {path}",
                    self.endpoint
                ),
            )),
        }
    }

    fn parse_keys(&self, role: &str, body: &str) -> Result<CachedKeys, CloudError> {
        let bad = |what: String| {
            imds_error(
                "ImdsBadAnswer",
                format!(
                    "instance-role credentials: the answer of IMDS at {} for role `{role}` {what}",
                    self.endpoint
                ),
            )
        };
        // Only the position of a syntax error is reported: the text holds the keys.
        let a: RoleAnswer = serde_json::from_str(body).map_err(|e| {
            bad(format!(
                "is not the expected JSON (line {}, column {})",
                e.line(),
                e.column()
            ))
        })?;
        let code = a.code.as_deref().unwrap_or("").trim();
        if code != "Success" {
            let msg: String = a
                .message
                .as_deref()
                .unwrap_or("")
                .chars()
                .take(200)
                .collect();
            let msg = match (&a.secret_access_key, &a.token) {
                // Never echo a value that could hold a key.
                (Some(s), _) if !s.is_empty() && msg.contains(s.as_str()) => String::new(),
                (_, Some(t)) if !t.is_empty() && msg.contains(t.as_str()) => String::new(),
                _ => msg,
            };
            return Err(imds_error(
                "ImdsCredentials",
                format!(
                    "instance-role credentials: IMDS at {} answered Code \"{code}\" (not \"Success\") for role `{role}`{}; check the role and the instance profile in IAM",
                    self.endpoint,
                    if msg.is_empty() { String::new() } else { format!(": {msg}") }
                ),
            ));
        }
        let (Some(id), Some(secret), Some(token)) = (
            a.access_key_id.filter(|s| !s.trim().is_empty()),
            a.secret_access_key.filter(|s| !s.trim().is_empty()),
            a.token.filter(|s| !s.trim().is_empty()),
        ) else {
            return Err(bad(
                "lacks AccessKeyId, SecretAccessKey or Token".to_string()
            ));
        };
        let exp_text = a.expiration.unwrap_or_default();
        let Some(expires_ms) = parse_iso8601_ms(&exp_text) else {
            return Err(bad(format!(
                "has no valid Expiration (`{}`)",
                exp_text.chars().take(40).collect::<String>()
            )));
        };
        Ok(CachedKeys {
            creds: Credentials {
                access_key_id: id.trim().to_string(),
                secret_access_key: Secret::new(secret.trim()),
                session_token: Some(Secret::new(token.trim())),
            },
            role: role.to_string(),
            expires_ms,
        })
    }
}

impl CredentialSource for InstanceRoleCredentials {
    fn current(&self) -> Result<Credentials, CloudError> {
        // One refresh at a time: other callers wait here, then find the new keys cached.
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        let now = now_ms();
        let usable = cache
            .keys
            .as_ref()
            .filter(|k| k.expires_ms > now.saturating_add(STILL_VALID_MS))
            .map(|k| k.creds.clone());
        if let Some(k) = &cache.keys {
            if k.expires_ms > now.saturating_add(REFRESH_BEFORE_MS) {
                return Ok(k.creds.clone());
            }
        }
        if let (Some(c), Some(q)) = (&usable, cache.quiet_until) {
            if Instant::now() < q {
                return Ok(c.clone());
            }
        }
        // Keys near expiry right after start are asked for again at the next call; after a
        // refresh that still gives keys near expiry, IMDS is left alone for RETRY_AFTER.
        let refreshing = cache.keys.is_some();
        let fetched = self.fetch(&mut cache).and_then(|k| {
            if k.expires_ms <= now_ms() {
                Err(imds_error(
                    "ImdsCredentials",
                    format!(
                        "instance-role credentials: IMDS at {} gave credentials for role `{}` that expired at {}; check the instance's clock",
                        self.endpoint,
                        k.role,
                        format_iso8601_ms(k.expires_ms)
                    ),
                ))
            } else {
                Ok(k)
            }
        });
        match fetched {
            Ok(k) => {
                if k.expires_ms <= now_ms().saturating_add(REFRESH_BEFORE_MS) {
                    cache.quiet_until = refreshing.then(|| Instant::now() + RETRY_AFTER);
                    log_warn!(
                        "instance-role credentials for role {} expire at {}, in less than 5 minutes; IMDS will be asked again",
                        k.role,
                        format_iso8601_ms(k.expires_ms),
                    );
                } else {
                    cache.quiet_until = None;
                    log_info!(
                        "instance-role credentials for role {} (key id {}) fetched from IMDS; they expire at {}",
                        k.role,
                        k.creds.access_key_id,
                        format_iso8601_ms(k.expires_ms)
                    );
                }
                let creds = k.creds.clone();
                cache.keys = Some(k);
                Ok(creds)
            }
            Err(e) => match usable {
                Some(c) => {
                    cache.quiet_until = Some(Instant::now() + RETRY_AFTER);
                    log_warn!(
                        "refreshing instance-role credentials failed ({e}); the cached ones are still valid and stay in use"
                    );
                    Ok(c)
                }
                None => Err(e),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_normalized() {
        assert_eq!(
            normalize_imds_endpoint("http://169.254.169.254/").unwrap(),
            "http://169.254.169.254"
        );
        assert_eq!(
            normalize_imds_endpoint("http://[fd00:ec2::254]").unwrap(),
            "http://[fd00:ec2::254]"
        );
        assert!(normalize_imds_endpoint("169.254.169.254").is_err());
        assert!(normalize_imds_endpoint("http://").is_err());
        assert!(normalize_imds_endpoint("http://h/latest").is_err());
    }

    #[test]
    fn answer_parsing_never_shows_the_keys() {
        let src = InstanceRoleCredentials::new("http://127.0.0.1:9").unwrap();
        let ok = r#"{"Code":"Success","LastUpdated":"2026-11-22T06:00:00Z","Type":"AWS-HMAC","AccessKeyId":"ASIAEXAMPLE","SecretAccessKey":"s3cr3t-key-value","Token":"sess-token-value","Expiration":"2026-11-22T12:00:00Z"}"#;
        let k = src.parse_keys("r", ok).unwrap();
        assert_eq!(k.creds.access_key_id, "ASIAEXAMPLE");
        assert_eq!(
            k.expires_ms,
            parse_iso8601_ms("2026-11-22T12:00:00Z").unwrap()
        );
        let dbg = format!("{:?} {:?}", k.creds, src);
        assert!(
            !dbg.contains("s3cr3t") && !dbg.contains("sess-token"),
            "{dbg}"
        );

        let truncated = &ok[..ok.len() - 10];
        let e = src.parse_keys("r", truncated).unwrap_err();
        assert!(!e.to_string().contains("s3cr3t"), "{e}");
        assert!(e.to_string().contains("not the expected JSON"), "{e}");

        let e = src
            .parse_keys("r", r#"{"Code":"Success","AccessKeyId":"A","SecretAccessKey":"s3cr3t-key-value","Token":"t0ken-value","Expiration":"soon"}"#)
            .unwrap_err();
        assert!(e.to_string().contains("no valid Expiration"), "{e}");
        assert!(!e.to_string().contains("s3cr3t"), "{e}");

        let e = src
            .parse_keys(
                "r",
                r#"{"Code":"Failure","Message":"leaked s3cr3t-key-value","SecretAccessKey":"s3cr3t-key-value"}"#,
            )
            .unwrap_err();
        assert!(e.to_string().contains("Code \"Failure\""), "{e}");
        assert!(!e.to_string().contains("s3cr3t"), "{e}");
        assert_eq!(e.kind, CloudErrorKind::Transport);
    }
}
