//! `telemetry-server serve`: run the HTTP server until SIGTERM or Ctrl-C, then drain and exit 0.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use telemetry_server::config::{Config, Durability};

/// Flags override the config file; each has a `TELEMETRY_*` environment twin.
#[derive(clap::Args)]
pub struct Args {
    /// TOML configuration file (every key optional; see docs/configuration.md).
    #[arg(long, env = "TELEMETRY_CONFIG")]
    config: Option<PathBuf>,
    /// Address to listen on, e.g. 0.0.0.0:8080 (port 0 picks a free port).
    #[arg(long, env = "TELEMETRY_LISTEN")]
    listen: Option<SocketAddr>,
    /// Data directory (raw/, storage/, errors/ ...).
    #[arg(long, env = "TELEMETRY_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// When a 200 is sent relative to the disk: `always`, `batch` or `none`.
    #[arg(long, env = "TELEMETRY_DURABILITY")]
    durability: Option<Durability>,
    /// Writer shards (0 = one per CPU).
    #[arg(long, env = "TELEMETRY_SHARDS")]
    shards: Option<usize>,
    /// Rotate raw logs at this size in bytes.
    #[arg(long, env = "TELEMETRY_MAX_LOG_SIZE")]
    max_log_size: Option<u64>,
    /// Rotate raw logs this many ms after their first record.
    #[arg(long, env = "TELEMETRY_MAX_LOG_AGE_MS")]
    max_log_age_ms: Option<u64>,
    /// Turn live conversion of finished raw logs on or off.
    #[arg(long, env = "TELEMETRY_CONVERT")]
    convert: Option<bool>,
    /// Fetch Histograms.json of unknown revisions from this URL template (`{repo}`, `{rev}`;
    /// `hg` = hg.mozilla.org), caching them in DATA_DIR/histograms/.
    #[arg(long, env = "TELEMETRY_HISTOGRAM_SERVER", value_name = "URL_TEMPLATE")]
    histogram_server: Option<String>,
    /// Live conversion of pings whose Histograms.json revision is not available: `reject`
    /// (as missing_histograms), convert with the `nearest` definitions, or `keep` every valid ping.
    #[arg(long, env = "TELEMETRY_UNKNOWN_REVISION")]
    unknown_revision: Option<telemetry_server::convert::UnknownRevision>,
    /// Write the seed-format per-request stats log to this file.
    #[arg(long, env = "TELEMETRY_STATS_LOG")]
    stats_log: Option<PathBuf>,
    /// Print the effective configuration as TOML and exit.
    #[arg(long)]
    print_config: bool,
}

impl Args {
    fn into_config(self) -> anyhow::Result<(Config, bool)> {
        let mut config = Config::load(self.config.as_deref())?;
        if let Some(v) = self.listen {
            config.server.listen = v;
        }
        if let Some(v) = self.data_dir {
            config.data_dir = v;
        }
        if let Some(v) = self.durability {
            config.ingest.durability = v;
        }
        if let Some(v) = self.shards {
            config.ingest.shards = v;
        }
        if let Some(v) = self.max_log_size {
            config.ingest.max_log_size = v;
        }
        if let Some(v) = self.max_log_age_ms {
            config.ingest.max_log_age_ms = v;
        }
        if let Some(v) = self.convert {
            config.convert.enabled = v;
        }
        if let Some(v) = self.histogram_server {
            config.convert.histogram_server = Some(v);
        }
        if let Some(v) = self.unknown_revision {
            config.convert.unknown_revision = v;
        }
        if let Some(v) = self.stats_log {
            config.server.stats_log = Some(v);
        }
        config.validate()?;
        Ok((config, self.print_config))
    }
}

pub fn run(args: Args, log_format: super::LogFormat) -> anyhow::Result<ExitCode> {
    let (config, print_config) = args.into_config()?;
    if print_config {
        print!("{}", config.to_toml());
        return Ok(ExitCode::SUCCESS);
    }
    // Before any thread exists or any file is created: raw logs hold client IPs and full pings.
    telemetry_server::storage::file_mode::apply(config.server.umask, &config.data_dir)
        .with_context(|| format!("restricting permissions of {}", config.data_dir.display()))?;
    let runtime = telemetry_server::server::runtime(None).context("starting tokio")?;
    runtime.block_on(async {
        let server = telemetry_server::server::Server::bind(config).await?;
        // Scripts read this line to learn the port when listening on port 0: plain text, or an
        // event like every other line with `--log-format json`.
        match log_format {
            super::LogFormat::Text => eprintln!("listening on {}", server.local_addr()),
            super::LogFormat::Json => tracing::info!("listening on {}", server.local_addr()),
        }
        server.run(shutdown_signal()).await
    })?;
    Ok(ExitCode::SUCCESS)
}

/// Resolves on SIGTERM or SIGINT.
async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler");
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM received"),
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received"),
    }
}
