//! The job service measured on the real server process (`telemetry-server serve`, release build):
//!
//! 1. upload-to-result time of a small job (os-distribution-rust over the job tests' data: real
//!    pings from ../shared/data plus gen-pings.py pings) with a warm compile cache: POST the
//!    component + manifest, poll the status, GET the result; the first (cold) run is shown apart;
//! 2. ingest latency (wrk, 32 connections, a 19 KB gzip saved-session ping from
//!    ../shared/data/pings) with no job, with a heavy job running under the job service's default
//!    core share (cores − 1 workers, nice 19, `SCHED_IDLE`), and — the ablation — with the same job
//!    given every core at normal priority (`max_workers_per_job = cores`, `job_nice = 0`,
//!    `job_sched_idle = false`).
//!
//! The heavy job is the hostile guest's `loop` mode: every worker spins in the guest without
//! end (the most CPU a job can take); it is cancelled after each measurement.
//!
//! `bash bench/job_service.sh` (builds the guests and installs wrk if needed).
//! `JOB_BENCH_SECS` (default 10) is the wrk duration, `JOB_BENCH_RUNS` (default 10) the warm
//! uploads, `JOB_BENCH_DURABILITY` (default `batch`) the ingest durability mode.

#[path = "../tests/all/common/mod.rs"]
mod common;
#[path = "../tests/all/jobs_support/mod.rs"]
mod jobs_support;

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::blocking::{multipart, Client};
use serde_json::{json, Value};
use telemetry_server::api::jobs::hash_token;

const TOKEN: &str = "bench-token";

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A running `telemetry-server serve` with its own config.
struct Server {
    child: Child,
    base: String,
}

impl Server {
    fn start(data: &Path, durability: &str, jobs: &str) -> Server {
        let config = data.join(format!("bench-{}.toml", std::process::id()));
        std::fs::write(
            &config,
            format!(
                "data_dir = {data:?}\n[server]\nlisten = \"127.0.0.1:0\"\n[ingest]\ndurability = \"{durability}\"\n\
                 [convert]\nenabled = false\n[jobs]\n{jobs}\n[[jobs.tokens]]\nname = \"bench\"\nsha256 = \"{}\"\nrole = \"admin\"\n",
                hash_token(TOKEN)
            ),
        )
        .unwrap();
        let mut child = Command::new(common::binary())
            .args(["serve", "--config"])
            .arg(&config)
            .env("RUST_LOG", "warn,telemetry_server::server=info")
            .env("NO_COLOR", "1")
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = std::io::BufReader::new(child.stderr.take().unwrap()).lines();
        let addr = loop {
            let line = lines.next().expect("server exited before serving").unwrap();
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

    fn submit(&self, client: &Client, guest: &[u8], manifest: &Value) -> String {
        let form = multipart::Form::new()
            .part("manifest", multipart::Part::text(manifest.to_string()))
            .part("component", multipart::Part::bytes(guest.to_vec()));
        let r = client
            .post(format!("{}/api/v1/jobs", self.base))
            .bearer_auth(TOKEN)
            .multipart(form)
            .send()
            .unwrap();
        assert_eq!(r.status().as_u16(), 202, "{}", r.text().unwrap());
        r.json::<Value>().unwrap()["id"]
            .as_str()
            .unwrap()
            .to_string()
    }

    fn state(&self, client: &Client, id: &str) -> Value {
        client
            .get(format!("{}/api/v1/jobs/{id}", self.base))
            .bearer_auth(TOKEN)
            .send()
            .unwrap()
            .json()
            .unwrap()
    }

    /// Polls every 2 ms until the job is final.
    fn wait(&self, client: &Client, id: &str, want: &str) -> Value {
        loop {
            let job = self.state(client, id);
            if job["state"] == want {
                return job;
            }
            assert!(
                matches!(job["state"].as_str(), Some("queued" | "running")),
                "job ended {} instead of {want}: {job}",
                job["state"]
            );
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    fn cancel(&self, client: &Client, id: &str) {
        client
            .delete(format!("{}/api/v1/jobs/{id}", self.base))
            .bearer_auth(TOKEN)
            .send()
            .unwrap();
        self.wait(client, id, "cancelled");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One upload-to-result round trip; returns (seconds, result bytes).
fn round_trip(server: &Server, client: &Client, guest: &[u8], manifest: &Value) -> (f64, usize) {
    let start = Instant::now();
    let id = server.submit(client, guest, manifest);
    server.wait(client, &id, "succeeded");
    let body = client
        .get(format!("{}/api/v1/jobs/{id}/result", server.base))
        .bearer_auth(TOKEN)
        .send()
        .unwrap()
        .bytes()
        .unwrap();
    (start.elapsed().as_secs_f64(), body.len())
}

/// wrk against the submission API; returns (req/s, p50 ms, p99 ms, non-2xx).
fn wrk(base: &str, lua: &Path, secs: u64) -> (f64, f64, f64, u64) {
    let out = Command::new("wrk")
        .args(["-t2", "-c32", &format!("-d{secs}s"), "-s"])
        .arg(lua)
        .arg(base)
        .output()
        .expect("wrk is installed (bench/job_service.sh installs it)");
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.starts_with("RESULT"))
        .unwrap_or_else(|| panic!("wrk output: {text}"));
    let field = |name: &str| -> f64 {
        line.split_whitespace()
            .find_map(|kv| kv.strip_prefix(&format!("{name}=")))
            .unwrap()
            .parse()
            .unwrap()
    };
    (
        field("rps"),
        field("p50_ms"),
        field("p99_ms"),
        field("non2xx") as u64,
    )
}

fn wrk_script(dir: &Path) -> PathBuf {
    let ping = std::fs::read(common::data(
        "pings/v4.saved-session.Fx40.0a2-aurora.2015-05.uberi.json",
    ))
    .unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
    std::io::Write::write_all(&mut gz, &ping).unwrap();
    let body = dir.join("ping.json.gz");
    std::fs::write(&body, gz.finish().unwrap()).unwrap();
    // bench/submit.lua reads the body from SUBMIT_BODY (set once, before any wrk runs).
    std::env::set_var("SUBMIT_BODY", &body);
    common::repo_root().join("bench/submit.lua")
}

/// Copies the directory tree `from` to `to` (files and directories only).
fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo test --benches` lists; nothing to list here
    }
    let secs: u64 = env_or("JOB_BENCH_SECS", 10);
    let runs: usize = env_or("JOB_BENCH_RUNS", 10);
    let durability: String = env_or("JOB_BENCH_DURABILITY", "batch".to_string());
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    // The server writes raw logs and job state into its data dir: give it a copy of the job tests'
    // data, so the shared test data under target/ never grows.
    let work = tempfile::tempdir().unwrap();
    let data = work.path().join("data");
    copy_tree(jobs_support::converted_data(), &data);
    let data = data.as_path();
    let client = Client::builder()
        .timeout(Duration::from_secs(120))
        .build()
        .unwrap();
    let small = std::fs::read(common::guest("os-distribution-rust")).unwrap();
    let hostile = std::fs::read(common::guest("hostile-rust")).unwrap();
    let filter: Value = serde_json::from_str(&jobs_support::filter_json(&[])).unwrap();
    let small_manifest = json!({ "name": "small", "filter": filter });
    let heavy_manifest = json!({
        "name": "heavy", "filter": filter, "parameter": "loop", "workers": cores,
        "limits": { "call_timeout_ms": 3_600_000 }
    });

    // 1. Upload to result.
    let server = Server::start(data, &durability, "");
    let (cold, bytes) = round_trip(&server, &client, &small, &small_manifest);
    let mut warm: Vec<f64> = (0..runs)
        .map(|_| round_trip(&server, &client, &small, &small_manifest).0)
        .collect();
    warm.sort_by(f64::total_cmp);
    let records = {
        let id = server.submit(&client, &small, &small_manifest);
        server.wait(&client, &id, "succeeded")["cost"]["records_read"]
            .as_u64()
            .unwrap()
    };
    println!("upload-to-result, os-distribution-rust ({} KB component) over {records} records, {bytes} B result:", small.len() / 1024);
    println!("  cold compile cache: {:.0} ms", cold * 1e3);
    println!(
        "  warm compile cache: median {:.0} ms, min {:.0} ms, max {:.0} ms ({runs} runs; goal < 1000 ms)",
        warm[runs / 2] * 1e3,
        warm[0] * 1e3,
        warm[runs - 1] * 1e3
    );

    // 2. Ingest latency with and without a heavy job.
    let tmp = tempfile::tempdir().unwrap();
    let lua = wrk_script(tmp.path());
    println!(
        "\ningest: wrk -t2 -c32 -d{secs}s, 19 KB gzip ping, durability {durability}, {cores} cores"
    );
    println!(
        "{:<44} {:>9} {:>9} {:>9} {:>8}",
        "condition", "req/s", "p50 ms", "p99 ms", "non2xx"
    );
    let row = |name: &str, (rps, p50, p99, bad): (f64, f64, f64, u64)| {
        println!("{name:<44} {rps:>9.0} {p50:>9.2} {p99:>9.2} {bad:>8}");
        p99
    };
    let idle = row("no job", wrk(&server.base, &lua, secs));
    let heavy = server.submit(&client, &hostile, &heavy_manifest);
    server.wait(&client, &heavy, "running");
    let shared = row(
        "heavy job, default share (cores-1, SCHED_IDLE)",
        wrk(&server.base, &lua, secs),
    );
    server.cancel(&client, &heavy);
    drop(server);

    let unprotected =
        format!("max_workers_per_job = {cores}\njob_nice = 0\njob_sched_idle = false");
    let server = Server::start(data, &durability, &unprotected);
    let heavy = server.submit(&client, &hostile, &heavy_manifest);
    server.wait(&client, &heavy, "running");
    let all = row(
        "heavy job, all cores, nice 0, normal policy",
        wrk(&server.base, &lua, secs),
    );
    server.cancel(&client, &heavy);
    println!(
        "\np99 ratio to no job: default share {:.2}x (goal <= 2x), all cores nice 0 {:.2}x",
        shared / idle,
        all / idle
    );
}
