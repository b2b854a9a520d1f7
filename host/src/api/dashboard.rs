//! The dashboard: `GET /dashboard` (one HTML page, `host/assets/dashboard.html`, no build step) and
//! the open `GET /api/v1/stats` it polls: ingest and conversion figures as JSON.
//!
//! The page shows the stats without a token; with one (kept in the browser's localStorage and sent
//! as a bearer token) it lists the caller's jobs and draws a succeeded job's result from
//! `/api/v1/jobs/{id}/result.svg`; it charts a chosen key across a schedule's runs from
//! `/api/v1/schedules/{id}/chart.svg`.
//!
//! The stats are read from the server's own metrics: plain counters and gauges directly, the
//! per-status request counts and latency histograms from the OpenMetrics text `/metrics` serves
//! (`prometheus_client` has no public reader for families and histograms).

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;

use super::AppState;

/// The page, compiled in.
const PAGE: &str = include_str!("../../assets/dashboard.html");

/// What the page may load: only this server; inline script and style are its own. No site may
/// frame it (`frame-ancestors 'none'`, and `X-Frame-Options: DENY` for browsers without CSP 2), so a
/// page holding a token cannot be clickjacked.
const PAGE_POLICY: &str = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; \
                           img-src 'self' blob:; connect-src 'self'; base-uri 'none'; form-action 'none'; \
                           frame-ancestors 'none'";

/// `GET /dashboard`.
pub async fn page() -> Response {
    let headers = [
        (header::CONTENT_TYPE, "text/html; charset=utf-8"),
        (header::CONTENT_SECURITY_POLICY, PAGE_POLICY),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::CACHE_CONTROL, "no-cache"),
    ];
    (headers, PAGE).into_response()
}

/// The body of `GET /api/v1/stats` (documented in docs/openapi.json as `Stats`).
#[derive(Debug, Serialize)]
pub struct Stats {
    /// The server's version.
    pub version: &'static str,
    /// HTTP responses since start by status code (every route, the dashboard's own polls included).
    pub requests_by_code: BTreeMap<String, u64>,
    /// Submission body bytes accepted.
    pub received_bytes: u64,
    /// Records appended to raw logs.
    pub records_written: u64,
    /// Bytes appended to raw logs.
    pub bytes_written: u64,
    /// Failed raw log writes or syncs.
    pub write_errors: u64,
    /// Raw logs finished.
    pub rotations: u64,
    /// Submissions writing or waiting for their sync now.
    pub queue_depth: i64,
    /// Free bytes on the data directory's file system (`null` when it cannot be read).
    pub disk_free_bytes: Option<u64>,
    /// Submission latency, request start to response.
    pub submit_latency: Latency,
    /// `fdatasync` latency of the raw log writers.
    pub fsync_latency: Latency,
    /// Live conversion of finished raw logs.
    pub convert: ConvertStats,
}

/// A latency histogram in milliseconds. The quantiles are upper bounds: the top of the histogram
/// bucket the quantile falls in (`null` with no observations, or above the last bucket).
#[derive(Debug, Default, Serialize, PartialEq)]
pub struct Latency {
    /// Requests observed.
    pub count: u64,
    /// Mean latency in milliseconds.
    pub mean_ms: Option<f64>,
    /// Upper bound of the bucket holding the median.
    pub p50_ms: Option<f64>,
    /// Upper bound of the bucket holding the 99th percentile.
    pub p99_ms: Option<f64>,
}

/// Live conversion counters.
#[derive(Debug, Serialize)]
pub struct ConvertStats {
    /// Finished raw logs waiting to be converted.
    pub pending_logs: i64,
    /// Raw logs converted since start.
    pub logs: u64,
    /// Raw logs whose conversion failed since start.
    pub failed_logs: u64,
    /// Records read from raw logs since start.
    pub records_read: u64,
    /// Records written to partition files since start.
    pub records_written: u64,
}

/// `GET /api/v1/stats` (no token, like `/metrics`).
pub async fn stats(State(state): State<Arc<AppState>>) -> Json<Stats> {
    let m = &state.metrics;
    let text = m.encode();
    let samples = parse_samples(&text);
    let requests_by_code = samples
        .iter()
        .filter(|s| s.name == "telemetry_http_requests_total")
        .filter_map(|s| Some((label(s.labels, "code")?.to_string(), s.value as u64)))
        .collect();
    Json(Stats {
        version: env!("CARGO_PKG_VERSION"),
        requests_by_code,
        received_bytes: m.http.received_bytes.get(),
        records_written: m.ingest.written_records.get(),
        bytes_written: m.ingest.written_bytes.get(),
        write_errors: m.ingest.write_errors.get(),
        rotations: m.ingest.rotations.get(),
        queue_depth: m.ingest.queue_depth.get(),
        disk_free_bytes: crate::ingest::disk::free_bytes(state.data_dir.dir()).ok(),
        submit_latency: latency(&samples, "telemetry_http_request_duration_seconds"),
        fsync_latency: latency(&samples, "telemetry_ingest_fsync_duration_seconds"),
        convert: ConvertStats {
            pending_logs: m.convert.pending_logs.get(),
            logs: m.convert.logs.get(),
            failed_logs: m.convert.failed_logs.get(),
            records_read: m.convert.records_read.get(),
            records_written: m.convert.records_written.get(),
        },
    })
}

/// One `name{labels} value` line of the OpenMetrics text.
#[derive(Debug, PartialEq)]
struct Sample<'a> {
    name: &'a str,
    /// The text between the braces (`code="200"`), empty without labels.
    labels: &'a str,
    value: f64,
}

/// Every sample line of an OpenMetrics exposition (comments and unparsable lines skipped).
fn parse_samples(text: &str) -> Vec<Sample<'_>> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let (name, labels) = match series.split_once('{') {
                Some((name, rest)) => (name, rest.strip_suffix('}')?),
                None => (series, ""),
            };
            Some(Sample {
                name,
                labels,
                value: value.parse().ok()?,
            })
        })
        .collect()
}

/// The value of label `key` in `a="x",b="y"` (the server's label values hold no quotes or commas).
fn label<'a>(labels: &'a str, key: &str) -> Option<&'a str> {
    labels.split(',').find_map(|pair| {
        pair.strip_prefix(key)?
            .strip_prefix("=\"")?
            .strip_suffix('"')
    })
}

/// The summary of histogram `name` (seconds) in milliseconds.
fn latency(samples: &[Sample], name: &str) -> Latency {
    let find = |suffix: &str| {
        samples
            .iter()
            .find(|s| s.name.strip_suffix(suffix) == Some(name))
            .map(|s| s.value)
    };
    let count = find("_count").unwrap_or(0.0);
    if count <= 0.0 {
        return Latency::default();
    }
    let bucket_name = format!("{name}_bucket");
    let mut buckets: Vec<(f64, f64)> = samples
        .iter()
        .filter(|s| s.name == bucket_name)
        .filter_map(|s| Some((label(s.labels, "le")?.parse::<f64>().ok()?, s.value)))
        .collect();
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    // The first bucket whose cumulative count reaches the quantile; +Inf means "above the last bound".
    let quantile = |q: f64| {
        buckets
            .iter()
            .find(|(_, cumulative)| *cumulative >= q * count)
            .map(|(le, _)| *le)
            .filter(|le| le.is_finite())
    };
    Latency {
        count: count as u64,
        mean_ms: find("_sum").map(|sum| ms(sum / count)),
        p50_ms: quantile(0.5).map(ms),
        p99_ms: quantile(0.99).map(ms),
    }
}

/// Seconds as milliseconds, to the microsecond.
fn ms(seconds: f64) -> f64 {
    (seconds * 1e6).round() / 1e3
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "# TYPE telemetry_http_requests counter\n\
        telemetry_http_requests_total{code=\"404\"} 1\n\
        telemetry_http_requests_total{code=\"200\"} 7\n\
        telemetry_x_seconds_sum 0.5\n\
        telemetry_x_seconds_count 100\n\
        telemetry_x_seconds_bucket{le=\"0.001\"} 10\n\
        telemetry_x_seconds_bucket{le=\"0.002\"} 60\n\
        telemetry_x_seconds_bucket{le=\"0.004\"} 98\n\
        telemetry_x_seconds_bucket{le=\"+Inf\"} 100\n\
        # EOF\n";

    #[test]
    fn samples_and_labels_are_read() {
        let samples = parse_samples(TEXT);
        assert_eq!(samples.len(), 8);
        assert_eq!(
            samples[1],
            Sample {
                name: "telemetry_http_requests_total",
                labels: "code=\"200\"",
                value: 7.0
            }
        );
        assert_eq!(label(samples[1].labels, "code"), Some("200"));
        assert_eq!(label("a=\"1\",le=\"+Inf\"", "le"), Some("+Inf"));
        assert_eq!(label("code=\"200\"", "le"), None);
    }

    #[test]
    fn latency_quantiles_are_bucket_upper_bounds() {
        let samples = parse_samples(TEXT);
        let l = latency(&samples, "telemetry_x_seconds");
        assert_eq!(l.count, 100);
        assert_eq!(l.mean_ms, Some(5.0));
        assert_eq!(l.p50_ms, Some(2.0));
        // The 99th percentile lies above the last finite bound: unknown, not invented.
        assert_eq!(l.p99_ms, None);
        assert_eq!(latency(&samples, "telemetry_missing"), Latency::default());
    }
}
