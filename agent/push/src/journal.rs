//! The multipart uploads this machine started and has not completed: one small file per
//! bucket and key in the state directory. Its first line describes the upload (written
//! right after S3 hands out the upload id, before the first part is sent); each part S3
//! accepts adds a line with its ETag and checksum. The file is removed once the upload is
//! complete (or abandoned). A later push of the same file (same SHA-256) to the same key
//! resumes the upload: the parts recorded are not sent again.
//!
//! Resuming only from this record, never from an upload merely found in the bucket, is what
//! keeps `x-amz-meta-sha256` true: the metadata is fixed when an upload is created, so an
//! upload started by another process for other content must never be completed with ours.
//! A part is recorded only after S3 verified its SHA-256 and answered, so a recorded part is
//! in S3 for as long as the upload exists; if the upload is gone (aborted by a lifecycle
//! rule), S3 says NoSuchUpload and the push starts over.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::Digest as _;

/// One unfinished upload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub bucket: String,
    pub key: String,
    pub upload_id: String,
    /// Hex SHA-256 of the file being uploaded.
    pub sha256: String,
    pub size: u64,
    pub part_size: u64,
}

/// A part S3 accepted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Part {
    pub number: i32,
    pub etag: String,
    /// Base64 SHA-256 of the part.
    pub sha256: String,
}

/// The state directory.
#[derive(Debug, Clone)]
pub struct Journal {
    dir: PathBuf,
}

impl Journal {
    /// `dir`, or `$XDG_STATE_HOME/nectr-push`, or `$HOME/.local/state/nectr-push`.
    pub fn locate(dir: Option<PathBuf>, env: &dyn Fn(&str) -> Option<String>) -> Journal {
        let dir =
            dir.unwrap_or_else(
                || match env("XDG_STATE_HOME").filter(|s| s.starts_with('/')) {
                    Some(x) => PathBuf::from(x).join("nectr-push"),
                    None => {
                        let home = env("HOME").unwrap_or_else(|| "/tmp".into());
                        PathBuf::from(home).join(".local/state/nectr-push")
                    }
                },
            );
        Journal { dir }
    }

    /// Where the record of `bucket`/`key` lives.
    pub fn path(&self, bucket: &str, key: &str) -> PathBuf {
        let mut h = sha2::Sha256::new();
        h.update(bucket.as_bytes());
        h.update([0]);
        h.update(key.as_bytes());
        self.dir
            .join(format!("upload-{}.jsonl", &hex::encode(h.finalize())[..32]))
    }

    /// The record for `bucket`/`key` and the parts recorded so far, if any (an unreadable
    /// record counts as none; a torn last line, from a crash while it was written, is
    /// ignored).
    pub fn load(&self, bucket: &str, key: &str) -> Option<(Entry, Vec<Part>)> {
        let text = std::fs::read_to_string(self.path(bucket, key)).ok()?;
        let mut lines = text.lines();
        let e: Entry = serde_json::from_str(lines.next()?).ok()?;
        if e.bucket != bucket || e.key != key {
            return None;
        }
        let parts = lines
            .filter_map(|l| serde_json::from_str::<Part>(l).ok())
            .collect();
        Some((e, parts))
    }

    /// Starts the record of an upload (replacing any other for the same bucket and key),
    /// readable by the user only.
    pub fn start(&self, e: &Entry) -> std::io::Result<()> {
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::create_dir_all(&self.dir)?;
        let path = self.path(&e.bucket, &e.key);
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        let mut line = serde_json::to_vec(e).map_err(std::io::Error::other)?;
        line.push(b'\n');
        f.write_all(&line)?;
        f.sync_all()?;
        std::fs::rename(&tmp, &path)
    }

    /// Records a part S3 accepted.
    pub fn add_part(&self, bucket: &str, key: &str, p: &Part) -> std::io::Result<()> {
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(self.path(bucket, key))?;
        let mut line = serde_json::to_vec(p).map_err(std::io::Error::other)?;
        line.push(b'\n');
        // One write: appends from concurrent parts never interleave within a line.
        f.write_all(&line)?;
        f.sync_data()
    }

    /// Forgets the record for `bucket`/`key`.
    pub fn remove(&self, bucket: &str, key: &str) {
        let _ = std::fs::remove_file(self.path(bucket, key));
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_add_load_remove() {
        let dir = std::env::temp_dir().join(format!("nectr-push-journal-{}", std::process::id()));
        let j = Journal::locate(Some(dir.clone()), &|_| None);
        let e = Entry {
            bucket: "nectr_deploy".into(),
            key: "a/b".into(),
            upload_id: "u1".into(),
            sha256: "00".into(),
            size: 10,
            part_size: 5,
        };
        assert_eq!(j.load("nectr_deploy", "a/b"), None);
        j.start(&e).unwrap();
        assert_eq!(j.load("nectr_deploy", "a/b"), Some((e.clone(), vec![])));
        let p = Part {
            number: 2,
            etag: "\"x\"".into(),
            sha256: "s".into(),
        };
        j.add_part("nectr_deploy", "a/b", &p).unwrap();
        // A torn line at the end (a crash mid-write) is ignored.
        let path = j.path("nectr_deploy", "a/b");
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        f.write_all(b"{\"number\":3,\"et").unwrap();
        assert_eq!(j.load("nectr_deploy", "a/b"), Some((e.clone(), vec![p])));
        assert_eq!(j.load("nectr_deploy", "a/c"), None);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        // Starting again replaces the record.
        j.start(&e).unwrap();
        assert_eq!(j.load("nectr_deploy", "a/b"), Some((e, vec![])));
        j.remove("nectr_deploy", "a/b");
        assert_eq!(j.load("nectr_deploy", "a/b"), None);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn default_locations() {
        let j = Journal::locate(None, &|k| match k {
            "XDG_STATE_HOME" => Some("/state".into()),
            _ => None,
        });
        assert_eq!(j.dir(), Path::new("/state/nectr-push"));
        let j = Journal::locate(None, &|k| match k {
            "HOME" => Some("/home/jenkins".into()),
            _ => None,
        });
        assert_eq!(j.dir(), Path::new("/home/jenkins/.local/state/nectr-push"));
    }
}
