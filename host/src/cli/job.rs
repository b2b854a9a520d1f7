//! `telemetry-server job …`: run a MapReduce job locally (`job run`, `--chart` draws its output).
//!
//! Exit codes of `job run`: 0 success; 1 the job or its set-up failed; 2 usage errors; 3 the
//! filter selected no partition file (`--allow-empty` makes that a success).

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use telemetry_server::chart;
use telemetry_server::cluster::handshake::MeshSecret;
use telemetry_server::cluster::Topology;
use telemetry_server::histograms::RevisionCache;
use telemetry_server::jobs::{
    self, CancelToken, ColumnCache, CostReport, JobError, Limits, Progress, RunOptions, Runtime,
    RuntimeConfig, Sample,
};
use telemetry_server::storage::{filter, DataDir, Schema};

#[derive(clap::Subcommand)]
pub enum Command {
    /// Run a job component over a data directory on this machine and print its output.
    Run(RunArgs),
    /// Create a job project (the job, its SDK and WIT, a README) that builds anywhere.
    New(super::job_project::NewArgs),
    /// Build a job project into a component (`target/NAME.wasm`), installing its pinned tools.
    Build(super::job_project::BuildArgs),
    /// Validate a job component, print its spec, run it on built-in pings (or --data-dir) and
    /// report the time per record and the output.
    Check(super::job_check::CheckArgs),
    #[command(flatten)]
    Client(super::job_client::Command),
}

#[derive(clap::Args)]
pub struct RunArgs {
    /// The job: a WebAssembly component for wit/job.wit's `mapreduce` world.
    job: PathBuf,
    /// Data directory (its `storage/` holds the partitions), or `s3://bucket/prefix`.
    #[arg(long, visible_alias = "data")]
    data_dir: String,
    #[command(flatten)]
    input: InputArgs,
    /// Succeed with an empty output when the filter selects no partition file (otherwise that
    /// is an error, exit code 3).
    #[arg(long)]
    allow_empty: bool,
    /// Job parameter passed to the job's `init`.
    #[arg(long, default_value = "")]
    param: String,
    /// Worker threads (default: one per core; in a cluster, per process).
    #[arg(long, default_value_t = 0)]
    workers: usize,
    /// Run as one process of a cluster: every process runs the same command with the same
    /// `--hosts` (host:port of each process, comma-separated) and its own `--process` index.
    /// Each reads the files assigned to its workers (so each needs the data: a shared
    /// directory or the same `s3://` source); process 0 prints the output.
    #[arg(long, value_delimiter = ',', requires = "process")]
    hosts: Vec<String>,
    /// This process's index in `--hosts`.
    #[arg(long, requires = "hosts")]
    process: Option<usize>,
    /// With --hosts: a file holding the run's secret (64 hex digits, the same file content in
    /// every process; `openssl rand -hex 32`). Every connection between the processes must prove
    /// it before any data flows. Without it the processes use a fixed, public secret: the mesh
    /// then refuses garbage but not a peer that speaks the handshake.
    #[arg(long, requires = "hosts")]
    secret_file: Option<PathBuf>,
    /// Write the output here instead of stdout.
    #[arg(long)]
    output: Option<PathBuf>,
    /// Print one JSON object (cost report, log, and the output unless --output) instead of text.
    #[arg(long)]
    json: bool,
    /// Resource limits as JSON (fields of `Limits`; missing ones keep their defaults).
    #[arg(long)]
    limits: Option<PathBuf>,
    /// Skip records the job fails on, listing them in the cost report, instead of failing.
    #[arg(long)]
    skip_bad_records: bool,
    /// Read only this fraction of the records (e.g. 0.01), chosen by a stable hash of the
    /// document id: the same records on every run.
    #[arg(long, value_parser = parse_sample)]
    sample: Option<Sample>,
    /// Where compiled components are cached (default: the data directory's `cache/`).
    #[arg(long)]
    cache_dir: Option<PathBuf>,
    /// Directories of Histograms.json files (as for `convert --histograms`) where a job's
    /// `histograms.layout` finds a record's definitions, before the data directory's fetched
    /// `histograms/` and the embedded ones. Repeatable.
    #[arg(long)]
    histograms: Vec<PathBuf>,
    /// Also draw the output as an SVG bar chart into this file (values must be numbers).
    #[arg(long)]
    chart: Option<PathBuf>,
    /// Read every partition file as JSON, neither using nor filling the column cache
    /// (`DATA_DIR/columns/`, or the user cache directory's for `s3://` data).
    #[arg(long)]
    no_column_cache: bool,
    /// Most bytes the column cache may take (default: a tenth of the free disk, at most 20 GiB).
    #[arg(long, default_value_t = 0)]
    column_cache_bytes: u64,
}

/// `--sample F`, checked when the command line is parsed.
pub(super) fn parse_sample(text: &str) -> Result<Sample, String> {
    let fraction: f64 = text.parse().map_err(|e| format!("{text}: {e}"))?;
    Sample::new(fraction).map_err(|e| e.to_string())
}

/// Which stored partitions a command reads: `--filter` resolved against `--schema` by name.
#[derive(clap::Args)]
pub struct InputArgs {
    /// Which partitions to read: a `telemetry_schema.json`-style filter, as a file or inline
    /// JSON. Dimensions are matched by `field_name` (any subset, any order; the others allow
    /// everything). Default: every partition.
    #[arg(long)]
    filter: Option<String>,
    /// The storage schema the data was converted with (the `--schema` given to `convert`;
    /// default: the seed's production schema).
    #[arg(long)]
    schema: Option<PathBuf>,
}

impl InputArgs {
    /// The filter, resolved against the storage schema.
    pub fn resolve(&self) -> anyhow::Result<Schema> {
        let schema = match &self.schema {
            Some(path) => Schema::load(path)
                .with_context(|| format!("cannot load schema {}", path.display()))?,
            None => Schema::from_json(telemetry_server::convert::DEFAULT_SCHEMA)
                .context("embedded schema")?,
        };
        let filter = self
            .filter
            .as_deref()
            .map(|f| super::job_client::read_json_arg(f, "--filter"))
            .transpose()?;
        filter::resolve(filter.as_ref(), &schema).context("--filter")
    }
}

/// Exit code of a run whose filter selected no partition file (without `--allow-empty`).
const EXIT_NO_INPUT: u8 = 3;

/// The compile cache of `job run` over `s3://` data: `$XDG_CACHE_HOME/telemetry-server` or
/// `~/.cache/telemetry-server`, created `0700` (never a predictable directory under the shared
/// temporary directory, where another user could plant artifacts).
pub(super) fn user_cache_dir() -> anyhow::Result<PathBuf> {
    use std::os::unix::fs::DirBuilderExt;
    let dir = telemetry_server::user_cache::dir()
        .context("neither XDG_CACHE_HOME nor HOME is set: pass --cache-dir")?;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)
        .with_context(|| format!("creating the compile cache {}", dir.display()))?;
    Ok(dir)
}

pub fn run(cmd: Command) -> anyhow::Result<ExitCode> {
    match cmd {
        Command::Run(args) => run_job(args),
        Command::New(args) => super::job_project::new(args),
        Command::Build(args) => super::job_project::build(args),
        Command::Check(args) => super::job_check::check(args),
        Command::Client(cmd) => super::job_client::run(cmd),
    }
}

/// Runs the job; a failure is printed here: the job log and the error on stderr, and with
/// `--json` one JSON object on stdout (`error`, `log`, `progress`) besides the error on stderr.
fn run_job(args: RunArgs) -> anyhow::Result<ExitCode> {
    let progress = Progress::default();
    let err = match execute(&args, &progress) {
        Ok(code) => return Ok(code),
        Err(err) => err,
    };
    let code = match err.downcast_ref::<JobError>() {
        Some(JobError::NoInput { .. }) => EXIT_NO_INPUT,
        _ => 1,
    };
    let log = progress.failure_log();
    let message = super::error_text(&err);
    if args.json {
        let (files_total, files_done, records, bytes) = progress.snapshot();
        let doc = serde_json::json!({
            "error": message,
            "log": log,
            "progress": {"files_total": files_total, "files_done": files_done,
                         "records": records, "bytes": bytes},
        });
        println!("{}", serde_json::to_string_pretty(&doc)?);
    } else if !log.is_empty() {
        eprint!("--- job log ---\n{log}");
    }
    // Also for --json: stdout is for programs, stderr for the person running the command.
    eprintln!("error: {message}");
    Ok(ExitCode::from(code))
}

/// The definitions `histograms.layout` looks records up in: `--histograms` directories, the local
/// data directory's fetched revisions, the embedded ones.
fn histograms(args: &RunArgs) -> anyhow::Result<Arc<RevisionCache>> {
    let fetched = std::path::Path::new(&args.data_dir).join("histograms");
    let local = (!args.data_dir.contains("://") && fetched.is_dir()).then_some(fetched);
    let mut cache = RevisionCache::embedded();
    for dir in args.histograms.iter().cloned().chain(local) {
        cache = cache
            .with_dir(&dir)
            .with_context(|| format!("reading histogram definitions in {}", dir.display()))?;
    }
    Ok(Arc::new(cache))
}

fn execute(args: &RunArgs, progress: &Progress) -> anyhow::Result<ExitCode> {
    // The data first: a mistyped --data-dir must not create anything (the cache is inside it).
    let source = jobs::open_source(&args.data_dir)?;
    let wasm =
        std::fs::read(&args.job).with_context(|| format!("reading {}", args.job.display()))?;
    let filter = args.input.resolve()?;
    let limits: Limits = match &args.limits {
        Some(path) => serde_json::from_str(&std::fs::read_to_string(path)?)
            .with_context(|| format!("parsing limits {}", path.display()))?,
        None => Limits::default(),
    };
    let cache_dir = match &args.cache_dir {
        Some(dir) => DataDir::open(dir)?.sub("jobs-cache")?,
        None if !args.data_dir.contains("://") => {
            DataDir::open(std::path::Path::new(&args.data_dir))?
                .sub(telemetry_server::storage::datadir::CACHE)?
        }
        None => DataDir::open(&user_cache_dir()?)?.sub("jobs")?,
    };
    let runtime =
        Runtime::new(cache_dir, RuntimeConfig::default())?.with_histograms(histograms(args)?);
    let column_cache = if args.no_column_cache {
        None
    } else {
        let base = if args.data_dir.contains("://") {
            DataDir::open(&user_cache_dir()?)?
        } else {
            DataDir::open(std::path::Path::new(&args.data_dir))?
        };
        Some(std::sync::Arc::new(
            ColumnCache::open(&base, args.column_cache_bytes)
                .context("opening the column cache")?,
        ))
    };
    let compiled = runtime
        .compile(&wasm)
        .with_context(|| format!("loading {}", args.job.display()))?;
    let opts = RunOptions {
        filter,
        param: args.param.clone(),
        workers: if args.workers == 0 {
            jobs_default_workers()
        } else {
            args.workers
        },
        limits,
        skip_bad_records: args.skip_bad_records,
        sample: args.sample.unwrap_or_default(),
        allow_empty: args.allow_empty,
        column_cache,
    };
    let topology = match args.process {
        None => Topology::Local {
            workers: opts.workers,
        },
        Some(process) => {
            anyhow::ensure!(
                process < args.hosts.len(),
                "--process {process} is not an index into the {} --hosts",
                args.hosts.len()
            );
            Topology::Cluster {
                workers: opts.workers,
                process,
                addresses: args.hosts.clone(),
                secret: mesh_secret(args.secret_file.as_deref())?,
            }
        }
    };

    let cancel = CancelToken::new();
    let bar = progress_bar(args.json);
    let quiet = matches!(topology, Topology::Cluster { .. }).then(StdoutToStderr::start);
    let result = std::thread::scope(|s| {
        let job = s.spawn(|| {
            jobs::run_on(
                &topology, &runtime, &compiled, source, &opts, progress, &cancel,
            )
        });
        while !job.is_finished() {
            update_bar(&bar, progress);
            std::thread::sleep(Duration::from_millis(100));
        }
        update_bar(&bar, progress);
        job.join().expect("job thread panicked")
    });
    bar.finish_and_clear();
    drop(quiet);

    let out = result
        .map_err(anyhow::Error::new)
        .with_context(|| format!("job {} failed", args.job.display()))?;
    if let Some(path) = &args.output {
        std::fs::write(path, &out.output).with_context(|| format!("writing {}", path.display()))?;
    }
    if args.json {
        let mut doc =
            serde_json::json!({ "sha256": compiled.sha256(), "cost": out.cost, "log": out.log });
        if args.output.is_none() {
            doc["output"] = String::from_utf8_lossy(&out.output).into_owned().into();
        }
        println!("{}", serde_json::to_string_pretty(&doc)?);
    } else {
        if args.output.is_none() {
            std::io::stdout().write_all(&out.output)?;
        }
        if !out.log.is_empty() {
            eprint!("--- job log ---\n{}", out.log);
        }
        eprint!("{}", render_cost(&out.cost, compiled.sha256()));
    }
    // In a cluster only process 0 holds the output.
    if let Some(path) = args
        .chart
        .as_ref()
        .filter(|_| args.process.unwrap_or(0) == 0)
    {
        // After the output is out, so a result that cannot be charted still is not lost.
        let rows = chart::parse_rows(&out.output).context("the output cannot be charted")?;
        let title = args
            .job
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let svg = chart::bar_chart(&rows, &title, &chart::ChartOptions::default());
        super::job_client::write_chart(path, svg.as_bytes())?;
    }
    Ok(ExitCode::SUCCESS)
}

/// While alive, the process's stdout (fd 1) goes to stderr: timely prints its connection progress
/// with `println!` while a cluster forms, and stdout must hold only the job's output.
struct StdoutToStderr(Option<std::os::fd::OwnedFd>);

impl StdoutToStderr {
    fn start() -> StdoutToStderr {
        use std::os::fd::AsFd;
        let _ = std::io::stdout().flush();
        let saved = rustix::io::dup(std::io::stdout().as_fd()).ok();
        if saved.is_some() {
            let _ = rustix::stdio::dup2_stdout(std::io::stderr().as_fd());
        }
        StdoutToStderr(saved)
    }
}

impl Drop for StdoutToStderr {
    fn drop(&mut self) {
        let _ = std::io::stdout().flush();
        if let Some(saved) = self.0.take() {
            let _ = rustix::stdio::dup2_stdout(&saved);
        }
    }
}

fn jobs_default_workers() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

fn progress_bar(hidden: bool) -> ProgressBar {
    if hidden {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} files  {msg}",
        )
        .expect("valid template"),
    );
    bar
}

fn update_bar(bar: &ProgressBar, p: &Progress) {
    bar.set_length(p.files_total.load(Ordering::Relaxed));
    bar.set_position(p.files_done.load(Ordering::Relaxed));
    let (records, bytes) = (
        p.records.load(Ordering::Relaxed),
        p.bytes.load(Ordering::Relaxed),
    );
    bar.set_message(format!("{records} records, {:.1} MB", bytes as f64 / 1e6));
}

/// The cost report as aligned text.
fn render_cost(c: &CostReport, sha256: &str) -> String {
    let p = &c.phases;
    let mut s = String::from("--- cost ---\n");
    let mut row = |k: &str, v: String| s.push_str(&format!("{k:<22} {v}\n"));
    row(
        "job",
        format!(
            "{}… (compile {:.0} ms, cache {})",
            &sha256[..12],
            p.compile_ms,
            if c.compile_cache_hit { "hit" } else { "miss" }
        ),
    );
    row("workers", c.workers.to_string());
    row(
        "files",
        format!(
            "{} read of {} matched, {} pruned",
            c.files_read, c.files_matched, c.files_pruned
        ),
    );
    row(
        "records",
        format!("{} ({} bad, skipped)", c.records_read, c.bad_records),
    );
    row(
        "bytes",
        format!(
            "{:.1} MB JSON from {:.1} MB stored",
            c.bytes_read as f64 / 1e6,
            c.compressed_bytes_read as f64 / 1e6
        ),
    );
    row("throughput", format!("{:.0} MB/s", c.mb_per_s));
    let cc = &c.column_cache;
    if cc.enabled {
        row(
            "column cache",
            format!(
                "{} hits, {} misses, {} written; {:.1} MB of JSON from {:.1} MB of columns",
                cc.hits,
                cc.misses,
                cc.writes,
                cc.bytes_from_cache as f64 / 1e6,
                cc.cache_file_bytes as f64 / 1e6
            ),
        );
    }
    row(
        "emits",
        format!("{} ({:.1} MB)", c.emits, c.emit_bytes as f64 / 1e6),
    );
    row(
        "combine / reduce",
        format!("{} / {} calls", c.combine_calls, c.reduce_calls),
    );
    row(
        "output",
        format!("{} lines, {} bytes", c.output_lines, c.output_bytes),
    );
    row(
        "peak guest memory",
        format!(
            "{:.1} MiB ({} instances)",
            c.peak_guest_memory_bytes as f64 / (1 << 20) as f64,
            c.instances
        ),
    );
    let host = c.peak_host_memory_bytes as f64;
    row(
        "peak host memory",
        if host < (1 << 20) as f64 {
            format!("{:.1} KiB", host / 1024.0)
        } else {
            format!("{:.1} MiB", host / (1 << 20) as f64)
        },
    );
    row(
        "time",
        format!(
            "list {:.0} ms, map {:.0} ms, reduce {:.0} ms, total {:.0} ms",
            p.list_ms, p.map_ms, p.reduce_ms, p.total_ms
        ),
    );
    s
}

/// The mesh secret of `job run --hosts`: from `--secret-file`, else the fixed public one (with a
/// warning).
fn mesh_secret(file: Option<&std::path::Path>) -> anyhow::Result<MeshSecret> {
    match file {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read --secret-file {}", path.display()))?;
            MeshSecret::from_hex(&text).with_context(|| format!("--secret-file {}", path.display()))
        }
        None => {
            eprintln!(
                "warning: no --secret-file: the processes authenticate with a public secret (garbage is refused, a rogue peer is not)"
            );
            Ok(MeshSecret::from_hex(&"00".repeat(32))?)
        }
    }
}
