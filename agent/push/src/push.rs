//! `nectr-agent push`: files to S3.
//!
//! For each file: one read for its checksums ([`crate::digest`]); a HEAD to see whether the
//! same content is already under its key (then nothing is sent); then one PUT, or a
//! multipart upload whose parts go `--parallel` at a time, each with its SHA-256 for S3 to
//! verify. A multipart upload is recorded in the journal before its first part and resumed
//! from there after an interruption. A file is reported `pushed` only after S3 answered the
//! PUT or the CompleteMultipartUpload.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use aws_sdk_s3::primitives::{ByteStream, Length};
use aws_sdk_s3::types::{ChecksumAlgorithm, CompletedMultipartUpload, CompletedPart};
use futures_util::{StreamExt, TryStreamExt};
use indicatif::HumanBytes;
use tokio::sync::Semaphore;

use crate::aws::{not_found, Bucket};
use crate::cli::PushArgs;
use crate::digest::{digest_file, FileDigest};
use crate::journal::{self, Journal};
use crate::keys::{self, Planned};
use crate::layout::Layout;
use crate::manifest::{Entry, Manifest, Status};
use crate::progress::{FileProgress, Progress};
use crate::Failure;

/// The metadata key holding the SHA-256 of the whole file (`x-amz-meta-sha256`).
pub const SHA256_META: &str = "sha256";

/// What a push needs besides the bucket.
struct Ctx {
    bucket: Bucket,
    journal: Journal,
    requests: Semaphore,
    parallel: usize,
    part_size: u64,
    content_type: Option<String>,
    progress: Progress,
}

/// Runs a push. `Err` carries the failure and, once files were known, the manifest saying
/// what happened to each.
pub async fn run(
    args: PushArgs,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Manifest, (Failure, Option<Manifest>)> {
    let cwd = std::env::current_dir()
        .map_err(|e| (Failure::Failed(format!("no current directory: {e}")), None))?;
    let files = keys::find_files(&args.patterns, args.allow_empty).map_err(|f| (f, None))?;
    let plans = keys::plan(&files, &args.key, &args.base, &cwd, env).map_err(|f| (f, None))?;
    let bucket_name = args.common.bucket.clone().unwrap_or_default();
    let progress = Progress::new(args.common.progress, "nectr-agent push");
    let bucket = match Bucket::connect(&args.common).await {
        Ok(b) => b,
        Err(f) => {
            let mut m = Manifest::new("push", &bucket_name, None);
            m.ok = false;
            m.error = Some(f.message().to_string());
            for p in &plans {
                let size = std::fs::metadata(&p.file).map(|m| m.len()).unwrap_or(0);
                m.objects.push(Entry::failed(
                    &p.file.display().to_string(),
                    &p.key,
                    size,
                    "not pushed: see the manifest's error".into(),
                ));
            }
            return Err((f, Some(m)));
        }
    };
    let mut manifest = Manifest::new("push", &bucket.name, Some(bucket.region.clone()));
    if plans.is_empty() {
        progress.summary("no file to push (--allow-empty)");
        return Ok(manifest);
    }
    let total: u64 = plans
        .iter()
        .filter_map(|p| std::fs::metadata(&p.file).ok())
        .map(|m| m.len())
        .sum();
    progress.summary(&format!(
        "{} file(s), {}, to s3://{}/ ({})",
        plans.len(),
        HumanBytes(total),
        bucket.name,
        bucket.url("")
    ));
    let parallel = usize::from(args.common.parallel);
    let ctx = Arc::new(Ctx {
        bucket,
        journal: Journal::locate(args.state_dir.clone(), env),
        requests: Semaphore::new(parallel),
        parallel,
        part_size: args.part_size_mib << 20,
        content_type: args.content_type.clone(),
        progress: progress.clone(),
    });
    let entries: Vec<Entry> = futures_util::stream::iter(plans)
        .map(|p| {
            let ctx = ctx.clone();
            async move { push_file(&ctx, &p).await }
        })
        .buffered(parallel.min(4))
        .collect()
        .await;
    let count = |s: Status| entries.iter().filter(|e| e.status == s).count();
    let (pushed, unchanged, failed) = (
        count(Status::Pushed),
        count(Status::Unchanged),
        count(Status::Failed),
    );
    manifest.objects = entries;
    progress.summary(&format!(
        "{pushed} pushed, {unchanged} already there, {failed} failed"
    ));
    if failed > 0 {
        manifest.ok = false;
        let msg = format!("{failed} of {} file(s) not pushed", manifest.objects.len());
        manifest.error = Some(msg.clone());
        return Err((Failure::Failed(msg), Some(manifest)));
    }
    Ok(manifest)
}

async fn push_file(ctx: &Ctx, plan: &Planned) -> Entry {
    let path = plan.file.display().to_string();
    let started = Instant::now();
    let result = push_one(ctx, plan, &path).await;
    match result {
        Ok(e) => {
            let what = match e.status {
                Status::Unchanged => "already there:".to_string(),
                _ => {
                    let secs = started.elapsed().as_secs_f64().max(0.001);
                    let mut s = format!(
                        "pushed {path} -> {} ({}",
                        e.s3_uri.as_deref().unwrap_or_default(),
                        HumanBytes(e.size)
                    );
                    if let Some(p) = e.parts.filter(|p| *p > 1) {
                        s.push_str(&format!(", {p} parts"));
                    }
                    if let Some(r) = e.resumed_parts.filter(|r| *r > 0) {
                        s.push_str(&format!(", {r} resumed"));
                    }
                    s.push_str(&format!(
                        ", {}/s)",
                        HumanBytes((e.size as f64 / secs) as u64)
                    ));
                    ctx.progress.summary(&s);
                    return e;
                }
            };
            ctx.progress.summary(&format!(
                "{what} {path} = {}",
                e.s3_uri.as_deref().unwrap_or_default()
            ));
            e
        }
        Err(e) => {
            ctx.progress.summary(&format!(
                "FAILED {path}: {}",
                e.error.as_deref().unwrap_or_default()
            ));
            e
        }
    }
}

/// Pushes one file; `Err` is the manifest entry of a failure.
async fn push_one(ctx: &Ctx, plan: &Planned, path: &str) -> Result<Entry, Entry> {
    let fail = |size: u64, msg: String| Entry::failed(path, &plan.key, size, msg);
    let size = std::fs::metadata(&plan.file)
        .map_err(|e| fail(0, format!("{path}: {e}")))?
        .len();
    // Resume with the part size the interrupted upload used.
    let recorded = ctx
        .journal
        .load(&ctx.bucket.name, &plan.key)
        .filter(|(j, _)| j.size == size);
    let wanted = recorded
        .as_ref()
        .map_or(ctx.part_size, |(j, _)| j.part_size);
    let layout = Layout::new(size, wanted).map_err(|e| fail(size, format!("{path}: {e}")))?;
    let fp = ctx.progress.file(path, size);
    fp.phase("checksum");
    let digest = {
        let file = plan.file.clone();
        let fp = fp.clone();
        tokio::task::spawn_blocking(move || digest_file(&file, &layout, &mut |n| fp.hashed(n)))
            .await
            .map_err(|e| fail(size, format!("{path}: {e}")))?
            .map_err(|e| fail(size, format!("reading {path}: {e}")))?
    };
    fp.reset();
    fp.phase("upload");
    let content_type = ctx.content_type.clone().unwrap_or_else(|| {
        mime_guess::from_path(&plan.file)
            .first_or_octet_stream()
            .essence_str()
            .to_string()
    });
    let mut entry = Entry::new(path, &plan.key, Status::Pushed, size);
    entry.sha256 = Some(digest.sha256_hex.clone());
    entry.content_type = Some(content_type.clone());
    entry.s3_uri = Some(ctx.bucket.s3_uri(&plan.key));
    let failed = |msg: String| {
        let mut e = Entry::failed(path, &plan.key, size, msg);
        e.sha256 = Some(digest.sha256_hex.clone());
        e
    };

    // The same content already there: nothing to send.
    let head = ctx
        .bucket
        .client
        .head_object()
        .bucket(&ctx.bucket.name)
        .key(&plan.key)
        .send()
        .await;
    match head {
        Ok(h) => {
            let same_size = h.content_length() == Some(size as i64);
            let same_hash = h
                .metadata()
                .and_then(|m| m.get(SHA256_META))
                .is_some_and(|s| s.eq_ignore_ascii_case(&digest.sha256_hex));
            if same_size && same_hash {
                fp.finish();
                entry.status = Status::Unchanged;
                entry.url = Some(ctx.bucket.url(&plan.key));
                entry.etag = h.e_tag().map(str::to_string);
                entry.version_id = h.version_id().map(str::to_string);
                return Ok(entry);
            }
        }
        Err(e) if not_found(&e) => {}
        Err(e) => {
            fp.finish();
            return Err(failed(
                ctx.bucket.explain(&e, &format!("checking {}", plan.key)),
            ));
        }
    }

    let result = if layout.single() {
        put_single(ctx, plan, size, &digest, &content_type, &fp).await
    } else {
        put_multipart(ctx, plan, &layout, &digest, &content_type, recorded, &fp).await
    };
    fp.finish();
    match result {
        Ok(done) => {
            entry.url = Some(ctx.bucket.url(&plan.key));
            entry.etag = done.etag;
            entry.version_id = done.version_id;
            entry.parts = Some(layout.count);
            entry.resumed_parts = Some(done.resumed);
            Ok(entry)
        }
        Err(msg) => Err(failed(msg)),
    }
}

struct Done {
    etag: Option<String>,
    version_id: Option<String>,
    resumed: u64,
}

/// The body of one request: `len` bytes of `file` from `offset`, streamed from the file (and
/// read again if the SDK retries), so memory stays small whatever the part size. They go
/// with the checksum of the first read: if the file changed since, S3 refuses the part
/// (BadDigest) rather than storing something that matches neither.
async fn part_body(file: &Path, offset: u64, len: u64) -> Result<ByteStream, String> {
    ByteStream::read_from()
        .path(file)
        .offset(offset)
        .length(Length::Exact(len))
        .build()
        .await
        .map_err(|e| format!("reading {}: {e}", file.display()))
}

async fn put_single(
    ctx: &Ctx,
    plan: &Planned,
    size: u64,
    digest: &FileDigest,
    content_type: &str,
    fp: &FileProgress,
) -> Result<Done, String> {
    let _permit = ctx.requests.acquire().await.map_err(|e| e.to_string())?;
    let body = part_body(&plan.file, 0, size).await?;
    let out = ctx
        .bucket
        .client
        .put_object()
        .bucket(&ctx.bucket.name)
        .key(&plan.key)
        .content_type(content_type)
        .content_length(size as i64)
        .metadata(SHA256_META, &digest.sha256_hex)
        .checksum_sha256(&digest.parts[0].sha256_b64)
        .body(body)
        .send()
        .await
        .map_err(|e| ctx.bucket.explain(&e, &format!("uploading {}", plan.key)))?;
    fp.add(size);
    Ok(Done {
        etag: out.e_tag().map(str::to_string),
        version_id: out.version_id().map(str::to_string),
        resumed: 0,
    })
}

async fn put_multipart(
    ctx: &Ctx,
    plan: &Planned,
    layout: &Layout,
    digest: &FileDigest,
    content_type: &str,
    recorded: Option<(journal::Entry, Vec<journal::Part>)>,
    fp: &FileProgress,
) -> Result<Done, String> {
    let bucket = ctx.bucket.name.as_str();
    let key = plan.key.as_str();
    if let Some((rec, parts)) = recorded {
        if rec.sha256 == digest.sha256_hex && rec.part_size == layout.part_size {
            let kept: Vec<journal::Part> = parts
                .into_iter()
                .filter(|p| {
                    p.number >= 1
                        && p.number as u64 <= layout.count
                        && p.sha256 == digest.parts[p.number as usize - 1].sha256_b64
                })
                .collect();
            ctx.progress.line(&format!(
                "{}: resuming the interrupted upload: {} of {} parts already in S3",
                plan.file.display(),
                kept.len(),
                layout.count
            ));
            match upload_parts(ctx, plan, layout, digest, &rec.upload_id, kept, fp).await {
                Err(Upload::Gone) => {
                    // Aborted meanwhile (a lifecycle rule): start over, once.
                    ctx.progress.line(&format!(
                        "{}: the interrupted upload no longer exists in S3; starting over",
                        plan.file.display()
                    ));
                    ctx.journal.remove(bucket, key);
                    fp.reset();
                }
                other => return other.map_err(Upload::into_message),
            }
        } else {
            // Another file was being uploaded to this key: that upload can never be completed.
            let _ = ctx
                .bucket
                .client
                .abort_multipart_upload()
                .bucket(bucket)
                .key(key)
                .upload_id(&rec.upload_id)
                .send()
                .await;
            ctx.journal.remove(bucket, key);
        }
    }
    let out = ctx
        .bucket
        .client
        .create_multipart_upload()
        .bucket(bucket)
        .key(key)
        .content_type(content_type)
        .metadata(SHA256_META, &digest.sha256_hex)
        .checksum_algorithm(ChecksumAlgorithm::Sha256)
        .send()
        .await
        .map_err(|e| {
            ctx.bucket
                .explain(&e, &format!("starting the upload of {key}"))
        })?;
    let id = out
        .upload_id()
        .ok_or_else(|| format!("starting the upload of {key}: S3 gave no upload id"))?
        .to_string();
    let rec = journal::Entry {
        bucket: bucket.to_string(),
        key: key.to_string(),
        upload_id: id.clone(),
        sha256: digest.sha256_hex.clone(),
        size: layout.size,
        part_size: layout.part_size,
    };
    if let Err(e) = ctx.journal.start(&rec) {
        ctx.progress.line(&format!(
            "warning: cannot record the upload in {} ({e}): an interruption will start it over",
            ctx.journal.dir().display()
        ));
    }
    upload_parts(ctx, plan, layout, digest, &id, Vec::new(), fp)
        .await
        .map_err(Upload::into_message)
}

/// Why sending the parts of an upload stopped.
enum Upload {
    /// S3 no longer knows the upload (NoSuchUpload).
    Gone,
    Failed(String),
}

impl Upload {
    fn into_message(self) -> String {
        match self {
            Upload::Gone => "the upload was aborted in S3 while it was being sent".into(),
            Upload::Failed(m) => m,
        }
    }
}

fn no_such_upload<E, R>(e: &aws_sdk_s3::error::SdkError<E, R>) -> bool
where
    E: aws_sdk_s3::error::ProvideErrorMetadata,
{
    e.as_service_error().and_then(|s| s.code()) == Some("NoSuchUpload")
}

/// Sends the parts not in `kept`, `--parallel` at a time, recording each one S3 accepts,
/// then completes the upload.
async fn upload_parts(
    ctx: &Ctx,
    plan: &Planned,
    layout: &Layout,
    digest: &FileDigest,
    upload_id: &str,
    kept: Vec<journal::Part>,
    fp: &FileProgress,
) -> Result<Done, Upload> {
    let s3 = &ctx.bucket.client;
    let bucket = ctx.bucket.name.as_str();
    let key = plan.key.as_str();
    let resumed = kept.len() as u64;
    for p in &kept {
        fp.skip(layout.part(p.number as u64 - 1).1);
    }
    let held: std::collections::HashSet<i32> = kept.iter().map(|p| p.number).collect();
    let missing: Vec<u64> = (0..layout.count)
        .filter(|i| !held.contains(&(*i as i32 + 1)))
        .collect();
    let sent: Vec<journal::Part> = futures_util::stream::iter(missing)
        .map(|i| async move {
            let (offset, len) = layout.part(i);
            let want = &digest.parts[i as usize];
            let _permit = ctx
                .requests
                .acquire()
                .await
                .map_err(|e| Upload::Failed(e.to_string()))?;
            let body = part_body(&plan.file, offset, len)
                .await
                .map_err(Upload::Failed)?;
            let n = i as i32 + 1;
            let out = s3
                .upload_part()
                .bucket(bucket)
                .key(key)
                .upload_id(upload_id)
                .part_number(n)
                .content_length(len as i64)
                .checksum_sha256(&want.sha256_b64)
                .body(body)
                .send()
                .await
                .map_err(|e| {
                    if no_such_upload(&e) {
                        return Upload::Gone;
                    }
                    Upload::Failed(format!(
                        "{}; the upload stays open and the next push of this file resumes it",
                        ctx.bucket
                            .explain(&e, &format!("part {n} of {} of {key}", layout.count))
                    ))
                })?;
            let part = journal::Part {
                number: n,
                etag: out
                    .e_tag()
                    .ok_or_else(|| Upload::Failed(format!("part {n} of {key}: S3 gave no ETag")))?
                    .to_string(),
                sha256: want.sha256_b64.clone(),
            };
            let _ = ctx.journal.add_part(bucket, key, &part);
            fp.add(len);
            Ok::<journal::Part, Upload>(part)
        })
        .buffer_unordered(ctx.parallel)
        .try_collect()
        .await?;
    let mut parts: Vec<journal::Part> = kept.into_iter().chain(sent).collect();
    parts.sort_by_key(|p| p.number);
    let completed = CompletedMultipartUpload::builder()
        .set_parts(Some(
            parts
                .into_iter()
                .map(|p| {
                    CompletedPart::builder()
                        .part_number(p.number)
                        .e_tag(p.etag)
                        .checksum_sha256(p.sha256)
                        .build()
                })
                .collect(),
        ))
        .build();
    let out = s3
        .complete_multipart_upload()
        .bucket(bucket)
        .key(key)
        .upload_id(upload_id)
        .multipart_upload(completed)
        .send()
        .await
        .map_err(|e| {
            if no_such_upload(&e) {
                return Upload::Gone;
            }
            Upload::Failed(
                ctx.bucket
                    .explain(&e, &format!("completing the upload of {key}")),
            )
        })?;
    ctx.journal.remove(bucket, key);
    Ok(Done {
        etag: out.e_tag().map(str::to_string),
        version_id: out.version_id().map(str::to_string),
        resumed,
    })
}
