//! histogram-aggregate: sums one histogram's buckets per channel and application version, the
//! classic dashboard job. The histogram name is the job parameter, e.g. `CYCLE_COLLECTOR`.
//! Reads the converted compact form (`[bucket_0 … bucket_n-1, sum, log_sum, log_sum_squares,
//! sum_squares_lo, sum_squares_hi]`, see docs) at `/payload/histograms/NAME` (v4) or
//! `/histograms/NAME` (classic and converted saved-session).
//! Output: `channel,version<TAB>{"submissions":N,"sum":S,"buckets":[…]}`.
use serde_json::{json, Value};
use telemetry_job::{emit, export_job, Job, Record, Spec};

struct HistogramAggregate {
    fields: Vec<String>,
}

/// Trailing statistics after the buckets in the compact form.
const STATS: usize = 5;

impl Job for HistogramAggregate {
    fn init(param: &str) -> Result<Self, String> {
        let name = param.trim();
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return Err(format!("parameter must be a histogram name such as CYCLE_COLLECTOR, got {param:?}"));
        }
        let fields = vec![
            format!("/payload/histograms/{name}"),
            format!("/histograms/{name}"),
            "/application/channel".into(),
            "/info/appUpdateChannel".into(),
            "/application/version".into(),
            "/info/appVersion".into(),
        ];
        Ok(HistogramAggregate { fields })
    }
    fn spec(&self) -> Spec {
        let fields: Vec<&str> = self.fields.iter().map(String::as_str).collect();
        Spec::fields(&fields).combine().reduce()
    }
    fn map(&self, record: &Record) -> Result<(), String> {
        let Some(text) = record.json(0).or_else(|| record.json(1)) else { return Ok(()) };
        // Unconverted documents hold the histogram as an object: not counted.
        let Ok(Value::Array(items)) = serde_json::from_str::<Value>(text) else { return Ok(()) };
        if items.len() < STATS {
            return Err(format!("compact histogram has {} entries, fewer than the {STATS} statistics", items.len()));
        }
        let buckets: Vec<u64> = items[..items.len() - STATS].iter().map(|v| v.as_u64().unwrap_or(0)).collect();
        let sum = items[items.len() - STATS].as_f64().unwrap_or(0.0);
        let channel = record.first_text(&[2, 3]).unwrap_or("UNKNOWN");
        let version = record.first_text(&[4, 5]).unwrap_or("UNKNOWN");
        emit(&format!("{channel},{version}"), &json!({"submissions": 1, "sum": sum, "buckets": buckets}).to_string());
        Ok(())
    }
    fn combine(&self, _key: &str, values: Vec<String>) -> String {
        merge(&values)
    }
    fn reduce(&self, _key: &str, values: Vec<String>) -> String {
        merge(&values)
    }
}

/// Element-wise sum of partial aggregates (histograms of one name may differ in length across
/// versions: the shorter one is padded with zeros).
fn merge(values: &[String]) -> String {
    let (mut submissions, mut sum, mut buckets) = (0u64, 0f64, Vec::<u64>::new());
    for v in values {
        let Ok(v) = serde_json::from_str::<Value>(v) else { continue };
        submissions += v["submissions"].as_u64().unwrap_or(0);
        sum += v["sum"].as_f64().unwrap_or(0.0);
        let empty = Vec::new();
        let b = v["buckets"].as_array().unwrap_or(&empty);
        if buckets.len() < b.len() {
            buckets.resize(b.len(), 0);
        }
        for (acc, x) in buckets.iter_mut().zip(b) {
            *acc += x.as_u64().unwrap_or(0);
        }
    }
    json!({"submissions": submissions, "sum": sum, "buckets": buckets}).to_string()
}

export_job!(HistogramAggregate);
