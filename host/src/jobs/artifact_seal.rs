//! [`ArtifactSeal`]: ties every compiled artifact in the compile cache to the component it was
//! compiled from, so a tampered or swapped `.cwasm` is refused instead of executed.
//!
//! A `.cwasm` file is native code that wasmtime maps and runs without further checks. The
//! runtime therefore writes it with a header: a magic string and an HMAC-SHA-256, keyed with a
//! 32-byte key from the OS's random source kept in the cache directory (`.artifact-key`, `0600`,
//! created once), over the component's SHA-256, wasmtime's engine compatibility hash and the
//! artifact bytes. An artifact whose MAC does not verify (edited bytes, another component's
//! artifact renamed, another key or engine, or no header) is refused before
//! `Component::deserialize` sees it, and the runtime recompiles the component.

use std::hash::{Hash, Hasher};
use std::io::{Read, Write};

use cap_std::fs::{Dir, MetadataExt, OpenOptions, OpenOptionsExt};
use hmac::Mac;
use sha2::Digest;
use wasmtime::Engine;

use super::JobError;

pub use crate::mac::{hmac, HmacSha256};

/// The key's file in the cache directory (a dot file: the cache's retention leaves it alone).
pub const KEY_FILE: &str = ".artifact-key";
const KEY_LEN: usize = 32;
const MAGIC: &[u8; 8] = b"tscwasm1";
const TAG_LEN: usize = 32;
/// Bytes before the artifact in a sealed file.
pub const HEADER_LEN: usize = MAGIC.len() + TAG_LEN;

/// Why a cached artifact was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// The file does not start with the seal header (not written by this cache).
    #[error("it has no seal header")]
    Unsealed,
    /// The MAC does not verify: the bytes were changed, the file belongs to another component,
    /// or it was sealed with another key or engine.
    #[error("its MAC does not verify (tampered, swapped, or from another key or engine)")]
    BadMac,
}

/// The cache's key and the engine's compatibility hash.
pub struct ArtifactSeal {
    key: [u8; KEY_LEN],
    engine: [u8; 32],
}

impl ArtifactSeal {
    /// Loads the cache's key, creating it when the cache has none. A key file another user owns,
    /// that group or others may read, or of the wrong size is an error, not silently replaced.
    pub fn open(cache: &Dir, engine: &Engine) -> Result<ArtifactSeal, JobError> {
        let key = match read_key(cache)? {
            Some(key) => key,
            None => create_key(cache)?,
        };
        let mut hasher = Sha256Hasher(sha2::Sha256::new());
        engine.precompile_compatibility_hash().hash(&mut hasher);
        Ok(ArtifactSeal {
            key,
            engine: hasher.0.finalize().into(),
        })
    }

    fn mac(&self, sha256: &str, artifact: &[u8]) -> HmacSha256 {
        hmac(
            &self.key,
            &[
                b"telemetry-server compile cache v1\0",
                sha256.as_bytes(),
                b"\0",
                &self.engine,
                artifact,
            ],
        )
    }

    /// The file to store for the artifact of component `sha256`: header, then the artifact.
    pub fn seal(&self, sha256: &str, artifact: &[u8]) -> Vec<u8> {
        let tag = self.mac(sha256, artifact).finalize().into_bytes();
        let mut sealed = Vec::with_capacity(HEADER_LEN + artifact.len());
        sealed.extend_from_slice(MAGIC);
        sealed.extend_from_slice(&tag);
        sealed.extend_from_slice(artifact);
        sealed
    }

    /// The artifact inside `sealed` when its MAC verifies for component `sha256` (compared in
    /// constant time).
    pub fn open_sealed<'a>(&self, sha256: &str, sealed: &'a [u8]) -> Result<&'a [u8], Refused> {
        if sealed.len() < HEADER_LEN || &sealed[..MAGIC.len()] != MAGIC {
            return Err(Refused::Unsealed);
        }
        let (tag, artifact) = sealed[MAGIC.len()..].split_at(TAG_LEN);
        self.mac(sha256, artifact)
            .verify_slice(tag)
            .map_err(|_| Refused::BadMac)?;
        Ok(artifact)
    }
}

/// Feeds what `Hash` writes into SHA-256 (stable across processes, unlike `DefaultHasher`).
struct Sha256Hasher(sha2::Sha256);

impl Hasher for Sha256Hasher {
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
    fn finish(&self) -> u64 {
        let digest = self.0.clone().finalize();
        u64::from_le_bytes(digest[..8].try_into().expect("8 bytes"))
    }
}

fn unsafe_key(reason: String) -> JobError {
    JobError::UnsafeCache {
        reason: format!("{KEY_FILE}: {reason}"),
    }
}

/// The key, `None` when there is no key file yet.
fn read_key(cache: &Dir) -> Result<Option<[u8; KEY_LEN]>, JobError> {
    let mut file = match cache.open(KEY_FILE) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(JobError::io(format!("opening {KEY_FILE}"), e)),
    };
    let meta = file
        .metadata()
        .map_err(|e| JobError::io(format!("reading {KEY_FILE}"), e))?;
    let me = rustix::process::geteuid().as_raw();
    if meta.uid() != me {
        return Err(unsafe_key(format!(
            "owned by uid {}, not by this user (uid {me})",
            meta.uid()
        )));
    }
    if meta.mode() & 0o077 != 0 {
        return Err(unsafe_key(format!(
            "mode {:o}: group or others may read it (must be 0600)",
            meta.mode() & 0o777
        )));
    }
    let mut key = [0u8; KEY_LEN];
    let mut rest = Vec::new();
    file.read_exact(&mut key)
        .and_then(|()| file.read_to_end(&mut rest))
        .map_err(|e| JobError::io(format!("reading {KEY_FILE}"), e))?;
    if !rest.is_empty() {
        return Err(unsafe_key(format!("longer than {KEY_LEN} bytes")));
    }
    Ok(Some(key))
}

/// Writes a fresh key to a temporary file and links it into place, so that of two processes
/// creating the key at once both end up using the one that was linked first.
fn create_key(cache: &Dir) -> Result<[u8; KEY_LEN], JobError> {
    let mut key = [0u8; KEY_LEN];
    getrandom::getrandom(&mut key)
        .map_err(|e| JobError::io("drawing a cache key", std::io::Error::other(e.to_string())))?;
    let tmp = format!("{KEY_FILE}.{}.tmp", uuid::Uuid::new_v4());
    let write = || -> std::io::Result<()> {
        let mut options = OpenOptions::new();
        options.write(true).create_new(true).mode(0o600);
        let mut file = cache.open_with(&tmp, &options)?;
        file.write_all(&key)?;
        file.sync_all()?;
        cache.hard_link(&tmp, cache, KEY_FILE)
    };
    let linked = write();
    let _ = cache.remove_file(&tmp);
    match linked {
        Ok(()) => Ok(key),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            read_key(cache)?.ok_or_else(|| unsafe_key("vanished while being created".into()))
        }
        Err(e) => Err(JobError::io(format!("creating {KEY_FILE}"), e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn cache() -> (tempfile::TempDir, Dir) {
        let tmp = tempfile::tempdir().unwrap();
        let dir = Dir::open_ambient_dir(tmp.path(), cap_std::ambient_authority()).unwrap();
        (tmp, dir)
    }

    #[test]
    fn a_seal_verifies_only_for_its_component_and_bytes() {
        let (tmp, dir) = cache();
        let engine = Engine::default();
        let seal = ArtifactSeal::open(&dir, &engine).unwrap();
        let (a, b) = ("a".repeat(64), "b".repeat(64));
        let sealed = seal.seal(&a, b"native code");
        assert_eq!(seal.open_sealed(&a, &sealed), Ok(&b"native code"[..]));
        assert_eq!(seal.open_sealed(&b, &sealed), Err(Refused::BadMac));
        let mut flipped = sealed.clone();
        *flipped.last_mut().unwrap() ^= 1;
        assert_eq!(seal.open_sealed(&a, &flipped), Err(Refused::BadMac));
        assert_eq!(seal.open_sealed(&a, b"native code"), Err(Refused::Unsealed));
        // The key is kept (0600) and reused; another key refuses the artifact.
        let mode = std::fs::metadata(tmp.path().join(KEY_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let again = ArtifactSeal::open(&dir, &engine).unwrap();
        assert!(again.open_sealed(&a, &sealed).is_ok());
        let (_other_tmp, other_dir) = cache();
        let other = ArtifactSeal::open(&other_dir, &engine).unwrap();
        assert_eq!(other.open_sealed(&a, &sealed), Err(Refused::BadMac));
    }

    #[test]
    fn a_readable_key_is_refused() {
        let (tmp, dir) = cache();
        ArtifactSeal::open(&dir, &Engine::default()).unwrap();
        let path = tmp.path().join(KEY_FILE);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = ArtifactSeal::open(&dir, &Engine::default()).err().unwrap();
        assert!(err.to_string().contains("must be 0600"), "{err}");
    }
}
