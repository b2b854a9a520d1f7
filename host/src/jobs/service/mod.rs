//! [`JobService`]: the ready-to-serve job service built from `[jobs]` — tokens, the Wasm runtime with
//! its compile cache (the data dir's `cache/`), the persistent scheduler (`jobs/queue/`, `jobs/results/`) — and
//! the upload checks that turn a component plus manifest into a queued job; the schedules
//! (`jobs/schedules/`, ticked by a thread) and the outputs (`[jobs.outputs]`) jobs write to.

pub mod auth;
mod compile_gate;
pub mod config;
pub mod error;
pub mod new_token;
mod schedule_check;
mod upload_quota;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use sha2::Digest;

use self::auth::{Authenticator, BadTokenConfig};
use self::compile_gate::CompileGate;
use self::config::JobsConfig;
use self::error::ApiError;
use self::upload_quota::UploadQuota;
use crate::jobs::limits::{LimitTooHigh, MaxLimits};
use crate::jobs::output::{OutputExecutor, Outputs};
use crate::jobs::schedule::{
    relative, Clock, ScheduleConfig, ScheduleError, ScheduleStore, Schedules, SystemClock, Ticker,
};
use crate::jobs::scheduler::Manifest;
use crate::jobs::scheduler::{
    CacheRetention, ClusterSlot, ComponentCache, JobStore, Priority, Scheduler, SchedulerConfig,
    SchedulerError, StoreError, WasmExecutor,
};
use crate::jobs::sources::Sources;
use crate::jobs::{ColumnCache, CompiledJob, JobError, Limits, Runtime, RuntimeConfig};
use crate::metrics::Registry;
use crate::storage::{
    datadir, filter, DataDir, LocalSource, PartitionSource, Schema, StorageError,
};

/// Why the job service could not start (a bad config fails `serve` before it binds).
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// A token entry is malformed.
    #[error(transparent)]
    Token(#[from] BadTokenConfig),
    /// `jobs.default_limits` is not usable.
    #[error("jobs: {0}")]
    Config(String),
    /// The runtime or its cache could not be set up.
    #[error("jobs: {0}")]
    Runtime(#[from] JobError),
    /// `jobs/` could not be opened.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The stored queue could not be loaded.
    #[error(transparent)]
    Scheduler(#[from] SchedulerError),
    /// A directory in the data dir could not be opened.
    #[error("jobs: {0}")]
    DataDir(#[from] StorageError),
    /// The stored schedules could not be loaded.
    #[error("jobs: {0}")]
    Schedules(#[from] ScheduleError),
}

/// Per-token upload ledgers, under `jobs/` ([`UploadQuota`]).
const UPLOADS: &str = "uploads";

/// The job service: everything the `/api/v1` handlers need.
pub struct JobService {
    pub(crate) auth: Authenticator,
    pub(crate) scheduler: Scheduler,
    runtime: Arc<Runtime>,
    /// Retention of the compile cache; every use of a component touches it.
    cache: Arc<ComponentCache>,
    /// At most `max_concurrent_compiles` compiles at once.
    compiles: CompileGate,
    /// `jobs.upload_quota_bytes` per token.
    quota: UploadQuota,
    pub(crate) config: JobsConfig,
    /// The storage schema manifests' filters are resolved against.
    schema: Schema,
    /// The local storage and `[jobs.sources]`, for checking a manifest's `source`.
    sources: Arc<Sources>,
    /// Manifests refused for asking above `[jobs.max_limits]` (or `max_workers_per_job`), by limit.
    limit_rejections: Family<LimitLabel, Counter>,
    /// Jobs run on a schedule.
    pub(crate) schedules: Schedules,
    /// `[jobs.outputs]`.
    outputs: Arc<Outputs>,
    /// The thread ticking `schedules`, stopped by dropping its sender.
    ticker: Mutex<Option<Ticker>>,
    /// The jobs' column cache (`[jobs] column_cache`), for its metrics.
    column_cache: Option<Arc<ColumnCache>>,
    /// Where the coordinator attaches its cluster planner.
    cluster: ClusterSlot,
}

/// Label set `{limit="memory_bytes"}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LimitLabel {
    /// The limit a refused manifest asked too much of.
    pub limit: String,
}

/// A checked upload, ready to queue.
pub(crate) struct Accepted {
    pub manifest: Manifest,
    pub component_sha256: String,
}

impl JobService {
    /// Loads the tokens, opens the compile cache (`cache/`, shared with `job run`) and the queue
    /// (`jobs/`) in the data dir, applies the restart policy and starts the runner threads. Jobs
    /// read the partitions under `storage/`; their histogram layouts come from `histograms` (the
    /// definitions live conversion uses).
    pub fn start(
        config: &JobsConfig,
        data: &DataDir,
        schema: Schema,
        histograms: Arc<crate::histograms::RevisionCache>,
    ) -> Result<Arc<Self>, ServiceError> {
        Self::start_with_clock(config, data, schema, histograms, Arc::new(SystemClock))
    }

    /// [`start`](Self::start) with schedules running by `clock` (tests use a manual clock).
    pub fn start_with_clock(
        config: &JobsConfig,
        data: &DataDir,
        schema: Schema,
        histograms: Arc<crate::histograms::RevisionCache>,
        clock: Arc<dyn Clock>,
    ) -> Result<Arc<Self>, ServiceError> {
        let auth = Authenticator::new(&config.tokens)?;
        let jobs = data.sub(datadir::JOBS)?;
        let uploads = jobs
            .create_dir_all(UPLOADS)
            .and_then(|()| jobs.open_dir(UPLOADS))
            .map_err(|e| StorageError::io(format!("{}/{UPLOADS}", datadir::JOBS), e))?;
        let cache = data.sub(datadir::CACHE)?;
        let local: Arc<dyn PartitionSource> =
            Arc::new(LocalSource::new(data.sub(datadir::STORAGE)?));
        let sources = Arc::new(Sources::new(local, config.sources.clone()));
        let components = Arc::new(ComponentCache::new(
            data.sub(datadir::CACHE)?,
            CacheRetention {
                keep_unreferenced: config.cache_keep_unreferenced,
                max_unreferenced_bytes: config.cache_max_unreferenced_bytes,
                min_age: Duration::from_secs(config.cache_min_age_secs),
            },
        ));
        let runtime =
            Arc::new(Runtime::new(cache, RuntimeConfig::default())?.with_histograms(histograms));
        let column_cache = config
            .column_cache
            .then(|| ColumnCache::open(data, config.column_cache_bytes))
            .transpose()
            .unwrap_or_else(|e| {
                tracing::warn!(error = %e, "column cache off: it cannot be opened");
                None
            })
            .map(Arc::new);
        let outputs = Arc::new(Outputs::new(&config.outputs));
        let cluster = ClusterSlot::default();
        let executor = Arc::new(OutputExecutor::new(
            Arc::new(
                WasmExecutor::new(
                    runtime.clone(),
                    sources.clone(),
                    schema.clone(),
                    config.worker_ceiling(),
                )
                .with_column_cache(column_cache.clone())
                .with_cluster(cluster.clone()),
            ),
            outputs.clone(),
        ));
        let schedules = Schedules::open(
            ScheduleStore::open(&jobs)?,
            clock,
            ScheduleConfig {
                history_runs: config.schedule_history_runs,
                max_schedules: config.max_schedules,
            },
        )?;
        let scheduler = Scheduler::start_with_cache(
            JobStore::open(&jobs)?,
            executor,
            SchedulerConfig {
                max_concurrent_jobs: config.max_concurrent_jobs.max(1),
                max_queued_jobs: config.max_queued_jobs,
                job_nice: config.job_nice,
                job_sched_idle: config.job_sched_idle,
                result_retention: Duration::from_secs(config.result_retention_secs),
                retention_sweep: Duration::from_secs(config.retention_sweep_secs.max(1)),
            },
            Some(components.clone()),
        )?;
        config.validate().map_err(ServiceError::Config)?;
        let service = Arc::new(JobService {
            auth,
            scheduler,
            runtime,
            cache: components,
            compiles: CompileGate::new(
                config.compile_ceiling(),
                Duration::from_secs(config.compile_wait_secs),
            ),
            quota: UploadQuota::new(
                uploads,
                data.sub(datadir::CACHE)?,
                config.upload_quota_bytes,
            ),
            config: config.clone(),
            schema,
            sources,
            limit_rejections: Family::default(),
            schedules,
            outputs,
            ticker: Mutex::new(None),
            column_cache,
            cluster,
        });
        service.start_ticker(Duration::from_millis(config.schedule_tick_ms.max(1)));
        Ok(service)
    }

    /// Runs jobs across the cluster through `planner` from now on (set once; later calls are
    /// ignored).
    pub fn attach_cluster(&self, planner: Arc<crate::jobs::distributed::planner::Planner>) {
        let _ = self.cluster.set(planner);
    }

    /// Starts the thread that ticks the schedules every `every` (the first tick at once, so a run
    /// missed while the server was down starts now); it holds the service weakly.
    fn start_ticker(self: &Arc<Self>, every: Duration) {
        let service = Arc::downgrade(self);
        let started = Ticker::start(every, move || match service.upgrade() {
            Some(service) => {
                service.schedules.tick(&service.scheduler);
                true
            }
            None => false,
        });
        match started {
            Ok(ticker) => *self.ticker.lock().unwrap_or_else(|p| p.into_inner()) = Some(ticker),
            Err(error) => {
                tracing::error!(%error, "cannot start the schedule thread; schedules will not run")
            }
        }
    }

    /// Registers the job service's metrics (`telemetry_jobs_limit_rejections_total{limit}`,
    /// `telemetry_jobs_cache_deleted_components_total`,
    /// `telemetry_jobs_cache_artifact_refusals_total`, and the column cache's
    /// `telemetry_jobs_column_cache_*`).
    pub fn register_metrics(&self, metrics: &Registry) {
        metrics.register(
            "jobs_cache_deleted_components",
            "Compiled components deleted from the cache by its retention rule",
            self.cache.deleted.clone(),
        );
        metrics.register(
            "jobs_cache_artifact_refusals",
            "Compiled artifacts refused because their MAC did not verify (tampered, swapped or unsealed); each was recompiled",
            self.runtime.artifact_refusals().clone(),
        );
        metrics.register(
            "jobs_compiles_waiting",
            "Component compiles waiting for their turn (jobs.max_concurrent_compiles)",
            self.compiles.waiting.clone(),
        );
        metrics.register(
            "jobs_compile_refusals",
            "Uploads refused (503) after waiting jobs.compile_wait_secs for a compile slot",
            self.compiles.refused.clone(),
        );
        metrics.register(
            "jobs_upload_quota_refusals",
            "Uploads refused (413) for taking their token above jobs.upload_quota_bytes",
            self.quota.refusals.clone(),
        );
        let s = &self.schedules.metrics;
        for (name, help, counter) in [
            (
                "jobs_schedule_runs_started",
                "Scheduled runs started",
                &s.runs_started,
            ),
            (
                "jobs_schedule_runs_failed",
                "Scheduled runs that did not succeed (or could not be queued)",
                &s.runs_failed,
            ),
            (
                "jobs_schedule_runs_expired",
                "Scheduled runs dropped from a history by jobs.schedule_history_runs",
                &s.runs_expired,
            ),
            (
                "jobs_outputs_written",
                "Job results written to a [jobs.outputs] bucket and confirmed",
                &self.outputs.written,
            ),
            (
                "jobs_outputs_failed",
                "Job results that could not be written to their output (each failed its job)",
                &self.outputs.failed,
            ),
        ] {
            metrics.register(name, help, counter.clone());
        }
        metrics.register(
            "jobs_limit_rejections",
            "Job manifests refused for asking above a server maximum, by limit",
            self.limit_rejections.clone(),
        );
        if let Some(cache) = &self.column_cache {
            crate::jobs::column_cache::metrics::register(cache, metrics);
        }
    }

    /// Stops the runners (running jobs go back to the queue); call on server shutdown from a
    /// blocking context.
    pub fn shutdown(&self) {
        if let Some(mut ticker) = self.ticker.lock().unwrap_or_else(|p| p.into_inner()).take() {
            ticker.stop();
        }
        self.scheduler.shutdown();
    }

    /// Validates and compiles a component on a low-priority thread (Cranelift on a big guest
    /// takes seconds of CPU; it must not stall the async runtime or ingest), once its turn comes
    /// ([`CompileGate`]).
    /// The component is first charged to `owner`'s upload quota.
    pub(crate) async fn compile(&self, owner: &str, wasm: Bytes) -> Result<CompiledJob, ApiError> {
        let code = classify(&wasm);
        let sha256 = hex::encode(sha2::Sha256::digest(&wasm));
        self.quota.charge(owner, &sha256, wasm.len() as u64)?;
        let permit = self.compiles.enter().await?;
        let runtime = self.runtime.clone();
        let cache = self.cache.clone();
        let (tx, rx) = tokio::sync::oneshot::channel();
        let priority = Priority {
            nice: self.config.job_nice,
            sched_idle: self.config.job_sched_idle,
        };
        crate::jobs::scheduler::spawn_low_priority("job-compile".into(), priority, move || {
            // Marked used before the cache is read, so its retention cannot delete it meanwhile.
            cache.touch(&sha256);
            let _ = tx.send(runtime.compile(&wasm));
            drop(permit);
        });
        match rx.await {
            Ok(Ok(compiled)) => Ok(compiled),
            Ok(Err(JobError::InvalidComponent { reason })) => Err(ApiError::bad(code, reason)),
            Ok(Err(other)) => Err(ApiError::Internal(format!(
                "compiling the component: {other}"
            ))),
            Err(_) => Err(ApiError::Internal("the compile thread died".into())),
        }
    }

    /// A component uploaded earlier, by hash (a 400 when it is unknown).
    pub(crate) async fn cached(&self, sha256: &str) -> Result<CompiledJob, ApiError> {
        let (runtime, cache) = (self.runtime.clone(), self.cache.clone());
        let sha = sha256.to_string();
        // Loading may recompile (an artifact refused or from another engine): take a turn.
        let permit = self.compiles.enter().await?;
        let loaded = tokio::task::spawn_blocking(move || {
            cache.touch(&sha);
            let loaded = runtime.load_cached(&sha);
            drop(permit);
            loaded
        })
        .await
        .map_err(|e| ApiError::Internal(format!("loading a cached component: {e}")))?;
        match loaded {
            Ok(compiled) => Ok(compiled),
            Err(JobError::NotCached { .. }) => Err(ApiError::bad(
                "unknown_component",
                format!("no component with sha256 {sha256} was uploaded; POST it to /api/v1/components first"),
            )),
            Err(JobError::InvalidComponent { reason }) => Err(ApiError::bad("wrong_world", reason)),
            Err(other) => Err(ApiError::Internal(format!("loading component {sha256}: {other}"))),
        }
    }

    /// Checks a manifest before it is queued: name, filter, limits and workers. Fills in the
    /// effective limits and worker count so the stored job says exactly how it will run. Limits
    /// or workers above the server's maximums are a 400 (`limit_too_high`) naming each one, the
    /// value asked and the maximum, counted by limit; they are never lowered silently.
    pub(crate) fn check_manifest(
        &self,
        mut manifest: Manifest,
        component_sha256: String,
    ) -> Result<Accepted, ApiError> {
        if manifest.name.trim().is_empty() || manifest.name.len() > 200 {
            return Err(ApiError::bad(
                "bad_manifest",
                "'name' must be 1 to 200 characters",
            ));
        }
        // Relative dates are checked by resolving them as if the job ran now.
        let dated = relative::resolve(manifest.filter.as_ref(), self.schedules.now())
            .map_err(|e| ApiError::bad("bad_filter", e.to_string()))?;
        filter::resolve(dated.as_ref(), &self.schema)
            .map_err(|e| ApiError::bad("bad_filter", e.to_string()))?;
        schedule_check::check(&manifest, &self.outputs, self.schedules.now())?;
        let source = self
            .sources
            .config(manifest.source.as_deref())
            .map_err(|e| ApiError::bad("unknown_source", e.to_string()))?;
        if manifest.allow_partial && !matches!(source, crate::jobs::sources::SourceConfig::Local) {
            return Err(ApiError::bad(
                "bad_manifest",
                "'allow_partial' is for a job over a local source (each cluster member's own storage); \
                 this job's source is shared (s3): the members left re-read a lost member's files, \
                 so the result is never partial",
            ));
        }
        if let Some(sample) = manifest.sample {
            crate::jobs::Sample::new(sample)
                .map_err(|e| ApiError::bad("bad_manifest", e.to_string()))?;
        }
        let limits = effective_limits(manifest.limits.as_ref(), &self.config.max_limits)?;
        let ceiling = self.config.worker_ceiling();
        let mut too_high = self.config.max_limits.check(&limits);
        if let Some(asked) = manifest.workers.filter(|&w| w > ceiling) {
            too_high.push(LimitTooHigh {
                limit: "workers",
                asked: asked as u64,
                max: ceiling as u64,
                config_key: "jobs.max_workers_per_job".into(),
            });
        }
        if !too_high.is_empty() {
            for over in &too_high {
                self.limit_rejections
                    .get_or_create(&LimitLabel {
                        limit: over.limit.to_string(),
                    })
                    .inc();
            }
            return Err(limit_error(&too_high));
        }
        manifest.limits =
            Some(serde_json::to_value(limits).map_err(|e| ApiError::Internal(e.to_string()))?);
        manifest.workers = Some(manifest.workers.unwrap_or(ceiling).max(1));
        Ok(Accepted {
            manifest,
            component_sha256,
        })
    }
}

/// The job's limits: the defaults (each lowered to its maximum) overlaid with the manifest's
/// fields (unknown fields are a 400). Not yet checked against the maximums.
fn effective_limits(
    requested: Option<&serde_json::Value>,
    max: &MaxLimits,
) -> Result<Limits, ApiError> {
    match requested {
        None => Ok(max.defaults()),
        Some(serde_json::Value::Object(fields)) => max
            .defaults()
            .overlay(fields.clone())
            .map_err(|e| ApiError::bad("bad_manifest", format!("'limits' is not valid: {e}"))),
        Some(_) => Err(ApiError::bad(
            "bad_manifest",
            "'limits' must be a JSON object of limit fields",
        )),
    }
}

/// The 400 for limits above the maximums: `limits.<name> = <asked> is above this server's maximum
/// of <max> (<config key>)`, one clause per limit.
fn limit_error(too_high: &[LimitTooHigh]) -> ApiError {
    let clauses: Vec<String> = too_high
        .iter()
        .map(|over| {
            let prefix = if over.limit == "workers" {
                ""
            } else {
                "limits."
            };
            format!("{prefix}{over}")
        })
        .collect();
    ApiError::bad(
        "limit_too_high",
        format!(
            "the job asks for more than this server allows: {}",
            clauses.join("; ")
        ),
    )
}

/// The 400 code for a component the runtime refused, from its header: not Wasm at all, a core
/// module instead of a component, or a component that does not implement the job world.
pub(crate) fn classify(wasm: &[u8]) -> &'static str {
    if wasm.len() < 8 || &wasm[..4] != b"\0asm" {
        "not_wasm"
    } else if wasm[4..8] == [1, 0, 0, 0] {
        "not_component"
    } else {
        "wrong_world"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejected_components_are_classified_by_header() {
        assert_eq!(classify(b"hello world"), "not_wasm");
        assert_eq!(classify(b"\0asm\x01\0\0\0"), "not_component");
        assert_eq!(classify(b"\0asm\x0d\0\x01\0"), "wrong_world");
    }

    #[test]
    fn limits_overlay_defaults_and_reject_typos() {
        let max = MaxLimits::default();
        let limits =
            effective_limits(Some(&serde_json::json!({"call_timeout_ms": 500})), &max).unwrap();
        assert_eq!(limits.call_timeout_ms, 500);
        assert_eq!(limits.memory_bytes, Limits::default().memory_bytes);
        let err = effective_limits(Some(&serde_json::json!({"memory": 1})), &max).unwrap_err();
        assert_eq!(err.code(), "bad_manifest");
        let err = effective_limits(Some(&serde_json::json!([1])), &max).unwrap_err();
        assert_eq!(err.code(), "bad_manifest");
    }

    #[test]
    fn defaults_are_lowered_to_a_smaller_maximum() {
        let max = MaxLimits(Limits {
            memory_bytes: 64 << 20,
            ..*MaxLimits::default()
        });
        let limits = effective_limits(None, &max).unwrap();
        assert_eq!(limits.memory_bytes, 64 << 20);
        assert!(max.check(&limits).is_empty());
    }
}
