//! The worker's side of membership: register with the coordinator (`POST
//! /api/v1/cluster/members` with a `worker` token), then heartbeat on the interval the
//! coordinator gives, with a fresh report each time. A coordinator that forgot the worker (404 on
//! a heartbeat: it restarted, or evicted a lost member) gets a new registration; an unreachable
//! one is retried; a refused token (401/403) ends the loop with an error.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::membership::MemberReport;

/// Every request to the coordinator waits at most this long.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest pause between two attempts to reach an unreachable coordinator.
const MAX_RETRY: Duration = Duration::from_secs(5);

/// The coordinator's answer to a registration.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Registered {
    /// The member id to heartbeat as.
    pub id: String,
    /// Seconds between heartbeats.
    pub heartbeat_secs: u64,
    /// The key the coordinator proves to this worker's control routes (`/cluster/…`) while this
    /// registration lasts.
    #[serde(default)]
    pub control_key: String,
}

/// Why the worker stops.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// The coordinator refused the token (or its role).
    #[error("the coordinator refused this worker ({status}): {detail}")]
    Refused {
        /// HTTP status (401 or 403).
        status: u16,
        /// The coordinator's `detail`.
        detail: String,
    },
    /// The HTTP client cannot be built.
    #[error("cannot build the HTTP client: {0}")]
    Client(String),
}

/// Where the worker's membership stands, for its own `/status`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct WorkerStatus {
    /// The id the coordinator gave (none before the first registration).
    pub member_id: Option<String>,
    /// Heartbeats the coordinator accepted.
    pub heartbeats: u64,
    /// Registrations (the first and every rejoin).
    pub registrations: u64,
    /// The last failure to reach the coordinator, if the last attempt failed.
    pub last_error: Option<String>,
}

/// One worker's membership loop.
pub struct Member {
    client: reqwest::blocking::Client,
    coordinator: String,
    token: String,
    status: Mutex<WorkerStatus>,
    /// The current registration's control key (none before the first registration).
    control_key: Mutex<Option<String>>,
}

impl Member {
    /// A member of the coordinator at `coordinator` (`http://host:port`) using `token`.
    pub fn new(coordinator: &str, token: &str) -> Result<Member, WorkerError> {
        let client = reqwest::blocking::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .build()
            .map_err(|e| WorkerError::Client(e.to_string()))?;
        Ok(Member {
            client,
            coordinator: coordinator.trim_end_matches('/').to_string(),
            token: token.to_string(),
            status: Mutex::new(WorkerStatus::default()),
            control_key: Mutex::new(None),
        })
    }

    /// Where membership stands now.
    pub fn status(&self) -> WorkerStatus {
        self.status
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The key the coordinator must present to this worker's control routes (none before the
    /// first registration, or when the coordinator gave none).
    pub fn control_key(&self) -> Option<String> {
        self.control_key
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .filter(|k| !k.is_empty())
    }

    fn note(&self, f: impl FnOnce(&mut WorkerStatus)) {
        f(&mut self.status.lock().unwrap_or_else(|e| e.into_inner()));
    }

    /// Registers and heartbeats until `stop` is set, sending `report()` each time. Returns an
    /// error only when the coordinator refuses the token.
    pub fn run(
        &self,
        report: &dyn Fn() -> MemberReport,
        stop: &AtomicBool,
    ) -> Result<(), WorkerError> {
        let mut registered: Option<Registered> = None;
        let mut retry = Duration::from_millis(200);
        while !stop.load(Ordering::Relaxed) {
            let step = match &registered {
                None => self.register(&report()).map(|r| {
                    tracing::info!(id = %r.id, coordinator = %self.coordinator, "registered with the coordinator");
                    self.note(|s| {
                        s.member_id = Some(r.id.clone());
                        s.registrations += 1;
                    });
                    *self.control_key.lock().unwrap_or_else(|e| e.into_inner()) =
                        Some(r.control_key.clone());
                    registered = Some(r);
                }),
                Some(r) => match self.heartbeat(&r.id, &report()) {
                    Ok(true) => {
                        self.note(|s| s.heartbeats += 1);
                        Ok(())
                    }
                    Ok(false) => {
                        tracing::warn!(id = %r.id, "the coordinator does not know this worker: registering again");
                        registered = None;
                        continue;
                    }
                    Err(e) => Err(e),
                },
            };
            let pause = match step {
                Ok(()) => {
                    retry = Duration::from_millis(200);
                    self.note(|s| s.last_error = None);
                    Duration::from_secs(registered.as_ref().map_or(1, |r| r.heartbeat_secs.max(1)))
                }
                Err(Failure::Refused(e)) => return Err(e),
                Err(Failure::Transient(e)) => {
                    tracing::warn!(coordinator = %self.coordinator, error = %e, "cannot reach the coordinator; retrying");
                    self.note(|s| s.last_error = Some(e));
                    retry = (retry * 2).min(MAX_RETRY);
                    retry
                }
            };
            sleep_unless(stop, pause);
        }
        Ok(())
    }

    fn register(&self, report: &MemberReport) -> Result<Registered, Failure> {
        let response = self
            .client
            .post(format!("{}/api/v1/cluster/members", self.coordinator))
            .bearer_auth(&self.token)
            .json(report)
            .send()
            .map_err(|e| Failure::Transient(e.to_string()))?;
        let response = checked(response)?;
        response
            .json::<Registered>()
            .map_err(|e| Failure::Transient(format!("bad registration answer: {e}")))
    }

    /// `Ok(false)`: the coordinator does not know this id.
    fn heartbeat(&self, id: &str, report: &MemberReport) -> Result<bool, Failure> {
        let response = self
            .client
            .post(format!(
                "{}/api/v1/cluster/members/{id}/heartbeat",
                self.coordinator
            ))
            .bearer_auth(&self.token)
            .json(report)
            .send()
            .map_err(|e| Failure::Transient(e.to_string()))?;
        if response.status() == reqwest::StatusCode::NOT_FOUND {
            return Ok(false);
        }
        checked(response).map(|_| true)
    }
}

enum Failure {
    Refused(WorkerError),
    Transient(String),
}

/// The response when it is a success; a refusal for 401/403; anything else is transient.
fn checked(response: reqwest::blocking::Response) -> Result<reqwest::blocking::Response, Failure> {
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let detail = response
        .json::<serde_json::Value>()
        .ok()
        .and_then(|v| v.get("detail").and_then(|d| d.as_str()).map(str::to_string))
        .unwrap_or_default();
    if status == reqwest::StatusCode::UNAUTHORIZED || status == reqwest::StatusCode::FORBIDDEN {
        Err(Failure::Refused(WorkerError::Refused {
            status: status.as_u16(),
            detail,
        }))
    } else {
        Err(Failure::Transient(format!("{status}: {detail}")))
    }
}

/// Sleeps `pause`, waking early when `stop` is set.
fn sleep_unless(stop: &AtomicBool, pause: Duration) {
    let until = Instant::now() + pause;
    while !stop.load(Ordering::Relaxed) {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        std::thread::sleep(left.min(Duration::from_millis(100)));
    }
}
