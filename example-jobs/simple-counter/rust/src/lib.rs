//! simple-counter: records and duplicate document ids per submission day (the 2013 system's
//! `simple_counter.py` found duplicates by counting document ids). Output:
//! `YYYYMMDD<TAB>records=N duplicates=M` where M counts records whose id was already seen that day.
use telemetry_job::{emit, export_job, Record, Spec};

struct SimpleCounter;

export_job! {
    impl Job for SimpleCounter {
        fn init(_param: &str) -> Result<Self, String> {
            Ok(SimpleCounter)
        }
        fn spec(&self) -> Spec {
            // Needs no field from the document: the day is the last dimension, the id is the key.
            Spec::fields(&[])
        }
        fn map(&self, record: &Record) -> Result<(), String> {
            let day = record.dims.last().map(String::as_str).unwrap_or("UNKNOWN");
            emit(day, record.id);
            Ok(())
        }
        fn reduce(&self, _day: &str, ids: Vec<String>) -> String {
            // Values arrive sorted, so equal ids are adjacent.
            let duplicates = ids.windows(2).filter(|w| w[0] == w[1]).count();
            format!("records={} duplicates={duplicates}", ids.len())
        }
    }
}
