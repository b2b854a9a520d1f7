//! The `/api/v1/schedules` handlers: list the caller's schedules, one schedule, its runs, a run's
//! kept result (`?format=`), a chosen key charted across runs, delete. Token-scoped like jobs: a
//! schedule another token created answers 404 unless the caller is an admin.

use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;

use super::auth::Caller;
use super::error::ApiError;
use super::format::ResultFormat;
use super::types::{RunList, ScheduleList};
use crate::api::series_chart;
use crate::chart;
use crate::jobs::output;
use crate::jobs::schedule::{ScheduleError, ScheduleRecord};
use crate::jobs::scheduler::{is_job_id, JobState};
use crate::jobs::service::JobService;

/// `GET /schedules`: the caller's schedules (every one for admins), without their runs.
pub async fn list(State(service): State<Arc<JobService>>, caller: Caller) -> Json<ScheduleList> {
    let schedules = service
        .schedules
        .list()
        .into_iter()
        .filter(|s| caller.sees(&s.owner))
        .map(|s| ScheduleRecord {
            runs: Vec::new(),
            ..s
        })
        .collect();
    Json(ScheduleList { schedules })
}

/// `GET /schedules/{id}`.
pub async fn status(
    State(service): State<Arc<JobService>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<ScheduleRecord>, ApiError> {
    Ok(Json(owned(&service, &caller, &id)?))
}

/// `DELETE /schedules/{id}`: the schedule and its history; a run in progress finishes as a job.
pub async fn delete(
    State(service): State<Arc<JobService>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<ScheduleRecord>, ApiError> {
    owned(&service, &caller, &id)?;
    let removed = tokio::task::spawn_blocking(move || service.schedules.remove(&id))
        .await
        .map_err(|e| ApiError::Internal(format!("deleting a schedule failed: {e}")))?
        .map_err(schedule_error)?;
    Ok(Json(removed))
}

/// `GET /schedules/{id}/runs`: the kept runs, oldest first.
pub async fn runs(
    State(service): State<Arc<JobService>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<RunList>, ApiError> {
    Ok(Json(RunList {
        runs: owned(&service, &caller, &id)?.runs,
    }))
}

/// `?format=` of a run's result.
#[derive(serde::Deserialize)]
pub struct ResultQuery {
    #[serde(default)]
    format: ResultFormat,
}

/// `GET /schedules/{id}/runs/{seq}/result?format=text|ndjson|csv`.
pub async fn run_result(
    State(service): State<Arc<JobService>>,
    caller: Caller,
    Path((id, seq)): Path<(String, u64)>,
    query: Result<Query<ResultQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(query) = query.map_err(|e| {
        ApiError::bad(
            "bad_format",
            format!("{}; use format=text, ndjson or csv", e.body_text()),
        )
    })?;
    let schedule = owned(&service, &caller, &id)?;
    let run = schedule
        .runs
        .iter()
        .find(|r| r.seq == seq)
        .ok_or_else(|| ApiError::NotFound(format!("schedule {id} keeps no run {seq}")))?;
    if run.state != JobState::Succeeded {
        return Err(ApiError::Conflict(format!(
            "run {seq} of schedule {id} is {}{}; only succeeded runs have a result",
            run.state.as_str(),
            run.error
                .as_ref()
                .map(|e| format!(": {e}"))
                .unwrap_or_default()
        )));
    }
    let stored = kept_result(&service, &id, seq).await?;
    let body = output::render(&stored, query.format);
    Ok(([(header::CONTENT_TYPE, query.format.content_type())], body).into_response())
}

/// `?key=` of the chart route.
#[derive(serde::Deserialize)]
pub struct ChartQuery {
    key: String,
}

/// `GET /schedules/{id}/chart.svg?key=K`: K's value in each kept run's result, oldest first.
pub async fn chart(
    State(service): State<Arc<JobService>>,
    caller: Caller,
    Path(id): Path<String>,
    query: Result<Query<ChartQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(query) = query.map_err(|e| {
        ApiError::bad(
            "bad_query",
            format!("{}; give the key to chart as ?key=", e.body_text()),
        )
    })?;
    let schedule = owned(&service, &caller, &id)?;
    let mut points = Vec::with_capacity(schedule.runs.len());
    for run in &schedule.runs {
        let label = run
            .scheduled_for
            .get(..10)
            .unwrap_or(&run.scheduled_for)
            .to_string();
        let value = if run.state == JobState::Succeeded {
            let stored = kept_result(&service, &id, run.seq).await?;
            let rows = chart::parse_rows(&stored).unwrap_or_default();
            rows.into_iter()
                .find(|(k, _)| *k == query.key)
                .map(|(_, v)| v)
        } else {
            None
        };
        points.push((label, value));
    }
    let svg = series_chart::runs_chart(&points, &schedule.manifest.name, &query.key);
    let headers = [
        (header::CONTENT_TYPE, "image/svg+xml"),
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; style-src 'unsafe-inline'",
        ),
    ];
    Ok((headers, svg).into_response())
}

/// The schedule, when it exists and the caller may see it.
fn owned(service: &JobService, caller: &Caller, id: &str) -> Result<ScheduleRecord, ApiError> {
    is_job_id(id)
        .then(|| service.schedules.get(id))
        .flatten()
        .filter(|s| caller.sees(&s.owner))
        .ok_or_else(|| ApiError::NotFound(format!("no schedule {id}")))
}

/// A run's kept result, read off the async runtime.
async fn kept_result(service: &Arc<JobService>, id: &str, seq: u64) -> Result<Vec<u8>, ApiError> {
    let (service, sid) = (service.clone(), id.to_string());
    tokio::task::spawn_blocking(move || service.schedules.result(&sid, seq))
        .await
        .map_err(|e| ApiError::Internal(format!("reading a run's result failed: {e}")))?
        .map_err(schedule_error)?
        .ok_or_else(|| {
            ApiError::NotFound(format!("the result of run {seq} of schedule {id} is gone"))
        })
}

/// The HTTP answer for a schedule error.
pub fn schedule_error(e: ScheduleError) -> ApiError {
    match e {
        ScheduleError::Bad(_) | ScheduleError::Never(_) => {
            ApiError::bad("bad_schedule", e.to_string())
        }
        ScheduleError::Full(_) => ApiError::Unavailable(e.to_string()),
        ScheduleError::NotFound(id) => ApiError::NotFound(format!("no schedule {id}")),
        ScheduleError::Store(_) => ApiError::Internal(e.to_string()),
    }
}
