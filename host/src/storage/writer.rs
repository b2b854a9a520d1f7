//! [`StorageWriter`]: appends `id\tjson` lines to compressed partition files, one open file per
//! partition, rotating by size and age. A file is compressed as it is written (no uncompressed
//! copy) under a `.partial` name and renamed to its final name only once its stream is
//! complete and synced, so readers and the S3 exporter never see a partial file. Every file
//! finished is reported as a [`FinishedFile`]. A writer holds the storage directory's shared
//! [`WriterLock`] for its whole life, so start-up recovery never takes its files for stale ones.

use std::borrow::Cow;
use std::collections::HashMap;
use std::io::Write;
use std::time::{Duration, Instant};

use cap_std::fs::{Dir, File};

use super::codec::{Codec, Encoder};
use super::partition::{PartitionName, PARTIAL_SUFFIX};
use super::stale::WriterLock;
use super::{PartitionFile, Schema, StorageError};

/// How a [`StorageWriter`] compresses and rotates. Build with `..WriterOptions::default()`.
#[derive(Debug, Clone)]
pub struct WriterOptions {
    /// Codec of new files (default zstd level 3).
    pub codec: Codec,
    /// A file is finished once this many uncompressed bytes of lines were written to it
    /// (default 500 MB, the seed's `max_log_size`).
    pub max_file_bytes: u64,
    /// A file is finished once it has been open this long, so data becomes visible to jobs
    /// and export within a bounded time (default 5 minutes).
    pub max_file_age: Duration,
    /// At most this many files are open at once; opening one more finishes the least
    /// recently written. Bounds memory: each zstd/xz encoder holds its own window (default 128).
    pub max_open_files: usize,
}

impl Default for WriterOptions {
    fn default() -> Self {
        WriterOptions {
            codec: Codec::default(),
            max_file_bytes: 500_000_000,
            max_file_age: Duration::from_secs(300),
            max_open_files: 128,
        }
    }
}

/// A partition file that is complete and under its final name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FinishedFile {
    /// Path relative to the storage directory, `/`-separated.
    pub path: String,
    /// Stored dimension values of its partition.
    pub dims: Vec<String>,
    /// Compressed size in bytes.
    pub size: u64,
    /// Lines (records) in it.
    pub records: u64,
    /// Uncompressed bytes of its lines.
    pub uncompressed_bytes: u64,
}

impl FinishedFile {
    /// The file as a job input.
    pub fn partition_file(&self) -> PartitionFile {
        PartitionFile {
            path: self.path.clone(),
            dims: self.dims.clone(),
            size: self.size,
        }
    }
}

struct OpenFile {
    encoder: Encoder<File>,
    name: PartitionName,
    path: String,
    records: u64,
    bytes: u64,
    opened: Instant,
    /// Write sequence number of the last line, for least-recently-written eviction.
    last_write: u64,
}

/// Writes records into partition files under the storage directory.
pub struct StorageWriter {
    dir: Dir,
    schema: Schema,
    options: WriterOptions,
    open: HashMap<String, OpenFile>,
    finished: Vec<FinishedFile>,
    writes: u64,
    /// Released after `Drop` has finished the open files (fields drop after `drop`).
    _lock: Option<WriterLock>,
}

impl StorageWriter {
    /// A writer into `storage_dir` (usually `DataDir::sub("storage")`) for records whose
    /// dimensions follow `schema`.
    pub fn new(storage_dir: Dir, schema: Schema, options: WriterOptions) -> StorageWriter {
        let lock = WriterLock::shared(&storage_dir)
            .inspect_err(|error| {
                tracing::warn!(%error, "cannot take the storage writer lock; a concurrent start-up may take this writer's files for stale ones")
            })
            .ok();
        StorageWriter {
            dir: storage_dir,
            schema,
            options,
            open: HashMap::new(),
            finished: Vec::new(),
            writes: 0,
            _lock: lock,
        }
    }

    /// The schema the dimensions follow.
    pub fn schema(&self) -> &Schema {
        &self.schema
    }

    /// Number of files currently open.
    pub fn open_files(&self) -> usize {
        self.open.len()
    }

    /// Appends one record. `dims` are schema-applied values ([`Schema::apply`]), `version` the
    /// payload version (`v<N>` in the name), `id` the document id and `json` the record.
    /// A tab, CR or LF in the id becomes `_`; a raw tab, CR or LF in the JSON becomes a space
    /// (outside strings it is whitespace; inside, JSON forbids it), so one record is one line.
    pub fn write(
        &mut self,
        dims: &[String],
        version: u32,
        id: &str,
        json: &str,
    ) -> Result<(), StorageError> {
        if dims.len() != self.schema.len() {
            return Err(StorageError::DimensionCount {
                expected: self.schema.len(),
                actual: dims.len(),
            });
        }
        let name = PartitionName::new(dims, version);
        let key = name.file_path("", "");
        if self
            .open
            .get(&key)
            .is_some_and(|f| f.opened.elapsed() >= self.options.max_file_age)
        {
            self.finish_file(&key)?;
        }
        if !self.open.contains_key(&key) {
            if self.open.len() >= self.options.max_open_files.max(1) {
                self.finish_least_recent()?;
            }
            let file = self.create(name)?;
            self.open.insert(key.clone(), file);
        }
        self.writes += 1;
        let file = self.open.get_mut(&key).expect("inserted above");
        let id = clean(
            id,
            memchr::memchr3(b'\t', b'\r', b'\n', id.as_bytes()).is_some(),
            '_',
        );
        let json = clean(
            json,
            memchr::memchr3(b'\t', b'\r', b'\n', json.as_bytes()).is_some(),
            ' ',
        );
        let line = [id.as_bytes(), b"\t", json.as_bytes(), b"\n"];
        for part in line {
            file.encoder
                .write_all(part)
                .map_err(|e| StorageError::io(format!("{}{PARTIAL_SUFFIX}", file.path), e))?;
        }
        file.records += 1;
        file.bytes += (id.len() + json.len() + 2) as u64;
        file.last_write = self.writes;
        if file.bytes >= self.options.max_file_bytes {
            self.finish_file(&key)?;
        }
        Ok(())
    }

    /// Finishes every file open for at least `max_file_age` as of `now`, and returns all files
    /// finished since the last call (by size, age or eviction).
    pub fn rotate_expired_at(&mut self, now: Instant) -> Result<Vec<FinishedFile>, StorageError> {
        let expired: Vec<String> = self
            .open
            .iter()
            .filter(|(_, f)| now.saturating_duration_since(f.opened) >= self.options.max_file_age)
            .map(|(k, _)| k.clone())
            .collect();
        for key in expired {
            self.finish_file(&key)?;
        }
        Ok(self.take_finished())
    }

    /// [`rotate_expired_at`](Self::rotate_expired_at) now; call it periodically.
    pub fn rotate_expired(&mut self) -> Result<Vec<FinishedFile>, StorageError> {
        self.rotate_expired_at(Instant::now())
    }

    /// Files finished since the last call (by size, age or eviction), in order.
    pub fn take_finished(&mut self) -> Vec<FinishedFile> {
        std::mem::take(&mut self.finished)
    }

    /// Finishes every open file; returns all files finished and not yet taken. Every file is
    /// attempted; the first error is returned.
    pub fn finish(mut self) -> Result<Vec<FinishedFile>, StorageError> {
        self.finish_all()?;
        Ok(self.take_finished())
    }

    fn finish_all(&mut self) -> Result<(), StorageError> {
        let mut keys: Vec<String> = self.open.keys().cloned().collect();
        keys.sort();
        let mut first_error = None;
        for key in keys {
            if let Err(e) = self.finish_file(&key) {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    fn create(&self, name: PartitionName) -> Result<OpenFile, StorageError> {
        let dir = name.dir();
        if !dir.is_empty() {
            self.dir
                .create_dir_all(&dir)
                .map_err(|e| StorageError::io(dir.clone(), e))?;
        }
        let uuid = uuid::Uuid::new_v4().simple().to_string();
        let path = name.file_path(&uuid, self.options.codec.extension());
        let partial = format!("{path}{PARTIAL_SUFFIX}");
        let file = self
            .dir
            .create(&partial)
            .map_err(|e| StorageError::io(partial.clone(), e))?;
        let encoder = self
            .options
            .codec
            .encoder(file)
            .map_err(|e| StorageError::io(partial.clone(), e))?;
        Ok(OpenFile {
            encoder,
            name,
            path,
            records: 0,
            bytes: 0,
            opened: Instant::now(),
            last_write: 0,
        })
    }

    fn finish_least_recent(&mut self) -> Result<(), StorageError> {
        let key = self
            .open
            .iter()
            .min_by_key(|(_, f)| f.last_write)
            .map(|(k, _)| k.clone());
        match key {
            Some(key) => self.finish_file(&key),
            None => Ok(()),
        }
    }

    /// Completes the stream, syncs it and renames it to its final name.
    fn finish_file(&mut self, key: &str) -> Result<(), StorageError> {
        let Some(file) = self.open.remove(key) else {
            return Ok(());
        };
        let partial = format!("{}{PARTIAL_SUFFIX}", file.path);
        let io = |e| StorageError::io(partial.clone(), e);
        let out = file.encoder.finish().map_err(io)?;
        out.sync_data().map_err(io)?;
        let size = out.metadata().map_err(io)?.len();
        drop(out);
        self.dir
            .rename(&partial, &self.dir, &file.path)
            .map_err(io)?;
        self.finished.push(FinishedFile {
            path: file.path,
            dims: file.name.dims,
            size,
            records: file.records,
            uncompressed_bytes: file.bytes,
        });
        Ok(())
    }
}

impl Drop for StorageWriter {
    /// A writer dropped without [`finish`](StorageWriter::finish) still completes its files, so
    /// no written record is left in a `.partial` file.
    fn drop(&mut self) {
        if let Err(error) = self.finish_all() {
            tracing::error!(%error, "finishing partition files on drop");
        }
    }
}

/// `text` with each tab, CR and LF replaced by `with` when `dirty` (found by a memchr scan);
/// borrowed otherwise.
fn clean(text: &str, dirty: bool, with: char) -> Cow<'_, str> {
    if !dirty {
        return Cow::Borrowed(text);
    }
    Cow::Owned(
        text.chars()
            .map(|c| {
                if matches!(c, '\t' | '\r' | '\n') {
                    with
                } else {
                    c
                }
            })
            .collect(),
    )
}
