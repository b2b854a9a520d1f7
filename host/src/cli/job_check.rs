//! `telemetry-server job check JOB.wasm [--data-dir D]`: validates a job component, prints the
//! spec its `init` declares (fields, payload, combine, reduce), runs it — on the built-in
//! generated pings when no data directory is given — and reports the time per record and the
//! output. For trying a job (in any language) on a fresh clone, with no data.
//!
//! Exit codes: 0 the job loaded, declared its spec and ran; 1 it did not (the report says at
//! which step); 2 usage errors.

use anyhow::Context;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use telemetry_server::jobs::builtin_pings::BuiltinPings;
use telemetry_server::jobs::inspect::{declared_spec, DeclaredSpec};
use telemetry_server::jobs::{
    self, CancelToken, JobOutput, Limits, Progress, RunOptions, Runtime, RuntimeConfig,
};
use telemetry_server::storage::{DataDir, PartitionSource};

/// Output lines printed (the rest are counted).
const SHOWN_LINES: usize = 40;
/// The built-in pings are run once for the output and again this many times over for the time
/// per record: the difference of the two map phases over the difference of their records leaves
/// out the fixed cost of a run (instances, dataflow) that a dozen records would not spread.
const TIMING_REPEAT: usize = 20;

#[derive(clap::Args)]
pub struct CheckArgs {
    /// The job: a WebAssembly component for wit/job.wit's `mapreduce` world.
    job: PathBuf,
    /// Run on this data directory (or `s3://bucket/prefix`) instead of the built-in pings.
    #[arg(long, visible_alias = "data")]
    data_dir: Option<String>,
    #[command(flatten)]
    input: super::job::InputArgs,
    /// Job parameter passed to the job's `init`.
    #[arg(long, default_value = "")]
    param: String,
    /// Worker threads.
    #[arg(long, default_value_t = 2)]
    workers: usize,
    /// Where compiled components are cached (default: the data directory's `cache/`, else the
    /// user cache directory).
    #[arg(long)]
    cache_dir: Option<PathBuf>,
    /// Print one JSON object (component, spec, input, cost, output, log) instead of text.
    #[arg(long)]
    json: bool,
}

pub fn check(args: CheckArgs) -> anyhow::Result<ExitCode> {
    let wasm =
        std::fs::read(&args.job).with_context(|| format!("reading {}", args.job.display()))?;
    let builtin = match &args.data_dir {
        Some(_) => None,
        None => Some(BuiltinPings::load().context("loading the built-in pings")?),
    };
    let (source, input): (Arc<dyn PartitionSource>, String) = match (&args.data_dir, &builtin) {
        (Some(spec), _) => (jobs::open_source(spec)?, spec.clone()),
        (None, Some(pings)) => {
            let what = format!(
                "built-in: {} generated pings in {} partitions",
                pings.records(),
                pings.partitions()
            );
            (Arc::new(pings.repeated(1)), what)
        }
        (None, None) => unreachable!("built-in pings are loaded when no data is given"),
    };
    let cache_dir = match (&args.cache_dir, &args.data_dir) {
        (Some(dir), _) => DataDir::open(dir)?.sub("jobs-cache")?,
        (None, Some(d)) if !d.contains("://") => DataDir::open(std::path::Path::new(d))?
            .sub(telemetry_server::storage::datadir::CACHE)?,
        (None, _) => DataDir::open(&super::job::user_cache_dir()?)?.sub("jobs")?,
    };
    let runtime = Runtime::new(cache_dir, RuntimeConfig::default())?;
    let compiled = runtime
        .compile(&wasm)
        .with_context(|| format!("{} is not a valid job component", args.job.display()))?;
    let spec = declared_spec(&runtime, &compiled, &args.param, Limits::default())
        .with_context(|| format!("{}: init failed", args.job.display()))?;
    let opts = RunOptions {
        param: args.param.clone(),
        workers: args.workers.max(1),
        allow_empty: true,
        ..RunOptions::new(args.input.resolve()?)
    };
    let progress = Progress::default();
    let result = jobs::run(
        &runtime,
        &compiled,
        source,
        &opts,
        &progress,
        &CancelToken::new(),
    );
    let out = match result {
        Ok(out) => out,
        Err(err) => {
            let log = progress.failure_log();
            if !log.is_empty() {
                eprint!("--- job log ---\n{log}");
            }
            return Err(err).with_context(|| format!("{}: running it failed", args.job.display()));
        }
    };
    let per_record_us = match &builtin {
        None => map_us_per_record(&out),
        Some(pings) => {
            let many = jobs::run(
                &runtime,
                &compiled,
                Arc::new(pings.repeated(TIMING_REPEAT)),
                &opts,
                &Progress::default(),
                &CancelToken::new(),
            )
            .with_context(|| format!("{}: the timing run failed", args.job.display()))?;
            marginal_us(&out, &many)
        }
    };
    if args.json {
        let doc = serde_json::json!({
            "component": {"path": args.job, "bytes": wasm.len(), "sha256": compiled.sha256(),
                          "compile_ms": compiled.compile_time().as_secs_f64() * 1e3},
            "spec": spec,
            "input": input,
            "per_record_us": per_record_us,
            "cost": out.cost,
            "output": String::from_utf8_lossy(&out.output),
            "log": out.log,
        });
        println!("{}", serde_json::to_string_pretty(&doc)?);
    } else {
        print!(
            "{}",
            report(
                &args.job,
                wasm.len(),
                &compiled,
                &spec,
                &input,
                &out,
                per_record_us
            )
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Map-phase time per record, µs (map, extraction and local combine; `None` without records).
fn map_us_per_record(out: &JobOutput) -> Option<f64> {
    let records = out.cost.records_read - out.cost.records_sampled_out;
    (records > 0).then(|| out.cost.phases.map_ms * 1e3 / records as f64)
}

/// Time per record from two runs of the same input, once and many times over: the extra map
/// time over the extra records (`None` if the longer run was not longer).
fn marginal_us(once: &JobOutput, many: &JobOutput) -> Option<f64> {
    let records = many.cost.records_read.checked_sub(once.cost.records_read)?;
    let ms = many.cost.phases.map_ms - once.cost.phases.map_ms;
    (records > 0 && ms > 0.0).then(|| ms * 1e3 / records as f64)
}

fn yes_no(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}

fn report(
    job: &std::path::Path,
    bytes: usize,
    compiled: &jobs::CompiledJob,
    spec: &DeclaredSpec,
    input: &str,
    out: &JobOutput,
    per_record_us: Option<f64>,
) -> String {
    let c = &out.cost;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "component: {} ({bytes} bytes, sha256 {})",
        job.display(),
        compiled.sha256()
    );
    let _ = writeln!(
        s,
        "valid: yes (compiled in {:.0} ms{})",
        compiled.compile_time().as_secs_f64() * 1e3,
        if compiled.cache_hit() {
            ", from the cache"
        } else {
            ""
        }
    );
    let _ = writeln!(s, "spec:");
    let _ = writeln!(s, "  fields: {}", spec.fields.len());
    for (i, field) in spec.fields.iter().enumerate() {
        let _ = writeln!(s, "    {i}: {field}");
    }
    let _ = writeln!(s, "  payload: {}", yes_no(spec.payload));
    let threshold = match spec.combine_threshold {
        0 => "host default".to_string(),
        n => n.to_string(),
    };
    let _ = writeln!(
        s,
        "  combine: {} (threshold: {threshold})",
        yes_no(spec.combine)
    );
    let reduce = if spec.reduce {
        "yes"
    } else {
        "no (map-only: one output line per emitted pair)"
    };
    let _ = writeln!(s, "  reduce: {reduce}");
    let _ = writeln!(s, "input: {input}");
    let _ = writeln!(
        s,
        "ran: {} records from {} files; {} emits, {} combine calls, {} reduce calls",
        c.records_read, c.files_read, c.emits, c.combine_calls, c.reduce_calls
    );
    let per_record = per_record_us.map_or("-".to_string(), |us| format!("{us:.1} µs"));
    let _ = writeln!(
        s,
        "time: {per_record} per record (map phase); this run: map {:.1} ms, reduce {:.1} ms, total {:.1} ms",
        c.phases.map_ms, c.phases.reduce_ms, c.phases.total_ms
    );
    if !out.log.is_empty() {
        let _ = write!(s, "--- job log ---\n{}", out.log);
    }
    let text = String::from_utf8_lossy(&out.output);
    let lines = text.lines().count();
    let _ = writeln!(s, "--- output: {lines} lines ---");
    for line in text.lines().take(SHOWN_LINES) {
        let _ = writeln!(s, "{line}");
    }
    if lines > SHOWN_LINES {
        let _ = writeln!(
            s,
            "… {} more lines (job run prints them all)",
            lines - SHOWN_LINES
        );
    }
    s
}
