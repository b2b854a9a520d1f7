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

/// Label set `{validation="self_described"}`: how a stored record's histograms were validated.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ValidationLabel {
    pub validation: String,
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
    /// Age in seconds of the oldest raw log waiting for conversion (0 when none; set at scrape).
    pub backlog_age_seconds: Gauge,
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
    /// Stored records with histograms by validation mark.
    pub validated_records: Family<ValidationLabel, Counter>,
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
    /// HTTP connections: open, accepted, throttled at the cap, closed by a deadline.
    pub connections: super::listener::ConnectionMetrics,
    /// Bounded caches and retention sweeps (issue 11).
    pub bounds: BoundsMetrics,
    /// Run before each scrape to bring computed gauges up to date (see [`Metrics::on_scrape`]).
    scrape_hooks: Mutex<Vec<ScrapeHook>>,
}

/// A gauge update run at every scrape.
pub type ScrapeHook = Box<dyn Fn() + Send + Sync>;

/// Metrics of the bounds added against hostile input: the revision cache, the error stream and
/// the retention sweeps.
#[derive(Clone, Default)]
pub struct BoundsMetrics {
    /// Revisions with definitions in memory.
    pub revision_cache_entries: Gauge,
    /// Revisions known to be missing in memory.
    pub revision_cache_miss_entries: Gauge,
    /// Entries evicted from the revision cache (copied at every scrape).
    pub revision_cache_evictions: Counter,
    /// Revision lookups refused before any work (not an hg hash, or a bad repository path).
    pub revision_rejected: Counter,
    /// Histogram server fetches running now.
    pub revision_fetches_running: Gauge,
    /// Revisions remembered as failed for their fetch back-off.
    pub revision_fetch_backoff_entries: Gauge,
    /// Rejected bodies cut to `errors.max_body_bytes` in the error stream.
    pub error_bodies_truncated: Counter,
    /// Error-stream entries written without their body, or dropped, because a budget was spent.
    pub error_entries_limited: Family<ReasonLabel, Counter>,
    /// Files removed by retention sweeps, by directory and rule.
    pub retention_files_removed: Family<SweepLabel, Counter>,
    /// Bytes removed by retention sweeps, by directory and rule.
    pub retention_bytes_removed: Family<SweepLabel, Counter>,
    /// Bytes under each swept directory after the last sweep.
    pub retention_dir_bytes: Family<DirLabel, Gauge>,
    /// Sweeps that hit their deadline before finishing.
    pub retention_sweeps_cut: Counter,
}

/// Label set `{reason="file_budget"}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    pub reason: &'static str,
}

/// Label set `{dir="errors", rule="age"}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SweepLabel {
    pub dir: &'static str,
    pub rule: &'static str,
}

/// Label set `{dir="errors"}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DirLabel {
    pub dir: &'static str,
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
            backlog_age_seconds: Gauge::default(),
            logs: Counter::default(),
            failed_logs: Counter::default(),
            records_read: Counter::default(),
            records_written: Counter::default(),
            bad_records: Family::default(),
            validated_records: Family::default(),
            duplicates: Counter::default(),
            dedup_entries: Gauge::default(),
            definitions: Family::default(),
        };
        registry.register(
            "convert_pending_logs",
            "Finished raw logs awaiting conversion",
            convert.pending_logs.clone(),
        );
        registry.register(
            "convert_backlog_age_seconds",
            "Age of the oldest finished raw log awaiting conversion, from its first record (0: none waiting)",
            convert.backlog_age_seconds.clone(),
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
            "convert_validated_records",
            "Stored records with histograms by how they were validated (definitions, self_described, nearest)",
            convert.validated_records.clone(),
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
            "Histogram definition lookups by outcome (by_revision, by_channel_build_id, by_app_version, missing, invalid_url, bad_spec) and fetches from the histogram server (fetched, fetch_cache_hit, fetch_not_found, fetch_failed, fetch_busy)",
            convert.definitions.clone(),
        );
        let connections = super::listener::ConnectionMetrics::default();
        registry.register(
            "http_open_connections",
            "HTTP connections open now",
            connections.open.clone(),
        );
        registry.register(
            "http_connections_accepted",
            "HTTP connections accepted",
            connections.accepted.clone(),
        );
        registry.register(
            "http_connections_throttled",
            "Times every connection permit (server.max_connections) was taken and accepting paused",
            connections.throttled.clone(),
        );
        registry.register(
            "http_timeouts",
            "Connections closed (header, idle) or request bodies cut (body) by a deadline",
            connections.timeouts.clone(),
        );
        registry.register(
            "http_accept_errors",
            "Failed accept calls (e.g. out of file descriptors)",
            connections.accept_errors.clone(),
        );
        let bounds = BoundsMetrics::default();
        registry.register(
            "revision_cache_entries",
            "Histogram revisions with definitions held in memory",
            bounds.revision_cache_entries.clone(),
        );
        registry.register(
            "revision_cache_miss_entries",
            "Histogram revisions known to be missing held in memory",
            bounds.revision_cache_miss_entries.clone(),
        );
        registry.register(
            "revision_cache_evictions",
            "Revision cache entries evicted (LRU)",
            bounds.revision_cache_evictions.clone(),
        );
        registry.register(
            "revision_rejected",
            "Revision lookups refused before any work (not an hg hash or bad repository)",
            bounds.revision_rejected.clone(),
        );
        registry.register(
            "revision_fetches_running",
            "Histogram server fetches running now",
            bounds.revision_fetches_running.clone(),
        );
        registry.register(
            "revision_fetch_backoff_entries",
            "Revisions remembered as failed for their fetch back-off (at most 4096)",
            bounds.revision_fetch_backoff_entries.clone(),
        );
        registry.register(
            "error_bodies_truncated",
            "Rejected bodies cut to errors.max_body_bytes in the error stream",
            bounds.error_bodies_truncated.clone(),
        );
        registry.register("error_entries_limited", "Error-stream entries written without body (body_dropped) or not written (dropped) because a byte budget was spent", bounds.error_entries_limited.clone());
        registry.register(
            "retention_removed_files",
            "Files removed by retention sweeps by directory and rule (age, bytes)",
            bounds.retention_files_removed.clone(),
        );
        registry.register(
            "retention_removed_bytes",
            "Bytes removed by retention sweeps by directory and rule (age, bytes)",
            bounds.retention_bytes_removed.clone(),
        );
        registry.register(
            "retention_dir_bytes",
            "Bytes under each swept directory after the last sweep",
            bounds.retention_dir_bytes.clone(),
        );
        registry.register(
            "retention_sweeps_cut",
            "Retention sweeps stopped by their deadline",
            bounds.retention_sweeps_cut.clone(),
        );
        Arc::new(Metrics {
            registry: Mutex::new(registry),
            http,
            ingest,
            convert,
            connections,
            bounds,
            scrape_hooks: Mutex::new(Vec::new()),
        })
    }

    /// Runs `hook` before every scrape (for gauges computed from a service's state, such as the
    /// conversion backlog age). Call at start-up: one hook per service.
    pub fn on_scrape(&self, hook: impl Fn() + Send + Sync + 'static) {
        self.scrape_hooks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Box::new(hook));
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
    for hook in state
        .metrics
        .scrape_hooks
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
    {
        hook();
    }
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
        ("fetch_busy", f.busy),
    ] {
        let counter = family.get_or_create(&OutcomeLabel { outcome });
        counter.inc_by(value.saturating_sub(counter.get()));
    }
    let c = state.revisions.cache_stats();
    let bounds = &state.metrics.bounds;
    bounds
        .revision_cache_entries
        .set(c.entries.min(i64::MAX as u64) as i64);
    bounds
        .revision_cache_miss_entries
        .set(c.miss_entries.min(i64::MAX as u64) as i64);
    bounds.revision_cache_evictions.inc_by(
        c.evictions
            .saturating_sub(bounds.revision_cache_evictions.get()),
    );
    bounds
        .revision_rejected
        .inc_by(c.rejected.saturating_sub(bounds.revision_rejected.get()));
    bounds
        .revision_fetches_running
        .set(state.revisions.fetches_running() as i64);
    bounds
        .revision_fetch_backoff_entries
        .set(f.backoff_entries.min(i64::MAX as u64) as i64);
    let e = crate::convert::error_stream_stats();
    bounds.error_bodies_truncated.inc_by(
        e.truncated
            .saturating_sub(bounds.error_bodies_truncated.get()),
    );
    for (reason, value) in [("body_dropped", e.body_dropped), ("dropped", e.dropped)] {
        let counter = bounds
            .error_entries_limited
            .get_or_create(&ReasonLabel { reason });
        counter.inc_by(value.saturating_sub(counter.get()));
    }
}
