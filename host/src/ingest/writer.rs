//! The durable raw log writer: log files per shard, each written by its own thread in batches.
//!
//! A request queues its v2 record ([`Record`]: the head, and the body as received, never copied)
//! on a shard and waits for the shard's writer thread. The thread takes everything queued as one
//! batch and writes it with one vectored `write` per log file, then answers the whole batch:
//!
//! - `none`: once the batch is written (in the page cache: it survives a process crash).
//! - `batch`: once one `fdatasync` covering the batch has returned (group commit): records queued
//!   while a batch is written and synced form the next batch, so syncs per second are bounded by
//!   the disk, not by the request rate.
//! - `always`: the request appends and syncs its own record on a blocking thread instead.
//!
//! Batches are what make this cheap: under load many records go to the kernel in one call, and a
//! large write fills the page cache in large folios, which costs about half the kernel time per
//! byte of one `write` per 19 KB record (docs/server.md). At low load a batch is one record.
//!
//! A failed `write` is undone by truncating the log back to its last complete record, so a full
//! disk answers 507 and leaves no partial record. Logs rotate by size and by age (counted from the
//! first record, so a busy log rotates too); the writer thread syncs a rotated log, renames it
//! `.finished`, syncs the directory and announces it.

use std::io::{IoSlice, Write};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;
use cap_std::fs::{Dir, OpenOptions};
use tokio::sync::{Notify, Semaphore};

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
}

/// Writes whole records, in order, with vectored writes (retrying short ones; the kernel takes at
/// most `IOV_MAX` slices per call).
fn write_records(mut out: impl Write, records: &[Record]) -> std::io::Result<()> {
    let mut slices: Vec<IoSlice<'_>> = records
        .iter()
        .flat_map(|r| [IoSlice::new(&r.head), IoSlice::new(&r.body)])
        .filter(|slice| !slice.is_empty())
        .collect();
    let mut slices: &mut [IoSlice<'_>] = &mut slices;
    // With nothing to write the loop does not run, so a writer's 0-byte answer below always
    // means it took nothing.
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

/// Already encoded bytes (any version) as one record.
impl From<Vec<u8>> for Record {
    fn from(head: Vec<u8>) -> Record {
        Record {
            head,
            body: Bytes::new(),
        }
    }
}

/// Rotated logs a shard's finisher may have waiting; beyond this the writer thread waits for it.
const FINISH_QUEUE: usize = 16;

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
    /// Starts `config.shard_count()` shards (each with its writer thread) writing logs in `raw`.
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
                queue: Mutex::new(Queue::default()),
                wake: Condvar::new(),
                logs: Mutex::new(Logs {
                    dir: raw.try_clone()?,
                    namer: LogNamer::new(&config.log_base, index),
                    max_size: config.max_log_size,
                    max_age: Duration::from_millis(config.max_log_age_ms),
                    current: None,
                    retiring: Vec::new(),
                    metrics: metrics.clone(),
                }),
            });
            let (finished, rotated) = std::sync::mpsc::sync_channel(FINISH_QUEUE);
            let (dir, thread_metrics, on_finished) =
                (raw.try_clone()?, metrics.clone(), on_finished.clone());
            threads.push(
                std::thread::Builder::new()
                    .name(format!("rawlog-finish-{index}"))
                    .spawn(move || finish_loop(rotated, &dir, &thread_metrics, &on_finished))?,
            );
            let (thread_shard, durability, thread_metrics) =
                (shard.clone(), config.durability, metrics.clone());
            threads.push(
                std::thread::Builder::new()
                    .name(format!("rawlog-write-{index}"))
                    .spawn(move || {
                        let _stopped = StopOnExit(&thread_shard);
                        write_loop(&thread_shard, durability, &thread_metrics, &finished);
                    })?,
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
            Durability::None | Durability::Batch => shard.enqueue(record)?.wait().await,
            Durability::Always => {
                let task = tokio::task::spawn_blocking(move || shard.append_synced(&record));
                task.await
                    .unwrap_or_else(|_| Err(WriteError::Io("writer task panicked".into())))
            }
        }
    }

    /// A shard whose queue lock is free right now if there is one (round robin otherwise).
    fn pick(&self) -> Arc<Shard> {
        let n = self.shards.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        for i in 0..n {
            let shard = &self.shards[(start + i) % n];
            if shard.queue.try_lock().is_ok() {
                return shard.clone();
            }
        }
        self.shards[start % n].clone()
    }

    /// Writes what is queued, syncs and finishes every log, stops the writer threads. Later
    /// appends get `ShuttingDown`.
    pub fn close(&self) {
        for shard in &self.shards {
            shard.queue().closed = true;
            shard.wake.notify_all();
        }
        for thread in self
            .threads
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain(..)
        {
            if thread.join().is_err() {
                tracing::error!("a raw log writer thread panicked");
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

/// What became of one batch of records: set once by the writer thread, awaited by every request
/// whose record is in the batch.
#[derive(Default)]
struct Outcome {
    result: OnceLock<Result<(), WriteError>>,
    done: Notify,
}

impl Outcome {
    fn finish(&self, result: Result<(), WriteError>) {
        let _ = self.result.set(result);
        self.done.notify_waiters();
    }

    /// Resolves once the batch is written (and synced, per the durability). The writer thread
    /// always answers: a batch it drops unanswered fails (see [`Batch`]'s `Drop`).
    async fn wait(&self) -> Result<(), WriteError> {
        let notified = self.done.notified();
        tokio::pin!(notified);
        loop {
            // Registered before the check, so a `finish` between the two still wakes this.
            notified.as_mut().enable();
            if let Some(result) = self.result.get() {
                return result.clone();
            }
            notified.as_mut().await;
            notified.set(self.done.notified());
        }
    }
}

/// Records taken off a shard's queue together, and the outcome their requests wait for.
#[derive(Default)]
struct Batch {
    records: Vec<Record>,
    outcome: Arc<Outcome>,
}

impl Drop for Batch {
    /// A batch is never dropped unanswered, even when its writer thread panics.
    fn drop(&mut self) {
        if self.outcome.result.get().is_none() {
            self.outcome
                .finish(Err(WriteError::Io("the raw log writer stopped".into())));
        }
    }
}

/// What requests hand to a shard's writer thread.
#[derive(Default)]
struct Queue {
    /// Records to write next, in arrival order.
    batch: Batch,
    /// The writer thread is waiting for work (so an enqueue must wake it).
    idle: bool,
    /// Closing or closed: refuse new records.
    closed: bool,
}

struct Shard {
    queue: Mutex<Queue>,
    /// Wakes the writer thread: records queued, a log to finish, or shutdown.
    wake: Condvar,
    /// The shard's log files: used by its writer thread (and, in `always` mode, by requests).
    logs: Mutex<Logs>,
}

impl Shard {
    fn queue(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn logs(&self) -> MutexGuard<'_, Logs> {
        self.logs.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues a record for the writer thread (waking it if idle); returns the outcome to wait for.
    fn enqueue(&self, record: Record) -> Result<Arc<Outcome>, WriteError> {
        let mut queue = self.queue();
        if queue.closed {
            return Err(WriteError::ShuttingDown);
        }
        queue.batch.records.push(record);
        let outcome = queue.batch.outcome.clone();
        let wake = std::mem::take(&mut queue.idle);
        drop(queue);
        if wake {
            self.wake.notify_one();
        }
        Ok(outcome)
    }

    /// `always` mode: appends and syncs one record on the calling (blocking) thread; a log that
    /// filled up is left to the writer thread to finish.
    fn append_synced(&self, record: &Record) -> Result<(), WriteError> {
        if self.queue().closed {
            return Err(WriteError::ShuttingDown);
        }
        let mut logs = self.logs();
        let result = logs.append_synced(record);
        let rotated = !logs.retiring.is_empty();
        drop(logs);
        if rotated {
            // Under the queue lock: the writer thread is either before its check (and sees the
            // rotated log) or waiting (and is woken).
            let _queue = self.queue();
            self.wake.notify_one();
        }
        result
    }
}

/// Stops a shard when its writer thread ends, even by a panic: later appends are refused and
/// records still queued fail, so no request waits for a thread that is gone.
struct StopOnExit<'a>(&'a Shard);

impl Drop for StopOnExit<'_> {
    fn drop(&mut self) {
        let mut queue = self.0.queue();
        queue.closed = true;
        let _unanswered = std::mem::take(&mut queue.batch);
    }
}

/// A log file being written or waiting to be finished.
struct OpenLog {
    name: String,
    file: Arc<std::fs::File>,
    /// Bytes of complete records in the file (what a failed write is truncated back to).
    len: u64,
    opened: Instant,
    /// The directory entry still needs an fsync (done before acknowledging in `batch`).
    dir_unsynced: bool,
}

impl OpenLog {
    /// `fdatasync`, then the directory entry once (a new log's name must survive too).
    fn sync(&mut self, dir: &Dir, metrics: &IngestMetrics) -> std::io::Result<()> {
        sync_timed(&self.file, metrics)?;
        if self.dir_unsynced {
            sync_dir(dir)?;
            self.dir_unsynced = false;
        }
        Ok(())
    }
}

/// A shard's log files.
struct Logs {
    dir: Dir,
    namer: LogNamer,
    max_size: u64,
    max_age: Duration,
    current: Option<OpenLog>,
    /// Rotated logs the writer thread has to sync, rename and announce (oldest first).
    retiring: Vec<OpenLog>,
    metrics: IngestMetrics,
}

impl Logs {
    /// Appends records in order, with as few vectored writes as rotation allows: a log takes
    /// records until it reaches `max_size` (the last one may cross it), then rotates. A failed
    /// write is undone (the log is truncated back to its last complete record) and fails the
    /// call; records written before it, into a log rotated on the way, stay.
    fn append(&mut self, records: &[Record]) -> Result<(), WriteError> {
        if records.is_empty() {
            return Ok(());
        }
        self.rotate_if_due();
        let mut rest = records;
        while !rest.is_empty() {
            self.open_if_needed()?;
            let log = self.current.as_mut().expect("opened above");
            let room = self.max_size.saturating_sub(log.len);
            let (mut count, mut bytes) = (0, 0u64);
            while count < rest.len() && bytes < room {
                bytes += rest[count].len() as u64;
                count += 1;
            }
            if let Err(err) = write_records(&*log.file, &rest[..count]) {
                self.metrics.write_errors.inc();
                if let Err(trunc) = log.file.set_len(log.len) {
                    tracing::error!(file = %log.name, error = %trunc, "cannot truncate after a failed write; leaving the log for recovery");
                    self.current = None;
                }
                return Err(WriteError::from_io("write", err));
            }
            log.len += bytes;
            self.metrics.written_records.inc_by(count as u64);
            self.metrics.written_bytes.inc_by(bytes);
            if log.len >= self.max_size {
                self.retire_current();
            }
            rest = &rest[count..];
        }
        Ok(())
    }

    /// `always` mode: append, then sync this record before returning.
    fn append_synced(&mut self, record: &Record) -> Result<(), WriteError> {
        let rotated_before = self.retiring.len();
        let was_open = self.current.as_ref().map(|log| (log.name.clone(), log.len));
        self.append(std::slice::from_ref(record))?;
        // The record is in the current log, or in the log just retired because it filled up.
        let log = match (&self.current, self.retiring.len() > rotated_before) {
            (_, true) => self.retiring.last_mut(),
            (Some(_), false) => self.current.as_mut(),
            (None, false) => None,
        };
        let Some(log) = log else { return Ok(()) };
        let result = log.sync(&self.dir, &self.metrics);
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

    /// How long the current log may still take records before rotating by age.
    fn age_left(&self) -> Option<Duration> {
        let log = self.current.as_ref()?;
        Some(self.max_age.saturating_sub(log.opened.elapsed()))
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

/// One shard's writer thread: takes everything queued as one batch, writes it (one vectored
/// write per log), syncs it in `batch` mode, answers the batch; rotates logs by age and finishes
/// rotated ones. Records queued while a batch is written form the next batch, so under load
/// batches grow: fewer, larger writes (and syncs), not more of them.
fn write_loop(
    shard: &Shard,
    durability: Durability,
    metrics: &IngestMetrics,
    finished: &std::sync::mpsc::SyncSender<OpenLog>,
) {
    loop {
        let (batch, closed) = {
            let mut queue = shard.queue();
            loop {
                if queue.closed || !queue.batch.records.is_empty() {
                    break;
                }
                let (age_left, retiring) = {
                    let logs = shard.logs();
                    (logs.age_left(), !logs.retiring.is_empty())
                };
                if retiring || age_left.is_some_and(|left| left.is_zero()) {
                    break;
                }
                queue.idle = true;
                queue = shard
                    .wake
                    .wait_timeout(queue, age_left.unwrap_or(Duration::from_secs(3600)))
                    .unwrap_or_else(|e| e.into_inner())
                    .0;
                queue.idle = false;
            }
            (std::mem::take(&mut queue.batch), queue.closed)
        };
        let mut logs = shard.logs();
        let mut result = logs.append(&batch.records);
        if !batch.records.is_empty() {
            metrics.batch_records.observe(batch.records.len() as f64);
        }
        logs.rotate_if_due();
        if closed {
            logs.retire_current();
        }
        let mut retired = std::mem::take(&mut logs.retiring);
        if durability == Durability::Batch && result.is_ok() && !batch.records.is_empty() {
            // The batch may span a rotated log and the current one: sync both (oldest first).
            let Logs { dir, current, .. } = &mut *logs;
            let synced = retired
                .iter_mut()
                .chain(current.as_mut())
                .try_for_each(|log| log.sync(dir, metrics));
            if let Err(err) = synced {
                tracing::error!(error = %err, "fdatasync of a raw log failed");
                metrics.write_errors.inc();
                result = Err(WriteError::Io(
                    "fdatasync failed; the record may not be durable".into(),
                ));
            }
        }
        drop(logs);
        batch.outcome.finish(result);
        for log in retired {
            if finished.send(log).is_err() {
                tracing::error!("the raw log finisher stopped; a rotated log is left for recovery");
            }
        }
        if closed {
            return;
        }
    }
}

/// One shard's finisher thread: syncs each rotated log (in `none` mode, most of its bytes are
/// still dirty: tens of milliseconds that no request waits for), renames it `.finished` and
/// announces it, in rotation order. Ends when the writer thread drops its sender.
fn finish_loop(
    rotated: std::sync::mpsc::Receiver<OpenLog>,
    dir: &Dir,
    metrics: &IngestMetrics,
    on_finished: &OnFinished,
) {
    for log in rotated {
        finish_log(log, dir, metrics, on_finished);
    }
}

/// Syncs a rotated log and renames it `.finished` (an empty log is removed). On failure the log
/// is left under its active name for start-up recovery (a failed sync counts as a write error).
fn finish_log(log: OpenLog, dir: &Dir, metrics: &IngestMetrics, on_finished: &OnFinished) {
    if log.len == 0 {
        let _ = dir.remove_file(&log.name);
        return;
    }
    if let Err(err) = sync_timed(&log.file, metrics) {
        metrics.write_errors.inc();
        tracing::error!(file = %log.name, error = %err, "cannot sync raw log; leaving it for recovery");
        return;
    }
    drop(log.file);
    let finished = format!("{}{FINISHED_SUFFIX}", log.name);
    if let Err(err) = dir.rename(&log.name, dir, &finished) {
        tracing::error!(file = %log.name, error = %err, "cannot rename raw log; leaving it for recovery");
        return;
    }
    if let Err(err) = sync_dir(dir) {
        tracing::warn!(error = %err, "cannot sync raw dir after rename");
    }
    metrics.rotations.inc();
    tracing::debug!(file = %finished, bytes = log.len, "finished raw log");
    on_finished(&finished);
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
            write_records(&mut out, std::slice::from_ref(&record)).unwrap();
            assert_eq!(out.out, expected, "max {max}");
            assert_eq!(out.calls, expected.len().div_ceil(max), "max {max}");
        }
    }

    /// `count` v2 records of different sizes, and the bytes `encode_v2` gives for all of them.
    fn records(count: usize) -> (Vec<Record>, Vec<u8>) {
        let mut expected = Vec::new();
        let records = (0..count)
            .map(|i| {
                let body: Vec<u8> = (0..=255u8).cycle().skip(i).take(i % 700).collect();
                let path = format!("id-{i}/main");
                crate::rawlog::encode_v2(&mut expected, i as u64, "10.1.2.3", &path, &body);
                Record::v2(i as u64, "10.1.2.3", &path, Bytes::from(body))
            })
            .collect();
        (records, expected)
    }

    #[test]
    fn a_batch_is_written_in_order_even_in_short_writes() {
        let (records, expected) = records(40);
        for max in [1, 333, 4096, usize::MAX / 2] {
            let mut out = Trickle {
                out: Vec::new(),
                max,
                calls: 0,
            };
            write_records(&mut out, &records).unwrap();
            assert!(out.out == expected, "max {max}");
        }
    }

    #[test]
    fn a_batch_of_more_slices_than_iov_max_reaches_the_file_whole() {
        // 3,000 records (the first has an empty body: 5,999 slices) against a kernel limit of
        // 1,024 slices per `writev`: the file gets several short writes.
        let (records, expected) = records(3000);
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("log");
        let file = std::fs::File::create(&path).unwrap();
        write_records(&file, &records).unwrap();
        assert!(std::fs::read(&path).unwrap() == expected);
    }

    #[test]
    fn a_writer_that_takes_nothing_is_an_error() {
        let record = Record::from(b"abc".to_vec());
        let mut out = Trickle {
            out: Vec::new(),
            max: 0,
            calls: 0,
        };
        let err = write_records(&mut out, std::slice::from_ref(&record)).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::WriteZero);
    }
}
