//! The JSON manifest: every object a command handled, where it is, and whether it made it.
//! Only `pushed`/`unchanged` (push) and `fetched`/`unchanged` (fetch) entries name an object
//! that is complete; a `failed` entry carries the error and no URL.

use std::path::Path;

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Uploaded by this command.
    Pushed,
    /// Downloaded by this command.
    Fetched,
    /// Already there with the same size and SHA-256: nothing sent.
    Unchanged,
    /// Not complete: see `error`.
    Failed,
}

#[derive(Debug, Clone, Serialize)]
pub struct Entry {
    /// The local file.
    pub path: String,
    pub key: String,
    pub status: Status,
    pub size: u64,
    /// Hex SHA-256 of the content, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub s3_uri: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    /// Parts of a multipart upload (1 for a single PUT).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parts: Option<u64>,
    /// Parts of an interrupted upload that were already in S3 and were kept.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resumed_parts: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Entry {
    pub fn new(path: &str, key: &str, status: Status, size: u64) -> Entry {
        Entry {
            path: path.to_string(),
            key: key.to_string(),
            status,
            size,
            sha256: None,
            s3_uri: None,
            url: None,
            etag: None,
            version_id: None,
            content_type: None,
            parts: None,
            resumed_parts: None,
            error: None,
        }
    }

    pub fn failed(path: &str, key: &str, size: u64, error: String) -> Entry {
        let mut e = Entry::new(path, key, Status::Failed, size);
        e.error = Some(error);
        e
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Manifest {
    pub version: u32,
    /// `push` or `fetch`.
    pub command: &'static str,
    pub bucket: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// True if every entry succeeded.
    pub ok: bool,
    /// Why not, when `ok` is false.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub objects: Vec<Entry>,
}

impl Manifest {
    pub fn new(command: &'static str, bucket: &str, region: Option<String>) -> Manifest {
        Manifest {
            version: 1,
            command,
            bucket: bucket.to_string(),
            region,
            ok: true,
            error: None,
            objects: Vec::new(),
        }
    }

    /// Writes it to `dest` (`-` is standard output) atomically (a temporary file renamed).
    pub fn write(&self, dest: &Path) -> std::io::Result<()> {
        let mut json = serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?;
        json.push(b'\n');
        if dest == Path::new("-") {
            use std::io::Write;
            let mut out = std::io::stdout().lock();
            out.write_all(&json)?;
            return out.flush();
        }
        let tmp = match dest.file_name() {
            Some(n) => dest.with_file_name(format!(".{}.tmp", n.to_string_lossy())),
            None => return Err(std::io::Error::other("the manifest path names no file")),
        };
        std::fs::write(&tmp, &json)?;
        std::fs::rename(&tmp, dest)
    }
}
