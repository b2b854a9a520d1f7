//! HTTP routes: the submission API (ingest), the job service (`/api/v1`), metrics, the dashboard.
//!
//! - [`submit`]: `POST`/`PUT /submit/<namespace>/<path…>` with the seed's status codes (reached
//!   through the router's fallback, without a route parameter), `GET /status`, and the seed's
//!   answers for every other path and method.
//! - [`metrics`]: the Prometheus registry shared by every service, and `GET /metrics`;
//!   [`submission_metrics`]: accepted submissions by channel and docType (bounded labels).
//! - [`histograms`]: the seed histogram server's `/histograms` and `/histogram_buckets`.
//! - [`server`]: binds, recovers raw logs, starts the writers and the live conversion, serves, drains.
//! - [`listener`]: the accept loop with the connection cap and the header, idle and body deadlines.
//! - [`jobs`]: the job service under `/api/v1`.
//! - [`chart`]: SVG bar charts of job results. [`dashboard`]: `GET /dashboard` and `GET /api/v1/stats`.
//! - [`series_chart`]: a key across a schedule's runs as an SVG column chart.
//! - [`cluster`]: `/api/v1/cluster` (workers register and heartbeat, admins list them);
//!   [`worker`]: the routes of `telemetry-server worker`'s own listener.

pub mod cluster;
pub mod dashboard;
pub mod histograms;
pub mod jobs;
pub mod listener;
pub mod metrics;
pub mod series_chart;
pub mod submission_metrics;
pub mod submit;
pub mod worker;

use std::sync::Arc;

use axum::routing::get;
use axum::Router;

use crate::config::Config;
use crate::ingest::stats_log::StatsLog;
use crate::ingest::WriterPool;
use metrics::Metrics;

/// State shared by every request handler (behind an `Arc`).
pub struct AppState {
    /// The configuration the server was started with.
    pub config: Arc<Config>,
    /// The data directory (everything the server stores lives under it; opened with cap-std).
    pub data_dir: Arc<crate::storage::DataDir>,
    /// Metrics registry; services register their own metrics at start-up.
    pub metrics: Arc<Metrics>,
    /// The raw log writers.
    pub writer: Arc<WriterPool>,
    /// The seed-format per-request stats log, when configured.
    pub stats_log: Option<StatsLog>,
    /// Histogram definitions for the histogram spec endpoints.
    pub revisions: Arc<crate::histograms::RevisionCache>,
    /// The job service behind `/api/v1` (queue, runtime, tokens).
    pub jobs: Arc<jobs::JobService>,
    /// Accepted submissions by channel and docType (bounded label sets).
    pub submissions: submission_metrics::SubmissionMetrics,
    /// The cluster's members (`/api/v1/cluster`).
    pub cluster: Arc<cluster::Coordinator>,
}

/// Every route of the server.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/status", get(submit::status).fallback(submit::fallback))
        .route("/metrics", get(metrics::handler).fallback(submit::fallback))
        .route(
            "/histograms",
            get(histograms::definitions)
                .head(histograms::head)
                .fallback(submit::fallback),
        )
        .route(
            "/histogram_buckets",
            get(histograms::buckets)
                .head(histograms::head)
                .fallback(submit::fallback),
        )
        .route(
            "/dashboard",
            get(dashboard::page).fallback(submit::fallback),
        )
        .route("/api/v1/stats", get(dashboard::stats))
        .merge(cluster::router())
        .nest("/api/v1", jobs::router(state.jobs.clone()))
        // `POST`/`PUT /submit/…` included (see `submit::unrouted`)
        .fallback(submit::unrouted)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            submit::observe,
        ))
        .with_state(state)
}
