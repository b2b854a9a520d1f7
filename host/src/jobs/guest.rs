//! One sandboxed job instance: its store (locked-down WASI from [`super::wasi`], the
//! [`InstanceLimiter`], epoch deadline), the host side of the `telemetry:job/host` and
//! `telemetry:job/histograms` imports, and typed calls into the job's exports — of the current
//! contract or of the 0.1.0 one ([`bindings::v0_1`], converted at the boundary). A call that traps
//! leaves the instance unusable; the caller drops it and makes a fresh one.

use super::bindings::{
    self, v0_1, DataRecord, Field, HistogramLayout, JobSpec, Level, Mapreduce, MapreducePre,
};
use super::budget::{pair_cost, HostBudget};
use super::joblog::{JobLog, LogStream};
use super::limiter::InstanceLimiter;
use super::limits::human_bytes;
use super::{CancelToken, JobError, Limits, Runtime};
use crate::histograms::RevisionCache;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;
use wasmtime::component::{Linker, ResourceTable};
use wasmtime::{Store, UpdateDeadline};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

/// State shared by every instance of one job run.
pub(crate) struct Shared {
    pub limits: Limits,
    pub cancel: CancelToken,
    /// Set when any worker fails, so the others stop promptly.
    pub failed: AtomicBool,
    pub deadline: Instant,
    pub log: Arc<JobLog>,
    /// Emits committed (after their `map-batch` succeeded).
    pub emits: AtomicU64,
    pub emit_bytes: AtomicU64,
    pub peak_memory: AtomicU64,
    /// What the host holds for this job (`host_memory_bytes`).
    pub budget: HostBudget,
}

impl Shared {
    pub fn new(limits: Limits, cancel: CancelToken) -> Self {
        let budget = HostBudget::new(limits.host_memory_bytes);
        Shared {
            deadline: Instant::now() + limits.wall_time(),
            log: Arc::new(JobLog::new(limits.log_bytes)),
            limits,
            cancel,
            failed: AtomicBool::new(false),
            emits: AtomicU64::new(0),
            emit_bytes: AtomicU64::new(0),
            peak_memory: AtomicU64::new(0),
            budget,
        }
    }

    /// Why the job must stop now, if it must.
    pub fn stop_reason(&self) -> Option<Stop> {
        if self.cancel.is_cancelled() || self.failed.load(Ordering::Relaxed) {
            Some(Stop::Cancelled)
        } else if Instant::now() > self.deadline {
            Some(Stop::Limit(format!(
                "wall time ({} ms)",
                self.limits.wall_time_ms
            )))
        } else {
            None
        }
    }
}

/// Why the host stopped a guest call (raised as the call's error, recovered by downcasting).
#[derive(Debug, thiserror::Error)]
pub(crate) enum Stop {
    #[error("limit exceeded: {0}")]
    Limit(String),
    #[error("cancelled")]
    Cancelled,
}

impl From<Stop> for JobError {
    fn from(stop: Stop) -> Self {
        match stop {
            Stop::Limit(what) => JobError::LimitExceeded { what },
            Stop::Cancelled => JobError::Cancelled,
        }
    }
}

/// A failed guest call.
pub(crate) enum Failure {
    /// The guest trapped or returned an error: the input it was given is to blame. The instance
    /// must be replaced if it trapped.
    Guest(String),
    /// The host stopped it (limit, cancellation) or the engine failed: the job ends.
    Job(JobError),
}

/// Store data of one instance.
pub(crate) struct State {
    wasi: WasiCtx,
    table: ResourceTable,
    shared: Arc<Shared>,
    worker: usize,
    /// When the running guest call must have returned (`call_timeout_ms`).
    call_deadline: Instant,
    emitting: bool,
    pending: Vec<(String, String)>,
    pending_bytes: u64,
    /// Host memory charged for `pending` (released if the batch fails; handed to the caller
    /// with the pairs if it succeeds).
    pending_charged: u64,
    last_error: Option<String>,
    /// Sums all memories and tables of the instance against `memory_bytes`.
    limiter: InstanceLimiter,
    /// The layout keys of the running `map-batch`'s records (only for jobs that import
    /// `histograms`), and the definitions their layouts are looked up in.
    layout_keys: LayoutKeys,
    histograms: Arc<RevisionCache>,
}

/// The layout keys of a batch's records ([`super::layouts::keys_field`]), one per record, for `histograms.layout`: a window on a shared list, so a batch retried one record at a
/// time needs no copies. Empty for jobs that do not import `histograms`.
#[derive(Clone, Default)]
pub(crate) struct LayoutKeys {
    all: Arc<Vec<Field>>,
    start: usize,
    len: usize,
}

impl LayoutKeys {
    pub fn new(all: Vec<Field>) -> LayoutKeys {
        let len = all.len();
        LayoutKeys {
            all: Arc::new(all),
            start: 0,
            len,
        }
    }

    /// The keys of record `i` alone (empty if there are none).
    pub fn one(&self, i: usize) -> LayoutKeys {
        let len = usize::from(i < self.len);
        LayoutKeys {
            all: self.all.clone(),
            start: self.start + i,
            len,
        }
    }

    fn get(&self, i: u32) -> Option<&Field> {
        let i = i as usize;
        (i < self.len).then(|| &self.all[self.start + i])
    }
}

impl State {
    /// Why the running call must stop now (cancel, failure elsewhere, wall time, call time), if
    /// it must: checked at every epoch tick and while a WASI call waits.
    pub(crate) fn stop_now(shared: &Shared, call_deadline: Instant) -> Option<Stop> {
        if let Some(stop) = shared.stop_reason() {
            return Some(stop);
        }
        if Instant::now() > call_deadline {
            return Some(Stop::Limit(format!(
                "call time ({} ms)",
                shared.limits.call_timeout_ms
            )));
        }
        None
    }

    /// The resource table (WASI resources of this instance).
    pub(crate) fn table_mut(&mut self) -> &mut ResourceTable {
        &mut self.table
    }

    /// The resource table and what a waiting WASI call needs to know when to give up.
    pub(crate) fn table_and_deadline(&mut self) -> (&mut ResourceTable, Arc<Shared>, Instant) {
        (&mut self.table, self.shared.clone(), self.call_deadline)
    }
}

impl WasiView for State {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl bindings::telemetry::job::host::Host for State {
    fn emit(&mut self, key: String, value: String) -> wasmtime::Result<()> {
        if !self.emitting {
            wasmtime::bail!(
                "host.emit called outside map-batch (combine and reduce return their result)"
            );
        }
        let limits = &self.shared.limits;
        let count = self.shared.emits.load(Ordering::Relaxed) + self.pending.len() as u64 + 1;
        if count > limits.emit_count {
            return Err(Stop::Limit(format!("emit count ({})", limits.emit_count)).into());
        }
        self.pending_bytes += (key.len() + value.len()) as u64;
        if self.shared.emit_bytes.load(Ordering::Relaxed) + self.pending_bytes > limits.emit_bytes {
            return Err(
                Stop::Limit(format!("emit bytes ({})", human_bytes(limits.emit_bytes))).into(),
            );
        }
        let cost = pair_cost(&key, &value);
        self.shared
            .budget
            .charge(cost)
            .map_err(|e| Stop::Limit(e.what()))?;
        self.pending_charged += cost;
        self.pending.push((key, value));
        Ok(())
    }

    fn log(&mut self, level: Level, message: String) -> wasmtime::Result<()> {
        let name = match level {
            Level::Error => "error",
            Level::Warn => "warn",
            Level::Info => "info",
            Level::Debug => "debug",
        };
        self.shared
            .log
            .line(&format!("[worker {}] {name}: {message}", self.worker));
        if level == Level::Error {
            self.last_error = Some(message);
        }
        Ok(())
    }
}

impl v0_1::telemetry::job::host::Host for State {
    fn emit(&mut self, key: String, value: String) -> wasmtime::Result<()> {
        bindings::telemetry::job::host::Host::emit(self, key, value)
    }

    fn log(&mut self, level: v0_1::Level, message: String) -> wasmtime::Result<()> {
        let level = match level {
            v0_1::Level::Error => Level::Error,
            v0_1::Level::Warn => Level::Warn,
            v0_1::Level::Info => Level::Info,
            v0_1::Level::Debug => Level::Debug,
        };
        bindings::telemetry::job::host::Host::log(self, level, message)
    }
}

impl bindings::telemetry::job::histograms::Host for State {
    fn layout(&mut self, record: u32, name: String) -> wasmtime::Result<Option<HistogramLayout>> {
        if !self.emitting {
            wasmtime::bail!("histograms.layout called outside map-batch");
        }
        let Some(keys) = self.layout_keys.get(record) else {
            wasmtime::bail!(
                "histograms.layout: record {record} is not in this batch of {}",
                self.layout_keys.len
            );
        };
        super::layouts::layout(&self.histograms, keys, &name)
            .map_err(|e| wasmtime::format_err!("histograms.layout({record}, {name:?}): {e}"))
    }
}

/// The exports of a linked job, by contract version.
#[derive(Clone)]
enum Pre {
    Current(MapreducePre<State>),
    V0_1(v0_1::MapreducePre<State>),
}

/// An instantiated job's exports, by contract version.
enum Exports {
    Current(Mapreduce),
    V0_1(v0_1::Mapreduce),
}

/// A job component linked against the host, ready to instantiate (shared by all workers).
#[derive(Clone)]
pub(crate) struct Linked {
    pre: Pre,
    /// The job imports `telemetry:job/histograms`: the executor extracts each record's layout keys.
    uses_histograms: bool,
    histograms: Arc<RevisionCache>,
}

impl Linked {
    pub fn new(runtime: &Runtime, job: &super::CompiledJob) -> Result<Linked, JobError> {
        let mut linker = Linker::<State>::new(runtime.engine());
        let engine_error = |e: wasmtime::Error| JobError::Engine(format!("{e:#}"));
        super::wasi::add_to_linker(&mut linker).map_err(engine_error)?;
        type Me = wasmtime::component::HasSelf<State>;
        Mapreduce::add_to_linker::<State, Me>(&mut linker, |s| s).map_err(engine_error)?;
        v0_1::Mapreduce::add_to_linker::<State, Me>(&mut linker, |s| s).map_err(engine_error)?;
        let invalid = |e: wasmtime::Error| JobError::InvalidComponent {
            reason: format!("{e:#}"),
        };
        let ty = job.component.component_type();
        let engine = runtime.engine();
        let uses_histograms = ty
            .imports(engine)
            .any(|(name, _)| name == bindings::HISTOGRAMS_IMPORT);
        let is_v0_1 = ty.get_export(engine, v0_1::JOB_EXPORT).is_some();
        let pre = linker.instantiate_pre(&job.component).map_err(invalid)?;
        let pre = if is_v0_1 {
            Pre::V0_1(v0_1::MapreducePre::new(pre).map_err(invalid)?)
        } else {
            Pre::Current(MapreducePre::new(pre).map_err(invalid)?)
        };
        Ok(Linked {
            pre,
            uses_histograms,
            histograms: runtime.histograms().clone(),
        })
    }

    /// The job imports `telemetry:job/histograms` (and so needs each record's layout keys).
    pub fn uses_histograms(&self) -> bool {
        self.uses_histograms
    }

    fn engine(&self) -> &wasmtime::Engine {
        match &self.pre {
            Pre::Current(pre) => pre.engine(),
            Pre::V0_1(pre) => pre.engine(),
        }
    }

    fn instantiate(&self, store: &mut Store<State>) -> wasmtime::Result<Exports> {
        Ok(match &self.pre {
            Pre::Current(pre) => Exports::Current(pre.instantiate(&mut *store)?),
            Pre::V0_1(pre) => Exports::V0_1(pre.instantiate(&mut *store)?),
        })
    }
}

/// A live job instance, initialised with the job parameter.
pub(crate) struct Guest {
    store: Store<State>,
    job: Exports,
    spec: JobSpec,
}

impl Guest {
    /// Instantiates the job in a fresh sandbox and calls `init(param)`.
    pub fn new(
        linked: &Linked,
        shared: &Arc<Shared>,
        worker: usize,
        param: &str,
    ) -> Result<Guest, JobError> {
        let wasi = super::wasi::context(LogStream(shared.log.clone()));
        let mut table = ResourceTable::new();
        table.set_max_capacity(10_000);
        let state = State {
            wasi,
            table,
            shared: shared.clone(),
            worker,
            call_deadline: Instant::now(),
            emitting: false,
            pending: Vec::new(),
            pending_bytes: 0,
            pending_charged: 0,
            last_error: None,
            limiter: InstanceLimiter::new(shared.limits.memory_bytes),
            layout_keys: LayoutKeys::default(),
            histograms: linked.histograms.clone(),
        };
        let mut store = Store::new(linked.engine(), state);
        store.limiter(|s| &mut s.limiter as &mut dyn wasmtime::ResourceLimiter);
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(|ctx| {
            let state = ctx.data();
            match State::stop_now(&state.shared, state.call_deadline) {
                Some(stop) => Err(stop.into()),
                None => Ok(UpdateDeadline::Continue(1)),
            }
        });
        store.data_mut().call_deadline = Instant::now() + shared.limits.call_timeout();
        let job = linked
            .instantiate(&mut store)
            .map_err(|e| match classify(&mut store, e) {
                Failure::Job(e) => e,
                Failure::Guest(message) => JobError::Trap {
                    record_id: None,
                    message: format!("instantiating: {message}"),
                },
            })?;
        let mut guest = Guest {
            store,
            job,
            spec: empty_spec(),
        };
        let result = guest.call(|job, store| match job {
            Exports::Current(job) => job.telemetry_job_job().call_init(store, param),
            Exports::V0_1(job) => job
                .telemetry_job_job()
                .call_init(store, param)
                .map(|r| r.map(spec_from_v0_1)),
        });
        match result {
            Ok(Ok(spec)) => guest.spec = spec,
            Ok(Err(message)) => return Err(JobError::InvalidParam { message }),
            Err(Failure::Job(e)) => return Err(e),
            Err(Failure::Guest(message)) => {
                return Err(JobError::Trap {
                    record_id: None,
                    message: format!("in init: {message}"),
                })
            }
        }
        Ok(guest)
    }

    /// What the job declared in `init`.
    pub fn spec(&self) -> &JobSpec {
        &self.spec
    }

    /// Peak linear memory of this instance (all its memories together), bytes.
    pub fn peak_memory(&self) -> usize {
        self.store.data().limiter.memory_peak() as usize
    }

    /// Maps one batch; returns the pairs it emitted (nothing is kept if it fails). The pairs come
    /// charged to the job's host budget (see [`pair_cost`]): the caller releases the charge when
    /// it hands them on. `layout_keys` are the records' layout keys when the job imports
    /// `histograms` (else empty).
    pub fn map_batch(
        &mut self,
        dims: &[String],
        records: &[DataRecord],
        layout_keys: LayoutKeys,
    ) -> Result<Vec<(String, String)>, Failure> {
        let state = self.store.data_mut();
        state.emitting = true;
        state.layout_keys = layout_keys;
        state.pending.clear();
        state.pending_bytes = 0;
        state.pending_charged = 0;
        let result = self.call(|job, store| match job {
            Exports::Current(job) => job.telemetry_job_job().call_map_batch(store, dims, records),
            Exports::V0_1(job) => {
                let records: Vec<v0_1::DataRecord> = records.iter().map(record_to_v0_1).collect();
                job.telemetry_job_job()
                    .call_map_batch(store, dims, &records)
            }
        });
        let state = self.store.data_mut();
        state.emitting = false;
        state.layout_keys = LayoutKeys::default();
        let pending = std::mem::take(&mut state.pending);
        let charged = std::mem::take(&mut state.pending_charged);
        let result = match result {
            Ok(Ok(())) => {
                state
                    .shared
                    .emits
                    .fetch_add(pending.len() as u64, Ordering::Relaxed);
                state
                    .shared
                    .emit_bytes
                    .fetch_add(state.pending_bytes, Ordering::Relaxed);
                return Ok(pending);
            }
            Ok(Err(message)) => Err(Failure::Guest(format!(
                "map-batch returned an error: {message}"
            ))),
            Err(failure) => Err(failure),
        };
        drop(pending);
        state.shared.budget.release(charged);
        result
    }

    /// Calls `combine(key, values)`.
    pub fn combine(&mut self, key: &str, values: &[String]) -> Result<String, Failure> {
        self.call(|job, store| match job {
            Exports::Current(job) => job.telemetry_job_job().call_combine(store, key, values),
            Exports::V0_1(job) => job.telemetry_job_job().call_combine(store, key, values),
        })
    }

    /// Calls `reduce(key, values)`.
    pub fn reduce(&mut self, key: &str, values: &[String]) -> Result<String, Failure> {
        self.call(|job, store| match job {
            Exports::Current(job) => job.telemetry_job_job().call_reduce(store, key, values),
            Exports::V0_1(job) => job.telemetry_job_job().call_reduce(store, key, values),
        })
    }

    fn call<R>(
        &mut self,
        f: impl FnOnce(&Exports, &mut Store<State>) -> wasmtime::Result<R>,
    ) -> Result<R, Failure> {
        if let Some(stop) = self.store.data().shared.stop_reason() {
            return Err(Failure::Job(stop.into()));
        }
        let state = self.store.data_mut();
        state.call_deadline = Instant::now() + state.shared.limits.call_timeout();
        state.last_error = None;
        let result = f(&self.job, &mut self.store).map_err(|e| classify(&mut self.store, e));
        let state = self.store.data();
        state
            .shared
            .peak_memory
            .fetch_max(state.limiter.memory_peak(), Ordering::Relaxed);
        result
    }
}

/// Turns a call's error into a host stop (limit, cancel) or a guest failure with the best message
/// available: the guest's own last error log line (a Rust panic message) plus the trap kind.
fn classify(store: &mut Store<State>, err: wasmtime::Error) -> Failure {
    if let Some(stop) = err.downcast_ref::<Stop>() {
        return Failure::Job(match stop {
            Stop::Limit(what) => JobError::LimitExceeded { what: what.clone() },
            Stop::Cancelled => JobError::Cancelled,
        });
    }
    let trap = match err.downcast_ref::<wasmtime::Trap>() {
        Some(trap) => trap.to_string(),
        None => format!("{err}"),
    };
    match store.data_mut().last_error.take() {
        Some(guest) => Failure::Guest(format!("{guest} ({trap})")),
        None => Failure::Guest(trap),
    }
}

fn empty_spec() -> JobSpec {
    JobSpec {
        fields: vec![],
        wants_payload: false,
        has_combine: false,
        combine_threshold: 0,
        has_reduce: false,
    }
}

fn spec_from_v0_1(spec: v0_1::JobSpec) -> JobSpec {
    JobSpec {
        fields: spec.fields,
        wants_payload: spec.wants_payload,
        has_combine: spec.has_combine,
        combine_threshold: spec.combine_threshold,
        has_reduce: spec.has_reduce,
    }
}

/// A record for a 0.1.0 job (the same shape; a copy per batch).
fn record_to_v0_1(record: &DataRecord) -> v0_1::DataRecord {
    let field = |f: &Field| match f {
        Field::Missing => v0_1::Field::Missing,
        Field::Null => v0_1::Field::Null,
        Field::Boolean(b) => v0_1::Field::Boolean(*b),
        Field::Number(s) => v0_1::Field::Number(s.clone()),
        Field::Text(s) => v0_1::Field::Text(s.clone()),
        Field::Json(s) => v0_1::Field::Json(s.clone()),
    };
    v0_1::DataRecord {
        id: record.id.clone(),
        fields: record.fields.iter().map(field).collect(),
        payload: record.payload.clone(),
    }
}
