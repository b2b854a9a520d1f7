//! The column cache and Parquet results through a real server: a job run twice fills and then
//! hits the server's column cache, which `/metrics` shows (`telemetry_jobs_column_cache_*`), and
//! `GET /api/v1/jobs/{id}/result?format=parquet` is a Parquet file pyarrow reads back as the
//! text result.

use std::path::Path;

use reqwest::blocking::Client;
use serde_json::Value;

use crate::deploy::sample;
use crate::job_service::{self, ALICE};
use crate::jobs_support::run_job_over_http;
use crate::parquet::python;
use crate::server_support::TestServer;

const TOKEN: &str = ALICE;
const BUDGET: u64 = 1 << 30;

fn server() -> TestServer {
    job_service::server(|c| c.jobs.column_cache_bytes = BUDGET)
}

fn get(http: &Client, s: &TestServer, path: &str) -> reqwest::blocking::Response {
    http.get(s.url(path)).bearer_auth(TOKEN).send().unwrap()
}

/// Bytes of the files under `columns/<key>/` (not `tmp/`).
fn cache_bytes(columns: &Path) -> u64 {
    let mut total = 0;
    for key in std::fs::read_dir(columns).unwrap() {
        let key = key.unwrap();
        if key.file_name() == "tmp" {
            continue;
        }
        for file in std::fs::read_dir(key.path()).unwrap() {
            total += file.unwrap().metadata().unwrap().len();
        }
    }
    total
}

fn metric(metrics: &str, name: &str) -> u64 {
    sample(metrics, &format!("{name} ")).unwrap_or_else(|| panic!("{name} not in:\n{metrics}"))
        as u64
}

#[test]
fn metrics_show_the_column_cache_filled_then_hit_by_a_job_run_twice() {
    let s = server();
    let http = Client::new();
    let base = s.url("");
    let before = s.metrics();
    assert_eq!(metric(&before, "telemetry_jobs_column_cache_hits_total"), 0);
    assert_eq!(
        metric(&before, "telemetry_jobs_column_cache_budget_bytes"),
        BUDGET
    );

    let first = run_job_over_http(&http, &base, TOKEN, "os-distribution-rust");
    let second = run_job_over_http(&http, &base, TOKEN, "os-distribution-rust");
    let cost = |id: &str| -> Value {
        get(&http, &s, &format!("/api/v1/jobs/{id}"))
            .json::<Value>()
            .unwrap()["cost"]["column_cache"]
            .clone()
    };
    let (c1, c2) = (cost(&first), cost(&second));
    let files = c1["writes"].as_u64().unwrap();
    assert!(files > 3, "{c1}");
    assert_eq!(c2["hits"].as_u64(), Some(files), "{c2}");

    let m = s.metrics();
    assert_eq!(
        metric(&m, "telemetry_jobs_column_cache_misses_total"),
        files
    );
    assert_eq!(
        metric(&m, "telemetry_jobs_column_cache_writes_total"),
        files
    );
    assert_eq!(metric(&m, "telemetry_jobs_column_cache_hits_total"), files);
    assert_eq!(
        metric(&m, "telemetry_jobs_column_cache_read_bytes_total"),
        c2["cache_file_bytes"].as_u64().unwrap(),
        "bytes read by hits are what the second run's cost report counts"
    );
    let on_disk = cache_bytes(&s.data_dir().join("columns"));
    assert!(on_disk > 0);
    assert_eq!(
        metric(&m, "telemetry_jobs_column_cache_written_bytes_total"),
        on_disk
    );
    assert_eq!(metric(&m, "telemetry_jobs_column_cache_bytes"), on_disk);
    assert_eq!(
        metric(&m, "telemetry_jobs_column_cache_budget_bytes"),
        BUDGET
    );
    assert_eq!(
        metric(&m, "telemetry_jobs_column_cache_evicted_files_total"),
        0
    );
    assert_eq!(metric(&m, "telemetry_jobs_column_cache_bad_files_total"), 0);
}

#[test]
fn the_api_serves_a_result_as_parquet_that_pyarrow_reads_back() {
    let s = server();
    let http = Client::new();
    let id = run_job_over_http(&http, &s.url(""), TOKEN, "os-distribution-rust");
    let text = get(&http, &s, &format!("/api/v1/jobs/{id}/result"))
        .text()
        .unwrap();
    assert!(text.lines().count() > 1, "{text}");

    let r = get(
        &http,
        &s,
        &format!("/api/v1/jobs/{id}/result?format=parquet"),
    );
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(
        r.headers()["content-type"].to_str().unwrap(),
        "application/vnd.apache.parquet"
    );
    let bytes = r.bytes().unwrap();
    assert_eq!(&bytes[..4], b"PAR1");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("result.parquet");
    std::fs::write(&file, &bytes).unwrap();
    let read_back = python(
        "import sys, pyarrow.parquet as pq\n\
         t = pq.read_table(sys.argv[1])\n\
         print(t.schema.field('value').type)\n\
         for k, v in zip(t.column('key').to_pylist(), t.column('value').to_pylist()):\n    \
             print(f'{k}\\t{v}')",
        &[&file],
    );
    let (value_type, rows) = read_back.split_once('\n').unwrap();
    assert_eq!(value_type, "int64", "os-distribution counts are integers");
    assert_eq!(rows, text, "pyarrow reads the same keys and counts");

    let bad = get(&http, &s, &format!("/api/v1/jobs/{id}/result?format=xlsx"));
    assert_eq!(bad.status().as_u16(), 400);
    assert!(bad.text().unwrap().contains("parquet"));
}
