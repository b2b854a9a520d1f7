//! `telemetry-server export`: one export pass (or `--loop`) of a data dir to S3, with a progress bar.
//!
//! Settings come from the `[s3]` section of `--config`, then the flags, then the AWS environment
//! variables for whatever is still unset (endpoint, region, credentials).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};

use telemetry_server::config::Config;
use telemetry_server::export::{ExportReport, Exporter, S3Config};
use telemetry_server::progress::ProgressCounter;

#[derive(clap::Args)]
pub struct Args {
    /// Data directory to export (`storage/` and, with --raw-logs, `raw/`); default: the config's `data_dir`.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Server configuration file; its `[s3]` section is the starting point.
    #[arg(long, env = "TELEMETRY_CONFIG")]
    config: Option<PathBuf>,
    /// S3 endpoint URL (e.g. http://127.0.0.1:3900); default AWS_ENDPOINT_URL, else AWS.
    #[arg(long)]
    endpoint: Option<String>,
    /// Signing region; default AWS_REGION, else us-east-1.
    #[arg(long)]
    region: Option<String>,
    /// Bucket for partition files (and raw logs).
    #[arg(long)]
    bucket: Option<String>,
    /// Key prefix for partition files.
    #[arg(long)]
    prefix: Option<String>,
    /// Also export finished raw logs (`raw/*.finished`).
    #[arg(long)]
    raw_logs: bool,
    /// Key prefix for raw logs.
    #[arg(long)]
    raw_prefix: Option<String>,
    /// Delete local copies once the upload is confirmed (not raw logs still awaiting conversion).
    #[arg(long)]
    delete_after_upload: bool,
    /// Multipart part size in MiB (at least 5).
    #[arg(long)]
    part_size_mib: Option<u64>,
    /// Files of at least this many MiB go up as multipart uploads.
    #[arg(long)]
    multipart_threshold_mib: Option<u64>,
    /// Files (and parts) uploaded at once.
    #[arg(long)]
    concurrency: Option<usize>,
    /// Keep exporting every `interval_secs` until Ctrl-C (then one last pass).
    #[arg(long = "loop")]
    continuous: bool,
}

impl Args {
    /// The S3 settings: config file section, overridden by flags, completed from the environment.
    fn s3_config(&self, file: Option<S3Config>) -> S3Config {
        let mut cfg = file.unwrap_or_default();
        let set = |dst: &mut String, src: &Option<String>| {
            if let Some(v) = src {
                dst.clone_from(v)
            }
        };
        if self.endpoint.is_some() {
            cfg.endpoint.clone_from(&self.endpoint);
        }
        set(&mut cfg.region, &self.region);
        set(&mut cfg.bucket, &self.bucket);
        set(&mut cfg.prefix, &self.prefix);
        set(&mut cfg.raw_prefix, &self.raw_prefix);
        cfg.raw_logs |= self.raw_logs;
        cfg.delete_after_upload |= self.delete_after_upload;
        if let Some(mib) = self.part_size_mib {
            cfg.part_size = mib * 1024 * 1024;
        }
        if let Some(mib) = self.multipart_threshold_mib {
            cfg.multipart_threshold = mib * 1024 * 1024;
        }
        if let Some(n) = self.concurrency {
            cfg.concurrency = n;
        }
        cfg.with_env_defaults()
    }
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let file = Config::load(args.config.as_deref()).context("loading the configuration")?;
    let data_dir = args.data_dir.clone().unwrap_or(file.data_dir.clone());
    let cfg = args.s3_config(file.s3);
    cfg.validate()?;
    let runtime = tokio::runtime::Runtime::new().context("starting the tokio runtime")?;
    runtime.block_on(async {
        let exporter = Exporter::new(cfg.clone(), &data_dir)?;
        if args.continuous {
            eprintln!(
                "exporting {} to s3://{}/{} every {} s (Ctrl-C stops)",
                data_dir.display(),
                cfg.bucket,
                cfg.prefix,
                cfg.interval_secs
            );
            exporter
                .run_forever(async {
                    let _ = tokio::signal::ctrl_c().await;
                })
                .await;
            return Ok(ExitCode::SUCCESS);
        }
        let report = export_pass(&exporter, true).await?;
        print_report(&report, &cfg);
        Ok(if report.failed.is_empty() {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        })
    })
}

/// One export pass, with a progress bar on stderr when `show_progress`. Shared with
/// `convert --export`.
pub async fn export_pass(exporter: &Exporter, show_progress: bool) -> anyhow::Result<ExportReport> {
    let counter = Arc::new(ProgressCounter::default());
    let bar = show_progress.then(|| {
        ProgressBar::new(0).with_style(
            ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
            )
            .expect("valid template"),
        )
    });
    // The exporter only counts; the bar is drawn from its counters ten times a second.
    let drawer = bar.clone().map(|bar| {
        let counter = counter.clone();
        tokio::spawn(async move {
            loop {
                bar.set_length(counter.total());
                bar.set_position(counter.done());
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        })
    });
    let report = exporter.run_once(&counter).await;
    if let Some(drawer) = drawer {
        drawer.abort();
    }
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    Ok(report?)
}

/// The pass in one line on stdout, each failed file on stderr.
pub fn print_report(report: &ExportReport, cfg: &S3Config) {
    println!(
        "exported {} of {} files ({:.1} MB) to s3://{}/{} in {:.2} s: {:.1} MB/s; {} already there; {} deleted locally; {} failed",
        report.uploaded,
        report.files,
        report.bytes_uploaded as f64 / 1e6,
        cfg.bucket,
        cfg.prefix,
        report.elapsed.as_secs_f64(),
        report.mb_per_sec(),
        report.already_there,
        report.deleted,
        report.failed.len(),
    );
    for (path, error) in &report.failed {
        eprintln!("failed: {path}: {error}");
    }
}
