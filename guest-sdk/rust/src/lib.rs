//! Write a Telemetry Server MapReduce job in Rust: implement [`Job`] and call [`export_job!`].
//!
//! ```ignore
//! use telemetry_job::{export_job, Record, Spec};
//!
//! struct OsCount;
//! export_job! {
//!     impl Job for OsCount {
//!         fn init(_param: &str) -> Result<Self, String> { Ok(OsCount) }
//!         fn spec(&self) -> Spec { Spec::fields(&["/environment/system/os/name"]) }
//!         fn map(&self, record: &Record) -> Result<(), String> {
//!             telemetry_job::emit(record.text(0).unwrap_or("UNKNOWN"), "1");
//!             Ok(())
//!         }
//!         fn reduce(&self, _key: &str, values: Vec<String>) -> String { telemetry_job::sum(&values).to_string() }
//!     }
//! }
//! ```
//!
//! `export_job!` sees the methods the impl defines: a job that writes `combine` has a combine
//! phase, one that writes `reduce` has a reduce phase, one without `reduce` is map-only. The
//! same vocabulary as the JavaScript, Python and C SDKs: `init`, `map`, `combine`, `reduce`,
//! `emit`, `log`, `sum`, `text`, `first_text`, `json`, `payload`, `combine_threshold`.
//! The older form `export_job!(Type)` still builds and takes the phases from
//! `Spec::combine()`/`Spec::reduce()` (deprecated: forgetting them made a map-only job).
//!
//! The contract itself (call order, semantics, sandbox) is documented in `wit/job.wit`.

#![warn(missing_docs)]

mod decimal;
pub use decimal::format_decimal;
pub mod histogram;
pub use histogram::Histogram;

use std::any::Any;
use std::cell::RefCell;
use std::marker::PhantomData;

#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "mapreduce",
        pub_export_macro: true,
        default_bindings_module: "telemetry_job::bindings",
    });
}

use bindings::exports::telemetry::job::job as wit;
pub use bindings::telemetry::job::histograms::{HistogramLayout, Kind as HistogramKind, Source as LayoutSource};
pub use bindings::telemetry::job::host::Level;
pub use wit::Field;

/// What a job needs from the host; returned by [`Job::spec`]. Built with chained calls:
/// `Spec::fields(&["/info/OS"]).combine().reduce()`.
#[derive(Debug, Clone, Default)]
pub struct Spec {
    fields: Vec<String>,
    wants_payload: bool,
    has_combine: bool,
    combine_threshold: u32,
    has_reduce: bool,
}

impl Spec {
    /// Extract these JSON pointers from every document (passed to `map` in this order).
    pub fn fields(pointers: &[&str]) -> Self {
        Spec { fields: pointers.iter().map(|p| p.to_string()).collect(), ..Spec::default() }
    }
    /// Also pass the whole JSON document ([`Record::payload`]); slower, prefer fields.
    pub fn payload(mut self) -> Self {
        self.wants_payload = true;
        self
    }
    /// The job implements [`Job::combine`]. Only needed with the older `export_job!(Type)`.
    #[deprecated(note = "write the impl inside `export_job! { impl Job for T { ... } }`: it sees `combine`")]
    pub fn combine(mut self) -> Self {
        self.has_combine = true;
        self
    }
    /// Combine once a key has this many values (default 50).
    pub fn combine_threshold(mut self, values: u32) -> Self {
        self.combine_threshold = values;
        self
    }
    /// The job implements [`Job::reduce`]; without it the job is map-only. Only needed with the
    /// older `export_job!(Type)`.
    #[deprecated(note = "write the impl inside `export_job! { impl Job for T { ... } }`: it sees `reduce`")]
    pub fn reduce(mut self) -> Self {
        self.has_reduce = true;
        self
    }
}

/// One stored document as the job sees it.
pub struct Record<'a> {
    /// The document id.
    pub id: &'a str,
    /// Dimensions of the partition file (reason, appName, channel, version, build id, date…).
    pub dims: &'a [String],
    /// One value per pointer declared in [`Spec::fields`].
    pub fields: &'a [Field],
    /// The whole JSON document if [`Spec::payload`] was asked for, else empty.
    pub payload: &'a str,
    /// Position of the record in its `map-batch` (what the host's histogram lookup takes).
    pub index: u32,
}

impl Record<'_> {
    /// Field `i` as text: a JSON string, or a number/boolean as written. `None` if missing/null
    /// or an object/array.
    pub fn text(&self, i: usize) -> Option<&str> {
        match self.fields.get(i)? {
            Field::Text(s) | Field::Number(s) => Some(s),
            Field::Boolean(true) => Some("true"),
            Field::Boolean(false) => Some("false"),
            Field::Missing | Field::Null | Field::Json(_) => None,
        }
    }
    /// The first of fields `indexes` that has a text value (for data whose shape changed over
    /// time, e.g. `/info/OS` in classic pings and `/environment/system/os/name` in v4).
    pub fn first_text(&self, indexes: &[usize]) -> Option<&str> {
        indexes.iter().find_map(|&i| self.text(i))
    }
    /// Field `i` as raw JSON text when it is an object or an array.
    pub fn json(&self, i: usize) -> Option<&str> {
        match self.fields.get(i)? {
            Field::Json(s) => Some(s),
            _ => None,
        }
    }
    /// How histogram `name` is laid out in this record (kind, bucket lower bounds), from the
    /// definitions of the build that sent it; `None` if the host knows none.
    pub fn histogram_layout(&self, name: &str) -> Option<HistogramLayout> {
        bindings::telemetry::job::histograms::layout(self.index, name)
    }
    /// Histogram `name` whose stored compact array is field `i`, decoded with this record's
    /// layout. `None` when the field is not an array (absent, or an unconverted document) or no
    /// layout is known; `Some(Err)` when the array does not fit the layout.
    pub fn histogram(&self, i: usize, name: &str) -> Option<Result<Histogram, String>> {
        let compact = self.json(i).filter(|t| t.trim_start().starts_with('['))?;
        let layout = self.histogram_layout(name)?;
        Some(Histogram::decode(compact, &layout.bounds))
    }
}

/// A MapReduce job. One value is made per instance by [`Job::init`]; the host may make new
/// instances at any time, so keep no state that must survive between calls.
pub trait Job: Sized + 'static {
    /// Checks the job parameter (empty if none) and builds the job.
    fn init(param: &str) -> Result<Self, String>;
    /// Declares the fields and phases the job uses.
    fn spec(&self) -> Spec;
    /// Maps one record; call [`emit`] for each output pair. An `Err` fails this record.
    fn map(&self, record: &Record) -> Result<(), String>;
    /// Combines values of one key into one (must be associative and commutative).
    fn combine(&self, _key: &str, values: Vec<String>) -> String {
        values.join(",")
    }
    /// Reduces all values of one key to the output value.
    fn reduce(&self, _key: &str, values: Vec<String>) -> String {
        values.join(",")
    }
    /// Which of `combine` and `reduce` the impl defines; written by [`export_job!`] (`None`: the
    /// older `export_job!(Type)`, phases from the [`Spec`]).
    #[doc(hidden)]
    fn __implements() -> Option<Implements> {
        None
    }
}

/// Which optional methods a [`Job`] impl defines (found by [`export_job!`]).
#[doc(hidden)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Implements {
    pub combine: bool,
    pub reduce: bool,
}

/// The `job-spec` `init` returns: the job's [`Spec`], with `has-combine` and `has-reduce` taken
/// from the methods it implements when [`export_job!`] saw the impl. A spec that declares a
/// phase the job does not implement is an error (it would run the default `combine`/`reduce`).
#[doc(hidden)]
pub fn job_spec<J: Job>(job: &J) -> Result<wit::JobSpec, String> {
    let spec = job.spec();
    let (has_combine, has_reduce) = match J::__implements() {
        None => (spec.has_combine, spec.has_reduce),
        Some(found) => {
            for (phase, declared, written) in
                [("combine", spec.has_combine, found.combine), ("reduce", spec.has_reduce, found.reduce)]
            {
                if declared && !written {
                    return Err(format!("the spec declares {phase}() but the job does not implement {phase}"));
                }
            }
            (found.combine, found.reduce)
        }
    };
    Ok(wit::JobSpec {
        fields: spec.fields,
        wants_payload: spec.wants_payload,
        has_combine,
        combine_threshold: spec.combine_threshold,
        has_reduce,
    })
}

/// Emits one intermediate `(key, value)` pair (only valid inside [`Job::map`]).
pub fn emit(key: &str, value: &str) {
    bindings::telemetry::job::host::emit(key, value);
}

/// Writes a line to the job log.
pub fn log(level: Level, message: &str) {
    bindings::telemetry::job::host::log(level, message);
}

/// Sum of decimal integer values; values that do not parse count as 0 (and are logged once).
pub fn sum(values: &[String]) -> u64 {
    values.iter().map(|v| v.parse::<u64>().unwrap_or(0)).sum()
}

thread_local! {
    static INSTANCE: RefCell<Option<Box<dyn Any>>> = const { RefCell::new(None) };
}

fn with_job<J: Job, R>(f: impl FnOnce(&J) -> R) -> R {
    INSTANCE.with(|cell| {
        let guard = cell.borrow();
        let job = guard
            .as_ref()
            .and_then(|b| b.downcast_ref::<J>())
            .expect("telemetry-job: host called the job before init");
        f(job)
    })
}

/// Bridges a [`Job`] to the generated bindings; used by [`export_job!`].
#[doc(hidden)]
pub struct Adapter<J>(PhantomData<J>);

impl<J: Job> wit::Guest for Adapter<J> {
    fn init(param: String) -> Result<wit::JobSpec, String> {
        std::panic::set_hook(Box::new(|info| log(Level::Error, &format!("panic: {info}"))));
        let job = J::init(&param)?;
        let spec = job_spec(&job)?;
        INSTANCE.with(|cell| *cell.borrow_mut() = Some(Box::new(job)));
        Ok(spec)
    }

    fn map_batch(dims: Vec<String>, records: Vec<wit::DataRecord>) -> Result<(), String> {
        with_job::<J, _>(|job| {
            for (index, r) in records.iter().enumerate() {
                let record =
                    Record { id: &r.id, dims: &dims, fields: &r.fields, payload: &r.payload, index: index as u32 };
                job.map(&record).map_err(|e| format!("record {}: {e}", r.id))?;
            }
            Ok(())
        })
    }

    fn combine(key: String, values: Vec<String>) -> String {
        with_job::<J, _>(|job| job.combine(&key, values))
    }

    fn reduce(key: String, values: Vec<String>) -> String {
        with_job::<J, _>(|job| job.reduce(&key, values))
    }
}

/// Exports a [`Job`] implementation as the component's `telemetry:job/job` interface.
///
/// Give it the impl, `export_job! { impl Job for T { ... } }`: the job then has a combine
/// phase if the impl defines `combine`, a reduce phase if it defines `reduce` (map-only
/// otherwise). The older form `export_job!(T)` takes them from `Spec::combine()`/`reduce()`.
#[macro_export]
macro_rules! export_job {
    (impl Job for $job:ident { $($body:tt)* }) => {
        $crate::job_impl! { impl Job for $job { $($body)* } }
        $crate::export_job!($job);
    };
    ($job:ty) => {
        type __TelemetryJobAdapter = $crate::Adapter<$job>;
        $crate::bindings::export!(__TelemetryJobAdapter with_types_in $crate::bindings);
    };
}

/// `impl Job for T { ... }` plus the record of which optional methods it defines (the first
/// half of [`export_job!`], without the export).
#[doc(hidden)]
#[macro_export]
macro_rules! job_impl {
    (impl Job for $job:ident { $($body:tt)* }) => {
        impl $crate::Job for $job {
            $($body)*
            fn __implements() -> ::core::option::Option<$crate::Implements> {
                ::core::option::Option::Some($crate::Implements {
                    combine: $crate::defines_fn!(combine; $($body)*),
                    reduce: $crate::defines_fn!(reduce; $($body)*),
                })
            }
        }
    };
}

/// `true` if the items given define `fn combine` (or `fn reduce`) at their top level.
#[doc(hidden)]
#[macro_export]
macro_rules! defines_fn {
    (combine; fn combine $($rest:tt)*) => { true };
    (reduce; fn reduce $($rest:tt)*) => { true };
    ($name:ident; $first:tt $($rest:tt)*) => { $crate::defines_fn!($name; $($rest)*) };
    ($name:ident;) => { false };
}
