//! The S3 client: the standard AWS configuration chain, rustls on ring, retries with
//! backoff, path-style addressing where virtual-hosted cannot work; and errors a person can
//! act on. No AWS type leaves this module and the two commands.

use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region};
use aws_sdk_s3::config::ProvideCredentials;
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_smithy_http_client::tls;

use crate::cli::Common;
use crate::Failure;

/// A connected bucket.
#[derive(Clone)]
pub struct Bucket {
    pub client: aws_sdk_s3::Client,
    pub name: String,
    pub region: String,
    /// The endpoint override (`--endpoint-url` or `AWS_ENDPOINT_URL`), if any.
    pub endpoint: Option<String>,
    pub path_style: bool,
}

impl Bucket {
    /// Loads the configuration from the standard chain (with `--region`, `--endpoint-url`
    /// on top), checks that there are credentials and a region, and that the bucket exists
    /// and can be reached, so that every later error is about one object.
    pub async fn connect(common: &Common) -> Result<Bucket, Failure> {
        let name = common.bucket.clone().ok_or_else(|| {
            Failure::Usage("no bucket: give --bucket BUCKET or set NECTR_PUSH_BUCKET".into())
        })?;
        if name.is_empty() || name.contains('/') {
            return Err(Failure::Usage(format!(
                "{name:?} is not a bucket name (give the name alone, without s3:// or a key)"
            )));
        }
        let http = aws_smithy_http_client::Builder::new()
            .tls_provider(tls::Provider::Rustls(
                tls::rustls_provider::CryptoMode::Ring,
            ))
            .build_https();
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .http_client(http)
            .retry_config(
                RetryConfig::standard()
                    .with_max_attempts(common.retries)
                    .with_initial_backoff(Duration::from_millis(500))
                    .with_max_backoff(Duration::from_secs(20)),
            )
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(10))
                    .build(),
            );
        if let Some(r) = &common.region {
            loader = loader.region(Region::new(r.clone()));
        }
        if let Some(e) = &common.endpoint_url {
            loader = loader.endpoint_url(e);
        }
        let sdk = loader.load().await;
        let region = sdk.region().map(|r| r.to_string()).ok_or_else(|| {
            Failure::Failed(
                "no AWS region: set AWS_REGION or give --region (on EC2 the instance's own region is used)"
                    .into(),
            )
        })?;
        let creds = sdk
            .credentials_provider()
            .ok_or_else(|| Failure::Failed("no AWS credentials provider is configured".into()))?;
        if let Err(e) = creds.provide_credentials().await {
            // The chain's own Display texts only: its Debug forms carry raw responses, such
            // as an IMDS session token.
            return Err(Failure::Failed(format!(
                "no AWS credentials: the standard chain found none (environment \
                 AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE and ~/.aws, web identity, \
                 ECS, the EC2 instance role through IMDS): {}",
                source_chain(&e)
            )));
        }
        let endpoint = sdk.endpoint_url().map(str::to_string);
        let path_style =
            common.path_style || endpoint.is_some() || !crate::url::virtual_hostable(&name);
        let conf = aws_sdk_s3::config::Builder::from(&sdk)
            .force_path_style(path_style)
            .build();
        let bucket = Bucket {
            client: aws_sdk_s3::Client::from_conf(conf),
            name,
            region,
            endpoint,
            path_style,
        };
        if let Err(e) = bucket
            .client
            .head_bucket()
            .bucket(&bucket.name)
            .send()
            .await
        {
            return Err(Failure::Failed(bucket.explain(&e, "reaching the bucket")));
        }
        Ok(bucket)
    }

    /// `s3://bucket/key`.
    pub fn s3_uri(&self, key: &str) -> String {
        format!("s3://{}/{key}", self.name)
    }

    /// The object's https URL.
    pub fn url(&self, key: &str) -> String {
        crate::url::object_url(
            self.endpoint.as_deref(),
            &self.region,
            &self.name,
            key,
            self.path_style,
        )
    }

    /// One line saying what went wrong with `what` and what to do about it.
    pub fn explain<E, R>(&self, err: &SdkError<E, R>, what: &str) -> String
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
        R: std::fmt::Debug + HttpStatus,
    {
        let status = err.raw_response().map(|r| r.status());
        let code = err.as_service_error().and_then(|e| e.code());
        let b = &self.name;
        match (code, status) {
            (Some("NoSuchBucket"), _) | (_, Some(404)) if what == "reaching the bucket" => {
                format!(
                    "the bucket {b} does not exist (looked for in {}, region {}): create it, or check --bucket / NECTR_PUSH_BUCKET",
                    self.endpoint.as_deref().unwrap_or("AWS"),
                    self.region
                )
            }
            (Some("NoSuchBucket"), _) => format!("{what}: the bucket {b} does not exist"),
            (Some("AccessDenied" | "Forbidden"), _) | (_, Some(403)) => format!(
                "{what}: access denied by S3: the credentials in use need the S3 permission for \
                 it on {b} (jenkins-config/iam/agent-role-policy.json lists what the build \
                 machines need)"
            ),
            (Some("PermanentRedirect" | "AuthorizationHeaderMalformed"), _) | (_, Some(301)) => {
                format!(
                    "{what}: the bucket {b} is not in region {}: give --region (or AWS_REGION) of the bucket",
                    self.region
                )
            }
            (Some("BadDigest" | "InvalidDigest" | "XAmzContentSHA256Mismatch"), _) => format!(
                "{what}: S3 found that the bytes it received do not match their checksum (did \
                 the file change while it was being pushed?); nothing was stored"
            ),
            (Some("InvalidAccessKeyId" | "SignatureDoesNotMatch" | "ExpiredToken"), _) => {
                format!(
                    "{what}: S3 refused the credentials ({}): check the key, its secret and the session token",
                    code.unwrap_or_default()
                )
            }
            _ => format!("{what}: {}", brief(err, self.endpoint.as_deref())),
        }
    }
}

/// One line for an SDK error: S3's status, code and message, or what kept the request from
/// getting an answer (the SDK's `Debug` and `DisplayErrorContext` forms carry whole raw
/// responses).
fn brief<E, R>(err: &SdkError<E, R>, endpoint: Option<&str>) -> String
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug + HttpStatus,
{
    use std::error::Error as _;
    let cause = || err.source().map(source_chain).unwrap_or_default();
    match err {
        SdkError::ServiceError(s) => {
            let status = s.raw().status();
            match (s.err().code(), s.err().message()) {
                (Some(c), Some(m)) => format!("S3 answered {status} {c}: {m}"),
                (Some(c), None) => format!("S3 answered {status} {c}"),
                _ => format!("S3 answered {status}: {}", cause()),
            }
        }
        SdkError::TimeoutError(_) => "S3 did not answer in time (after the retries)".into(),
        SdkError::DispatchFailure(_) => format!(
            "cannot reach S3{} (after the retries): {}",
            endpoint.map(|e| format!(" at {e}")).unwrap_or_default(),
            cause()
        ),
        SdkError::ResponseError(_) => format!("unreadable answer from S3: {}", cause()),
        SdkError::ConstructionFailure(_) => format!("cannot build the request: {}", cause()),
        other => DisplayErrorContext(other).to_string(),
    }
}

/// An error and its sources, joined with `: `.
fn source_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        let t = s.to_string();
        if !out.contains(&t) {
            out.push_str(": ");
            out.push_str(&t);
        }
        cur = s.source();
    }
    out
}

/// The HTTP status of a raw response, whatever the response type.
pub trait HttpStatus {
    fn status(&self) -> u16;
}

impl HttpStatus for aws_smithy_runtime_api::http::Response {
    fn status(&self) -> u16 {
        aws_smithy_runtime_api::http::Response::status(self).as_u16()
    }
}

/// True if `err` is S3 saying there is no such object (or upload).
pub fn not_found<E, R>(err: &SdkError<E, R>) -> bool
where
    E: ProvideErrorMetadata,
    R: HttpStatus,
{
    matches!(
        err.as_service_error().and_then(|e| e.code()),
        Some("NotFound" | "NoSuchKey" | "NoSuchUpload")
    ) || err.raw_response().map(|r| r.status()) == Some(404)
}
