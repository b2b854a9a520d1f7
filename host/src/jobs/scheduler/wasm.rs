//! [`WasmExecutor`]: runs a queued job's compiled component with the MapReduce executor over the
//! source its manifest names (see [`crate::jobs::sources`]), across the cluster's members when a
//! [`Planner`] is attached and takes the job, and maps the executor's errors onto the scheduler's
//! outcomes.

use std::sync::{Arc, OnceLock};

use super::control::RunControl;
use super::record::JobRecord;
use super::{Executor, Finished, RunFailure};
use crate::jobs::distributed::planner::{ClusterJob, Planner};
use crate::jobs::schedule::relative;
use crate::jobs::sources::Sources;
use crate::jobs::{ColumnCache, JobError, Limits, RunOptions, Runtime, Sample};
use crate::storage::{filter, Schema};

/// Runs jobs as Wasm components on the shared [`Runtime`].
pub struct WasmExecutor {
    runtime: Arc<Runtime>,
    sources: Arc<Sources>,
    /// The storage schema the manifests' filters are resolved against (by dimension name).
    schema: Schema,
    /// Worker threads one job may use (the rest of the cores stay with ingest).
    max_workers: usize,
    /// The column cache jobs use unless their manifest says `"column_cache": false`.
    column_cache: Option<Arc<ColumnCache>>,
    /// The cluster planner, once the coordinator attaches one.
    cluster: ClusterSlot,
}

/// Where the coordinator attaches its [`Planner`] (set once, after the job service started).
pub type ClusterSlot = Arc<OnceLock<Arc<Planner>>>;

impl WasmExecutor {
    /// An executor reading from `sources`, laid out by `schema`, using at most `max_workers`
    /// threads per job.
    pub fn new(
        runtime: Arc<Runtime>,
        sources: Arc<Sources>,
        schema: Schema,
        max_workers: usize,
    ) -> Self {
        WasmExecutor {
            runtime,
            sources,
            schema,
            max_workers: max_workers.max(1),
            column_cache: None,
            cluster: ClusterSlot::default(),
        }
    }

    /// Jobs go to the planner attached to `slot` (when one is, and it takes them).
    pub fn with_cluster(mut self, slot: ClusterSlot) -> Self {
        self.cluster = slot;
        self
    }

    /// Jobs read fields from, and add them to, `cache`.
    pub fn with_column_cache(mut self, cache: Option<Arc<ColumnCache>>) -> Self {
        self.column_cache = cache;
        self
    }

    fn options(&self, job: &JobRecord) -> Result<RunOptions, String> {
        let m = &job.manifest;
        // Relative dates (`-1d`) are resolved now, at run time (a scheduled run's are already).
        let dated = relative::resolve(m.filter.as_ref(), chrono::Utc::now())
            .map_err(|e| format!("bad filter: {e}"))?;
        let filter = filter::resolve(dated.as_ref(), &self.schema)
            .map_err(|e| format!("bad filter: {e}"))?;
        let limits: Limits = match &m.limits {
            Some(value) => {
                serde_json::from_value(value.clone()).map_err(|e| format!("bad limits: {e}"))?
            }
            None => Limits::default(),
        };
        Ok(RunOptions {
            filter,
            param: m.parameter.clone().unwrap_or_default(),
            workers: m
                .workers
                .unwrap_or(self.max_workers)
                .clamp(1, self.max_workers),
            limits,
            skip_bad_records: m.skip_bad_records,
            sample: m
                .sample
                .map(Sample::new)
                .transpose()
                .map_err(|e| e.to_string())?
                .unwrap_or_default(),
            allow_empty: m.allow_empty,
            column_cache: self
                .column_cache
                .clone()
                .filter(|_| m.column_cache.unwrap_or(true)),
        })
    }
}

impl Executor for WasmExecutor {
    fn execute(&self, job: &JobRecord, control: &RunControl) -> Result<Finished, RunFailure> {
        let failed = |error: String| RunFailure::Failed {
            error,
            cost: None,
            log: Vec::new(),
        };
        let options = self.options(job).map_err(failed)?;
        let source = self
            .sources
            .open(job.manifest.source.as_deref())
            .map_err(|e| failed(e.to_string()))?;
        let compiled = self
            .runtime
            .load_cached(&job.component_sha256)
            .map_err(|e| failed(e.to_string()))?;
        if let Some(planner) = self.cluster.get() {
            let cluster_job = ClusterJob {
                id: &job.id,
                runtime: self.runtime.clone(),
                compiled: &compiled,
                source: source.clone(),
                source_config: self
                    .sources
                    .config(job.manifest.source.as_deref())
                    .map_err(|e| failed(e.to_string()))?,
                options: &options,
                allow_partial: job.manifest.allow_partial,
            };
            if let Some(result) = planner.run(&cluster_job, &control.progress, &control.cancel) {
                return result
                    .map(|out| Finished {
                        output: out.output,
                        cost: Some(out.cost),
                        log: out.log.lines().map(str::to_string).collect(),
                        written_to: None,
                    })
                    .map_err(|e| run_failure(e, control));
            }
        }
        match crate::jobs::run(
            &self.runtime,
            &compiled,
            source,
            &options,
            &control.progress,
            &control.cancel,
        ) {
            Ok(out) => Ok(Finished {
                output: out.output,
                cost: serde_json::to_value(&out.cost).ok(),
                log: out.log.lines().map(str::to_string).collect(),
                written_to: None,
            }),
            Err(error) => Err(run_failure(error, control)),
        }
    }
}

/// The scheduler's outcome for a failed run (with the log the guest wrote before it failed).
fn run_failure(error: JobError, control: &RunControl) -> RunFailure {
    match error {
        JobError::Cancelled => RunFailure::Cancelled,
        error => RunFailure::Failed {
            error: error.to_string(),
            cost: None,
            log: control
                .progress
                .failure_log()
                .lines()
                .map(str::to_string)
                .collect(),
        },
    }
}
