//! The durable raw log writer: log files per shard, appends on the request's thread, group commit.
//!
//! A request appends its v2 record to a shard's current log under the shard's lock (no hand-off to
//! another thread), with one vectored `write` of the record's head and the body as received
//! ([`Record`]: the body is never copied into a record buffer). What happens next depends on the durability mode:
//!
//! - `none`: the request is answered at once (the record is in the page cache).
//! - `batch`: the request waits for the shard's sync thread. That thread runs one `fdatasync`
//!   covering every record written before it started, then publishes how far the log is synced;
//!   every waiting request whose record lies below that mark is answered together. Records written
//!   during a sync wait for the next one: group commit, so syncs per second are bounded by the disk,
//!   not by the request rate.
//! - `always`: the append and its own `fdatasync` run together on a blocking thread.
//!
//! A failed `write` is undone by truncating the log back to its last complete record, so a full
//! disk answers 507 and leaves no partial record. Logs rotate by size and by age (counted from the
//! first record, so a busy log rotates too); the sync thread syncs a rotated log, renames it
//! `.finished`, syncs the directory and announces it. Positions are logical byte counts over the
//! shard's life (never reused), so a failed sync can mark exactly the records it failed to cover.

use std::io::{IoSlice, Write};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;
use cap_std::fs::{Dir, OpenOptions};
use tokio::sync::{watch, Semaphore};

use super::config::{Durability, IngestConfig};
use super::disk::is_disk_full;
use super::metrics::IngestMetrics;
use crate::rawlog::logname::{LogNamer, FINISHED_SUFFIX};

/// Why a record was not acknowledged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WriteError {
    /// No space left for the raw log.
    #[error("disk full: {0}")]
    DiskFull(String),
    /// Any other raw log write failure.
    #[error("cannot write raw log: {0}")]
    Io(String),
    /// The bound on submissions in flight is reached; the client should retry.
    #[error("too many submissions in progress")]
    Overloaded,
    /// The writer no longer accepts submissions.
    #[error("the server is shutting down")]
    ShuttingDown,
}

impl WriteError {
    fn from_io(context: &str, err: std::io::Error) -> WriteError {
        if is_disk_full(&err) {
            WriteError::DiskFull(format!("{context}: {err}"))
        } else {
            WriteError::Io(format!("{context}: {err}"))
        }
    }
}

pub use crate::rawlog::logname::OnFinished;

/// One record to append: its head (for v2, everything before the body) and the body, written
/// together by one vectored write.
#[derive(Debug, Clone, Default)]
pub struct Record {
    head: Vec<u8>,
    body: Bytes,
}

impl Record {
    /// A v2 record of a submission (the body is referenced, not copied).
    pub fn v2(timestamp_ms: u64, ip: &str, path: &str, body: Bytes) -> Record {
        let mut head = Vec::with_capacity(16 + ip.len() + path.len());
        crate::rawlog::encode_v2_head(&mut head, timestamp_ms, ip, path, body.len());
        Record { head, body }
    }

    /// Bytes the record takes in the log.
    pub fn len(&self) -> usize {
        self.head.len() + self.body.len()
    }

    /// Whether the record has no bytes at all.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Writes the whole record (retrying short writes).
    fn write_to(&self, mut out: impl Write) -> std::io::Result<()> {
        let mut slices = [IoSlice::new(&self.head), IoSlice::new(&self.body)];
        let mut slices: &mut [IoSlice<'_>] = &mut slices;
        // Advancing by 0 drops empty slices at the front: with nothing to write the loop does
        // not run, so a writer's 0-byte answer below always means it took nothing.
        IoSlice::advance_slices(&mut slices, 0);
        while !slices.is_empty() {
            match out.write_vectored(slices) {
                Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
                Ok(n) => IoSlice::advance_slices(&mut slices, n),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

/// Already encoded bytes (any version) as one record.
impl From<Vec<u8>> for Record {
    fn from(head: Vec<u8>) -> Record {
        Record {
            head,
            body: Bytes::new(),
        }
    }
}

/// The set of writer shards. Shared behind an `Arc`.
pub struct WriterPool {
    shards: Vec<Arc<Shard>>,
    next: AtomicUsize,
    /// Submissions being written or waiting for their sync; none left → 503.
    permits: Arc<Semaphore>,
    durability: Durability,
    metrics: IngestMetrics,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

impl WriterPool {
    /// Starts `config.shard_count()` shards (each with its sync thread) writing logs in `raw`.
    pub fn start(
        raw: &Dir,
        config: &IngestConfig,
        metrics: IngestMetrics,
        on_finished: OnFinished,
    ) -> std::io::Result<WriterPool> {
        let count = config.shard_count();
        let mut shards = Vec::new();
        let mut threads = Vec::new();
        for index in 0..count {
            let shard = Arc::new(Shard {
                state: Mutex::new(ShardState {
                    dir: raw.try_clone()?,
                    namer: LogNamer::new(&config.log_base, index),
                    max_size: config.max_log_size,
                    max_age: Duration::from_millis(config.max_log_age_ms),
                    current: None,
                    retiring: Vec::new(),
                    written: 0,
                    records: 0,
                    wants_sync: config.durability == Durability::Batch,
                    sync_idle: false,
                    closed: false,
                    metrics: metrics.clone(),
                }),
                wake: Condvar::new(),
                synced: watch::Sender::new(SyncMark::default()),
            });
            let thread_shard = shard.clone();
            let durability = config.durability;
            let metrics = metrics.clone();
            let on_finished = on_finished.clone();
            threads.push(
                std::thread::Builder::new()
                    .name(format!("rawlog-sync-{index}"))
                    .spawn(move || sync_loop(&thread_shard, durability, &metrics, &on_finished))?,
            );
            shards.push(shard);
        }
        Ok(WriterPool {
            shards,
            next: AtomicUsize::new(0),
            permits: Arc::new(Semaphore::new(config.queue_capacity.saturating_mul(count))),
            durability: config.durability,
            metrics,
            threads: Mutex::new(threads),
        })
    }

    /// Appends one record and resolves once it is in the log (and synced, per the durability).
    /// With every permit taken the answer is [`WriteError::Overloaded`]: the caller answers 503.
    pub async fn append(&self, record: impl Into<Record>) -> Result<(), WriteError> {
        let record: Record = record.into();
        let _permit = self
            .permits
            .clone()
            .try_acquire_owned()
            .map_err(|_| WriteError::Overloaded)?;
        self.metrics.queue_depth.inc();
        let _depth = DecOnDrop(&self.metrics);
        let shard = self.pick();
        match self.durability {
            Durability::None => shard.append(|state| state.append(&record)).map(|_| ()),
            Durability::Always => {
                let task = tokio::task::spawn_blocking(move || {
                    shard.append(|state| state.append_synced(&record))
                });
                task.await
                    .unwrap_or_else(|_| Err(WriteError::Io("writer task panicked".into())))
            }
            Durability::Batch => {
                let end = shard.append(|state| state.append(&record))?;
                let mut synced = shard.synced.subscribe();
                let mark = synced
                    .wait_for(|mark| mark.synced >= end || mark.failed(end))
                    .await
                    .map_err(|_| WriteError::ShuttingDown)?;
                if mark.failed(end) {
                    Err(WriteError::Io(
                        "fdatasync failed; the record may not be durable".into(),
                    ))
                } else {
                    Ok(())
                }
            }
        }
    }

    /// A shard whose lock is free right now if there is one (round robin otherwise).
    fn pick(&self) -> Arc<Shard> {
        let n = self.shards.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        for i in 0..n {
            let shard = &self.shards[(start + i) % n];
            if shard.state.try_lock().is_ok() {
                return shard.clone();
            }
        }
        self.shards[start % n].clone()
    }

    /// Syncs and finishes every log, stops the sync threads. Later appends get `ShuttingDown`.
    pub fn close(&self) {
        for shard in &self.shards {
            shard.lock().closed = true;
            shard.wake.notify_all();
        }
        for thread in self
            .threads
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain(..)
        {
            if thread.join().is_err() {
                tracing::error!("a raw log sync thread panicked");
            }
        }
    }
}

struct DecOnDrop<'a>(&'a IngestMetrics);

impl Drop for DecOnDrop<'_> {
    fn drop(&mut self) {
        self.0.queue_depth.dec();
    }
}

/// How far a shard's logs are synced, and the ranges a failed sync could not cover.
#[derive(Clone, Default)]
struct SyncMark {
    /// Every record ending at or before this logical position is synced.
    synced: u64,
    /// Half-open `(start, end]` ranges of records whose sync failed.
    failures: Arc<Vec<(u64, u64)>>,
}

impl SyncMark {
    fn failed(&self, end: u64) -> bool {
        self.failures
            .iter()
            .any(|&(start, stop)| end > start && end <= stop)
    }
}

struct Shard {
    state: Mutex<ShardState>,
    /// Wakes the sync thread: data to sync, a log to finish, or shutdown.
    wake: Condvar,
    synced: watch::Sender<SyncMark>,
}

impl Shard {
    fn lock(&self) -> MutexGuard<'_, ShardState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs an append under the lock, then wakes the sync thread if it is idle and has work:
    /// data to sync (`batch`) or a rotated log to finish.
    fn append<R>(
        &self,
        f: impl FnOnce(&mut ShardState) -> Result<R, WriteError>,
    ) -> Result<R, WriteError> {
        let mut state = self.lock();
        let result = f(&mut state);
        let wake = state.sync_idle && (state.wants_sync || !state.retiring.is_empty());
        if wake {
            state.sync_idle = false;
        }
        drop(state);
        if wake {
            self.wake.notify_one();
        }
        result
    }
}

/// A log file being written or waiting to be finished.
struct OpenLog {
    name: String,
    file: Arc<std::fs::File>,
    /// Bytes of complete records in the file (what a failed write is truncated back to).
    len: u64,
    opened: Instant,
    /// The directory entry still needs an fsync (done by the sync thread before acknowledging).
    dir_unsynced: bool,
}

struct ShardState {
    dir: Dir,
    namer: LogNamer,
    max_size: u64,
    max_age: Duration,
    current: Option<OpenLog>,
    /// Rotated logs the sync thread has to sync, rename and announce (oldest first).
    retiring: Vec<OpenLog>,
    /// Logical bytes appended over the shard's life.
    written: u64,
    /// Records appended over the shard's life.
    records: u64,
    /// The sync thread must be woken for every append (`batch`).
    wants_sync: bool,
    /// The sync thread is waiting (so an append must wake it).
    sync_idle: bool,
    closed: bool,
    metrics: IngestMetrics,
}

impl ShardState {
    /// Appends one record; returns its logical end position.
    fn append(&mut self, record: &Record) -> Result<u64, WriteError> {
        if self.closed {
            return Err(WriteError::ShuttingDown);
        }
        self.rotate_if_due();
        self.open_if_needed()?;
        let log = self.current.as_mut().expect("opened above");
        if let Err(err) = record.write_to(&*log.file) {
            self.metrics.write_errors.inc();
            // Undo the partial append so the log ends with a complete record.
            if let Err(trunc) = log.file.set_len(log.len) {
                tracing::error!(file = %log.name, error = %trunc, "cannot truncate after a failed write; leaving the log for recovery");
                self.current = None;
            }
            return Err(WriteError::from_io("write", err));
        }
        log.len += record.len() as u64;
        self.written += record.len() as u64;
        self.records += 1;
        self.metrics.written_records.inc();
        self.metrics.written_bytes.inc_by(record.len() as u64);
        if log.len >= self.max_size {
            self.retire_current();
        }
        Ok(self.written)
    }

    /// `always` mode: append, then sync this record before returning.
    fn append_synced(&mut self, record: &Record) -> Result<(), WriteError> {
        let rotated_before = self.retiring.len();
        let was_open = self.current.as_ref().map(|log| (log.name.clone(), log.len));
        self.append(record)?;
        // The record is in the current log, or in the log just retired because it filled up.
        let log = match (&self.current, self.retiring.len() > rotated_before) {
            (_, true) => self.retiring.last_mut(),
            (Some(_), false) => self.current.as_mut(),
            (None, false) => None,
        };
        let Some(log) = log else { return Ok(()) };
        let result = sync_timed(&log.file, &self.metrics).and_then(|()| {
            if log.dir_unsynced {
                sync_dir(&self.dir)?;
                log.dir_unsynced = false;
            }
            Ok(())
        });
        self.metrics.batch_records.observe(1.0);
        result.map_err(|err| {
            self.metrics.write_errors.inc();
            let keep = was_open
                .filter(|(name, _)| *name == log.name)
                .map_or(0, |(_, len)| len);
            if log.file.set_len(keep).is_ok() {
                log.len = keep;
            }
            WriteError::from_io("fdatasync", err)
        })
    }

    fn open_if_needed(&mut self) -> Result<(), WriteError> {
        if self.current.is_none() {
            let mut options = OpenOptions::new();
            options.append(true).create_new(true);
            let (name, file) = loop {
                let name = self.namer.next_name();
                if self.dir.exists(format!("{name}{FINISHED_SUFFIX}")) {
                    continue;
                }
                match self.dir.open_with(&name, &options) {
                    Ok(file) => break (name, file.into_std()),
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                    Err(e) => {
                        self.metrics.write_errors.inc();
                        return Err(WriteError::from_io("create raw log", e));
                    }
                }
            };
            tracing::debug!(file = %name, "opened raw log");
            self.current = Some(OpenLog {
                name,
                file: Arc::new(file),
                len: 0,
                opened: Instant::now(),
                dir_unsynced: true,
            });
        }
        Ok(())
    }

    fn rotate_if_due(&mut self) {
        if self
            .current
            .as_ref()
            .is_some_and(|log| log.opened.elapsed() >= self.max_age || log.len >= self.max_size)
        {
            self.retire_current();
        }
    }

    fn retire_current(&mut self) {
        if let Some(log) = self.current.take() {
            self.retiring.push(log);
        }
    }
}

/// One shard's background thread: group commit (`batch`), age rotation, finishing rotated logs.
fn sync_loop(
    shard: &Shard,
    durability: Durability,
    metrics: &IngestMetrics,
    on_finished: &OnFinished,
) {
    let mut synced = 0u64;
    let mut synced_records = 0u64;
    let dir = shard.lock().dir.try_clone();
    loop {
        let (retiring, current, target, records, closed) = {
            let mut state = shard.lock();
            loop {
                if state.closed {
                    state.retire_current();
                    break;
                }
                let unsynced = durability == Durability::Batch && state.written > synced;
                if unsynced || !state.retiring.is_empty() {
                    break;
                }
                let timeout = match &state.current {
                    Some(log) => state.max_age.saturating_sub(log.opened.elapsed()),
                    None => Duration::from_secs(3600),
                };
                if timeout.is_zero() {
                    state.retire_current();
                    continue;
                }
                state.sync_idle = true;
                state = shard
                    .wake
                    .wait_timeout(state, timeout)
                    .unwrap_or_else(|e| e.into_inner())
                    .0;
                state.sync_idle = false;
            }
            let current = state.current.as_mut().map(|log| {
                let needs_dir = std::mem::replace(&mut log.dir_unsynced, false);
                (log.file.clone(), needs_dir)
            });
            let retiring = std::mem::take(&mut state.retiring);
            (
                retiring,
                current,
                state.written,
                state.records,
                state.closed,
            )
        };
        let mut ok = true;
        // Older records first: the rotated logs, then the current one.
        for log in retiring {
            ok &= finish_log(log, dir.as_ref().ok(), metrics, on_finished);
        }
        if durability == Durability::Batch {
            if let Some((file, needs_dir)) = current {
                if let Err(err) = sync_timed(&file, metrics) {
                    tracing::error!(error = %err, "fdatasync of a raw log failed");
                    ok = false;
                }
                if needs_dir {
                    if let Err(err) = dir
                        .as_ref()
                        .map_err(|e| std::io::Error::new(e.kind(), e.to_string()))
                        .and_then(sync_dir)
                    {
                        tracing::error!(error = %err, "cannot sync the raw log directory");
                        ok = false;
                    }
                }
            }
            if target > synced {
                metrics
                    .batch_records
                    .observe((records - synced_records) as f64);
                shard.synced.send_modify(|mark| {
                    if !ok {
                        metrics.write_errors.inc();
                        let mut failures = (*mark.failures).clone();
                        failures.push((synced, target));
                        mark.failures = Arc::new(failures);
                    }
                    mark.synced = target;
                });
                synced = target;
                synced_records = records;
            }
        }
        if closed {
            return;
        }
    }
}

/// Syncs a rotated log and renames it `.finished` (an empty log is removed). False on failure:
/// the log is then left under its active name for start-up recovery.
fn finish_log(
    log: OpenLog,
    dir: Option<&Dir>,
    metrics: &IngestMetrics,
    on_finished: &OnFinished,
) -> bool {
    let Some(dir) = dir else { return false };
    if log.len == 0 {
        let _ = dir.remove_file(&log.name);
        return true;
    }
    if let Err(err) = sync_timed(&log.file, metrics) {
        tracing::error!(file = %log.name, error = %err, "cannot sync raw log; leaving it for recovery");
        return false;
    }
    drop(log.file);
    let finished = format!("{}{FINISHED_SUFFIX}", log.name);
    if let Err(err) = dir.rename(&log.name, dir, &finished) {
        tracing::error!(file = %log.name, error = %err, "cannot rename raw log; leaving it for recovery");
        return true; // its records are synced
    }
    if let Err(err) = sync_dir(dir) {
        tracing::warn!(error = %err, "cannot sync raw dir after rename");
    }
    metrics.rotations.inc();
    tracing::debug!(file = %finished, bytes = log.len, "finished raw log");
    on_finished(&finished);
    true
}

fn sync_timed(file: &std::fs::File, metrics: &IngestMetrics) -> std::io::Result<()> {
    let start = Instant::now();
    let result = file.sync_data();
    metrics.fsync_seconds.observe(start.elapsed().as_secs_f64());
    result
}

/// `fsync` on a directory, making created and renamed entries durable.
/// (cap-std directory handles are `O_PATH`, which cannot be synced, so "." is opened for reading.)
pub fn sync_dir(dir: &Dir) -> std::io::Result<()> {
    dir.open(".")?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Accepts at most `max` bytes per call, like a short write to a file or pipe.
    struct Trickle {
        out: Vec<u8>,
        max: usize,
        calls: usize,
    }

    impl Write for Trickle {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.write_vectored(&[IoSlice::new(buf)])
        }

        fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> std::io::Result<usize> {
            self.calls += 1;
            let mut left = self.max;
            for buf in bufs {
                let n = buf.len().min(left);
                self.out.extend_from_slice(&buf[..n]);
                left -= n;
            }
            Ok(self.max - left)
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_record_is_written_as_encode_v2_encodes_it_even_in_short_writes() {
        let body: Vec<u8> = (0..=255u8).cycle().take(5000).collect();
        let mut expected = Vec::new();
        crate::rawlog::encode_v2(
            &mut expected,
            1_432_000_000_123,
            "10.1.2.3",
            "id/main",
            &body,
        );
        let record = Record::v2(1_432_000_000_123, "10.1.2.3", "id/main", Bytes::from(body));
        assert_eq!(record.len(), expected.len());
        for max in [7, 4096, usize::MAX / 2] {
            let mut out = Trickle {
                out: Vec::new(),
                max,
                calls: 0,
            };
            record.write_to(&mut out).unwrap();
            assert_eq!(out.out, expected, "max {max}");
            assert_eq!(out.calls, expected.len().div_ceil(max), "max {max}");
        }
    }

    #[test]
    fn a_writer_that_takes_nothing_is_an_error() {
        let record = Record::from(b"abc".to_vec());
        let mut out = Trickle {
            out: Vec::new(),
            max: 0,
            calls: 0,
        };
        let err = record.write_to(&mut out).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::WriteZero);
    }
}
