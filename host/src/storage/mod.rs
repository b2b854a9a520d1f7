//! Partitioned storage: `telemetry_schema.json` dimensions, partition files compressed with
//! zstd (default) or xz, all file access through a `cap_std::fs::Dir` for the data directory.
//!
//! INTERFACE CONTRACT (other modules depend on these names; keep them):
//! - `Schema`: parsed telemetry_schema.json / job filter (same format). `Schema::from_json(&str)`,
//!   `Schema::load(path)`, `apply(&self, values) -> Vec<String>` (storage dims),
//!   `matches(&self, dims: &[String]) -> bool` (filter semantics, partition pruning).
//! - `StorageWriter`: `write(&mut self, dims: &[String], version: u32, id: &str, json: &str)`,
//!   rotation by size/age, `finish()` closes and compresses everything.
//! - [`PartitionFile`] and the [`PartitionSource`] trait: what the job executor reads
//!   (implemented for the local data dir here, and for S3 in `export`).
//! - [`split_line`]: one stored line `id\tjson` → `(id, json)`.

use std::io::BufRead;

/// One finished partition file, as listed by a [`PartitionSource`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionFile {
    /// Path relative to the data root (local) or key relative to the prefix (S3), `/`-separated.
    pub path: String,
    /// Dimension values parsed from the path (directories + build id + submission date).
    pub dims: Vec<String>,
    /// Compressed size in bytes (used to balance files across workers).
    pub size: u64,
}

/// Where a job reads its input: lists partition files matching a filter and opens one as a
/// decompressed stream of `id\tjson\n` lines.
pub trait PartitionSource: Send + Sync {
    /// Partition files whose dimensions pass `filter`, pruning whole directories early.
    fn list(&self, filter: &Schema) -> Result<Vec<PartitionFile>, StorageError>;
    /// A decompressed reader over one partition file (codec chosen by extension).
    fn open(&self, file: &PartitionFile) -> Result<Box<dyn BufRead + Send>, StorageError>;
}

/// Splits a stored line (`id\tjson`, without the newline) at the first tab.
pub fn split_line(line: &[u8]) -> Option<(&[u8], &[u8])> {
    let tab = memchr::memchr(b'\t', line)?;
    Some((&line[..tab], &line[tab + 1..]))
}

/// Placeholder until the storage module lands; see the contract above.
pub struct Schema;

/// Errors from reading or writing storage.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("i/o error on {path}: {source}")]
    Io { path: String, source: std::io::Error },
}
