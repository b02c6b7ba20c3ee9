//! One read of a file for what push needs to know before sending anything: the SHA-256 of
//! the whole file (the skip-identical check and `x-amz-meta-sha256`), and the SHA-256 of each
//! part (sent as `x-amz-checksum-sha256`, which S3 verifies; and compared with the parts an
//! interrupted upload recorded before they are kept).

use std::io::Read;
use std::path::Path;

use base64::Engine;
use sha2::Digest as _;

use crate::layout::Layout;

/// The digests of one part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartDigest {
    /// Base64 of the SHA-256, as S3's checksum headers carry it.
    pub sha256_b64: String,
}

/// The digests of a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileDigest {
    /// Hex of the SHA-256 of the whole file.
    pub sha256_hex: String,
    pub parts: Vec<PartDigest>,
}

/// Reads `path` once and digests it part by part; `on_bytes` is called after each read.
/// The file must still have `layout.size` bytes (a file that changes while it is read is an
/// error, not a wrong checksum).
pub fn digest_file(
    path: &Path,
    layout: &Layout,
    on_bytes: &mut dyn FnMut(u64),
) -> std::io::Result<FileDigest> {
    let mut f = std::fs::File::open(path)?;
    let mut whole = sha2::Sha256::new();
    let mut parts = Vec::with_capacity(layout.count as usize);
    let mut buf = vec![0u8; 1 << 20];
    for i in 0..layout.count {
        let (_, len) = layout.part(i);
        let mut sha = sha2::Sha256::new();
        let mut left = len;
        while left > 0 {
            let want = left.min(buf.len() as u64) as usize;
            let n = f.read(&mut buf[..want])?;
            if n == 0 {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "the file became shorter while it was read",
                ));
            }
            whole.update(&buf[..n]);
            sha.update(&buf[..n]);
            left -= n as u64;
            on_bytes(n as u64);
        }
        parts.push(PartDigest {
            sha256_b64: base64::engine::general_purpose::STANDARD.encode(sha.finalize()),
        });
    }
    if f.read(&mut buf[..1])? != 0 {
        return Err(std::io::Error::other("the file grew while it was read"));
    }
    Ok(FileDigest {
        sha256_hex: hex::encode(whole.finalize()),
        parts,
    })
}

/// Hex SHA-256 of a file (fetch: is the file already here?).
pub fn sha256_file(path: &Path) -> std::io::Result<String> {
    let mut f = std::fs::File::open(path)?;
    let mut h = sha2::Sha256::new();
    std::io::copy(&mut f, &mut h)?;
    Ok(hex::encode(h.finalize()))
}

/// Base64 of the SHA-256 of `bytes`.
pub fn sha256_b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_match_whole_and_parts() {
        let dir = std::env::temp_dir().join(format!("nectr-push-digest-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("f");
        let data: Vec<u8> = (0..(11u32 << 20) + 7).map(|i| (i % 251) as u8).collect();
        std::fs::write(&path, &data).unwrap();
        let layout = Layout::new(data.len() as u64, 5 << 20).unwrap();
        let mut seen = 0;
        let d = digest_file(&path, &layout, &mut |n| seen += n).unwrap();
        assert_eq!(seen, data.len() as u64);
        assert_eq!(d.sha256_hex, hex::encode(sha2::Sha256::digest(&data)));
        assert_eq!(d.parts.len(), 3);
        let (off, len) = layout.part(2);
        let last = &data[off as usize..(off + len) as usize];
        assert_eq!(d.parts[2].sha256_b64, sha256_b64(last));
        assert_eq!(sha256_file(&path).unwrap(), d.sha256_hex);
        // A file that no longer has the size the layout was made for.
        let short = Layout::new(data.len() as u64 + 1, 5 << 20).unwrap();
        assert!(digest_file(&path, &short, &mut |_| {}).is_err());
        let long = Layout::new(data.len() as u64 - 1, 5 << 20).unwrap();
        assert!(digest_file(&path, &long, &mut |_| {}).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
