//! os-distribution: how many submissions per operating system and application version
//! (the 2013 system's `osdistribution.py`, extended with the version). Output: `OS,version<TAB>count`.
use telemetry_job::{emit, export_job, sum, Record, Spec};

struct OsDistribution;

/// v4 pings name the OS under `environment`, classic ones under `info`; likewise the version.
const FIELDS: [&str; 4] = ["/environment/system/os/name", "/info/OS", "/application/version", "/info/appVersion"];

export_job! {
    impl Job for OsDistribution {
        fn init(_param: &str) -> Result<Self, String> {
            Ok(OsDistribution)
        }
        fn spec(&self) -> Spec {
            Spec::fields(&FIELDS)
        }
        fn map(&self, record: &Record) -> Result<(), String> {
            let os = record.first_text(&[0, 1]).unwrap_or("UNKNOWN");
            let version = record.first_text(&[2, 3]).unwrap_or("UNKNOWN");
            emit(&format!("{os},{version}"), "1");
            Ok(())
        }
        fn combine(&self, _key: &str, values: Vec<String>) -> String {
            sum(&values).to_string()
        }
        fn reduce(&self, _key: &str, values: Vec<String>) -> String {
            sum(&values).to_string()
        }
    }
}
