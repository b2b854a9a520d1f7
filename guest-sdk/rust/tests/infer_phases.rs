//! `export_job!` infers the combine and reduce phases from the methods an impl defines: a job
//! that writes `reduce` but never says so in its `Spec` is not silently map-only.
#![allow(deprecated)] // the older `Spec::combine()`/`reduce()` are exercised on purpose
use telemetry_job::{emit, job_spec, Job, Record, Spec};

struct Counts;
telemetry_job::job_impl! {
    impl Job for Counts {
        fn init(_param: &str) -> Result<Self, String> { Ok(Counts) }
        fn spec(&self) -> Spec { Spec::fields(&["/info/OS"]) }
        fn map(&self, record: &Record) -> Result<(), String> { emit(record.id, "1"); Ok(()) }
        /// Doc comments and attributes between the methods are skipped.
        #[inline]
        fn combine(&self, _key: &str, values: Vec<String>) -> String { telemetry_job::sum(&values).to_string() }
        fn reduce(&self, _key: &str, values: Vec<String>) -> String { telemetry_job::sum(&values).to_string() }
    }
}

struct ReduceOnly;
telemetry_job::job_impl! {
    impl Job for ReduceOnly {
        fn init(_param: &str) -> Result<Self, String> { Ok(ReduceOnly) }
        fn spec(&self) -> Spec { Spec::fields(&[]) }
        fn map(&self, _record: &Record) -> Result<(), String> { Ok(()) }
        fn reduce(&self, _key: &str, values: Vec<String>) -> String { values.len().to_string() }
    }
}

struct MapOnly;
telemetry_job::job_impl! {
    impl Job for MapOnly {
        fn init(_param: &str) -> Result<Self, String> { Ok(MapOnly) }
        fn spec(&self) -> Spec { Spec::fields(&[]).payload() }
        fn map(&self, _record: &Record) -> Result<(), String> { Ok(()) }
    }
}

/// Declares `.reduce()` in its spec without implementing it.
struct Declared;
telemetry_job::job_impl! {
    impl Job for Declared {
        fn init(_param: &str) -> Result<Self, String> { Ok(Declared) }
        fn spec(&self) -> Spec { Spec::fields(&[]).combine().reduce() }
        fn map(&self, _record: &Record) -> Result<(), String> { Ok(()) }
        fn combine(&self, _key: &str, values: Vec<String>) -> String { values.concat() }
    }
}

/// The older form: a plain impl, phases from the spec.
struct Older;
impl Job for Older {
    fn init(_param: &str) -> Result<Self, String> { Ok(Older) }
    fn spec(&self) -> Spec { Spec::fields(&[]).reduce() }
    fn map(&self, _record: &Record) -> Result<(), String> { Ok(()) }
    fn reduce(&self, _key: &str, values: Vec<String>) -> String { values.concat() }
}

fn phases<J: Job>() -> (bool, bool) {
    let spec = job_spec(&J::init("").unwrap()).unwrap();
    (spec.has_combine, spec.has_reduce)
}

#[test]
fn combine_and_reduce_come_from_the_methods_written() {
    assert_eq!(phases::<Counts>(), (true, true));
    assert_eq!(job_spec(&Counts).unwrap().fields, vec!["/info/OS".to_string()]);
}

#[test]
fn a_reduce_without_spec_reduce_is_not_map_only() {
    assert_eq!(phases::<ReduceOnly>(), (false, true));
}

#[test]
fn a_job_without_reduce_is_map_only() {
    assert_eq!(phases::<MapOnly>(), (false, false));
    assert!(job_spec(&MapOnly).unwrap().wants_payload);
}

#[test]
fn a_spec_declaring_an_unwritten_phase_is_an_error() {
    let err = job_spec(&Declared).unwrap_err();
    assert_eq!(err, "the spec declares reduce() but the job does not implement reduce");
}

#[test]
fn the_older_form_keeps_the_spec_flags() {
    assert_eq!(phases::<Older>(), (false, true));
}
