//! Where the AWS keys come from (`aws.credentials`), handed to the AWS SDK as its credentials
//! provider:
//!
//! - `"chain"` (the default): the SDK's standard chain, in its order: the `AWS_*` environment
//!   variables, the shared config and credentials files (`aws.profile`, else `AWS_PROFILE`,
//!   else `default`; SSO and `credential_process` profiles included), web identity
//!   (`AWS_WEB_IDENTITY_TOKEN_FILE` + `AWS_ROLE_ARN`), the ECS container role, and the EC2
//!   instance role (IMDSv2). Keys that expire are refreshed by the SDK.
//! - `"static"`: `aws.credentials_file`, else the `AWS_*` variables, read once at start.
//! - `"instance-role"`: only the EC2 instance role, from IMDSv2 at `aws.imds_endpoint`.
//!
//! [`describe_source`] tells, without contacting anything, which source the chain will use
//! (what `nectr-fleet check` prints). No secret key or session token is ever part of an error,
//! a log line or `Debug` output.

use crate::config::{normalize_imds_endpoint, AwsConfig, CredentialsMode};
use crate::secret::Secret;
use aws_config::imds::credentials::ImdsCredentialsProvider;
use aws_credential_types::provider::SharedCredentialsProvider;
use std::path::{Path, PathBuf};

/// The IMDS address when neither `aws.imds_endpoint` nor the environment names one.
pub const DEFAULT_IMDS_ENDPOINT: &str = "http://169.254.169.254";
/// The environment variable the AWS tools use to point at another IMDS.
pub const IMDS_ENDPOINT_ENV: &str = "AWS_EC2_METADATA_SERVICE_ENDPOINT";

/// Static keys.
#[derive(Clone, Debug)]
pub struct Credentials {
    pub access_key_id: String,
    pub secret_access_key: Secret,
    pub session_token: Option<Secret>,
}

/// The credential source the AWS clients share, with a description for messages (never the
/// keys themselves).
#[derive(Clone)]
pub struct SharedCredentials {
    pub(crate) provider: SharedCredentialsProvider,
    description: String,
}

impl std::fmt::Debug for SharedCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedCredentials")
            .field("source", &self.description)
            .finish_non_exhaustive()
    }
}

impl SharedCredentials {
    /// Where the keys come from, e.g. `static, from aws.credentials_file /etc/nectr/aws`.
    pub fn description(&self) -> &str {
        &self.description
    }
}

impl From<Credentials> for SharedCredentials {
    fn from(c: Credentials) -> Self {
        SharedCredentials {
            provider: SharedCredentialsProvider::new(aws_credential_types::Credentials::new(
                c.access_key_id,
                c.secret_access_key.expose().to_string(),
                c.session_token.map(|t| t.expose().to_string()),
                None,
                "nectr-static",
            )),
            description: "static keys".into(),
        }
    }
}

/// Read `aws.credentials_file` (lines: key id, secret, optional session token) or
/// `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`.
pub fn load_credentials(cfg: &AwsConfig) -> Result<Credentials, String> {
    if let Some(path) = &cfg.credentials_file {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("aws.credentials_file: cannot read {}: {e}", path.display()))?;
        let mut lines = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'));
        let id = lines.next();
        let secret = lines.next();
        let token = lines.next();
        return match (id, secret) {
            (Some(id), Some(secret)) => Ok(Credentials {
                access_key_id: id.to_string(),
                secret_access_key: Secret::new(secret),
                session_token: token.map(Secret::new),
            }),
            _ => Err(format!(
                "aws.credentials_file: {} must hold the access key id on the first line and the secret access key on the second",
                path.display()
            )),
        };
    }
    let id = std::env::var("AWS_ACCESS_KEY_ID").unwrap_or_default();
    let secret = std::env::var("AWS_SECRET_ACCESS_KEY").unwrap_or_default();
    if id.is_empty() || secret.is_empty() {
        return Err("no AWS credentials: aws.credentials = \"static\" needs AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or aws.credentials_file; or remove the credentials key to use the standard chain (profiles, SSO, roles)".into());
    }
    Ok(Credentials {
        access_key_id: id,
        secret_access_key: Secret::new(secret),
        session_token: std::env::var("AWS_SESSION_TOKEN")
            .ok()
            .filter(|t| !t.is_empty())
            .map(Secret::new),
    })
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

/// The credential source `cfg` asks for. `"static"` reads the file or the environment now
/// (errors name the key or variable); `"chain"` and `"instance-role"` contact nothing until
/// the first request.
pub fn credential_source(cfg: &AwsConfig) -> Result<SharedCredentials, String> {
    match cfg.credentials {
        CredentialsMode::Static => {
            let keys = load_credentials(cfg)?;
            let description = match &cfg.credentials_file {
                Some(p) => format!("static, from aws.credentials_file {}", p.display()),
                None => "static, from AWS_ACCESS_KEY_ID".to_string(),
            };
            Ok(SharedCredentials {
                description,
                ..SharedCredentials::from(keys)
            })
        }
        CredentialsMode::InstanceRole => {
            let endpoint = imds_endpoint(cfg)?;
            let client = aws_config::imds::Client::builder()
                .configure(
                    &aws_config::provider_config::ProviderConfig::default()
                        .with_http_client(super::aws::https_client(None)),
                )
                .endpoint(&endpoint)
                .map_err(|e| format!("aws.imds_endpoint `{endpoint}`: {e}"))?
                .connect_timeout(std::time::Duration::from_secs(2))
                .read_timeout(std::time::Duration::from_secs(2))
                .build();
            let provider = ImdsCredentialsProvider::builder()
                .imds_client(client)
                .build();
            Ok(SharedCredentials {
                provider: SharedCredentialsProvider::new(provider),
                description: format!("instance role, from the metadata service at {endpoint}"),
            })
        }
        CredentialsMode::Chain => {
            let region = aws_config::Region::new(cfg.region.clone());
            let profile = cfg.profile.clone();
            let chain = super::aws::block_on(async move {
                let mut b =
                    aws_config::default_provider::credentials::DefaultCredentialsChain::builder()
                        .configure(
                            aws_config::provider_config::ProviderConfig::default()
                                .with_http_client(super::aws::https_client(None)),
                        )
                        .region(region);
                if let Some(p) = profile {
                    b = b.profile_name(&p);
                }
                b.build().await
            })
            .map_err(|e| e.message)?;
            let (what, _) = describe_source(cfg, &Env::process());
            Ok(SharedCredentials {
                provider: SharedCredentialsProvider::new(chain),
                description: what,
            })
        }
    }
}

/// What the process environment and file system hold, for [`describe_source`] (a parameter,
/// so tests need not change the process environment).
pub struct Env {
    pub vars: Vec<(String, String)>,
    pub home: Option<PathBuf>,
}

impl Env {
    pub fn process() -> Env {
        Env {
            vars: std::env::vars()
                .filter(|(k, _)| k.starts_with("AWS_") || k == "HOME")
                .collect(),
            home: std::env::var_os("HOME").map(PathBuf::from),
        }
    }

    fn var(&self, k: &str) -> Option<&str> {
        self.vars
            .iter()
            .find(|(n, v)| n == k && !v.trim().is_empty())
            .map(|(_, v)| v.as_str())
    }
}

/// Section names (`[default]`, `[profile ci]`, `[ci]`) of an INI file, profile names only.
fn profiles_in(path: &Path, config_file: bool) -> Vec<String> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Vec::new();
    };
    text.lines()
        .filter_map(|l| {
            let l = l.trim();
            let inner = l.strip_prefix('[')?.strip_suffix(']')?.trim();
            if config_file {
                if inner == "default" {
                    return Some("default".to_string());
                }
                inner.strip_prefix("profile ").map(|p| p.trim().to_string())
            } else {
                Some(inner.to_string())
            }
        })
        .collect()
}

/// Which source `cfg` will use, said without contacting anything, and a warning when the
/// standard chain finds nothing but the instance role (which exists only on EC2).
pub fn describe_source(cfg: &AwsConfig, env: &Env) -> (String, Option<String>) {
    match cfg.credentials {
        CredentialsMode::Static => match &cfg.credentials_file {
            Some(p) => (format!("static, from aws.credentials_file {}", p.display()), None),
            None if env.var("AWS_ACCESS_KEY_ID").is_some()
                && env.var("AWS_SECRET_ACCESS_KEY").is_some() =>
            {
                ("static, from AWS_ACCESS_KEY_ID".into(), None)
            }
            None => (
                "static, from AWS_ACCESS_KEY_ID (unset)".into(),
                Some("aws.credentials = \"static\" without credentials_file, and AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY are not both set: every AWS call will fail; set them, set aws.credentials_file, or remove the credentials key to use the standard chain".into()),
            ),
        },
        CredentialsMode::InstanceRole => {
            let endpoint = imds_endpoint(cfg).unwrap_or_else(|e| e);
            (
                format!("instance role, from the metadata service at {endpoint} (not contacted by check)"),
                None,
            )
        }
        CredentialsMode::Chain => {
            if env.var("AWS_ACCESS_KEY_ID").is_some() && env.var("AWS_SECRET_ACCESS_KEY").is_some()
            {
                return (
                    "standard chain: environment (AWS_ACCESS_KEY_ID)".into(),
                    None,
                );
            }
            let profile = cfg
                .profile
                .clone()
                .or_else(|| env.var("AWS_PROFILE").map(str::to_string));
            let config_file = env
                .var("AWS_CONFIG_FILE")
                .map(PathBuf::from)
                .or_else(|| env.home.as_ref().map(|h| h.join(".aws/config")));
            let creds_file = env
                .var("AWS_SHARED_CREDENTIALS_FILE")
                .map(PathBuf::from)
                .or_else(|| env.home.as_ref().map(|h| h.join(".aws/credentials")));
            let mut found: Vec<String> = Vec::new();
            if let Some(f) = &config_file {
                found.extend(profiles_in(f, true));
            }
            if let Some(f) = &creds_file {
                found.extend(profiles_in(f, false));
            }
            let files = [config_file, creds_file]
                .iter()
                .flatten()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(" and ");
            if let Some(p) = &profile {
                let via = if cfg.profile.is_some() {
                    "aws.profile"
                } else {
                    "AWS_PROFILE"
                };
                if found.iter().any(|f| f == p) {
                    return (format!("standard chain: profile `{p}` ({via}) from {files}"), None);
                }
                return (
                    format!("standard chain: profile `{p}` ({via})"),
                    Some(format!("profile `{p}` is not in {files}: every AWS call will fail; add it (aws configure --profile {p}, or aws configure sso) or name another")),
                );
            }
            if found.iter().any(|f| f == "default") {
                return (
                    format!("standard chain: profile `default` from {files}"),
                    None,
                );
            }
            if env.var("AWS_WEB_IDENTITY_TOKEN_FILE").is_some() && env.var("AWS_ROLE_ARN").is_some()
            {
                return (
                    "standard chain: web identity (AWS_WEB_IDENTITY_TOKEN_FILE, AWS_ROLE_ARN)"
                        .into(),
                    None,
                );
            }
            if env.var("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI").is_some()
                || env.var("AWS_CONTAINER_CREDENTIALS_FULL_URI").is_some()
            {
                return ("standard chain: the container role (ECS)".into(), None);
            }
            (
                "standard chain: the EC2 instance role (nothing else found)".into(),
                Some(format!("no AWS credentials found in the environment (AWS_ACCESS_KEY_ID), a profile (AWS_PROFILE, aws.profile, [default] in {files}), web identity or a container role; only the EC2 instance role is left, which exists only on an EC2 instance with an instance profile: elsewhere every AWS call will fail. Set AWS_PROFILE or aws.profile, or export keys")),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn aws(mode: CredentialsMode) -> AwsConfig {
        AwsConfig {
            region: "us-east-1".into(),
            endpoint: None,
            credentials_file: None,
            credentials: mode,
            profile: None,
            imds_endpoint: None,
            timeout_ms: 1000,
            ca_file: None,
        }
    }

    fn env(vars: &[(&str, &str)], home: Option<&Path>) -> Env {
        Env {
            vars: vars
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            home: home.map(Path::to_path_buf),
        }
    }

    #[test]
    fn chain_names_its_source_and_warns_when_none() {
        let c = aws(CredentialsMode::Chain);
        let (what, warn) = describe_source(&c, &env(&[], None));
        assert_eq!(
            what,
            "standard chain: the EC2 instance role (nothing else found)"
        );
        assert!(warn.unwrap().contains("no AWS credentials found"));

        let (what, warn) = describe_source(
            &c,
            &env(
                &[
                    ("AWS_ACCESS_KEY_ID", "AKIA"),
                    ("AWS_SECRET_ACCESS_KEY", "s"),
                ],
                None,
            ),
        );
        assert_eq!(what, "standard chain: environment (AWS_ACCESS_KEY_ID)");
        assert!(warn.is_none());

        let dir = std::env::temp_dir().join(format!("nectr-creds-{}", std::process::id()));
        std::fs::create_dir_all(dir.join(".aws")).unwrap();
        std::fs::write(
            dir.join(".aws/config"),
            "[default]\nregion = us-east-1\n[profile ci]\nsso_session = x\n",
        )
        .unwrap();
        let (what, warn) = describe_source(&c, &env(&[], Some(&dir)));
        assert!(
            what.starts_with("standard chain: profile `default` from "),
            "{what}"
        );
        assert!(warn.is_none());
        let (what, warn) = describe_source(&c, &env(&[("AWS_PROFILE", "ci")], Some(&dir)));
        assert!(
            what.starts_with("standard chain: profile `ci` (AWS_PROFILE)"),
            "{what}"
        );
        assert!(warn.is_none());
        let mut c2 = c.clone();
        c2.profile = Some("nope".into());
        let (what, warn) = describe_source(&c2, &env(&[], Some(&dir)));
        assert_eq!(what, "standard chain: profile `nope` (aws.profile)");
        assert!(warn.unwrap().contains("profile `nope` is not in"));
        std::fs::remove_dir_all(&dir).unwrap();

        let (what, _) = describe_source(
            &c,
            &env(
                &[
                    ("AWS_WEB_IDENTITY_TOKEN_FILE", "/t"),
                    ("AWS_ROLE_ARN", "arn:aws:iam::1:role/r"),
                ],
                None,
            ),
        );
        assert!(what.contains("web identity"), "{what}");
    }

    #[test]
    fn static_without_keys_warns_instead_of_claiming_them() {
        let c = aws(CredentialsMode::Static);
        let (what, warn) = describe_source(&c, &env(&[], None));
        assert_eq!(what, "static, from AWS_ACCESS_KEY_ID (unset)");
        assert!(warn.unwrap().contains("every AWS call will fail"));
    }
}
