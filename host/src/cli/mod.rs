//! Command-line front end: one file per subcommand, each with its `Args` and `run`.

use clap::{Parser, Subcommand};

mod convert;
mod export;
mod histograms;
mod job;
mod job_client;
mod log;
mod serve;

#[derive(Parser)]
#[command(name = "telemetry-server", version, about = "Firefox Telemetry ingest, storage and Wasm MapReduce")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP server: submission API, job service, metrics.
    Serve(serve::Args),
    /// Convert raw logs or `id<TAB>json` files into partitioned storage.
    Convert(convert::Args),
    /// Run, submit and manage MapReduce jobs.
    #[command(subcommand)]
    Job(job::Command),
    /// Inspect raw submission logs.
    #[command(subcommand)]
    Log(log::Command),
    /// Histogram definitions and bucket specs.
    #[command(subcommand)]
    Histograms(histograms::Command),
    /// Export finished partition files and raw logs to S3.
    Export(export::Args),
}

pub fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    init_tracing();
    let result = match cli.command {
        Command::Serve(args) => serve::run(args),
        Command::Convert(args) => convert::run(args),
        Command::Job(cmd) => job::run(cmd),
        Command::Log(cmd) => log::run(cmd),
        Command::Histograms(cmd) => histograms::run(cmd),
        Command::Export(args) => export::run(args),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Logs go to stderr; `RUST_LOG` picks the level (default `info`).
fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).try_init();
}
