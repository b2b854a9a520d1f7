//! What is stored about one schedule (`jobs/schedules/<id>.json`, and its JSON in the API): the
//! submitted manifest and component, when it runs next, and the history of its runs.

use serde::{Deserialize, Serialize};

use crate::jobs::scheduler::{JobState, Manifest, OutputReceipt};

/// One schedule.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct ScheduleRecord {
    /// Schedule id (a UUID).
    pub id: String,
    /// Name of the token that created it.
    pub owner: String,
    /// The submitted manifest (its `schedule` says when, its filter may hold relative dates).
    pub manifest: Manifest,
    /// SHA-256 of the component every run runs.
    pub component_sha256: String,
    /// RFC 3339 (UTC).
    pub created_at: String,
    /// When the next run is due (RFC 3339, UTC); `None` when the schedule matches no future time.
    pub next_run: Option<String>,
    /// The number the next run gets.
    pub next_seq: u64,
    /// The latest runs, oldest first, at most `jobs.schedule_history_runs`.
    pub runs: Vec<RunRecord>,
}

/// One run of a schedule.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct RunRecord {
    /// Run number within the schedule, from 1.
    pub seq: u64,
    /// The slot it ran for (RFC 3339, UTC); a run started after downtime has the last missed slot.
    pub scheduled_for: String,
    /// When it was started; relative dates were resolved at this time.
    pub run_at: String,
    /// The job that ran it (`GET /api/v1/jobs/{id}` while the job is retained).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_id: Option<String>,
    /// The filter with relative dates resolved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<serde_json::Value>,
    /// The run's job state.
    pub state: JobState,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Size of the result kept in the history.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result_bytes: Option<u64>,
    /// Where the result was also written (`output`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<OutputReceipt>,
    /// When the run's job finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
}
