//! Request and response bodies of `/api/v1`, shared by the server routes and the CLI client
//! (`telemetry-server job submit|status|…`), so both sides agree on the wire format.

use serde::{Deserialize, Serialize};

pub use super::format::ResultFormat;
pub use crate::jobs::schedule::{RunRecord, ScheduleRecord};
pub use crate::jobs::scheduler::{JobRecord, JobState, Manifest, OutputReceipt, ProgressSnapshot};

/// Every error answer: `{"error": "<code>", "detail": "<sentence>"}`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct ErrorBody {
    /// Stable snake_case code (`unauthorized`, `not_component`, `wrong_world`, …).
    pub error: String,
    /// What exactly went wrong, for people.
    pub detail: String,
}

/// `202` answer to `POST /api/v1/jobs`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct SubmitResponse {
    /// The new job's id.
    pub id: String,
    /// Its state (always `queued`).
    pub state: JobState,
    /// SHA-256 of the component it runs.
    pub component_sha256: String,
    /// Where to poll.
    pub status_url: String,
}

/// `201`/`200` answer to `POST /api/v1/components`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct ComponentResponse {
    /// Refer to the component by this hash in a manifest's `component` field.
    pub sha256: String,
    /// Size of the uploaded component.
    pub size_bytes: u64,
    /// Whether the compiled artifact was already in the cache.
    pub cache_hit: bool,
    /// Milliseconds spent validating and compiling (near 0 on a cache hit).
    pub compile_ms: f64,
}

/// `GET /api/v1/jobs`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct JobList {
    /// Jobs the caller may see, oldest first, each without its `log` (see `GET /api/v1/jobs/{id}`).
    pub jobs: Vec<JobRecord>,
    /// The caller's role, so a client (the dashboard) asks only for what the token may see.
    #[serde(default)]
    pub role: Option<crate::jobs::service::auth::Role>,
}

/// `201` answer to `POST /api/v1/jobs` with a manifest `schedule`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct ScheduleResponse {
    /// The new schedule's id.
    pub id: String,
    /// The schedule as given.
    pub schedule: String,
    /// When the first run is due (RFC 3339, UTC).
    pub next_run: Option<String>,
    /// Where to follow it.
    pub schedule_url: String,
}

/// `GET /api/v1/schedules`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct ScheduleList {
    /// Schedules the caller may see, oldest first, each without its runs.
    pub schedules: Vec<ScheduleRecord>,
}

/// `GET /api/v1/schedules/{id}/runs`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct RunList {
    /// The kept runs, oldest first.
    pub runs: Vec<RunRecord>,
}
