//! The charts and the dashboard on a real server over real HTTP: real guests built from
//! `example-jobs/` run over real pings from ../shared/data (the job tests' converted data), their
//! results fetched as SVG charts and read back as XML; the dashboard page and its stats endpoint
//! after real pings were submitted.

use crate::common;
use crate::jobs_support;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::chart_support::read_chart;
use crate::server_support::TestServer;
use reqwest::blocking::{Client, Response};
use serde_json::Value;
use telemetry_server::api::jobs::{hash_token, Role, TokenConfig};
use telemetry_server::config::Config;

const ALICE: &str = "alice-token-0123456789";
const BOB: &str = "bob-token-0123456789";

fn filter_path() -> std::path::PathBuf {
    common::data("seed/mapreduce-filters/examples-v2/filter_include_all.json")
}

/// A server whose data dir holds a copy of the job tests' converted real pings (the job service
/// keeps its queue there, so each server gets its own copy).
fn server() -> TestServer {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let copied = Command::new("cp")
        .arg("-r")
        .arg(jobs_support::converted_data().join("storage"))
        .arg(&data)
        .status()
        .unwrap();
    assert!(copied.success(), "copying the test data failed");
    let mut config = Config {
        data_dir: data,
        ..Config::default()
    };
    config.server.listen = "127.0.0.1:0".parse().unwrap();
    config.ingest.shards = 1;
    config.convert.enabled = false;
    config.jobs.tokens = vec![
        TokenConfig {
            name: "alice".into(),
            sha256: hash_token(ALICE),
            role: Role::Submit,
        },
        TokenConfig {
            name: "bob".into(),
            sha256: hash_token(BOB),
            role: Role::Submit,
        },
    ];
    TestServer::start_with(root, config)
}

fn client() -> Client {
    Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

/// Submits `guest` (named after it) over every stored record and waits for it to succeed.
fn run_job(s: &TestServer, guest: &str) -> String {
    crate::jobs_support::run_job_over_http(&client(), &s.url(""), ALICE, guest)
}

fn get(s: &TestServer, token: Option<&str>, path: &str) -> Response {
    let mut req = client().get(s.url(path));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    req.send().unwrap()
}

/// `(status, error code, detail)` of a JSON error answer.
fn error_of(r: Response) -> (u16, String, String) {
    let status = r.status().as_u16();
    let body: Value = r.json().expect("error bodies are JSON");
    (
        status,
        body["error"].as_str().unwrap().to_string(),
        body["detail"].as_str().unwrap().to_string(),
    )
}

/// The text result as `(key, count)` rows, largest first (ties by key, as the chart orders them).
fn rows_by_value(text: &str) -> Vec<(String, f64)> {
    let mut rows: Vec<(String, f64)> = text
        .lines()
        .map(|l| {
            let (k, v) = l.split_once('\t').unwrap();
            (k.to_string(), v.parse().unwrap())
        })
        .collect();
    rows.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    rows
}

fn cli(args: &[&str], extra: &[&Path]) -> std::process::Output {
    Command::new(common::binary())
        .args(args)
        .args(extra)
        .output()
        .unwrap()
}

#[test]
fn result_chart_has_a_bar_per_key_sized_like_its_value_and_matches_the_cli() {
    let s = server();
    let id = run_job(&s, "os-distribution-rust");
    let text = get(&s, Some(ALICE), &format!("/api/v1/jobs/{id}/result"))
        .text()
        .unwrap();
    let rows = rows_by_value(&text);
    assert!(
        rows.len() > 12 && rows.len() <= 30,
        "the fixture gives {} keys",
        rows.len()
    );

    let r = get(&s, Some(ALICE), &format!("/api/v1/jobs/{id}/result.svg"));
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(r.headers()["content-type"], "image/svg+xml");
    assert!(r.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .starts_with("default-src 'none'"));
    let svg = r.text().unwrap();
    let (bars, labels) = read_chart(&svg);
    // One bar per key, in value order, each carrying its key and value and labelled with its key.
    assert_eq!(bars.len(), rows.len());
    for ((bar, label), (key, value)) in bars.iter().zip(&labels).zip(&rows) {
        assert_eq!(bar.key.as_deref(), Some(key.as_str()));
        assert_eq!(bar.value, *value, "{key}");
        assert_eq!(label, key);
    }
    // Widths are proportional to the values (all counts are positive here).
    let scale = bars[0].width / bars[0].value;
    for bar in &bars {
        assert!(
            (bar.width - bar.value * scale).abs() < 0.05,
            "{bar:?} is not {scale} px per unit"
        );
    }
    assert!(bars.windows(2).all(|w| w[0].width >= w[1].width));
    assert!(
        bars.first().unwrap().width > bars.last().unwrap().width,
        "values differ, so must the bars"
    );
    assert!(svg.contains("<title id=\"chart-title\">os-distribution-rust</title>"));
    let total: f64 = rows.iter().map(|r| r.1).sum();
    assert!(
        svg.contains(&format!("{} keys, total {total}", rows.len())),
        "subtitle names keys and total"
    );

    // ?top= keeps the largest keys and sums the rest in one "other" bar.
    let (bars, labels) = read_chart(
        &get(
            &s,
            Some(ALICE),
            &format!("/api/v1/jobs/{id}/result.svg?top=5"),
        )
        .text()
        .unwrap(),
    );
    assert_eq!(bars.len(), 6);
    for (bar, (key, _)) in bars.iter().zip(&rows[..5]) {
        assert_eq!(bar.key.as_deref(), Some(key.as_str()));
    }
    let other = &bars[5];
    assert_eq!(
        (other.key.as_deref(), other.keys),
        (None, Some(rows.len() - 5))
    );
    assert_eq!(other.value, rows[5..].iter().map(|r| r.1).sum::<f64>());
    assert_eq!(labels[5], format!("other ({} keys)", rows.len() - 5));
    let (status, code, detail) = error_of(get(
        &s,
        Some(ALICE),
        &format!("/api/v1/jobs/{id}/result.svg?top=0"),
    ));
    assert_eq!((status, code.as_str()), (400, "bad_query"), "{detail}");

    // The same token rules as the result: none → 401, someone else's job → 404 as if it did
    // not exist (its owner is not named).
    let (status, code, _) = error_of(get(&s, None, &format!("/api/v1/jobs/{id}/result.svg")));
    assert_eq!((status, code.as_str()), (401, "unauthorized"));
    let (status, code, detail) =
        error_of(get(&s, Some(BOB), &format!("/api/v1/jobs/{id}/result.svg")));
    assert_eq!((status, code.as_str()), (404, "not_found"), "{detail}");
    assert!(!detail.contains("alice"), "{detail}");

    // The CLI writes the same chart from the server (`job result`, `job submit --wait`), and
    // `job run --chart` draws the same one locally.
    let dir = tempfile::tempdir().unwrap();
    let (remote, submitted, local) = (
        dir.path().join("remote.svg"),
        dir.path().join("submitted.svg"),
        dir.path().join("local.svg"),
    );
    let out = cli(
        &[
            "job",
            "result",
            &id,
            "--server",
            &s.url(""),
            "--token",
            ALICE,
            "--chart",
        ],
        &[&remote],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(std::fs::read_to_string(&remote).unwrap(), svg);
    let guest = common::guest("os-distribution-rust");
    let filter = filter_path();
    let out = cli(
        &[
            "job",
            "submit",
            "--server",
            &s.url(""),
            "--token",
            ALICE,
            "--wait",
        ],
        &[
            &guest,
            Path::new("--filter"),
            &filter,
            Path::new("--chart"),
            &submitted,
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        text,
        "submit --wait still prints the result"
    );
    assert_eq!(std::fs::read_to_string(&submitted).unwrap(), svg);
    let out = cli(
        &["job", "run"],
        &[
            &guest,
            Path::new("--data-dir"),
            &s.data_dir(),
            Path::new("--filter"),
            &filter,
            Path::new("--chart"),
            &local,
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        text,
        "job run still prints its output"
    );
    assert_eq!(
        std::fs::read_to_string(&local).unwrap(),
        svg,
        "local and server charts differ"
    );
}

#[test]
fn results_that_are_not_numbers_are_refused_as_not_chartable() {
    let s = server();
    let id = run_job(&s, "simple-counter-rust");
    let text = get(&s, Some(ALICE), &format!("/api/v1/jobs/{id}/result"))
        .text()
        .unwrap();
    let (first_key, first_value) = text.lines().next().unwrap().split_once('\t').unwrap();
    assert!(
        first_value.parse::<f64>().is_err(),
        "simple-counter's values are `records=N duplicates=M`"
    );

    let (status, code, detail) = error_of(get(
        &s,
        Some(ALICE),
        &format!("/api/v1/jobs/{id}/result.svg"),
    ));
    assert_eq!((status, code.as_str()), (400, "not_chartable"));
    assert!(detail.contains("not chartable"), "{detail}");
    assert!(
        detail.contains(&format!("key '{first_key}' (line 1) is '{first_value}'")),
        "{detail}"
    );
    // The result itself is still there in every table format.
    assert_eq!(
        get(
            &s,
            Some(ALICE),
            &format!("/api/v1/jobs/{id}/result?format=csv")
        )
        .status()
        .as_u16(),
        200
    );

    // The CLI says so and fails, writing no file; `job run` prints the output before it fails.
    let dir = tempfile::tempdir().unwrap();
    let chart = dir.path().join("c.svg");
    let out = cli(
        &[
            "job",
            "result",
            &id,
            "--server",
            &s.url(""),
            "--token",
            ALICE,
            "--chart",
        ],
        &[&chart],
    );
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("not_chartable") && stderr.contains("not a number"),
        "{stderr}"
    );
    let (guest, filter) = (common::guest("simple-counter-rust"), filter_path());
    let out = cli(
        &["job", "run"],
        &[
            &guest,
            Path::new("--data-dir"),
            &s.data_dir(),
            Path::new("--filter"),
            &filter,
            Path::new("--chart"),
            &chart,
        ],
    );
    assert!(!out.status.success());
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        text,
        "the output is not lost"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("cannot be charted") && stderr.contains(first_key),
        "{stderr}"
    );
    assert!(!chart.exists());
}

#[test]
fn dashboard_page_uses_endpoints_that_answer_and_stats_count_real_pings() {
    let s = TestServer::start(|c| {
        c.ingest.shards = 1;
        c.server.max_data_length = 1 << 20; // room for the largest real ping
    });
    // Real pings through the real submission API, and one refused request.
    let mut sent = 0;
    let mut body_bytes = 0;
    for entry in std::fs::read_dir(common::data("pings")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "json") {
            let body = std::fs::read(&path).unwrap();
            body_bytes += body.len() as u64;
            let url = s.url(&format!(
                "/submit/telemetry/dash-{sent}/main/Firefox/61.0/release/20180101"
            ));
            assert_eq!(
                client()
                    .post(url)
                    .body(body)
                    .send()
                    .unwrap()
                    .status()
                    .as_u16(),
                200
            );
            sent += 1;
        }
    }
    assert!(sent >= 5, "only {sent} real pings");
    let refused = client()
        .post(s.url("/submit/telemetry/dash-x/main"))
        .body(Vec::new())
        .send()
        .unwrap()
        .status()
        .as_u16();
    assert_eq!(
        refused, 411,
        "an empty body has no content length for the seed"
    );

    let r = get(&s, None, "/api/v1/stats");
    assert_eq!(r.status().as_u16(), 200, "stats are open, like /metrics");
    let stats: Value = r.json().unwrap();
    assert_eq!(stats["records_written"], sent);
    assert_eq!(stats["received_bytes"], body_bytes);
    assert!(
        stats["bytes_written"].as_u64().unwrap() > body_bytes,
        "raw records carry their path too"
    );
    assert!(stats["disk_free_bytes"].as_u64().unwrap() > 0);
    assert_eq!(stats["submit_latency"]["count"].as_u64().unwrap(), sent + 1);
    let fsync = &stats["fsync_latency"];
    assert!(
        fsync["count"].as_u64().unwrap() >= 1,
        "batch durability syncs: {stats}"
    );
    assert!(fsync["mean_ms"].as_f64().unwrap() > 0.0);
    let codes: BTreeMap<String, u64> =
        serde_json::from_value(stats["requests_by_code"].clone()).unwrap();
    assert_eq!(codes["200"], sent);
    assert_eq!(codes[&refused.to_string()], 1);
    // The same figures as /metrics.
    let metrics = s.metrics();
    assert!(
        metrics.contains(&format!("telemetry_ingest_written_records_total {sent}\n")),
        "{metrics}"
    );

    let r = get(&s, None, "/dashboard");
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(r.headers()["content-type"], "text/html; charset=utf-8");
    let policy = r.headers()["content-security-policy"].to_str().unwrap();
    assert!(policy.contains("connect-src 'self'"), "{policy}");
    // No other site may frame the page (clickjacking).
    assert!(
        policy
            .split(';')
            .any(|d| d.trim() == "frame-ancestors 'none'"),
        "{policy}"
    );
    assert_eq!(r.headers()["x-frame-options"], "DENY");
    let html = r.text().unwrap();
    assert!(html.starts_with("<!doctype html>"));
    for uses in [
        "\"/api/v1/stats\"",
        "\"/api/v1/jobs\"",
        "\"/result.svg\"",
        "Authorization: \"Bearer \"",
        "localStorage",
        "setInterval",
    ] {
        assert!(html.contains(uses), "the page does not use {uses}");
    }
    assert!(
        !html.contains("innerHTML"),
        "server data goes on the page as text only"
    );
    // What the page polls answers: the job list wants the token the page sends.
    let (status, code, _) = error_of(get(&s, None, "/api/v1/jobs"));
    assert_eq!((status, code.as_str()), (401, "unauthorized"));
}
