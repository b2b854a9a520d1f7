//! The coordinator's member table: workers register and heartbeat with what they report (cores,
//! worker threads, local data); a worker silent for `lost_after` is `lost`; the table holds at
//! most `max_members` entries (a newcomer replaces the longest-silent lost member, or is refused
//! when every member is alive). A worker that comes back (same address) rejoins its old entry.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// What a worker reports when it registers and with every heartbeat.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemberReport {
    /// `host:port` where the worker listens (its identity: the same address rejoins).
    pub address: String,
    /// Cores the worker's machine has.
    pub cores: usize,
    /// Timely worker threads it runs per job.
    pub workers: usize,
    /// Partition files in its local storage.
    pub data_files: u64,
    /// Bytes of those files.
    pub data_bytes: u64,
}

/// Whether a member is heard from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MemberState {
    /// Heartbeated within `lost_after`.
    Alive,
    /// Silent for longer than `lost_after`.
    Lost,
}

/// One member as `GET /api/v1/cluster` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberView {
    /// The id the coordinator gave it.
    pub id: String,
    /// The name of the token it registered with.
    pub token: String,
    /// Alive or lost.
    pub state: MemberState,
    /// Its last report.
    #[serde(flatten)]
    pub report: MemberReport,
    /// When it first registered (RFC 3339, UTC).
    pub registered_at: String,
    /// When its last heartbeat (or registration) arrived (RFC 3339, UTC).
    pub last_heartbeat: String,
    /// Seconds since then.
    pub silent_secs: u64,
    /// How often it registered again after its first registration (a restart or a coordinator
    /// that forgot it).
    pub rejoins: u64,
    /// The key the coordinator proves to this worker's control routes (fresh per registration;
    /// never listed).
    #[serde(skip)]
    pub control_key: String,
}

/// Why a registration or heartbeat is not taken.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MembershipError {
    /// Every slot holds an alive member.
    #[error("the cluster is full: {max} members are alive (cluster.max_members)")]
    Full {
        /// `cluster.max_members`.
        max: usize,
    },
    /// A heartbeat for an id the coordinator does not know (or that belongs to another token):
    /// the worker registers again.
    #[error("no member {0}: register again")]
    Unknown(String),
    /// The report makes no sense.
    #[error("bad member report: {0}")]
    BadReport(String),
}

struct Entry {
    id: String,
    token: String,
    report: MemberReport,
    registered_at: chrono::DateTime<chrono::Utc>,
    last_at: chrono::DateTime<chrono::Utc>,
    last: Instant,
    rejoins: u64,
    control_key: String,
}

/// The member table (shared by the HTTP handlers and, later, the planner).
pub struct Membership {
    lost_after: Duration,
    max_members: usize,
    entries: Mutex<HashMap<String, Entry>>,
}

/// Longest accepted `address`.
const MAX_ADDRESS: usize = 255;

impl Membership {
    /// An empty table: members are lost after `lost_after` of silence; at most `max_members`.
    pub fn new(lost_after: Duration, max_members: usize) -> Self {
        Membership {
            lost_after,
            max_members: max_members.max(1),
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers the worker at `report.address` for token `token`; returns its id (the old one
    /// when the address is already a member: it rejoins).
    pub fn register(
        &self,
        token: &str,
        report: MemberReport,
        now: Instant,
    ) -> Result<String, MembershipError> {
        check(&report)?;
        let wall = chrono::Utc::now();
        let mut entries = self.lock();
        if let Some(entry) = entries
            .values_mut()
            .find(|e| e.report.address == report.address)
        {
            entry.token = token.to_string();
            entry.report = report;
            entry.last = now;
            entry.last_at = wall;
            entry.rejoins += 1;
            entry.control_key = new_control_key();
            return Ok(entry.id.clone());
        }
        if entries.len() >= self.max_members {
            let evict = entries
                .values()
                .filter(|e| now.saturating_duration_since(e.last) > self.lost_after)
                .min_by_key(|e| e.last)
                .map(|e| e.id.clone())
                .ok_or(MembershipError::Full {
                    max: self.max_members,
                })?;
            entries.remove(&evict);
        }
        let id = format!("w-{}", uuid::Uuid::new_v4().simple());
        entries.insert(
            id.clone(),
            Entry {
                id: id.clone(),
                token: token.to_string(),
                report,
                registered_at: wall,
                last_at: wall,
                last: now,
                rejoins: 0,
                control_key: new_control_key(),
            },
        );
        Ok(id)
    }

    /// A heartbeat from member `id` (registered by `token`) with its current report.
    pub fn heartbeat(
        &self,
        id: &str,
        token: &str,
        report: MemberReport,
        now: Instant,
    ) -> Result<(), MembershipError> {
        check(&report)?;
        let mut entries = self.lock();
        let entry = entries
            .get_mut(id)
            .filter(|e| e.token == token && e.report.address == report.address)
            .ok_or_else(|| MembershipError::Unknown(id.to_string()))?;
        entry.report = report;
        entry.last = now;
        entry.last_at = chrono::Utc::now();
        Ok(())
    }

    /// Every member, ordered by address.
    pub fn members(&self, now: Instant) -> Vec<MemberView> {
        let mut out: Vec<MemberView> = self
            .lock()
            .values()
            .map(|e| {
                let silent = now.saturating_duration_since(e.last);
                MemberView {
                    id: e.id.clone(),
                    token: e.token.clone(),
                    state: if silent > self.lost_after {
                        MemberState::Lost
                    } else {
                        MemberState::Alive
                    },
                    report: e.report.clone(),
                    registered_at: rfc3339(e.registered_at),
                    last_heartbeat: rfc3339(e.last_at),
                    silent_secs: silent.as_secs(),
                    rejoins: e.rejoins,
                    control_key: e.control_key.clone(),
                }
            })
            .collect();
        out.sort_by(|a, b| a.report.address.cmp(&b.report.address));
        out
    }

    /// The members heard from within `lost_after`.
    pub fn alive(&self, now: Instant) -> Vec<MemberView> {
        let mut members = self.members(now);
        members.retain(|m| m.state == MemberState::Alive);
        members
    }

    /// The table's capacity (`cluster.max_members`).
    pub fn capacity(&self) -> usize {
        self.max_members
    }
}

/// 32 random bytes as hex: the key a worker's control routes require from the coordinator.
fn new_control_key() -> String {
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

impl Membership {
    /// The control key of member `id` (the coordinator hands it to the worker at registration).
    pub fn control_key(&self, id: &str) -> Option<String> {
        self.lock().get(id).map(|e| e.control_key.clone())
    }
}

fn rfc3339(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn check(report: &MemberReport) -> Result<(), MembershipError> {
    let address = &report.address;
    if address.is_empty() || address.len() > MAX_ADDRESS {
        return Err(MembershipError::BadReport(format!(
            "address must be 1–{MAX_ADDRESS} bytes"
        )));
    }
    if address.parse::<std::net::SocketAddr>().is_err() {
        return Err(MembershipError::BadReport(format!(
            "address '{}' is not an ip:port",
            address.escape_debug()
        )));
    }
    if report.workers == 0 {
        return Err(MembershipError::BadReport("workers must be ≥ 1".into()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(port: u16) -> MemberReport {
        MemberReport {
            address: format!("127.0.0.1:{port}"),
            cores: 2,
            workers: 1,
            data_files: 3,
            data_bytes: 300,
        }
    }

    #[test]
    fn each_registration_gets_a_fresh_control_key_that_is_never_listed() {
        let table = Membership::new(Duration::from_secs(10), 8);
        let t0 = Instant::now();
        let a = table.register("w", report(1), t0).unwrap();
        let first = table.control_key(&a).unwrap();
        assert_eq!(first.len(), 64);
        let again = table.register("w", report(1), t0).unwrap();
        assert_eq!(again, a, "the same address rejoins its entry");
        let second = table.control_key(&a).unwrap();
        assert_ne!(first, second, "a rejoin gets a new key");
        let listed = serde_json::to_string(&table.members(t0)).unwrap();
        assert!(!listed.contains(&second), "{listed}");
        assert!(!listed.contains("control_key"), "{listed}");
        assert_eq!(table.control_key("w-none"), None);
    }

    #[test]
    fn members_go_lost_when_silent_and_rejoin_by_address() {
        let table = Membership::new(Duration::from_secs(10), 8);
        let t0 = Instant::now();
        let a = table.register("w", report(1), t0).unwrap();
        let b = table.register("w", report(2), t0).unwrap();
        assert_ne!(a, b);
        table
            .heartbeat(&a, "w", report(1), t0 + Duration::from_secs(8))
            .unwrap();
        let later = t0 + Duration::from_secs(15);
        let states: Vec<_> = table
            .members(later)
            .iter()
            .map(|m| (m.id.clone(), m.state))
            .collect();
        assert_eq!(
            states,
            vec![
                (a.clone(), MemberState::Alive),
                (b.clone(), MemberState::Lost)
            ]
        );
        assert_eq!(table.alive(later).len(), 1);
        // b comes back (restarted: it registers again) and gets its old entry.
        assert_eq!(table.register("w", report(2), later).unwrap(), b);
        let back = table.members(later);
        assert!(back.iter().all(|m| m.state == MemberState::Alive));
        assert_eq!(back[1].rejoins, 1);
    }

    #[test]
    fn heartbeats_for_unknown_ids_or_other_tokens_are_refused() {
        let table = Membership::new(Duration::from_secs(10), 8);
        let now = Instant::now();
        let id = table.register("w1", report(1), now).unwrap();
        for (id, token, port) in [("w-nope", "w1", 1), (id.as_str(), "w2", 1), (&id, "w1", 9)] {
            assert_eq!(
                table.heartbeat(id, token, report(port), now),
                Err(MembershipError::Unknown(id.to_string()))
            );
        }
    }

    #[test]
    fn a_full_table_evicts_the_longest_lost_or_refuses() {
        let table = Membership::new(Duration::from_secs(10), 2);
        let t0 = Instant::now();
        table.register("w", report(1), t0).unwrap();
        table
            .register("w", report(2), t0 + Duration::from_secs(5))
            .unwrap();
        assert_eq!(
            table.register("w", report(3), t0 + Duration::from_secs(6)),
            Err(MembershipError::Full { max: 2 })
        );
        // At t0+12 member 1 is lost (12 s silent), member 2 is not (7 s): 1 gives way.
        let t = t0 + Duration::from_secs(12);
        table.register("w", report(3), t).unwrap();
        let addresses: Vec<_> = table
            .members(t)
            .into_iter()
            .map(|m| m.report.address)
            .collect();
        assert_eq!(addresses, vec!["127.0.0.1:2", "127.0.0.1:3"]);
    }

    #[test]
    fn nonsense_reports_are_refused() {
        let table = Membership::new(Duration::from_secs(10), 2);
        for bad in [
            MemberReport {
                address: "not an address".into(),
                ..report(1)
            },
            MemberReport {
                address: "1".repeat(300),
                ..report(1)
            },
            MemberReport {
                workers: 0,
                ..report(1)
            },
        ] {
            assert!(matches!(
                table.register("w", bad, Instant::now()),
                Err(MembershipError::BadReport(_))
            ));
        }
        assert!(table.members(Instant::now()).is_empty());
    }
}
