//! SHA-256 of a local file (or of one byte range of it, for a multipart part), computed off the
//! async threads. An upload sends it so S3 checks the bytes it stored, and stores it as the
//! object's `sha256` metadata so a later HEAD can confirm the object holds this file's content,
//! not merely the same number of bytes, before the local copy is deleted.

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use base64::Engine;
use sha2::{Digest, Sha256};

use super::S3Error;

/// The user-metadata key (`x-amz-meta-sha256`) holding the object's content SHA-256, lowercase hex.
pub const METADATA_KEY: &str = "sha256";

/// A SHA-256 digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sha256Digest([u8; 32]);

impl Sha256Digest {
    /// Lowercase hex, as stored in the object's metadata.
    pub fn hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Base64, as S3's `x-amz-checksum-sha256` header wants it.
    pub fn base64(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(self.0)
    }
}

/// SHA-256 of the whole file.
pub async fn file(path: &Path) -> Result<Sha256Digest, S3Error> {
    range(path, 0, None).await
}

/// SHA-256 of `len` bytes at `offset` (`None`: to the end). A file shorter than the range is an
/// error: the bytes hashed must be the bytes sent.
pub async fn range(path: &Path, offset: u64, len: Option<u64>) -> Result<Sha256Digest, S3Error> {
    let owned: PathBuf = path.to_path_buf();
    tokio::task::spawn_blocking(move || hash_range(&owned, offset, len))
        .await
        .map_err(|e| S3Error::io(path.display(), std::io::Error::other(e)))?
        .map_err(|e| S3Error::io(path.display(), e))
}

fn hash_range(path: &Path, offset: u64, len: Option<u64>) -> std::io::Result<Sha256Digest> {
    let mut file = std::fs::File::open(path)?;
    file.seek(SeekFrom::Start(offset))?;
    let mut reader: Box<dyn Read> = match len {
        Some(len) => Box::new(file.take(len)),
        None => Box::new(file),
    };
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut total = 0u64;
    loop {
        let n = reader.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        total += n as u64;
    }
    if let Some(len) = len {
        if total != len {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                format!("expected {len} bytes at offset {offset}, read {total}"),
            ));
        }
    }
    Ok(Sha256Digest(hasher.finalize().into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn whole_file_and_range_match_known_digests() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"abcdef").unwrap();
        // sha256("abcdef") and sha256("cd"), from coreutils' sha256sum.
        assert_eq!(
            file(&path).await.unwrap().hex(),
            "bef57ec7f53a6d40beb640a780a639c83bc29ac8a9816f1fc6c5c6dcd93c4721"
        );
        assert_eq!(
            range(&path, 2, Some(2)).await.unwrap().hex(),
            "21e721c35a5823fdb452fa2f9f0a612c74fb952e06927489c6b27a43b817bed4"
        );
        assert!(
            range(&path, 4, Some(5)).await.is_err(),
            "short range must fail"
        );
    }
}
