//! The coordinator→worker control messages (JSON over the worker's `--listen` HTTP port, each
//! request carrying the registration's control key as a bearer token):
//!
//! | route | body → answer |
//! |---|---|
//! | `POST /cluster/prepare` | [`Prepare`] → [`Prepared`]: a fresh mesh port, whether the component is cached, and (a `local` source) the worker's own matching files |
//! | `PUT /cluster/components/{sha256}` | the component's bytes → 204 (refused unless they hash to the name) |
//! | `POST /cluster/attempts` | [`AttemptPlan`] → 202: the worker starts its process of the attempt |
//! | `GET /cluster/attempts/{id}` | → [`AttemptStatus`] |
//! | `POST /cluster/attempts/{id}/cancel` | → 204: the worker cancels its process of the attempt |

use serde::{Deserialize, Serialize};

use crate::jobs::sources::SourceConfig;
use crate::jobs::{Limits, Listing};

/// Most bytes of a shipped component (the same bound as an upload's default).
pub const MAX_COMPONENT_BYTES: usize = 64 << 20;
/// Most bytes of an attempt plan (the listing dominates: ~100 bytes per file).
pub const MAX_PLAN_BYTES: usize = 32 << 20;

/// `POST /cluster/prepare`: the coordinator is about to plan an attempt with this component.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Prepare {
    /// SHA-256 (hex) of the job's component.
    pub sha256: String,
    /// The job reads each member's own storage (a `local` source): the worker lists its storage
    /// with this filter document (`storage::filter::document`) and answers with what matched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_filter: Option<serde_json::Value>,
}

/// A worker's own partition files that a job's filter matched.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocalFiles {
    /// Files matched.
    pub files: u64,
    /// Their size (stored, compressed).
    pub bytes: u64,
    /// Files the filter pruned.
    pub pruned: u64,
}

/// The answer to [`Prepare`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Prepared {
    /// `host:port` this worker's mesh will listen on for the attempt.
    pub mesh_address: String,
    /// The worker already holds the component (else the coordinator uploads it).
    pub have_component: bool,
    /// With [`Prepare::local_filter`]: the worker's own files it matched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local: Option<LocalFiles>,
}

/// `POST /cluster/attempts`: one process's part of an attempt.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AttemptPlan {
    /// The attempt's id (the job id and attempt number).
    pub attempt: String,
    /// SHA-256 of the component (already on the worker).
    pub sha256: String,
    /// This worker's process index in `addresses`.
    pub process: usize,
    /// Every process's mesh address (process 0 is the coordinator).
    pub addresses: Vec<String>,
    /// The attempt's mesh secret (64 hex digits).
    pub secret: String,
    /// Timely worker threads per process.
    pub workers: usize,
    /// Where the files are read.
    pub source: SourceConfig,
    /// The coordinator's listing of a shared (S3) source: every process computes the same
    /// size-balanced shares of it. Empty for a `local` source.
    pub listing: Listing,
    /// A `local` source: the filter document the worker lists its own storage with (its workers
    /// read all of what it matches, and nothing else).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_filter: Option<serde_json::Value>,
    /// The job's parameter.
    pub param: String,
    /// The job's limits.
    pub limits: Limits,
    /// Skip bad records instead of failing.
    pub skip_bad_records: bool,
    /// The fraction of records read.
    pub sample: f64,
}

/// Where a worker's process of an attempt stands.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "state")]
pub enum AttemptStatus {
    /// Still running.
    Running,
    /// Finished: the process's cost report (its own files, records and bytes).
    Done {
        /// The process's [`crate::jobs::CostReport`] as JSON.
        cost: serde_json::Value,
    },
    /// Failed (or cancelled).
    Failed {
        /// Why.
        error: String,
        /// The failure is the run's, not the job's (the mesh broke, a peer vanished): another
        /// attempt may succeed. A job error (a trap, a limit) is not retried.
        retry: bool,
    },
}
