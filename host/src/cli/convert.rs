//! `telemetry-server convert`: raw logs, `id<TAB>json` files, single JSON documents or error
//! streams (`errors/*.ndjson`) into partitioned storage, rejected records into `errors/`, with a
//! progress bar and a summary. Records whose document id is already stored (within the dedup
//! window) are counted as duplicates and skipped, so converting the same inputs again is
//! idempotent.
//!
//! Exit codes: 0 all records stored, 1 finished but some records were rejected (see the error
//! file), 2 (via the error path) when an input or the data directory cannot be used.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use telemetry_server::config::{Config, ConvertConfig};
use telemetry_server::convert::{
    BadRecordKind, ConvertOptions, ConvertSummary, Converter, DedupIndex, InputFormat, Pipeline,
    UnknownRevision, DEFAULT_SCHEMA,
};
use telemetry_server::export::{ExportReport, Exporter};
use telemetry_server::s3::{RawLogObject, S3Config, S3Source};
use telemetry_server::storage::{Codec, DataDir, Schema, WriterOptions};

#[derive(clap::Args)]
#[command(
    after_help = "Exit codes: 0 every record stored; 1 some records rejected (kept in DATA_DIR/errors/); \
2 an input, the schema, the histogram directory or the data directory cannot be used.\n\
Docs: docs/convert.md"
)]
pub struct Args {
    /// Data directory: partitions go to `storage/`, rejected records to `errors/`.
    #[arg(long)]
    data_dir: PathBuf,
    /// Partition schema (telemetry_schema.json format). Default: the seed's production schema.
    #[arg(long)]
    schema: Option<PathBuf>,
    /// Directory of Histograms.json files (`<rev>.json[.*]` or `<repo>/<rev>/Histograms.json`,
    /// optional `revisions.json` table), searched before the embedded definitions.
    #[arg(long)]
    histograms: Option<PathBuf>,
    /// Fetch the Histograms.json of revisions found nowhere else from this URL template
    /// (`{repo}`, `{rev}`), caching them in DATA_DIR/histograms/; `hg` means
    /// https://hg.mozilla.org/{repo}/raw-file/{rev}/toolkit/components/telemetry/Histograms.json.
    #[arg(long, value_name = "URL_TEMPLATE")]
    histogram_server: Option<String>,
    /// Codec of new partition files: `zstd`, `zstd:LEVEL`, `xz` or `xz:PRESET`.
    #[arg(long, default_value = "zstd:3")]
    codec: Codec,
    /// Input format: `log`, `text`, `json` or `errors`; without it, guessed from the name and
    /// first bytes.
    #[arg(long)]
    format: Option<InputFormat>,
    /// Submission date (YYYYMMDD, UTC) for text and JSON inputs, which carry no receive time.
    /// Default: today. Raw-log records use their own timestamps.
    #[arg(long)]
    date: Option<String>,
    /// How strictly pings are checked: `keep` every valid ping (own definitions, else each
    /// histogram's own parameters, else the nearest definitions; histograms that do not
    /// validate are dropped and counted), `nearest` definitions only, or `reject` as the 2013
    /// converter did (missing definitions or one bad histogram rejects the ping).
    #[arg(long, default_value = "keep")]
    unknown_revision: UnknownRevision,
    /// Threads converting the records of each input (stored in input order, so the output is the
    /// same for any number). Default: one per CPU core.
    #[arg(long)]
    threads: Option<usize>,
    /// Largest size a gzip body may inflate to; larger ones are rejected as corrupted_data.
    #[arg(long, default_value_t = telemetry_server::rawlog::DEFAULT_BODY_LIMIT)]
    max_uncompressed_bytes: usize,
    /// Print the summary as one JSON object on stdout.
    #[arg(long)]
    json: bool,
    /// After converting, upload the data dir's partition files to S3 (one `export` pass) with the
    /// `[s3]` section of `--config`, completed from the AWS environment variables.
    #[arg(long)]
    export: bool,
    /// Server configuration file whose `[s3]` section `--export` uses.
    #[arg(long, env = "TELEMETRY_CONFIG", requires = "export")]
    config: Option<PathBuf>,
    /// De-duplicate by document id: records whose id was stored within this many days of
    /// submission dates (DATA_DIR/dedup/ids.redb, shared with `serve`) are skipped; 0 disables.
    #[arg(long, default_value_t = ConvertConfig::default().dedup_window_days)]
    dedup_window_days: u32,
    /// Raw logs (v0/v1/v2, e.g. raw/converted/*.finished), `id<TAB>json` text files (optionally
    /// .gz/.xz/.lzma/.zst), JSON files or error streams (errors/*.ndjson); a directory stands for
    /// the files directly in it.
    #[arg(required = true)]
    inputs: Vec<PathBuf>,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    // Fatal errors exit 2, so that 1 keeps meaning "finished, some records rejected".
    match convert(args) {
        Ok(code) => Ok(code),
        Err(err) => {
            eprintln!("error: {}", super::error_text(&err));
            Ok(ExitCode::from(2))
        }
    }
}

fn convert(args: Args) -> anyhow::Result<ExitCode> {
    // Checked before anything is written, so a bad `[s3]` section costs no conversion.
    let export = match args.export {
        true => Some(export_config(args.config.as_deref())?),
        false => None,
    };
    let schema = match &args.schema {
        Some(path) => {
            Schema::load(path).with_context(|| format!("cannot load schema {}", path.display()))?
        }
        None => Schema::from_json(DEFAULT_SCHEMA).context("embedded schema")?,
    };
    if let Some(dir) = &args.histograms {
        anyhow::ensure!(
            dir.is_dir(),
            "--histograms {} is not a directory",
            dir.display()
        );
    }
    let data = DataDir::open(&args.data_dir)
        .with_context(|| format!("cannot open data directory {}", args.data_dir.display()))?;
    let sources = ConvertConfig {
        histogram_dirs: args.histograms.iter().cloned().collect(),
        histogram_server: args.histogram_server.clone(),
        ..ConvertConfig::default()
    }
    .definition_sources();
    let revisions = sources.revision_cache(&data)?;
    let date = match args.date {
        Some(d) => {
            anyhow::ensure!(
                d.len() == 8 && d.bytes().all(|b| b.is_ascii_digit()),
                "--date must be YYYYMMDD, got {d}"
            );
            d
        }
        None => chrono::Utc::now().format("%Y%m%d").to_string(),
    };
    let options = ConvertOptions {
        unknown_revision: args.unknown_revision,
    };
    anyhow::ensure!(
        args.max_uncompressed_bytes > 0,
        "--max-uncompressed-bytes must be > 0"
    );
    let converter = Arc::new(
        Converter::new(schema, Arc::new(revisions))
            .with_options(options)
            .with_body_limit(args.max_uncompressed_bytes),
    );
    // A killed earlier run (or server) may have left `.partial` files; moved aside unless a
    // server or another convert is writing storage right now.
    // (What was moved is logged; a failure only means they are left for later.)
    if let Err(error) = telemetry_server::storage::recover_stale_partials(&data) {
        tracing::warn!(%error, "cannot check storage for stale .partial files");
    }
    let run_name = format!(
        "convert-{}-{}",
        chrono::Utc::now().format("%Y%m%dT%H%M%SZ"),
        std::process::id()
    );
    let options = WriterOptions {
        codec: args.codec,
        ..WriterOptions::default()
    };
    let threads = args
        .threads
        .unwrap_or_else(telemetry_server::convert::default_threads);
    let mut pipeline = Pipeline::new(&data, converter, options, &run_name)?.with_threads(threads);
    let dedup = match args.dedup_window_days {
        0 => None,
        days => Some(Arc::new(DedupIndex::open(&data, days)?)),
    };
    if let Some(index) = &dedup {
        pipeline = pipeline.with_dedup(index.clone());
    }
    let error_file = pipeline.error_file().to_owned();
    let inputs_as_given = expand_inputs(&args.inputs)?;

    // `s3://bucket/prefix/` inputs: the raw logs under that prefix, streamed.
    let mut inputs = Vec::new();
    for input in &inputs_as_given {
        match input.to_str().filter(|s| s.starts_with("s3://")) {
            Some(url) => {
                let source =
                    Arc::new(S3Source::from_url(url).with_context(|| format!("cannot use {url}"))?);
                let logs = source
                    .list_raw_logs()
                    .with_context(|| format!("cannot list raw logs under {url}"))?;
                inputs.extend(logs.into_iter().map(|log| Input::S3(source.clone(), log)));
            }
            None => inputs.push(Input::File(input.clone())),
        }
    }
    let total: u64 = inputs.iter().map(Input::size).sum();
    let bar = if args.json {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(total)
    };
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} ({bytes_per_sec}, {eta}) {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let mut summary = ConvertSummary::default();
    let mut done = 0u64;
    for input in &inputs {
        bar.set_message(input.name());
        let mut progress = |bytes: u64| bar.set_position(done + bytes);
        let one = match input {
            Input::S3(source, log) => {
                let version = telemetry_server::rawlog::version_from_file_name(&log.name);
                let reader =
                    std::io::BufReader::with_capacity(256 * 1024, source.open_raw_log(log));
                let reader = telemetry_server::rawlog::LogReader::new(reader, version);
                pipeline.convert_log_reader(reader, &source.url(&log.key), &mut progress)
            }
            Input::File(input) => {
                let format = match args.format {
                    Some(f) => f,
                    None => InputFormat::detect(input)?,
                };
                match format {
                    InputFormat::Log => pipeline.convert_log_with(input, &mut progress),
                    InputFormat::Text => pipeline.convert_text(input, &date, &mut progress),
                    InputFormat::Json => pipeline.convert_json_file(input, &date),
                    InputFormat::Errors => pipeline.convert_errors(input, &date, &mut progress),
                }
            }
        }
        .with_context(|| format!("converting {}", input.name()))?;
        done += input.size();
        bar.set_position(done);
        summary.merge(&one);
    }
    let files = pipeline.finish()?;
    bar.finish_and_clear();
    let exported = match &export {
        Some(cfg) => Some(export_storage(cfg, &args.data_dir, !args.json)?),
        None => None,
    };

    if args.json {
        let mut value = serde_json::to_value(&summary)?;
        value["partition_files"] = files.len().into();
        value["error_file"] = error_file.clone().into();
        if let Some(index) = &dedup {
            value["dedup_entries"] = index.entries().into();
        }
        if let Some(report) = &exported {
            value["export"] = serde_json::json!({
                "files": report.files,
                "uploaded": report.uploaded,
                "already_there": report.already_there,
                "failed": report.failed.len(),
            });
        }
        println!("{value}");
    } else {
        print_summary(&summary, files.len(), &error_file);
        if let (Some(report), Some(cfg)) = (&exported, &export) {
            super::export::print_report(report, cfg);
        }
    }
    if let Some(report) = &exported {
        anyhow::ensure!(
            report.failed.is_empty(),
            "{} of {} partition files could not be exported (the next `export` or `convert --export` retries them)",
            report.failed.len(),
            report.files
        );
    }
    Ok(if summary.bad_records == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// The `[s3]` section of the configuration file (if any), completed from the environment and
/// validated.
fn export_config(config: Option<&Path>) -> anyhow::Result<S3Config> {
    let file = Config::load(config).context("loading the configuration")?;
    let cfg = file.s3.unwrap_or_default().with_env_defaults();
    cfg.validate()
        .context("--export needs an [s3] section with a bucket")?;
    Ok(cfg)
}

/// One export pass of `data_dir` (partition files, as `telemetry-server export`).
fn export_storage(cfg: &S3Config, data_dir: &Path, progress: bool) -> anyhow::Result<ExportReport> {
    let runtime = tokio::runtime::Runtime::new().context("starting the tokio runtime")?;
    runtime.block_on(async {
        let exporter = Exporter::new(cfg.clone(), data_dir)?;
        super::export::export_pass(&exporter, progress).await
    })
}

/// The inputs with each directory replaced by the regular files directly in it, sorted (so
/// `DATA_DIR/errors` or `DATA_DIR/raw/converted` can be given as they are).
fn expand_inputs(inputs: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for input in inputs {
        if !input.is_dir() {
            out.push(input.clone());
            continue;
        }
        let mut files = Vec::new();
        for entry in
            std::fs::read_dir(input).with_context(|| format!("cannot list {}", input.display()))?
        {
            let entry = entry.with_context(|| format!("cannot list {}", input.display()))?;
            if entry.file_type().is_ok_and(|t| t.is_file()) {
                files.push(entry.path());
            }
        }
        files.sort();
        out.extend(files);
    }
    Ok(out)
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn print_summary(s: &ConvertSummary, files: usize, error_file: &str) {
    println!("records read      {:>12}", s.records_read);
    println!(
        "records written   {:>12}  ({files} partition files)",
        s.records_written
    );
    println!("bad records       {:>12}", s.bad_records);
    for kind in BadRecordKind::ALL {
        let n = s.bad(kind);
        if n > 0 {
            println!("  {:<22}{n:>10}", kind.as_str());
        }
    }
    println!("bytes read        {:>12}", s.bytes_read);
    println!("bytes uncompressed{:>12}", s.bytes_uncompressed);
    println!("bytes written     {:>12}", s.bytes_written);
    println!(
        "histograms        {:>12}  ({} unknown, dropped)",
        s.histograms_converted, s.unknown_histograms
    );
    if s.histograms_self_described + s.histograms_nearest > 0 {
        println!(
            "  laid out by     {:>12} own parameters, {} nearest definitions",
            s.histograms_self_described, s.histograms_nearest
        );
    }
    if s.histograms_dropped > 0 {
        println!(
            "histograms dropped{:>12}  (did not validate; the rest of each record kept)",
            s.histograms_dropped
        );
    }
    for (validation, n) in &s.records_by_validation {
        println!("records validated by {validation:<16}{n:>8}");
    }
    if s.skipped_bytes > 0 {
        println!("corrupt bytes skipped {:>8}", s.skipped_bytes);
    }
    if s.duplicate > 0 {
        println!(
            "duplicates        {:>12}  (ids already stored, skipped)",
            s.duplicate
        );
    }
    if s.bad_records > 0 {
        println!("rejected records kept in {error_file}");
    }
}

/// One input of a run: a local file, or a raw log under an `s3://` prefix.
enum Input {
    File(PathBuf),
    S3(Arc<S3Source>, RawLogObject),
}

impl Input {
    fn size(&self) -> u64 {
        match self {
            Input::File(path) => std::fs::metadata(path).map(|m| m.len()).unwrap_or(0),
            Input::S3(_, log) => log.size,
        }
    }

    fn name(&self) -> String {
        match self {
            Input::File(path) => file_name(path),
            Input::S3(_, log) => log.name.clone(),
        }
    }
}
