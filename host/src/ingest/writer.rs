//! The durable raw log writer: one thread and one log file per shard, group commit.
//!
//! A request hands its encoded v2 record to a shard through a bounded queue and waits for the answer.
//! The shard's thread takes every record waiting in its queue, appends them with one `write`, and (in
//! `batch` mode) covers them all with one `fdatasync` before answering any of them. Records that arrive
//! during that sync wait for the next round, so the number of syncs per second is bounded by the disk,
//! not by the request rate: that is group commit. In `always` mode each round is one record; in `none`
//! mode there is no sync (a `.finished` file is still synced before its rename).
//!
//! A failed write or sync is undone by truncating the file back to its last complete record, so a
//! full disk answers 507 and leaves no partial record behind. Logs rotate by size and by age (age
//! counts from the first record, so a busy log rotates too) and are renamed `.finished` only after
//! their last record is synced.

use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use cap_std::fs::{Dir, OpenOptions};
use tokio::sync::oneshot;

use super::disk::is_disk_full;
use super::logname::{LogNamer, FINISHED_SUFFIX};
use crate::api::metrics::IngestMetrics;
use crate::config::{Durability, IngestConfig};

/// Why a record was not acknowledged. Cloned to every request of a failed batch.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WriteError {
    #[error("disk full: {0}")]
    DiskFull(String),
    #[error("cannot write raw log: {0}")]
    Io(String),
    #[error("every log writer queue is full")]
    Overloaded,
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

/// Called with the file name of every log renamed `.finished`.
pub type OnFinished = Arc<dyn Fn(&str) + Send + Sync>;

enum Message {
    Record { bytes: Vec<u8>, done: oneshot::Sender<Result<(), WriteError>> },
    Shutdown,
}

struct Shard {
    tx: SyncSender<Message>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

/// The set of writer shards. Cheap to share behind an `Arc`.
pub struct WriterPool {
    shards: Vec<Shard>,
    next: AtomicUsize,
    metrics: IngestMetrics,
}

impl WriterPool {
    /// Starts `config.shard_count()` writer threads appending to logs in `raw`.
    pub fn start(
        raw: &Dir,
        config: &IngestConfig,
        metrics: IngestMetrics,
        on_finished: OnFinished,
    ) -> std::io::Result<WriterPool> {
        let mut shards = Vec::new();
        for index in 0..config.shard_count() {
            let (tx, rx) = mpsc::sync_channel(config.queue_capacity);
            let writer = ShardWriter {
                dir: raw.try_clone()?,
                namer: LogNamer::new(&config.log_base, index),
                durability: config.durability,
                max_size: config.max_log_size,
                max_age: Duration::from_millis(config.max_log_age_ms),
                max_batch_bytes: config.max_batch_bytes,
                current: None,
                buf: Vec::new(),
                metrics: metrics.clone(),
                on_finished: on_finished.clone(),
            };
            let thread = std::thread::Builder::new()
                .name(format!("rawlog-writer-{index}"))
                .spawn(move || writer.run(rx))?;
            shards.push(Shard { tx, thread: Mutex::new(Some(thread)) });
        }
        Ok(WriterPool { shards, next: AtomicUsize::new(0), metrics })
    }

    /// Appends one encoded record and resolves once it is in the log (and synced, per the durability).
    /// A full queue on every shard is [`WriteError::Overloaded`]: the caller answers 503.
    pub async fn append(&self, bytes: Vec<u8>) -> Result<(), WriteError> {
        let (done, answer) = oneshot::channel();
        let mut message = Message::Record { bytes, done };
        let n = self.shards.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        self.metrics.queue_depth.inc();
        let mut queued = false;
        for i in 0..n {
            match self.shards[(start + i) % n].tx.try_send(message) {
                Ok(()) => {
                    queued = true;
                    break;
                }
                Err(TrySendError::Full(back)) => message = back,
                Err(TrySendError::Disconnected(_)) => {
                    self.metrics.queue_depth.dec();
                    return Err(WriteError::ShuttingDown);
                }
            }
        }
        if !queued {
            self.metrics.queue_depth.dec();
            return Err(WriteError::Overloaded);
        }
        answer.await.unwrap_or(Err(WriteError::ShuttingDown))
    }

    /// Writes what is queued, syncs and finishes every open log, and joins the writer threads.
    /// Later [`append`](Self::append) calls fail with `ShuttingDown`.
    pub fn close(&self) {
        for shard in &self.shards {
            let _ = shard.tx.send(Message::Shutdown);
        }
        for shard in &self.shards {
            if let Some(thread) = shard.thread.lock().unwrap_or_else(|e| e.into_inner()).take() {
                if thread.join().is_err() {
                    tracing::error!("a raw log writer thread panicked");
                }
            }
        }
    }
}

/// The log file a shard is appending to.
struct OpenLog {
    name: String,
    file: std::fs::File,
    /// Bytes of complete records in the file (what a failed write is truncated back to).
    len: u64,
    opened: Instant,
}

/// State owned by one shard's thread.
struct ShardWriter {
    dir: Dir,
    namer: LogNamer,
    durability: Durability,
    max_size: u64,
    max_age: Duration,
    max_batch_bytes: usize,
    current: Option<OpenLog>,
    buf: Vec<u8>,
    metrics: IngestMetrics,
    on_finished: OnFinished,
}

type Waiter = oneshot::Sender<Result<(), WriteError>>;

impl ShardWriter {
    fn run(mut self, rx: Receiver<Message>) {
        let mut waiters: Vec<Waiter> = Vec::new();
        loop {
            let timeout = match &self.current {
                Some(log) => self.max_age.saturating_sub(log.opened.elapsed()),
                None => Duration::from_secs(3600),
            };
            let mut shutdown = false;
            match rx.recv_timeout(timeout) {
                Ok(Message::Record { bytes, done }) => {
                    self.take(bytes, done, &mut waiters);
                    shutdown = self.drain(&rx, &mut waiters);
                    self.commit(&mut waiters);
                }
                Ok(Message::Shutdown) => shutdown = true,
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => shutdown = true,
            }
            if shutdown {
                // Requests still queued behind the marker are written too: nothing queued is dropped.
                while let Ok(message) = rx.try_recv() {
                    if let Message::Record { bytes, done } = message {
                        self.take(bytes, done, &mut waiters);
                        if self.buf.len() >= self.max_batch_bytes {
                            self.commit(&mut waiters);
                        }
                    }
                }
                self.commit(&mut waiters);
                self.finish_current();
                return;
            }
            self.rotate_if_due();
        }
    }

    fn take(&mut self, bytes: Vec<u8>, done: Waiter, waiters: &mut Vec<Waiter>) {
        self.metrics.queue_depth.dec();
        if self.buf.is_empty() {
            self.buf = bytes;
        } else {
            self.buf.extend_from_slice(&bytes);
        }
        waiters.push(done);
    }

    /// Takes every record already waiting (up to the batch limit; one record in `always` mode).
    /// Returns true when a shutdown marker was seen.
    fn drain(&mut self, rx: &Receiver<Message>, waiters: &mut Vec<Waiter>) -> bool {
        if self.durability == Durability::Always {
            return false;
        }
        while self.buf.len() < self.max_batch_bytes {
            match rx.try_recv() {
                Ok(Message::Record { bytes, done }) => self.take(bytes, done, waiters),
                Ok(Message::Shutdown) => return true,
                Err(_) => break,
            }
        }
        false
    }

    /// Appends the buffered records, syncs per the durability mode, and answers every waiter.
    fn commit(&mut self, waiters: &mut Vec<Waiter>) {
        if waiters.is_empty() {
            return;
        }
        let result = self.append_buffer();
        let count = waiters.len();
        match &result {
            Ok(()) => {
                self.metrics.written_records.inc_by(count as u64);
                self.metrics.written_bytes.inc_by(self.buf.len() as u64);
                self.metrics.batch_records.observe(count as f64);
            }
            Err(err) => {
                self.metrics.write_errors.inc();
                tracing::warn!(records = count, error = %err, "raw log append failed");
            }
        }
        self.buf.clear();
        for waiter in waiters.drain(..) {
            let _ = waiter.send(result.clone());
        }
        if let Some(log) = &self.current {
            if log.len >= self.max_size {
                self.finish_current();
            }
        }
    }

    fn append_buffer(&mut self) -> Result<(), WriteError> {
        self.open_if_needed()?;
        let sync = self.durability != Durability::None;
        let log = self.current.as_mut().expect("opened above");
        let written = log.file.write_all(&self.buf).map_err(|e| WriteError::from_io("write", e));
        let synced = written.and_then(|()| {
            if sync {
                sync_timed(&log.file, &self.metrics).map_err(|e| WriteError::from_io("fdatasync", e))
            } else {
                Ok(())
            }
        });
        match synced {
            Ok(()) => {
                log.len += self.buf.len() as u64;
                Ok(())
            }
            Err(err) => {
                // Undo the partial append so the file ends with a complete record.
                if let Err(trunc) = log.file.set_len(log.len) {
                    tracing::error!(file = %log.name, error = %trunc, "cannot truncate after a failed write; abandoning the log");
                    self.abandon_current();
                }
                Err(err)
            }
        }
    }

    fn open_if_needed(&mut self) -> Result<(), WriteError> {
        if self.current.is_some() {
            return Ok(());
        }
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
                Err(e) => return Err(WriteError::from_io("create raw log", e)),
            }
        };
        if self.durability != Durability::None {
            // The new directory entry must survive a crash along with the records synced into it.
            sync_dir(&self.dir).map_err(|e| WriteError::from_io("sync raw dir", e))?;
        }
        tracing::debug!(file = %name, "opened raw log");
        self.current = Some(OpenLog { name, file, len: 0, opened: Instant::now() });
        Ok(())
    }

    fn rotate_if_due(&mut self) {
        if let Some(log) = &self.current {
            if log.opened.elapsed() >= self.max_age || log.len >= self.max_size {
                self.finish_current();
            }
        }
    }

    /// Syncs the open log and renames it `.finished` (an empty log is removed instead).
    fn finish_current(&mut self) {
        let Some(log) = self.current.take() else { return };
        if log.len == 0 {
            let _ = self.dir.remove_file(&log.name);
            return;
        }
        if let Err(err) = sync_timed(&log.file, &self.metrics) {
            // Left unfinished: start-up recovery checks and finishes it.
            tracing::error!(file = %log.name, error = %err, "cannot sync raw log; leaving it for recovery");
            return;
        }
        drop(log.file);
        let finished = format!("{}{FINISHED_SUFFIX}", log.name);
        if let Err(err) = self.dir.rename(&log.name, &self.dir, &finished) {
            tracing::error!(file = %log.name, error = %err, "cannot rename raw log; leaving it for recovery");
            return;
        }
        if let Err(err) = sync_dir(&self.dir) {
            tracing::warn!(error = %err, "cannot sync raw dir after rename");
        }
        self.metrics.rotations.inc();
        tracing::debug!(file = %finished, bytes = log.len, "finished raw log");
        (self.on_finished)(&finished);
    }

    /// Stops using a log that could not be repaired; recovery cuts its torn tail at the next start.
    fn abandon_current(&mut self) {
        self.current = None;
    }
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
