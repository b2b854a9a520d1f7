//! The job service API under `/api/v1`: upload Wasm components and jobs, follow them in the queue,
//! fetch results, cancel. Authenticated with bearer tokens ([`auth`]); documented by the OpenAPI
//! document served at `/api/v1/openapi.json` (`docs/openapi.json`); user docs in `docs/api/jobs.md`.
//!
//! - [`config`](JobsConfig): the `[jobs]` section.
//! - [`auth`]: tokens stored as SHA-256 hashes, constant-time lookup, roles.
//! - [`new_token`]: a random token and its config entry (`telemetry-server token new`).
//! - [`types`]: request/response bodies shared with the CLI client.
//! - `service`: [`JobService`] (runtime, compile cache, scheduler) and the upload checks.
//! - `upload`: capped multipart reading. `routes`: the handlers. [`format`]: result formats.
//! - `schedule_routes`: `/schedules` (jobs run on a schedule, `jobs::schedule`);
//!   `schedule_check`: a manifest's `schedule`, `output` and `run_at`.

mod error;
pub use crate::jobs::result_format as format;
mod openapi;
mod result_stream;
mod routes;
mod schedule_routes;
pub mod types;
mod upload;

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::Router;

pub use crate::jobs::service::auth::{self, hash_token, Authenticator, Caller, Role, TokenConfig};
pub use crate::jobs::service::config::JobsConfig;
pub use crate::jobs::service::new_token;
pub use crate::jobs::service::{JobService, ServiceError};
pub use error::ApiError;

/// The `/api/v1` routes (mount with `Router::nest("/api/v1", router(service))`).
pub fn router<S: Clone + Send + Sync + 'static>(service: Arc<JobService>) -> Router<S> {
    // Room for the largest component, the manifest and multipart framing; each part is also
    // capped on its own while it streams (see `upload`).
    let body_limit = (service.config.max_component_bytes
        + service.config.max_manifest_bytes
        + 64 * 1024) as usize;
    Router::new()
        .route("/jobs", post(routes::submit).get(routes::list))
        .route("/jobs/{id}", get(routes::status).delete(routes::cancel))
        .route("/jobs/{id}/result", get(routes::result))
        .route("/jobs/{id}/result.svg", get(routes::result_chart))
        .route("/schedules", get(schedule_routes::list))
        .route(
            "/schedules/{id}",
            get(schedule_routes::status).delete(schedule_routes::delete),
        )
        .route("/schedules/{id}/runs", get(schedule_routes::runs))
        .route(
            "/schedules/{id}/runs/{seq}/result",
            get(schedule_routes::run_result),
        )
        .route("/schedules/{id}/chart.svg", get(schedule_routes::chart))
        .route("/components", post(routes::upload_component))
        .route("/openapi.json", get(routes::openapi))
        .fallback(routes::not_found)
        .layer(DefaultBodyLimit::max(body_limit))
        .with_state(service)
}
