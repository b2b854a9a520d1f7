//! What a job declares: one instance, `init(param)`, and the `job-spec` it returns (for
//! `telemetry-server job check`, which prints it before running anything).

use super::guest::{Guest, Linked, Shared};
use super::{CancelToken, CompiledJob, JobError, Limits, Runtime};
use serde::Serialize;
use std::sync::Arc;

/// A job's `job-spec`, as `init` returned it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeclaredSpec {
    /// JSON pointers extracted from every document, in order.
    pub fields: Vec<String>,
    /// Whether the job gets the whole document.
    pub payload: bool,
    /// Whether the job has a combine phase.
    pub combine: bool,
    /// Values a key collects before `combine` (0: the host default).
    pub combine_threshold: u32,
    /// Whether the job has a reduce phase (false: map-only).
    pub reduce: bool,
}

/// Instantiates `job` once in the sandbox and calls `init(param)`: the spec it declares, or why
/// it cannot run (an invalid parameter, a trap in `init`, a limit).
pub fn declared_spec(
    runtime: &Runtime,
    job: &CompiledJob,
    param: &str,
    limits: Limits,
) -> Result<DeclaredSpec, JobError> {
    let shared = Arc::new(Shared::new(limits, CancelToken::new()));
    let linked = Linked::new(runtime, job)?;
    let guest = Guest::new(&linked, &shared, 0, param)?;
    let spec = guest.spec();
    Ok(DeclaredSpec {
        fields: spec.fields.clone(),
        payload: spec.wants_payload,
        combine: spec.has_combine,
        combine_threshold: spec.combine_threshold,
        reduce: spec.has_reduce,
    })
}
