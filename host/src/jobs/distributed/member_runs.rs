//! The worker's side of a cluster attempt: holds the components the coordinator shipped (by
//! hash, at most [`MAX_COMPONENTS`], in memory and in its compile cache; the least recently
//! used is evicted from both), runs one attempt process at a time
//! on a thread (its share of the coordinator's listing of a shared source, or, for a `local`
//! source, all of what the job's filter matches in its own storage; in the attempt's
//! authenticated mesh),
//! answers where it stands, and cancels it on request. Finished attempts are remembered (the last
//! [`MAX_FINISHED`]) so the coordinator can collect their cost reports.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use prometheus_client::metrics::counter::Counter;

use super::protocol::{AttemptPlan, AttemptStatus, LocalFiles};
use crate::cluster::handshake::MeshSecret;
use crate::cluster::Topology;
use crate::jobs::sources::SourceConfig;
use crate::jobs::{
    CancelToken, CompiledJob, JobError, Listing, Progress, RunOptions, Runtime, Sample,
};
use crate::s3::S3Source;
use crate::storage::{filter, PartitionSource, Schema};

/// Compiled components kept in memory (least recently used evicted first).
pub const MAX_COMPONENTS: usize = 8;
/// Finished attempts whose status is kept.
pub const MAX_FINISHED: usize = 16;
/// A new plan waits at most this long for a cancelled attempt to end before it is refused busy.
const DRAIN_WAIT: std::time::Duration = std::time::Duration::from_secs(5);
/// The error of an attempt process whose threads panicked.
pub const PANICKED: &str =
    "the attempt's process panicked (timely does when a peer's connection breaks)";

/// Why a control request is refused.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// Another attempt is running on this worker.
    #[error("this worker is running attempt {0}")]
    Busy(String),
    /// The plan names a component this worker does not hold.
    #[error("component {0} is not on this worker: upload it first")]
    MissingComponent(String),
    /// The shipped bytes do not hash to the name.
    #[error("the component's bytes do not hash to {0}")]
    WrongHash(String),
    /// The plan makes no sense.
    #[error("bad attempt plan: {0}")]
    BadPlan(String),
    /// The component does not compile.
    #[error("{0}")]
    Job(#[from] JobError),
    /// No mesh port can be reserved.
    #[error("cannot reserve a mesh port on {host}: {source}")]
    Port {
        /// The host.
        host: String,
        /// Why.
        source: std::io::Error,
    },
}

struct Current {
    attempt: String,
    cancel: CancelToken,
    status: Arc<Mutex<AttemptStatus>>,
}

/// The worker's attempts and components.
pub struct MemberRuns {
    runtime: Arc<Runtime>,
    /// Which partition files a filter-less listing covers (for the run options; the files
    /// themselves come from the plan), and what a shipped filter is resolved against.
    everything: Schema,
    /// The worker's own `storage/` (a job over a `local` source reads it).
    storage: Arc<dyn PartitionSource>,
    components: Mutex<VecDeque<CompiledJob>>,
    current: Mutex<Option<Current>>,
    finished: Mutex<VecDeque<(String, AttemptStatus)>>,
    /// Attempts started.
    pub started: Counter,
    /// Components evicted from the in-memory cache.
    pub evicted: Counter,
}

impl MemberRuns {
    /// Runs attempts with `runtime`; `everything` is the storage schema's match-all filter and
    /// `storage` the worker's own partition files.
    pub fn new(
        runtime: Arc<Runtime>,
        everything: Schema,
        storage: Arc<dyn PartitionSource>,
    ) -> Self {
        MemberRuns {
            runtime,
            everything,
            storage,
            components: Mutex::new(VecDeque::new()),
            current: Mutex::new(None),
            finished: Mutex::new(VecDeque::new()),
            started: Counter::default(),
            evicted: Counter::default(),
        }
    }

    /// The compiled component `sha256`, when held (in memory, or in the runtime's compile cache).
    fn component(&self, sha256: &str) -> Option<CompiledJob> {
        let mut held = lock(&self.components);
        if let Some(pos) = held.iter().position(|c| c.sha256() == sha256) {
            let job = held.remove(pos)?;
            held.push_back(job.clone());
            return Some(job);
        }
        drop(held);
        let job = self.runtime.load_cached(sha256).ok()?;
        self.keep(job.clone());
        Some(job)
    }

    fn keep(&self, job: CompiledJob) {
        let mut held = lock(&self.components);
        held.retain(|c| c.sha256() != job.sha256());
        held.push_back(job);
        while held.len() > MAX_COMPONENTS {
            if let Some(old) = held.pop_front() {
                // Off the disk too: the worker's compile cache holds what memory holds.
                self.runtime.forget(old.sha256());
            }
            self.evicted.inc();
        }
    }

    /// Whether the component `sha256` is held.
    pub fn has_component(&self, sha256: &str) -> bool {
        self.component(sha256).is_some()
    }

    /// Stores (compiles) a shipped component, which must hash to `sha256`.
    pub fn add_component(&self, sha256: &str, wasm: &[u8]) -> Result<(), RunError> {
        let job = self.runtime.compile(wasm)?;
        if job.sha256() != sha256 {
            return Err(RunError::WrongHash(sha256.to_string()));
        }
        self.keep(job);
        Ok(())
    }

    /// Lists this worker's own storage with a shipped filter document, as `job run` and the job
    /// service list a local source ([`crate::jobs::list`]).
    pub fn list_own(&self, filter: &serde_json::Value) -> Result<Listing, RunError> {
        let opts = RunOptions::new(self.own_filter(filter)?);
        let mut listing = crate::jobs::list(self.storage.as_ref(), &opts)?;
        listing.own = true;
        Ok(listing)
    }

    /// [`Self::list_own`] counted: what the coordinator learns at preparation.
    pub fn own_files(&self, filter: &serde_json::Value) -> Result<LocalFiles, RunError> {
        let listing = self.list_own(filter)?;
        Ok(LocalFiles {
            files: listing.files.len() as u64,
            bytes: listing.files.iter().map(|f| f.size).sum(),
            pruned: listing.files_pruned,
        })
    }

    fn own_filter(&self, filter: &serde_json::Value) -> Result<Schema, RunError> {
        filter::resolve(Some(filter), &self.everything)
            .map_err(|e| RunError::BadPlan(format!("filter: {e}")))
    }

    /// A free port on `host` for the next attempt's mesh, kept bound until the attempt's mesh
    /// takes it ([`crate::cluster::mesh::reserve`]).
    pub fn reserve_port(host: &str) -> Result<String, RunError> {
        crate::cluster::mesh::reserve(host).map_err(|source| RunError::Port {
            host: host.to_string(),
            source,
        })
    }

    /// Starts this worker's process of `plan` on a thread.
    pub fn start(&self, mut plan: AttemptPlan) -> Result<(), RunError> {
        let job = self
            .component(&plan.sha256)
            .ok_or_else(|| RunError::MissingComponent(plan.sha256.clone()))?;
        let secret =
            MeshSecret::from_hex(&plan.secret).map_err(|e| RunError::BadPlan(e.to_string()))?;
        if plan.process == 0 || plan.process >= plan.addresses.len() || plan.workers == 0 {
            return Err(RunError::BadPlan(format!(
                "process {} of {} addresses with {} workers",
                plan.process,
                plan.addresses.len(),
                plan.workers
            )));
        }
        let mut opts = RunOptions::new(self.everything.clone());
        let source_config = plan.source.clone();
        let (source, listing): (Arc<dyn PartitionSource>, Listing) = match &source_config {
            SourceConfig::S3(s3) => (
                Arc::new(S3Source::new(s3).map_err(|e| RunError::BadPlan(format!("source: {e}")))?),
                std::mem::take(&mut plan.listing),
            ),
            SourceConfig::Local => {
                let filter = plan.local_filter.as_ref().ok_or_else(|| {
                    RunError::BadPlan("a plan over a local source needs its filter".into())
                })?;
                opts.filter = self.own_filter(filter)?;
                (self.storage.clone(), self.list_own(filter)?)
            }
        };
        let sample = Sample::new(plan.sample).map_err(|e| RunError::BadPlan(e.to_string()))?;
        opts.param = plan.param.clone();
        opts.workers = plan.workers;
        opts.limits = plan.limits.clone();
        opts.skip_bad_records = plan.skip_bad_records;
        opts.sample = sample;
        // The coordinator checked the listing (or the members' together) is not empty; this
        // process's share may be.
        opts.allow_empty = true;
        let topology = Topology::Cluster {
            workers: plan.workers,
            process: plan.process,
            addresses: plan.addresses.clone(),
            secret,
        };

        let mut current = self.wait_cancelled_drained();
        if let Some(running) = current.as_ref() {
            if *lock(&running.status) == AttemptStatus::Running {
                return Err(RunError::Busy(running.attempt.clone()));
            }
        }
        if let Some(done) = current.take() {
            self.remember(done);
        }
        let cancel = CancelToken::new();
        let status = Arc::new(Mutex::new(AttemptStatus::Running));
        *current = Some(Current {
            attempt: plan.attempt.clone(),
            cancel: cancel.clone(),
            status: status.clone(),
        });
        self.started.inc();
        let runtime = self.runtime.clone();
        let attempt = plan.attempt.clone();
        std::thread::Builder::new()
            .name("cluster-attempt".into())
            .spawn(move || {
                tracing::info!(%attempt, process = plan.process, files = listing.files.len(), own = listing.own, "attempt started");
                let result = run_process(
                    &topology,
                    &runtime,
                    &job,
                    source,
                    &opts,
                    listing,
                    &Progress::default(),
                    &cancel,
                );
                let end = match result {
                    Ok(out) => AttemptStatus::Done {
                        cost: serde_json::to_value(&out.cost).unwrap_or_default(),
                    },
                    Err(e) => AttemptStatus::Failed {
                        retry: matches!(e, JobError::Engine(_) | JobError::Cancelled),
                        error: e.to_string(),
                    },
                };
                tracing::info!(%attempt, status = ?end, "attempt ended");
                *lock(&status) = end;
            })
            .map_err(|e| RunError::Job(JobError::io("starting the attempt thread", e)))?;
        Ok(())
    }

    /// The current attempt, once it is not a cancelled one still draining (waits at most
    /// [`DRAIN_WAIT`]: a cancelled process whose peer froze ends when its mesh is cut).
    fn wait_cancelled_drained(&self) -> std::sync::MutexGuard<'_, Option<Current>> {
        let deadline = std::time::Instant::now() + DRAIN_WAIT;
        loop {
            let current = lock(&self.current);
            let draining = current.as_ref().is_some_and(|c| {
                c.cancel.is_cancelled() && *lock(&c.status) == AttemptStatus::Running
            });
            if !draining || std::time::Instant::now() >= deadline {
                return current;
            }
            drop(current);
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }

    fn remember(&self, done: Current) {
        let status = lock(&done.status).clone();
        let mut finished = lock(&self.finished);
        finished.push_back((done.attempt, status));
        while finished.len() > MAX_FINISHED {
            finished.pop_front();
        }
    }

    /// Where attempt `id` stands on this worker (`None`: unknown here).
    pub fn status(&self, id: &str) -> Option<AttemptStatus> {
        if let Some(current) = lock(&self.current).as_ref() {
            if current.attempt == id {
                return Some(lock(&current.status).clone());
            }
        }
        lock(&self.finished)
            .iter()
            .find(|(attempt, _)| attempt == id)
            .map(|(_, status)| status.clone())
    }

    /// Cancels attempt `id` if it runs here; whether it did.
    pub fn cancel(&self, id: &str) -> bool {
        match lock(&self.current).as_ref() {
            Some(current) if current.attempt == id => {
                current.cancel.cancel();
                true
            }
            _ => false,
        }
    }
}

/// One process of a cluster attempt over `listing` ([`crate::jobs::run_listed`]). timely panics
/// a process's threads when a peer's connection breaks: that is this attempt's
/// [`JobError::Engine`] ([`PANICKED`]), and the caller stays usable for the next attempt.
#[allow(clippy::too_many_arguments)]
pub fn run_process(
    topology: &Topology,
    runtime: &Runtime,
    job: &CompiledJob,
    source: Arc<dyn PartitionSource>,
    opts: &RunOptions,
    listing: crate::jobs::Listing,
    progress: &Progress,
    cancel: &CancelToken,
) -> Result<crate::jobs::JobOutput, JobError> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        crate::jobs::run_listed(
            topology,
            runtime,
            job,
            source,
            opts,
            Some(listing),
            progress,
            cancel,
        )
    }))
    .unwrap_or_else(|_| Err(JobError::Engine(PANICKED.into())))
    // A cancelled process whose mesh was cut (or broke) ends as cancelled.
    .map_err(|e| {
        if cancel.is_cancelled() {
            JobError::Cancelled
        } else {
            e
        }
    })
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
