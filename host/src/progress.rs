//! The one progress abstraction of library code: counters (relaxed atomics) that a long operation
//! advances and its caller reads from any thread. The library draws nothing; the CLI turns the
//! counters into a progress bar (`cli/export.rs`, `export_pass`). A running job's counters
//! ([`crate::jobs::progress::Progress`]) follow the same pattern.

use std::sync::atomic::{AtomicU64, Ordering};

/// Work done out of a total (bytes, files…), both set by the operation while it runs.
#[derive(Debug, Default)]
pub struct ProgressCounter {
    total: AtomicU64,
    done: AtomicU64,
}

impl ProgressCounter {
    /// Sets the total (known once the operation has listed its work).
    pub fn set_total(&self, total: u64) {
        self.total.store(total, Ordering::Relaxed);
    }

    /// Counts `n` more units done.
    pub fn add(&self, n: u64) {
        self.done.fetch_add(n, Ordering::Relaxed);
    }

    /// The total set last (0 until set).
    pub fn total(&self) -> u64 {
        self.total.load(Ordering::Relaxed)
    }

    /// The units done so far.
    pub fn done(&self) -> u64 {
        self.done.load(Ordering::Relaxed)
    }
}
