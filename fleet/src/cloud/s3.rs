//! One S3 object with conditional writes (path-style, through the AWS SDK). It stores the
//! leader lease; nothing else in the fleet uses S3.

use super::aws::{block_on, endpoint_for, sdk_config, sdk_error, Call};
use super::credentials::SharedCredentials;
use super::{CloudError, CloudErrorKind};
use crate::config::AwsConfig;

/// The most the lease object may hold.
const MAX_OBJECT: i64 = 1 << 20;

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
    client: aws_sdk_s3::Client,
    bucket: String,
    key: String,
    endpoint: String,
    creds: SharedCredentials,
    timeout_ms: u64,
}

impl std::fmt::Debug for S3Object {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Object")
            .field("bucket", &self.bucket)
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

impl S3Object {
    /// The object `bucket`/`key`, reached through `cfg`'s region, endpoint, timeout and CA.
    pub fn new(
        cfg: &AwsConfig,
        bucket: &str,
        key: &str,
        creds: impl Into<SharedCredentials>,
    ) -> Result<Self, String> {
        let creds = creds.into();
        let shared = sdk_config(cfg, &creds)?;
        let conf = aws_sdk_s3::config::Builder::from(&shared)
            .force_path_style(true)
            .build();
        Ok(S3Object {
            client: aws_sdk_s3::Client::from_conf(conf),
            bucket: bucket.to_string(),
            key: key.to_string(),
            endpoint: endpoint_for(cfg, "s3"),
            creds,
            timeout_ms: cfg.timeout_ms,
        })
    }

    fn call<'a>(&'a self, action: &'a str) -> Call<'a> {
        Call {
            action,
            endpoint: &self.endpoint,
            creds: &self.creds,
            timeout_ms: self.timeout_ms,
        }
    }

    fn named(&self, mut e: CloudError) -> CloudError {
        e.message = format!("{} (s3://{}/{})", e.message, self.bucket, self.key);
        e
    }

    /// The object and its ETag, or `None` if it does not exist.
    pub fn get(&self) -> Result<Option<(Vec<u8>, String)>, CloudError> {
        let call = self.call("S3 GetObject");
        block_on(async {
            let out = match self
                .client
                .get_object()
                .bucket(&self.bucket)
                .key(&self.key)
                .send()
                .await
            {
                Ok(out) => out,
                Err(e) => {
                    if e.as_service_error().is_some_and(|s| s.is_no_such_key()) {
                        return Ok(None);
                    }
                    return Err(self.named(sdk_error(&call, e)));
                }
            };
            if out.content_length().unwrap_or(0) > MAX_OBJECT {
                return Err(self.named(CloudError {
                    kind: CloudErrorKind::Other,
                    code: "TooLarge".into(),
                    message: "S3 GetObject: the object is larger than 1 MiB: it is not a lease"
                        .into(),
                }));
            }
            let etag = out.e_tag().unwrap_or("").to_string();
            let body = out.body.collect().await.map_err(|e| {
                self.named(CloudError {
                    kind: CloudErrorKind::Transport,
                    code: "ReadError".into(),
                    message: format!("S3 GetObject: reading the object failed: {e}"),
                })
            })?;
            Ok(Some((body.into_bytes().to_vec(), etag)))
        })?
    }

    pub fn put(&self, body: &[u8], cond: &PutCondition) -> Result<PutOutcome, CloudError> {
        let call = self.call("S3 PutObject");
        let mut req = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(&self.key)
            .content_type("application/json")
            .body(body.to_vec().into());
        req = match cond {
            PutCondition::Absent => req.if_none_match("*"),
            PutCondition::Matches(etag) => req.if_match(etag),
        };
        match block_on(req.send())? {
            Ok(out) => Ok(PutOutcome::Written {
                etag: out.e_tag().unwrap_or("").to_string(),
            }),
            Err(e) => {
                let status = e.raw_response().map(|r| r.status().as_u16());
                if matches!(status, Some(412) | Some(409)) {
                    return Ok(PutOutcome::Conflict);
                }
                Err(self.named(sdk_error(&call, e)))
            }
        }
    }

    /// Create the bucket (tests; in production the bucket already exists).
    pub fn create_bucket(&self) -> Result<(), CloudError> {
        let call = self.call("S3 CreateBucket");
        block_on(self.client.create_bucket().bucket(&self.bucket).send())?
            .map(|_| ())
            .map_err(|e| self.named(sdk_error(&call, e)))
    }
}
