//! The worker's own HTTP listener (`telemetry-server worker --listen`): `GET /status` (its
//! membership: id, heartbeats, last error) and `GET /metrics`; any other request is a 404. Served
//! by the same capped accept loop as `serve` ([`super::listener`]), so junk and idle connections
//! cost the worker a bounded amount and crash nothing.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::listener::{ConnectionLimits, ConnectionMetrics};
use crate::cluster::worker::{Member, WorkerStatus};

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

/// Serves the worker's routes on `listener` until `stop` turns true.
pub async fn serve(listener: TcpListener, state: Arc<WorkerState>, stop: watch::Receiver<bool>) {
    let connections = state.registry.with_registry(ConnectionMetrics::register);
    super::cluster::register_mesh_metrics(&state.registry);
    let limits = ConnectionLimits {
        max_connections: MAX_CONNECTIONS,
        header_read_timeout: Duration::from_secs(10),
        idle_timeout: Duration::from_secs(30),
        body_read_timeout: Duration::from_secs(30),
    };
    let drain = super::listener::serve(listener, router(state), limits, connections, stop).await;
    drain.force_close();
}
