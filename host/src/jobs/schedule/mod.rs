//! Scheduled jobs: a job submitted with `"schedule": "daily 02:00"` (or 5-field cron, UTC) is kept
//! as a schedule and run at every matching minute, each run as an ordinary job whose filter has
//! its relative dates (`-1d`, `today`, see [`relative`]) resolved at the run's time. Each run's
//! result is copied into the schedule's history, which keeps the latest
//! `jobs.schedule_history_runs` runs.
//!
//! Schedules live in the data dir's `jobs/schedules/` ([`store`]) and survive restarts. The next
//! due time is stored; when the server was down over one or more slots, the schedule runs once at
//! start (for the latest missed slot), not once per missed slot. A slot that comes while the
//! previous run is still unfinished is treated the same way: the schedule runs once when it is.
//!
//! [`Schedules::tick`] does the work (sync finished runs, start due ones, apply retention); the
//! job service calls it from a [`Ticker`] thread every `jobs.schedule_tick_ms`, reading the time from a
//! [`Clock`] so tests drive it with a [`ManualClock`].

pub mod clock;
pub mod record;
pub mod relative;
pub mod spec;
pub mod store;
pub mod ticker;

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};

use chrono::{DateTime, Utc};
use prometheus_client::metrics::counter::Counter;

pub use clock::{Clock, ManualClock, SystemClock};
pub use record::{RunRecord, ScheduleRecord};
pub use relative::BadRelativeDate;
pub use spec::{BadSchedule, ScheduleSpec};
pub use store::ScheduleStore;
pub use ticker::Ticker;

use crate::jobs::scheduler::{JobState, Manifest, Scheduler, StoreError};

/// Errors of schedule operations.
#[derive(Debug, thiserror::Error)]
pub enum ScheduleError {
    /// The schedule string is not usable.
    #[error(transparent)]
    Bad(#[from] BadSchedule),
    /// The schedule never runs (`0 0 31 2 *`).
    #[error("schedule {0:?} matches no time in the next eight years")]
    Never(String),
    /// `jobs.max_schedules` schedules exist already.
    #[error("this server keeps at most {0} schedules (jobs.max_schedules); delete one first")]
    Full(usize),
    /// No schedule with this id.
    #[error("no schedule {0}")]
    NotFound(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Schedule settings (from `[jobs]`).
#[derive(Debug, Clone, Copy)]
pub struct ScheduleConfig {
    /// Runs kept per schedule (with their results).
    pub history_runs: usize,
    /// Schedules kept at once.
    pub max_schedules: usize,
}

/// Counters of schedule runs (registered by the job service).
#[derive(Debug, Default, Clone)]
pub struct ScheduleMetrics {
    /// Runs started.
    pub runs_started: Counter,
    /// Runs that ended in a state other than succeeded (or could not be queued).
    pub runs_failed: Counter,
    /// Runs dropped from a history by its retention.
    pub runs_expired: Counter,
}

/// Every schedule, its store and clock.
pub struct Schedules {
    store: ScheduleStore,
    clock: std::sync::Arc<dyn Clock>,
    config: ScheduleConfig,
    schedules: Mutex<BTreeMap<String, ScheduleRecord>>,
    /// Run counters.
    pub metrics: ScheduleMetrics,
}

impl Schedules {
    /// Loads the stored schedules (corrupt records are set aside and logged).
    pub fn open(
        store: ScheduleStore,
        clock: std::sync::Arc<dyn Clock>,
        config: ScheduleConfig,
    ) -> Result<Self, ScheduleError> {
        let (records, corrupt) = store.load_all()?;
        for path in corrupt {
            tracing::warn!(path = %path, "schedule record unreadable; set aside as .corrupt");
        }
        Ok(Schedules {
            store,
            clock,
            config,
            schedules: Mutex::new(records.into_iter().map(|r| (r.id.clone(), r)).collect()),
            metrics: ScheduleMetrics::default(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, ScheduleRecord>> {
        self.schedules.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The clock's time now.
    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// Creates a schedule from a checked manifest (with `schedule` set); its first run is the
    /// first matching minute from now.
    pub fn create(
        &self,
        owner: &str,
        manifest: Manifest,
        component_sha256: String,
    ) -> Result<ScheduleRecord, ScheduleError> {
        let text = manifest.schedule.clone().unwrap_or_default();
        let spec = ScheduleSpec::parse(&text)?;
        let now = self.clock.now();
        let next = spec.next_after(now).ok_or(ScheduleError::Never(text))?;
        let mut schedules = self.lock();
        if schedules.len() >= self.config.max_schedules {
            return Err(ScheduleError::Full(self.config.max_schedules));
        }
        let record = ScheduleRecord {
            id: uuid::Uuid::now_v7().to_string(),
            owner: owner.to_string(),
            manifest,
            component_sha256,
            created_at: rfc3339(now),
            next_run: Some(rfc3339(next)),
            next_seq: 1,
            runs: Vec::new(),
        };
        self.store.save(&record)?;
        schedules.insert(record.id.clone(), record.clone());
        Ok(record)
    }

    /// Every schedule, oldest first.
    pub fn list(&self) -> Vec<ScheduleRecord> {
        let mut all: Vec<ScheduleRecord> = self.lock().values().cloned().collect();
        all.sort_by(|a, b| (&a.created_at, &a.id).cmp(&(&b.created_at, &b.id)));
        all
    }

    /// One schedule.
    pub fn get(&self, id: &str) -> Option<ScheduleRecord> {
        self.lock().get(id).cloned()
    }

    /// A run's kept result.
    pub fn result(&self, id: &str, seq: u64) -> Result<Option<Vec<u8>>, ScheduleError> {
        Ok(self.store.result(id, seq)?)
    }

    /// Deletes a schedule and its history (a running run's job is left to finish).
    pub fn remove(&self, id: &str) -> Result<ScheduleRecord, ScheduleError> {
        let mut schedules = self.lock();
        let record = schedules
            .remove(id)
            .ok_or_else(|| ScheduleError::NotFound(id.to_string()))?;
        for run in &record.runs {
            self.store.remove_result(id, run.seq)?;
        }
        self.store.remove(id)?;
        Ok(record)
    }

    /// Brings every schedule up to date with the clock: copies finished runs' results into the
    /// history, starts the due schedules (one run each, however many slots were missed), drops
    /// runs beyond the retention. Errors are logged per schedule; one bad schedule never stops
    /// the others.
    pub fn tick(&self, jobs: &Scheduler) {
        let now = self.clock.now();
        let mut schedules = self.lock();
        for record in schedules.values_mut() {
            let before = record.clone();
            self.sync_runs(record, jobs);
            self.start_if_due(record, jobs, now);
            self.apply_retention(record);
            if *record != before {
                if let Err(error) = self.store.save(record) {
                    tracing::error!(schedule = %record.id, %error, "cannot persist schedule");
                }
            }
        }
    }

    /// Records the outcome of runs whose job has finished, copying the result into the history.
    fn sync_runs(&self, record: &mut ScheduleRecord, jobs: &Scheduler) {
        for run in record.runs.iter_mut().filter(|r| !r.state.is_final()) {
            let Some(job) = run.job_id.as_deref().and_then(|id| jobs.get(id)) else {
                run.state = JobState::Failed;
                run.error = Some("the run's job is gone (deleted or expired)".into());
                self.metrics.runs_failed.inc();
                continue;
            };
            run.state = job.state;
            if !job.state.is_final() {
                continue;
            }
            run.error = job.error.clone();
            run.output = job.output.clone();
            run.finished_at = job.finished_at.clone();
            if job.state == JobState::Succeeded {
                let kept = jobs
                    .result(&job.id)
                    .map_err(|e| e.to_string())
                    .and_then(|r| r.ok_or_else(|| "the job's result is gone".to_string()))
                    .and_then(|bytes| {
                        self.store
                            .put_result(&record.id, run.seq, &bytes)
                            .map_err(|e| e.to_string())
                    });
                match kept {
                    Ok(bytes) => run.result_bytes = Some(bytes),
                    Err(error) => {
                        run.state = JobState::Failed;
                        run.error = Some(format!("cannot keep the run's result: {error}"));
                    }
                }
            }
            if run.state != JobState::Succeeded {
                self.metrics.runs_failed.inc();
            }
        }
    }

    /// Starts one run when the next slot has come and no run is unfinished.
    fn start_if_due(&self, record: &mut ScheduleRecord, jobs: &Scheduler, now: DateTime<Utc>) {
        let Some(due) = record.next_run.as_deref().and_then(parse_time) else {
            return;
        };
        if due > now || record.runs.iter().any(|r| !r.state.is_final()) {
            return;
        }
        let spec = match ScheduleSpec::parse(record.manifest.schedule.as_deref().unwrap_or("")) {
            Ok(spec) => spec,
            Err(error) => {
                tracing::error!(schedule = %record.id, %error, "stored schedule unusable");
                record.next_run = None;
                return;
            }
        };
        // The latest slot that has passed (several, when the server was down): it runs once.
        let mut slot = due;
        while let Some(next) = spec.next_after(slot).filter(|n| *n <= now) {
            slot = next;
        }
        record.next_run = spec.next_after(now).map(rfc3339);
        let seq = record.next_seq;
        record.next_seq += 1;
        self.metrics.runs_started.inc();
        let mut run = RunRecord {
            seq,
            scheduled_for: rfc3339(slot),
            run_at: rfc3339(now),
            job_id: None,
            filter: None,
            state: JobState::Failed,
            error: None,
            result_bytes: None,
            output: None,
            finished_at: None,
        };
        match relative::resolve(record.manifest.filter.as_ref(), now) {
            Err(error) => run.error = Some(error.to_string()),
            Ok(filter) => {
                let manifest = Manifest {
                    filter: filter.clone(),
                    schedule: None,
                    run_at: Some(rfc3339(now)),
                    ..record.manifest.clone()
                };
                run.filter = filter;
                match jobs.submit(&record.owner, manifest, record.component_sha256.clone()) {
                    Ok(job) => {
                        run.job_id = Some(job.id);
                        run.state = job.state;
                    }
                    Err(error) => run.error = Some(format!("cannot queue the run: {error}")),
                }
            }
        }
        if run.state.is_final() {
            self.metrics.runs_failed.inc();
            run.finished_at = Some(rfc3339(now));
        }
        tracing::info!(schedule = %record.id, seq, job = ?run.job_id, error = ?run.error, "scheduled run started");
        record.runs.push(run);
    }

    /// Drops the oldest finished runs (and their results) beyond `history_runs`.
    fn apply_retention(&self, record: &mut ScheduleRecord) {
        while record.runs.len() > self.config.history_runs.max(1) {
            let run = record.runs.remove(0);
            if let Err(error) = self.store.remove_result(&record.id, run.seq) {
                tracing::warn!(schedule = %record.id, seq = run.seq, %error, "cannot delete an expired run's result");
            }
            self.metrics.runs_expired.inc();
        }
    }
}

/// RFC 3339 in UTC, seconds precision.
pub fn rfc3339(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn parse_time(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

#[cfg(test)]
mod tests;
