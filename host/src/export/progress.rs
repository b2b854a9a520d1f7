//! What the continuous exporter inside `serve` shows on `/metrics`: the export lag (seconds since
//! the start of the last pass that left nothing behind; everything finished before that moment is
//! on S3), and files, bytes and failed passes.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;

use super::ExportReport;
use crate::metrics::Registry;
use crate::rawlog::logname::now_ms;

/// Progress of one exporter, shared with the metrics registry.
#[derive(Debug)]
pub struct ExportProgress {
    /// Start (epoch ms) of the last pass that exported every file it found, or the exporter's
    /// start until one has.
    clean_since_ms: AtomicU64,
    lag_seconds: Gauge,
    files: Counter,
    bytes: Counter,
    failed_passes: Counter,
}

impl Default for ExportProgress {
    fn default() -> Self {
        ExportProgress {
            clean_since_ms: AtomicU64::new(now_ms()),
            lag_seconds: Gauge::default(),
            files: Counter::default(),
            bytes: Counter::default(),
            failed_passes: Counter::default(),
        }
    }
}

impl ExportProgress {
    /// Records a pass that started at `started_ms`: `Ok` with its report, `Err` when it could not run.
    pub fn record(&self, started_ms: u64, result: Result<&ExportReport, ()>) {
        match result {
            Ok(report) => {
                self.files.inc_by(report.uploaded as u64);
                self.bytes.inc_by(report.bytes_uploaded);
                if report.failed.is_empty() {
                    self.clean_since_ms.fetch_max(started_ms, Ordering::Relaxed);
                } else {
                    self.failed_passes.inc();
                }
            }
            Err(()) => {
                self.failed_passes.inc();
            }
        }
    }

    /// Seconds since the start of the last clean pass.
    pub fn lag_seconds(&self) -> u64 {
        now_ms().saturating_sub(self.clean_since_ms.load(Ordering::Relaxed)) / 1000
    }

    /// Registers the export metrics and keeps the lag gauge current at every scrape.
    pub fn register(self: &Arc<Self>, metrics: &Registry) {
        metrics.register(
            "export_lag_seconds",
            "Seconds since the start of the last export pass that left no file behind (what finished before it is on S3)",
            self.lag_seconds.clone(),
        );
        metrics.register(
            "export_uploaded_files",
            "Files uploaded to S3 by the exporter",
            self.files.clone(),
        );
        metrics.register(
            "export_uploaded_bytes",
            "Bytes uploaded to S3 by the exporter",
            self.bytes.clone(),
        );
        metrics.register(
            "export_failed_passes",
            "Export passes that could not run or left files behind after every retry",
            self.failed_passes.clone(),
        );
        let this = Arc::downgrade(self);
        metrics.on_scrape(move || {
            if let Some(this) = this.upgrade() {
                this.lag_seconds
                    .set(this.lag_seconds().min(i64::MAX as u64) as i64);
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lag_counts_from_the_last_clean_pass() {
        let progress = ExportProgress::default();
        progress
            .clean_since_ms
            .store(now_ms() - 90_000, Ordering::Relaxed);
        assert!((90..=91).contains(&progress.lag_seconds()));
        let failed = ExportReport {
            failed: vec![("a".into(), "503".into())],
            ..ExportReport::default()
        };
        progress.record(now_ms() - 10_000, Ok(&failed));
        assert!(
            progress.lag_seconds() >= 90,
            "a pass leaving files behind does not count"
        );
        progress.record(now_ms() - 10_000, Err(()));
        assert_eq!(progress.failed_passes.get(), 2);
        progress.record(now_ms() - 10_000, Ok(&ExportReport::default()));
        assert!((10..=11).contains(&progress.lag_seconds()));
    }
}
