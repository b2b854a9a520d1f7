//! De-duplication by document id and idempotent re-conversion, with the real binary and real
//! pings: the same ids sent twice through `serve` around a `kill -9` are stored once; `convert`
//! run twice stores once; ids leave the index once out of the window; a record rejected for
//! lack of definitions is converted from the error stream once they are given, and only once.

use crate::common;
use crate::server_support::{self, ServeProcess};

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

/// Real pings (`../shared/data/pings`) that conversion stores with `unknown_revision =
/// "nearest"` (and that fit the default 200 KB body limit); used in turn under fresh ids.
const PINGS: [&str; 3] = [
    "pings/v4.saved-session.Fx40.0a2-aurora.2015-05.uberi.json",
    "pings/v4.main.Fx60.0a1-nightly.2018-03.gc_sample.pipeline-schemas.json",
    "pings/v4.crash.Fx61.0a1-nightly.2018-04.pipeline-schemas.json",
];
/// Nightly 2018-03 ping whose revision has no embedded definitions (`missing_histograms` by
/// default); its histograms are defined alike in [`DEFINITIONS`].
const FX60: &str = "pings/v4.main.Fx60.0a1-nightly.2018-03.gc_sample.pipeline-schemas.json";
const FX60_REV: &str = "919570891f1c8c8576be89f273f47fb9542c2a1f";
const DEFINITIONS: &str = "histograms/Histograms.mozilla-central.2017-03.telemetry-batch-view.json";

const IDS: usize = 1000;

fn ping_bodies() -> Vec<Vec<u8>> {
    PINGS
        .iter()
        .map(|p| std::fs::read(common::data(p)).unwrap())
        .collect()
}

/// Every stored document id in the finished partition files of `data`, sorted (with repeats).
fn stored_ids(data: &Path) -> Vec<String> {
    let storage = data.join("storage");
    let mut ids = Vec::new();
    for rel in server_support::walk(&storage) {
        let name = rel.to_string_lossy().into_owned();
        if name.ends_with(".partial") {
            continue;
        }
        let file = std::fs::File::open(storage.join(&rel)).unwrap();
        for line in telemetry_server::storage::decompress(&name, file)
            .unwrap()
            .lines()
        {
            let line = line.unwrap();
            ids.push(line.split_once('\t').unwrap().0.to_string());
        }
    }
    ids.sort();
    ids
}

/// Asserts that `stored` is exactly `expected` (both sorted), naming only the differences.
fn assert_ids(stored: &[String], expected: &[String], what: &str) {
    let missing: Vec<&String> = expected
        .iter()
        .filter(|id| stored.binary_search(id).is_err())
        .collect();
    let repeated: Vec<&String> = stored
        .windows(2)
        .filter(|w| w[0] == w[1])
        .map(|w| &w[0])
        .collect();
    let extra: Vec<&String> = stored
        .iter()
        .filter(|id| expected.binary_search(id).is_err())
        .collect();
    assert!(
        missing.is_empty() && repeated.is_empty() && extra.is_empty(),
        "{what}: {} stored; missing {missing:?}; stored twice {repeated:?}; unexpected {extra:?}",
        stored.len()
    );
}

/// Every complete error-stream entry under `errors/` (top level only).
fn error_entries(data: &Path) -> Vec<Value> {
    let dir = data.join("errors");
    let mut out = Vec::new();
    let Ok(files) = std::fs::read_dir(&dir) else {
        return out;
    };
    for entry in files {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "ndjson") {
            for line in common::complete_lines(&path) {
                out.push(serde_json::from_str(&line).unwrap());
            }
        }
    }
    out
}

/// `telemetry-server convert --json` with `args`; (exit code, summary).
fn convert(data: &Path, args: &[&str], inputs: &[&Path]) -> (i32, Value) {
    let out = Command::new(common::binary())
        .args(["convert", "--json", "--data-dir"])
        .arg(data)
        .args(args)
        .args(inputs)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let code = out.status.code().unwrap_or(-1);
    assert!(code == 0 || code == 1, "convert failed ({code}): {stderr}");
    let summary = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)));
    (code, summary)
}

/// `serve` with live conversion, 2 shards and workers, quick flushes and dedup on.
fn start(root: &Path) -> ServeProcess {
    let config = root.join("serve.toml");
    std::fs::write(
        &config,
        "[ingest]\nshards = 2\nmax_log_age_ms = 200\n\
         [convert]\nenabled = true\nworkers = 2\nscan_interval_secs = 1\nflush_secs = 2\n\
         unknown_revision = \"nearest\"\ndedup_window_days = 7\n",
    )
    .unwrap();
    ServeProcess::start(&config, &root.join("data"))
}

/// Submits `dedup-<i>` for every i in `ids` to `server` (4 clients), real pings in turn; all
/// must get 200.
fn submit(server: &ServeProcess, bodies: &[Vec<u8>], ids: std::ops::Range<usize>) {
    std::thread::scope(|scope| {
        for client in 0..4 {
            let ids = ids.clone();
            scope.spawn(move || {
                let http = reqwest::blocking::Client::new();
                for i in ids.skip(client).step_by(4) {
                    let url = format!(
                        "http://{}/submit/telemetry/dedup-{i:04}/main/Firefox/61.0/release/20180101",
                        server.addr
                    );
                    let body = bodies[i % bodies.len()].clone();
                    let status = http.post(url).body(body).send().unwrap().status();
                    assert_eq!(status.as_u16(), 200, "dedup-{i:04}");
                }
            });
        }
    });
}

/// How long the test waits for conversion to reach a state.
const WAIT: Duration = Duration::from_secs(120);

fn expected_ids() -> Vec<String> {
    (0..IDS).map(|i| format!("dedup-{i:04}")).collect()
}

#[test]
fn the_same_ids_sent_twice_around_a_kill_9_are_stored_once() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    // Sent gzip-compressed, as Firefox does.
    let bodies: Vec<Vec<u8>> = ping_bodies()
        .iter()
        .map(|b| server_support::gzip(b))
        .collect();

    // Run 1: every id acknowledged. The first half is flushed (published) before the second is
    // sent; the server is killed once conversion has written them all, so the second half is
    // (most likely) in `.partial` files and raw logs not yet retired.
    let first = start(root.path());
    submit(&first, &bodies, 0..IDS / 2);
    first.wait_for("the first half to be published", WAIT, |_| {
        stored_ids(&data).len() >= IDS / 2
    });
    submit(&first, &bodies, IDS / 2..IDS);
    first.wait_for("the first run to convert every id", WAIT, |s| {
        s.metric("telemetry_convert_records_written_total") >= IDS as u64
    });
    first.kill();
    let after_kill = stored_ids(&data);
    // Raw logs not retired yet (their records are converted again at the next start).
    let leftover = server_support::finished_records(&data.join("raw")).len() as u64;
    eprintln!(
        "at the kill: {} ids stored, {leftover} records in raw logs to convert again",
        after_kill.len()
    );
    let mut unique = after_kill.clone();
    unique.dedup();
    assert_eq!(
        unique, after_kill,
        "no id stored twice even before the restart"
    );
    let stored_before = after_kill.len() as u64;
    assert!(
        stored_before + leftover >= IDS as u64,
        "every acknowledged id is stored or in raw/"
    );

    // Run 2: the same ids again, and the raw logs the kill left converted again.
    let second = start(root.path());
    submit(&second, &bodies, 0..IDS);
    let pending = |data: &Path| {
        server_support::files(&data.join("raw"))
            .iter()
            .any(|n| n.ends_with(".finished"))
    };
    second.wait_for("run 2 to convert everything and flush", WAIT, |s| {
        s.metric("telemetry_convert_records_read_total") >= leftover + IDS as u64
            && !pending(&data)
            && s.metric("telemetry_convert_dedup_entries") == IDS as u64
    });
    let duplicates = second.metric("telemetry_convert_duplicates_total");
    assert_eq!(
        second.metric("telemetry_convert_records_written_total"),
        IDS as u64 - stored_before,
        "run 2 stores exactly the ids run 1 had not published"
    );
    assert_eq!(
        duplicates,
        leftover + stored_before,
        "every other record converted in run 2 is a duplicate"
    );
    second.terminate_ok();

    assert_ids(
        &stored_ids(&data),
        &expected_ids(),
        "each id stored exactly once",
    );
    // Each duplicate is in the error stream by id, without its body.
    let dups: Vec<Value> = error_entries(&data)
        .into_iter()
        .filter(|e| e["kind"] == "duplicate")
        .collect();
    assert_eq!(dups.len() as u64, duplicates);
    assert!(dups
        .iter()
        .all(|e| e["detail"].as_str().unwrap().starts_with("dedup-") && e.get("body").is_none()));

    // Backfill from raw/converted/: everything there is stored already.
    let (code, summary) = convert(
        &data,
        &["--unknown-revision", "nearest"],
        &[&data.join("raw/converted")],
    );
    assert_eq!(code, 0, "{summary}");
    assert_eq!(summary["records_written"], 0, "{summary}");
    assert_eq!(summary["duplicate"], summary["records_read"], "{summary}");
    assert!(
        summary["records_read"].as_u64().unwrap() >= IDS as u64,
        "{summary}"
    );
    assert_ids(
        &stored_ids(&data),
        &expected_ids(),
        "after the backfill from raw/converted",
    );
}

/// An `id<TAB>json` file of the real pings under ids `<prefix>-<i>`.
fn tsv(dir: &Path, prefix: &str, count: usize) -> PathBuf {
    let bodies = ping_bodies();
    let mut text = String::new();
    for i in 0..count {
        let doc: Value = serde_json::from_slice(&bodies[i % bodies.len()]).unwrap();
        text.push_str(&format!("{prefix}-{i}\t{doc}\n"));
    }
    let path = dir.join(format!("{prefix}.tsv"));
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn convert_twice_stores_once_and_ids_leave_the_index_after_the_window() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let early = tsv(tmp.path(), "early", 6);
    let late = tsv(tmp.path(), "late", 3);
    let nearest = ["--unknown-revision", "nearest", "--dedup-window-days", "7"];
    let on =
        |date: &'static str| -> Vec<&'static str> { [&nearest[..], &["--date", date]].concat() };

    let (code, first) = convert(&data, &on("20261201"), &[&early]);
    assert_eq!(code, 0, "{first}");
    assert_eq!(
        (
            first["records_written"].as_u64(),
            first["duplicate"].as_u64()
        ),
        (Some(6), Some(0)),
        "{first}"
    );
    assert_eq!(first["dedup_entries"], 6);
    let (code, second) = convert(&data, &on("20261201"), &[&early]);
    assert_eq!(code, 0, "duplicates are not rejections: {second}");
    assert_eq!(
        (
            second["records_written"].as_u64(),
            second["duplicate"].as_u64()
        ),
        (Some(0), Some(6)),
        "{second}"
    );
    assert_eq!(stored_ids(&data).len(), 6, "stored once");

    // Eight days later the early ids are out of the 7-day window: the index forgets them.
    let (_, later) = convert(&data, &on("20261209"), &[&late]);
    assert_eq!(later["records_written"], 3, "{later}");
    assert_eq!(
        later["dedup_entries"], 3,
        "only the late ids are kept: {later}"
    );
    // Seven days after the late ones (20261202..20261209 is inside): still known.
    let (_, inside) = convert(&data, &on("20261202"), &[&late]);
    assert_eq!(inside["duplicate"], 3, "{inside}");
    // The early ids are accepted again: they were forgotten.
    let (_, again) = convert(&data, &on("20261201"), &[&early]);
    assert_eq!(again["records_written"], 6, "{again}");

    // Window 0 disables dedup: every record stored again, no index consulted.
    let (_, off) = convert(
        &data,
        &[
            "--unknown-revision",
            "nearest",
            "--date",
            "20261209",
            "--dedup-window-days",
            "0",
        ],
        &[&late],
    );
    assert_eq!(
        (off["records_written"].as_u64(), off["duplicate"].as_u64()),
        (Some(3), Some(0)),
        "{off}"
    );
    assert!(off.get("dedup_entries").is_none(), "{off}");
}

#[test]
fn the_same_id_twice_in_one_input_is_stored_once() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let doc: Value = serde_json::from_slice(&ping_bodies()[0]).unwrap();
    let input = tmp.path().join("twice.tsv");
    std::fs::write(
        &input,
        format!("same-id\t{doc}\nother-id\t{doc}\nsame-id\t{doc}\n"),
    )
    .unwrap();
    let (code, summary) = convert(&data, &["--unknown-revision", "nearest"], &[&input]);
    assert_eq!(code, 0, "{summary}");
    assert_eq!(
        (
            summary["records_written"].as_u64(),
            summary["duplicate"].as_u64()
        ),
        (Some(2), Some(1)),
        "{summary}"
    );
    assert_eq!(stored_ids(&data), ["other-id", "same-id"]);
    let dup = error_entries(&data);
    assert_eq!(dup.len(), 1);
    assert_eq!(
        (dup[0]["kind"].as_str(), dup[0]["detail"].as_str()),
        (Some("duplicate"), Some("same-id"))
    );
    assert!(
        dup[0].get("body").is_none() && dup[0].get("body_base64").is_none(),
        "{}",
        dup[0]
    );
}

/// A v2 raw log holding the FX60 ping (gzip, as a client sends it) under `id`.
fn raw_log(dir: &Path, id: &str) -> PathBuf {
    let body = std::fs::read(common::data(FX60)).unwrap();
    let mut log = Vec::new();
    telemetry_server::rawlog::encode_v2(
        &mut log,
        1_521_000_000_000, // 2018-03-14
        "192.0.2.7",
        &format!("{id}/main/Firefox/60.0a1/nightly/20180310"),
        &server_support::gzip(&body),
    );
    let path = dir.join("telemetry.log.v2.test.1.1.finished");
    std::fs::write(&path, log).unwrap();
    path
}

#[test]
fn records_rejected_for_missing_definitions_are_converted_from_the_error_stream_once() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let log = raw_log(tmp.path(), "roundtrip-raw");
    let doc: Value = serde_json::from_slice(&std::fs::read(common::data(FX60)).unwrap()).unwrap();
    let text = tmp.path().join("fx60.tsv");
    std::fs::write(&text, format!("roundtrip-text\t{doc}\n")).unwrap();

    // Strict, no definitions for the revision: both rejected, kept with their bodies.
    let strict = ["--unknown-revision", "reject", "--date", "20180314"];
    let (code, rejected) = convert(&data, &strict, &[&log, &text]);
    assert_eq!(code, 1, "{rejected}");
    assert_eq!(rejected["records_written"], 0, "{rejected}");
    assert_eq!(
        rejected["bad_records_by_type"]["missing_histograms"], 2,
        "{rejected}"
    );
    let errors = error_entries(&data);
    assert_eq!(errors.len(), 2);
    let raw_entry = errors
        .iter()
        .find(|e| e.get("path").is_some())
        .expect("raw entry");
    assert_eq!(raw_entry["timestamp_ms"], 1_521_000_000_000u64);
    assert_eq!(raw_entry["ip"], "192.0.2.7");

    // The definitions are added; the error directory is converted: each record lands once.
    let defs = tmp.path().join("defs");
    let rev_dir = defs.join("mozilla-central").join(FX60_REV);
    std::fs::create_dir_all(&rev_dir).unwrap();
    std::fs::copy(common::data(DEFINITIONS), rev_dir.join("Histograms.json")).unwrap();
    let with_defs = [&strict[..], &["--histograms", defs.to_str().unwrap()]].concat();
    let errors_dir = data.join("errors");
    let (code, backfill) = convert(&data, &with_defs, &[&errors_dir]);
    assert_eq!(code, 0, "{backfill}");
    assert_eq!(backfill["records_read"], 2, "{backfill}");
    assert_eq!(backfill["records_written"], 2, "{backfill}");
    assert_eq!(stored_ids(&data), ["roundtrip-raw", "roundtrip-text"]);

    // The same again (the error files are still there): nothing stored twice.
    let (code, again) = convert(&data, &with_defs, &[&errors_dir]);
    assert_eq!(code, 0, "{again}");
    assert_eq!(again["records_written"], 0, "{again}");
    assert_eq!(again["duplicate"], 2, "{again}");
    assert_eq!(stored_ids(&data), ["roundtrip-raw", "roundtrip-text"]);
    // The raw record kept its receive date: stored under submission_date 20180314.
    let stored = walk_names(&data.join("storage"));
    assert!(
        stored.iter().any(|p| p.contains(".20180314.")),
        "{stored:?}"
    );
}

fn walk_names(dir: &Path) -> Vec<String> {
    server_support::walk(dir)
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect()
}
