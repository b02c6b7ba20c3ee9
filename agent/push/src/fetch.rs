//! `nectr-agent fetch`: objects from S3 to files.
//!
//! Each object is streamed into a temporary file beside its destination, hashed on the way,
//! and renamed over the destination only when its size and (when the object carries
//! `x-amz-meta-sha256`) its SHA-256 match; a failure leaves no partial file behind.

use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use aws_sdk_s3::types::ChecksumMode;
use futures_util::StreamExt;
use sha2::Digest as _;
use tokio::io::AsyncWriteExt;

use crate::aws::{not_found, Bucket};
use crate::cli::FetchArgs;
use crate::keys;
use crate::manifest::{Entry, Manifest, Status};
use crate::progress::Progress;
use crate::push::SHA256_META;
use crate::Failure;

/// One object to fetch.
#[derive(Debug, Clone)]
struct Wanted {
    key: String,
    dest: PathBuf,
    size: u64,
}

/// Runs a fetch. `Err` carries the failure and, once objects were listed, the manifest.
pub async fn run(
    args: FetchArgs,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Manifest, (Failure, Option<Manifest>)> {
    let patterns: Vec<String> = args
        .patterns
        .iter()
        .map(|p| keys::expand(p, &[], env))
        .collect::<Result<_, _>>()
        .map_err(|e| (Failure::Usage(e), None))?;
    for p in &patterns {
        glob::Pattern::new(p)
            .map_err(|e| (Failure::Usage(format!("bad pattern {p:?}: {e}")), None))?;
    }
    let bucket_name = args.common.bucket.clone().unwrap_or_default();
    let progress = Progress::new(args.common.progress, "nectr-agent fetch");
    let bucket = Bucket::connect(&args.common).await.map_err(|f| {
        let mut m = Manifest::new("fetch", &bucket_name, None);
        m.ok = false;
        m.error = Some(f.message().to_string());
        (f, Some(m))
    })?;
    let mut manifest = Manifest::new("fetch", &bucket.name, Some(bucket.region.clone()));
    let mut wanted = Vec::new();
    let mut problems = Vec::new();
    for p in &patterns {
        match resolve(&bucket, p, &args.to).await {
            Ok(ws) if ws.is_empty() => problems.push(Entry::failed(
                "",
                p,
                0,
                format!("no object matches {}", bucket.s3_uri(p)),
            )),
            Ok(ws) => wanted.extend(ws),
            Err(e) => problems.push(Entry::failed("", p, 0, e)),
        }
    }
    for e in &problems {
        progress.summary(&format!(
            "FAILED {}: {}",
            e.key,
            e.error.as_deref().unwrap_or_default()
        ));
    }
    let bucket = Arc::new(bucket);
    let parallel = usize::from(args.common.parallel);
    let fetched: Vec<Entry> = futures_util::stream::iter(wanted)
        .map(|w| {
            let bucket = bucket.clone();
            let progress = progress.clone();
            async move { fetch_one(&bucket, &w, &progress).await }
        })
        .buffered(parallel)
        .collect()
        .await;
    manifest.objects = fetched;
    manifest.objects.extend(problems);
    let failed = manifest
        .objects
        .iter()
        .filter(|e| e.status == Status::Failed)
        .count();
    let count = |s: Status| manifest.objects.iter().filter(|e| e.status == s).count();
    progress.summary(&format!(
        "{} fetched, {} already here, {failed} failed",
        count(Status::Fetched),
        count(Status::Unchanged)
    ));
    if failed > 0 {
        manifest.ok = false;
        let msg = format!("{failed} object(s) or pattern(s) not fetched");
        manifest.error = Some(msg.clone());
        return Err((Failure::Failed(msg), Some(manifest)));
    }
    Ok(manifest)
}

/// The objects `pattern` names, each with its destination under `to`.
async fn resolve(bucket: &Bucket, pattern: &str, to: &Path) -> Result<Vec<Wanted>, String> {
    let (literal, dir) = keys::literal_prefix(pattern);
    let mut out = Vec::new();
    if !keys::is_glob(pattern) {
        let head = bucket
            .client
            .head_object()
            .bucket(&bucket.name)
            .key(pattern)
            .send()
            .await;
        match head {
            Ok(h) => out.push(Wanted {
                key: pattern.to_string(),
                dest: destination(to, pattern, dir)?,
                size: h.content_length().unwrap_or(0).max(0) as u64,
            }),
            Err(e) if not_found(&e) => {}
            Err(e) => return Err(bucket.explain(&e, &format!("looking up {pattern}"))),
        }
        return Ok(out);
    }
    let matcher = glob::Pattern::new(pattern).map_err(|e| e.to_string())?;
    let opts = glob::MatchOptions {
        case_sensitive: true,
        require_literal_separator: true,
        require_literal_leading_dot: false,
    };
    let mut pages = bucket
        .client
        .list_objects_v2()
        .bucket(&bucket.name)
        .prefix(literal)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| bucket.explain(&e, &format!("listing {literal}*")))?;
        for o in page.contents() {
            let Some(key) = o.key() else { continue };
            if key.ends_with('/') || !matcher.matches_with(key, opts) {
                continue;
            }
            out.push(Wanted {
                key: key.to_string(),
                dest: destination(to, key, dir)?,
                size: o.size().unwrap_or(0).max(0) as u64,
            });
        }
    }
    Ok(out)
}

/// Where `key` goes: `to` joined with the key below `dir`; a key that would leave `to`
/// (`..`, an absolute or empty segment) is refused.
fn destination(to: &Path, key: &str, dir: &str) -> Result<PathBuf, String> {
    let rel = key.strip_prefix(dir).unwrap_or(key);
    let rel_path = Path::new(rel);
    let safe = !rel.is_empty()
        && rel
            .split('/')
            .all(|s| !s.is_empty() && s != "." && s != "..")
        && rel_path
            .components()
            .all(|c| matches!(c, Component::Normal(_)));
    if !safe {
        return Err(format!(
            "the key {key:?} does not map to a file below {} (empty, . or .. segments)",
            to.display()
        ));
    }
    Ok(to.join(rel_path))
}

async fn fetch_one(bucket: &Bucket, w: &Wanted, progress: &Progress) -> Entry {
    let path = w.dest.display().to_string();
    match fetch_to(bucket, w, progress, &path).await {
        Ok(e) => {
            let verb = if e.status == Status::Unchanged {
                "already here:"
            } else {
                "fetched"
            };
            progress.summary(&format!("{verb} {} -> {path}", bucket.s3_uri(&w.key)));
            e
        }
        Err(msg) => {
            progress.summary(&format!("FAILED {}: {msg}", bucket.s3_uri(&w.key)));
            Entry::failed(&path, &w.key, w.size, msg)
        }
    }
}

async fn fetch_to(
    bucket: &Bucket,
    w: &Wanted,
    progress: &Progress,
    path: &str,
) -> Result<Entry, String> {
    let mut entry = Entry::new(path, &w.key, Status::Fetched, w.size);
    entry.s3_uri = Some(bucket.s3_uri(&w.key));
    entry.url = Some(bucket.url(&w.key));
    if let Some(parent) = w.dest.parent() {
        tokio::fs::create_dir_all(parent)
            .await
            .map_err(|e| format!("creating {}: {e}", parent.display()))?;
    }
    // A file already here with the object's SHA-256: nothing to download.
    if w.dest.is_file() {
        let head = bucket
            .client
            .head_object()
            .bucket(&bucket.name)
            .key(&w.key)
            .send()
            .await
            .map_err(|e| bucket.explain(&e, &format!("looking up {}", w.key)))?;
        if let Some(sha) = head.metadata().and_then(|m| m.get(SHA256_META)) {
            let sha = sha.to_ascii_lowercase();
            let dest = w.dest.clone();
            let local = tokio::task::spawn_blocking(move || crate::digest::sha256_file(&dest).ok())
                .await
                .ok()
                .flatten();
            if local.as_deref() == Some(sha.as_str()) {
                entry.status = Status::Unchanged;
                entry.size = head.content_length().unwrap_or(0).max(0) as u64;
                entry.sha256 = Some(sha);
                entry.etag = head.e_tag().map(str::to_string);
                entry.version_id = head.version_id().map(str::to_string);
                return Ok(entry);
            }
        }
    }
    let mut out = bucket
        .client
        .get_object()
        .bucket(&bucket.name)
        .key(&w.key)
        .checksum_mode(ChecksumMode::Enabled)
        .send()
        .await
        .map_err(|e| bucket.explain(&e, &format!("downloading {}", w.key)))?;
    let size = out.content_length().unwrap_or(0).max(0) as u64;
    let want_sha = out
        .metadata()
        .and_then(|m| m.get(SHA256_META))
        .map(|s| s.to_ascii_lowercase());
    entry.size = size;
    entry.etag = out.e_tag().map(str::to_string);
    entry.version_id = out.version_id().map(str::to_string);
    entry.content_type = out.content_type().map(str::to_string);
    let name = w
        .dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = w.dest.with_file_name(format!(".{name}.nectr-fetch"));
    let result = async {
        let mut f = tokio::fs::File::create(&tmp)
            .await
            .map_err(|e| format!("creating {}: {e}", tmp.display()))?;
        let fp = progress.file(path, size);
        let mut hasher = sha2::Sha256::new();
        let mut got = 0u64;
        while let Some(chunk) = out.body.next().await {
            let chunk = chunk.map_err(|e| format!("downloading {}: {e}", w.key))?;
            hasher.update(&chunk);
            f.write_all(&chunk)
                .await
                .map_err(|e| format!("writing {}: {e}", tmp.display()))?;
            got += chunk.len() as u64;
            fp.add(chunk.len() as u64);
        }
        fp.finish();
        f.sync_all()
            .await
            .map_err(|e| format!("writing {}: {e}", tmp.display()))?;
        if got != size {
            return Err(format!(
                "downloading {}: {got} bytes arrived, the object has {size}",
                w.key
            ));
        }
        let sha = hex::encode(hasher.finalize());
        if let Some(want) = &want_sha {
            if *want != sha {
                return Err(format!(
                    "downloading {}: the SHA-256 of the bytes received ({sha}) is not the object's ({want})",
                    w.key
                ));
            }
        }
        tokio::fs::rename(&tmp, &w.dest)
            .await
            .map_err(|e| format!("renaming to {}: {e}", w.dest.display()))?;
        Ok(sha)
    }
    .await;
    match result {
        Ok(sha) => {
            entry.sha256 = Some(sha);
            Ok(entry)
        }
        Err(e) => {
            let _ = tokio::fs::remove_file(&tmp).await;
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destinations_stay_below() {
        let to = Path::new("/out");
        assert_eq!(
            destination(to, "app/1/dist/a.gz", "app/1/dist/").unwrap(),
            PathBuf::from("/out/a.gz")
        );
        assert_eq!(
            destination(to, "app/1/dist/sub/a.gz", "app/1/").unwrap(),
            PathBuf::from("/out/dist/sub/a.gz")
        );
        assert!(destination(to, "app/../../etc/passwd", "app/").is_err());
        assert!(destination(to, "app//x", "app/").is_err());
        assert!(destination(to, "app/", "app/").is_err());
    }
}
