//! The checks of a submitted manifest's scheduling and output fields: `schedule` parses and
//! matches a future time, `output` names a configured `[jobs.outputs.NAME]` (`output_format` needs
//! one), and `run_at` (the server's own) is not set.

use chrono::{DateTime, Utc};

use super::error::ApiError;
use crate::jobs::output::Outputs;
use crate::jobs::schedule::{ScheduleError, ScheduleSpec};
use crate::jobs::scheduler::Manifest;

/// The manifest's `schedule` parses, its `output` is configured, and it does not set the
/// server's own `run_at`.
pub(super) fn check(
    manifest: &Manifest,
    outputs: &Outputs,
    now: DateTime<Utc>,
) -> Result<(), ApiError> {
    if manifest.run_at.is_some() {
        return Err(ApiError::bad(
            "bad_manifest",
            "'run_at' is set by the server on scheduled runs; remove it",
        ));
    }
    if let Some(schedule) = &manifest.schedule {
        let spec = ScheduleSpec::parse(schedule)
            .map_err(|e| ApiError::bad("bad_schedule", e.to_string()))?;
        if spec.next_after(now).is_none() {
            return Err(ApiError::bad(
                "bad_schedule",
                ScheduleError::Never(schedule.clone()).to_string(),
            ));
        }
    }
    if let Some(name) = &manifest.output {
        if !outputs.contains(name) {
            let known = outputs.names();
            return Err(ApiError::bad(
                "unknown_output",
                format!(
                    "output {name:?} is not configured on this server; configured outputs: {}",
                    if known.is_empty() {
                        "none".to_string()
                    } else {
                        known.join(", ")
                    }
                ),
            ));
        }
    } else if manifest.output_format.is_some() {
        return Err(ApiError::bad(
            "bad_manifest",
            "'output_format' needs an 'output' to write to",
        ));
    }
    Ok(())
}
