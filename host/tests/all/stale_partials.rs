//! Stale `.partial` storage files after a crash, with the real `telemetry-server` binary: a server
//! killed with SIGKILL while live conversion holds records in open partition files leaves them as
//! `.partial`; the next start moves them to `errors/stale-partials/`, converts the raw logs again,
//! and every acknowledged record ends up in storage exactly once. `convert` does the same at its
//! start, but never touches the files of a server that is writing storage at that moment.

use crate::common;
use crate::server_support::{self, ServeProcess};

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::server_support::walk;
use telemetry_server::storage::{records, DataDir, LocalSource, Schema};

/// Release channels the test ping is submitted under: one partition (so one open file) each.
const CHANNELS: [&str; 4] = ["release", "beta", "aurora", "nightly"];
const PER_CHANNEL: usize = 6;

/// The seed's classic idle-daily ping (it converts with the embedded histogram definitions),
/// as (path after the document id, JSON body with `info.appUpdateChannel` = `channel`).
fn ping(channel: &str) -> (String, Vec<u8>) {
    let mut log =
        telemetry_server::rawlog::open(&common::data("seed/worker-test-data/telemetry1.log"))
            .unwrap();
    let record = log.next().unwrap().unwrap();
    let mut json = Vec::new();
    flate2::read::GzDecoder::new(&record.body[..])
        .read_to_end(&mut json)
        .unwrap();
    let mut doc: serde_json::Value = serde_json::from_slice(&json).unwrap();
    doc["info"]["appUpdateChannel"] = channel.into();
    let (_, rest) = record.path.split_once('/').unwrap();
    (rest.to_string(), serde_json::to_vec(&doc).unwrap())
}

/// Starts `serve` on `data` with live conversion finishing partition files every `flush_secs`.
fn start(root: &Path, flush_secs: u64) -> ServeProcess {
    let config = root.join(format!("serve-{flush_secs}.toml"));
    std::fs::write(
        &config,
        format!(
            "[ingest]\nshards = 2\nmax_log_age_ms = 200\n\
             [convert]\nenabled = true\nworkers = 2\nscan_interval_secs = 1\nflush_secs = {flush_secs}\n"
        ),
    )
    .unwrap();
    ServeProcess::start(&config, &root.join("data"))
}

/// Submits `PER_CHANNEL` pings per channel with fresh ids; returns the ids acknowledged with 200.
fn submit(server: &ServeProcess) -> Vec<String> {
    let client = reqwest::blocking::Client::new();
    let mut acked = Vec::new();
    for channel in CHANNELS {
        let (rest, body) = ping(channel);
        for _ in 0..PER_CHANNEL {
            let id = uuid::Uuid::new_v4().to_string();
            let url = format!("http://{}/submit/telemetry/{id}/{rest}", server.addr);
            let response = client.post(url).body(body.clone()).send().unwrap();
            assert_eq!(response.status().as_u16(), 200);
            acked.push(id);
        }
    }
    acked
}

/// Waits until live conversion has written `n` records (into open or finished files).
fn wait_converted(server: &ServeProcess, n: usize) {
    server.wait_for("conversion", Duration::from_secs(60), |s| {
        s.metric("telemetry_convert_records_written_total") >= n as u64
    });
}

/// Paths under `dir` (relative, `/`-separated) ending in `.partial`, sorted.
fn partials(dir: &Path) -> Vec<String> {
    let mut found: Vec<String> = walk(dir)
        .iter()
        .map(|p| p.to_string_lossy().replace('\\', "/"))
        .filter(|p| p.ends_with(".partial"))
        .collect();
    found.sort();
    found
}

/// Every stored document id in the finished partition files of `data`, sorted (with repeats).
fn stored_ids(data: &Path) -> Vec<String> {
    let schema = Schema::load(&common::data("seed/telemetry_schema.json")).unwrap();
    let source = LocalSource::new(DataDir::open(data).unwrap().sub("storage").unwrap());
    let mut ids: Vec<String> = records(&source, &schema)
        .unwrap()
        .map(|r| r.unwrap().id)
        .collect();
    ids.sort();
    ids
}

/// The `errors/stale-partials/<stamp>` directories, sorted.
fn stale_dirs(data: &Path) -> Vec<PathBuf> {
    let dir = data.join("errors/stale-partials");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut dirs: Vec<PathBuf> = entries.map(|e| e.unwrap().path()).collect();
    dirs.sort();
    dirs
}

#[test]
fn a_killed_server_leaves_partials_that_the_next_start_moves_aside_and_every_record_is_stored_once()
{
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");

    // Run 1: records are converted into open partition files, which are never flushed (1 h).
    let first = start(root.path(), 3600);
    let mut acked = submit(&first);
    wait_converted(&first, acked.len());
    first.kill();
    let left = partials(&data.join("storage"));
    assert!(
        left.len() >= CHANNELS.len(),
        "one open file per channel at least: {left:?}"
    );
    assert!(
        stored_ids(&data).is_empty(),
        "nothing was flushed before the kill"
    );
    eprintln!(
        "{} acknowledged records in {} .partial files at the kill",
        acked.len(),
        left.len()
    );

    // Run 2: the partials are moved aside at start, the raw logs converted again and flushed.
    let second = start(root.path(), 1);
    assert_eq!(
        second.metric("telemetry_storage_stale_partials_total"),
        left.len() as u64
    );
    assert!(
        second.log().contains("moved stale .partial storage files"),
        "{}",
        second.log()
    );
    wait_converted(&second, acked.len());
    let log = second.terminate_ok();
    assert!(log.contains("live conversion stopped"), "{log}");

    assert_eq!(
        partials(&data.join("storage")),
        Vec::<String>::new(),
        "no .partial remains in storage"
    );
    let moved = stale_dirs(&data);
    assert_eq!(moved.len(), 1, "{moved:?}");
    assert_eq!(
        partials(&moved[0]),
        left,
        "exactly the files the kill left, under their storage paths"
    );
    acked.sort();
    assert_eq!(
        stored_ids(&data),
        acked,
        "every acknowledged record stored exactly once"
    );
    let raw_left: Vec<String> = server_support::files(&data.join("raw"));
    assert!(
        raw_left.is_empty(),
        "every raw log was converted and retired: {raw_left:?}"
    );
}

#[test]
fn convert_moves_stale_partials_but_never_those_of_a_running_server() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    let convert = || {
        let out = Command::new(common::binary())
            // Dedup off: the running server holds the index, and each run stores its record anew.
            .args([
                "convert",
                "--json",
                "--dedup-window-days",
                "0",
                "--data-dir",
            ])
            .arg(&data)
            .arg(common::data("seed/worker-test-data/telemetry1.log"))
            .env("RUST_LOG", "info")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "convert failed: {stderr}");
        let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(summary["records_written"], 1, "{summary}");
        stderr
    };

    let server = start(root.path(), 3600);
    let acked = submit(&server);
    wait_converted(&server, acked.len());
    let live = partials(&data.join("storage"));
    assert!(!live.is_empty());
    // The server's writers hold the storage lock: convert leaves their open files alone.
    let stderr = convert();
    assert!(!stderr.contains("moved stale"), "{stderr}");
    assert_eq!(
        partials(&data.join("storage")),
        live,
        "a live server's files are untouched"
    );
    assert!(stale_dirs(&data).is_empty());

    // Once the server is dead, its files are stale and the next convert moves them aside.
    server.kill();
    let stderr = convert();
    assert!(
        stderr.contains("moved stale .partial storage files"),
        "{stderr}"
    );
    assert!(partials(&data.join("storage")).is_empty());
    let moved = stale_dirs(&data);
    assert_eq!(moved.len(), 1);
    assert_eq!(partials(&moved[0]), live);
    // convert's own record (1 per run) is stored; the server's are in its raw logs, not lost.
    assert_eq!(stored_ids(&data).len(), 2);
    let raw = server_support::files(&data.join("raw"));
    assert!(
        raw.iter().all(|n| n.ends_with(".finished")) && !raw.is_empty(),
        "{raw:?}"
    );
}
