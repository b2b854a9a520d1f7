//! Scheduled jobs and outputs end to end: a daily schedule driven by a manual clock through the
//! real job API (in-process HTTP server, real os-distribution guest over generated pings): three
//! runs over "yesterday", three results in the history, a restart mid-schedule that runs once for
//! the missed slots; and a job output written to s3s-fs that reads back equal to the API result.

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use reqwest::blocking::Client;
use serde_json::{json, Value};
use telemetry_server::api::jobs::{hash_token, JobService, JobsConfig, Role, TokenConfig};
use telemetry_server::config::Config;
use telemetry_server::convert::DEFAULT_SCHEMA;
use telemetry_server::jobs::schedule::ManualClock;
use telemetry_server::storage::{DataDir, Schema};

use crate::common;
use crate::jobs_support::{filter_json, job_form, native_os_distribution, stored_records};
use crate::s3_common::{self, S3Server};
use crate::server_support::TestServer;

const ALICE: &str = "alice-schedule-token";
const BOB: &str = "bob-schedule-token";
const GUEST: &str = "os-distribution-rust";
/// Pings per submission date (of every 6): 1 on the 1st, 2 on the 2nd, 3 on the 4th.
const DATES: [&str; 6] = [
    "20261201", "20261202", "20261202", "20261204", "20261204", "20261204",
];

fn tokens() -> Vec<TokenConfig> {
    [("alice", ALICE), ("bob", BOB)]
        .into_iter()
        .map(|(name, token)| TokenConfig {
            name: name.into(),
            sha256: hash_token(token),
            role: Role::Submit,
        })
        .collect()
}

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

/// The job API of a [`JobService`] on a free port, on its own runtime.
struct Served {
    base: String,
    service: Arc<JobService>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Served {
    fn start(data: &std::path::Path, clock: Arc<ManualClock>) -> Served {
        let config = JobsConfig {
            tokens: tokens(),
            schedule_tick_ms: 20,
            ..JobsConfig::default()
        };
        let service = JobService::start_with_clock(
            &config,
            &DataDir::open(data).unwrap(),
            Schema::from_json(DEFAULT_SCHEMA).unwrap(),
            std::sync::Arc::new(telemetry_server::histograms::RevisionCache::embedded()),
            clock,
        )
        .unwrap();
        let router = axum::Router::new().nest(
            "/api/v1",
            telemetry_server::api::jobs::router(service.clone()),
        );
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                ready_tx.send(listener.local_addr().unwrap()).unwrap();
                axum::serve(listener, router)
                    .with_graceful_shutdown(async {
                        let _ = stopped.await;
                    })
                    .await
                    .unwrap();
            });
        });
        let addr = ready_rx.recv_timeout(Duration::from_secs(30)).unwrap();
        Served {
            base: format!("http://{addr}/api/v1"),
            service,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            thread.join().unwrap();
        }
        self.service.shutdown();
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        self.stop();
    }
}

fn client() -> Client {
    Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

/// POSTs a job with `manifest` and the guest; status and JSON body.
fn post(base: &str, token: &str, manifest: &Value) -> (u16, Value) {
    let form = job_form(manifest, GUEST);
    let r = client()
        .post(format!("{base}/jobs"))
        .bearer_auth(token)
        .multipart(form)
        .send()
        .unwrap();
    (r.status().as_u16(), r.json().unwrap())
}

fn get(base: &str, token: &str, path: &str) -> (u16, String) {
    let r = client()
        .get(format!("{base}{path}"))
        .bearer_auth(token)
        .send()
        .unwrap();
    (r.status().as_u16(), r.text().unwrap())
}

fn get_json(base: &str, token: &str, path: &str) -> Value {
    let (status, body) = get(base, token, path);
    assert_eq!(status, 200, "{path}: {body}");
    serde_json::from_str(&body).unwrap()
}

/// Polls the schedule's runs until `count` runs are finished.
fn wait_runs(base: &str, id: &str, count: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let runs = get_json(base, ALICE, &format!("/schedules/{id}/runs"))["runs"]
            .as_array()
            .unwrap()
            .clone();
        let finished = runs
            .iter()
            .filter(|r| {
                ["succeeded", "failed", "cancelled"].contains(&r["state"].as_str().unwrap())
            })
            .count();
        if runs.len() == count && finished == count {
            return runs;
        }
        assert!(runs.len() <= count, "more runs than slots: {runs:?}");
        assert!(
            Instant::now() < deadline,
            "still waiting for {count} runs: {runs:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn daily_manifest() -> Value {
    json!({
        "name": "os daily",
        "schedule": "daily 02:00",
        "filter": {"dimensions": [
            {"field_name": "submission_date", "allowed_values": {"min": "-1d", "max": "-1d"}}]}
    })
}

#[test]
fn a_daily_schedule_runs_over_yesterday_keeps_its_history_and_runs_once_after_a_restart() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    s3_common::write_generated(&DataDir::open(&data).unwrap(), 60, &DATES);
    let clock = Arc::new(ManualClock::new(at("2026-12-01T12:00:00Z")));
    let mut served = Served::start(&data, clock.clone());
    let base = served.base.clone();

    // Precise 400s at submit.
    for (manifest, code, detail) in [
        (
            json!({"name": "x", "schedule": "daily 24:00"}),
            "bad_schedule",
            "\"24:00\" is not a time HH:MM",
        ),
        (
            json!({"name": "x", "schedule": "0 0 * * MON"}),
            "bad_schedule",
            "day-of-week \"MON\" is not a number",
        ),
        (
            json!({"name": "x", "filter": {"dimensions": [{"field_name": "submission_date", "allowed_values": {"min": "-99999999d"}}]}}),
            "bad_filter",
            "relative date \"-99999999d\"",
        ),
        (
            json!({"name": "x", "output": "nowhere"}),
            "unknown_output",
            "output \"nowhere\" is not configured on this server; configured outputs: none",
        ),
        (
            json!({"name": "x", "run_at": "2026-12-01T00:00:00Z"}),
            "bad_manifest",
            "'run_at' is set by the server",
        ),
    ] {
        let (status, body) = post(&base, ALICE, &manifest);
        assert_eq!(
            (status, body["error"].as_str().unwrap()),
            (400, code),
            "{body}"
        );
        assert!(body["detail"].as_str().unwrap().contains(detail), "{body}");
    }

    let (status, created) = post(&base, ALICE, &daily_manifest());
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["next_run"], "2026-12-02T02:00:00Z");
    let id = created["id"].as_str().unwrap().to_string();
    // Token-scoped like jobs.
    assert_eq!(get(&base, BOB, &format!("/schedules/{id}")).0, 404);
    assert_eq!(get_json(&base, BOB, "/schedules")["schedules"], json!([]));
    assert_eq!(
        get_json(&base, ALICE, "/schedules")["schedules"][0]["id"],
        id
    );

    clock.set(at("2026-12-02T02:00:00Z"));
    wait_runs(&base, &id, 1);
    clock.set(at("2026-12-03T02:00:10Z"));
    wait_runs(&base, &id, 2);

    // Restart mid-schedule, down over the slots of the 4th and the 5th.
    served.stop();
    clock.set(at("2026-12-05T07:30:00Z"));
    let served = Served::start(&data, clock.clone());
    let base = served.base.clone();
    let runs = wait_runs(&base, &id, 3);
    // The missed slots run once: a few more ticks start nothing.
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(wait_runs(&base, &id, 3), runs);
    let schedule = get_json(&base, ALICE, &format!("/schedules/{id}"));
    assert_eq!(schedule["next_run"], "2026-12-06T02:00:00Z");

    let expected_dates = ["20261201", "20261202", "20261204"];
    // Restarted over two missed slots (the 4th and the 5th): one run, for the 5th, over the 4th.
    let slots = [
        "2026-12-02T02:00:00Z",
        "2026-12-03T02:00:00Z",
        "2026-12-05T02:00:00Z",
    ];
    let mut values = Vec::new();
    for ((run, date), slot) in runs.iter().zip(expected_dates).zip(slots) {
        assert_eq!(run["state"], "succeeded", "{run}");
        assert_eq!(run["scheduled_for"], slot);
        assert_eq!(
            run["filter"]["dimensions"][0]["allowed_values"],
            json!({"min": date, "max": date})
        );
        let seq = run["seq"].as_u64().unwrap();
        let (status, text) = get(&base, ALICE, &format!("/schedules/{id}/runs/{seq}/result"));
        assert_eq!(status, 200, "{text}");
        let filter = Schema::from_json(&filter_json(&[(5, &format!("\"{date}\""))])).unwrap();
        assert_eq!(
            text,
            native_os_distribution(&stored_records(&data, &filter)),
            "run {seq} over {date}"
        );
        values.push(text);
    }
    // 10 pings on the 1st, 20 on the 2nd, 30 on the 4th (none on the 3rd).
    let total = |text: &str| {
        text.lines()
            .map(|l| l.split('\t').nth(1).unwrap().parse::<u64>().unwrap())
            .sum::<u64>()
    };
    assert_eq!(
        values.iter().map(|v| total(v)).collect::<Vec<_>>(),
        [10, 20, 30]
    );

    // The chart draws a key of the first run across the three runs.
    let key = values[0]
        .lines()
        .next()
        .unwrap()
        .split('\t')
        .next()
        .unwrap()
        .to_string();
    let (status, svg) = get(
        &base,
        ALICE,
        &format!("/schedules/{id}/chart.svg?key={}", urlencode(&key)),
    );
    assert_eq!(status, 200, "{svg}");
    let first = values[0]
        .lines()
        .next()
        .unwrap()
        .split('\t')
        .nth(1)
        .unwrap();
    assert!(
        svg.contains(&format!(r#"data-run="2026-12-02" data-value="{first}""#)),
        "{svg}"
    );
    assert_eq!(
        svg.matches(r#"class="run""#).count() + svg.matches(r#"class="gap""#).count(),
        3,
        "{svg}"
    );
    assert_eq!(
        get(&base, BOB, &format!("/schedules/{id}/chart.svg?key=x")).0,
        404
    );
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// A real server (in-process, the whole `Server`) over 40 generated pings on `DATES`, with the
/// two tokens and `outputs` as `[jobs.outputs.NAME]`.
fn server_with_outputs(outputs: Vec<(&str, telemetry_server::export::S3Config)>) -> TestServer {
    let root = tempfile::tempdir().unwrap();
    s3_common::write_generated(
        &DataDir::open(&root.path().join("data")).unwrap(),
        40,
        &DATES,
    );
    let mut config = Config {
        data_dir: root.path().join("data"),
        ..Config::default()
    };
    config.server.listen = "127.0.0.1:0".parse().unwrap();
    config.ingest.shards = 1;
    config.convert.enabled = false;
    config.jobs.tokens = tokens();
    for (name, output) in outputs {
        config.jobs.outputs.insert(name.into(), output);
    }
    TestServer::start_with(root, config)
}

#[test]
fn a_job_output_is_written_to_s3_and_reads_back_equal_to_the_api_result() {
    let s3 = S3Server::start();
    let dead = S3Server::start();
    let dead_config = dead.config("results", "");
    drop(dead); // nothing listens there any more
    let server = server_with_outputs(vec![
        ("results", s3.config("job-results", "telemetry/")),
        (
            "dead",
            telemetry_server::export::S3Config {
                max_attempts: 1,
                ..dead_config
            },
        ),
    ]);
    let base = server.url("/api/v1");

    let (status, body) = post(&base, ALICE, &json!({"name": "os", "output": "elsewhere"}));
    assert_eq!(
        (status, body["error"].as_str().unwrap()),
        (400, "unknown_output"),
        "{body}"
    );
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("configured outputs: dead, results"),
        "{body}"
    );

    let rt = s3_common::runtime();
    let s3_client = rt.block_on(async {
        telemetry_server::s3::client::build(&s3.config("job-results", "")).unwrap()
    });
    for format in ["csv", "ndjson", "text"] {
        let (status, body) = post(
            &base,
            ALICE,
            &json!({"name": "os distribution", "output": "results", "output_format": format}),
        );
        assert_eq!(status, 202, "{body}");
        let id = body["id"].as_str().unwrap();
        let job = wait_final(&base, id);
        assert_eq!(job["state"], "succeeded", "{job}");
        let (status, api) = get(&base, ALICE, &format!("/jobs/{id}/result?format={format}"));
        assert_eq!(status, 200);
        let url = job["output"]["url"].as_str().unwrap();
        let key = url.strip_prefix("s3://job-results/").unwrap();
        let ext = if format == "text" { "txt" } else { format };
        let parts: Vec<&str> = key.split('/').collect();
        assert_eq!(
            (parts[0], parts[1], parts[3]),
            ("telemetry", "os_distribution", &*format!("result.{ext}")),
            "{key}"
        );
        assert!(
            DateTime::parse_from_str(
                &format!("{}+0000", parts[2].trim_end_matches('Z')),
                "%Y%m%dT%H%M%S%.3f%z"
            )
            .is_ok(),
            "{key}"
        );
        let stored = rt.block_on(s3_common::get_bytes(&s3_client, "job-results", key));
        assert_eq!(String::from_utf8(stored).unwrap(), api, "{format}");
        assert_eq!(job["output"]["bytes"].as_u64().unwrap(), api.len() as u64);
        assert!(!api.is_empty());
    }

    // A write that fails fails the job, saying why.
    let (_, body) = post(&base, ALICE, &json!({"name": "os", "output": "dead"}));
    let job = wait_final(&base, body["id"].as_str().unwrap());
    assert_eq!(job["state"], "failed", "{job}");
    let error = job["error"].as_str().unwrap();
    assert!(
        error.contains("writing its result to output 'dead' failed"),
        "{error}"
    );
    let metrics = server.metrics();
    assert!(
        metrics.contains("telemetry_jobs_outputs_written_total 3"),
        "{metrics}"
    );
    assert!(
        metrics.contains("telemetry_jobs_outputs_failed_total 1"),
        "{metrics}"
    );
}

/// `telemetry-server job submit --output NAME` and `--schedule SPEC`, through the real binary
/// against a real server and s3s-fs: the output object reads back equal to the API result; the
/// schedule is created as given, with the output, and its first run is the next 02:00 UTC; an
/// unknown output or a bad spec fails with the server's reason; a schedule cannot be waited for.
#[test]
fn job_submit_flags_schedule_and_output_reach_the_server() {
    let s3 = S3Server::start();
    let server = server_with_outputs(vec![("results", s3.config("cli-results", "cli/"))]);
    let base = server.url("/api/v1");
    let submit = |flags: &[&str]| {
        let out = Command::new(common::binary())
            .args(["job", "submit"])
            .arg(common::guest(GUEST))
            .args(flags)
            .args(["--server", &server.url(""), "--token", ALICE])
            .output()
            .unwrap();
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        (out.status.code(), text(&out.stdout), text(&out.stderr))
    };

    let (code, stdout, stderr) = submit(&["--output", "results", "--name", "os by cli"]);
    assert_eq!(code, Some(0), "{stderr}");
    let job = wait_final(&base, stdout.trim());
    assert_eq!(job["state"], "succeeded", "{job}");
    assert_eq!(job["manifest"]["output"], "results", "{job}");
    let (_, api) = get(&base, ALICE, &format!("/jobs/{}/result", stdout.trim()));
    assert!(!api.is_empty());
    let url = job["output"]["url"].as_str().unwrap();
    let key = url.strip_prefix("s3://cli-results/").unwrap();
    assert!(key.starts_with("cli/os_by_cli/"), "{key}");
    let rt = s3_common::runtime();
    let s3_client = rt.block_on(async {
        telemetry_server::s3::client::build(&s3.config("cli-results", "")).unwrap()
    });
    let stored = rt.block_on(s3_common::get_bytes(&s3_client, "cli-results", key));
    assert_eq!(String::from_utf8(stored).unwrap(), api);

    let (code, stdout, stderr) = submit(&["--schedule", "daily 02:00", "--output", "results"]);
    assert_eq!(code, Some(0), "{stderr}");
    let schedule = get_json(&base, ALICE, &format!("/schedules/{}", stdout.trim()));
    assert_eq!(
        schedule["manifest"]["schedule"], "daily 02:00",
        "{schedule}"
    );
    assert_eq!(schedule["manifest"]["output"], "results", "{schedule}");
    let next = at(schedule["next_run"].as_str().unwrap());
    let now = Utc::now();
    assert!(
        next > now - chrono::Duration::minutes(1) && next <= now + chrono::Duration::days(1),
        "{next}"
    );
    assert_eq!(next.format("%H:%M:%S").to_string(), "02:00:00");
    assert!(
        stderr.contains(&format!(
            "next run {}",
            schedule["next_run"].as_str().unwrap()
        )),
        "{stderr}"
    );
    let listed = get_json(&base, ALICE, "/schedules");
    assert_eq!(listed["schedules"].as_array().unwrap().len(), 1, "{listed}");

    let (code, stdout, stderr) = submit(&["--schedule", "sometimes"]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stdout.is_empty() && stderr.contains("400 Bad Request bad_schedule"),
        "{stderr}"
    );
    let (code, _, stderr) = submit(&["--output", "elsewhere"]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("unknown_output") && stderr.contains("results"),
        "{stderr}"
    );
    let (code, _, stderr) = submit(&["--schedule", "daily 02:00", "--wait"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("cannot be used with"), "{stderr}");
    assert_eq!(
        get_json(&base, ALICE, "/schedules")["schedules"]
            .as_array()
            .unwrap()
            .len(),
        1,
        "nothing else was created"
    );
}

fn wait_final(base: &str, id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let job = get_json(base, ALICE, &format!("/jobs/{id}"));
        if ["succeeded", "failed", "cancelled"].contains(&job["state"].as_str().unwrap()) {
            return job;
        }
        assert!(Instant::now() < deadline, "{job}");
        std::thread::sleep(Duration::from_millis(20));
    }
}
