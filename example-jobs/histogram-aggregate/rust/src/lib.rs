//! histogram-aggregate: merges one histogram per channel and application version, the classic
//! dashboard job, correctly across Firefox builds whose Histograms.json lay the histogram out
//! differently: each record's array is decoded with that record's layout (the host's
//! `histograms.layout`) and histograms are merged by bucket lower bounds (the SDK's
//! [`Histogram`]). Parameter: the histogram name, e.g. `CYCLE_COLLECTOR`, optionally followed by
//! `:channel` (one key per channel) or `:all` (one key) instead of the default channel,version.
//! Reads the stored compact form at `/payload/histograms/NAME` (v4) or `/histograms/NAME`
//! (classic and converted saved-session).
//! Output: `KEY<TAB>{"submissions":N,"histogram":{"bounds":[…],"counts":[…],"sum":S},
//! "median":B,"p95":B}` (percentiles as bucket lower bounds; null when empty). Records whose
//! layout the host does not know are counted under `"unknown_layout"` and not merged.
use serde_json::{json, Value};
use telemetry_job::{emit, export_job, Histogram, Record, Spec};

struct HistogramAggregate {
    name: String,
    by: By,
    fields: Vec<String>,
}

enum By {
    ChannelVersion,
    Channel,
    All,
}

export_job! {
    impl Job for HistogramAggregate {
        fn init(param: &str) -> Result<Self, String> {
            let (name, by) = match param.trim().split_once(':') {
                None => (param.trim(), By::ChannelVersion),
                Some((name, "channel")) => (name, By::Channel),
                Some((name, "all")) => (name, By::All),
                Some((_, other)) => return Err(format!("unknown grouping {other:?}: use :channel or :all")),
            };
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
            Ok(HistogramAggregate { name: name.to_string(), by, fields })
        }
        fn spec(&self) -> Spec {
            let fields: Vec<&str> = self.fields.iter().map(String::as_str).collect();
            Spec::fields(&fields)
        }
        fn map(&self, record: &Record) -> Result<(), String> {
            let field = if record.json(0).is_some() { 0 } else { 1 };
            let channel = record.first_text(&[2, 3]).unwrap_or("UNKNOWN");
            let version = record.first_text(&[4, 5]).unwrap_or("UNKNOWN");
            let key = match self.by {
                By::ChannelVersion => format!("{channel},{version}"),
                By::Channel => channel.to_string(),
                By::All => "all".to_string(),
            };
            // Unconverted documents hold the histogram as an object: not counted.
            let value = match record.histogram(field, &self.name) {
                None if record.json(field).is_some_and(|t| t.starts_with('[')) => json!({"unknown_layout": 1}),
                None => return Ok(()),
                Some(h) => json!({"submissions": 1, "histogram": Value::String(h?.to_json())}),
            };
            emit(&key, &value.to_string());
            Ok(())
        }
        fn combine(&self, _key: &str, values: Vec<String>) -> String {
            merge(&values).to_string()
        }
        fn reduce(&self, _key: &str, values: Vec<String>) -> String {
            let mut merged = merge(&values);
            let h = Histogram::from_json(merged["histogram"].as_str().unwrap_or("")).unwrap_or_default();
            merged["histogram"] = serde_json::from_str(&h.to_json()).unwrap_or(Value::Null);
            merged["median"] = json!(h.percentile(50.0));
            merged["p95"] = json!(h.percentile(95.0));
            merged.to_string()
        }
    }
}

/// Merges partial aggregates: submissions and unknown layouts add up, histograms merge by bucket
/// bounds (the histogram travels as its JSON text between map, combine and reduce).
fn merge(values: &[String]) -> Value {
    let (mut submissions, mut unknown) = (0u64, 0u64);
    let mut merged: Option<Histogram> = None;
    for v in values {
        let Ok(v) = serde_json::from_str::<Value>(v) else { continue };
        submissions += v["submissions"].as_u64().unwrap_or(0);
        unknown += v["unknown_layout"].as_u64().unwrap_or(0);
        if let Some(Ok(h)) = v["histogram"].as_str().map(Histogram::from_json) {
            merged = Some(match merged {
                Some(m) => m.merge(&h),
                None => h,
            });
        }
    }
    let histogram = merged.unwrap_or_default().to_json();
    let mut out = json!({"submissions": submissions, "histogram": histogram});
    if unknown > 0 {
        out["unknown_layout"] = json!(unknown);
    }
    out
}
