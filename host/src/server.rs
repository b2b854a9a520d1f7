//! Running the server: start-up, serving, and the drain on shutdown.
//!
//! [`Server::bind`] opens the data directory, repairs raw logs a crash left unfinished, moves stale
//! `.partial` storage files aside (`storage::stale`), starts the log
//! writers and the live conversion, and binds the listener (port 0 picks a free port; tests read
//! [`Server::local_addr`]). [`Server::run`] serves until the shutdown future resolves, then drains:
//! stop accepting, let in-flight requests finish (up to `shutdown_grace_secs`), write and sync what is
//! queued, finish every open log, stop the conversion pool after its current log.
//!
//! Connections are accepted by [`crate::api::listener::serve`] (connection cap, header/idle/body
//! deadlines); [`crate::storage::retention`] sweeps old files out of `errors/`, `raw/converted/`,
//! `raw/failed/` and `histograms/` in the background while the server runs.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;

use crate::api::metrics::Metrics;
use crate::api::{router, AppState};
use crate::config::Config;
use crate::convert::live::{ConvertPool, ConverterFactory, LogConverter, PipelineConverter};
use crate::convert::{ConvertOptions, Converter, DEFAULT_SCHEMA};
use crate::histograms::RevisionCache;
use crate::ingest::recover::recover_active_logs;
use crate::ingest::stats_log::StatsLog;
use crate::ingest::WriterPool;
use crate::rawlog::logname::OnFinished;
use crate::storage::{datadir, DataDir, Schema, WriterOptions};

/// Errors starting or running the server.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The data directory cannot be created or opened.
    #[error("cannot open data directory: {0}")]
    DataDir(#[from] crate::storage::StorageError),
    /// Raw logs a crash left active cannot be repaired.
    #[error("cannot recover raw logs: {0}")]
    Recover(std::io::Error),
    /// The raw log writers cannot start.
    #[error("cannot start log writers: {0}")]
    Writers(std::io::Error),
    /// `server.stats_log` cannot be opened.
    #[error("cannot open stats log {path}: {source}")]
    StatsLog {
        /// The configured path.
        path: String,
        /// Why it cannot be opened.
        source: std::io::Error,
    },
    /// The histogram definitions (`convert.histogram_dirs`, server) cannot be loaded.
    #[error("cannot load histogram definitions: {0}")]
    Histograms(#[from] crate::convert::SourceError),
    /// `server.listen` cannot be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The configured address.
        addr: SocketAddr,
        /// Why binding failed.
        source: std::io::Error,
    },
    /// The schema, the dimension policy or the live conversion pool is not usable.
    #[error("cannot start live conversion: {0}")]
    Convert(String),
    /// Serving failed.
    #[error("server failed: {0}")]
    Serve(std::io::Error),
    /// `[jobs]` is not usable, or the job service's state cannot be loaded.
    #[error("cannot start the job service: {0}")]
    Jobs(#[from] crate::api::jobs::ServiceError),
    /// The cluster planner cannot start.
    #[error("{0}")]
    Cluster(#[from] crate::jobs::distributed::planner::PlannerError),
    /// `[s3]` is not usable, or the exporter cannot start.
    #[error("cannot start the S3 exporter: {0}")]
    Export(#[from] crate::s3::S3Error),
}

/// A started server, bound but not yet serving.
pub struct Server {
    listener: TcpListener,
    state: Arc<AppState>,
    live: Option<ConvertPool>,
    /// The continuous S3 exporter (`[s3]` configured), started by `run`.
    export: Option<crate::export::Exporter>,
}

impl Server {
    /// Prepares everything and binds the listener.
    pub async fn bind(config: Config) -> Result<Server, ServerError> {
        // Checks that need no side effect come first: a bad `[s3]` section or schema fails here,
        // before the data directory is created, logs are recovered or any thread starts.
        let s3 = config
            .s3
            .clone()
            .map(crate::s3::S3Config::with_env_defaults);
        if let Some(s3) = &s3 {
            s3.validate()?;
        }
        storage_schema(&config)?;
        config
            .dimension_policy()
            .map_err(|e| ServerError::Convert(e.to_string()))?;
        let data_dir = DataDir::open(&config.data_dir)?;
        let raw = data_dir.sub(datadir::RAW)?;
        let recovered =
            recover_active_logs(&raw, &config.ingest.log_base).map_err(ServerError::Recover)?;
        if !recovered.is_empty() {
            let cut: u64 = recovered.iter().map(|r| r.cut_bytes).sum();
            tracing::info!(
                logs = recovered.len(),
                cut_bytes = cut,
                "recovered raw logs left by a previous run"
            );
        }
        let metrics = Metrics::new();
        crate::metrics::register_process_metrics(&metrics.registry);
        crate::convert::error_limits::set_limits(&config.errors, config.retention.errors_max_bytes);
        // Before any writer of this process exists: `.partial` files nobody writes are left by a crash.
        let stale = crate::storage::recover_stale_partials(&data_dir).unwrap_or_else(|error| {
            tracing::error!(%error, "cannot check storage for stale .partial files");
            Default::default()
        });
        let stale_files = prometheus_client::metrics::counter::Counter::<u64>::default();
        stale_files.inc_by(stale.moved.len() as u64);
        metrics.register(
            "storage_stale_partials",
            "Stale .partial storage files moved to errors/stale-partials/ at start-up",
            stale_files,
        );
        let revisions = Arc::new(
            config
                .convert
                .definition_sources()
                .revision_cache(&data_dir)?,
        );
        let data_dir = Arc::new(data_dir);
        let live = if config.convert.enabled {
            Some(start_live_conversion(
                &config, &data_dir, &raw, &revisions, &metrics,
            )?)
        } else {
            None
        };
        let on_finished: OnFinished = match &live {
            Some(pool) => pool.notifier(),
            None => Arc::new(|_name: &str| {}),
        };
        let writer = WriterPool::start(&raw, &config.ingest, metrics.ingest.clone(), on_finished)
            .map_err(ServerError::Writers)?;
        let stats_log = match &config.server.stats_log {
            None => None,
            Some(path) => Some(
                StatsLog::open(path).map_err(|source| ServerError::StatsLog {
                    path: path.display().to_string(),
                    source,
                })?,
            ),
        };
        let jobs = crate::api::jobs::JobService::start(
            &config.jobs,
            &data_dir,
            storage_schema(&config)?,
            revisions.clone(),
        )?;
        jobs.register_metrics(&metrics.registry);
        let export = s3
            .map(|s3| crate::export::Exporter::new(s3, &config.data_dir))
            .transpose()?;
        if let Some(export) = &export {
            export.progress().register(&metrics.registry);
        }
        if let Some(pool) = &live {
            let age = pool.backlog_age_probe();
            let gauge = metrics.convert.backlog_age_seconds.clone();
            metrics.on_scrape(move || {
                gauge.set(age().min(i64::MAX as u64) as i64);
            });
        }
        let submissions =
            crate::api::submission_metrics::SubmissionMetrics::register(&config.metrics, &metrics);
        let listen = config.server.listen;
        let listener = TcpListener::bind(listen)
            .await
            .map_err(|source| ServerError::Bind {
                addr: listen,
                source,
            })?;
        let cluster = crate::api::cluster::Coordinator::new(&config.cluster);
        cluster.register_metrics(&metrics.registry);
        if config.cluster.distribute {
            jobs.attach_cluster(cluster.planner(&metrics.registry)?);
        }
        let state = Arc::new(AppState {
            config: Arc::new(config),
            data_dir,
            metrics,
            writer: Arc::new(writer),
            stats_log,
            revisions,
            jobs,
            submissions,
            cluster,
        });
        Ok(Server {
            listener,
            state,
            live,
            export,
        })
    }

    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// The shared state (tests read metrics from it; services add their parts before `run`).
    pub fn state(&self) -> &Arc<AppState> {
        &self.state
    }

    /// Serves until `shutdown` resolves, then drains (see the module doc).
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServerError> {
        let Server {
            listener,
            state,
            live,
            export,
        } = self;
        let export = export.map(crate::export::ExportTask::start);
        tracing::info!(addr = %listener.local_addr().map_err(ServerError::Serve)?, "serving");
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            shutdown.await;
            let _ = stop_tx.send(true);
        });
        let app = router(state.clone());
        let limits = crate::api::listener::ConnectionLimits::from_config(&state.config.server);
        crate::api::listener::check_fd_limit(limits.max_connections);
        let sweeper = crate::storage::retention::Sweeper::start(
            state.data_dir.clone(),
            state.config.retention.clone(),
            state.metrics.retention.clone(),
            Arc::new(crate::convert::error_limits::set_total_bytes),
        );
        // Returns once `stop` turned true; connections still open were told to finish and close.
        let drain = crate::api::listener::serve(
            listener,
            app,
            limits,
            state.metrics.connections.clone(),
            stop_rx,
        )
        .await;
        tracing::info!("shutting down: draining in-flight requests");
        let grace = Duration::from_secs(state.config.server.shutdown_grace_secs);
        tokio::select! {
            () = drain.wait() => {}
            () = tokio::time::sleep(grace) => {
                tracing::warn!("shutdown grace period over; closing remaining connections");
                drain.force_close();
            }
        }
        sweeper.stop().await;
        let jobs = state.jobs.clone();
        let _ = tokio::task::spawn_blocking(move || jobs.shutdown()).await;
        let writer = state.writer.clone();
        let _ = tokio::task::spawn_blocking(move || {
            writer.close();
            tracing::info!("raw logs synced and finished");
            if let Some(live) = live {
                live.stop();
                tracing::info!("live conversion stopped");
            }
        })
        .await;
        if let Some(export) = export {
            export.stop().await; // one last pass exports what the drain finished
        }
        Ok(())
    }
}

/// Most threads of tokio's blocking pool (tokio's default is 512). Blocking tasks are file work
/// (the exporter's reads and digests, retention sweeps, job results) and job compiles; tokio
/// keeps a thread for every task that found no idle one, and short tasks arriving in bursts kept
/// threads alive: the 10-minute soak at 1,600 pings/s ended with ~190 of them. Above the bound
/// tasks wait in tokio's queue.
pub const MAX_BLOCKING_THREADS: usize = 32;

/// The tokio runtime of a long-running command (`serve`, `worker`): `worker_threads` async
/// threads (`None`: one per core) and at most [`MAX_BLOCKING_THREADS`] blocking ones.
pub fn runtime(worker_threads: Option<usize>) -> std::io::Result<tokio::runtime::Runtime> {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Some(threads) = worker_threads {
        builder.worker_threads(threads);
    }
    builder
        .max_blocking_threads(MAX_BLOCKING_THREADS)
        .enable_all()
        .build()
}

/// Binds and serves until `shutdown` resolves (the `serve` subcommand's entry point).
pub async fn run(
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    Server::bind(config).await?.run(shutdown).await
}

/// The storage schema (`convert.schema`, or the seed's production schema): what live conversion
/// lays partitions out by and what job filters are resolved against.
fn storage_schema(config: &Config) -> Result<Schema, ServerError> {
    match &config.convert.schema {
        Some(path) => Schema::load(path).map_err(|e| ServerError::Convert(e.to_string())),
        None => Schema::from_json(DEFAULT_SCHEMA).map_err(|e| ServerError::Convert(e.to_string())),
    }
}

fn start_live_conversion(
    config: &Config,
    data_dir: &Arc<DataDir>,
    raw: &cap_std::fs::Dir,
    revisions: &Arc<RevisionCache>,
    metrics: &Metrics,
) -> Result<ConvertPool, ServerError> {
    let schema = storage_schema(config)?;
    let policy = config
        .dimension_policy()
        .map_err(|e| ServerError::Convert(e.to_string()))?;
    let schema = schema.with_value_policy(policy);
    let options = ConvertOptions {
        unknown_revision: config.convert.unknown_revision,
    };
    let converter = Arc::new(
        Converter::new(schema, revisions.clone())
            .with_options(options)
            .with_body_limit(config.convert.max_uncompressed_bytes),
    );
    let threads = config.convert.threads();
    let writer_options = WriterOptions {
        codec: config.convert.codec,
        ..WriterOptions::default()
    };
    let data = data_dir.clone();
    let factory: ConverterFactory = {
        let next_worker = std::sync::atomic::AtomicUsize::new(0);
        Arc::new(move || {
            let worker = next_worker.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let converter = PipelineConverter::new(
                data.clone(),
                converter.clone(),
                writer_options.clone(),
                worker,
            )
            .with_threads(threads);
            Ok(Box::new(converter) as Box<dyn LogConverter>)
        })
    };
    let raw_path = data_dir.path().join(datadir::RAW);
    ConvertPool::start(
        raw,
        raw_path,
        &config.ingest.log_base,
        &config.convert,
        metrics.convert.clone(),
        factory,
    )
    .map_err(|e| ServerError::Convert(e.to_string()))
}
