//! [`ColumnCache`]: the fields jobs extracted from partition files, kept as Arrow IPC columns
//! under the data directory's `columns/`, so a later job asking for the same JSON pointers reads
//! a few small columnar files instead of decompressing and parsing every stored document
//! (`docs/jobs/column-cache.md`).
//!
//! Layout: `columns/<key>/rows.arrow` holds a partition file's record ids (and line lengths, so
//! cost figures and `map-batch` batches are the same as from the JSON), and
//! `columns/<key>/<sha256(pointer)>.arrow` one pointer's fields. `<key>` is a hash of the
//! partition file's identity: path, size and the source's version of it (modification time and
//! inode locally), so a replaced file never hits. A file is written to `columns/tmp/` and renamed
//! into place, so a reader never sees a partial one; a file that does not read back for the key
//! and pointer it is named after is deleted and counts as a miss.
//!
//! Bounded by a byte budget: least recently used files (by modification time, which a hit
//! refreshes) are deleted when a write takes the total over it.

mod encode;
pub mod metrics;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use cap_std::fs::Dir;
use prometheus_client::metrics::counter::Counter;
use sha2::{Digest, Sha256};

pub use encode::{BadCacheFile, Cached, Pending};
use encode::{FieldColumn, Rows};

use crate::storage::{DataDir, PartitionFile, StorageError};

/// The cache's directory under the data directory.
pub const COLUMNS: &str = "columns";
/// Where files are written before being renamed into place.
const TMP: &str = "tmp";
/// A temporary file older than this was left by a crashed writer and is deleted.
const STALE_TMP: Duration = Duration::from_secs(600);
/// Most bytes of columns one partition file may take while a job builds them; a file whose
/// fields are bigger is not cached.
pub const MAX_PENDING_BYTES: usize = 64 << 20;
/// The default budget: this share of the free space of the data directory's file system…
const DEFAULT_FREE_SHARE: u64 = 10;
/// …but at most this much.
const DEFAULT_MAX_BYTES: u64 = 20 << 30;
const ROWS_FILE: &str = "rows.arrow";

/// Why the cache cannot be used or written.
#[derive(Debug, thiserror::Error)]
pub enum ColumnCacheError {
    /// A file operation failed.
    #[error("column cache {path}: {source}")]
    Io {
        /// Path under `columns/`.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Arrow could not encode the columns.
    #[error("column cache: encoding columns: {0}")]
    Encode(#[from] arrow_schema::ArrowError),
    /// Opening the data directory's `columns/` failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

fn io(path: impl Into<String>) -> impl FnOnce(std::io::Error) -> ColumnCacheError {
    let path = path.into();
    move |source| ColumnCacheError::Io { path, source }
}

/// What the cache did, since it was opened: Prometheus counters, registered on `/metrics` by
/// [`metrics::register`] (and read by tests with `get()`).
#[derive(Debug, Default)]
pub struct CacheStats {
    /// Partition files read from the cache.
    pub hits: Counter,
    /// Partition files read as JSON because some column was missing.
    pub misses: Counter,
    /// Bytes of cache files read by hits.
    pub bytes_read: Counter,
    /// Partition files whose columns were written.
    pub writes: Counter,
    /// Bytes of cache files written.
    pub bytes_written: Counter,
    /// Writes that failed (the job goes on without caching that file).
    pub write_errors: Counter,
    /// Cache files found unreadable and deleted.
    pub bad_files: Counter,
    /// Files deleted to keep the budget, and their bytes.
    pub evicted_files: Counter,
    /// Bytes of the evicted files.
    pub evicted_bytes: Counter,
}

/// The column cache of one data directory (or, for `s3://` data, of a local cache directory).
#[derive(Debug)]
pub struct ColumnCache {
    dir: Dir,
    budget: u64,
    /// Bytes under `columns/` as last counted plus what was written since.
    used: AtomicU64,
    /// Held while files are renamed into place and while evicting, so the byte count and the
    /// files on disk agree (writers of one cache take turns; encoding happens outside it).
    writing: Mutex<()>,
    /// Counters for the metrics and tests.
    pub stats: CacheStats,
}

/// Why [`ColumnCache::load`] missed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Miss {
    /// Cache files of the key found unreadable (cut, garbage, another key's) and deleted: 0 when
    /// a file was simply absent.
    pub bad_files: u64,
}

impl Miss {
    const ABSENT: Miss = Miss { bad_files: 0 };
}

/// A partition file's identity in the cache.
#[derive(Debug, Clone)]
pub struct FileKey {
    /// What the cache files record and are checked against.
    identity: String,
    /// Directory name under `columns/`.
    hash: String,
}

impl FileKey {
    /// The key of `file` whose source reports `version` for it.
    pub fn new(file: &PartitionFile, version: &str) -> FileKey {
        let identity = format!("{}\n{}\n{version}", file.path, file.size);
        FileKey {
            hash: short_hash(&identity),
            identity,
        }
    }
}

fn short_hash(text: &str) -> String {
    hex::encode(&Sha256::digest(text.as_bytes())[..16])
}

fn pointer_file(pointer: &str) -> String {
    format!("{}.arrow", short_hash(pointer))
}

impl ColumnCache {
    /// The cache in `data`'s `columns/`, holding at most `budget` bytes (0: the default, a tenth
    /// of the free space, at most 20 GiB). Deletes temporary files a crash left behind and
    /// counts what is there.
    pub fn open(data: &DataDir, budget: u64) -> Result<ColumnCache, ColumnCacheError> {
        let dir = data.sub(COLUMNS)?;
        let budget = match budget {
            0 => {
                let free = crate::ingest::disk::free_bytes(&dir).map_err(io(COLUMNS))?;
                (free / DEFAULT_FREE_SHARE).min(DEFAULT_MAX_BYTES)
            }
            n => n,
        };
        dir.create_dir_all(TMP).map_err(io(TMP))?;
        let cache = ColumnCache {
            dir,
            budget,
            used: AtomicU64::new(0),
            writing: Mutex::new(()),
            stats: CacheStats::default(),
        };
        cache.remove_stale_tmp()?;
        let used = cache.entries()?.iter().map(|e| e.size).sum();
        cache.used.store(used, Ordering::Relaxed);
        if used > budget {
            cache.evict(&cache.lock())?;
        }
        Ok(cache)
    }

    /// The byte budget.
    pub fn budget(&self) -> u64 {
        self.budget
    }

    /// Bytes the cache takes (as counted at open and after each eviction, plus writes since).
    pub fn used_bytes(&self) -> u64 {
        self.used.load(Ordering::Relaxed)
    }

    /// The columns of the partition file `key` for every one of `pointers`, or a [`Miss`] if
    /// any is missing or unreadable. Files that do not read back are deleted. A hit marks its
    /// files used.
    pub fn load(&self, key: &FileKey, pointers: &[String]) -> Result<Cached, Miss> {
        let loaded = self.try_load(key, pointers);
        match &loaded {
            Ok(cached) => {
                self.stats.hits.inc();
                self.stats.bytes_read.inc_by(cached.file_bytes)
            }
            Err(_) => self.stats.misses.inc(),
        };
        loaded
    }

    fn try_load(&self, key: &FileKey, pointers: &[String]) -> Result<Cached, Miss> {
        let rows_path = format!("{}/{ROWS_FILE}", key.hash);
        let mut file_bytes = 0u64;
        let bytes = self.read_touch(&rows_path).ok_or(Miss::ABSENT)?;
        file_bytes += bytes.len() as u64;
        let rows = self.checked(&rows_path, Rows::read(bytes, &key.identity))?;
        let n = rows.len();
        let mut fields = Vec::with_capacity(pointers.len());
        for pointer in pointers {
            let path = format!("{}/{}", key.hash, pointer_file(pointer));
            let bytes = self.read_touch(&path).ok_or(Miss::ABSENT)?;
            file_bytes += bytes.len() as u64;
            fields.push(self.checked(&path, FieldColumn::read(bytes, &key.identity, pointer, n))?);
        }
        Ok(Cached {
            rows,
            fields,
            file_bytes,
        })
    }

    /// A file's bytes, its modification time set to now (the LRU clock); `None` if absent.
    fn read_touch(&self, path: &str) -> Option<Vec<u8>> {
        use std::io::Read;
        let file = self.dir.open(path).ok()?;
        let mut file = file.into_std();
        let _ = file.set_modified(SystemTime::now());
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).ok()?;
        Some(bytes)
    }

    fn checked<T>(&self, path: &str, read: Result<T, BadCacheFile>) -> Result<T, Miss> {
        read.map_err(|e| {
            tracing::warn!(path, error = %e, "column cache file unusable; deleting it");
            self.stats.bad_files.inc();
            let _ = self.dir.remove_file(path);
            Miss { bad_files: 1 }
        })
    }

    /// Columns to fill while reading a partition file for `pointers` fields.
    pub fn pending(&self, pointers: usize) -> Pending {
        let cap = usize::try_from(self.budget / 2)
            .unwrap_or(usize::MAX)
            .min(MAX_PENDING_BYTES);
        Pending::new(pointers, cap)
    }

    /// Writes the columns of partition file `key` (each file to `tmp/`, then renamed into
    /// place), then evicts if the budget is passed. Returns the bytes written.
    pub fn store(
        &self,
        key: &FileKey,
        pointers: &[String],
        pending: Pending,
    ) -> Result<u64, ColumnCacheError> {
        if !pending.usable() {
            return Ok(0);
        }
        let (rows, files) = pending.finish(&key.identity, pointers)?;
        let total: u64 = rows.len() as u64 + files.iter().map(|f| f.len() as u64).sum::<u64>();
        if total > self.budget / 2 {
            return Ok(0);
        }
        let turn = self.lock();
        self.dir.create_dir_all(&key.hash).map_err(io(&key.hash))?;
        // Field files first: the rows file is what makes them visible as a set.
        for (pointer, bytes) in pointers.iter().zip(&files) {
            self.put(&format!("{}/{}", key.hash, pointer_file(pointer)), bytes)?;
        }
        self.put(&format!("{}/{ROWS_FILE}", key.hash), &rows)?;
        self.stats.writes.inc();
        self.stats.bytes_written.inc_by(total);
        if self.used.fetch_add(total, Ordering::Relaxed) + total > self.budget {
            self.evict(&turn)?;
        }
        Ok(total)
    }

    fn put(&self, path: &str, bytes: &[u8]) -> Result<(), ColumnCacheError> {
        let tmp = format!("{TMP}/{}", uuid::Uuid::new_v4().simple());
        let result = self
            .dir
            .write(&tmp, bytes)
            .map_err(io(&tmp))
            .and_then(|()| self.dir.rename(&tmp, &self.dir, path).map_err(io(path)));
        if result.is_err() {
            let _ = self.dir.remove_file(&tmp);
        }
        result
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ()> {
        self.writing.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Deletes least recently used files until the cache fits its budget (with the write turn
    /// held).
    fn evict(&self, _turn: &std::sync::MutexGuard<'_, ()>) -> Result<(), ColumnCacheError> {
        let mut entries = self.entries()?;
        let mut used: u64 = entries.iter().map(|e| e.size).sum();
        entries.sort_by_key(|e| e.used);
        for entry in entries {
            if used <= self.budget {
                break;
            }
            if self.dir.remove_file(&entry.path).is_ok() {
                used -= entry.size;
                self.stats.evicted_files.inc();
                self.stats.evicted_bytes.inc_by(entry.size);
                if let Some((dir, _)) = entry.path.split_once('/') {
                    let _ = self.dir.remove_dir(dir); // only succeeds once it is empty
                }
            }
        }
        self.used.store(used, Ordering::Relaxed);
        Ok(())
    }

    /// Every cache file: `<key>/<file>`, size and last use.
    fn entries(&self) -> Result<Vec<Entry>, ColumnCacheError> {
        let mut out = Vec::new();
        for dir in self.dir.entries().map_err(io(COLUMNS))? {
            let dir = dir.map_err(io(COLUMNS))?;
            let Ok(name) = dir.file_name().into_string() else {
                continue;
            };
            if name == TMP || !dir.file_type().map_err(io(&name))?.is_dir() {
                continue;
            }
            let Ok(sub) = dir.open_dir() else { continue };
            for file in sub.entries().map_err(io(&name))? {
                let Ok(file) = file else { continue };
                let Ok(meta) = file.metadata() else { continue };
                let used = meta
                    .modified()
                    .map(|t| t.into_std())
                    .unwrap_or(SystemTime::UNIX_EPOCH);
                out.push(Entry {
                    path: format!("{name}/{}", file.file_name().to_string_lossy()),
                    size: meta.len(),
                    used,
                });
            }
        }
        Ok(out)
    }

    fn remove_stale_tmp(&self) -> Result<(), ColumnCacheError> {
        let tmp = self.dir.open_dir(TMP).map_err(io(TMP))?;
        let now = SystemTime::now();
        for entry in tmp.entries().map_err(io(TMP))? {
            let Ok(entry) = entry else { continue };
            let old = entry
                .metadata()
                .and_then(|m| m.modified())
                .map(|t| now.duration_since(t.into_std()).unwrap_or_default() > STALE_TMP)
                .unwrap_or(false);
            if old {
                let _ = tmp.remove_file(entry.file_name());
            }
        }
        Ok(())
    }
}

struct Entry {
    path: String,
    size: u64,
    used: SystemTime,
}
