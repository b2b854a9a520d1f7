//! Cluster membership with real processes: an in-process coordinator (`serve`) on loopback and
//! `telemetry-server worker` processes that register with a `worker` token and heartbeat. They
//! are listed (state, cores, workers, local data, last heartbeat) to admins only; a killed worker
//! turns `lost` and rejoins its entry when it comes back; wrong tokens are refused and counted;
//! garbage sent to a worker's port crashes nothing.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use telemetry_server::api::jobs::{hash_token, Role, TokenConfig};

use crate::common;
use crate::jobs_support;
use crate::server_support::{announced_address, walk, TestServer};

pub(crate) const ADMIN: &str = "cluster-admin-token-0123456789";
pub(crate) const WORKER: &str = "cluster-worker-token-0123456789";
pub(crate) const SUBMIT: &str = "cluster-submit-token-0123456789";

/// A coordinator with an admin, a worker and a submit token; heartbeats every second, lost after 3.
fn coordinator() -> TestServer {
    coordinator_with(|_| {})
}

/// [`coordinator`] with `tweak` applied to its configuration last.
pub(crate) fn coordinator_with(
    tweak: impl FnOnce(&mut telemetry_server::config::Config),
) -> TestServer {
    TestServer::start(|config| {
        config.jobs.tokens = [
            ("root", ADMIN, Role::Admin),
            ("node", WORKER, Role::Worker),
            ("alice", SUBMIT, Role::Submit),
        ]
        .into_iter()
        .map(|(name, token, role)| TokenConfig {
            name: name.into(),
            sha256: hash_token(token),
            role,
        })
        .collect();
        config.cluster.heartbeat_secs = 1;
        config.cluster.lost_after_secs = 3;
        tweak(config);
    })
}

/// A `telemetry-server worker` process; killed when dropped.
pub(crate) struct Worker {
    pub(crate) child: Child,
    pub(crate) addr: String,
    pub(crate) log: Arc<Mutex<String>>,
    _token: tempfile::NamedTempFile,
}

impl Worker {
    /// Starts a worker of `server` with `token` on `listen`, data dir `data`, `--workers n`.
    pub(crate) fn start(
        server: &TestServer,
        token: &str,
        listen: &str,
        data: &Path,
        n: usize,
    ) -> Worker {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        writeln!(file, "{token}").unwrap();
        let mut child = Command::new(common::binary())
            .args([
                "worker",
                "--coordinator",
                &server.url(""),
                "--listen",
                listen,
            ])
            .arg("--token-file")
            .arg(file.path())
            .arg("--data-dir")
            .arg(data)
            .args(["--workers", &n.to_string()])
            .env("RUST_LOG", "info")
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (addr, log) = announced_address(&mut child, "worker");
        Worker {
            child,
            addr,
            log,
            _token: file,
        }
    }

    /// The worker's own `GET /status`.
    fn status(&self) -> Value {
        reqwest::blocking::get(format!("http://{}/status", self.addr))
            .unwrap()
            .json()
            .unwrap()
    }

    /// Waits for the process to exit (at most 20 s).
    fn exit(&mut self) -> std::process::ExitStatus {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "worker still running:\n{}",
                self.log.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `GET /api/v1/cluster` with `token`: (status, body).
pub(crate) fn cluster(server: &TestServer, token: Option<&str>) -> (u16, Value) {
    let mut request = reqwest::blocking::Client::new().get(server.url("/api/v1/cluster"));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().unwrap();
    (response.status().as_u16(), response.json().unwrap())
}

/// Polls the admin listing until `done` holds (at most 20 s); returns the listing.
pub(crate) fn wait_for(server: &TestServer, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (status, body) = cluster(server, Some(ADMIN));
        assert_eq!(status, 200, "{body}");
        if done(&body) {
            return body;
        }
        assert!(Instant::now() < deadline, "{what}: {body:#}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The member listening at `addr`.
fn member<'a>(listing: &'a Value, addr: &str) -> &'a Value {
    listing["members"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["address"] == addr)
        .unwrap_or_else(|| panic!("no member {addr}: {listing:#}"))
}

/// A data dir whose `storage/` is a copy of the converted test data: (dir, files, bytes).
fn data_with_storage() -> (tempfile::TempDir, u64, u64) {
    let dir = tempfile::tempdir().unwrap();
    let from = jobs_support::converted_data().join("storage");
    let (mut files, mut bytes) = (0, 0);
    for rel in walk(&from) {
        let to: PathBuf = dir.path().join("storage").join(&rel);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        bytes += std::fs::copy(from.join(&rel), &to).unwrap();
        files += 1;
    }
    assert!(files > 0);
    (dir, files, bytes)
}

/// The value of the metric line starting with `series` (0 when absent).
fn metric(server: &TestServer, series: &str) -> f64 {
    server
        .metrics()
        .lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0.0)
}

/// `telemetry_cluster_registrations_refused_total{reason}`.
fn refused(server: &TestServer, reason: &str) -> f64 {
    metric(
        server,
        &format!(r#"telemetry_cluster_registrations_refused_total{{reason="{reason}"}}"#),
    )
}

#[test]
fn workers_register_heartbeat_and_are_listed_to_admins_only() {
    let server = coordinator();
    let (full, files, bytes) = data_with_storage();
    let empty = tempfile::tempdir().unwrap();
    let a = Worker::start(&server, WORKER, "127.0.0.1:0", full.path(), 1);
    let b = Worker::start(&server, WORKER, "127.0.0.1:0", empty.path(), 2);

    // Both alive, each having heartbeated at least twice after registering.
    wait_for(&server, "two workers registered", |c| c["alive"] == 2);
    let deadline = Instant::now() + Duration::from_secs(20);
    while [&a, &b]
        .iter()
        .any(|w| w.status()["heartbeats"].as_u64() < Some(2))
    {
        assert!(Instant::now() < deadline, "{}", a.status());
        std::thread::sleep(Duration::from_millis(200));
    }
    let listing = wait_for(&server, "two alive", |c| c["alive"] == 2 && c["lost"] == 0);
    assert_eq!(listing["members"].as_array().unwrap().len(), 2);
    let cores = std::thread::available_parallelism().unwrap().get() as u64;
    for (worker, workers, want_files, want_bytes) in [(&a, 1, files, bytes), (&b, 2, 0, 0)] {
        let m = member(&listing, &worker.addr);
        assert_eq!(m["state"], "alive", "{m}");
        assert_eq!(m["token"], "node");
        assert_eq!(m["cores"], cores);
        assert_eq!(m["workers"], workers);
        assert_eq!(m["data_files"], want_files, "{m}");
        assert_eq!(m["data_bytes"], want_bytes, "{m}");
        assert!(m["silent_secs"].as_u64().unwrap() <= 3, "{m}");
        assert!(
            m["last_heartbeat"].as_str().unwrap() >= m["registered_at"].as_str().unwrap(),
            "{m}"
        );
        assert_eq!(worker.status()["member_id"], m["id"]);
    }

    // Only admins see the cluster; a worker token reaches no job route either.
    let (status, body) = cluster(&server, None);
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("unauthorized"))
    );
    for token in [WORKER, SUBMIT] {
        let (status, body) = cluster(&server, Some(token));
        assert_eq!(
            (status, body["error"].as_str()),
            (403, Some("forbidden")),
            "{body}"
        );
    }
    let jobs = reqwest::blocking::Client::new()
        .get(server.url("/api/v1/jobs"))
        .bearer_auth(WORKER)
        .send()
        .unwrap();
    assert_eq!(jobs.status().as_u16(), 403);
    assert_eq!(refused(&server, "role"), 2.0);
    assert_eq!(refused(&server, "token"), 1.0);
    assert_eq!(
        metric(&server, r#"telemetry_cluster_members{state="alive"}"#),
        2.0
    );
    assert!(server
        .metrics()
        .contains("telemetry_cluster_mesh_handshakes_refused_total"));
}

#[test]
fn a_killed_worker_turns_lost_and_rejoins_when_it_comes_back() {
    let server = coordinator();
    let data = tempfile::tempdir().unwrap();
    let listen = common::free_local_addr().to_string();
    let mut worker = Worker::start(&server, WORKER, &listen, data.path(), 1);
    let listing = wait_for(&server, "registered", |c| c["alive"] == 1);
    let id = member(&listing, &listen)["id"].clone();

    worker.child.kill().unwrap(); // SIGKILL: no goodbye
    worker.child.wait().unwrap();
    let killed = Instant::now();
    let listing = wait_for(&server, "lost", |c| c["lost"] == 1);
    let lost = member(&listing, &listen);
    assert_eq!(lost["state"], "lost");
    assert!(lost["silent_secs"].as_u64().unwrap() >= 3, "{lost}");
    assert!(killed.elapsed() < Duration::from_secs(10));
    assert_eq!(
        metric(&server, r#"telemetry_cluster_members{state="lost"}"#),
        1.0
    );

    // Back on the same address: the same entry, alive again, one rejoin.
    let _again = Worker::start(&server, WORKER, &listen, data.path(), 1);
    let listing = wait_for(&server, "rejoined", |c| c["alive"] == 1);
    assert_eq!(listing["members"].as_array().unwrap().len(), 1);
    let back = member(&listing, &listen);
    assert_eq!((&back["id"], &back["rejoins"]), (&id, &Value::from(1)));
}

#[test]
fn workers_with_a_wrong_token_or_role_are_refused_counted_and_exit() {
    let server = coordinator();
    let data = tempfile::tempdir().unwrap();
    for (token, code) in [("not-a-token", "401"), (SUBMIT, "403")] {
        let mut worker = Worker::start(&server, token, "127.0.0.1:0", data.path(), 1);
        let status = worker.exit();
        assert!(!status.success());
        let log = worker.log.lock().unwrap().clone();
        assert!(
            log.contains(&format!("the coordinator refused this worker ({code}")),
            "{log}"
        );
    }
    assert_eq!(refused(&server, "token"), 1.0);
    assert_eq!(refused(&server, "role"), 1.0);
    let (_, listing) = cluster(&server, Some(ADMIN));
    assert_eq!(listing["members"], Value::Array(vec![]));
}

#[test]
fn garbage_to_a_worker_or_the_member_routes_crashes_nothing() {
    let server = coordinator();
    let data = tempfile::tempdir().unwrap();
    let mut worker = Worker::start(&server, WORKER, "127.0.0.1:0", data.path(), 1);
    wait_for(&server, "registered", |c| c["alive"] == 1);
    let before = worker.status()["heartbeats"].as_u64().unwrap();

    // Junk bytes, a silent connection, a bare timely-style index, an endless header, a wrong path.
    let addr = worker.addr.clone();
    let silent = TcpStream::connect(&addr).unwrap();
    for junk in [
        &b"\x00\x01\x02\x03garbage\r\n\r\n"[..],
        &7u64.to_be_bytes()[..],
        &[b'A'; 100_000][..],
        b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n",
        b"POST /status HTTP/1.1\r\nContent-Length: 99999999\r\n\r\nabc",
    ] {
        let mut s = TcpStream::connect(&addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
        let _ = s.write_all(junk);
        let mut answer = Vec::new();
        let _ = s.read_to_end(&mut answer);
    }
    drop(silent);
    assert!(
        worker.child.try_wait().unwrap().is_none(),
        "the worker died"
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while worker.status()["heartbeats"].as_u64().unwrap() < before + 2 {
        assert!(Instant::now() < deadline, "heartbeats stopped");
        std::thread::sleep(Duration::from_millis(200));
    }

    // The coordinator's member routes: bad reports are 400s, counted; unknown ids are 404s.
    let client = reqwest::blocking::Client::new();
    let post = |path: &str, body: &'static str| {
        let r = client
            .post(server.url(path))
            .bearer_auth(WORKER)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json::<Value>().unwrap_or(Value::Null))
    };
    for body in [
        "{",
        r#"{"address":"nowhere","cores":1,"workers":1,"data_files":0,"data_bytes":0}"#,
        r#"{"address":"127.0.0.1:9","cores":1,"workers":0,"data_files":0,"data_bytes":0}"#,
        r#"{"address":"127.0.0.1:9","cores":-1,"workers":1,"data_files":0,"data_bytes":0}"#,
    ] {
        let (status, answer) = post("/api/v1/cluster/members", body);
        assert_eq!(
            (status, answer["error"].as_str()),
            (400, Some("bad_report")),
            "{body}: {answer}"
        );
    }
    assert_eq!(refused(&server, "bad_report"), 4.0);
    let (status, _) = post(
        "/api/v1/cluster/members/w-nope/heartbeat",
        r#"{"address":"127.0.0.1:9","cores":1,"workers":1,"data_files":0,"data_bytes":0}"#,
    );
    assert_eq!(status, 404);
    let listing = wait_for(&server, "still alive", |c| c["alive"] == 1);
    assert_eq!(listing["members"].as_array().unwrap().len(), 1);
}

#[test]
fn a_worker_token_from_token_new_registers() {
    let out = Command::new(common::binary())
        .args(["token", "new", "--name", "rack-7", "--role", "worker"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let (token, entry) = text.split_once('\n').unwrap();
    let entry = telemetry_server::config::Config::from_toml(entry).unwrap();
    assert_eq!(entry.jobs.tokens[0].role, Role::Worker);
    let server = TestServer::start(|config| {
        config.jobs.tokens = entry.jobs.tokens.clone();
        config.jobs.tokens.push(TokenConfig {
            name: "root".into(),
            sha256: hash_token(ADMIN),
            role: Role::Admin,
        });
    });
    let data = tempfile::tempdir().unwrap();
    let worker = Worker::start(&server, token, "127.0.0.1:0", data.path(), 1);
    let listing = wait_for(&server, "registered", |c| c["alive"] == 1);
    assert_eq!(member(&listing, &worker.addr)["token"], "rack-7");
}
