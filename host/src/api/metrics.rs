//! The server's metrics ([`Metrics`]: each stage's own metric handles, registered in the one
//! [`crate::metrics::Registry`]) and the `/metrics` endpoint.
//!
//! Each stage defines and registers its metrics itself (`ingest::metrics`, `convert::metrics`,
//! `storage::retention`, `api::listener`, the job service, the exporter); [`Metrics::new`]
//! registers the HTTP side's and the stages' in one registry, in a fixed order, and keeps the
//! handles every part of the server updates lock-free.

use std::sync::{Arc, OnceLock};

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::{Metric, Registry};

use super::listener::ConnectionMetrics;
use super::AppState;
use crate::convert::metrics::{BoundsMetrics, ConvertMetrics, OutcomeLabel, ReasonLabel};
use crate::ingest::metrics::IngestMetrics;
use crate::storage::retention::RetentionMetrics;

/// Label set `{code="200"}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CodeLabel {
    /// The HTTP status code.
    pub code: u16,
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

/// All metrics of one server.
pub struct Metrics {
    /// The one registry every stage registers in.
    pub registry: crate::metrics::Registry,
    /// HTTP requests: responses by status, bytes, latency.
    pub http: HttpMetrics,
    /// The raw log writers.
    pub ingest: IngestMetrics,
    /// Live conversion.
    pub convert: ConvertMetrics,
    /// HTTP connections: open, accepted, throttled at the cap, closed by a deadline.
    pub connections: ConnectionMetrics,
    /// Bounded caches of conversion: the revision cache and the error stream (issue 11).
    pub bounds: BoundsMetrics,
    /// Retention sweeps (issue 11).
    pub retention: RetentionMetrics,
    /// `http.requests` of each status code once it was answered (a family lookup hashes and
    /// clones its label; a response only reads this table).
    responses: Box<[OnceLock<Counter>]>,
}

/// Status codes `100..=599` have a slot in [`Metrics`]' table of response counters.
const CODES: std::ops::Range<u16> = 100..600;

impl Metrics {
    /// A registry with the server's own metrics registered under the `telemetry_` prefix.
    pub fn new() -> Arc<Metrics> {
        let registry = crate::metrics::Registry::default();
        let (http, ingest, convert, connections, bounds, retention) =
            registry.with_registry(|registry| {
                let http = HttpMetrics::register(registry);
                (
                    http,
                    IngestMetrics::register(registry),
                    ConvertMetrics::register(registry),
                    ConnectionMetrics::register(registry),
                    BoundsMetrics::register(registry),
                    RetentionMetrics::register(registry),
                )
            });
        Arc::new(Metrics {
            registry,
            http,
            ingest,
            convert,
            connections,
            bounds,
            retention,
            responses: CODES.map(|_| OnceLock::new()).collect(),
        })
    }

    /// Runs `hook` before every scrape (see [`crate::metrics::Registry::on_scrape`]).
    pub fn on_scrape(&self, hook: impl Fn() + Send + Sync + 'static) {
        self.registry.on_scrape(hook);
    }

    /// Registers another service's metric (name gets the `telemetry_` prefix). Call at start-up.
    pub fn register(&self, name: &str, help: &str, metric: impl Metric) {
        self.registry.register(name, help, metric);
    }

    /// Runs `f` with the registry (for sub-registries or collectors).
    pub fn with_registry<R>(&self, f: impl FnOnce(&mut Registry) -> R) -> R {
        self.registry.with_registry(f)
    }

    /// The OpenMetrics text exposition of every registered metric.
    pub fn encode(&self) -> String {
        self.registry.encode()
    }

    /// Counts one response.
    pub fn count_response(&self, code: u16) {
        let family = || {
            self.http
                .requests
                .get_or_create(&CodeLabel { code })
                .clone()
        };
        match self
            .responses
            .get(usize::from(code.wrapping_sub(CODES.start)))
        {
            Some(slot) => slot.get_or_init(family).inc(),
            None => family().inc(),
        };
    }
}

impl HttpMetrics {
    /// Creates the metrics and registers them in `registry`.
    fn register(registry: &mut Registry) -> HttpMetrics {
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
        http
    }
}

/// `GET /metrics`.
pub async fn handler(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    copy_definition_counters(&state);
    state.metrics.registry.run_scrape_hooks();
    if let Ok(free) = crate::ingest::disk::free_bytes(state.data_dir.dir()) {
        set_gauge(&state.metrics.ingest.disk_free_bytes, free);
    }
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.registry.encode(),
    )
}

/// Moves a counter copied from another component's own count up to `total`.
fn advance(counter: &Counter, total: u64) {
    counter.inc_by(total.saturating_sub(counter.get()));
}

/// Sets a gauge copied from another component's own count.
fn set_gauge(gauge: &Gauge, value: u64) {
    gauge.set(value.min(i64::MAX as u64) as i64);
}

/// Brings `telemetry_histogram_definitions_total` and the conversion side's bounds metrics up to
/// their components' own counters.
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
        advance(&family.get_or_create(&OutcomeLabel { outcome }), value);
    }
    let c = state.revisions.cache_stats();
    let bounds = &state.metrics.bounds;
    set_gauge(&bounds.revision_cache_entries, c.entries);
    set_gauge(&bounds.revision_cache_miss_entries, c.miss_entries);
    advance(&bounds.revision_cache_evictions, c.evictions);
    advance(&bounds.revision_rejected, c.rejected);
    set_gauge(
        &bounds.revision_fetches_running,
        state.revisions.fetches_running() as u64,
    );
    set_gauge(&bounds.revision_fetch_backoff_entries, f.backoff_entries);
    let e = crate::convert::error_stream_stats();
    advance(&bounds.error_bodies_truncated, e.truncated);
    for (reason, value) in [("body_dropped", e.body_dropped), ("dropped", e.dropped)] {
        advance(
            &bounds
                .error_entries_limited
                .get_or_create(&ReasonLabel { reason }),
            value,
        );
    }
    let l = crate::convert::layout_cache_stats();
    set_gauge(&bounds.layout_cache_bounds, l.held_bounds);
    advance(&bounds.layout_cache_computed, l.computed);
    advance(&bounds.layout_cache_emptied, l.emptied);
}
