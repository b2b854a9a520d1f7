//! `telemetry-server worker`: joins a coordinator (`serve`) as a cluster member: listens on
//! `--listen` (its `/status`, `/metrics` and the coordinator's control routes), registers with a
//! `worker` token and heartbeats with its cores, worker threads and the files under its data
//! dir's `storage/`, and runs its process of the cluster attempts the coordinator starts.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::Context;
use telemetry_server::api::worker::{serve, WorkerState};
use telemetry_server::cluster::membership::MemberReport;
use telemetry_server::cluster::worker::Member;
use telemetry_server::jobs::distributed::member_runs::MemberRuns;
use telemetry_server::jobs::{Runtime, RuntimeConfig};
use telemetry_server::storage::{datadir, DataDir, LocalSource, PartitionSource, Schema};

#[derive(clap::Args)]
pub struct Args {
    /// The coordinator's URL (`http://host:port` of `telemetry-server serve`).
    #[arg(long, env = "TELEMETRY_COORDINATOR")]
    coordinator: String,
    /// A file holding a token with the `worker` role (`telemetry-server token new --role worker`).
    #[arg(long)]
    token_file: PathBuf,
    /// Where this worker listens; the address it registers, so the coordinator must reach it
    /// (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:8081")]
    listen: SocketAddr,
    /// The worker's data directory (its local partitions live in `storage/` under it).
    #[arg(long, default_value = "./data")]
    data_dir: PathBuf,
    /// Timely worker threads per job (default: one per core).
    #[arg(long, default_value_t = 0)]
    workers: usize,
}

pub fn run(args: Args, log_format: super::LogFormat) -> anyhow::Result<ExitCode> {
    let token = std::fs::read_to_string(&args.token_file)
        .with_context(|| format!("reading {}", args.token_file.display()))?;
    let token = token.trim();
    anyhow::ensure!(
        !token.is_empty(),
        "{} holds no token",
        args.token_file.display()
    );
    let data = DataDir::open(&args.data_dir)
        .with_context(|| format!("opening {}", args.data_dir.display()))?;
    let storage = Arc::new(LocalSource::new(data.sub(datadir::STORAGE)?));
    let everything = Schema::from_json(telemetry_server::convert::DEFAULT_SCHEMA)?
        .all_files()
        .context("the storage schema has no usable dimensions")?;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let workers = if args.workers == 0 {
        cores
    } else {
        args.workers
    };
    let member = Arc::new(Member::new(&args.coordinator, token)?);
    let jobs_runtime = Arc::new(
        Runtime::new(data.sub(datadir::CACHE)?, RuntimeConfig::default())
            .context("starting the Wasm runtime")?,
    );
    let runs = Arc::new(MemberRuns::new(
        jobs_runtime,
        everything.clone(),
        storage.clone(),
    ));

    let runtime = telemetry_server::server::runtime(Some(2)).context("starting tokio")?;
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind(args.listen))
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let address = listener.local_addr()?.to_string();
    match log_format {
        super::LogFormat::Text => eprintln!("listening on {address}"),
        super::LogFormat::Json => tracing::info!("listening on {address}"),
    }
    let report = {
        let address = address.clone();
        move || {
            let (data_files, data_bytes) = match storage.list(&everything) {
                Ok(files) => (files.len() as u64, files.iter().map(|f| f.size).sum()),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot list local storage");
                    (0, 0)
                }
            };
            MemberReport {
                address: address.clone(),
                cores,
                workers,
                data_files,
                data_bytes,
            }
        }
    };
    let state = Arc::new(WorkerState {
        member: member.clone(),
        coordinator: args.coordinator.clone(),
        address,
        registry: Default::default(),
        runs,
        mesh_host: args.listen.ip().to_string(),
        refused: Default::default(),
    });
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let server = runtime.spawn(serve(listener, state, stop_rx));
    let stop = Arc::new(AtomicBool::new(false));
    let heartbeats = {
        let stop = stop.clone();
        std::thread::spawn(move || member.run(&report, &stop))
    };
    // Until a signal, or until the membership loop ends (the coordinator refused the token).
    runtime.block_on(async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler");
        loop {
            tokio::select! {
                _ = term.recv() => break,
                _ = tokio::signal::ctrl_c() => break,
                () = tokio::time::sleep(std::time::Duration::from_millis(200)) => {
                    if heartbeats.is_finished() {
                        break;
                    }
                }
            }
        }
    });
    stop.store(true, Ordering::Relaxed);
    let _ = stop_tx.send(true);
    let _ = runtime.block_on(server);
    heartbeats
        .join()
        .map_err(|_| anyhow::anyhow!("the membership thread panicked"))?
        .context("leaving the cluster")?;
    Ok(ExitCode::SUCCESS)
}
