//! End-to-end tests of the job service (`/api/v1`) on a real server over real HTTP: real guests
//! built from `example-jobs/` by scripts/build-guests.sh, real pings from ../shared/data (plus
//! pings made from them by ../shared/tools/gen-pings.py) converted into storage.

use crate::common;
use crate::jobs_support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::server_support::TestServer;
use reqwest::blocking::{multipart, Client, Response};
use serde_json::{json, Value};
use telemetry_server::api::jobs::{hash_token, Role, TokenConfig};
use telemetry_server::config::Config;

pub(crate) const ALICE: &str = "alice-token-0123456789";
const BOB: &str = "bob-token-0123456789";
const ROOT: &str = "root-token-0123456789";
/// Small so the too-large upload test is cheap; real guests are well under it.
const MAX_COMPONENT: u64 = 2 << 20;

/// The seed's include-everything filter.
fn filter_path() -> PathBuf {
    common::data("seed/mapreduce-filters/examples-v2/filter_include_all.json")
}

fn filter() -> Value {
    serde_json::from_str(&std::fs::read_to_string(filter_path()).unwrap()).unwrap()
}

/// A temp root whose `data/storage` is a copy of the job tests' data (real pings from
/// ../shared/data, converted where the converter accepts them, plus gen-pings.py pings; built once
/// per test binary by `jobs_support::converted_data`). Each server gets its own copy because the
/// job service keeps its queue in the same data dir.
pub(crate) fn data_root() -> tempfile::TempDir {
    let root = tempfile::tempdir().unwrap();
    let copied = copy_dir(
        &jobs_support::converted_data().join("storage"),
        &root.path().join("data/storage"),
    );
    assert!(copied > 3, "only {copied} partition files in the fixture");
    root
}

/// Copies a directory tree; returns the number of files copied.
fn copy_dir(from: &Path, to: &Path) -> usize {
    std::fs::create_dir_all(to).unwrap();
    let mut files = 0;
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            files += copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
            files += 1;
        }
    }
    files
}

fn tokens(config: &mut Config) {
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
        TokenConfig {
            name: "root".into(),
            sha256: hash_token(ROOT),
            role: Role::Admin,
        },
    ];
    config.jobs.max_component_bytes = MAX_COMPONENT;
}

/// A server over a fresh converted data dir.
pub(crate) fn server(tweak: impl FnOnce(&mut Config)) -> TestServer {
    server_on(data_root(), tweak)
}

fn server_on(root: tempfile::TempDir, tweak: impl FnOnce(&mut Config)) -> TestServer {
    let mut config = Config {
        data_dir: root.path().join("data"),
        ..Config::default()
    };
    config.server.listen = "127.0.0.1:0".parse().unwrap();
    config.ingest.shards = 1;
    config.convert.enabled = false;
    tokens(&mut config);
    tweak(&mut config);
    TestServer::start_with(root, config)
}

pub(crate) fn client() -> Client {
    Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

fn manifest(name: &str, param: Option<&str>) -> Value {
    let mut m = json!({ "name": name, "filter": filter() });
    if let Some(p) = param {
        m["parameter"] = json!(p);
    }
    m
}

/// `POST /api/v1/jobs` with the given parts (either may be absent).
pub(crate) fn post_job(
    s: &TestServer,
    token: Option<&str>,
    component: Option<Vec<u8>>,
    manifest: Option<&Value>,
) -> Response {
    let mut form = multipart::Form::new();
    if let Some(m) = manifest {
        form = form.part(
            "manifest",
            multipart::Part::text(m.to_string())
                .mime_str("application/json")
                .unwrap(),
        );
    }
    if let Some(c) = component {
        form = form.part("component", multipart::Part::bytes(c).file_name("job.wasm"));
    }
    let mut req = client().post(s.url("/api/v1/jobs")).multipart(form);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    req.send().unwrap()
}

fn guest(name: &str) -> Vec<u8> {
    std::fs::read(common::guest(name)).unwrap()
}

/// Submits and returns the job id, asserting 202.
pub(crate) fn submit(s: &TestServer, token: &str, guest_name: &str, manifest: &Value) -> String {
    let r = post_job(s, Some(token), Some(guest(guest_name)), Some(manifest));
    let status = r.status().as_u16();
    let body: Value = r.json().unwrap();
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["state"], "queued");
    body["id"].as_str().unwrap().to_string()
}

pub(crate) fn get_json(s: &TestServer, token: &str, path: &str) -> (u16, Value) {
    let r = client().get(s.url(path)).bearer_auth(token).send().unwrap();
    (r.status().as_u16(), r.json().unwrap())
}

pub(crate) fn job(s: &TestServer, token: &str, id: &str) -> Value {
    let (status, body) = get_json(s, token, &format!("/api/v1/jobs/{id}"));
    assert_eq!(status, 200, "{body}");
    body
}

/// Polls until the job is in a final state (or `want`), failing after `timeout`.
pub(crate) fn wait_state(
    s: &TestServer,
    token: &str,
    id: &str,
    want: &[&str],
    timeout: Duration,
) -> Value {
    let deadline = Instant::now() + timeout;
    loop {
        let j = job(s, token, id);
        if want.contains(&j["state"].as_str().unwrap()) {
            return j;
        }
        assert!(
            Instant::now() < deadline,
            "job {id} still {} after {timeout:?}: {j}",
            j["state"]
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn wait_done(s: &TestServer, token: &str, id: &str) -> Value {
    wait_state(
        s,
        token,
        id,
        &["succeeded", "failed", "cancelled"],
        Duration::from_secs(120),
    )
}

fn result(s: &TestServer, token: &str, id: &str, format: &str) -> (u16, String) {
    let r = client()
        .get(s.url(&format!("/api/v1/jobs/{id}/result?format={format}")))
        .bearer_auth(token)
        .send()
        .unwrap();
    (r.status().as_u16(), r.text().unwrap())
}

/// `telemetry-server job run` over the same data dir: the reference output.
fn job_run(data_dir: &Path, guest_name: &str, param: Option<&str>) -> String {
    let mut cmd = Command::new(common::binary());
    cmd.args(["job", "run"])
        .arg(common::guest(guest_name))
        .arg("--data-dir")
        .arg(data_dir);
    cmd.arg("--filter").arg(filter_path());
    if let Some(p) = param {
        cmd.args(["--param", p]);
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "job run failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

pub(crate) fn error_of(r: Response) -> (u16, String, String) {
    let status = r.status().as_u16();
    let body: Value = r.json().expect("error bodies are JSON");
    (
        status,
        body["error"].as_str().unwrap().to_string(),
        body["detail"].as_str().unwrap().to_string(),
    )
}

#[test]
fn every_example_job_through_the_api_equals_job_run() {
    let s = server(|_| {});
    let jobs = [
        ("os-distribution-rust", None),
        ("os-distribution-c", None),
        ("simple-counter-rust", None),
        ("histogram-aggregate-rust", Some("CYCLE_COLLECTOR")),
    ];
    let ids: Vec<String> = jobs
        .iter()
        .map(|(g, p)| submit(&s, ALICE, g, &manifest(g, *p)))
        .collect();
    for ((guest_name, param), id) in jobs.iter().zip(&ids) {
        let done = wait_done(&s, ALICE, id);
        assert_eq!(done["state"], "succeeded", "{guest_name}: {done}");
        assert!(
            done["cost"]["records_read"].as_u64().unwrap() > 50,
            "{done}"
        );
        assert_eq!(
            done["progress"]["files_done"],
            done["progress"]["files_total"]
        );
        let (status, text) = result(&s, ALICE, id, "text");
        assert_eq!(status, 200);
        assert!(!text.is_empty(), "{guest_name} produced nothing");
        assert_eq!(
            text,
            job_run(&s.data_dir(), guest_name, *param),
            "{guest_name}: API result differs from job run"
        );
        assert_eq!(done["result_bytes"].as_u64().unwrap(), text.len() as u64);
        // The other formats carry the same rows.
        let (_, ndjson) = result(&s, ALICE, id, "ndjson");
        let rows: Vec<Value> = ndjson
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(rows.len(), text.lines().count());
        let first = text.lines().next().unwrap().split_once('\t').unwrap();
        assert_eq!(
            (
                rows[0]["key"].as_str().unwrap(),
                rows[0]["value"].as_str().unwrap()
            ),
            first
        );
        let (_, csv) = result(&s, ALICE, id, "csv");
        assert_eq!(csv.lines().count(), text.lines().count() + 1);
        assert!(csv.starts_with("key,value\r\n"));
    }
    let (status, body) = get_json(&s, ALICE, "/api/v1/jobs");
    assert_eq!(status, 200);
    assert_eq!(body["jobs"].as_array().unwrap().len(), jobs.len());
    let (status, _) = result(&s, ALICE, &ids[0], "xml");
    assert_eq!(status, 400);
}

#[test]
fn components_are_uploaded_once_and_referred_to_by_hash() {
    let s = server(|_| {});
    let upload = |bytes: Vec<u8>| {
        let form = multipart::Form::new().part(
            "component",
            multipart::Part::bytes(bytes).file_name("j.wasm"),
        );
        client()
            .post(s.url("/api/v1/components"))
            .bearer_auth(BOB)
            .multipart(form)
            .send()
            .unwrap()
    };
    let first = upload(guest("simple-counter-rust"));
    assert_eq!(first.status().as_u16(), 201);
    let first: Value = first.json().unwrap();
    let again = upload(guest("simple-counter-rust"));
    assert_eq!(again.status().as_u16(), 200);
    let again: Value = again.json().unwrap();
    assert_eq!(again["cache_hit"], true);
    assert_eq!(again["sha256"], first["sha256"]);
    let mut m = manifest("by hash", None);
    m["component"] = first["sha256"].clone();
    let r = post_job(&s, Some(BOB), None, Some(&m));
    assert_eq!(r.status().as_u16(), 202);
    let id = r.json::<Value>().unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(wait_done(&s, BOB, &id)["state"], "succeeded");
    assert_eq!(
        result(&s, BOB, &id, "text").1,
        job_run(&s.data_dir(), "simple-counter-rust", None)
    );
}

#[test]
fn every_bad_upload_is_a_400_naming_the_problem() {
    let s = server(|_| {});
    let m = manifest("bad", None);
    let core_module = b"\0asm\x01\0\0\0".to_vec();
    let empty_component = b"\0asm\x0d\0\x01\0".to_vec();
    let mut unknown_field = m.clone();
    unknown_field["paramter"] = json!("x");
    let mut bad_filter = m.clone();
    bad_filter["filter"] = json!({"version": 1, "dimensions": "nope"});
    let mut bad_limits = m.clone();
    bad_limits["limits"] = json!({"memory": 5});
    let mut bad_sample = m.clone();
    bad_sample["sample"] = json!(0);
    let mut unknown_hash = m.clone();
    unknown_hash["component"] = json!("0".repeat(64));
    // (what, component part, manifest part, expected error code, text the detail must contain)
    type Case<'a> = (
        &'a str,
        Option<Vec<u8>>,
        Option<&'a Value>,
        &'a str,
        &'a str,
    );
    let cases: Vec<Case> = vec![
        (
            "text file",
            Some(b"this is not wasm at all".to_vec()),
            Some(&m),
            "not_wasm",
            "not a WebAssembly binary",
        ),
        (
            "core module",
            Some(core_module),
            Some(&m),
            "not_component",
            "not a component",
        ),
        (
            "empty component",
            Some(empty_component),
            Some(&m),
            "wrong_world",
            "telemetry:job/job",
        ),
        (
            "too big",
            Some(vec![0u8; MAX_COMPONENT as usize + 1]),
            Some(&m),
            "component_too_large",
            "limit of 2097152 bytes",
        ),
        (
            "no manifest",
            Some(guest("os-distribution-rust")),
            None,
            "bad_manifest",
            "missing 'manifest'",
        ),
        (
            "typo in manifest",
            Some(guest("os-distribution-rust")),
            Some(&unknown_field),
            "bad_manifest",
            "paramter",
        ),
        (
            "bad filter",
            Some(guest("os-distribution-rust")),
            Some(&bad_filter),
            "bad_filter",
            "filter",
        ),
        (
            "bad limits",
            Some(guest("os-distribution-rust")),
            Some(&bad_limits),
            "bad_manifest",
            "limits",
        ),
        (
            "sample of nothing",
            Some(guest("os-distribution-rust")),
            Some(&bad_sample),
            "bad_manifest",
            "sample must be a fraction in (0, 1]",
        ),
        (
            "no component",
            None,
            Some(&m),
            "missing_component",
            "missing 'component'",
        ),
        (
            "unknown hash",
            None,
            Some(&unknown_hash),
            "unknown_component",
            "POST it to /api/v1/components",
        ),
    ];
    for (what, component, manifest, code, detail) in cases {
        let (status, error, text) = error_of(post_job(&s, Some(ALICE), component, manifest));
        assert_eq!((status, error.as_str()), (400, code), "{what}: {text}");
        assert!(
            text.contains(detail),
            "{what}: detail {text:?} lacks {detail:?}"
        );
    }
    // Not multipart at all, and an unexpected part.
    let r = client()
        .post(s.url("/api/v1/jobs"))
        .bearer_auth(ALICE)
        .body("{}")
        .send()
        .unwrap();
    assert_eq!(error_of(r).1, "bad_multipart");
    let form = multipart::Form::new().text("extra", "x");
    let r = client()
        .post(s.url("/api/v1/jobs"))
        .bearer_auth(ALICE)
        .multipart(form)
        .send()
        .unwrap();
    let (status, code, detail) = error_of(r);
    assert_eq!((status, code.as_str()), (400, "bad_multipart"));
    assert!(detail.contains("'extra'"), "{detail}");
    // Nothing was queued.
    assert_eq!(
        get_json(&s, ROOT, "/api/v1/jobs").1["jobs"]
            .as_array()
            .unwrap()
            .len(),
        0
    );
}

#[test]
fn tokens_are_required_and_roles_enforced_while_ingest_stays_open() {
    let s = server(|_| {});
    let m = manifest("mine", None);
    // No token, malformed header, unknown token: 401 with a clear body.
    let (status, code, detail) = error_of(post_job(
        &s,
        None,
        Some(guest("os-distribution-rust")),
        Some(&m),
    ));
    assert_eq!((status, code.as_str()), (401, "unauthorized"));
    assert!(detail.contains("missing bearer token"), "{detail}");
    let r = client()
        .get(s.url("/api/v1/jobs"))
        .header("Authorization", "Basic YWxpY2U6eA==")
        .send()
        .unwrap();
    assert_eq!(
        r.headers()["www-authenticate"],
        "Bearer realm=\"telemetry-server\""
    );
    assert!(error_of(r).2.contains("malformed"));
    let r = client()
        .get(s.url("/api/v1/jobs"))
        .bearer_auth("guess")
        .send()
        .unwrap();
    assert_eq!(
        error_of(r),
        (401, "unauthorized".into(), "unknown bearer token".into())
    );

    // Alice's job: Bob (submit) may not see, fetch or cancel it, and it answers him like a job that
    // does not exist (404, no owner named); root (admin) may.
    let id = submit(&s, ALICE, "os-distribution-rust", &m);
    for (method, path) in [
        ("GET", format!("/api/v1/jobs/{id}")),
        ("GET", format!("/api/v1/jobs/{id}/result")),
        ("DELETE", format!("/api/v1/jobs/{id}")),
    ] {
        let req = client()
            .request(method.parse().unwrap(), s.url(&path))
            .bearer_auth(BOB);
        let (status, code, detail) = error_of(req.send().unwrap());
        assert_eq!(
            (status, code.as_str()),
            (404, "not_found"),
            "{method} {path}"
        );
        assert_eq!(detail, format!("no job {id}"), "{method} {path}");
        assert!(!detail.contains("alice"), "{detail}");
    }
    assert_eq!(
        get_json(&s, BOB, "/api/v1/jobs").1["jobs"]
            .as_array()
            .unwrap()
            .len(),
        0
    );
    assert_eq!(
        get_json(&s, ROOT, "/api/v1/jobs").1["jobs"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(job(&s, ROOT, &id)["owner"], "alice");
    assert_eq!(wait_done(&s, ROOT, &id)["state"], "succeeded");

    // Ingest, status and the OpenAPI document need no token.
    let ping = std::fs::read(common::data("pings/v4.main.min.pipeline-schemas.json")).unwrap();
    let r = client()
        .post(s.url("/submit/telemetry/0b5c3f4e-8a51-4a3c-9f53-4b4bb1dcf0a1/main/Firefox/61.0/release/20180101"))
        .body(ping)
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(
        client()
            .get(s.url("/status"))
            .send()
            .unwrap()
            .status()
            .as_u16(),
        200
    );
    let r = client().get(s.url("/api/v1/openapi.json")).send().unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let served: Value = r.json().unwrap();
    let file: Value = serde_json::from_str(
        &std::fs::read_to_string(common::repo_root().join("docs/openapi.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(served, file);
    // Unknown API routes are JSON 404s.
    let (status, body) = get_json(&s, ALICE, "/api/v1/nope");
    assert_eq!(
        (status, body["error"].as_str().unwrap()),
        (404, "not_found")
    );
}

#[test]
fn the_job_list_leaves_logs_to_the_jobs_own_route() {
    let s = server(|_| {});
    let m = hostile_manifest("log-flood", json!({ "log_bytes": 4096 }));
    let id = submit(&s, ALICE, "hostile-rust", &m);
    let done = wait_done(&s, ALICE, &id);
    assert_eq!(done["state"], "succeeded", "{done}");
    assert!(
        done["log"]
            .as_array()
            .is_some_and(|lines| !lines.is_empty()),
        "{done}"
    );
    for token in [ALICE, ROOT] {
        let (status, list) = get_json(&s, token, "/api/v1/jobs");
        assert_eq!(status, 200, "{list}");
        let listed = &list["jobs"][0];
        assert_eq!(listed["id"], id.as_str(), "{list}");
        assert!(listed.get("log").is_none(), "{listed}");
    }
    // The job's own route still has it.
    assert_eq!(job(&s, ALICE, &id)["log"], done["log"]);
}

#[test]
fn hostile_jobs_fail_cleanly_while_submissions_keep_being_accepted() {
    let s = server(|_| {});
    // Each hostile job is held to the limit it tests; the memory hog gets a call time it cannot
    // reach first even on a loaded machine (growing 64 MiB can take over 300 ms there).
    let limited = |mode: &str| {
        let mut m = manifest(mode, Some(mode));
        let call_timeout_ms = if mode == "memory" { 30_000 } else { 300 };
        m["limits"] = json!({"call_timeout_ms": call_timeout_ms, "memory_bytes": 64 << 20});
        m
    };
    let hostile: Vec<(String, &str)> = [
        ("loop", "time"),
        ("memory", "memory"),
        ("panic:*", "panics on record"),
    ]
    .into_iter()
    .map(|(mode, expect)| (submit(&s, ALICE, "hostile-rust", &limited(mode)), expect))
    .collect();
    // While they run, new submissions are accepted and later succeed.
    let good = submit(&s, ALICE, "os-distribution-rust", &manifest("good", None));
    let r = client().get(s.url("/status")).send().unwrap();
    assert_eq!(r.status().as_u16(), 200);
    for (id, expect) in &hostile {
        let done = wait_done(&s, ALICE, id);
        assert_eq!(done["state"], "failed", "{done}");
        let error = done["error"].as_str().unwrap();
        assert!(
            error.contains(expect),
            "error {error:?} should mention {expect:?}"
        );
        assert_eq!(result(&s, ALICE, id, "text").0, 409);
    }
    let done = wait_done(&s, ALICE, &good);
    assert_eq!(done["state"], "succeeded", "{done}");
    assert_eq!(
        result(&s, ALICE, &good, "text").1,
        job_run(&s.data_dir(), "os-distribution-rust", None)
    );
}

#[test]
fn cancel_stops_a_running_infinite_loop_within_a_second() {
    let s = server(|_| {});
    let id = submit(&s, ALICE, "hostile-rust", &manifest("spin", Some("loop")));
    let queued = submit(
        &s,
        ALICE,
        "os-distribution-rust",
        &manifest("behind it", None),
    );
    wait_state(&s, ALICE, &id, &["running"], Duration::from_secs(30));
    std::thread::sleep(Duration::from_millis(300)); // inside the guest's loop by now
                                                    // The queued one is cancelled at once.
    let r = client()
        .delete(s.url(&format!("/api/v1/jobs/{queued}")))
        .bearer_auth(ALICE)
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 202);
    assert_eq!(r.json::<Value>().unwrap()["state"], "cancelled");
    let asked = Instant::now();
    let r = client()
        .delete(s.url(&format!("/api/v1/jobs/{id}")))
        .bearer_auth(ALICE)
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 202);
    let done = wait_state(
        &s,
        ALICE,
        &id,
        &["cancelled", "failed", "succeeded"],
        Duration::from_secs(5),
    );
    let took = asked.elapsed();
    assert_eq!(done["state"], "cancelled", "{done}");
    assert!(took < Duration::from_secs(1), "cancellation took {took:?}");
    // Cancelling again is a conflict; the runner is free for new work.
    let r = client()
        .delete(s.url(&format!("/api/v1/jobs/{id}")))
        .bearer_auth(ALICE)
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 409);
    let next = submit(&s, ALICE, "simple-counter-rust", &manifest("next", None));
    assert_eq!(wait_done(&s, ALICE, &next)["state"], "succeeded");
}

/// A manifest running hostile-rust in `mode` with `limits`.
fn hostile_manifest(mode: &str, limits: Value) -> Value {
    let mut m = manifest(mode, Some(mode));
    m["limits"] = limits;
    m
}

#[test]
fn cancel_stops_a_guest_sleeping_in_wasi_within_a_second_and_wall_time_stops_another() {
    let s = server(|_| {});
    // Blocked an hour in `pollable.block`, with call and wall time far away: only DELETE ends it.
    let sleeper = submit(
        &s,
        ALICE,
        "hostile-rust",
        &hostile_manifest("sleep", json!({"call_timeout_ms": 60_000})),
    );
    wait_state(&s, ALICE, &sleeper, &["running"], Duration::from_secs(30));
    std::thread::sleep(Duration::from_millis(300)); // asleep in WASI by now
    let asked = Instant::now();
    let r = client()
        .delete(s.url(&format!("/api/v1/jobs/{sleeper}")))
        .bearer_auth(ALICE)
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 202);
    let done = wait_state(
        &s,
        ALICE,
        &sleeper,
        &["cancelled", "failed", "succeeded"],
        Duration::from_secs(10),
    );
    let took = asked.elapsed();
    assert_eq!(done["state"], "cancelled", "{done}");
    assert!(
        took < Duration::from_secs(1),
        "cancelling a sleeping guest took {took:?}"
    );

    // Blocked in `wasi:io/poll.poll` with a 2 s wall-time limit: fails at that limit, and the
    // runner is free again for the next job.
    let limits = json!({"call_timeout_ms": 60_000, "wall_time_ms": 2_000});
    let poller = submit(
        &s,
        ALICE,
        "hostile-rust",
        &hostile_manifest("poll-sleep", limits),
    );
    let next = submit(&s, ALICE, "simple-counter-rust", &manifest("next", None));
    wait_state(&s, ALICE, &poller, &["running"], Duration::from_secs(30));
    let running_seen = Instant::now();
    let done = wait_done(&s, ALICE, &poller);
    let took = running_seen.elapsed();
    assert_eq!(done["state"], "failed", "{done}");
    assert_eq!(
        done["error"], "job exceeded its wall time (2000 ms) limit",
        "{done}"
    );
    assert!(
        took < Duration::from_secs(2) + Duration::from_secs(3),
        "the wall-time limit cut the poll after {took:?}"
    );
    assert_eq!(wait_done(&s, ALICE, &next)["state"], "succeeded");
}

#[test]
fn host_memory_limit_fails_a_memory_hungry_reduce_and_an_emit_flood() {
    let s = server(|_| {});
    let reduce = submit(
        &s,
        ALICE,
        "hostile-rust",
        &hostile_manifest("big-reduce:8", json!({"host_memory_bytes": 16 << 20})),
    );
    let flood = submit(
        &s,
        ALICE,
        "hostile-rust",
        &hostile_manifest("emit-flood", json!({"host_memory_bytes": 8 << 20})),
    );
    for (id, limit) in [(&reduce, "16 MiB"), (&flood, "8 MiB")] {
        let done = wait_done(&s, ALICE, id);
        assert_eq!(done["state"], "failed", "{done}");
        assert_eq!(
            done["error"],
            format!("job exceeded its host memory ({limit}) limit"),
            "{done}"
        );
        assert_eq!(result(&s, ALICE, id, "text").0, 409);
    }
    // The limit is a per-job setting with a server maximum like every other.
    let r = post_job(
        &s,
        Some(ALICE),
        Some(guest("hostile-rust")),
        Some(&hostile_manifest(
            "emit-flood",
            json!({"host_memory_bytes": 5u64 << 30}),
        )),
    );
    let (status, code, detail) = error_of(r);
    assert_eq!((status, code.as_str()), (400, "limit_too_high"), "{detail}");
    assert!(detail.contains("host_memory_bytes"), "{detail}");
}

#[test]
fn sigterm_finishes_within_the_grace_period_with_a_guest_blocked_in_wasi() {
    const GRACE_SECS: u64 = 5;
    let root = data_root();
    let config = root.path().join("server.toml");
    std::fs::write(
        &config,
        format!(
            "data_dir = {:?}\n[server]\nlisten = \"127.0.0.1:0\"\nshutdown_grace_secs = {GRACE_SECS}\n\
             [convert]\nenabled = false\n[[jobs.tokens]]\nname = \"alice\"\nsha256 = \"{}\"\nrole = \"submit\"\n",
            root.path().join("data"),
            hash_token(ALICE)
        ),
    )
    .unwrap();
    let mut server = Server::spawn(&config);
    // Call time (the server's maximum, 60 s) and wall time far away: only the shutdown stops it
    // within the test.
    let limits = json!({"call_timeout_ms": 60_000, "wall_time_ms": 3_600_000});
    let sleeper = server.submit("hostile-rust", &hostile_manifest("sleep", limits));
    server.wait_state(&sleeper, "running");
    std::thread::sleep(Duration::from_millis(300)); // asleep in WASI by now
    let status = Command::new("kill")
        .args(["-TERM", &server.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let asked = Instant::now();
    let exit = loop {
        if let Some(exit) = server.child.try_wait().unwrap() {
            break exit;
        }
        assert!(
            asked.elapsed() < Duration::from_secs(GRACE_SECS),
            "the server did not exit within its {GRACE_SECS} s grace period after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(exit.success(), "server exited with {exit}");
    // A clean shutdown: the interrupted job is queued again and runs after the restart.
    let server = Server::spawn(&config);
    let again = server.wait_state(&sleeper, "running");
    assert!(again["error"].is_null(), "{again}");
    let r = client()
        .delete(format!("{}/api/v1/jobs/{sleeper}", server.base))
        .bearer_auth(ALICE)
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 202);
    server.wait_state(&sleeper, "cancelled");
}

#[test]
fn queued_jobs_survive_a_restart() {
    let mut s = server(|_| {});
    let spin = submit(&s, ALICE, "hostile-rust", &manifest("spin", Some("loop")));
    let waiting: Vec<String> = ["os-distribution-rust", "simple-counter-rust"]
        .iter()
        .map(|g| submit(&s, ALICE, g, &manifest(g, None)))
        .collect();
    wait_state(&s, ALICE, &spin, &["running"], Duration::from_secs(30));
    s.stop();
    let root = std::mem::replace(&mut s.root, tempfile::tempdir().unwrap());
    drop(s);
    // Clean shutdown: the interrupted job went back to the queue, the others stayed there.
    let s = server_on(root, |_| {});
    let (_, list) = get_json(&s, ALICE, "/api/v1/jobs");
    let states: Vec<&str> = list["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["state"].as_str().unwrap())
        .collect();
    assert_eq!(states.len(), 3);
    assert!(
        states.iter().all(|s| matches!(*s, "queued" | "running")),
        "{states:?}"
    );
    wait_state(&s, ALICE, &spin, &["running"], Duration::from_secs(30));
    client()
        .delete(s.url(&format!("/api/v1/jobs/{spin}")))
        .bearer_auth(ALICE)
        .send()
        .unwrap();
    for (id, g) in waiting
        .iter()
        .zip(["os-distribution-rust", "simple-counter-rust"])
    {
        assert_eq!(wait_done(&s, ALICE, id)["state"], "succeeded");
        assert_eq!(
            result(&s, ALICE, id, "text").1,
            job_run(&s.data_dir(), g, None)
        );
    }
}

#[test]
fn a_crash_marks_the_running_job_failed_and_runs_the_queued_ones() {
    let root = data_root();
    let config = root.path().join("server.toml");
    let hashes = |name: &str, token: &str, role: &str| {
        format!(
            "[[jobs.tokens]]\nname = \"{name}\"\nsha256 = \"{}\"\nrole = \"{role}\"\n",
            hash_token(token)
        )
    };
    std::fs::write(
        &config,
        format!(
            "data_dir = {:?}\n[server]\nlisten = \"127.0.0.1:0\"\n[convert]\nenabled = false\n{}",
            root.path().join("data"),
            hashes("alice", ALICE, "submit")
        ),
    )
    .unwrap();
    let start = || Server::spawn(&config);
    let mut server = start();
    let spin = server.submit("hostile-rust", &manifest("spin", Some("loop")));
    let queued = server.submit("simple-counter-rust", &manifest("after", None));
    server.wait_state(&spin, "running");
    server.kill9();
    let mut server = start();
    let crashed = server.wait_state(&spin, "failed");
    assert_eq!(
        crashed["error"],
        "server restarted while the job was running"
    );
    server.wait_state(&queued, "succeeded");
    server.kill9();
}

/// The real binary (`serve --config`), for the crash test.
struct Server {
    child: std::process::Child,
    base: String,
}

impl Server {
    fn spawn(config: &Path) -> Server {
        use std::io::BufRead;
        let mut child = Command::new(common::binary())
            .args(["serve", "--config"])
            .arg(config)
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // The server logs `serving addr=…` once it listens.
        let stderr = std::io::BufReader::new(child.stderr.take().unwrap());
        let mut lines = stderr.lines();
        let addr = loop {
            let line = strip_ansi(&lines.next().expect("server exited before serving").unwrap());
            if let Some(rest) = line.split("addr=").nth(1) {
                break rest.split_whitespace().next().unwrap().to_string();
            }
        };
        std::thread::spawn(move || lines.for_each(drop));
        Server {
            child,
            base: format!("http://{addr}"),
        }
    }

    fn submit(&self, guest_name: &str, manifest: &Value) -> String {
        let form = multipart::Form::new()
            .part("manifest", multipart::Part::text(manifest.to_string()))
            .part("component", multipart::Part::bytes(guest(guest_name)));
        let r = client()
            .post(format!("{}/api/v1/jobs", self.base))
            .bearer_auth(ALICE)
            .multipart(form)
            .send()
            .unwrap();
        assert_eq!(r.status().as_u16(), 202);
        r.json::<Value>().unwrap()["id"]
            .as_str()
            .unwrap()
            .to_string()
    }

    fn wait_state(&self, id: &str, want: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let j: Value = client()
                .get(format!("{}/api/v1/jobs/{id}", self.base))
                .bearer_auth(ALICE)
                .send()
                .unwrap()
                .json()
                .unwrap();
            if j["state"] == want {
                return j;
            }
            assert!(
                Instant::now() < deadline,
                "job {id} never reached {want}: {j}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Removes terminal colour codes (`ESC [ … m`) from a log line.
fn strip_ansi(line: &str) -> String {
    let mut out = String::new();
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            chars.by_ref().find(|&c| c == 'm');
        } else {
            out.push(c);
        }
    }
    out
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill9();
    }
}

#[test]
fn cli_submits_waits_and_manages_jobs() {
    let s = server(|_| {});
    let cli = |args: &[&str]| {
        let out = Command::new(common::binary())
            .args(["job"])
            .args(args)
            .args(["--server", &s.url(""), "--token", ALICE])
            .output()
            .unwrap();
        (
            out.status.code().unwrap(),
            String::from_utf8(out.stdout).unwrap(),
            String::from_utf8(out.stderr).unwrap(),
        )
    };
    let guest_path = common::guest("os-distribution-rust");
    let filter = filter_path();
    let (code, stdout, stderr) = cli(&[
        "submit",
        guest_path.to_str().unwrap(),
        "--filter",
        filter.to_str().unwrap(),
        "--wait",
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(stdout, job_run(&s.data_dir(), "os-distribution-rust", None));
    assert!(stderr.contains("succeeded"), "{stderr}");

    // Without --wait it prints the id; status/result/list/cancel work on it.
    let hostile = common::guest("hostile-rust");
    let (code, id, stderr) = cli(&[
        "submit",
        hostile.to_str().unwrap(),
        "--filter",
        filter.to_str().unwrap(),
        "--param",
        "loop",
    ]);
    assert_eq!(code, 0, "{stderr}");
    let id = id.trim().to_string();
    let (code, list, _) = cli(&["list"]);
    assert_eq!(code, 0);
    assert!(list.contains(&id) && list.lines().count() == 3, "{list}");
    wait_state(&s, ALICE, &id, &["running"], Duration::from_secs(30));
    let (code, status, _) = cli(&["status", &id]);
    assert_eq!(code, 0);
    assert_eq!(
        serde_json::from_str::<Value>(&status).unwrap()["state"],
        "running"
    );
    let (code, _, stderr) = cli(&["result", &id]);
    assert_eq!(code, 1, "a running job has no result");
    assert!(
        stderr.contains("409") && stderr.contains("running"),
        "{stderr}"
    );
    let (code, _, stderr) = cli(&["cancel", &id]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(wait_done(&s, ALICE, &id)["state"], "cancelled");

    // A bad token is reported with the server's reason.
    let out = Command::new(common::binary())
        .args(["job", "list", "--server", &s.url(""), "--token", "wrong"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr)
        .contains("401 Unauthorized unauthorized: unknown bearer token"));
}

/// The `telemetry_jobs_limit_rejections_total{limit="…"}` value (0 when absent).
fn limit_rejections(s: &TestServer, limit: &str) -> u64 {
    let needle = format!("telemetry_jobs_limit_rejections_total{{limit=\"{limit}\"}} ");
    s.metrics()
        .lines()
        .find_map(|l| l.strip_prefix(&needle))
        .map_or(0, |v| v.trim().parse().unwrap())
}

#[test]
fn limits_above_the_server_maximum_are_a_400_naming_limit_value_and_maximum() {
    let s = server(|c| {
        c.jobs.max_limits.memory_bytes = 64 << 20;
        c.jobs.max_limits.call_timeout_ms = 2_000;
        c.jobs.max_limits.output_bytes = 1 << 20;
        c.jobs.max_workers_per_job = 2;
    });
    let asking = |limits: Value, workers: Option<u64>| {
        let mut m = manifest("greedy", None);
        m["limits"] = limits;
        if let Some(w) = workers {
            m["workers"] = json!(w);
        }
        error_of(post_job(
            &s,
            Some(ALICE),
            Some(guest("os-distribution-rust")),
            Some(&m),
        ))
    };
    let (status, code, detail) = asking(json!({"memory_bytes": 128u64 << 20}), None);
    assert_eq!((status, code.as_str()), (400, "limit_too_high"), "{detail}");
    assert!(
        detail.contains(
            "limits.memory_bytes = 134217728 (128 MiB) is above this server's maximum of 67108864 (64 MiB) \
             (jobs.max_limits.memory_bytes)"
        ),
        "{detail}"
    );
    // Every limit over its maximum is named, workers included; limits within theirs are not.
    let (status, code, detail) = asking(
        json!({"call_timeout_ms": 2_001, "output_bytes": 1 << 20, "wall_time_ms": 5}),
        Some(3),
    );
    assert_eq!((status, code.as_str()), (400, "limit_too_high"), "{detail}");
    assert!(
        detail.contains("limits.call_timeout_ms = 2001 is above this server's maximum of 2000"),
        "{detail}"
    );
    assert!(
        detail
            .contains("workers = 3 is above this server's maximum of 2 (jobs.max_workers_per_job)"),
        "{detail}"
    );
    assert!(
        !detail.contains("output_bytes") && !detail.contains("wall_time_ms"),
        "{detail}"
    );
    assert_eq!(limit_rejections(&s, "memory_bytes"), 1);
    assert_eq!(limit_rejections(&s, "call_timeout_ms"), 1);
    assert_eq!(limit_rejections(&s, "workers"), 1);
    assert_eq!(limit_rejections(&s, "output_bytes"), 0);
    assert_eq!(
        get_json(&s, ROOT, "/api/v1/jobs").1["jobs"]
            .as_array()
            .unwrap()
            .len(),
        0,
        "nothing queued"
    );

    // Exactly the maximum is accepted and runs with it; limits not asked for take the default
    // lowered to the maximum (call time 10 s → 2 s), so the stored job says how it ran.
    let mut m = manifest("at the maximum", None);
    m["limits"] = json!({"memory_bytes": 64u64 << 20});
    m["workers"] = json!(2);
    let id = submit(&s, ALICE, "os-distribution-rust", &m);
    let done = wait_done(&s, ALICE, &id);
    assert_eq!(done["state"], "succeeded", "{done}");
    assert_eq!(done["manifest"]["limits"]["memory_bytes"], 64u64 << 20);
    assert_eq!(done["manifest"]["limits"]["call_timeout_ms"], 2_000);
    assert_eq!(done["manifest"]["workers"], 2);
    assert_eq!(
        result(&s, ALICE, &id, "text").1,
        job_run(&s.data_dir(), "os-distribution-rust", None)
    );
}

/// `POST /api/v1/components` → the component's sha256 (asserting 201 or 200).
fn upload_component(s: &TestServer, guest_name: &str) -> String {
    let form = multipart::Form::new().part(
        "component",
        multipart::Part::bytes(guest(guest_name)).file_name("j.wasm"),
    );
    let r = client()
        .post(s.url("/api/v1/components"))
        .bearer_auth(ALICE)
        .multipart(form)
        .send()
        .unwrap();
    let status = r.status().as_u16();
    let body: Value = r.json().unwrap();
    assert!(status == 201 || status == 200, "{status}: {body}");
    body["sha256"].as_str().unwrap().to_string()
}

/// Submits a job running an uploaded component by hash; returns its id.
fn submit_by_hash(s: &TestServer, sha: &str, name: &str, param: Option<&str>) -> String {
    let mut m = manifest(name, param);
    m["component"] = json!(sha);
    let r = post_job(s, Some(ALICE), None, Some(&m));
    let status = r.status().as_u16();
    let body: Value = r.json().unwrap();
    assert_eq!(status, 202, "{body}");
    body["id"].as_str().unwrap().to_string()
}

#[test]
fn unreferenced_components_are_collected_while_queued_and_running_jobs_keep_theirs() {
    const MIN_AGE: Duration = Duration::from_secs(2);
    let s = server(|c| {
        c.jobs.max_concurrent_jobs = 2;
        c.jobs.result_retention_secs = 1;
        c.jobs.retention_sweep_secs = 1;
        c.jobs.cache_keep_unreferenced = 0;
        c.jobs.cache_min_age_secs = MIN_AGE.as_secs();
    });
    let cache = s.data_dir().join("cache");
    let files = |sha: &str| {
        (
            cache.join(format!("{sha}.wasm")).exists(),
            cache.join(format!("{sha}.cwasm")).exists(),
        )
    };
    // Checked only while no collection can be deleting `sha` (it is referenced or younger than
    // MIN_AGE): a collection removes the two files one after the other.
    let cached = |sha: &str| {
        let (wasm, cwasm) = files(sha);
        assert_eq!(wasm, cwasm, "{sha}: the two files go together");
        wasm
    };
    // A: run by a job that then expires. B: uploaded, never used. Both checked at once, while
    // younger than MIN_AGE.
    let a = upload_component(&s, "simple-counter-rust");
    assert!(cached(&a));
    let b = upload_component(&s, "os-distribution-c");
    assert!(cached(&b));
    let finished = submit_by_hash(&s, &a, "expires", None);
    assert_eq!(wait_done(&s, ALICE, &finished)["state"], "succeeded");
    // Both runners busy with endless jobs (component H), so the job on C stays queued.
    let h = upload_component(&s, "hostile-rust");
    let spins: Vec<String> = (0..2)
        .map(|i| submit_by_hash(&s, &h, &format!("spin {i}"), Some("loop")))
        .collect();
    for id in &spins {
        wait_state(&s, ALICE, id, &["running"], Duration::from_secs(30));
    }
    let c = upload_component(&s, "os-distribution-rust");
    let queued = submit_by_hash(&s, &c, "queued", None);
    let queued_at = Instant::now();
    assert!(cached(&c) && cached(&h));

    // The finished job expires; then A and B (no job, older than MIN_AGE) are deleted.
    wait_state_gone(&s, &finished);
    let deadline = Instant::now() + Duration::from_secs(30);
    let present = |sha: &str| files(sha) != (false, false);
    while present(&a) || present(&b) {
        assert!(
            Instant::now() < deadline,
            "unreferenced components never collected"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // C (queued job) and H (running jobs) stay, also once MIN_AGE no longer protects them.
    std::thread::sleep((MIN_AGE + Duration::from_secs(2)).saturating_sub(queued_at.elapsed()));
    assert!(cached(&c), "a queued job's component was deleted");
    assert!(cached(&h), "a running job's component was deleted");
    let deleted = s
        .metrics()
        .lines()
        .find_map(|l| {
            l.strip_prefix("telemetry_jobs_cache_deleted_components_total ")
                .map(|v| v.trim().to_string())
        })
        .expect("metric present");
    assert_eq!(deleted, "2");

    // The queued job still runs from the cache once the runners are free.
    for id in &spins {
        client()
            .delete(s.url(&format!("/api/v1/jobs/{id}")))
            .bearer_auth(ALICE)
            .send()
            .unwrap();
    }
    assert_eq!(wait_done(&s, ALICE, &queued)["state"], "succeeded");
    assert_eq!(
        result(&s, ALICE, &queued, "text").1,
        job_run(&s.data_dir(), "os-distribution-rust", None)
    );
    // A deleted component is gone for good: naming it is the usual 400.
    let mut m = manifest("gone", None);
    m["component"] = json!(a);
    assert_eq!(
        error_of(post_job(&s, Some(ALICE), None, Some(&m))).1,
        "unknown_component"
    );
}

/// Waits until job `id` has been deleted by retention (404).
fn wait_state_gone(s: &TestServer, id: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while get_json(s, ALICE, &format!("/api/v1/jobs/{id}")).0 != 404 {
        assert!(Instant::now() < deadline, "job {id} never expired");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn compiles_beyond_max_concurrent_compiles_wait_their_turn_then_get_a_503() {
    // One compile at a time, no waiting: of two Python guests (seconds of Cranelift each) uploaded
    // at once, one compiles and the other is refused, counted, and accepted once the slot is free.
    let s = server(|c| {
        c.jobs.max_component_bytes = 32 << 20;
        c.jobs.max_concurrent_compiles = 1;
        c.jobs.compile_wait_secs = 0;
    });
    let post = |name: &'static str| {
        let url = s.url("/api/v1/components");
        std::thread::spawn(move || {
            let form = multipart::Form::new().part(
                "component",
                multipart::Part::bytes(guest(name)).file_name("j.wasm"),
            );
            // Python compiles take minutes on a loaded machine: more than `client()` waits.
            let patient = Client::builder()
                .timeout(Duration::from_secs(900))
                .build()
                .unwrap();
            let r = patient
                .post(url)
                .bearer_auth(ALICE)
                .multipart(form)
                .send()
                .unwrap();
            (r.status().as_u16(), r.json::<Value>().unwrap(), name)
        })
    };
    let uploads = [post("os-distribution-py"), post("hostile-py")];
    let mut answers: Vec<(u16, Value, &str)> =
        uploads.into_iter().map(|t| t.join().unwrap()).collect();
    answers.sort_by_key(|a| a.0);
    assert_eq!(
        (answers[0].0, answers[1].0),
        (201, 503),
        "{:?}",
        answers.iter().map(|a| &a.1).collect::<Vec<_>>()
    );
    let refused = &answers[1];
    assert_eq!(refused.1["error"], "unavailable");
    let detail = refused.1["detail"].as_str().unwrap();
    assert!(
        detail.contains("jobs.max_concurrent_compiles")
            && detail.contains("jobs.compile_wait_secs"),
        "{detail}"
    );
    assert!(s
        .metrics()
        .lines()
        .any(|l| l == "telemetry_jobs_compile_refusals_total 1"));
    upload_component(&s, refused.2);
}

#[test]
fn uploads_beyond_a_tokens_quota_are_refused_with_413_before_compiling() {
    let (counter, os) = (guest("simple-counter-rust"), guest("os-distribution-rust"));
    let quota = (counter.len() + os.len()) as u64 - 1;
    let s = server(|c| c.jobs.upload_quota_bytes = quota);
    let upload = |token: &str, bytes: &[u8]| {
        let form = multipart::Form::new().part(
            "component",
            multipart::Part::bytes(bytes.to_vec()).file_name("j.wasm"),
        );
        let r = client()
            .post(s.url("/api/v1/components"))
            .bearer_auth(token)
            .multipart(form)
            .send()
            .unwrap();
        (r.status().as_u16(), r.json::<Value>().unwrap())
    };
    assert_eq!(upload(ALICE, &counter).0, 201);
    let (status, body) = upload(ALICE, &os);
    assert_eq!(status, 413, "{body}");
    assert_eq!(body["error"], "upload_quota_exceeded");
    let detail = body["detail"].as_str().unwrap();
    let expected = format!(
        "token 'alice' keeps {} bytes of components in the compile cache; this {}-byte component would bring it to {}, above jobs.upload_quota_bytes = {quota}",
        counter.len(),
        os.len(),
        counter.len() + os.len()
    );
    assert!(detail.starts_with(&expected), "{detail}");
    // Refused before compiling: nothing of it reached the cache.
    use sha2::Digest;
    let os_sha = hex::encode(sha2::Sha256::digest(&os));
    assert!(!s.data_dir().join(format!("cache/{os_sha}.wasm")).exists());
    // Another token has its own quota; a component already cached costs nothing.
    assert_eq!(upload(BOB, &os).0, 201);
    assert_eq!(upload(ALICE, &os).0, 200);
    assert_eq!(upload(ALICE, &counter).0, 200);
    assert!(s
        .metrics()
        .lines()
        .any(|l| l == "telemetry_jobs_upload_quota_refusals_total 1"));
    // A job submitted with a component part is charged the same way.
    let mut other = guest("os-distribution-c");
    let r = post_job(
        &s,
        Some(ALICE),
        Some(std::mem::take(&mut other)),
        Some(&manifest("q", None)),
    );
    assert_eq!(r.status().as_u16(), 413);
}
