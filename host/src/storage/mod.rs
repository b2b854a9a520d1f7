//! Partitioned storage: `telemetry_schema.json` dimensions, partition files compressed with
//! zstd (default) or xz, all file access through a `cap_std::fs::Dir` for the data directory.
//! Formats: `docs/formats/storage.md`.
//!
//! - [`datadir`]: [`DataDir`], the data directory capability and its subdirectories.
//! - [`schema`]: [`Schema`] (storage schema and job filter), [`safe_filename`].
//! - [`filter`]: a job's filter resolved against the storage schema by dimension name.
//! - [`partition`]: the directory/file naming ([`PartitionName`], [`parse_partition_path`]).
//! - [`codec`]: [`Codec`] for writing, [`decompress`] by extension for reading.
//! - [`writer`]: [`StorageWriter`], rotation by size and age, [`FinishedFile`]s.
//! - [`stale`]: the writer lock and the start-up recovery of `.partial` files left by a crash.
//! - [`local`]: [`LocalSource`], the local [`PartitionSource`] with directory pruning.
//! - [`pointers`]: which JSON pointers occur in documents, and how often.
//! - [`records`]: every `(id, dims, json)` of the files a filter selects, from any source.
//! - [`split_line`]: one stored line `id\tjson` → `(id, json)`.

use std::io::BufRead;

pub mod codec;
pub mod datadir;
mod error;
pub mod file_mode;
pub mod filter;
pub mod local;
pub mod partition;
pub mod pointers;
pub mod private;
pub mod records;
pub mod retention;
pub mod schema;
pub mod stale;
pub mod writer;

pub use codec::{decompress, Codec, Container};
pub use datadir::DataDir;
pub use error::StorageError;
pub use filter::FilterError;
pub use local::LocalSource;
pub use partition::{parse_partition_path, submission_date, PartitionName};
pub use records::{records, Record, Records};
pub use retention::RetentionConfig;
pub use schema::{
    safe_filename, Schema, ValuePolicy, DEFAULT_DIMENSION_MAX_BYTES, DEFAULT_DIMENSION_PATTERN,
    OTHER, UNKNOWN,
};
pub use stale::{recover_stale_partials, StalePartials};
pub use writer::{
    FinishedFile, PublishHook, SealedFile, StorageWriter, TrackedRecord, WriterOptions,
};

/// One finished partition file, as listed by a [`PartitionSource`] (serialisable: a cluster's
/// coordinator lists once and ships the listing to its members).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
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
    /// What, beside its path and size, changes when the file is rewritten or replaced (for
    /// caches keyed by file); empty when the source knows nothing more (partition file names
    /// hold a random id, so a path is not reused for other contents by this server).
    fn version(&self, file: &PartitionFile) -> Result<String, StorageError> {
        let _ = file;
        Ok(String::new())
    }
    /// Which of the listed files this process will open (in a cluster: its own workers' share,
    /// called after `list`), so read-ahead fetches only those. Default: nothing to do.
    fn will_read(&self, files: &[PartitionFile]) {
        let _ = files;
    }
}

/// Reads the next line of a partition file into `line` (cleared first), without its line end
/// (`\n` or `\r\n`); returns the bytes consumed (line end included), 0 at the end of the file.
pub fn read_line(
    reader: &mut dyn BufRead,
    path: &str,
    line: &mut Vec<u8>,
) -> Result<usize, StorageError> {
    line.clear();
    let n = reader
        .read_until(b'\n', line)
        .map_err(|e| StorageError::io(path, e))?;
    if line.last() == Some(&b'\n') {
        line.pop();
        if line.last() == Some(&b'\r') {
            line.pop();
        }
    }
    Ok(n)
}

/// Splits a stored line (`id\tjson`, without the newline) at the first tab.
pub fn split_line(line: &[u8]) -> Option<(&[u8], &[u8])> {
    let tab = memchr::memchr(b'\t', line)?;
    Some((&line[..tab], &line[tab + 1..]))
}
