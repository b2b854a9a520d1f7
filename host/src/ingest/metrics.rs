//! The raw log writers' metrics ([`IngestMetrics`]), registered by the composition root.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// Raw log writer metrics.
#[derive(Clone)]
pub struct IngestMetrics {
    /// Duration of each `fdatasync`, seconds.
    pub fsync_seconds: Histogram,
    /// Records per batch of a writer thread (one write, and in `batch` mode one sync).
    pub batch_records: Histogram,
    /// Submissions writing or waiting for their sync.
    pub queue_depth: Gauge,
    /// Bytes appended to raw logs.
    pub written_bytes: Counter,
    /// Records appended to raw logs.
    pub written_records: Counter,
    /// Raw logs renamed `.finished`.
    pub rotations: Counter,
    /// Write or sync failures (each answered 500/507).
    pub write_errors: Counter,
    /// Free bytes on the data dir's file system (updated at every scrape).
    pub disk_free_bytes: Gauge,
}

impl IngestMetrics {
    /// Creates the metrics and registers them in `registry`.
    pub fn register(registry: &mut Registry) -> IngestMetrics {
        let metrics = IngestMetrics {
            fsync_seconds: Histogram::new(exponential_buckets(0.000_1, 2.0, 14)),
            batch_records: Histogram::new(exponential_buckets(1.0, 2.0, 14)),
            queue_depth: Gauge::default(),
            written_bytes: Counter::default(),
            written_records: Counter::default(),
            rotations: Counter::default(),
            write_errors: Counter::default(),
            disk_free_bytes: Gauge::default(),
        };
        registry.register(
            "ingest_fsync_duration_seconds",
            "fdatasync latency",
            metrics.fsync_seconds.clone(),
        );
        registry.register(
            "ingest_batch_records",
            "Records per batch written (and, in batch mode, synced) together",
            metrics.batch_records.clone(),
        );
        registry.register(
            "ingest_queue_depth",
            "Submissions writing or waiting for their sync",
            metrics.queue_depth.clone(),
        );
        registry.register(
            "ingest_written_bytes",
            "Bytes appended to raw logs",
            metrics.written_bytes.clone(),
        );
        registry.register(
            "ingest_written_records",
            "Records appended to raw logs",
            metrics.written_records.clone(),
        );
        registry.register(
            "ingest_rotations",
            "Raw logs finished",
            metrics.rotations.clone(),
        );
        registry.register(
            "ingest_write_errors",
            "Failed raw log writes or syncs",
            metrics.write_errors.clone(),
        );
        registry.register(
            "disk_free_bytes",
            "Free bytes in the data directory",
            metrics.disk_free_bytes.clone(),
        );
        metrics
    }
}
