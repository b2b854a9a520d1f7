//! simple-counter built against the 0.1.0 contract (`wit/v0.1.0/job.wit`) with raw bindings: the
//! test guest that shows the host still runs components made before `telemetry:job@0.2.0`.
//! Same output as `simple-counter`: `YYYYMMDD<TAB>records=N duplicates=M`.
wit_bindgen::generate!({ path: "../../wit/v0.1.0", world: "mapreduce" });

use exports::telemetry::job::job::{DataRecord, Guest, JobSpec};
use telemetry::job::host::emit;

struct SimpleCounter;

impl Guest for SimpleCounter {
    fn init(_param: String) -> Result<JobSpec, String> {
        Ok(JobSpec {
            fields: vec![],
            wants_payload: false,
            has_combine: false,
            combine_threshold: 0,
            has_reduce: true,
        })
    }
    fn map_batch(dims: Vec<String>, records: Vec<DataRecord>) -> Result<(), String> {
        let day = dims.last().map(String::as_str).unwrap_or("UNKNOWN");
        for r in &records {
            emit(day, &r.id);
        }
        Ok(())
    }
    fn combine(_key: String, values: Vec<String>) -> String {
        values.join(",")
    }
    fn reduce(_key: String, ids: Vec<String>) -> String {
        let duplicates = ids.windows(2).filter(|w| w[0] == w[1]).count();
        format!("records={} duplicates={duplicates}", ids.len())
    }
}

export!(SimpleCounter);
