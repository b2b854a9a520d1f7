//! `/api/v1/cluster`: workers register (`POST /cluster/members`) and heartbeat
//! (`POST /cluster/members/{id}/heartbeat`) with a `worker` token; an admin lists the members
//! (`GET /cluster`). Every refused registration or heartbeat is counted by reason, and the
//! process's refused mesh handshakes are exposed next to them on `/metrics`.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::rejection::JsonRejection;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use serde::Serialize;

use super::jobs::{ApiError, Caller, Role};
use super::AppState;
use crate::cluster::config::ClusterConfig;
use crate::cluster::membership::{
    MemberReport, MemberState, MemberView, Membership, MembershipError,
};
use crate::cluster::worker::Registered;
use crate::jobs::distributed::planner::{Planner, PlannerError};

/// Largest registration or heartbeat body.
const MAX_REPORT_BYTES: usize = 16 * 1024;

/// Label set `{reason="token"}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RefusalLabel {
    /// `token` (no or unknown token: 401), `role` (a token without the worker role: 403),
    /// `full` (every slot alive: 503), `bad_report` (400).
    pub reason: &'static str,
}

/// Label set `{state="alive"}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StateLabel {
    /// `alive` or `lost`.
    pub state: &'static str,
}

/// The coordinator's cluster state: the member table and its metrics.
pub struct Coordinator {
    /// `[cluster]`.
    pub config: ClusterConfig,
    /// The registered workers.
    pub membership: Membership,
    refused: Family<RefusalLabel, Counter>,
    registrations: Counter,
    heartbeats: Counter,
    members: Family<StateLabel, Gauge>,
}

impl Coordinator {
    /// An empty member table sized by `config`.
    pub fn new(config: &ClusterConfig) -> Arc<Coordinator> {
        Arc::new(Coordinator {
            membership: Membership::new(
                std::time::Duration::from_secs(config.lost_after_secs),
                config.max_members,
            ),
            config: config.clone(),
            refused: Family::default(),
            registrations: Counter::default(),
            heartbeats: Counter::default(),
            members: Family::default(),
        })
    }

    /// A job planner over this coordinator's alive members, its metrics in `registry`.
    pub fn planner(
        self: &Arc<Self>,
        registry: &crate::metrics::Registry,
    ) -> Result<Arc<Planner>, PlannerError> {
        let me = self.clone();
        let planner = Planner::new(
            &self.config,
            Box::new(move || me.membership.alive(Instant::now())),
        )?;
        registry.register(
            "telemetry_cluster_attempts",
            "Cluster job attempts started by this coordinator",
            planner.attempts.clone(),
        );
        registry.register(
            "telemetry_cluster_members_lost",
            "Cluster job attempts aborted because a member was lost",
            planner.members_lost.clone(),
        );
        Ok(Arc::new(planner))
    }

    /// Registers the cluster metrics (and the mesh's refused handshakes) in `registry`.
    pub fn register_metrics(self: &Arc<Self>, registry: &crate::metrics::Registry) {
        registry.register(
            "cluster_registrations_refused",
            "Worker registrations and heartbeats refused, by reason (token, role, full, bad_report)",
            self.refused.clone(),
        );
        registry.register(
            "cluster_registrations",
            "Worker registrations accepted (first joins and rejoins)",
            self.registrations.clone(),
        );
        registry.register(
            "cluster_heartbeats",
            "Worker heartbeats accepted",
            self.heartbeats.clone(),
        );
        registry.register(
            "cluster_members",
            "Cluster members by state (alive, lost)",
            self.members.clone(),
        );
        register_mesh_metrics(registry);
        let me = self.clone();
        registry.on_scrape(move || {
            let members = me.membership.members(Instant::now());
            for (state, label) in [(MemberState::Alive, "alive"), (MemberState::Lost, "lost")] {
                let n = members.iter().filter(|m| m.state == state).count();
                me.members
                    .get_or_create(&StateLabel { state: label })
                    .set(n as i64);
            }
        });
    }

    fn refuse(&self, reason: &'static str, error: ApiError) -> ApiError {
        self.refused.get_or_create(&RefusalLabel { reason }).inc();
        tracing::warn!(reason, error = %error, "refused a cluster member request");
        error
    }

    /// The caller when its token has `role`; a counted 401/403 otherwise.
    fn caller(
        &self,
        state: &AppState,
        headers: &HeaderMap,
        role: Role,
    ) -> Result<Caller, ApiError> {
        let caller = state
            .jobs
            .auth
            .authenticate(headers.get(header::AUTHORIZATION).map(|v| v.as_bytes()))
            .map_err(|e| self.refuse("token", e))?;
        if caller.role != role {
            return Err(self.refuse(
                "role",
                ApiError::Forbidden(format!(
                    "token '{}' has the {} role; this needs the {} role",
                    caller.name,
                    caller.role.as_str(),
                    role.as_str()
                )),
            ));
        }
        Ok(caller)
    }

    /// A worker's caller and report (registration or heartbeat), or the counted refusal.
    fn worker_request(
        &self,
        state: &AppState,
        headers: &HeaderMap,
        body: Result<Json<MemberReport>, JsonRejection>,
    ) -> Result<(Caller, MemberReport), ApiError> {
        let caller = self.caller(state, headers, Role::Worker)?;
        let report = body.map(|Json(r)| r).map_err(|e| {
            self.refuse(
                "bad_report",
                ApiError::bad(
                    "bad_report",
                    format!("bad member report: {}", e.body_text()),
                ),
            )
        })?;
        Ok((caller, report))
    }

    fn membership_error(&self, error: MembershipError) -> ApiError {
        match error {
            MembershipError::Full { .. } => {
                self.refuse("full", ApiError::Unavailable(error.to_string()))
            }
            MembershipError::BadReport(_) => {
                self.refuse("bad_report", ApiError::bad("bad_report", error.to_string()))
            }
            MembershipError::Unknown(_) => ApiError::NotFound(error.to_string()),
        }
    }
}

/// Registers the process's refused mesh handshakes (coordinator and worker alike).
pub fn register_mesh_metrics(registry: &crate::metrics::Registry) {
    registry.register(
        "cluster_mesh_handshakes_refused",
        "Connections to this process's timely mesh refused at the authenticated handshake",
        crate::cluster::mesh::refused_handshakes(),
    );
}

/// The body of `GET /api/v1/cluster`.
#[derive(Debug, Serialize)]
pub struct ClusterView {
    /// `cluster.heartbeat_secs`.
    pub heartbeat_secs: u64,
    /// `cluster.lost_after_secs`.
    pub lost_after_secs: u64,
    /// `cluster.max_members`.
    pub max_members: usize,
    /// Members heard from within `lost_after_secs`.
    pub alive: usize,
    /// Members silent for longer.
    pub lost: usize,
    /// Every member, by address.
    pub members: Vec<MemberView>,
}

/// The `/api/v1/cluster` routes (merged into the server's router).
pub fn router() -> Router<Arc<AppState>> {
    Router::new()
        .route("/api/v1/cluster", get(list))
        .route("/api/v1/cluster/members", post(register))
        .route("/api/v1/cluster/members/{id}/heartbeat", post(heartbeat))
        .layer(DefaultBodyLimit::max(MAX_REPORT_BYTES))
}

/// `GET /api/v1/cluster` (admin).
async fn list(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let cluster = &state.cluster;
    cluster.caller(&state, &headers, Role::Admin)?;
    let members = cluster.membership.members(Instant::now());
    let alive = members
        .iter()
        .filter(|m| m.state == MemberState::Alive)
        .count();
    Ok(Json(ClusterView {
        heartbeat_secs: cluster.config.heartbeat_secs,
        lost_after_secs: cluster.config.lost_after_secs,
        max_members: cluster.membership.capacity(),
        alive,
        lost: members.len() - alive,
        members,
    })
    .into_response())
}

/// `POST /api/v1/cluster/members` (worker) → 201 `{id, heartbeat_secs}`.
async fn register(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Result<Json<MemberReport>, JsonRejection>,
) -> Result<Response, ApiError> {
    let cluster = &state.cluster;
    let (caller, report) = cluster.worker_request(&state, &headers, body)?;
    let address = report.address.clone();
    let id = cluster
        .membership
        .register(&caller.name, report, Instant::now())
        .map_err(|e| cluster.membership_error(e))?;
    cluster.registrations.inc();
    tracing::info!(%id, %address, token = %caller.name, "a worker registered");
    Ok((
        StatusCode::CREATED,
        Json(Registered {
            control_key: cluster.membership.control_key(&id).unwrap_or_default(),
            id,
            heartbeat_secs: cluster.config.heartbeat_secs,
        }),
    )
        .into_response())
}

/// `POST /api/v1/cluster/members/{id}/heartbeat` (worker) → 204, or 404 when the coordinator does
/// not know the member (it registers again).
async fn heartbeat(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Result<Json<MemberReport>, JsonRejection>,
) -> Result<Response, ApiError> {
    let cluster = &state.cluster;
    let (caller, report) = cluster.worker_request(&state, &headers, body)?;
    cluster
        .membership
        .heartbeat(&id, &caller.name, report, Instant::now())
        .map_err(|e| cluster.membership_error(e))?;
    cluster.heartbeats.inc();
    Ok(StatusCode::NO_CONTENT.into_response())
}
