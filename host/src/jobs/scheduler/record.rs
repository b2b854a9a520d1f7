//! What the scheduler knows about one job: the submitted manifest, its state machine and the
//! outcome (progress, cost report, error). This is also the job's JSON in the HTTP API and on disk.

use serde::{Deserialize, Serialize};

/// What a user submits beside the component: which data to read and how to run the job.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// A label for people (`os-distribution for nightly`).
    pub name: String,
    /// The data filter, same format as `telemetry_schema.json`, its dimensions matched by
    /// `field_name` (any subset; see `docs/jobs/`). None reads everything.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<serde_json::Value>,
    /// The job parameter string handed to the guest.
    #[serde(default, alias = "param", skip_serializing_if = "Option::is_none")]
    pub parameter: Option<String>,
    /// Per-job limits; missing fields take the server defaults, none may exceed `[jobs.max_limits]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<serde_json::Value>,
    /// Worker threads wanted; more than the server's `max_workers_per_job` is refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workers: Option<usize>,
    /// Skip records the guest traps on (counted in the cost report) instead of failing the job.
    #[serde(default)]
    pub skip_bad_records: bool,
    /// Read only this fraction of the records (0 < f ≤ 1), chosen by a stable hash of the
    /// document id (`jobs::Sample`); every record when missing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sample: Option<f64>,
    /// Succeed with an empty result when the filter selects no partition file (otherwise the
    /// job fails saying so).
    #[serde(default)]
    pub allow_empty: bool,
    /// A cluster job over a `local` source (each member reads its own storage) whose member is
    /// lost while holding matching files: re-run on the survivors and succeed with a result
    /// marked partial (`cluster.partial` in the cost report) instead of failing.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub allow_partial: bool,
    /// `false`: read every partition file as JSON, without the column cache
    /// (`docs/jobs/column-cache.md`). Missing: use it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub column_cache: Option<bool>,
    /// SHA-256 of a component uploaded earlier with `POST /components`; used when the upload has
    /// no `component` part.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub component: Option<String>,
    /// The configured source to read (`[jobs.sources.NAME]`); the server's local storage when
    /// missing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// Run the job on a schedule (`daily HH:MM` or 5-field cron, UTC) instead of once; see
    /// `jobs::schedule` and `docs/jobs/schedules.md`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<String>,
    /// Also write the result to this `[jobs.outputs.NAME]` after the job succeeds (`jobs::output`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<String>,
    /// The format written to `output`: `text` (default), `csv` or `ndjson`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_format: Option<crate::jobs::result_format::ResultFormat>,
    /// Set by the server on a scheduled run's job: the time (RFC 3339, UTC) its relative dates
    /// were resolved at. Refused in a submitted manifest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_at: Option<String>,
}

/// Where a job's result was written (`Manifest::output`), checked after the upload.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct OutputReceipt {
    /// The `[jobs.outputs.NAME]` used.
    pub name: String,
    /// `s3://bucket/key` of the object.
    pub url: String,
    /// Size of the object.
    pub bytes: u64,
    /// SHA-256 of the object, read back from the store after the upload.
    pub sha256: String,
}

/// Where a job is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    /// Accepted and waiting for a free slot.
    Queued,
    /// Running now.
    Running,
    /// Finished; the result is available.
    Succeeded,
    /// Finished with an error (see `error`).
    Failed,
    /// Cancelled by a user before it finished.
    Cancelled,
}

impl JobState {
    /// Whether the job will not change any more.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            JobState::Succeeded | JobState::Failed | JobState::Cancelled
        )
    }

    /// The state's name as used in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Running => "running",
            JobState::Succeeded => "succeeded",
            JobState::Failed => "failed",
            JobState::Cancelled => "cancelled",
        }
    }
}

/// How far a running job has got (a snapshot; the totals are known once files are listed).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
pub struct ProgressSnapshot {
    /// Partition files the job will read.
    pub files_total: u64,
    /// Partition files done.
    pub files_done: u64,
    /// Records mapped so far.
    pub records: u64,
    /// Decompressed bytes read so far.
    pub bytes: u64,
}

/// One job as stored in `jobs/queue/<id>.json` and returned by `GET /api/v1/jobs/{id}`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct JobRecord {
    /// Job id (a UUID).
    pub id: String,
    /// Name of the token that submitted it.
    pub owner: String,
    /// What was submitted.
    pub manifest: Manifest,
    /// SHA-256 of the component that runs.
    pub component_sha256: String,
    /// Current state.
    pub state: JobState,
    /// RFC 3339 times.
    pub submitted_at: String,
    /// When it started running, if it did.
    #[serde(default)]
    pub started_at: Option<String>,
    /// When it reached a final state.
    #[serde(default)]
    pub finished_at: Option<String>,
    /// Progress (live while running, final afterwards).
    #[serde(default)]
    pub progress: ProgressSnapshot,
    /// The executor's cost report (records, bytes, emits, phase times, memory…), once finished.
    #[serde(default)]
    pub cost: Option<serde_json::Value>,
    /// Why it failed or was cancelled.
    #[serde(default)]
    pub error: Option<String>,
    /// Size of the stored result in bytes, once succeeded.
    #[serde(default)]
    pub result_bytes: Option<u64>,
    /// The guest's log lines (capped by the job limits).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub log: Vec<String>,
    /// Where the result was written, when the manifest names an `output`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<OutputReceipt>,
}

impl JobRecord {
    /// A freshly queued job.
    pub fn queued(owner: &str, manifest: Manifest, component_sha256: String) -> Self {
        JobRecord {
            // v7: time-ordered, and ordered by creation within a millisecond, so listing and
            // restart order by (submitted_at, id) is submission order.
            id: uuid::Uuid::now_v7().to_string(),
            owner: owner.to_string(),
            manifest,
            component_sha256,
            state: JobState::Queued,
            submitted_at: now(),
            started_at: None,
            finished_at: None,
            progress: ProgressSnapshot::default(),
            cost: None,
            error: None,
            result_bytes: None,
            log: Vec::new(),
            output: None,
        }
    }

    /// Moves the job to a final state now.
    pub fn finish(&mut self, state: JobState, error: Option<String>) {
        self.state = state;
        self.error = error;
        self.finished_at = Some(now());
    }

    /// Seconds since the job finished, if it has.
    pub fn finished_secs_ago(&self) -> Option<u64> {
        let finished = chrono::DateTime::parse_from_rfc3339(self.finished_at.as_deref()?).ok()?;
        let age = chrono::Utc::now().signed_duration_since(finished);
        Some(age.num_seconds().max(0) as u64)
    }
}

/// The current time as RFC 3339 (UTC, milliseconds).
pub fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Whether `id` looks like a job id (so request paths never name other files).
pub fn is_job_id(id: &str) -> bool {
    uuid::Uuid::parse_str(id).is_ok() && id.len() == 36
}

/// Whether `sha` is a lower-case hex SHA-256.
pub fn is_sha256(sha: &str) -> bool {
    sha.len() == 64 && sha.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_rejects_unknown_fields_and_accepts_param_alias() {
        let m: Manifest =
            serde_json::from_str(r#"{"name":"n","filter":{},"param":"GC_MS"}"#).unwrap();
        assert_eq!(m.parameter.as_deref(), Some("GC_MS"));
        let err = serde_json::from_str::<Manifest>(r#"{"name":"n","filter":{},"paramter":"x"}"#)
            .unwrap_err();
        assert!(err.to_string().contains("paramter"), "{err}");
    }

    #[test]
    fn record_round_trips_and_ages() {
        let m: Manifest = serde_json::from_str(r#"{"name":"n","filter":{"version":1}}"#).unwrap();
        let mut r = JobRecord::queued("alice", m, "ab".repeat(32));
        assert!(is_job_id(&r.id));
        assert_eq!(r.finished_secs_ago(), None);
        r.finish(JobState::Failed, Some("boom".into()));
        assert_eq!(r.finished_secs_ago(), Some(0));
        let back: JobRecord = serde_json::from_str(&serde_json::to_string(&r).unwrap()).unwrap();
        assert_eq!(back, r);
    }

    #[test]
    fn ids_and_hashes_are_checked() {
        assert!(!is_job_id("../../etc/passwd"));
        assert!(is_sha256(&"0f".repeat(32)));
        assert!(!is_sha256(&"0F".repeat(32)));
        assert!(!is_sha256("abc"));
    }
}
