//! MapReduce jobs as sandboxed WebAssembly components: the runtime that validates, compiles and
//! caches them, and the executor that runs them over stored partitions on every core.
//!
//! - [`runtime`]: [`Runtime`] (wasmtime engine, pooling allocator, epoch ticker, compile cache),
//!   [`CompiledJob`].
//! - `guest`: one locked-down job instance and the `telemetry:job/host` and `histograms` imports
//!   (`layouts`: a record's histogram layouts); `wasi`: the WASI
//!   it sees (nothing granted, every wait cut by cancel and deadlines); `limiter`: its memory
//!   and table totals; `budget`: the job's host memory budget.
//! - [`extract`]: native JSON-pointer projection of the fields a job declares.
//! - [`inspect`]: the spec a job declares (`job check`); [`builtin_pings`]: `job check`'s
//!   input when it is given no data.
//! - [`column_cache`]: those fields kept as Arrow columns per partition file, for later runs.
//! - `executor`: the timely dataflow (read → map → combine → exchange → reduce → sorted output).
//! - [`sample`]: which records a sampled run reads (a stable hash of the document id).
//! - [`limits`], [`progress`], [`cost`], [`joblog`]: limits, live counters and cancellation, the
//!   cost report, the capped job log.
//! - [`scheduler`]: the persistent job queue; [`schedule`]: jobs run on a schedule with relative
//!   dates; [`output`]: results written to S3 (`[jobs.outputs]`); [`result_format`]: a result
//!   as text, CSV or NDJSON.
//! - [`sources`]: where a job reads (`[jobs.sources.NAME]`: local storage or S3).
//! - [`service`]: the job service behind the HTTP API (tokens, compile gate, upload quota).
//! - `error`: [`JobError`].
//! - [`project`]: job projects anywhere: `job new` writes one, `job build` compiles it.
//!
//! The guest contract is `wit/job.wit`; user documentation is in `docs/jobs/`.

pub mod artifact_seal;
mod bindings;
mod budget;
pub mod builtin_pings;
pub mod column_cache;
pub mod cost;
pub mod distributed;
mod error;
mod executor;
pub mod extract;
mod guest;
mod histogram_lengths;
pub mod inspect;
pub mod joblog;
mod layouts;
mod limiter;
pub mod limits;
pub mod output;
pub mod progress;
pub mod project;
pub mod result_format;
pub mod runtime;
pub mod sample;
pub mod schedule;
pub mod scheduler;
pub mod service;
pub mod sources;
mod wasi;

pub use column_cache::ColumnCache;
pub use cost::{ColumnCacheCost, CostReport, Phases};
pub use error::JobError;
pub use executor::{list, run, run_listed, run_on, Listing};
pub use limits::Limits;
pub use progress::{CancelToken, Progress};
pub use runtime::{CompiledJob, Runtime, RuntimeConfig};
pub use sample::{BadSample, Sample};

use crate::storage::{DataDir, LocalSource, PartitionSource, Schema};
use std::sync::Arc;

/// How to run a job.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Which partitions to read (telemetry_schema.json format, docs/formats/storage.md).
    pub filter: Schema,
    /// The job parameter passed to `init` (empty if none).
    pub param: String,
    /// Worker threads (0 = one per core).
    pub workers: usize,
    /// Resource limits.
    pub limits: Limits,
    /// Skip records the job traps on (or that are not valid JSON), counting them and keeping
    /// their ids, instead of failing the job.
    pub skip_bad_records: bool,
    /// Which records are read (all by default); the rest are skipped before parsing.
    pub sample: Sample,
    /// Run even when the filter selects no partition file (an empty output); otherwise that is
    /// [`JobError::NoInput`].
    pub allow_empty: bool,
    /// Read fields from (and add them to) this column cache; `None` reads only JSON.
    pub column_cache: Option<Arc<ColumnCache>>,
}

impl RunOptions {
    /// Options with default limits, one worker per core, no parameter.
    pub fn new(filter: Schema) -> Self {
        RunOptions {
            filter,
            param: String::new(),
            workers: 0,
            limits: Limits::default(),
            skip_bad_records: false,
            sample: Sample::ALL,
            allow_empty: false,
            column_cache: None,
        }
    }
}

/// What a finished job produced.
#[derive(Debug, Clone)]
pub struct JobOutput {
    /// Sorted `key<TAB>value` lines, each ending in a newline.
    pub output: Vec<u8>,
    /// What the run read, produced and spent.
    pub cost: CostReport,
    /// The job's log (guest `log` calls, stdout, stderr, skipped records).
    pub log: String,
}

/// The data a job reads, from a spec: a local data directory path (it must exist and have the
/// `storage/` subdirectory that holds the partitions; nothing is created), or `s3://bucket/prefix` (endpoint and credentials from the AWS
/// environment variables; see [`crate::s3::S3Source`]).
pub fn open_source(spec: &str) -> Result<Arc<dyn PartitionSource>, JobError> {
    if spec.starts_with("s3://") {
        let source =
            crate::s3::S3Source::from_url(spec).map_err(|e| JobError::Config(e.to_string()))?;
        return Ok(Arc::new(source));
    }
    let data = DataDir::open_existing(std::path::Path::new(spec))?;
    let storage = data.sub(crate::storage::datadir::STORAGE)?;
    Ok(Arc::new(LocalSource::new(storage)))
}
