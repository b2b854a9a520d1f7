//! Fixtures for the job tests: data directories converted from `../shared/data` (real pings plus
//! pings from gen-pings.py), one shared `Runtime` per test binary with guests compiled once, and a
//! native Rust reference of os-distribution.
#![allow(dead_code)]

use crate::common;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use telemetry_server::convert::{Converter, Pipeline};
use telemetry_server::jobs::{
    self, CancelToken, CompiledJob, JobError, JobOutput, Progress, RunOptions, Runtime,
    RuntimeConfig,
};
use telemetry_server::storage::{split_line, DataDir, Schema, StorageWriter, WriterOptions};

/// A filter that matches every partition of the default 6-dimension schema.
pub fn all_filter() -> Schema {
    Schema::from_json(&filter_json(&[])).unwrap()
}

/// A filter over the default schema with some dimensions restricted, e.g. `[(2, "\"release\"")]`.
pub fn filter_json(restrict: &[(usize, &str)]) -> String {
    let names = [
        "reason",
        "appName",
        "appUpdateChannel",
        "appVersion",
        "appBuildID",
        "submission_date",
    ];
    let dims: Vec<String> = names
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let allowed = restrict
                .iter()
                .find(|(d, _)| *d == i)
                .map(|(_, v)| v.to_string())
                .unwrap_or("\"*\"".into());
            format!(r#"{{"field_name":"{n}","allowed_values":{allowed}}}"#)
        })
        .collect();
    format!(r#"{{"version":1,"dimensions":[{}]}}"#, dims.join(","))
}

/// The runtime shared by a test binary; its compile cache lives under `target/` so guests are
/// compiled once across test binaries and runs (content-addressed, so never stale).
pub fn runtime() -> &'static Runtime {
    static RUNTIME: OnceLock<Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        let dir = common::repo_root().join("target/test-job-cache");
        let data = DataDir::open(&dir).unwrap();
        Runtime::new(data.sub("cache").unwrap(), RuntimeConfig::default()).unwrap()
    })
}

/// A guest built by scripts/build-guests.sh, compiled once per test binary.
pub fn guest(name: &str) -> CompiledJob {
    static COMPILED: OnceLock<Mutex<BTreeMap<String, CompiledJob>>> = OnceLock::new();
    let map = COMPILED.get_or_init(|| Mutex::new(BTreeMap::new()));
    let mut map = map.lock().unwrap_or_else(|e| e.into_inner());
    map.entry(name.to_string())
        .or_insert_with(|| {
            runtime()
                .compile(&std::fs::read(common::guest(name)).unwrap())
                .unwrap()
        })
        .clone()
}

/// A data directory built from ../shared/data:
/// every real ping run through the converter (those it accepts), every real ping also stored
/// as-is by the `StorageWriter` (so all shapes, classic and v4, are present even where the
/// converter lacks histogram definitions), and 80 pings from gen-pings.py stored the same way
/// (several partitions and days).
pub fn converted_data() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        // Built once into target/ and reused by later runs and other test binaries (it depends
        // only on ../shared/data and a fixed generator seed); built aside and renamed into place
        // so concurrent test binaries never see half of it.
        let done = common::repo_root().join("target/test-jobs-data");
        if done.join("storage").is_dir() {
            return done;
        }
        let tmp = tempfile::Builder::new()
            .prefix("test-jobs-data-")
            .tempdir_in(common::repo_root().join("target"))
            .unwrap();
        let dir = tmp.path().to_path_buf();
        let data = DataDir::open(&dir).unwrap();
        let mut pipeline = Pipeline::new(
            &data,
            Arc::new(Converter::with_defaults()),
            WriterOptions::default(),
            "test",
        )
        .unwrap();
        let mut raw: Vec<(String, String, &str)> = Vec::new();
        for entry in std::fs::read_dir(common::data("pings")).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_str().unwrap().to_string();
            if name.ends_with(".json") {
                pipeline.convert_json_file(&path, "20150528").unwrap();
                let doc: Value =
                    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
                raw.push((format!("raw-{name}"), doc.to_string(), "20150528"));
            } else if name.ends_with(".tsv") {
                pipeline
                    .convert_text(&path, "20150529", &mut |_| {})
                    .unwrap();
                for line in std::fs::read_to_string(&path)
                    .unwrap()
                    .lines()
                    .filter(|l| l.contains('\t'))
                {
                    let (id, json) = line.split_once('\t').unwrap();
                    raw.push((format!("raw-{id}"), json.to_string(), "20150529"));
                }
            } else if name.ends_with(".finished") {
                pipeline.convert_log(&path).unwrap();
            }
        }
        pipeline.finish().unwrap();
        let generated = common::gen_pings(80, 7);
        for (i, line) in generated.lines().enumerate() {
            let (id, json) = line.split_once('\t').unwrap();
            raw.push((
                id.to_string(),
                json.to_string(),
                if i % 2 == 0 { "20150601" } else { "20150602" },
            ));
        }
        store_as_is(&data, &raw);
        drop(data);
        if std::fs::rename(&dir, &done).is_err() {
            assert!(
                done.join("storage").is_dir(),
                "could not move test data into {}",
                done.display()
            );
        }
        done
    })
}

/// Stores `(id, json, submission date)` records without conversion, partitioned by the default
/// schema from the document's own fields (classic `info.*` or v4 `type`/`application.*`).
pub fn store_as_is(data: &DataDir, records: &[(String, String, &str)]) {
    let schema = Schema::from_json(telemetry_server::convert::DEFAULT_SCHEMA).unwrap();
    let mut writer = StorageWriter::new(
        data.sub("storage").unwrap(),
        schema.clone(),
        WriterOptions::default(),
    );
    for (id, json, date) in records {
        let doc: Value = serde_json::from_str(json).unwrap();
        let field = |classic: &str, v4: &str| {
            doc.pointer(classic)
                .or_else(|| doc.pointer(v4))
                .and_then(Value::as_str)
                .map(str::to_string)
        };
        let values = [
            field("/info/reason", "/type"),
            field("/info/appName", "/application/name"),
            field("/info/appUpdateChannel", "/application/channel"),
            field("/info/appVersion", "/application/version"),
            field("/info/appBuildID", "/application/buildId"),
            Some(date.to_string()),
        ];
        let values: Vec<Option<&str>> = values.iter().map(|v| v.as_deref()).collect();
        writer.write(&schema.apply(&values), 4, id, json).unwrap();
    }
    writer.finish().unwrap();
}

/// A data directory with the given `(id, json)` records in one partition (for hostile guests).
pub fn tiny_data(records: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let data = DataDir::open(dir.path()).unwrap();
    let schema = Schema::from_json(telemetry_server::convert::DEFAULT_SCHEMA).unwrap();
    let mut writer = StorageWriter::new(
        data.sub("storage").unwrap(),
        schema,
        WriterOptions::default(),
    );
    let dims: Vec<String> = [
        "saved_session",
        "Firefox",
        "release",
        "40.0",
        "20150522004047",
        "20150528",
    ]
    .map(String::from)
    .to_vec();
    for (id, json) in records {
        writer.write(&dims, 4, id, json).unwrap();
    }
    writer.finish().unwrap();
    dir
}

/// Every stored `(id, json)` line the filter selects, read natively.
pub fn stored_records(data: &Path, filter: &Schema) -> Vec<(String, String)> {
    let source = jobs::open_source(data.to_str().unwrap()).unwrap();
    let mut out = Vec::new();
    for file in source.list(filter).unwrap() {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut source.open(&file).unwrap(), &mut text).unwrap();
        for line in text.lines().filter(|l| !l.is_empty()) {
            let (id, json) = split_line(line.as_bytes()).unwrap();
            out.push((
                String::from_utf8(id.to_vec()).unwrap(),
                String::from_utf8(json.to_vec()).unwrap(),
            ));
        }
    }
    out
}

/// A JSON value as the SDK's `Record::text` sees it: strings, numbers as written, booleans.
fn text(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// os-distribution computed natively: `OS,version<TAB>count`, sorted.
pub fn native_os_distribution(records: &[(String, String)]) -> String {
    let mut counts: BTreeMap<String, u64> = BTreeMap::new();
    for (_, json) in records {
        let doc: Value = serde_json::from_str(json).unwrap();
        let os = text(doc.pointer("/environment/system/os/name"))
            .or_else(|| text(doc.pointer("/info/OS")))
            .unwrap_or_else(|| "UNKNOWN".into());
        let version = text(doc.pointer("/application/version"))
            .or_else(|| text(doc.pointer("/info/appVersion")))
            .unwrap_or_else(|| "UNKNOWN".into());
        *counts.entry(format!("{os},{version}")).or_default() += 1;
    }
    counts.iter().map(|(k, v)| format!("{k}\t{v}\n")).collect()
}

/// Runs a built guest (`target/jobs/<guest>.wasm`) over the data directory `data`.
pub fn run_guest(data: &Path, guest: &str, opts: &RunOptions) -> Result<JobOutput, JobError> {
    let source = jobs::open_source(data.to_str().unwrap()).unwrap();
    jobs::run(
        runtime(),
        &self::guest(guest),
        source,
        opts,
        &Progress::default(),
        &CancelToken::new(),
    )
}

/// Options reading every record with `workers` workers.
pub fn all_with(workers: usize) -> RunOptions {
    RunOptions {
        workers,
        ..RunOptions::new(all_filter())
    }
}

/// A job's output as text.
/// Asserts `err` is the job exceeding the limit described as `what` (e.g. `"memory (32 MiB)"`).
pub fn assert_limit_exceeded(err: &JobError, what: &str) {
    assert!(
        matches!(err, JobError::LimitExceeded { what: w } if w == what),
        "expected the {what} limit to be exceeded, got: {err}"
    );
}

pub fn output_text(out: &JobOutput) -> &str {
    std::str::from_utf8(&out.output).unwrap()
}

/// The multipart body of `POST /api/v1/jobs`: `manifest` and the built `guest`.
pub fn job_form(manifest: &Value, guest: &str) -> reqwest::blocking::multipart::Form {
    use reqwest::blocking::multipart;
    multipart::Form::new()
        .part(
            "manifest",
            multipart::Part::text(manifest.to_string())
                .mime_str("application/json")
                .unwrap(),
        )
        .part(
            "component",
            multipart::Part::bytes(std::fs::read(common::guest(guest)).unwrap())
                .file_name("j.wasm"),
        )
}

/// Submits `guest` (named after it) over every stored record to the server at `base`
/// (`http://host:port`) with `token` and waits up to 2 minutes for it to succeed; its id.
pub fn run_job_over_http(
    http: &reqwest::blocking::Client,
    base: &str,
    token: &str,
    guest: &str,
) -> String {
    let filter: Value = serde_json::from_str(
        &std::fs::read_to_string(common::data(
            "seed/mapreduce-filters/examples-v2/filter_include_all.json",
        ))
        .unwrap(),
    )
    .unwrap();
    let manifest = serde_json::json!({ "name": guest, "filter": filter });
    let form = job_form(&manifest, guest);
    let r = http
        .post(format!("{base}/api/v1/jobs"))
        .bearer_auth(token)
        .multipart(form)
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 202);
    let id = r.json::<Value>().unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    loop {
        let job: Value = http
            .get(format!("{base}/api/v1/jobs/{id}"))
            .bearer_auth(token)
            .send()
            .unwrap()
            .json()
            .unwrap();
        match job["state"].as_str().unwrap() {
            "succeeded" => return id,
            "failed" | "cancelled" => panic!("{guest} did not succeed: {job}"),
            _ => assert!(
                std::time::Instant::now() < deadline,
                "{guest} still {}",
                job["state"]
            ),
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}
