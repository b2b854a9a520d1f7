//! [`Progress`] counters a running job updates (readable from any thread, e.g. a progress bar or
//! the job service) and the [`CancelToken`] that stops it.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

/// Live counters of a running job. All relaxed atomics: cheap to update, approximate while running,
/// exact once the job has finished.
#[derive(Debug, Default)]
pub struct Progress {
    /// Partition files the job will read (after filtering).
    pub files_total: AtomicU64,
    /// Partition files fully read.
    pub files_done: AtomicU64,
    /// Records read.
    pub records: AtomicU64,
    /// Bytes of stored (uncompressed) JSON lines read.
    pub bytes: AtomicU64,
    /// The job log as it was when the job failed (empty until then), so a failure still shows
    /// what the guest logged.
    pub failure_log: std::sync::Mutex<String>,
}

impl Progress {
    /// A snapshot `(files_total, files_done, records, bytes)`.
    pub fn snapshot(&self) -> (u64, u64, u64, u64) {
        (
            self.files_total.load(Ordering::Relaxed),
            self.files_done.load(Ordering::Relaxed),
            self.records.load(Ordering::Relaxed),
            self.bytes.load(Ordering::Relaxed),
        )
    }

    /// The job log kept when the job failed (empty if it did not, or logged nothing).
    pub fn failure_log(&self) -> String {
        self.failure_log
            .lock()
            .map(|l| l.clone())
            .unwrap_or_default()
    }
}

/// Cancels a job from another thread. Cheap to clone; every clone cancels the same job. A running
/// guest call is interrupted at the next epoch tick (well under a second).
#[derive(Debug, Clone, Default)]
pub struct CancelToken(Arc<AtomicBool>);

impl CancelToken {
    /// A token that is not cancelled.
    pub fn new() -> Self {
        Self::default()
    }
    /// Asks the job to stop.
    pub fn cancel(&self) {
        self.0.store(true, Ordering::Relaxed);
    }
    /// Whether [`cancel`](Self::cancel) was called.
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}
