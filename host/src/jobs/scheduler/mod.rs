//! The job scheduler: a persistent queue of submitted jobs under the data dir's `jobs/`, a fixed set
//! of runner threads (one per concurrently running job) at a lower CPU priority, cancellation, and
//! result retention.
//!
//! Restart policy: a job that was `queued` stays queued and runs after the restart. A job that was
//! `running` when the server stopped is handled by how it stopped: on a clean shutdown it is put back
//! into the queue (it ran on a healthy server, so running it again is right); after a crash it is
//! marked `failed` with the reason "server restarted while the job was running" — it may be the
//! reason for the crash, and re-running it would crash the server again.
//!
//! What runs a job is an [`Executor`] (the Wasm one is [`WasmExecutor`]); the scheduler knows only
//! records, states and files. With a [`ComponentCache`], the retention thread also deletes
//! compiled components no retained job references (at start-up and after every pass).

mod cache_gc;
mod control;
mod pool;
mod record;
mod store;
mod wasm;

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

pub use cache_gc::{CacheRetention, ComponentCache, GcReport};
pub use control::RunControl;
pub use pool::{spawn_low_priority, Priority};
pub use record::{
    is_job_id, is_sha256, now, JobRecord, JobState, Manifest, OutputReceipt, ProgressSnapshot,
};
pub(crate) use store::{load_records, read_all, remove_if_exists, write_atomic};
pub use store::{JobStore, StoreError};
pub use wasm::{ClusterSlot, WasmExecutor};

/// The longest [`Scheduler::shutdown`] waits for its threads. Guards server shutdown against a
/// job that does not stop when cancelled (which the runtime prevents, see `jobs::wasi`): the
/// server must still finish its raw logs and exit within its grace period.
pub const SHUTDOWN_WAIT: Duration = Duration::from_secs(10);

/// The reason recorded for jobs found `running` after a crash.
pub const RESTART_REASON: &str = "server restarted while the job was running";

/// What a finished run produced.
#[derive(Debug, Clone, Default)]
pub struct Finished {
    /// Sorted `key<TAB>value` lines.
    pub output: Vec<u8>,
    /// The cost report as JSON.
    pub cost: Option<serde_json::Value>,
    /// Guest log lines.
    pub log: Vec<String>,
    /// Where the result was also written (`Manifest::output`).
    pub written_to: Option<OutputReceipt>,
}

/// Why a run did not finish.
#[derive(Debug, Clone)]
pub enum RunFailure {
    /// The job's cancel token fired.
    Cancelled,
    /// The job failed; the message says why (trap with record id, limit, bad input…).
    Failed {
        /// What went wrong.
        error: String,
        /// Cost report up to the failure, when known.
        cost: Option<serde_json::Value>,
        /// Guest log lines.
        log: Vec<String>,
    },
}

/// Runs one job to completion. Called on a scheduler runner thread (lowered priority); it may
/// start its own worker threads, which inherit that priority.
pub trait Executor: Send + Sync + 'static {
    /// Runs `job`, reporting progress into and watching cancellation through `control`.
    fn execute(&self, job: &JobRecord, control: &RunControl) -> Result<Finished, RunFailure>;
}

/// Scheduler settings (from `[jobs]`).
#[derive(Debug, Clone)]
pub struct SchedulerConfig {
    /// Runner threads = jobs running at once.
    pub max_concurrent_jobs: usize,
    /// Queued + running jobs accepted at once.
    pub max_queued_jobs: usize,
    /// Nice value of runner threads (and the job threads they start).
    pub job_nice: i32,
    /// Run them under `SCHED_IDLE` as well.
    pub job_sched_idle: bool,
    /// Finished jobs are deleted this long after finishing.
    pub result_retention: Duration,
    /// How often retention is checked.
    pub retention_sweep: Duration,
}

impl SchedulerConfig {
    /// The priority of job threads.
    pub fn priority(&self) -> pool::Priority {
        pool::Priority {
            nice: self.job_nice,
            sched_idle: self.job_sched_idle,
        }
    }
}

/// Errors from scheduler operations.
#[derive(Debug, thiserror::Error)]
pub enum SchedulerError {
    /// No job with this id.
    #[error("no job {0}")]
    NotFound(String),
    /// The queue already holds `max_queued_jobs` unfinished jobs.
    #[error("the job queue is full ({0} unfinished jobs); retry later")]
    QueueFull(usize),
    /// The job is already finished.
    #[error("job {id} already {state}")]
    AlreadyFinished {
        /// Job id.
        id: String,
        /// Its final state.
        state: &'static str,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The scheduler: owns the queue and the runner threads; dropping it stops them (running jobs
/// are interrupted and re-queued).
pub struct Scheduler {
    shared: Arc<Shared>,
    /// Runner and retention threads, joined by [`Scheduler::shutdown`].
    threads: Mutex<Vec<JoinHandle<()>>>,
}

struct Shared {
    store: JobStore,
    executor: Arc<dyn Executor>,
    config: SchedulerConfig,
    state: Mutex<State>,
    /// Wakes runners when a job is queued, and everyone on shutdown.
    wake: Condvar,
    /// The compile cache collected after every retention pass, if any.
    cache: Option<Arc<ComponentCache>>,
}

#[derive(Default)]
struct State {
    jobs: BTreeMap<String, Entry>,
    queue: VecDeque<String>,
    shutting_down: bool,
}

struct Entry {
    record: JobRecord,
    /// Set while the job runs: its cancel token and live progress.
    live: Option<Arc<RunControl>>,
}

impl Scheduler {
    /// Loads the stored queue (applying the restart policy) and starts the runner threads.
    pub fn start(
        store: JobStore,
        executor: Arc<dyn Executor>,
        config: SchedulerConfig,
    ) -> Result<Self, SchedulerError> {
        Self::start_with_cache(store, executor, config, None)
    }

    /// [`start`](Self::start), also collecting `cache` at start-up and after every retention pass.
    pub fn start_with_cache(
        store: JobStore,
        executor: Arc<dyn Executor>,
        config: SchedulerConfig,
        cache: Option<Arc<ComponentCache>>,
    ) -> Result<Self, SchedulerError> {
        let (records, corrupt) = store.load_all()?;
        for path in corrupt {
            tracing::warn!(path = %path, "job record unreadable; set aside as .corrupt");
        }
        let mut state = State::default();
        for mut record in records {
            if record.state == JobState::Running {
                record.finish(JobState::Failed, Some(RESTART_REASON.to_string()));
                store.save(&record)?;
                tracing::warn!(job = %record.id, "job was running when the server stopped; marked failed");
            }
            if record.state == JobState::Queued {
                state.queue.push_back(record.id.clone());
            }
            state
                .jobs
                .insert(record.id.clone(), Entry { record, live: None });
        }
        let shared = Arc::new(Shared {
            store,
            executor,
            config,
            state: Mutex::new(state),
            wake: Condvar::new(),
            cache,
        });
        let mut threads = Vec::new();
        for i in 0..shared.config.max_concurrent_jobs.max(1) {
            let shared = shared.clone();
            threads.push(pool::spawn_low_priority(
                format!("job-runner-{i}"),
                shared.config.priority(),
                move || shared.run_jobs(),
            ));
        }
        let sweeper = shared.clone();
        threads.push(pool::spawn_low_priority(
            "job-retention".into(),
            shared.config.priority(),
            move || sweeper.sweep_expired(),
        ));
        Ok(Scheduler {
            shared,
            threads: Mutex::new(threads),
        })
    }

    /// The store (for components and results).
    pub fn store(&self) -> &JobStore {
        &self.shared.store
    }

    /// Queues a job; returns its record.
    pub fn submit(
        &self,
        owner: &str,
        manifest: Manifest,
        component_sha256: String,
    ) -> Result<JobRecord, SchedulerError> {
        let record = JobRecord::queued(owner, manifest, component_sha256);
        let mut state = self.shared.lock();
        let unfinished = state
            .jobs
            .values()
            .filter(|e| !e.record.state.is_final())
            .count();
        if unfinished >= self.shared.config.max_queued_jobs {
            return Err(SchedulerError::QueueFull(unfinished));
        }
        self.shared.store.save(&record)?;
        state.queue.push_back(record.id.clone());
        state.jobs.insert(
            record.id.clone(),
            Entry {
                record: record.clone(),
                live: None,
            },
        );
        drop(state);
        self.shared.wake.notify_all();
        Ok(record)
    }

    /// A job's current record (with live progress while it runs).
    pub fn get(&self, id: &str) -> Option<JobRecord> {
        self.shared.lock().jobs.get(id).map(Entry::snapshot)
    }

    /// Every job, oldest first, without its `log` (a job's log can be large; [`Self::get`] has
    /// it), so the lock is held only for copying small records.
    pub fn list(&self) -> Vec<JobRecord> {
        let mut jobs: Vec<JobRecord> = self
            .shared
            .lock()
            .jobs
            .values_mut()
            .map(|entry| {
                let log = std::mem::take(&mut entry.record.log);
                let record = entry.snapshot();
                entry.record.log = log;
                record
            })
            .collect();
        jobs.sort_by(|a, b| (&a.submitted_at, &a.id).cmp(&(&b.submitted_at, &b.id)));
        jobs
    }

    /// Cancels a queued job at once, or interrupts a running one (its runner records `cancelled`
    /// when the guest has stopped). Returns the record as it is now.
    pub fn cancel(&self, id: &str) -> Result<JobRecord, SchedulerError> {
        let mut state = self.shared.lock();
        let state = &mut *state;
        let entry = state
            .jobs
            .get_mut(id)
            .ok_or_else(|| SchedulerError::NotFound(id.to_string()))?;
        match entry.record.state {
            JobState::Queued => {
                state.queue.retain(|q| q != id);
                entry
                    .record
                    .finish(JobState::Cancelled, Some("cancelled while queued".into()));
                self.shared.store.save(&entry.record)?;
            }
            JobState::Running => {
                if let Some(live) = &entry.live {
                    live.cancel();
                }
            }
            done => {
                return Err(SchedulerError::AlreadyFinished {
                    id: id.to_string(),
                    state: done.as_str(),
                })
            }
        }
        Ok(entry.snapshot())
    }

    /// A finished job's stored output, opened for streaming, with its size.
    pub fn open_result(&self, id: &str) -> Result<Option<(std::fs::File, u64)>, SchedulerError> {
        Ok(self.shared.store.open_result(id)?)
    }

    /// A finished job's stored output.
    pub fn result(&self, id: &str) -> Result<Option<Vec<u8>>, SchedulerError> {
        Ok(self.shared.store.result(id)?)
    }
}

impl Scheduler {
    /// Stops the scheduler: running jobs are interrupted and put back in the queue (they run
    /// again after the restart), the runner and retention threads are joined. A guest stops at
    /// the next epoch tick, or within 10 ms if it waits in a WASI call (`jobs::wasi`), so this
    /// normally takes milliseconds; it never blocks longer than [`SHUTDOWN_WAIT`]:
    /// a thread still running then is left behind (logged), and its job, still `running` in the
    /// store, is marked failed at the next start like after a crash. Idempotent.
    pub fn shutdown(&self) {
        {
            let mut state = self.shared.lock();
            state.shutting_down = true;
            for entry in state.jobs.values() {
                if let Some(live) = &entry.live {
                    live.cancel();
                }
            }
        }
        self.shared.wake.notify_all();
        let threads = std::mem::take(&mut *self.threads.lock().unwrap_or_else(|p| p.into_inner()));
        let deadline = std::time::Instant::now() + SHUTDOWN_WAIT;
        while threads.iter().any(|t| !t.is_finished()) && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        for thread in threads {
            if thread.is_finished() {
                let _ = thread.join();
            } else {
                tracing::error!(
                    thread = thread.thread().name().unwrap_or("?"),
                    wait_secs = SHUTDOWN_WAIT.as_secs(),
                    "job thread did not stop; leaving it behind"
                );
            }
        }
    }
}

impl Drop for Scheduler {
    fn drop(&mut self) {
        self.shutdown();
    }
}

impl Entry {
    fn snapshot(&self) -> JobRecord {
        let mut record = self.record.clone();
        if let Some(live) = &self.live {
            record.progress = live.progress_snapshot();
        }
        record
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves plain data; keep serving.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A runner thread: takes the oldest queued job, runs it, records the outcome; until shutdown.
    fn run_jobs(&self) {
        while let Some((record, control)) = self.next_job() {
            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                self.executor.execute(&record, &control)
            }))
            .unwrap_or_else(|panic| {
                let message = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_else(|| "unknown panic".into());
                Err(RunFailure::Failed {
                    error: format!("executor panicked: {message}"),
                    cost: None,
                    log: vec![],
                })
            });
            self.record_outcome(&record.id, &control, outcome);
        }
    }

    /// Blocks until a job is queued (→ marks it running) or shutdown (→ `None`).
    fn next_job(&self) -> Option<(JobRecord, Arc<RunControl>)> {
        let mut state = self.lock();
        loop {
            if state.shutting_down {
                return None;
            }
            if let Some(id) = state.queue.pop_front() {
                let control = Arc::new(RunControl::new());
                let Some(entry) = state.jobs.get_mut(&id) else {
                    continue;
                };
                entry.record.state = JobState::Running;
                entry.record.started_at = Some(now());
                entry.live = Some(control.clone());
                if let Err(error) = self.store.save(&entry.record) {
                    tracing::error!(job = %id, error = %error, "cannot persist running state");
                }
                return Some((entry.record.clone(), control));
            }
            state = self
                .wake
                .wait(state)
                .unwrap_or_else(|poisoned| poisoned.into_inner());
        }
    }

    fn record_outcome(
        &self,
        id: &str,
        control: &RunControl,
        outcome: Result<Finished, RunFailure>,
    ) {
        // The result is written (and synced) before the lock is taken: it may be large, and
        // status and list requests wait on this lock.
        let stored = match &outcome {
            Ok(finished) => Some(self.store.put_result(id, &finished.output)),
            Err(_) => None,
        };
        let mut state = self.lock();
        let shutting_down = state.shutting_down;
        let Some(entry) = state.jobs.get_mut(id) else {
            return;
        };
        entry.live = None;
        entry.record.progress = control.progress_snapshot();
        match outcome {
            Ok(finished) => match stored.expect("stored when Ok") {
                Ok(bytes) => {
                    entry.record.result_bytes = Some(bytes);
                    entry.record.cost = finished.cost;
                    entry.record.log = finished.log;
                    entry.record.output = finished.written_to;
                    entry.record.finish(JobState::Succeeded, None);
                }
                Err(error) => entry.record.finish(
                    JobState::Failed,
                    Some(format!("cannot store the result: {error}")),
                ),
            },
            Err(RunFailure::Cancelled) if shutting_down => {
                // Clean shutdown: run it again after the restart.
                entry.record.state = JobState::Queued;
                entry.record.started_at = None;
                entry.record.progress = ProgressSnapshot::default();
            }
            Err(RunFailure::Cancelled) => entry
                .record
                .finish(JobState::Cancelled, Some("cancelled while running".into())),
            Err(RunFailure::Failed { error, cost, log }) => {
                entry.record.cost = cost;
                entry.record.log = log;
                entry.record.finish(JobState::Failed, Some(error));
            }
        }
        tracing::info!(job = %id, state = entry.record.state.as_str(), error = ?entry.record.error, "job finished");
        if let Err(error) = self.store.save(&entry.record) {
            tracing::error!(job = %id, error = %error, "cannot persist job outcome");
        }
    }

    /// The retention thread: deletes finished jobs older than the retention, then collects the
    /// component cache; at start and every `retention_sweep` until shutdown.
    fn sweep_expired(&self) {
        let mut state = self.lock();
        loop {
            if state.shutting_down {
                return;
            }
            let retention = self.config.result_retention.as_secs();
            let expired: Vec<String> = state
                .jobs
                .values()
                .filter(|e| e.record.state.is_final())
                .filter(|e| {
                    e.record
                        .finished_secs_ago()
                        .is_some_and(|age| age >= retention)
                })
                .map(|e| e.record.id.clone())
                .collect();
            for id in expired {
                match self.store.remove(&id) {
                    Ok(()) => {
                        state.jobs.remove(&id);
                        tracing::info!(job = %id, "job and result deleted after retention");
                    }
                    Err(error) => {
                        tracing::warn!(job = %id, error = %error, "cannot delete expired job")
                    }
                }
            }
            if let Some(cache) = &self.cache {
                // Computed under the lock, so a job submitted after this sees its component kept
                // by `min_age` (its upload or submission touched it just before).
                let referenced = state
                    .jobs
                    .values()
                    .map(|e| e.record.component_sha256.clone())
                    .collect();
                drop(state);
                if let Err(error) = cache.collect(&referenced) {
                    tracing::warn!(%error, "cannot collect the component cache");
                }
                state = self.lock();
                if state.shutting_down {
                    return;
                }
            }
            state = self
                .wake
                .wait_timeout(state, self.config.retention_sweep)
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .0;
        }
    }
}

#[cfg(test)]
mod tests;
