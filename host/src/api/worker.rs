//! The worker's own HTTP listener (`telemetry-server worker --listen`): `GET /status` (its
//! membership: id, heartbeats, last error), `GET /metrics`, and the coordinator's control routes
//! under `/cluster/` ([`crate::jobs::distributed::protocol`]), which require the key the coordinator gave
//! at registration; any other request is a 404. Served by the same capped accept loop as `serve`
//! ([`super::listener`]), so junk and idle connections cost the worker a bounded amount and crash
//! nothing.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::rejection::JsonRejection;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use serde::Serialize;
use subtle::ConstantTimeEq;
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::listener::{ConnectionLimits, ConnectionMetrics};
use crate::cluster::worker::{Member, WorkerStatus};
use crate::jobs::distributed::member_runs::{MemberRuns, RunError};
use crate::jobs::distributed::protocol::{
    AttemptPlan, Prepare, Prepared, MAX_COMPONENT_BYTES, MAX_PLAN_BYTES,
};

/// Most connections the worker's listener holds open at once.
const MAX_CONNECTIONS: usize = 64;

/// What the worker's handlers see.
pub struct WorkerState {
    /// The membership loop's state.
    pub member: Arc<Member>,
    /// The coordinator's URL.
    pub coordinator: String,
    /// Where this worker listens (the address it registered).
    pub address: String,
    /// The worker's metrics.
    pub registry: crate::metrics::Registry,
    /// The attempts the coordinator started here, and the shipped components.
    pub runs: Arc<MemberRuns>,
    /// The host of this worker's mesh addresses (its `--listen` host).
    pub mesh_host: String,
    /// Control requests refused, by reason.
    pub refused: Family<RefusalLabel, Counter>,
}

/// Label set `{reason="key"}` of `telemetry_cluster_control_refused_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RefusalLabel {
    /// `key` (no or wrong control key: 401), `busy` (another attempt runs: 409),
    /// `bad_request` (400), `missing` (unknown component or attempt: 404).
    pub reason: &'static str,
}

/// The body of the worker's `GET /status`.
#[derive(Debug, Serialize)]
struct Status<'a> {
    role: &'static str,
    coordinator: &'a str,
    address: &'a str,
    #[serde(flatten)]
    membership: WorkerStatus,
}

/// The worker's routes.
pub fn router(state: Arc<WorkerState>) -> Router {
    Router::new()
        .route("/status", get(status))
        .route("/metrics", get(metrics))
        .merge(control_routes(state.clone()))
        .fallback(|| async { (StatusCode::NOT_FOUND, "not found\n") })
        .with_state(state)
}

async fn status(State(state): State<Arc<WorkerState>>) -> impl IntoResponse {
    Json(Status {
        role: "worker",
        coordinator: &state.coordinator,
        address: &state.address,
        membership: state.member.status(),
    })
    .into_response()
}

async fn metrics(State(state): State<Arc<WorkerState>>) -> impl IntoResponse {
    state.registry.run_scrape_hooks();
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.registry.encode(),
    )
}

/// The coordinator's control routes, each behind [`require_key`].
fn control_routes(state: Arc<WorkerState>) -> Router<Arc<WorkerState>> {
    Router::new()
        .route("/cluster/prepare", post(prepare))
        .route(
            "/cluster/components/{sha256}",
            put(component).layer(DefaultBodyLimit::max(MAX_COMPONENT_BYTES)),
        )
        .route(
            "/cluster/attempts",
            post(start).layer(DefaultBodyLimit::max(MAX_PLAN_BYTES)),
        )
        .route("/cluster/attempts/{id}", get(attempt))
        .route("/cluster/attempts/{id}/cancel", post(cancel))
        .route_layer(axum::middleware::from_fn_with_state(state, require_key))
}

/// Lets a control request through only with this registration's control key.
async fn require_key(
    State(state): State<Arc<WorkerState>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    match authorized(&state, request.headers()) {
        Ok(()) => next.run(request).await,
        Err(refused) => *refused,
    }
}

/// A refusal: counted, answered with `status` and `{"error", "detail"}`.
fn refuse(
    state: &WorkerState,
    status: StatusCode,
    reason: &'static str,
    detail: String,
) -> Response {
    state.refused.get_or_create(&RefusalLabel { reason }).inc();
    tracing::warn!(reason, %detail, "refused a control request");
    (
        status,
        Json(serde_json::json!({ "error": reason, "detail": detail })),
    )
        .into_response()
}

/// `Ok` when the request carries this registration's control key (compared in constant time).
fn authorized(state: &WorkerState, headers: &HeaderMap) -> Result<(), Box<Response>> {
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    match state.member.control_key() {
        Some(key) if bool::from(key.as_bytes().ct_eq(given.as_bytes())) => Ok(()),
        _ => Err(Box::new(refuse(
            state,
            StatusCode::UNAUTHORIZED,
            "key",
            "control requests need the coordinator's key for this registration".into(),
        ))),
    }
}

fn run_error(state: &WorkerState, error: RunError) -> Response {
    let (status, reason) = match &error {
        RunError::Busy(_) => (StatusCode::CONFLICT, "busy"),
        RunError::MissingComponent(_) => (StatusCode::NOT_FOUND, "missing"),
        RunError::Port { .. } => (StatusCode::SERVICE_UNAVAILABLE, "port"),
        _ => (StatusCode::BAD_REQUEST, "bad_request"),
    };
    refuse(state, status, reason, error.to_string())
}

/// The request's JSON body, or the counted 400.
fn json_body<T>(
    state: &WorkerState,
    body: Result<Json<T>, JsonRejection>,
) -> Result<T, Box<Response>> {
    body.map(|Json(body)| body).map_err(|e| {
        Box::new(refuse(
            state,
            StatusCode::BAD_REQUEST,
            "bad_request",
            e.body_text(),
        ))
    })
}

/// Runs `f` off the async threads: its value, or its refusal.
async fn blocking<T: Send + 'static>(
    state: &WorkerState,
    f: impl FnOnce() -> Result<T, RunError> + Send + 'static,
) -> Result<T, Response> {
    match tokio::task::spawn_blocking(f).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) => Err(run_error(state, e)),
        Err(e) => Err(refuse(
            state,
            StatusCode::INTERNAL_SERVER_ERROR,
            "bad_request",
            e.to_string(),
        )),
    }
}

/// [`blocking`] answering `ok` when `f` succeeds.
async fn blocking_status(
    state: &WorkerState,
    ok: StatusCode,
    f: impl FnOnce() -> Result<(), RunError> + Send + 'static,
) -> Response {
    match blocking(state, f).await {
        Ok(()) => ok.into_response(),
        Err(refused) => refused,
    }
}

/// `POST /cluster/prepare` → a fresh mesh address, whether the component is here and (a job
/// over a `local` source) the worker's own files its filter matches.
async fn prepare(
    State(state): State<Arc<WorkerState>>,
    body: Result<Json<Prepare>, JsonRejection>,
) -> Response {
    let prepare = match json_body(&state, body) {
        Ok(body) => body,
        Err(refused) => return *refused,
    };
    let mesh_address = match MemberRuns::reserve_port(&state.mesh_host) {
        Ok(address) => address,
        Err(e) => return run_error(&state, e),
    };
    let runs = state.runs.clone();
    let answered = blocking(&state, move || {
        let local = prepare
            .local_filter
            .as_ref()
            .map(|filter| runs.own_files(filter))
            .transpose()?;
        Ok((runs.has_component(&prepare.sha256), local))
    })
    .await;
    match answered {
        Ok((have_component, local)) => Json(Prepared {
            mesh_address,
            have_component,
            local,
        })
        .into_response(),
        Err(refused) => refused,
    }
}

/// `PUT /cluster/components/{sha256}` with the component's bytes → 204.
async fn component(
    State(state): State<Arc<WorkerState>>,
    Path(sha256): Path<String>,
    body: Bytes,
) -> Response {
    let runs = state.runs.clone();
    blocking_status(&state, StatusCode::NO_CONTENT, move || {
        runs.add_component(&sha256, &body)
    })
    .await
}

/// `POST /cluster/attempts` with an [`AttemptPlan`] → 202 (the attempt runs on a thread).
async fn start(
    State(state): State<Arc<WorkerState>>,
    body: Result<Json<AttemptPlan>, JsonRejection>,
) -> Response {
    let plan = match json_body(&state, body) {
        Ok(body) => body,
        Err(refused) => return *refused,
    };
    let runs = state.runs.clone();
    blocking_status(&state, StatusCode::ACCEPTED, move || runs.start(plan)).await
}

/// `GET /cluster/attempts/{id}` → its [`crate::jobs::distributed::protocol::AttemptStatus`].
async fn attempt(State(state): State<Arc<WorkerState>>, Path(id): Path<String>) -> Response {
    match state.runs.status(&id) {
        Some(status) => Json(status).into_response(),
        None => refuse(
            &state,
            StatusCode::NOT_FOUND,
            "missing",
            format!("no attempt {id} here"),
        ),
    }
}

/// `POST /cluster/attempts/{id}/cancel` → 204 (also when it already ended).
async fn cancel(State(state): State<Arc<WorkerState>>, Path(id): Path<String>) -> Response {
    if state.runs.cancel(&id) {
        tracing::info!(attempt = %id, "the coordinator cancelled the attempt");
    }
    StatusCode::NO_CONTENT.into_response()
}

/// Serves the worker's routes on `listener` until `stop` turns true.
pub async fn serve(listener: TcpListener, state: Arc<WorkerState>, stop: watch::Receiver<bool>) {
    let connections = state.registry.with_registry(ConnectionMetrics::register);
    super::cluster::register_mesh_metrics(&state.registry);
    state.registry.register(
        "telemetry_cluster_control_refused",
        "Coordinator control requests this worker refused, by reason",
        state.refused.clone(),
    );
    state.registry.register(
        "telemetry_cluster_attempts_started",
        "Cluster attempt processes this worker started",
        state.runs.started.clone(),
    );
    state.registry.register(
        "telemetry_cluster_components_evicted",
        "Compiled components evicted from this worker's in-memory cache",
        state.runs.evicted.clone(),
    );
    let limits = ConnectionLimits {
        max_connections: MAX_CONNECTIONS,
        header_read_timeout: Duration::from_secs(10),
        idle_timeout: Duration::from_secs(30),
        body_read_timeout: Duration::from_secs(30),
    };
    let drain = super::listener::serve(listener, router(state), limits, connections, stop).await;
    drain.force_close();
}
