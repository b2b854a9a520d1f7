//! Live conversion's metrics ([`ConvertMetrics`]) and the conversion bounds' ([`BoundsMetrics`]:
//! revision cache, error stream), registered by the composition root.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// Label set `{type="invalid_path"}`: a bad-record type of the converter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BadTypeLabel {
    /// The bad-record type.
    pub r#type: String,
}

/// Label set `{validation="self_described"}`: how a stored record's histograms were validated.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ValidationLabel {
    /// The validation mark (`definitions`, `self_described`, `nearest`).
    pub validation: String,
}

/// Label set `{outcome="by_revision"}`: how histogram definitions were found (or not).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabel {
    /// The lookup or fetch outcome.
    pub outcome: &'static str,
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

impl ConvertMetrics {
    /// Creates the metrics and registers them in `registry`.
    pub fn register(registry: &mut Registry) -> ConvertMetrics {
        let metrics = ConvertMetrics {
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
            metrics.pending_logs.clone(),
        );
        registry.register(
            "convert_backlog_age_seconds",
            "Age of the oldest finished raw log awaiting conversion, from its first record (0: none waiting)",
            metrics.backlog_age_seconds.clone(),
        );
        registry.register("convert_logs", "Raw logs converted", metrics.logs.clone());
        registry.register(
            "convert_failed_logs",
            "Raw logs that failed to convert",
            metrics.failed_logs.clone(),
        );
        registry.register(
            "convert_records_read",
            "Raw records read by live conversion",
            metrics.records_read.clone(),
        );
        registry.register(
            "convert_records_written",
            "Records written to storage",
            metrics.records_written.clone(),
        );
        registry.register(
            "convert_bad_records",
            "Rejected records by bad-record type",
            metrics.bad_records.clone(),
        );
        registry.register(
            "convert_validated_records",
            "Stored records with histograms by how they were validated (definitions, self_described, nearest)",
            metrics.validated_records.clone(),
        );
        registry.register(
            "convert_duplicates",
            "Records not stored because their document id was already stored (dedup)",
            metrics.duplicates.clone(),
        );
        registry.register(
            "convert_dedup_entries",
            "Document ids in the dedup index (those of the last dedup_window_days days of submission dates)",
            metrics.dedup_entries.clone(),
        );
        registry.register(
            "histogram_definitions",
            "Histogram definition lookups by outcome (by_revision, by_channel_build_id, by_app_version, missing, invalid_url, bad_spec) and fetches from the histogram server (fetched, fetch_cache_hit, fetch_not_found, fetch_failed, fetch_busy)",
            metrics.definitions.clone(),
        );
        metrics
    }
}

/// Metrics of the bounds on the conversion side: the revision cache, the error stream and the
/// per-thread bucket-layout caches (copied from their own counters at every scrape).
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
    /// Bucket bounds held by the conversion threads' layout caches.
    pub layout_cache_bounds: Gauge,
    /// Bucket layouts computed because no layout cache held them.
    pub layout_cache_computed: Counter,
    /// Layout caches emptied to stay within their bound.
    pub layout_cache_emptied: Counter,
}

/// Label set `{reason="file_budget"}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    /// `body_dropped` or `dropped`.
    pub reason: &'static str,
}

impl BoundsMetrics {
    /// Creates the metrics and registers them in `registry`.
    pub fn register(registry: &mut Registry) -> BoundsMetrics {
        let metrics = BoundsMetrics::default();
        registry.register(
            "revision_cache_entries",
            "Histogram revisions with definitions held in memory",
            metrics.revision_cache_entries.clone(),
        );
        registry.register(
            "revision_cache_miss_entries",
            "Histogram revisions known to be missing held in memory",
            metrics.revision_cache_miss_entries.clone(),
        );
        registry.register(
            "revision_cache_evictions",
            "Revision cache entries evicted (LRU)",
            metrics.revision_cache_evictions.clone(),
        );
        registry.register(
            "revision_rejected",
            "Revision lookups refused before any work (not an hg hash or bad repository)",
            metrics.revision_rejected.clone(),
        );
        registry.register(
            "revision_fetches_running",
            "Histogram server fetches running now",
            metrics.revision_fetches_running.clone(),
        );
        registry.register(
            "revision_fetch_backoff_entries",
            "Revisions remembered as failed for their fetch back-off (at most 4096)",
            metrics.revision_fetch_backoff_entries.clone(),
        );
        registry.register(
            "error_bodies_truncated",
            "Rejected bodies cut to errors.max_body_bytes in the error stream",
            metrics.error_bodies_truncated.clone(),
        );
        registry.register("error_entries_limited", "Error-stream entries written without body (body_dropped) or not written (dropped) because a byte budget was spent", metrics.error_entries_limited.clone());
        registry.register(
            "convert_layout_cache_bounds",
            "Bucket bounds held by the conversion threads' caches of self-described histogram layouts (at most 65,536 per thread)",
            metrics.layout_cache_bounds.clone(),
        );
        registry.register(
            "convert_layout_cache_computed",
            "Self-described histogram bucket layouts computed on a cache miss",
            metrics.layout_cache_computed.clone(),
        );
        registry.register(
            "convert_layout_cache_emptied",
            "Layout caches emptied because a new layout would exceed their bound",
            metrics.layout_cache_emptied.clone(),
        );
        metrics
    }
}
