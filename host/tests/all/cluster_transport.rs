//! The authenticated timely mesh between real processes (`job run --hosts … --secret-file`):
//! raw probes, timely's bare greeting and a peer with another secret hit process 0 before its
//! real peer starts; they are refused, nothing crashes, and the run gives the single-process
//! output. A member with the wrong secret fails fast with an error naming the handshake.

use std::io::Write;
use std::net::TcpStream;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use telemetry_server::cluster::handshake::{self, MeshSecret};

use crate::common;
use crate::jobs_cluster::{job_run, report};
use crate::jobs_support::filter_json;

fn spawn(filter: &std::path::Path, hosts: &str, process: usize, secret: &std::path::Path) -> Child {
    job_run(
        filter,
        &[
            "--hosts",
            hosts,
            "--process",
            &process.to_string(),
            "--secret-file",
            secret.to_str().unwrap(),
        ],
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap()
}

/// Connects to `addr` once it listens (within 60 s: the process compiles the guest first).
fn connect_when_up(addr: &str) -> TcpStream {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match TcpStream::connect(addr) {
            Ok(s) => return s,
            Err(e) => {
                assert!(Instant::now() < deadline, "{addr} never listened: {e}");
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

struct Setup {
    _dir: tempfile::TempDir,
    filter: std::path::PathBuf,
    secret: std::path::PathBuf,
    other_secret: std::path::PathBuf,
    addrs: [String; 2],
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let filter = dir.path().join("filter.json");
    std::fs::write(&filter, filter_json(&[])).unwrap();
    let secret = dir.path().join("secret");
    std::fs::write(&secret, MeshSecret::random().unwrap().to_hex()).unwrap();
    let other_secret = dir.path().join("other");
    std::fs::write(&other_secret, MeshSecret::random().unwrap().to_hex()).unwrap();
    let addrs = [
        common::free_local_addr().to_string(),
        common::free_local_addr().to_string(),
    ];
    Setup {
        _dir: dir,
        filter,
        secret,
        other_secret,
        addrs,
    }
}

#[test]
fn intruders_are_refused_and_the_run_still_gives_the_single_process_output() {
    let s = setup();
    let hosts = s.addrs.join(",");
    let first = spawn(&s.filter, &hosts, 0, &s.secret);
    // A raw probe that sends nothing, timely's own 8-byte greeting plus junk, and a peer that
    // speaks the handshake with another secret.
    let silent = connect_when_up(&s.addrs[0]);
    let mut greeting = connect_when_up(&s.addrs[0]);
    greeting.write_all(&1u64.to_be_bytes()).unwrap();
    greeting.write_all(&[0x5A; 64]).unwrap();
    let mut liar = connect_when_up(&s.addrs[0]);
    let refused = handshake::dial(
        &mut liar,
        &MeshSecret::random().unwrap(),
        1,
        0,
        Duration::from_secs(10),
    );
    assert!(refused.is_err(), "a wrong secret got an answer");
    drop(silent);
    let second = spawn(&s.filter, &hosts, 1, &s.secret);
    let reports: Vec<Value> = [first, second]
        .into_iter()
        .map(|c| report(&c.wait_with_output().unwrap()))
        .collect();
    let single = report(&job_run(&s.filter, &[]).output().unwrap());
    assert!(!single["output"].as_str().unwrap().is_empty());
    assert_eq!(reports[0]["output"], single["output"]);
    assert_eq!(reports[0]["cost"]["workers"], 2);
    assert_eq!(
        reports[0]["cost"]["records_read"].as_u64().unwrap()
            + reports[1]["cost"]["records_read"].as_u64().unwrap(),
        single["cost"]["records_read"].as_u64().unwrap()
    );
}

#[test]
fn a_member_with_another_secret_fails_fast_and_crashes_nothing() {
    let s = setup();
    let hosts = s.addrs.join(",");
    let mut first = spawn(&s.filter, &hosts, 0, &s.secret);
    drop(connect_when_up(&s.addrs[0]));
    let started = Instant::now();
    let wrong = spawn(&s.filter, &hosts, 1, &s.other_secret)
        .wait_with_output()
        .unwrap();
    assert!(!wrong.status.success());
    let stderr = String::from_utf8_lossy(&wrong.stderr);
    assert!(
        stderr.contains("process 0") && stderr.contains("handshake"),
        "{stderr}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "it failed fast"
    );
    assert!(
        first.try_wait().unwrap().is_none(),
        "process 0 is still waiting for its real peer"
    );
    // The real peer can still join: the refused attempt left process 0 usable.
    let second = spawn(&s.filter, &hosts, 1, &s.secret);
    let zero = report(&first.wait_with_output().unwrap());
    report(&second.wait_with_output().unwrap());
    assert!(!zero["output"].as_str().unwrap().is_empty());
}
