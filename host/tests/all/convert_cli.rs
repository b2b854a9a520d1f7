//! `telemetry-server convert` and `histograms bucket-spec` as a user runs them, and the
//! [`Pipeline`] over real logs: stored records read back, rejected ones kept in the error stream,
//! corruption costing only the damaged record.

use crate::common;

use std::io::BufRead;
use std::process::Command;
use std::sync::Arc;

use serde_json::Value;
use telemetry_server::convert::{BadRecordKind, Converter, Pipeline};
use telemetry_server::storage::{DataDir, LocalSource, PartitionSource, Schema, WriterOptions};

fn run(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(common::binary()).args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Every stored `(dims, id, json)` under a data directory.
fn stored(data: &std::path::Path) -> Vec<(Vec<String>, String, String)> {
    let dir = DataDir::open(data).unwrap();
    let source = LocalSource::new(dir.sub("storage").unwrap());
    let star = r#"{"field_name": "x", "allowed_values": "*"}"#;
    let all = Schema::from_json(&format!(
        r#"{{"version": 1, "dimensions": [{}]}}"#,
        [star; 6].join(",")
    ))
    .unwrap();
    let mut out = Vec::new();
    for file in source.list(&all).unwrap() {
        for line in source.open(&file).unwrap().lines() {
            let line = line.unwrap();
            let (id, json) = line.split_once('\t').unwrap();
            out.push((file.dims.clone(), id.to_owned(), json.to_owned()));
        }
    }
    out
}

fn error_lines(data: &std::path::Path) -> Vec<Value> {
    let mut lines = Vec::new();
    for entry in std::fs::read_dir(data.join("errors")).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        lines.extend(
            text.lines()
                .map(|l| serde_json::from_str::<Value>(l).unwrap()),
        );
    }
    lines
}

#[test]
fn convert_cli_stores_good_records_and_keeps_rejected_ones() {
    let data = tempfile::tempdir().unwrap();
    let inputs = [
        common::data("seed/worker-test-data/telemetry1.log"),
        common::data("seed/test/unicode.v1.packed"),
        common::data("pings/classic-v1.saved-session.Fx21.0a1-nightly.with_hangs.toolbox.tsv"),
        common::data("pings/v4.main.min.pipeline-schemas.json"),
    ];
    let mut args = vec![
        "convert",
        "--json",
        "--unknown-revision",
        "reject",
        "--codec",
        "xz",
        "--date",
        "20130120",
        "--data-dir",
        data.path().to_str().unwrap(),
    ];
    args.extend(inputs.iter().map(|p| p.to_str().unwrap()));
    let (code, stdout, stderr) = run(&args);
    assert_eq!(
        code, 1,
        "rejected records give exit code 1; stderr: {stderr}"
    );
    let summary: Value =
        serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    assert_eq!(summary["records_read"], 5);
    assert_eq!(summary["records_written"], 1);
    assert_eq!(summary["bad_records"], 4);
    assert_eq!(
        summary["bad_records_by_type"],
        serde_json::json!({"missing_histograms": 2, "missing_revision": 1, "conversion_error": 1})
    );
    assert_eq!(
        summary["skipped_bytes"], 1,
        "telemetry1.log's stray trailing byte"
    );

    let records = stored(data.path());
    assert_eq!(records.len(), 1);
    let (dims, id, json) = &records[0];
    assert_eq!(
        dims,
        &[
            "idle_daily",
            "Firefox",
            "release",
            "23.0.1",
            "20130814063812",
            "20130910"
        ]
    );
    assert_eq!(id, "17caa68c-25f5-450a-9cce-7d31318846d8");
    let doc: Value = serde_json::from_str(json).unwrap();
    assert_eq!(doc["ver"], 2);
    assert!(std::fs::read_dir(
        data.path()
            .join("storage/idle_daily/Firefox/release/23.0.1")
    )
    .unwrap()
    .any(|e| e.unwrap().file_name().to_string_lossy().ends_with(".xz")));

    let errors = error_lines(data.path());
    assert_eq!(errors.len(), 4);
    let unicode: Vec<&Value> = errors
        .iter()
        .filter(|e| e["kind"] == "missing_histograms")
        .collect();
    assert_eq!(unicode.len(), 2);
    for e in &unicode {
        assert_eq!(e["path"], "e7916aaf-ab3e-924c-a0bf-47d54359f721/reason/appName/appVersion/appUpdateChannel/appBuildID");
        assert!(
            e["body"].as_str().unwrap().contains("Wikipédia"),
            "the inflated body is kept as text"
        );
        assert!(e["timestamp_ms"].is_u64());
    }
    let tsv = errors
        .iter()
        .find(|e| e["kind"] == "missing_revision")
        .unwrap();
    assert!(tsv["body"]
        .as_str()
        .unwrap()
        .starts_with("aaaaaaaaae1aaaaaa-"));
    let min = errors
        .iter()
        .find(|e| e["kind"] == "conversion_error")
        .unwrap();
    assert_eq!(
        min["detail"],
        "Unified ping has no top-level 'payload' field"
    );
}

#[test]
fn convert_cli_human_summary_and_help() {
    let data = tempfile::tempdir().unwrap();
    let log = common::data("seed/worker-test-data/telemetry1.log");
    let (code, stdout, stderr) = run(&[
        "convert",
        "--data-dir",
        data.path().to_str().unwrap(),
        log.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("records written              1"),
        "{stdout}"
    );
    let (code, help, _) = run(&["convert", "--help"]);
    assert_eq!(code, 0);
    for flag in [
        "--data-dir",
        "--schema",
        "--histograms",
        "--codec",
        "--json",
        "--date",
        "--format",
    ] {
        assert!(help.contains(flag), "{flag} missing from --help");
    }
    let (code, _, stderr) = run(&[
        "convert",
        "--data-dir",
        data.path().to_str().unwrap(),
        "/nonexistent/input.log",
    ]);
    assert_eq!(code, 2, "a fatal error exits 2");
    assert!(stderr.contains("/nonexistent/input.log"), "{stderr}");
}

#[test]
fn bucket_spec_cli_prints_the_seed_document() {
    let raw = common::data("seed/worker-test-data/ad0ae007aa9e.json.FIREFOX_AURORA_25_BASE");
    let (code, stdout, stderr) = run(&["histograms", "bucket-spec", raw.to_str().unwrap()]);
    assert_eq!(code, 0, "{stderr}");
    let ours: Value = serde_json::from_str(&stdout).unwrap();
    let theirs: Value = serde_json::from_str(
        &std::fs::read_to_string(common::data(
            "seed/worker-test-data/cache/ad0ae007aa9e.json",
        ))
        .unwrap(),
    )
    .unwrap();
    assert_eq!(ours, theirs);
    let (_, patched, _) = run(&[
        "histograms",
        "bucket-spec",
        "--patch",
        raw.to_str().unwrap(),
    ]);
    let patched: Value = serde_json::from_str(&patched).unwrap();
    assert_eq!(
        patched["histograms"]["GC_REASON_2"]["bucket_count"], 102,
        "--patch applies the seed's C++ constants"
    );
    let (code, _, stderr) = run(&[
        "histograms",
        "bucket-spec",
        common::data("seed/worker-test-data/invalid_kind.json")
            .to_str()
            .unwrap(),
    ]);
    assert_ne!(code, 0);
    assert!(stderr.contains("unknown kind bogus"), "{stderr}");
}

#[test]
fn a_corrupted_log_loses_only_the_damaged_record() {
    let log = std::fs::read(common::data("seed/worker-test-data/telemetry1.log")).unwrap();
    let record = &log[..log.len() - 1]; // without the stray trailing byte
    let mut corrupted = Vec::new();
    corrupted.extend_from_slice(record);
    corrupted.extend_from_slice(b"garbage in the middle");
    corrupted.extend_from_slice(&record[..record.len() / 2]); // a truncated copy
    corrupted.extend_from_slice(record);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("telemetry.log.v1.test.finished");
    std::fs::write(&path, &corrupted).unwrap();

    let data = DataDir::open(&dir.path().join("data")).unwrap();
    let mut pipeline = Pipeline::new(
        &data,
        Arc::new(Converter::with_defaults()),
        WriterOptions::default(),
        "test",
    )
    .unwrap();
    let summary = pipeline.convert_log(&path).unwrap();
    let files = pipeline.finish().unwrap();
    assert_eq!(summary.records_written, 2, "{summary:?}");
    assert_eq!(
        summary.bad_records,
        summary.bad(BadRecordKind::CorruptedData),
        "{summary:?}"
    );
    assert!(
        summary.bad_records >= 1,
        "the truncated record is counted: {summary:?}"
    );
    assert!(summary.skipped_bytes > 0);
    assert_eq!(files.iter().map(|f| f.records).sum::<u64>(), 2);
    let errors = error_lines(&dir.path().join("data"));
    assert_eq!(errors.len() as u64, summary.bad_records);
    assert!(errors.iter().all(|e| e["kind"] == "corrupted_data"));
}

#[test]
fn seed_compressed_text_samples_are_read_in_every_container() {
    // seed/test/test.txt.{gz,lzma,xz}: the same five lines, none of them `id<TAB>json`: four
    // lines without a tab (`invalid_path`) and `another \tline` (not JSON: `conversion_error`).
    let mut summaries = Vec::new();
    for ext in ["gz", "lzma", "xz"] {
        let dir = tempfile::tempdir().unwrap();
        let data = DataDir::open(dir.path()).unwrap();
        let mut pipeline = Pipeline::new(
            &data,
            Arc::new(Converter::with_defaults()),
            WriterOptions::default(),
            "t",
        )
        .unwrap();
        let input = common::data(&format!("seed/test/test.txt.{ext}"));
        let summary = pipeline
            .convert_text(&input, "20140101", &mut |_| {})
            .unwrap();
        pipeline.finish().unwrap();
        assert_eq!(summary.records_read, 5, "{ext}");
        assert_eq!(summary.bad(BadRecordKind::InvalidPath), 4, "{ext}");
        assert_eq!(summary.bad(BadRecordKind::ConversionError), 1, "{ext}");
        assert_eq!(
            error_lines(dir.path()).len(),
            5,
            "{ext}: every rejected line is kept"
        );
        summaries.push(summary);
    }
    assert!(summaries.windows(2).all(|w| w[0] == w[1]));
}

/// `convert --threads N` stores exactly what one thread stores, in the same order, and keeps
/// the same rejected records: records are converted in parallel but written in input order.
#[test]
fn convert_output_does_not_depend_on_the_thread_count() {
    let tmp = tempfile::tempdir().unwrap();
    let pings = tmp.path().join("pings.tsv");
    // Every generated ping is valid; every 40th line is followed by one that is not (not JSON,
    // not an object, no version), so rejected records are interleaved with stored ones.
    let mut input = String::new();
    for (i, line) in common::gen_pings(400, 7).lines().enumerate() {
        input.push_str(line);
        input.push('\n');
        if i % 40 == 0 {
            let bad = ["{not json", "[1]", r#"{"a": 1}"#][i / 40 % 3];
            input.push_str(&format!("bad-{i}\t{bad}\n"));
        }
    }
    std::fs::write(&pings, input).unwrap();
    let log = common::data("seed/worker-test-data/telemetry1.log");
    let raw = common::data("pings/rawlog-v2.saved-session.Fx40.0a2-aurora.2015-05.uberi.finished");
    let convert = |threads: &str| {
        let data = tmp.path().join(format!("data-{threads}"));
        let (code, stdout, stderr) = run(&[
            "convert",
            "--json",
            "--date",
            "20261201",
            "--threads",
            threads,
            "--data-dir",
            data.to_str().unwrap(),
            pings.to_str().unwrap(),
            log.to_str().unwrap(),
            raw.to_str().unwrap(),
        ]);
        assert!(code == 0 || code == 1, "{stderr}");
        let mut summary: Value = serde_json::from_str(stdout.trim()).unwrap();
        summary.as_object_mut().unwrap().remove("error_file");
        let mut records = stored(&data);
        records.sort_by(|a, b| a.0.cmp(&b.0)); // stable: line order within a partition stays
        let errors: Vec<Value> = error_lines(&data)
            .into_iter()
            .map(|mut e| {
                e.as_object_mut().unwrap().remove("source");
                e
            })
            .collect();
        (summary, records, errors)
    };
    let (one_summary, one_records, one_errors) = convert("1");
    assert!(one_records.len() > 300, "{one_summary}");
    assert!(!one_errors.is_empty(), "the bad lines are rejected");
    let (summary, records, errors) = convert("4");
    assert_eq!(summary, one_summary);
    assert_eq!(records.len(), one_records.len());
    assert!(
        records == one_records,
        "stored records differ between 1 and 4 threads"
    );
    assert_eq!(errors, one_errors);
}
