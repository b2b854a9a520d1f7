//! [`StorageWriter`]: appends `id\tjson` lines to compressed partition files, one open file per
//! partition, rotating by size and age. A file is compressed as it is written (no uncompressed
//! copy) under a `.partial` name and renamed to its final name only once its stream is
//! complete and synced, so readers and the S3 exporter never see a partial file. Every file
//! finished is reported as a [`FinishedFile`]. A writer holds the storage directory's shared
//! [`WriterLock`] for its whole life, so start-up recovery never takes its files for stale ones.
//!
//! A [`PublishHook`] (set with [`StorageWriter::set_publish_hook`]) is told about files whose
//! stream is complete and synced just before they are renamed, with the records written through
//! [`StorageWriter::write_tracked`]: the dedup index commits their ids there, in the same step
//! as the files become visible (see `convert::dedup`).

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
    /// recently written eighth of them. Bounds memory: each zstd/xz encoder holds its own window (default 128).
    pub max_open_files: usize,
}

/// Eviction finishes `max_open_files / EVICTION_BATCH_DIVISOR` files at once (at least one).
const EVICTION_BATCH_DIVISOR: usize = 8;

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

/// A record written with [`StorageWriter::write_tracked`]: its document id and submission day
/// (`YYYYMMDD`), handed to the [`PublishHook`] with the file that holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackedRecord {
    /// The document id.
    pub id: Box<str>,
    /// The partition day (`YYYYMMDD`).
    pub day: u32,
}

/// A partition file whose stream is complete and synced, about to get (or just given) its
/// final name.
#[derive(Debug)]
pub struct SealedFile {
    /// Final path relative to the storage directory (the file is `<path>.partial` until renamed).
    pub path: String,
    /// The tracked records in it, in write order.
    pub tracked: Vec<TrackedRecord>,
}

/// Told when partition files are published, so state kept beside storage (the dedup index)
/// commits at the same points as the files. Called from the writing thread.
pub trait PublishHook: Send {
    /// `files` are synced and about to be renamed to their final names. An error keeps them
    /// `.partial` (start-up recovery moves them aside later) and is returned by the writer.
    fn before_publish(&mut self, files: &[SealedFile]) -> Result<(), StorageError>;
    /// `files` now have their final names.
    fn published(&mut self, files: &[SealedFile]);
    /// `files` will not be published (their stream could not be completed or renamed): their
    /// tracked records are not stored.
    fn abandoned(&mut self, files: &[SealedFile]);
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
    /// Records written with [`StorageWriter::write_tracked`].
    tracked: Vec<TrackedRecord>,
}

/// Writes records into partition files under the storage directory.
pub struct StorageWriter {
    dir: Dir,
    schema: Schema,
    options: WriterOptions,
    open: HashMap<String, OpenFile>,
    finished: Vec<FinishedFile>,
    writes: u64,
    /// Told before and after files are renamed to their final names.
    hook: Option<Box<dyn PublishHook>>,
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
            hook: None,
            _lock: lock,
        }
    }

    /// The schema the dimensions follow.
    pub fn schema(&self) -> &Schema {
        &self.schema
    }

    /// Sets the hook told about every file published from now on.
    pub fn set_publish_hook(&mut self, hook: Box<dyn PublishHook>) {
        self.hook = Some(hook);
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
        self.write_tracked(dims, version, id, json, None)
    }

    /// [`write`](Self::write), and when `day` is given, remembers `(id, day)` with the file the
    /// record went to, for the [`PublishHook`].
    pub fn write_tracked(
        &mut self,
        dims: &[String],
        version: u32,
        id: &str,
        json: &str,
        day: Option<u32>,
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
        if let Some(day) = day {
            file.tracked.push(TrackedRecord { id: id.into(), day });
        }
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
        self.finish_files(&keys)
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
            tracked: Vec::new(),
        })
    }

    /// Finishes the least recently written eighth of the open files (at least one) in one
    /// batch: a [`PublishHook`] then commits them together (one durable dedup commit per batch
    /// instead of one per file when many partitions churn through the open set).
    fn finish_least_recent(&mut self) -> Result<(), StorageError> {
        let batch = (self.options.max_open_files / EVICTION_BATCH_DIVISOR).max(1);
        let mut by_age: Vec<(u64, &String)> =
            self.open.iter().map(|(k, f)| (f.last_write, k)).collect();
        by_age.sort_unstable();
        let keys: Vec<String> = by_age
            .into_iter()
            .take(batch)
            .map(|(_, k)| k.clone())
            .collect();
        self.finish_files(&keys)
    }

    /// Completes the stream, syncs it and renames it to its final name.
    fn finish_file(&mut self, key: &str) -> Result<(), StorageError> {
        self.finish_files(&[key.to_string()])
    }

    /// Completes and syncs the streams of the files open under `keys`, tells the hook (one
    /// call for all of them), then renames each to its final name. Every file is attempted; the
    /// first error is returned.
    fn finish_files(&mut self, keys: &[String]) -> Result<(), StorageError> {
        let mut first_error = None;
        let mut sealed = Vec::new();
        let mut sizes = Vec::new();
        let mut failed = Vec::new();
        for key in keys {
            let Some(file) = self.open.remove(key) else {
                continue;
            };
            let partial = format!("{}{PARTIAL_SUFFIX}", file.path);
            let io = |e| StorageError::io(partial.clone(), e);
            let done = file.encoder.finish().map_err(io).and_then(|out| {
                out.sync_data().map_err(io)?;
                Ok(out.metadata().map_err(io)?.len())
            });
            let seal = SealedFile {
                path: file.path,
                tracked: file.tracked,
            };
            match done {
                Ok(size) => {
                    sizes.push((file.name.dims, size, file.records, file.bytes));
                    sealed.push(seal);
                }
                Err(e) => {
                    first_error.get_or_insert(e);
                    failed.push(seal);
                }
            }
        }
        if let Some(hook) = self.hook.as_mut() {
            if !failed.is_empty() {
                hook.abandoned(&failed);
            }
            if !sealed.is_empty() {
                if let Err(e) = hook.before_publish(&sealed) {
                    // Not renamed: the files stay `.partial`, their records unpublished.
                    hook.abandoned(&sealed);
                    return Err(first_error.unwrap_or(e));
                }
            }
        }
        let mut published = Vec::new();
        let mut not_renamed = Vec::new();
        for (seal, (dims, size, records, bytes)) in sealed.into_iter().zip(sizes) {
            let partial = format!("{}{PARTIAL_SUFFIX}", seal.path);
            match self.dir.rename(&partial, &self.dir, &seal.path) {
                Ok(()) => {
                    self.finished.push(FinishedFile {
                        path: seal.path.clone(),
                        dims,
                        size,
                        records,
                        uncompressed_bytes: bytes,
                    });
                    published.push(seal);
                }
                Err(e) => {
                    first_error.get_or_insert(StorageError::io(partial, e));
                    not_renamed.push(seal);
                }
            }
        }
        if let Some(hook) = self.hook.as_mut() {
            if !published.is_empty() {
                hook.published(&published);
            }
            if !not_renamed.is_empty() {
                hook.abandoned(&not_renamed);
            }
        }
        first_error.map_or(Ok(()), Err)
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

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::storage::DataDir;

    /// Records each hook call with what the storage directory held at that moment.
    struct Recorder {
        dir: Dir,
        calls: Arc<Mutex<Vec<String>>>,
    }

    impl PublishHook for Recorder {
        fn before_publish(&mut self, files: &[SealedFile]) -> Result<(), StorageError> {
            for f in files {
                let partial = self.dir.exists(format!("{}{PARTIAL_SUFFIX}", f.path));
                let ids: Vec<&str> = f.tracked.iter().map(|r| &*r.id).collect();
                self.calls.lock().unwrap().push(format!(
                    "before {ids:?} partial={partial} final={}",
                    self.dir.exists(&f.path)
                ));
            }
            Ok(())
        }
        fn published(&mut self, files: &[SealedFile]) {
            for f in files {
                self.calls
                    .lock()
                    .unwrap()
                    .push(format!("published final={}", self.dir.exists(&f.path)));
            }
        }
        fn abandoned(&mut self, files: &[SealedFile]) {
            self.calls
                .lock()
                .unwrap()
                .push(format!("abandoned {}", files.len()));
        }
    }

    #[test]
    fn the_hook_sees_synced_files_with_their_tracked_ids_before_the_rename() {
        let tmp = tempfile::tempdir().unwrap();
        let data = DataDir::open(tmp.path()).unwrap();
        let dir = data.sub("storage").unwrap();
        let schema = Schema::from_json(crate::convert::DEFAULT_SCHEMA).unwrap();
        let mut writer =
            StorageWriter::new(dir.try_clone().unwrap(), schema, WriterOptions::default());
        let calls = Arc::new(Mutex::new(Vec::new()));
        writer.set_publish_hook(Box::new(Recorder {
            dir,
            calls: calls.clone(),
        }));
        let dims: Vec<String> = ["main", "Firefox", "release", "61.0", "20180101", "20261201"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        writer
            .write_tracked(&dims, 4, "a", "{}", Some(20261201))
            .unwrap();
        writer.write(&dims, 4, "untracked", "{}").unwrap();
        writer
            .write_tracked(&dims, 4, "b", "{}", Some(20261201))
            .unwrap();
        let files = writer.finish().unwrap();
        assert_eq!(files.len(), 1);
        assert_eq!(files[0].records, 3);
        assert_eq!(
            *calls.lock().unwrap(),
            [
                "before [\"a\", \"b\"] partial=true final=false",
                "published final=true"
            ]
        );
    }

    /// Counts the files of each `before_publish` call.
    struct BatchSizes(Arc<Mutex<Vec<usize>>>);

    impl PublishHook for BatchSizes {
        fn before_publish(&mut self, files: &[SealedFile]) -> Result<(), StorageError> {
            self.0.lock().unwrap().push(files.len());
            Ok(())
        }
        fn published(&mut self, _: &[SealedFile]) {}
        fn abandoned(&mut self, _: &[SealedFile]) {}
    }

    #[test]
    fn eviction_finishes_the_least_recent_eighth_in_one_hook_call() {
        let tmp = tempfile::tempdir().unwrap();
        let data = DataDir::open(tmp.path()).unwrap();
        let schema = Schema::from_json(crate::convert::DEFAULT_SCHEMA).unwrap();
        let options = WriterOptions {
            max_open_files: 16,
            ..WriterOptions::default()
        };
        let mut writer = StorageWriter::new(data.sub("storage").unwrap(), schema, options);
        let batches = Arc::new(Mutex::new(Vec::new()));
        writer.set_publish_hook(Box::new(BatchSizes(batches.clone())));
        let dims = |version: usize| -> Vec<String> {
            let version = format!("{version}.0");
            [
                "main", "Firefox", "release", &version, "20180101", "20261201",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect()
        };
        for version in 0..17 {
            writer.write(&dims(version), 4, "id", "{}").unwrap();
        }
        assert_eq!(writer.open_files(), 15, "two evicted, the 17th opened");
        let evicted = writer.take_finished();
        let versions: Vec<&str> = evicted.iter().map(|f| f.dims[3].as_str()).collect();
        assert_eq!(versions, ["0.0", "1.0"], "the least recently written");
        assert_eq!(*batches.lock().unwrap(), [2], "one hook call for the batch");
    }
}
