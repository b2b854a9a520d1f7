//! The Prometheus metrics registry and the `/metrics` endpoint.
//!
//! [`Metrics`] owns one `prometheus_client` registry behind a mutex. Each part of the server keeps
//! cheap clones of its own metric handles (`HttpMetrics`, `IngestMetrics`, `ConvertMetrics`) and updates
//! them lock-free; other services register theirs at start-up with [`Metrics::register`].

use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::{Metric, Registry};

use super::AppState;

/// Label set `{code="200"}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CodeLabel {
    pub code: u16,
}

/// Label set `{type="invalid_path"}`: a bad-record type of the converter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BadTypeLabel {
    pub r#type: String,
}

/// Label set `{outcome="by_revision"}`: how histogram definitions were found (or not).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabel {
    pub outcome: &'static str,
}

/// HTTP request metrics (submission API and everything else).
#[derive(Clone)]
pub struct HttpMetrics {
    /// Responses by status code.
    pub requests: Family<CodeLabel, Counter>,
    /// Request body bytes accepted into raw logs.
    pub received_bytes: Counter,
    /// Submission latency from request start to response, seconds.
    pub latency: Histogram,
}

/// Raw log writer metrics.
#[derive(Clone)]
pub struct IngestMetrics {
    /// Duration of each `fdatasync`, seconds.
    pub fsync_seconds: Histogram,
    /// Records acknowledged per group commit (one write + at most one sync).
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

/// Live conversion metrics.
#[derive(Clone)]
pub struct ConvertMetrics {
    /// `.finished` raw logs waiting for conversion.
    pub pending_logs: Gauge,
    /// Raw logs converted.
    pub logs: Counter,
    /// Raw logs whose conversion failed as a whole (left in `raw/failed/`).
    pub failed_logs: Counter,
    /// Records read from raw logs.
    pub records_read: Counter,
    /// Records written to storage.
    pub records_written: Counter,
    /// Rejected records by the seed's bad-record type.
    pub bad_records: Family<BadTypeLabel, Counter>,
    /// Records not stored because their document id was stored already (dedup).
    pub duplicates: Counter,
    /// Ids in the dedup index (bounded by its window of submission dates).
    pub dedup_entries: Gauge,
    /// Histogram definition lookups and fetches by outcome (copied from the revision cache's
    /// own counters at every scrape).
    pub definitions: Family<OutcomeLabel, Counter>,
}

/// All metrics of one server.
pub struct Metrics {
    registry: Mutex<Registry>,
    pub http: HttpMetrics,
    pub ingest: IngestMetrics,
    pub convert: ConvertMetrics,
}

impl Metrics {
    /// A registry with the server's own metrics registered under the `telemetry_` prefix.
    pub fn new() -> Arc<Metrics> {
        let mut registry = Registry::with_prefix("telemetry");
        let http = HttpMetrics {
            requests: Family::default(),
            received_bytes: Counter::default(),
            // 50 µs .. ~3.3 s
            latency: Histogram::new(exponential_buckets(0.000_05, 2.0, 17)),
        };
        registry.register(
            "http_requests",
            "HTTP responses by status code",
            http.requests.clone(),
        );
        registry.register(
            "http_received_bytes",
            "Submission body bytes accepted",
            http.received_bytes.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "Submission latency",
            http.latency.clone(),
        );
        let ingest = IngestMetrics {
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
            ingest.fsync_seconds.clone(),
        );
        registry.register(
            "ingest_batch_records",
            "Records per group commit",
            ingest.batch_records.clone(),
        );
        registry.register(
            "ingest_queue_depth",
            "Submissions writing or waiting for their sync",
            ingest.queue_depth.clone(),
        );
        registry.register(
            "ingest_written_bytes",
            "Bytes appended to raw logs",
            ingest.written_bytes.clone(),
        );
        registry.register(
            "ingest_written_records",
            "Records appended to raw logs",
            ingest.written_records.clone(),
        );
        registry.register(
            "ingest_rotations",
            "Raw logs finished",
            ingest.rotations.clone(),
        );
        registry.register(
            "ingest_write_errors",
            "Failed raw log writes or syncs",
            ingest.write_errors.clone(),
        );
        registry.register(
            "disk_free_bytes",
            "Free bytes in the data directory",
            ingest.disk_free_bytes.clone(),
        );
        let convert = ConvertMetrics {
            pending_logs: Gauge::default(),
            logs: Counter::default(),
            failed_logs: Counter::default(),
            records_read: Counter::default(),
            records_written: Counter::default(),
            bad_records: Family::default(),
            duplicates: Counter::default(),
            dedup_entries: Gauge::default(),
            definitions: Family::default(),
        };
        registry.register(
            "convert_pending_logs",
            "Finished raw logs awaiting conversion",
            convert.pending_logs.clone(),
        );
        registry.register("convert_logs", "Raw logs converted", convert.logs.clone());
        registry.register(
            "convert_failed_logs",
            "Raw logs that failed to convert",
            convert.failed_logs.clone(),
        );
        registry.register(
            "convert_records_read",
            "Raw records read by live conversion",
            convert.records_read.clone(),
        );
        registry.register(
            "convert_records_written",
            "Records written to storage",
            convert.records_written.clone(),
        );
        registry.register(
            "convert_bad_records",
            "Rejected records by bad-record type",
            convert.bad_records.clone(),
        );
        registry.register(
            "convert_duplicates",
            "Records not stored because their document id was already stored (dedup)",
            convert.duplicates.clone(),
        );
        registry.register(
            "convert_dedup_entries",
            "Document ids in the dedup index (those of the last dedup_window_days days of submission dates)",
            convert.dedup_entries.clone(),
        );
        registry.register(
            "histogram_definitions",
            "Histogram definition lookups by outcome (by_revision, by_channel_build_id, by_app_version, missing, invalid_url, bad_spec) and fetches from the histogram server (fetched, fetch_cache_hit, fetch_not_found, fetch_failed)",
            convert.definitions.clone(),
        );
        Arc::new(Metrics {
            registry: Mutex::new(registry),
            http,
            ingest,
            convert,
        })
    }

    /// Registers another service's metric (name gets the `telemetry_` prefix). Call at start-up.
    pub fn register(&self, name: &str, help: &str, metric: impl Metric) {
        self.registry
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .register(name, help, metric);
    }

    /// Runs `f` with the registry (for sub-registries or collectors).
    pub fn with_registry<R>(&self, f: impl FnOnce(&mut Registry) -> R) -> R {
        f(&mut self.registry.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// The OpenMetrics text exposition of every registered metric.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        let registry = self.registry.lock().unwrap_or_else(|e| e.into_inner());
        prometheus_client::encoding::text::encode(&mut out, &registry)
            .expect("writing to a String cannot fail");
        out
    }

    /// Counts one response.
    pub fn count_response(&self, code: u16) {
        self.http.requests.get_or_create(&CodeLabel { code }).inc();
    }
}

/// `GET /metrics`.
pub async fn handler(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    copy_definition_counters(&state);
    if let Ok(free) = crate::ingest::disk::free_bytes(state.data_dir.dir()) {
        state
            .metrics
            .ingest
            .disk_free_bytes
            .set(free.min(i64::MAX as u64) as i64);
    }
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.encode(),
    )
}

/// Brings `telemetry_histogram_definitions_total` up to the revision cache's counters.
fn copy_definition_counters(state: &AppState) {
    let r = state.revisions.stats();
    let f = state.revisions.fetch_stats().unwrap_or_default();
    let family = &state.metrics.convert.definitions;
    for (outcome, value) in [
        ("by_revision", r.by_revision),
        ("by_channel_build_id", r.by_channel_build_id),
        ("by_app_version", r.by_app_version),
        ("missing", r.missing),
        ("invalid_url", r.invalid_url),
        ("bad_spec", r.bad_spec),
        ("fetched", f.fetched),
        ("fetch_cache_hit", f.cache_hits),
        ("fetch_not_found", f.not_found),
        ("fetch_failed", f.failed),
    ] {
        let counter = family.get_or_create(&OutcomeLabel { outcome });
        counter.inc_by(value.saturating_sub(counter.get()));
    }
}
