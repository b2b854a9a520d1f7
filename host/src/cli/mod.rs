//! Command-line front end: one file per subcommand, each with its `Args` and `run`.

use clap::{Parser, Subcommand};
use telemetry_server::error_chain::distinct_chain;

mod convert;
mod export;
mod histograms;
mod job;
mod job_check;
mod job_client;
mod job_project;
mod log;
mod parquet;
mod serve;
mod storage;
mod token;
mod worker;

#[derive(Parser)]
#[command(
    name = "telemetry-server",
    version,
    about = "Firefox Telemetry ingest, storage and Wasm MapReduce"
)]
struct Cli {
    /// Log format on stderr: `text` (colours only when stderr is a terminal) or `json` (one
    /// object per line: timestamp, level, target, fields).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text, env = "TELEMETRY_LOG_FORMAT")]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum LogFormat {
    Text,
    Json,
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
    /// Look at stored documents: a sample, or the JSON pointers they contain.
    #[command(subcommand)]
    Storage(storage::Command),
    /// Job API tokens: make one with its config entry.
    #[command(subcommand)]
    Token(token::Command),
    /// Write stored documents' chosen JSON pointers as Parquet, one file per partition file.
    Parquet(parquet::Args),
    /// Join a coordinator (`serve`) as a cluster worker: register, heartbeat, serve `/status`.
    Worker(worker::Args),
}

pub fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    init_tracing(cli.log_format);
    let result = match cli.command {
        Command::Serve(args) => serve::run(args, cli.log_format),
        Command::Convert(args) => convert::run(args),
        Command::Job(cmd) => job::run(cmd),
        Command::Log(cmd) => log::run(cmd),
        Command::Histograms(cmd) => histograms::run(cmd),
        Command::Export(args) => export::run(args),
        Command::Storage(cmd) => storage::run(cmd),
        Command::Token(cmd) => token::run(cmd),
        Command::Parquet(args) => parquet::run(args),
        Command::Worker(args) => worker::run(args, cli.log_format),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {}", error_text(&err));
            std::process::ExitCode::FAILURE
        }
    }
}

/// An error and its causes on one line, each said once (see [`distinct_chain`]).
pub(crate) fn error_text(err: &anyhow::Error) -> String {
    distinct_chain(err.as_ref())
}

/// Logs go to stderr, one event per line; `RUST_LOG` picks the level (default `info`).
fn init_tracing(format: LogFormat) {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init(),
        LogFormat::Json => builder.json().with_ansi(false).try_init(),
    };
}
