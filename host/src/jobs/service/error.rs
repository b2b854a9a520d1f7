//! [`ApiError`]: what a job service request can fail with, as a stable code and a sentence; the
//! HTTP layer (`api::jobs`) maps each to a status and a `{error, detail}` body.

/// Everything a `/api/v1` request can fail with. `error` in the body is a stable snake_case code,
/// `detail` a sentence for people.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No or unknown bearer token.
    #[error("{0}")]
    Unauthorized(String),
    /// A valid token whose role may not do this.
    #[error("{0}")]
    Forbidden(String),
    /// No such job, component or route; also another token's job, which a caller may not
    /// tell apart from a missing one.
    #[error("{0}")]
    NotFound(String),
    /// An upload or request that cannot be accepted; `code` names the problem
    /// (`not_wasm`, `not_component`, `wrong_world`, `component_too_large`, `bad_manifest`, …).
    #[error("{detail}")]
    BadRequest {
        /// Stable machine-readable reason.
        code: &'static str,
        /// What exactly is wrong.
        detail: String,
    },
    /// The request conflicts with the job's state (e.g. asking for the result of a queued job).
    #[error("{0}")]
    Conflict(String),
    /// The queue is full; retry later.
    #[error("{0}")]
    Unavailable(String),
    /// The upload would take its token above `jobs.upload_quota_bytes`.
    #[error("{0}")]
    QuotaExceeded(String),
    /// A server-side failure (disk, compiler crash); logged with details.
    #[error("{0}")]
    Internal(String),
}

impl ApiError {
    /// Shorthand for a 400 with a reason code.
    pub fn bad(code: &'static str, detail: impl Into<String>) -> Self {
        ApiError::BadRequest {
            code,
            detail: detail.into(),
        }
    }

    /// The 404 for a job id that does not exist or that the caller may not see (the same answer
    /// for both).
    pub fn no_job(id: &str) -> Self {
        ApiError::NotFound(format!("no job {id}"))
    }

    /// The stable `error` code of the body.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::Unauthorized(_) => "unauthorized",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::NotFound(_) => "not_found",
            ApiError::BadRequest { code, .. } => code,
            ApiError::Conflict(_) => "conflict",
            ApiError::Unavailable(_) => "unavailable",
            ApiError::QuotaExceeded(_) => "upload_quota_exceeded",
            ApiError::Internal(_) => "internal",
        }
    }
}
