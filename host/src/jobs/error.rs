//! [`JobError`]: every way a job can fail, each precise enough to show to the person who wrote it.

use crate::storage::StorageError;

/// Why a job (or the compilation of its component) failed.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// The uploaded bytes are not a usable job component; `reason` names what is wrong or missing.
    #[error("invalid job component: {reason}")]
    InvalidComponent {
        /// What is wrong, e.g. "missing export `telemetry:job/job@0.1.0`".
        reason: String,
    },
    /// No compiled component with this SHA-256 is in the cache.
    #[error("no compiled job with sha256 {sha256} in the cache")]
    NotCached {
        /// The requested digest.
        sha256: String,
    },
    /// The job rejected its parameter in `init`.
    #[error("job rejected its parameter: {message}")]
    InvalidParam {
        /// The job's message.
        message: String,
    },
    /// The guest trapped (panic, abort, out-of-bounds access, stack overflow…) or returned an error.
    #[error("job failed{}: {message}", record_id.as_ref().map(|id| format!(" on record {id}")).unwrap_or_default())]
    Trap {
        /// The document id of the record being mapped, when the failure was in `map-batch`.
        record_id: Option<String>,
        /// The guest's message (its panic text when it has one) and the trap kind.
        message: String,
    },
    /// The job went over one of its [`Limits`](super::Limits).
    #[error("job exceeded its {what} limit")]
    LimitExceeded {
        /// Which limit, with its value, e.g. "memory (256 MiB)".
        what: String,
    },
    /// The filter selected no partition file, and the run did not allow an empty input.
    #[error("the filter ({filter}) matched no partition file: {pruned} stored files were pruned by it; check the filter's values against the stored ones (`telemetry-server storage sample`), or allow an empty run (`--allow-empty`, manifest `allow_empty`)")]
    NoInput {
        /// The dimensions the filter restricts ([`crate::storage::filter::describe`]).
        filter: String,
        /// Stored files the filter skipped.
        pruned: u64,
    },
    /// The job was cancelled.
    #[error("job cancelled")]
    Cancelled,
    /// A stored record could not be read (not `id<TAB>json`, or invalid JSON).
    #[error("bad input record in {file}{}: {message}", record_id.as_ref().map(|id| format!(" (record {id})")).unwrap_or_default())]
    BadRecord {
        /// The partition file.
        file: String,
        /// The document id, if the line had one.
        record_id: Option<String>,
        /// What is wrong.
        message: String,
    },
    /// Reading the input failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The job filter, data source or options are not usable.
    #[error("{0}")]
    Config(String),
    /// The compile cache or another host-side operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What the host was doing.
        context: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The compile cache (its directory or key) is not private to this user.
    #[error("the compile cache is not private: {reason}")]
    UnsafeCache {
        /// What is wrong.
        reason: String,
    },
    /// An unexpected engine failure (not caused by the guest).
    #[error("wasm engine: {0}")]
    Engine(String),
    /// Another process of a cluster run failed with this error (its text).
    #[error("{0}")]
    Member(String),
    /// A cluster member lost mid-job held partition files of the job's `local` source that no
    /// other member has, and the manifest does not allow partial results.
    #[error("cluster member {member} ({address}) was lost holding {files} of the job's partition files ({bytes} bytes) in its local storage: {reason}; no other member holds them, so the job fails (a manifest with \"allow_partial\": true gets a result without them, marked partial)")]
    MemberLost {
        /// The member's id.
        member: String,
        /// Its registered address.
        address: String,
        /// Partition files of the job it held (matched by the job's filter).
        files: u64,
        /// Their size.
        bytes: u64,
        /// Why it counts as lost.
        reason: String,
    },
}

impl JobError {
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        JobError::Io {
            context: context.into(),
            source,
        }
    }
}
