//! `telemetry-server job check`: the spawned binary validates real guests built from source,
//! prints the spec their `init` declares, runs them on the built-in generated pings (no data
//! directory) or on a converted data directory of real pings, and reports the time per record
//! and the output; a file that is not a job component fails with a clear error.

use crate::common;
use crate::jobs_support::*;
use serde_json::Value;
use std::process::{Command, Output};
use telemetry_server::jobs::builtin_pings::BuiltinPings;
use telemetry_server::storage::PartitionSource;

fn job_check(args: &[&str]) -> Output {
    let cache = tempfile::tempdir().unwrap();
    Command::new(common::binary())
        .args(["job", "check"])
        .args(args)
        .arg("--cache-dir")
        .arg(cache.path())
        .output()
        .unwrap()
}

fn check_json(guest: &str, extra: &[&str]) -> Value {
    let path = common::guest(guest);
    let mut args = vec![path.to_str().unwrap(), "--json"];
    args.extend_from_slice(extra);
    let out = job_check(&args);
    assert!(
        out.status.success(),
        "{guest}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The built-in pings as (id, json) records, read through the same source `job check` runs on.
fn builtin_records() -> Vec<(String, String)> {
    let pings = BuiltinPings::load().unwrap();
    let mut records = Vec::new();
    for file in pings.list(&all_filter()).unwrap() {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut pings.open(&file).unwrap(), &mut text).unwrap();
        for line in text.lines() {
            let (id, json) = line.split_once('\t').unwrap();
            records.push((id.to_string(), json.to_string()));
        }
    }
    records
}

#[test]
fn the_built_in_pings_are_the_generators_output() {
    let embedded =
        std::fs::read(common::repo_root().join("host/src/jobs/builtin_pings.tsv.zst")).unwrap();
    let text = String::from_utf8(zstd::decode_all(&embedded[..]).unwrap()).unwrap();
    assert_eq!(
        text,
        common::gen_pings(12, 7),
        "gen-pings.py --count 12 --seed 7"
    );
    let records = builtin_records();
    assert_eq!(records.len(), 12, "every built-in ping converts");
    assert_eq!(BuiltinPings::load().unwrap().records(), 12);
}

#[test]
fn check_prints_the_spec_runs_on_built_in_pings_and_reports_time_and_output() {
    let path = common::guest("os-distribution-rust");
    let out = job_check(&[path.to_str().unwrap()]);
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for line in [
        "valid: yes",
        "  fields: 4",
        "    0: /environment/system/os/name",
        "    1: /info/OS",
        "    2: /application/version",
        "    3: /info/appVersion",
        "  payload: no",
        "  combine: yes (threshold: host default)",
        "  reduce: yes",
        "input: built-in: 12 generated pings",
    ] {
        assert!(stdout.contains(line), "missing {line:?} in:\n{stdout}");
    }
    assert!(stdout.contains(" µs per record"), "{stdout}");
    // The output is the native reference over the same pings, after its header.
    let expected = native_os_distribution(&builtin_records());
    assert!(
        expected.lines().count() >= 3,
        "the pings vary the OS and version:\n{expected}"
    );
    let header = format!("--- output: {} lines ---\n", expected.lines().count());
    let (_, output) = stdout
        .split_once(&header)
        .unwrap_or_else(|| panic!("no {header:?} in:\n{stdout}"));
    assert_eq!(output, expected);
}

#[test]
fn every_sdk_checks_the_same() {
    let expected = native_os_distribution(&builtin_records());
    for language in ["rust", "c", "js", "py"] {
        let name = format!("os-distribution-{language}");
        let doc = check_json(&name, &[]);
        assert_eq!(doc["output"], expected.as_str(), "{name}");
        assert_eq!(
            doc["spec"],
            serde_json::json!({"fields": ["/environment/system/os/name", "/info/OS",
                "/application/version", "/info/appVersion"], "payload": false,
                "combine": true, "combine_threshold": 0, "reduce": true}),
            "{name}"
        );
        assert_eq!(doc["cost"]["records_read"], 12, "{name}");
        let per_record = doc["per_record_us"].as_f64().unwrap();
        assert!(per_record > 0.0, "{name}: {per_record} µs per record");
    }
}

#[test]
fn a_map_only_job_says_so() {
    let path = common::guest("hostile-js"); // no parameter: emits (id, "1")
    let out = job_check(&[path.to_str().unwrap()]);
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("  fields: 0\n"), "{stdout}");
    assert!(stdout.contains("  combine: no"), "{stdout}");
    assert!(stdout.contains("  reduce: no (map-only"), "{stdout}");
    // Map-only: one `id<TAB>1` line per ping.
    assert!(stdout.contains("--- output: 12 lines ---"), "{stdout}");
}

#[test]
fn check_on_a_data_dir_equals_job_run() {
    let data = converted_data();
    let doc = check_json("os-distribution-c", &["--data-dir", data.to_str().unwrap()]);
    let run = run_guest(data, "os-distribution-rust", &all_with(2)).unwrap();
    assert_eq!(doc["output"], output_text(&run));
    assert_eq!(doc["cost"]["records_read"], run.cost.records_read);
    assert_eq!(doc["input"], data.to_str().unwrap());
}

#[test]
fn a_file_that_is_not_a_component_fails_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let bogus = dir.path().join("job.wasm");
    std::fs::write(&bogus, b"\0asm\x01\0\0\0").unwrap(); // a core module, not a component
    let out = job_check(&[bogus.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("is not a valid job component"), "{stderr}");
}
