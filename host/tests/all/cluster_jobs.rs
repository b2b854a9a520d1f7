//! Coordinator planning with real processes: an in-process coordinator (`serve` with `[cluster]
//! distribute = true`) and two `telemetry-server worker` processes on loopback, the data in a
//! bucket on s3s-fs. A job submitted over the API runs across the three processes and gives what
//! a single-process `job run` over the bucket gives, each file read by exactly one member; a
//! worker killed mid-job makes the coordinator re-plan on the survivors, and so does one frozen
//! with SIGSTOP (which, thawed, takes part in the next job); cancelling a cluster job stops every
//! member.
//!
//! Over the `local` source the converted data is split between the coordinator's and the two
//! workers' own data dirs: the job reads each member's files on that member and gives what
//! `job run` over all of them gives; a worker killed while holding files fails the job naming it,
//! unless the manifest allows a partial result (then it equals `job run` over the survivors').

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use telemetry_server::jobs::sources::SourceConfig;

use crate::cluster_workers::{cluster, coordinator_with, wait_for, Worker, ADMIN, SUBMIT, WORKER};
use crate::common;
use crate::job_service::{client, error_of, post_job, submit, wait_state};
use crate::jobs_support;
use crate::s3_common::S3Server;
use crate::s3_jobs::export_and_open;
use crate::server_support::{walk, TestServer};

/// The bucket on s3s-fs with the job tests' data under `v2/`, and a coordinator whose
/// `[jobs.sources]` has `archive` = that bucket, distributing jobs to its workers.
fn coordinator(s3: &S3Server) -> TestServer {
    coordinator_with(|config| {
        config.jobs.sources.insert(
            "archive".into(),
            SourceConfig::S3(Box::new(s3.config("jobs", "v2/"))),
        );
        config.cluster.distribute = true;
    })
}

/// Two workers (one timely thread each, empty data dirs), listed alive by the coordinator.
fn two_workers(server: &TestServer) -> (Worker, Worker, [tempfile::TempDir; 2]) {
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let a = Worker::start(server, WORKER, "127.0.0.1:0", dirs[0].path(), 1);
    let b = Worker::start(server, WORKER, "127.0.0.1:0", dirs[1].path(), 1);
    wait_for(server, "two alive workers", |body| body["alive"] == 2);
    (a, b, dirs)
}

/// A job over the `archive` source with one worker thread per process.
fn manifest(param: Option<&str>) -> Value {
    let mut m = json!({ "name": "planned", "filter": {}, "source": "archive", "workers": 1 });
    if let Some(param) = param {
        m["parameter"] = json!(param);
        // `sleep` blocks in WASI far longer than a test: only a cancel ends it.
        m["limits"] = json!({ "call_timeout_ms": 60_000 });
    }
    m
}

/// A data dir whose `storage/` holds the job tests' partition files `copies` times (each copy
/// under another file id), so a `nap` job (20 ms per record) runs for seconds.
fn multiplied_data(copies: usize) -> tempfile::TempDir {
    let root = tempfile::tempdir().unwrap();
    let from = jobs_support::converted_data().join("storage");
    let mut stack = vec![from.clone()];
    let mut files = 0;
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let relative = path.strip_prefix(&from).unwrap();
            let target_dir = root.path().join("storage").join(relative.parent().unwrap());
            std::fs::create_dir_all(&target_dir).unwrap();
            // `BUILD.DATE.vN.log.<32 hex>.zst`: the copies differ in the hex id.
            let name = path.file_name().unwrap().to_str().unwrap();
            let (stem, id_and_ext) = name.rsplit_once(".log.").unwrap();
            let (id, ext) = id_and_ext.split_once('.').unwrap();
            assert_eq!(id.len(), 32, "{name}");
            for copy in 0..copies {
                let id = format!("{copy:02x}{}", &id[2..]);
                std::fs::copy(&path, target_dir.join(format!("{stem}.log.{id}.{ext}"))).unwrap();
                files += 1;
            }
        }
    }
    assert!(files > 100, "{files}");
    root
}

/// `job run GUEST --data s3://jobs/v2` in one process: its stdout.
fn job_run(s3: &S3Server, guest: &str, param: Option<&str>) -> String {
    job_run_over("s3://jobs/v2", Some(s3), guest, param, "{}")
}

/// `job run GUEST --data DATA --filter FILTER` in one process (`s3`: the bucket's server): its
/// stdout.
fn job_run_over(
    data: &str,
    s3: Option<&S3Server>,
    guest: &str,
    param: Option<&str>,
    filter: &str,
) -> String {
    let cache = tempfile::tempdir().unwrap();
    let mut command = Command::new(common::binary());
    command
        .args(["job", "run"])
        .arg(common::guest(guest))
        .args(["--data", data, "--filter", filter, "--cache-dir"])
        .arg(cache.path());
    if let Some(s3) = s3 {
        command.envs(s3.env());
    }
    if let Some(param) = param {
        command.args(["--param", param]);
    }
    let run = command.output().unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(!run.stdout.is_empty());
    String::from_utf8(run.stdout).unwrap()
}

fn result_text(server: &TestServer, id: &str) -> String {
    let r = client()
        .get(server.url(&format!("/api/v1/jobs/{id}/result?format=text")))
        .bearer_auth(SUBMIT)
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    r.text().unwrap()
}

fn finished(server: &TestServer, id: &str) -> Value {
    wait_state(
        server,
        SUBMIT,
        id,
        &["succeeded", "failed", "cancelled"],
        Duration::from_secs(180),
    )
}

/// Each process's `files_read` in the merged cost report; asserts they add up to the listing.
fn files_per_process(cost: &Value) -> Vec<u64> {
    let members = cost["cluster"]["members"].as_array().unwrap();
    let files: Vec<u64> = members
        .iter()
        .map(|m| m["files_read"].as_u64().unwrap())
        .collect();
    let matched = cost["files_matched"].as_u64().unwrap();
    assert_eq!(files.iter().sum::<u64>(), matched, "{cost:#}");
    assert_eq!(cost["files_read"].as_u64().unwrap(), matched, "{cost:#}");
    files
}

#[test]
fn an_api_job_runs_across_two_workers_with_the_output_of_job_run() {
    let s3 = S3Server::start();
    export_and_open(&s3, jobs_support::converted_data(), "jobs", "v2/");
    let server = coordinator(&s3);
    let (a, b, _dirs) = two_workers(&server);

    let id = submit(&server, SUBMIT, "os-distribution-rust", &manifest(None));
    let done = finished(&server, &id);
    assert_eq!(done["state"], "succeeded", "{done:#}");
    let cost = &done["cost"];
    assert_eq!(cost["cluster"]["attempts"], 1, "{cost:#}");
    assert_eq!(cost["cluster"]["processes"], 3, "{cost:#}");
    assert_eq!(cost["workers"], 3, "one timely worker in each process");
    // Every file was read once: the processes' counts add up to the listing, and each process
    // read a share of it (the shares are disjoint by construction; the equal output below shows
    // none was missed or doubled).
    let files = files_per_process(cost);
    assert!(files.iter().all(|&n| n > 0), "{files:?}");
    let records: u64 = cost["cluster"]["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["records_read"].as_u64().unwrap())
        .sum();
    assert_eq!(records, cost["records_read"].as_u64().unwrap());

    assert_eq!(
        result_text(&server, &id),
        job_run(&s3, "os-distribution-rust", None)
    );
    // The workers received the component once each and ran one attempt.
    for worker in [&a, &b] {
        let metrics = reqwest::blocking::get(format!("http://{}/metrics", worker.addr))
            .unwrap()
            .text()
            .unwrap();
        assert!(
            metrics.contains("telemetry_cluster_attempts_started_total 1"),
            "{metrics}"
        );
    }
}

#[test]
fn without_alive_workers_a_job_runs_on_the_coordinator_as_on_one_server() {
    let s3 = S3Server::start();
    export_and_open(&s3, jobs_support::converted_data(), "jobs", "v2/");
    let server = coordinator(&s3);
    let id = submit(&server, SUBMIT, "os-distribution-rust", &manifest(None));
    let done = finished(&server, &id);
    assert_eq!(done["state"], "succeeded", "{done:#}");
    assert!(done["cost"].get("cluster").is_none(), "{done:#}");
    assert_eq!(done["cost"]["workers"], 1);
    assert_eq!(
        result_text(&server, &id),
        job_run(&s3, "os-distribution-rust", None)
    );
}

#[test]
fn control_routes_of_a_worker_refuse_requests_without_the_coordinators_key() {
    let s3 = S3Server::start();
    let server = coordinator(&s3);
    let (a, _b, _dirs) = two_workers(&server);
    let http = client();
    for (method, path) in [
        ("POST", "/cluster/prepare"),
        ("PUT", "/cluster/components/00"),
        ("POST", "/cluster/attempts"),
        ("GET", "/cluster/attempts/x"),
        ("POST", "/cluster/attempts/x/cancel"),
    ] {
        for token in [None, Some(WORKER), Some("0".repeat(64).as_str())] {
            let mut request =
                http.request(method.parse().unwrap(), format!("http://{}{path}", a.addr));
            if let Some(token) = token {
                request = request.bearer_auth(token);
            }
            let r = request.body("{}").send().unwrap();
            assert_eq!(r.status().as_u16(), 401, "{method} {path} with {token:?}");
        }
    }
    let metrics = reqwest::blocking::get(format!("http://{}/metrics", a.addr))
        .unwrap()
        .text()
        .unwrap();
    assert!(
        metrics.contains(r#"telemetry_cluster_control_refused_total{reason="key"} 15"#),
        "{metrics}"
    );
}

/// Waits until worker `w` has started its process of an attempt (its metrics say so).
fn wait_attempt_started(w: &Worker, count: u64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    let want = format!("telemetry_cluster_attempts_started_total {count}");
    loop {
        let metrics = reqwest::blocking::get(format!("http://{}/metrics", w.addr))
            .unwrap()
            .text()
            .unwrap();
        if metrics.contains(&want) {
            return;
        }
        assert!(Instant::now() < deadline, "no attempt started: {metrics}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A `nap` job (20 ms per record, so it runs for seconds) over six copies of the test data in
/// s3s-fs, across the coordinator and two workers, half a second into worker `a`'s process.
struct NapJob {
    s3: S3Server,
    _data: tempfile::TempDir,
    server: TestServer,
    a: Worker,
    b: Worker,
    _dirs: [tempfile::TempDir; 2],
    id: String,
}

impl NapJob {
    fn start() -> NapJob {
        let s3 = S3Server::start();
        let data = multiplied_data(6);
        export_and_open(&s3, data.path(), "jobs", "v2/");
        let server = coordinator(&s3);
        let (a, b, dirs) = two_workers(&server);
        let id = submit(&server, SUBMIT, "hostile-rust", &manifest(Some("nap")));
        wait_attempt_started(&a, 1);
        std::thread::sleep(Duration::from_millis(500));
        NapJob {
            s3,
            _data: data,
            server,
            a,
            b,
            _dirs: dirs,
            id,
        }
    }

    /// The job ended as if `a` never took part: it succeeded in a second attempt on the
    /// coordinator and `b`, `a` recorded as lost, with the output of `job run`.
    fn assert_re_planned_without_a(&self, done: &Value) {
        assert_eq!(done["state"], "succeeded", "{done:#}");
        let cost = &done["cost"];
        assert_eq!(cost["cluster"]["attempts"], 2, "{cost:#}");
        assert_eq!(cost["cluster"]["processes"], 2, "{cost:#}");
        let lost = cost["cluster"]["lost"].as_array().unwrap();
        assert_eq!(lost.len(), 1, "{cost:#}");
        assert_eq!(lost[0]["address"], self.a.addr.as_str(), "{cost:#}");
        files_per_process(cost);
        wait_attempt_started(&self.b, 2);
        assert_eq!(
            result_text(&self.server, &self.id),
            job_run(&self.s3, "hostile-rust", Some("nap"))
        );
    }
}

#[test]
fn a_worker_killed_mid_job_makes_the_coordinator_re_plan_on_the_survivors() {
    let mut job = NapJob::start();
    job.a.child.kill().unwrap();
    let done = finished(&job.server, &job.id);
    job.assert_re_planned_without_a(&done);
}

#[test]
fn cancelling_a_cluster_job_stops_every_member_within_two_seconds() {
    let s3 = S3Server::start();
    export_and_open(&s3, jobs_support::converted_data(), "jobs", "v2/");
    let server = coordinator(&s3);
    let (a, b, _dirs) = two_workers(&server);

    let id = submit(&server, SUBMIT, "hostile-rust", &manifest(Some("sleep")));
    wait_attempt_started(&a, 1);
    wait_attempt_started(&b, 1);
    std::thread::sleep(Duration::from_millis(300));
    let cancelled_at = Instant::now();
    let r = client()
        .delete(server.url(&format!("/api/v1/jobs/{id}")))
        .bearer_auth(SUBMIT)
        .send()
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    let done = finished(&server, &id);
    assert_eq!(done["state"], "cancelled", "{done:#}");
    // Every member's process of the attempt has ended, cancelled, within 2 s.
    let attempt = format!("attempt={id}-1");
    for w in [&a, &b] {
        let ended = loop {
            let log = w.log.lock().unwrap().clone();
            if let Some(line) = log
                .lines()
                .find(|l| l.contains("attempt ended") && l.contains(&attempt))
            {
                break line.to_string();
            }
            assert!(
                cancelled_at.elapsed() < Duration::from_secs(2),
                "{} still runs the attempt 2 s after the cancel:\n{log}",
                w.addr
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        assert!(ended.contains("cancelled"), "{ended}");
    }
}

/// The partition files under `data`'s `storage/` dealt round-robin (in path order) into `parts`
/// new data dirs, so each holds different pings: (dir, its files' paths under `storage/`).
fn split_storage(data: &Path, parts: usize) -> Vec<(tempfile::TempDir, Vec<std::path::PathBuf>)> {
    let mut out: Vec<_> = (0..parts)
        .map(|_| (tempfile::tempdir().unwrap(), Vec::new()))
        .collect();
    for (i, rel) in walk(&data.join("storage")).into_iter().enumerate() {
        out[i % parts].1.push(rel);
    }
    for (dir, files) in &out {
        assert!(!files.is_empty());
        copy_storage(data, files, dir.path());
    }
    out
}

/// Copies `files` (paths under `storage/`) from data dir `from` into data dir `to`.
fn copy_storage(from: &Path, files: &[std::path::PathBuf], to: &Path) {
    for rel in files {
        let target = to.join("storage").join(rel);
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        std::fs::copy(from.join("storage").join(rel), target).unwrap();
    }
}

/// A coordinator distributing jobs, its own storage holding `files` of data dir `from`.
fn local_coordinator(from: &Path, files: &[std::path::PathBuf]) -> TestServer {
    let server = coordinator_with(|config| config.cluster.distribute = true);
    copy_storage(from, files, &server.data_dir());
    server
}

/// The entry of the JSON array `list` whose `key` is `value`.
fn entry_where<'a>(list: &'a Value, key: &str, value: &str) -> &'a Value {
    list.as_array()
        .unwrap()
        .iter()
        .find(|m| m[key] == value)
        .unwrap_or_else(|| panic!("no {key} {value}: {list:#}"))
}

/// The member id of the worker listening at `addr`, from the admin listing.
fn member_id(server: &TestServer, addr: &str) -> String {
    let (_, listing) = cluster(server, Some(ADMIN));
    entry_where(&listing["members"], "address", addr)["id"]
        .as_str()
        .unwrap()
        .to_string()
}

/// `files_read` of `member` (an id, or `coordinator`) in the merged cost report.
fn files_read_by(cost: &Value, member: &str) -> u64 {
    entry_where(&cost["cluster"]["members"], "member", member)["files_read"]
        .as_u64()
        .unwrap()
}

/// A job over the local source (no `source`): the coordinator's and every worker's own storage.
fn local_manifest(param: Option<&str>, filter: Value, allow_partial: bool) -> Value {
    let mut m = manifest(param);
    m.as_object_mut().unwrap().remove("source");
    m["filter"] = filter;
    if allow_partial {
        m["allow_partial"] = json!(true);
    }
    m
}

#[test]
fn a_local_source_job_reads_each_members_own_storage_with_the_output_of_job_run_over_all() {
    let data = jobs_support::converted_data();
    let parts = split_storage(data, 3);
    let server = local_coordinator(data, &parts[0].1);
    let a = Worker::start(&server, WORKER, "127.0.0.1:0", parts[1].0.path(), 1);
    let b = Worker::start(&server, WORKER, "127.0.0.1:0", parts[2].0.path(), 1);
    wait_for(&server, "two alive workers", |body| body["alive"] == 2);

    // Two of the four `reason` partitions: each member prunes its own storage with the filter.
    let filter = json!({"dimensions": [
        {"field_name": "reason", "allowed_values": ["main", "saved-session"]}]});
    let matched = |files: &[std::path::PathBuf]| {
        files
            .iter()
            .filter(|f| f.starts_with("main") || f.starts_with("saved_session"))
            .count() as u64
    };
    let id = submit(
        &server,
        SUBMIT,
        "os-distribution-rust",
        &local_manifest(None, filter.clone(), false),
    );
    let done = finished(&server, &id);
    assert_eq!(done["state"], "succeeded", "{done:#}");
    let cost = &done["cost"];
    assert_eq!(cost["cluster"]["processes"], 3, "{cost:#}");
    assert_eq!(cost["cluster"]["source"], "local", "{cost:#}");
    assert_eq!(cost["cluster"]["partial"], false, "{cost:#}");
    // Each member read exactly its own matching files, and the pruned ones add up.
    let own: Vec<u64> = parts.iter().map(|(_, files)| matched(files)).collect();
    assert!(own.iter().all(|&n| n > 0), "{own:?}");
    assert_eq!(files_read_by(cost, "coordinator"), own[0], "{cost:#}");
    assert_eq!(
        files_read_by(cost, &member_id(&server, &a.addr)),
        own[1],
        "{cost:#}"
    );
    assert_eq!(
        files_read_by(cost, &member_id(&server, &b.addr)),
        own[2],
        "{cost:#}"
    );
    files_per_process(cost);
    let all = walk(&data.join("storage")).len() as u64;
    assert_eq!(
        cost["files_pruned"].as_u64().unwrap(),
        all - own.iter().sum::<u64>(),
        "{cost:#}"
    );

    assert_eq!(
        result_text(&server, &id),
        job_run_over(
            data.to_str().unwrap(),
            None,
            "os-distribution-rust",
            None,
            &filter.to_string()
        )
    );
}

/// What [`kill_a_worker_holding_files`] leaves for the checks.
struct KilledHolding {
    /// The job's final state.
    done: Value,
    /// The whole data (four copies of the test data).
    data: tempfile::TempDir,
    /// Its parts: the coordinator's, the killed worker's, the survivor's.
    parts: Vec<(tempfile::TempDir, Vec<std::path::PathBuf>)>,
    /// The killed worker's address.
    addr: String,
    server: TestServer,
}

/// Coordinator and two workers over four copies of the test data split three ways; worker `a` is
/// killed while a `nap` job over the local source runs.
fn kill_a_worker_holding_files(allow_partial: bool) -> KilledHolding {
    let data = multiplied_data(4);
    let parts = split_storage(data.path(), 3);
    let server = local_coordinator(data.path(), &parts[0].1);
    let mut a = Worker::start(&server, WORKER, "127.0.0.1:0", parts[1].0.path(), 1);
    let _b = Worker::start(&server, WORKER, "127.0.0.1:0", parts[2].0.path(), 1);
    wait_for(&server, "two alive workers", |body| body["alive"] == 2);

    let id = submit(
        &server,
        SUBMIT,
        "hostile-rust",
        &local_manifest(Some("nap"), json!({}), allow_partial),
    );
    wait_attempt_started(&a, 1);
    std::thread::sleep(Duration::from_millis(500));
    a.child.kill().unwrap();
    KilledHolding {
        done: finished(&server, &id),
        data,
        parts,
        addr: a.addr.clone(),
        server,
    }
}

#[test]
fn a_worker_killed_while_holding_local_files_fails_the_job_naming_it() {
    let KilledHolding {
        done, parts, addr, ..
    } = kill_a_worker_holding_files(false);
    assert_eq!(done["state"], "failed", "{done:#}");
    let error = done["error"].as_str().unwrap();
    let held = parts[1].1.len();
    assert!(error.contains(&format!("({addr})")), "{error}");
    assert!(
        error.contains(&format!("holding {held} of the job's partition files")),
        "{error}"
    );
    assert!(error.contains("allow_partial"), "{error}");
}

#[test]
fn with_allow_partial_a_lost_workers_files_are_left_out_and_the_result_says_so() {
    let KilledHolding {
        done,
        data,
        parts,
        addr,
        server,
    } = kill_a_worker_holding_files(true);
    assert_eq!(done["state"], "succeeded", "{done:#}");
    let cost = &done["cost"];
    assert_eq!(cost["cluster"]["partial"], true, "{cost:#}");
    assert_eq!(cost["cluster"]["attempts"], 2, "{cost:#}");
    assert_eq!(cost["cluster"]["processes"], 2, "{cost:#}");
    let missing = cost["cluster"]["missing"].as_array().unwrap();
    assert_eq!(missing.len(), 1, "{cost:#}");
    assert_eq!(missing[0]["address"], addr.as_str(), "{cost:#}");
    assert_eq!(missing[0]["files"], parts[1].1.len() as u64, "{cost:#}");
    assert_eq!(cost["cluster"]["files_missing"], parts[1].1.len() as u64);
    files_per_process(cost);

    // The result is exactly the survivors' data: the coordinator's part and b's.
    let survivors = tempfile::tempdir().unwrap();
    copy_storage(data.path(), &parts[0].1, survivors.path());
    copy_storage(data.path(), &parts[2].1, survivors.path());
    assert_eq!(
        result_text(&server, done["id"].as_str().unwrap()),
        job_run_over(
            survivors.path().to_str().unwrap(),
            None,
            "hostile-rust",
            Some("nap"),
            "{}"
        )
    );
}

#[test]
fn allow_partial_is_a_checked_manifest_field_for_local_sources_only() {
    let s3 = S3Server::start();
    let server = coordinator(&s3);
    let guest = || Some(std::fs::read(common::guest("os-distribution-rust")).unwrap());
    for (manifest, detail) in [
        (
            json!({"name": "p", "source": "archive", "allow_partial": true}),
            "'allow_partial' is for a job over a local source",
        ),
        (
            json!({"name": "p", "allow_partial": "yes"}),
            "expected a boolean",
        ),
    ] {
        let (status, error, text) =
            error_of(post_job(&server, Some(SUBMIT), guest(), Some(&manifest)));
        assert_eq!((status, error.as_str()), (400, "bad_manifest"), "{text}");
        assert!(text.contains(detail), "{text}");
    }
    let id = submit(
        &server,
        SUBMIT,
        "os-distribution-rust",
        &json!({"name": "p", "allow_partial": true, "allow_empty": true}),
    );
    let done = finished(&server, &id);
    assert_eq!(done["state"], "succeeded", "{done:#}");
    assert_eq!(done["manifest"]["allow_partial"], true, "{done:#}");
}

/// Sends `signal` (`STOP`, `CONT`) to worker `w`'s process.
fn signal(w: &Worker, signal: &str) {
    let status = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(w.child.id().to_string())
        .status()
        .unwrap();
    assert!(status.success(), "kill -{signal}");
}

#[test]
fn a_worker_frozen_mid_job_is_dropped_on_missed_heartbeats_and_rejoins_for_a_later_job() {
    let job = NapJob::start();
    // Frozen, not dead: its sockets stay open, so only the heartbeats (or its silent control
    // port) tell; the others' processes of the attempt are cut loose and the job re-planned.
    signal(&job.a, "STOP");
    let done = finished(&job.server, &job.id);
    signal(&job.a, "CONT");
    job.assert_re_planned_without_a(&done);

    // Thawed, it heartbeats again and takes part in the next job.
    wait_for(&job.server, "the thawed worker alive again", |body| {
        body["alive"] == 2
    });
    let id = submit(&job.server, SUBMIT, "os-distribution-rust", &manifest(None));
    let done = finished(&job.server, &id);
    assert_eq!(done["state"], "succeeded", "{done:#}");
    assert_eq!(done["cost"]["cluster"]["processes"], 3, "{done:#}");
    assert_eq!(done["cost"]["cluster"]["attempts"], 1, "{done:#}");
    wait_attempt_started(&job.a, 2);
    assert_eq!(
        result_text(&job.server, &id),
        job_run(&job.s3, "os-distribution-rust", None)
    );
}
