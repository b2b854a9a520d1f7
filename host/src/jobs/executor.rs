//! The MapReduce executor on timely dataflow. Every worker reads its share of the partition
//! files (assigned by size), decompresses them, extracts the job's fields, maps records in
//! batches and combines locally; pairs are exchanged by key hash; each worker groups and reduces
//! its keys once all input is read; output lines go to worker 0, which sorts them.
//!
//! ```text
//! files ─▶ [driver: read → extract → map-batch → local combine] ─▶ input
//!   input ─exchange(hash key)─▶ Reduce (combine at N values, reduce at end) ─exchange(0)─▶ Collect
//! ```
//!
//! The dataflow only uses `worker.index()`/`peers()` and serialisable data, so the same code runs
//! on a [`Topology::Cluster`](crate::cluster::Topology) of processes. A guest failure never panics
//! a worker: it is recorded, the other workers are told to stop, and the dataflow drains.
//!
//! Every buffer that grows with what the guest produces is charged to the job's host budget
//! ([`super::budget`]): pairs waiting for local combining or for reduce, combine and reduce
//! results, and output lines (released when handed on or consumed). A reducer also checks the
//! output size as it produces lines, so a job fails at its `output_bytes` limit before, not
//! after, it has built all of its output.

use super::bindings::{DataRecord, Field, JobSpec};
use super::budget::{line_cost, pair_cost};
use super::column_cache::{Cached, ColumnCache, FileKey, Pending};
use super::cost::{ColumnCacheCost, CostReport, Phases};
use super::extract::Projection;
use super::guest::{Failure, Guest, LayoutKeys, Linked, Shared};
use super::{CancelToken, CompiledJob, JobError, JobOutput, Progress, RunOptions, Runtime, Sample};
use crate::cluster::Topology;
use crate::storage::{read_line, split_line, PartitionFile, PartitionSource};
use std::cell::RefCell;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::vec::Input;
use timely::dataflow::operators::{Operator, Probe};
use timely::dataflow::{InputHandleVec as InputHandle, ProbeHandle};

/// Records per `map-batch` call (fewer if the batch reaches [`BATCH_BYTES`] first).
const BATCH_RECORDS: usize = 256;
/// Stored bytes per `map-batch` call.
const BATCH_BYTES: usize = 4 << 20;
/// Values a key collects before `combine` when the job does not say.
const DEFAULT_COMBINE_THRESHOLD: usize = 50;
/// Distinct keys a worker holds for local combining before it sends them on.
const LOCAL_KEYS: usize = 100_000;
/// Bad record ids kept in the cost report.
const BAD_IDS_KEPT: usize = 1000;

/// Everything a worker needs, shared by all workers of the process.
struct Context {
    linked: Linked,
    shared: Arc<Shared>,
    source: Arc<dyn PartitionSource>,
    files: Vec<PartitionFile>,
    /// Which workers share `files`.
    split: Split,
    spec: JobSpec,
    /// Extracts the job's fields, then (for a job importing `histograms`) the pointers of the
    /// layout keys.
    projection: Projection,
    /// The job imports `histograms`: each record gets its layout keys
    /// ([`super::layouts::keys_field`]) after its fields, as one more column.
    layout_keys: bool,
    /// What the column cache stores and loads per record: the job's fields, then the layout keys.
    cache_columns: Vec<String>,
    param: String,
    skip_bad_records: bool,
    sample: Sample,
    /// The column cache, unless the run or the job (`wants-payload`) does without.
    column_cache: Option<Arc<ColumnCache>>,
    counters: Counters,
    bad_ids: Mutex<Vec<String>>,
}

#[derive(Default)]
struct Counters {
    files_done: AtomicU64,
    records: AtomicU64,
    bytes: AtomicU64,
    compressed: AtomicU64,
    bad: AtomicU64,
    /// Records left out by the sample.
    sampled_out: AtomicU64,
    combines: AtomicU64,
    reduces: AtomicU64,
    output_bytes: AtomicU64,
    /// Bytes of output lines made by this process's reducers (checked against `output_bytes`
    /// while they are made).
    reduced_bytes: AtomicU64,
    instances: AtomicU64,
    /// Partition files read from the column cache, and read as JSON while the cache was on.
    cache_hits: AtomicU64,
    cache_misses: AtomicU64,
    /// Partition files whose columns this run wrote.
    cache_writes: AtomicU64,
    /// `bytes` that came from the column cache, and the cache files' own size.
    bytes_from_cache: AtomicU64,
    cache_file_bytes: AtomicU64,
    /// Cache files found unreadable (and deleted) by this run.
    cache_bad_files: AtomicU64,
}

/// What one worker hands back.
struct WorkerResult {
    error: Option<JobError>,
    /// Output lines (worker 0 only).
    lines: Vec<String>,
    map_time: Duration,
    reduce_time: Duration,
}

/// Runs `job` over the files of `source` that pass `opts.filter`, with `opts.workers` threads
/// (0 = one per core).
pub fn run(
    runtime: &Runtime,
    job: &CompiledJob,
    source: Arc<dyn PartitionSource>,
    opts: &RunOptions,
    progress: &Progress,
    cancel: &CancelToken,
) -> Result<JobOutput, JobError> {
    let topology = match opts.workers {
        0 => Topology::local_default(),
        n => Topology::Local { workers: n },
    };
    run_on(&topology, runtime, job, source, opts, progress, cancel)
}

/// [`run`] on an explicit [`Topology`]. In a cluster every process calls this with the same job,
/// options and data; the output (and the output-related cost figures) are complete only in
/// process 0, which hosts worker 0; the other processes return empty output.
pub fn run_on(
    topology: &Topology,
    runtime: &Runtime,
    job: &CompiledJob,
    source: Arc<dyn PartitionSource>,
    opts: &RunOptions,
    progress: &Progress,
    cancel: &CancelToken,
) -> Result<JobOutput, JobError> {
    run_listed(topology, runtime, job, source, opts, None, progress, cancel)
}

/// How long a cancelled run may drain before its mesh connections are cut (see [`run_listed`]).
const CUT_AFTER: Duration = Duration::from_secs(2);

/// The partition files one run reads, listed (and pruned) once.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct Listing {
    /// The files that pass the filter, in listing order.
    pub files: Vec<PartitionFile>,
    /// Files the filter pruned.
    pub files_pruned: u64,
    /// How long listing took, in milliseconds.
    pub list_ms: f64,
    /// The files are this process's own (its local storage, in a cluster job over a `local`
    /// source): this process's workers split them among themselves, instead of every process
    /// splitting one shared listing over all the workers.
    #[serde(default)]
    pub own: bool,
}

/// Lists the files of `source` that pass `opts.filter` (and counts the pruned ones).
pub fn list(source: &dyn PartitionSource, opts: &RunOptions) -> Result<Listing, JobError> {
    let list_start = Instant::now();
    let files = source.list(&opts.filter)?;
    let files_pruned = match opts.filter.all_files() {
        Some(all) => (source.list(&all)?.len() as u64).saturating_sub(files.len() as u64),
        None => 0,
    };
    Ok(Listing {
        files,
        files_pruned,
        list_ms: ms(list_start.elapsed()),
        own: false,
    })
}

/// [`run_on`] over `listing` when given (a cluster member runs the coordinator's listing
/// instead of listing the source itself), else over a fresh [`list`].
#[allow(clippy::too_many_arguments)]
pub fn run_listed(
    topology: &Topology,
    runtime: &Runtime,
    job: &CompiledJob,
    source: Arc<dyn PartitionSource>,
    opts: &RunOptions,
    listing: Option<Listing>,
    progress: &Progress,
    cancel: &CancelToken,
) -> Result<JobOutput, JobError> {
    let shared = Arc::new(Shared::new(opts.limits.clone(), cancel.clone()));
    let keep_log = KeepLogOnFailure {
        shared: &shared,
        progress,
        succeeded: false,
    };
    let start = Instant::now();
    let linked = Linked::new(runtime, job)?;
    // A first instance checks the parameter and learns the job's spec before any data is read.
    let spec = Guest::new(&linked, &shared, 0, &opts.param)?.spec().clone();
    // A job importing `histograms` also gets, per record, the few small parts of the document
    // its layouts are derived from (never the whole document).
    let layout_keys = linked.uses_histograms();
    let mut pointers = spec.fields.clone();
    let mut cache_columns = spec.fields.clone();
    if layout_keys {
        pointers.extend(super::layouts::key_pointers());
        cache_columns.push(super::layouts::KEYS_COLUMN.to_string());
    }
    let projection = Projection::new(&pointers).map_err(|e| JobError::InvalidComponent {
        reason: format!("init declared a bad field: {e}"),
    })?;

    let Listing {
        files,
        files_pruned,
        list_ms,
        own,
    } = match listing {
        Some(listing) => listing,
        None => list(source.as_ref(), opts)?,
    };
    if files.is_empty() && !opts.allow_empty {
        return Err(JobError::NoInput {
            filter: crate::storage::filter::describe(&opts.filter),
            pruned: files_pruned,
        });
    }
    progress
        .files_total
        .store(files.len() as u64, Ordering::Relaxed);
    let split = Split::new(topology, own);
    if matches!(topology, Topology::Cluster { .. }) {
        source.will_read(&split.local_share(&files, topology));
    }

    // The cache holds fields only: a job that reads whole documents (its payload) reads the
    // stored JSON.
    let column_cache = opts.column_cache.clone().filter(|_| !spec.wants_payload);
    let ctx = Arc::new(Context {
        layout_keys,
        cache_columns,
        linked,
        shared: shared.clone(),
        source,
        files,
        split,
        spec,
        projection,
        param: opts.param.clone(),
        skip_bad_records: opts.skip_bad_records,
        sample: opts.sample,
        column_cache,
        counters: Counters {
            instances: AtomicU64::new(1),
            ..Counters::default()
        },
        bad_ids: Mutex::new(Vec::new()),
    });

    let (done_tx, done_rx) = mpsc::channel::<()>();
    let done_tx = Mutex::new(done_tx);
    let worker_ctx = ctx.clone();
    let (allocators, network) = topology.allocators().map_err(JobError::Engine)?;
    let mut mesh = network.cut;
    let guards = timely::execute::execute_from(
        allocators,
        network.guard,
        timely::WorkerConfig::default(),
        move |worker| {
            let result = worker_main(worker, &worker_ctx);
            let _ = done_tx.lock().map(|tx| tx.send(()));
            result
        },
    )
    .map_err(JobError::Engine)?;

    // Mirror the workers' counters into the caller's `Progress` until they finish. A cluster
    // run still going [`CUT_AFTER`] after a cancel waits for a peer that froze: cut its mesh.
    let mut finished = 0;
    let mut cancelled_at: Option<Instant> = None;
    while finished < topology.local_workers() {
        match done_rx.recv_timeout(Duration::from_millis(100)) {
            Ok(()) => finished += 1,
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
        copy_progress(&ctx.counters, progress);
        if cancel.is_cancelled() && !mesh.is_empty() {
            let since = *cancelled_at.get_or_insert_with(Instant::now);
            if since.elapsed() >= CUT_AFTER {
                tracing::warn!("a cancelled cluster run did not drain within {CUT_AFTER:?}: cutting its mesh connections");
                mesh.cut();
            }
        }
    }
    let mut results = Vec::new();
    for r in guards.join() {
        results.push(r.map_err(|e| JobError::Engine(format!("worker panicked: {e}")))?);
    }
    copy_progress(&ctx.counters, progress);

    // The first real error wins over the `Cancelled` the other workers saw because of it.
    let mut errors: Vec<JobError> = results.iter_mut().filter_map(|r| r.error.take()).collect();
    if !errors.is_empty() {
        let pos = errors
            .iter()
            .position(|e| !matches!(e, JobError::Cancelled))
            .unwrap_or(0);
        return Err(errors.swap_remove(pos));
    }
    let mut lines: Vec<String> = results
        .iter_mut()
        .flat_map(|r| std::mem::take(&mut r.lines))
        .collect();
    lines.sort_unstable();
    let output_len: usize = lines.iter().map(|l| l.len() + 1).sum();
    // The joined output exists beside the lines until they are dropped.
    shared.budget.charge(output_len as u64)?;
    let output_lines = lines.len() as u64;
    let mut output = Vec::with_capacity(output_len);
    for line in lines {
        output.extend_from_slice(line.as_bytes());
        output.push(b'\n');
    }

    let c = &ctx.counters;
    let map_time = results.iter().map(|r| r.map_time).max().unwrap_or_default();
    let reduce_time = results
        .iter()
        .map(|r| r.reduce_time)
        .max()
        .unwrap_or_default();
    let bytes_read = c.bytes.load(Ordering::Relaxed);
    let cost = CostReport {
        workers: topology.peers(),
        files_matched: ctx.files.len() as u64,
        files_pruned,
        files_read: c.files_done.load(Ordering::Relaxed),
        records_read: c.records.load(Ordering::Relaxed),
        bytes_read,
        compressed_bytes_read: c.compressed.load(Ordering::Relaxed),
        bad_records: c.bad.load(Ordering::Relaxed),
        sample: ctx.sample.fraction(),
        records_sampled_out: c.sampled_out.load(Ordering::Relaxed),
        bad_record_ids: ctx.bad_ids.lock().map(|v| v.clone()).unwrap_or_default(),
        emits: shared.emits.load(Ordering::Relaxed),
        emit_bytes: shared.emit_bytes.load(Ordering::Relaxed),
        combine_calls: c.combines.load(Ordering::Relaxed),
        reduce_calls: c.reduces.load(Ordering::Relaxed),
        output_lines,
        output_bytes: output.len() as u64,
        peak_guest_memory_bytes: shared.peak_memory.load(Ordering::Relaxed),
        peak_host_memory_bytes: shared.budget.peak(),
        instances: c.instances.load(Ordering::Relaxed),
        compile_cache_hit: job.cache_hit(),
        column_cache: ColumnCacheCost {
            enabled: ctx.column_cache.is_some(),
            hits: c.cache_hits.load(Ordering::Relaxed),
            misses: c.cache_misses.load(Ordering::Relaxed),
            writes: c.cache_writes.load(Ordering::Relaxed),
            bytes_from_cache: c.bytes_from_cache.load(Ordering::Relaxed),
            cache_file_bytes: c.cache_file_bytes.load(Ordering::Relaxed),
            bad_files: c.cache_bad_files.load(Ordering::Relaxed),
        },
        phases: Phases {
            compile_ms: ms(job.compile_time()),
            list_ms,
            map_ms: ms(map_time),
            reduce_ms: ms(reduce_time),
            total_ms: ms(start.elapsed() + job.compile_time()),
        },
        mb_per_s: if map_time.is_zero() {
            0.0
        } else {
            bytes_read as f64 / 1e6 / map_time.as_secs_f64()
        },
    };
    let log = shared.log.contents();
    keep_log.succeeded();
    Ok(JobOutput { output, cost, log })
}

/// Copies the job log into [`Progress::failure_log`] when dropped before [`Self::succeeded`]: a
/// failed run (any early return) still shows what the guest logged.
struct KeepLogOnFailure<'a> {
    shared: &'a Shared,
    progress: &'a Progress,
    succeeded: bool,
}

impl KeepLogOnFailure<'_> {
    fn succeeded(mut self) {
        self.succeeded = true;
    }
}

impl Drop for KeepLogOnFailure<'_> {
    fn drop(&mut self) {
        if !self.succeeded {
            if let Ok(mut log) = self.progress.failure_log.lock() {
                *log = self.shared.log.contents();
            }
        }
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn copy_progress(c: &Counters, p: &Progress) {
    p.files_done
        .store(c.files_done.load(Ordering::Relaxed), Ordering::Relaxed);
    p.records
        .store(c.records.load(Ordering::Relaxed), Ordering::Relaxed);
    p.bytes
        .store(c.bytes.load(Ordering::Relaxed), Ordering::Relaxed);
}

/// Greedy longest-processing-time assignment: biggest file first, each to the least-loaded
/// worker. Deterministic, so every process of a cluster computes the same split.
pub(crate) fn assign_by_size(files: &[PartitionFile], peers: usize) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..files.len()).collect();
    order.sort_by(|&a, &b| {
        files[b]
            .size
            .cmp(&files[a].size)
            .then_with(|| files[a].path.cmp(&files[b].path))
    });
    let mut load = vec![0u64; peers];
    let mut out = vec![Vec::new(); peers];
    for i in order {
        let w = (0..peers).min_by_key(|&w| (load[w], w)).unwrap_or(0);
        load[w] += files[i].size.max(1);
        out[w].push(i);
    }
    out
}

/// Which workers split a run's files by size: all of them (global worker indexes `0..peers`,
/// every process holding the same listing), or only this process's own (its own listing).
#[derive(Debug, Clone, Copy)]
struct Split {
    /// The global index of the first worker sharing the files.
    first: usize,
    /// How many workers share them.
    peers: usize,
}

impl Split {
    fn new(topology: &Topology, own: bool) -> Split {
        if own {
            Split {
                first: topology.local_worker_indexes().start,
                peers: topology.local_workers(),
            }
        } else {
            Split {
                first: 0,
                peers: topology.peers(),
            }
        }
    }

    /// The indexes (into `files`) that worker `index` (global) reads.
    fn share(&self, files: &[PartitionFile], index: usize) -> Vec<usize> {
        assign_by_size(files, self.peers)
            .into_iter()
            .nth(index - self.first)
            .unwrap_or_default()
    }

    /// The files this process's workers read (each worker's [`assign_by_size`] share), in list
    /// order.
    fn local_share(&self, files: &[PartitionFile], topology: &Topology) -> Vec<PartitionFile> {
        let shares = assign_by_size(files, self.peers);
        let mut mine: Vec<usize> = topology
            .local_worker_indexes()
            .filter_map(|w| shares.get(w - self.first))
            .flatten()
            .copied()
            .collect();
        mine.sort_unstable();
        mine.into_iter().map(|i| files[i].clone()).collect()
    }
}

/// Stable across processes (std's SipHash with fixed keys), so every process routes a key alike.
fn key_hash(key: &str) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    key.hash(&mut h);
    h.finish()
}

/// Escapes tab, newline and backslash so each output pair stays one `key<TAB>value` line.
pub(crate) fn escape(s: &str) -> std::borrow::Cow<'_, str> {
    if !s
        .bytes()
        .any(|b| matches!(b, b'\t' | b'\n' | b'\\' | b'\r'))
    {
        return s.into();
    }
    let mut out = String::with_capacity(s.len() + 8);
    for ch in s.chars() {
        match ch {
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\\' => out.push_str("\\\\"),
            c => out.push(c),
        }
    }
    out.into()
}

/// The worker's guest instance, made on first use and replaced after a trap.
struct Slot {
    guest: Option<Guest>,
    index: usize,
    ctx: Arc<Context>,
    peak: usize,
}

impl Slot {
    fn get(&mut self) -> Result<&mut Guest, JobError> {
        if self.guest.is_none() {
            self.ctx.counters.instances.fetch_add(1, Ordering::Relaxed);
            self.guest = Some(Guest::new(
                &self.ctx.linked,
                &self.ctx.shared,
                self.index,
                &self.ctx.param,
            )?);
        }
        Ok(self.guest.as_mut().expect("just created"))
    }
    fn reset(&mut self) {
        if let Some(g) = self.guest.take() {
            self.peak = self.peak.max(g.peak_memory());
        }
    }
    /// Replaces `values` (charged to the host budget) by their combination (charged instead).
    fn combine(&mut self, key: &str, values: &mut Vec<String>) -> Result<(), JobError> {
        values.sort_unstable();
        self.ctx.counters.combines.fetch_add(1, Ordering::Relaxed);
        match self.get()?.combine(key, values) {
            Ok(v) => {
                let budget = &self.ctx.shared.budget;
                budget.release(values_cost(key, values));
                values.clear();
                budget.charge(pair_cost(key, &v))?;
                values.push(v);
                Ok(())
            }
            Err(f) => {
                self.reset();
                Err(failure(f, None, format!("combine of key {key:?}")))
            }
        }
    }
}

/// Host bytes charged for `values` of `key`.
fn values_cost(key: &str, values: &[String]) -> u64 {
    values.iter().map(|v| pair_cost(key, v)).sum()
}

fn failure(f: Failure, record_id: Option<String>, what: String) -> JobError {
    match f {
        Failure::Job(e) => e,
        Failure::Guest(message) => JobError::Trap {
            record_id,
            message: format!("{what}: {message}"),
        },
    }
}

type Pair = (String, String);

fn worker_main(worker: &mut timely::worker::Worker, ctx: &Arc<Context>) -> WorkerResult {
    let index = worker.index();
    let slot = Rc::new(RefCell::new(Slot {
        guest: None,
        index,
        ctx: ctx.clone(),
        peak: 0,
    }));
    let error: Rc<RefCell<Option<JobError>>> = Rc::new(RefCell::new(None));
    let collected: Rc<RefCell<Vec<String>>> = Rc::new(RefCell::new(Vec::new()));
    let reduce_time = Rc::new(RefCell::new(Duration::ZERO));
    let mut input = InputHandle::<u64, Pair>::new();
    let probe = ProbeHandle::new();

    let has_combine = ctx.spec.has_combine;
    let threshold = combine_threshold(&ctx.spec);
    worker.dataflow::<u64, _, _>(|scope| {
        let (slot, error, reduce_time, ctx) = (
            slot.clone(),
            error.clone(),
            reduce_time.clone(),
            ctx.clone(),
        );
        let (collected, ctx2) = (collected.clone(), ctx.clone());
        scope
            .input_from(&mut input)
            .unary_frontier(
                Exchange::new(|(k, _): &Pair| key_hash(k)),
                "Reduce",
                move |cap, _info| {
                    let mut cap = Some(cap);
                    let mut groups: HashMap<String, Vec<String>> = HashMap::new();
                    move |(input, frontier), output| {
                        input.for_each(|_time, data| {
                            if error.borrow().is_some() {
                                data.clear();
                                return;
                            }
                            for (key, value) in data.drain(..) {
                                if let Err(e) = ctx.shared.budget.charge(pair_cost(&key, &value)) {
                                    fail(&error, &ctx, e.into());
                                    break;
                                }
                                let Some(values) = groups.get_mut(&key) else {
                                    groups.insert(key, vec![value]);
                                    continue;
                                };
                                values.push(value);
                                if has_combine && values.len() >= threshold {
                                    if let Err(e) = slot.borrow_mut().combine(&key, values) {
                                        fail(&error, &ctx, e);
                                    }
                                }
                            }
                        });
                        if frontier.is_empty() {
                            if let Some(cap) = cap.take() {
                                let start = Instant::now();
                                let lines = if error.borrow().is_some() {
                                    Vec::new()
                                } else {
                                    reduce_all(
                                        &mut slot.borrow_mut(),
                                        std::mem::take(&mut groups),
                                        &ctx,
                                    )
                                    .unwrap_or_else(|e| {
                                        fail(&error, &ctx, e);
                                        Vec::new()
                                    })
                                };
                                output.session(&cap).give_iterator(lines.into_iter());
                                *reduce_time.borrow_mut() = start.elapsed();
                            }
                        }
                    }
                },
            )
            .container::<Vec<String>>()
            .unary::<timely::container::CapacityContainerBuilder<Vec<()>>, _, _, _>(
                Exchange::new(|_: &String| 0),
                "Collect",
                move |_cap, _info| {
                    move |input, _output| {
                        input.for_each(|_time, data| {
                            let mut out = collected.borrow_mut();
                            let limit = ctx2.shared.limits.output_bytes;
                            for line in data.drain(..) {
                                if ctx2
                                    .counters
                                    .output_bytes
                                    .fetch_add(line.len() as u64 + 1, Ordering::Relaxed)
                                    > limit
                                {
                                    ctx2.shared.failed.store(true, Ordering::Relaxed);
                                    continue;
                                }
                                out.push(line);
                            }
                        });
                    }
                },
            )
            .probe_with(&probe);
    });

    let map_start = Instant::now();
    let map_result = drive_map(worker, ctx, &slot, &mut input, index);
    let map_time = map_start.elapsed();
    tracing::debug!(worker = index, ?map_time, "map phase done");
    if let Err(e) = map_result {
        fail(&error, ctx, e);
    }
    input.close();
    // Park between steps rather than spin while other workers finish their input.
    while worker.step_or_park(Some(Duration::from_millis(10))) {}

    let mut error = error.borrow_mut().take();
    if error.is_none()
        && ctx.counters.output_bytes.load(Ordering::Relaxed) > ctx.shared.limits.output_bytes
    {
        error = Some(JobError::LimitExceeded {
            what: format!(
                "output size ({})",
                super::limits::human_bytes(ctx.shared.limits.output_bytes)
            ),
        });
    }
    slot.borrow_mut().reset();
    let lines = std::mem::take(&mut *collected.borrow_mut());
    let reduce_time = *reduce_time.borrow();
    WorkerResult {
        error,
        lines,
        map_time,
        reduce_time,
    }
}

fn fail(slot: &Rc<RefCell<Option<JobError>>>, ctx: &Context, e: JobError) {
    ctx.shared.failed.store(true, Ordering::Relaxed);
    let mut s = slot.borrow_mut();
    if s.is_none() {
        *s = Some(e);
    }
}

fn combine_threshold(spec: &JobSpec) -> usize {
    match spec.combine_threshold {
        0 => DEFAULT_COMBINE_THRESHOLD,
        n => (n as usize).max(2),
    }
}

/// Reduces every key this worker owns, in key order, into escaped output lines. The values'
/// charge on the host budget is released as each key is done; each line is charged (and counted
/// against `output_bytes`) as it is made.
fn reduce_all(
    slot: &mut Slot,
    groups: HashMap<String, Vec<String>>,
    ctx: &Context,
) -> Result<Vec<String>, JobError> {
    let mut keys: Vec<(String, Vec<String>)> = groups.into_iter().collect();
    keys.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    let mut lines = Vec::new();
    for (key, mut values) in keys {
        let held = values_cost(&key, &values);
        values.sort_unstable();
        if !ctx.spec.has_reduce {
            for v in values {
                push_line(ctx, &mut lines, format!("{}\t{}", escape(&key), escape(&v)))?;
            }
            ctx.shared.budget.release(held);
            continue;
        }
        ctx.counters.reduces.fetch_add(1, Ordering::Relaxed);
        let result = slot.get()?.reduce(&key, &values);
        drop(values);
        ctx.shared.budget.release(held);
        match result {
            Ok(v) => push_line(ctx, &mut lines, format!("{}\t{}", escape(&key), escape(&v)))?,
            Err(f) => {
                slot.reset();
                return Err(failure(f, None, format!("reduce of key {key:?}")));
            }
        }
    }
    Ok(lines)
}

/// Adds an output line, charging it to the host budget and failing as soon as this process's
/// lines pass `output_bytes`.
fn push_line(ctx: &Context, lines: &mut Vec<String>, line: String) -> Result<(), JobError> {
    let limit = ctx.shared.limits.output_bytes;
    let len = line.len() as u64 + 1;
    if ctx.counters.reduced_bytes.fetch_add(len, Ordering::Relaxed) + len > limit {
        return Err(JobError::LimitExceeded {
            what: format!("output size ({})", super::limits::human_bytes(limit)),
        });
    }
    ctx.shared.budget.charge(line_cost(&line))?;
    lines.push(line);
    Ok(())
}

/// Reads this worker's files and maps them, feeding pairs into the dataflow.
fn drive_map(
    worker: &mut timely::worker::Worker,
    ctx: &Arc<Context>,
    slot: &Rc<RefCell<Slot>>,
    input: &mut InputHandle<u64, Pair>,
    index: usize,
) -> Result<(), JobError> {
    let mine = ctx.split.share(&ctx.files, index);
    let mut local = LocalCombiner::new(ctx);
    let mut batch = Batch::default();
    for i in mine {
        let file = &ctx.files[i];
        let mut mapper = FileMapper {
            worker: &mut *worker,
            ctx,
            slot,
            input: &mut *input,
            local: &mut local,
            batch: &mut batch,
            file,
        };
        match &ctx.column_cache {
            None => mapper.map_json(None)?,
            Some(cache) => {
                let key = FileKey::new(file, &ctx.source.version(file)?);
                match cache.load(&key, &ctx.cache_columns) {
                    Ok(cached) => mapper.map_cached(&cached)?,
                    Err(miss) => {
                        ctx.counters
                            .cache_bad_files
                            .fetch_add(miss.bad_files, Ordering::Relaxed);
                        mapper.map_json(Some((cache, &key)))?
                    }
                }
            }
        }
        ctx.counters.files_done.fetch_add(1, Ordering::Relaxed);
        worker.step();
    }
    local.flush(&mut slot.borrow_mut(), input)
}

/// Maps the records of one partition file, from its JSON or from the column cache.
struct FileMapper<'a> {
    worker: &'a mut timely::worker::Worker,
    ctx: &'a Context,
    slot: &'a Rc<RefCell<Slot>>,
    input: &'a mut InputHandle<u64, Pair>,
    local: &'a mut LocalCombiner,
    batch: &'a mut Batch,
    file: &'a PartitionFile,
}

impl FileMapper<'_> {
    /// Adds a record (its fields, then its layout keys if the job has them) to the batch,
    /// mapping the batch when it is full.
    fn push(&mut self, mut record: DataRecord, line_len: usize) -> Result<(), JobError> {
        if self.ctx.layout_keys {
            let keys = record.fields.pop().unwrap_or(Field::Missing);
            self.batch.layout_keys.push(keys);
        }
        self.batch.bytes += line_len;
        self.batch.records.push(record);
        if self.batch.records.len() >= BATCH_RECORDS || self.batch.bytes >= BATCH_BYTES {
            self.flush()?;
            self.worker.step();
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), JobError> {
        map_batch(
            self.ctx,
            self.slot,
            &self.file.dims,
            self.batch,
            self.local,
            self.input,
        )
    }

    /// Reads the file as stored; with `cache`, also builds its columns and stores them (only
    /// when every record was read: not for a sampled run, nor a file with a skipped bad line).
    fn map_json(&mut self, cache: Option<(&ColumnCache, &FileKey)>) -> Result<(), JobError> {
        let (ctx, file) = (self.ctx, self.file);
        if cache.is_some() {
            ctx.counters.cache_misses.fetch_add(1, Ordering::Relaxed);
        }
        let mut pending: Option<Pending> = cache
            .filter(|_| ctx.sample == Sample::ALL)
            .map(|(cache, _)| cache.pending(ctx.cache_columns.len()));
        let mut reader = ctx.source.open(file)?;
        let mut line = Vec::with_capacity(64 << 10);
        loop {
            let n = read_line(&mut reader, &file.path, &mut line)?;
            if n == 0 {
                break;
            }
            ctx.counters.records.fetch_add(1, Ordering::Relaxed);
            ctx.counters.bytes.fetch_add(n as u64, Ordering::Relaxed);
            if line.is_empty() {
                if let Some(p) = pending.as_mut() {
                    p.blank(n);
                }
                continue;
            }
            if !ctx.sample.keeps_line(&line) {
                ctx.counters.sampled_out.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            match parse_record(ctx, file, &line)? {
                Some(record) => {
                    if let Some(p) = pending.as_mut() {
                        p.record(&record.id, n, line.len(), &record.fields);
                    }
                    self.push(record, line.len())?;
                }
                None => {
                    if let Some(p) = pending.as_mut() {
                        p.give_up();
                    }
                }
            }
        }
        self.flush()?;
        ctx.counters
            .compressed
            .fetch_add(file.size, Ordering::Relaxed);
        if let (Some(pending), Some((cache, key))) = (pending, cache) {
            match cache.store(key, &ctx.cache_columns, pending) {
                Ok(0) => {}
                Ok(_) => {
                    ctx.counters.cache_writes.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => {
                    cache.stats.write_errors.inc();
                    tracing::warn!(file = %file.path, error = %e, "column cache not written");
                }
            }
        }
        Ok(())
    }

    /// Reads the file's records from the column cache: the same ids, fields, batches and
    /// counts as [`Self::map_json`], without decompressing or parsing.
    fn map_cached(&mut self, cached: &Cached) -> Result<(), JobError> {
        let c = &self.ctx.counters;
        c.cache_hits.fetch_add(1, Ordering::Relaxed);
        c.cache_file_bytes
            .fetch_add(cached.file_bytes, Ordering::Relaxed);
        let (blank_lines, blank_bytes) = cached.blank();
        c.records.fetch_add(blank_lines, Ordering::Relaxed);
        c.bytes.fetch_add(blank_bytes, Ordering::Relaxed);
        c.bytes_from_cache.fetch_add(blank_bytes, Ordering::Relaxed);
        for i in 0..cached.len() {
            let (raw_len, line_len) = cached.lens(i);
            let c = &self.ctx.counters;
            c.records.fetch_add(1, Ordering::Relaxed);
            c.bytes.fetch_add(raw_len as u64, Ordering::Relaxed);
            c.bytes_from_cache
                .fetch_add(raw_len as u64, Ordering::Relaxed);
            let id = cached.id(i);
            if !self.ctx.sample.keeps(id.as_bytes()) {
                c.sampled_out.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            let record = DataRecord {
                id: id.to_string(),
                fields: cached.fields(i),
                payload: String::new(),
            };
            self.push(record, line_len)?;
        }
        self.flush()
    }
}

#[derive(Default)]
struct Batch {
    records: Vec<DataRecord>,
    /// Each record's layout keys, only when the job imports `histograms`.
    layout_keys: Vec<Field>,
    bytes: usize,
}

/// One stored line as the guest will see it; `None` for a bad line that is being skipped.
fn parse_record(
    ctx: &Context,
    file: &PartitionFile,
    line: &[u8],
) -> Result<Option<DataRecord>, JobError> {
    let bad =
        |record_id: Option<String>, message: String| -> Result<Option<DataRecord>, JobError> {
            if ctx.skip_bad_records {
                note_bad(ctx, record_id.unwrap_or_else(|| format!("{}:?", file.path)));
                Ok(None)
            } else {
                Err(JobError::BadRecord {
                    file: file.path.clone(),
                    record_id,
                    message,
                })
            }
        };
    let Some((id, json)) = split_line(line) else {
        return bad(None, "line has no tab between document id and JSON".into());
    };
    let id = String::from_utf8_lossy(id).into_owned();
    let fields = if ctx.layout_keys {
        // The job's fields, the layout keys' fields and the histogram lengths, in one pass.
        match super::histogram_lengths::extract_with_lengths(&ctx.projection, json) {
            Ok((mut fields, lengths)) => {
                let pointed = fields.split_off(ctx.spec.fields.len());
                fields.push(super::layouts::keys_field(&pointed, lengths));
                fields
            }
            Err(e) => return bad(Some(id), format!("invalid JSON: {e}")),
        }
    } else if ctx.projection.is_empty() {
        Vec::new()
    } else {
        match ctx.projection.extract(json) {
            Ok(fields) => fields,
            Err(e) => return bad(Some(id), format!("invalid JSON: {e}")),
        }
    };
    let payload = if ctx.spec.wants_payload {
        match std::str::from_utf8(json) {
            Ok(s) => s.to_string(),
            Err(e) => return bad(Some(id), format!("invalid UTF-8: {e}")),
        }
    } else {
        String::new()
    };
    Ok(Some(DataRecord {
        id,
        fields,
        payload,
    }))
}

fn note_bad(ctx: &Context, id: String) {
    ctx.counters.bad.fetch_add(1, Ordering::Relaxed);
    if let Ok(mut ids) = ctx.bad_ids.lock() {
        if ids.len() < BAD_IDS_KEPT {
            ids.push(id);
        }
    }
}

/// Maps a batch. If the guest fails on it, maps its records one at a time in fresh instances to
/// find the record to blame, which fails the job or (with `skip_bad_records`) is skipped.
fn map_batch(
    ctx: &Context,
    slot: &Rc<RefCell<Slot>>,
    dims: &[String],
    batch: &mut Batch,
    local: &mut LocalCombiner,
    input: &mut InputHandle<u64, Pair>,
) -> Result<(), JobError> {
    if batch.records.is_empty() {
        return Ok(());
    }
    let records = std::mem::take(&mut batch.records);
    let layout_keys = LayoutKeys::new(std::mem::take(&mut batch.layout_keys));
    batch.bytes = 0;
    let mut slot = slot.borrow_mut();
    let first = slot.get()?.map_batch(dims, &records, layout_keys.clone());
    match first {
        Ok(pairs) => return local.add(pairs, &mut slot, input),
        Err(Failure::Job(e)) => return Err(e),
        Err(Failure::Guest(_)) => slot.reset(),
    }
    for (i, record) in records.into_iter().enumerate() {
        let one = layout_keys.one(i);
        let result = slot
            .get()?
            .map_batch(dims, std::slice::from_ref(&record), one);
        match result {
            Ok(pairs) => local.add(pairs, &mut slot, input)?,
            Err(Failure::Job(e)) => return Err(e),
            Err(Failure::Guest(message)) => {
                slot.reset();
                if !ctx.skip_bad_records {
                    return Err(JobError::Trap {
                        record_id: Some(record.id),
                        message,
                    });
                }
                ctx.shared
                    .log
                    .line(&format!("skipped record {}: {message}", record.id));
                note_bad(ctx, record.id);
            }
        }
    }
    Ok(())
}

/// Per-worker combining of mapped pairs before they are exchanged (only for jobs with
/// `combine`; other jobs' pairs go straight on).
struct LocalCombiner {
    enabled: bool,
    threshold: usize,
    groups: HashMap<String, Vec<String>>,
}

impl LocalCombiner {
    fn new(ctx: &Context) -> Self {
        LocalCombiner {
            enabled: ctx.spec.has_combine,
            threshold: combine_threshold(&ctx.spec),
            groups: HashMap::new(),
        }
    }

    /// Takes mapped pairs (charged to the host budget by the guest's `emit`): holds them for
    /// combining, or releases their charge as they are sent on.
    fn add(
        &mut self,
        pairs: Vec<Pair>,
        slot: &mut Slot,
        input: &mut InputHandle<u64, Pair>,
    ) -> Result<(), JobError> {
        if !self.enabled {
            for pair in pairs {
                slot.ctx.shared.budget.release(pair_cost(&pair.0, &pair.1));
                input.send(pair);
            }
            return Ok(());
        }
        for (key, value) in pairs {
            let Some(values) = self.groups.get_mut(&key) else {
                self.groups.insert(key, vec![value]);
                continue;
            };
            values.push(value);
            if values.len() >= self.threshold {
                slot.combine(&key, values)?;
            }
        }
        if self.groups.len() > LOCAL_KEYS {
            self.flush(slot, input)?;
        }
        Ok(())
    }

    /// Combines what each key holds and sends it on.
    fn flush(
        &mut self,
        slot: &mut Slot,
        input: &mut InputHandle<u64, Pair>,
    ) -> Result<(), JobError> {
        for (key, mut values) in self.groups.drain() {
            if values.len() > 1 {
                slot.combine(&key, &mut values)?;
            }
            for v in values {
                slot.ctx.shared.budget.release(pair_cost(&key, &v));
                input.send((key.clone(), v));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str, size: u64) -> PartitionFile {
        PartitionFile {
            path: path.into(),
            dims: vec![],
            size,
        }
    }

    #[test]
    fn files_are_balanced_by_size() {
        let files = vec![file("a", 100), file("b", 60), file("c", 50), file("d", 10)];
        let split = assign_by_size(&files, 2);
        let load = |w: &Vec<usize>| w.iter().map(|&i| files[i].size).sum::<u64>();
        // 100 → w0, 60 → w1, 50 → w1 (110), 10 → w0 (110): perfectly balanced.
        assert_eq!(split[0], vec![0, 3]);
        assert_eq!(split[1], vec![1, 2]);
        assert_eq!(load(&split[0]), load(&split[1]));
        assert_eq!(assign_by_size(&files, 1)[0].len(), 4);
    }

    #[test]
    fn a_cluster_process_reads_exactly_its_workers_shares() {
        let files = vec![file("a", 100), file("b", 60), file("c", 50), file("d", 10)];
        let secret = crate::cluster::handshake::MeshSecret::random().unwrap();
        let process = |p: usize| Topology::Cluster {
            workers: 1,
            process: p,
            addresses: vec!["a:1".into(), "b:1".into()],
            secret: secret.clone(),
        };
        let paths =
            |share: Vec<PartitionFile>| share.into_iter().map(|f| f.path).collect::<Vec<_>>();
        let shared = |t: &Topology| paths(Split::new(t, false).local_share(&files, t));
        assert_eq!(shared(&process(0)), vec!["a", "d"]);
        assert_eq!(shared(&process(1)), vec!["b", "c"]);
        assert_eq!(shared(&Topology::Local { workers: 2 }).len(), 4);
    }

    #[test]
    fn a_process_with_its_own_listing_splits_it_among_its_own_workers() {
        let files = vec![file("a", 100), file("b", 60), file("c", 50), file("d", 10)];
        let secret = crate::cluster::handshake::MeshSecret::random().unwrap();
        // Process 1 of 2, two workers each: global workers 2 and 3.
        let topology = Topology::Cluster {
            workers: 2,
            process: 1,
            addresses: vec!["a:1".into(), "b:1".into()],
            secret,
        };
        let split = Split::new(&topology, true);
        assert_eq!(split.local_share(&files, &topology).len(), 4);
        assert_eq!(split.share(&files, 2), vec![0, 3]);
        assert_eq!(split.share(&files, 3), vec![1, 2]);
    }

    #[test]
    fn output_fields_are_escaped() {
        assert_eq!(escape("plain"), "plain");
        assert_eq!(escape("a\tb\nc\\d"), "a\\tb\\nc\\\\d");
    }
}
