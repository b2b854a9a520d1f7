//! A running job's handle shared between the scheduler and the executor: the [`CancelToken`] the
//! API fires and the [`Progress`] counters the executor updates.

use crate::jobs::{CancelToken, Progress};

use super::record::ProgressSnapshot;

/// Cancellation and progress of one run.
#[derive(Debug, Default)]
pub struct RunControl {
    /// Fired by `DELETE /jobs/{id}` or shutdown; a running guest is interrupted at the next epoch.
    pub cancel: CancelToken,
    /// Updated by the executor, read by `GET /jobs/{id}`.
    pub progress: Progress,
}

impl RunControl {
    /// A fresh, not-cancelled control.
    pub fn new() -> Self {
        RunControl::default()
    }

    /// Asks the run to stop (a running guest is interrupted).
    pub fn cancel(&self) {
        self.cancel.cancel();
    }

    /// Whether `cancel` was called.
    pub fn is_cancelled(&self) -> bool {
        self.cancel.is_cancelled()
    }

    /// The progress so far.
    pub fn progress_snapshot(&self) -> ProgressSnapshot {
        let (files_total, files_done, records, bytes) = self.progress.snapshot();
        ProgressSnapshot {
            files_total,
            files_done,
            records,
            bytes,
        }
    }
}
