//! The AWS SDK plumbing shared by the EC2, SSM and S3 clients: one tokio runtime that every
//! blocking [`CloudProvider`](super::CloudProvider) call enters, the SDK configuration built
//! from `[aws]` (region, endpoint override, timeouts, retries, credentials, extra CA), and the
//! translation of SDK errors into [`CloudError`]s. No SDK type leaves `cloud/`.

use super::credentials::SharedCredentials;
use super::{CloudError, CloudErrorKind};
use crate::config::AwsConfig;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_ec2::error::{ProvideErrorMetadata, SdkError};
use std::future::Future;
use std::sync::OnceLock;
use std::time::Duration;

/// Attempts per call (the first included) for the SDK's retries of throttling, 5xx and
/// transient network errors. All attempts fit in one `aws.timeout`.
pub const MAX_ATTEMPTS: u32 = 3;

fn runtime() -> Result<&'static tokio::runtime::Runtime, CloudError> {
    static RT: OnceLock<Result<tokio::runtime::Runtime, String>> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("nectr-aws")
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start the AWS client's runtime: {e}"))
    })
    .as_ref()
    .map_err(|e| CloudError {
        kind: CloudErrorKind::Other,
        code: "Runtime".into(),
        message: e.clone(),
    })
}

/// Run one SDK future to completion from the fleet's (blocking) threads. Several threads may
/// be in here at once (launches run in parallel).
pub(crate) fn block_on<F: Future>(f: F) -> Result<F::Output, CloudError> {
    Ok(runtime()?.block_on(f))
}

/// The SDK configuration for `cfg`: the region, the endpoint override (one for every service:
/// moto serves them all on one port), `aws.timeout` as the bound of a whole call (retries
/// included, so nothing is sent after it: the launch ledger's proofs rely on that), adaptive
/// retries, the given credentials, and `aws.ca_file` added to the platform roots.
pub(crate) fn sdk_config(cfg: &AwsConfig, creds: &SharedCredentials) -> Result<SdkConfig, String> {
    let timeout = Duration::from_millis(cfg.timeout_ms);
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new(cfg.region.clone()))
        .credentials_provider(creds.provider.clone())
        .retry_config(RetryConfig::adaptive().with_max_attempts(MAX_ATTEMPTS))
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(timeout.min(Duration::from_secs(5)))
                .operation_attempt_timeout(timeout)
                .operation_timeout(timeout)
                .build(),
        );
    if let Some(e) = &cfg.endpoint {
        loader = loader.endpoint_url(e.trim_end_matches('/'));
    }
    if let Some(path) = &cfg.ca_file {
        // Read and check here, for an error that names the file.
        crate::tls::read_pem_certs(path).map_err(|e| format!("aws.ca_file: {e}"))?;
        let pem = std::fs::read(path)
            .map_err(|e| format!("aws.ca_file: cannot read {}: {e}", path.display()))?;
        use aws_smithy_http_client::tls;
        let ctx = tls::TlsContext::builder()
            .with_trust_store(tls::TrustStore::default().with_pem_certificate(pem))
            .build()
            .map_err(|e| format!("aws.ca_file: {}: {e}", path.display()))?;
        loader = loader.http_client(https_client(Some(ctx)));
    } else {
        loader = loader.http_client(https_client(None));
    }
    block_on(loader.load()).map_err(|e| e.message)
}

/// The SDK's HTTP client on rustls with ring (the crate has no `default-https-client`, so
/// every loader and credential provider is given one), with the platform's roots or `ctx`.
pub(crate) fn https_client(
    ctx: Option<aws_smithy_http_client::tls::TlsContext>,
) -> aws_smithy_runtime_api::client::http::SharedHttpClient {
    use aws_smithy_http_client::tls;
    let b = aws_smithy_http_client::Builder::new().tls_provider(tls::Provider::Rustls(
        tls::rustls_provider::CryptoMode::Ring,
    ));
    match ctx {
        Some(ctx) => b.tls_context(ctx).build_https(),
        None => b.build_https(),
    }
}

/// Where the calls go, for messages.
pub(crate) fn endpoint_for(cfg: &AwsConfig, service: &str) -> String {
    cfg.endpoint
        .clone()
        .unwrap_or_else(|| format!("https://{service}.{}.amazonaws.com/", cfg.region))
}

/// The fleet's classification of an AWS error code.
pub fn classify(code: &str, status: u16) -> CloudErrorKind {
    match code {
        "InsufficientInstanceCapacity"
        | "InsufficientHostCapacity"
        | "InsufficientReservedInstanceCapacity"
        | "InsufficientCapacity"
        | "InsufficientCapacityOnHost"
        | "SpotMaxPriceTooLow"
        | "MaxSpotInstanceCountExceeded"
        | "InstanceLimitExceeded"
        | "VcpuLimitExceeded"
        | "Unsupported"
        | "InsufficientFreeAddressesInSubnet" => CloudErrorKind::Capacity,
        "RequestLimitExceeded"
        | "Throttling"
        | "ThrottlingException"
        | "SlowDown"
        | "TooManyUpdates" => CloudErrorKind::Throttled,
        "AuthFailure"
        | "UnauthorizedOperation"
        | "AccessDenied"
        | "AccessDeniedException"
        | "InvalidClientTokenId"
        | "InvalidAccessKeyId"
        | "SignatureDoesNotMatch"
        | "ExpiredToken"
        | "OptInRequired"
        | "Blocked" => CloudErrorKind::Auth,
        c if c.starts_with("Invalid")
            || c.starts_with("Missing")
            || c.starts_with("ParameterNotFound")
            || c == "ValidationError"
            || c == "ValidationException"
            || c == "IdempotentParameterMismatch" =>
        {
            CloudErrorKind::Invalid
        }
        _ if status == 503 => CloudErrorKind::Throttled,
        _ => CloudErrorKind::Other,
    }
}

/// What a call was, for its error: the action, where it went, where the keys came from.
pub(crate) struct Call<'a> {
    pub action: &'a str,
    pub endpoint: &'a str,
    pub creds: &'a SharedCredentials,
    pub timeout_ms: u64,
}

fn is_credentials_error(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(x) = cur {
        if x.is::<aws_credential_types::provider::error::CredentialsError>() {
            return true;
        }
        cur = x.source();
    }
    false
}

/// The SDK error's causes, each said once (the SDK's `DisplayErrorContext` repeats them and
/// ends with the `Debug` form of the whole error).
fn chain(err: &(dyn std::error::Error + 'static)) -> String {
    crate::util::cause_chain(crate::util::error_messages(err))
}

/// An SDK error as a [`CloudError`]: a service error keeps its code and message; no answer
/// (timeout, connection, unreadable answer) is `Transport`, which says nothing about the
/// outcome; a credential failure says which source failed. The text names the action and
/// what to check, never a key.
pub(crate) fn sdk_error<E>(
    call: &Call<'_>,
    err: SdkError<E, aws_smithy_runtime_api::http::Response>,
) -> CloudError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let action = call.action;
    if is_credentials_error(&err) {
        return CloudError {
            kind: CloudErrorKind::Transport,
            code: "NoCredentials".into(),
            message: format!(
                "{action}: cannot get AWS credentials ({}): {}; check `nectr-fleet check`, the profile, or the instance role",
                call.creds.description(),
                chain(&err)
            ),
        };
    }
    match &err {
        SdkError::ServiceError(se) => {
            let status = se.raw().status().as_u16();
            let code = se
                .err()
                .code()
                .map(str::to_string)
                .unwrap_or_else(|| format!("HTTP{status}"));
            let message = se.err().message().unwrap_or("").to_string();
            let hint = match classify(&code, status) {
                CloudErrorKind::Auth => format!(
                    " (credentials: {}; check the IAM policy in fleet/iam/)",
                    call.creds.description()
                ),
                _ => String::new(),
            };
            CloudError {
                kind: classify(&code, status),
                message: format!("{action}: {message}{hint}"),
                code,
            }
        }
        SdkError::TimeoutError(_) => CloudError {
            kind: CloudErrorKind::Transport,
            code: "Timeout".into(),
            message: format!(
                "{action}: no answer from {} within aws.timeout ({} ms)",
                call.endpoint, call.timeout_ms
            ),
        },
        SdkError::DispatchFailure(_) => CloudError {
            kind: CloudErrorKind::Transport,
            code: "Transport".into(),
            message: format!("{action}: cannot reach {}: {}", call.endpoint, chain(&err)),
        },
        SdkError::ResponseError(_) => CloudError {
            kind: CloudErrorKind::Transport,
            code: "BadResponse".into(),
            message: format!(
                "{action}: the answer from {} could not be read: {}",
                call.endpoint,
                chain(&err)
            ),
        },
        _ => CloudError {
            kind: CloudErrorKind::Other,
            code: "Request".into(),
            message: format!("{action}: {}", chain(&err)),
        },
    }
}
