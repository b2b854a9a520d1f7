//! The `/api/v1` handlers: each authenticates (the [`Caller`] extractor; uploads without a valid
//! token are refused before their body is read), checks ownership, calls the [`JobService`] and answers
//! JSON or `{error, detail}`.

use std::sync::Arc;

use axum::extract::multipart::{Multipart, MultipartRejection};
use axum::extract::rejection::QueryRejection;
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

use super::auth::Caller;
use super::error::ApiError;
use super::format::ResultFormat;
use super::result_stream;
use super::types::{ComponentResponse, JobList, JobRecord, JobState, SubmitResponse};
use super::upload::{drain, read_upload, UploadLimits};
use crate::chart::{self, ChartOptions};
use crate::jobs::scheduler::{is_job_id, SchedulerError};
use crate::jobs::service::JobService;

impl FromRequestParts<Arc<JobService>> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        service: &Arc<JobService>,
    ) -> Result<Self, Self::Rejection> {
        service
            .auth
            .authenticate(
                parts
                    .headers
                    .get(header::AUTHORIZATION)
                    .map(|v| v.as_bytes()),
            )?
            .check_jobs()
    }
}

fn limits(service: &JobService) -> UploadLimits {
    UploadLimits {
        component_bytes: service.config.max_component_bytes,
        manifest_bytes: service.config.max_manifest_bytes,
    }
}

/// `POST /jobs`: multipart `component` + `manifest` → validated, compiled, queued → 202.
pub async fn submit(
    State(service): State<Arc<JobService>>,
    caller: Result<Caller, ApiError>,
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<Response, ApiError> {
    let (caller, multipart) = refuse_upload_unless(caller, multipart).await?;
    let upload = read_upload(multipart, limits(&service)).await?;
    let manifest = upload.manifest.ok_or_else(|| {
        ApiError::bad(
            "bad_manifest",
            "missing 'manifest' part (JSON: name, filter, parameter, limits, workers)",
        )
    })?;
    let compiled = match (upload.component, manifest.component.as_deref()) {
        (Some(bytes), None) => service.compile(&caller.name, bytes).await?,
        (None, Some(sha)) => service.cached(sha).await?,
        (Some(_), Some(_)) => {
            return Err(ApiError::bad(
                "bad_manifest",
                "both a 'component' part and a manifest 'component' hash were given; send one",
            ))
        }
        (None, None) => {
            return Err(ApiError::bad(
                "missing_component",
                "missing 'component' part (the .wasm file), and the manifest names no uploaded 'component' hash",
            ))
        }
    };
    let accepted = service.check_manifest(manifest, compiled.sha256().to_string())?;
    if accepted.manifest.schedule.is_some() {
        return create_schedule(service, caller, accepted).await;
    }
    let record = blocking(service.clone(), move |s| {
        s.scheduler
            .submit(&caller.name, accepted.manifest, accepted.component_sha256)
    })
    .await?;
    let status_url = format!("/api/v1/jobs/{}", record.id);
    let body = SubmitResponse {
        id: record.id,
        state: record.state,
        component_sha256: record.component_sha256,
        status_url: status_url.clone(),
    };
    Ok((
        StatusCode::ACCEPTED,
        [(header::LOCATION, status_url)],
        Json(body),
    )
        .into_response())
}

/// A checked manifest with a `schedule` → a new schedule → 201.
async fn create_schedule(
    service: Arc<JobService>,
    caller: Caller,
    accepted: crate::jobs::service::Accepted,
) -> Result<Response, ApiError> {
    let created = tokio::task::spawn_blocking(move || {
        service
            .schedules
            .create(&caller.name, accepted.manifest, accepted.component_sha256)
    })
    .await
    .map_err(|e| ApiError::Internal(format!("creating a schedule failed: {e}")))?
    .map_err(super::schedule_routes::schedule_error)?;
    let url = format!("/api/v1/schedules/{}", created.id);
    let body = super::types::ScheduleResponse {
        id: created.id,
        schedule: created.manifest.schedule.unwrap_or_default(),
        next_run: created.next_run,
        schedule_url: url.clone(),
    };
    Ok((StatusCode::CREATED, [(header::LOCATION, url)], Json(body)).into_response())
}

/// `POST /components`: multipart `component` → validated and compiled into the cache.
pub async fn upload_component(
    State(service): State<Arc<JobService>>,
    caller: Result<Caller, ApiError>,
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<Response, ApiError> {
    let (caller, multipart) = refuse_upload_unless(caller, multipart).await?;
    let upload = read_upload(multipart, limits(&service)).await?;
    if upload.manifest.is_some() {
        return Err(ApiError::bad(
            "bad_multipart",
            "POST /components takes only a 'component' part; submit jobs to /jobs",
        ));
    }
    let bytes = upload
        .component
        .ok_or_else(|| ApiError::bad("missing_component", "missing 'component' part"))?;
    let size_bytes = bytes.len() as u64;
    let compiled = service.compile(&caller.name, bytes).await?;
    let status = if compiled.cache_hit() {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    let body = ComponentResponse {
        sha256: compiled.sha256().to_string(),
        size_bytes,
        cache_hit: compiled.cache_hit(),
        compile_ms: compiled.compile_time().as_secs_f64() * 1e3,
    };
    Ok((status, Json(body)).into_response())
}

/// Passes an authenticated upload on; a refused one is answered at once, before its body is read
/// (the token is checked from the headers alone). So that a client still sending can read the
/// 401 rather than a reset, at most [`super::upload::REFUSED_DRAIN_BYTES`] of the body are read
/// away in the background after the answer (bounded in time by the body deadline too).
async fn refuse_upload_unless(
    caller: Result<Caller, ApiError>,
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<(Caller, Result<Multipart, MultipartRejection>), ApiError> {
    match caller {
        Ok(caller) => Ok((caller, multipart)),
        Err(error) => {
            tokio::spawn(drain(multipart));
            Err(error)
        }
    }
}

/// `GET /jobs`: the caller's jobs (every job for admins).
///
/// The jobs come without their `log` (it can be large for every job at once); `GET /jobs/{id}`
/// has it. Read on a blocking thread: the scheduler's lock is a plain mutex.
pub async fn list(
    State(service): State<Arc<JobService>>,
    caller: Caller,
) -> Result<Json<JobList>, ApiError> {
    let jobs = blocking(service, |s| Ok(s.scheduler.list())).await?;
    let jobs = jobs.into_iter().filter(|j| caller.sees(&j.owner)).collect();
    Ok(Json(JobList {
        jobs,
        role: Some(caller.role),
    }))
}

/// `GET /jobs/{id}`.
pub async fn status(
    State(service): State<Arc<JobService>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<JobRecord>, ApiError> {
    let lookup = id.clone();
    let job = blocking(service, move |s| {
        Ok(is_job_id(&lookup)
            .then(|| s.scheduler.get(&lookup))
            .flatten())
    })
    .await?
    .ok_or_else(|| ApiError::no_job(&id))?;
    caller.check_owner(&job.owner, &id)?;
    Ok(Json(job))
}

/// `DELETE /jobs/{id}`: cancel → 202 with the job as it is now.
pub async fn cancel(
    State(service): State<Arc<JobService>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    owned_job(&service, &caller, &id)?;
    let record = blocking(service, move |s| s.scheduler.cancel(&id)).await?;
    Ok((StatusCode::ACCEPTED, Json(record)).into_response())
}

/// `?format=` of the result route: a line format (streamed), or `parquet` (built whole).
#[derive(serde::Deserialize)]
pub struct ResultQuery {
    #[serde(default)]
    format: ResultEncoding,
}

#[derive(serde::Deserialize)]
#[serde(untagged)]
enum ResultEncoding {
    Lines(ResultFormat),
    Parquet(ParquetFormat),
}

impl Default for ResultEncoding {
    fn default() -> Self {
        ResultEncoding::Lines(ResultFormat::default())
    }
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "snake_case")]
enum ParquetFormat {
    Parquet,
}

/// The `Content-Type` of a Parquet file.
const PARQUET_CONTENT_TYPE: &str = "application/vnd.apache.parquet";

/// `GET /jobs/{id}/result?format=text|ndjson|csv|parquet`.
pub async fn result(
    State(service): State<Arc<JobService>>,
    caller: Caller,
    Path(id): Path<String>,
    query: Result<Query<ResultQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(query) = query.map_err(|e| {
        ApiError::bad(
            "bad_format",
            format!(
                "{}; use format=text, ndjson, csv or parquet (a chart is at result.svg)",
                e.body_text()
            ),
        )
    })?;
    succeeded(&service, &caller, &id)?;
    let (file, size) = stored_result(&service, &id).await?;
    let format = match query.format {
        ResultEncoding::Lines(format) => format,
        ResultEncoding::Parquet(ParquetFormat::Parquet) => {
            let bytes = tokio::task::spawn_blocking(move || result_parquet(file))
                .await
                .map_err(|e| ApiError::Internal(format!("writing Parquet failed: {e}")))??;
            return Ok(([(header::CONTENT_TYPE, PARQUET_CONTENT_TYPE)], bytes).into_response());
        }
    };
    let body = result_stream::body(file, format);
    let mut response = ([(header::CONTENT_TYPE, format.content_type())], body).into_response();
    if format == ResultFormat::Text {
        response
            .headers_mut()
            .insert(header::CONTENT_LENGTH, size.into());
    }
    Ok(response)
}

/// `?top=` of the chart route.
#[derive(serde::Deserialize)]
pub struct ChartQuery {
    top: Option<usize>,
}

/// `GET /jobs/{id}/result.svg?top=N`: the result as a bar chart ([`chart`]); every value must be
/// a number, else `400 not_chartable`.
pub async fn result_chart(
    State(service): State<Arc<JobService>>,
    caller: Caller,
    Path(id): Path<String>,
    query: Result<Query<ChartQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::bad("bad_query", e.body_text()))?;
    let top = query.top.unwrap_or(ChartOptions::default().top);
    if !(1..=chart::MAX_TOP).contains(&top) {
        return Err(ApiError::bad(
            "bad_query",
            format!("top={top}: must be between 1 and {}", chart::MAX_TOP),
        ));
    }
    let job = succeeded(&service, &caller, &id)?;
    let (file, _) = stored_result(&service, &id).await?;
    // A result can have millions of lines: read, parse and draw off the async runtime.
    let title = job.manifest.name;
    let drawn = tokio::task::spawn_blocking(move || {
        chart::read_rows(std::io::BufReader::new(file)).map(|rows| {
            chart::bar_chart(
                &rows,
                &title,
                &ChartOptions {
                    top,
                    ..ChartOptions::default()
                },
            )
        })
    })
    .await
    .map_err(|e| ApiError::Internal(format!("drawing the chart failed: {e}")))?;
    let svg = drawn.map_err(|e| {
        ApiError::bad(
            "not_chartable",
            format!("the result of job {id} is not chartable: {e}; fetch it as text, ndjson or csv instead"),
        )
    })?;
    // The picture is data: a browser opening it directly runs nothing and loads nothing.
    let headers = [
        (header::CONTENT_TYPE, "image/svg+xml"),
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; style-src 'unsafe-inline'",
        ),
    ];
    Ok((headers, svg).into_response())
}

/// The job, when the caller may see it and it succeeded.
fn succeeded(service: &JobService, caller: &Caller, id: &str) -> Result<JobRecord, ApiError> {
    let job = owned_job(service, caller, id)?;
    if job.state != JobState::Succeeded {
        let why = job
            .error
            .as_ref()
            .map(|e| format!(": {e}"))
            .unwrap_or_default();
        return Err(ApiError::Conflict(format!(
            "job {id} is {}{why}; only succeeded jobs have a result",
            job.state.as_str()
        )));
    }
    Ok(job)
}

/// The job's stored output, opened (off the async runtime), with its size.
/// A stored result (bounded by the job's `output_bytes`) as a Parquet file
/// ([`crate::columns::result_to_parquet`]).
fn result_parquet(mut file: std::fs::File) -> Result<Vec<u8>, ApiError> {
    use std::io::Read;
    let mut text = Vec::new();
    file.read_to_end(&mut text)
        .map_err(|e| ApiError::Internal(format!("reading a result failed: {e}")))?;
    let mut bytes = Vec::new();
    crate::columns::result_to_parquet(&text, &mut bytes)
        .map_err(|e| ApiError::Internal(format!("writing Parquet failed: {e}")))?;
    Ok(bytes)
}

async fn stored_result(
    service: &Arc<JobService>,
    id: &str,
) -> Result<(std::fs::File, u64), ApiError> {
    let (service, job) = (service.clone(), id.to_string());
    tokio::task::spawn_blocking(move || service.scheduler.open_result(&job))
        .await
        .map_err(|e| ApiError::Internal(format!("opening a result failed: {e}")))?
        .map_err(|e| ApiError::Internal(e.to_string()))?
        .ok_or_else(|| ApiError::NotFound(format!("the result of job {id} is gone (retention)")))
}

/// `GET /openapi.json` (no token needed).
pub async fn openapi() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        super::openapi::DOCUMENT,
    )
        .into_response()
}

/// Any other path under `/api/v1`.
pub async fn not_found() -> ApiError {
    ApiError::NotFound("no such route under /api/v1; see /api/v1/openapi.json".into())
}

/// The job, when it exists and the caller may see it.
fn owned_job(service: &JobService, caller: &Caller, id: &str) -> Result<JobRecord, ApiError> {
    let job = is_job_id(id)
        .then(|| service.scheduler.get(id))
        .flatten()
        .ok_or_else(|| ApiError::no_job(id))?;
    caller.check_owner(&job.owner, id)?;
    Ok(job)
}

/// Runs a scheduler call that writes (and syncs) a job record off the async runtime.
async fn blocking<T: Send + 'static>(
    service: Arc<JobService>,
    call: impl FnOnce(&JobService) -> Result<T, SchedulerError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(move || call(&service))
        .await
        .map_err(|e| ApiError::Internal(format!("scheduler call failed: {e}")))?
        .map_err(scheduler_error)
}

fn scheduler_error(e: SchedulerError) -> ApiError {
    match e {
        SchedulerError::NotFound(id) => ApiError::no_job(&id),
        SchedulerError::QueueFull(_) => ApiError::Unavailable(e.to_string()),
        SchedulerError::AlreadyFinished { .. } => ApiError::Conflict(e.to_string()),
        SchedulerError::Store(_) => ApiError::Internal(e.to_string()),
    }
}
