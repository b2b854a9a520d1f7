//! `job run --hosts … --process N`: the MapReduce dataflow across real processes of the binary,
//! talking timely's TCP protocol on loopback, over the job tests' data (real pings from
//! ../shared/data). The output must equal a single-process run and the native reference.

use crate::common;

use std::process::{Command, Output};

use crate::jobs_support::*;
use serde_json::Value;

fn free_port() -> String {
    crate::common::free_local_addr().to_string()
}

pub(crate) fn job_run(filter: &std::path::Path, extra: &[&str]) -> Command {
    let mut command = Command::new(common::binary());
    command
        .args(["job", "run"])
        .arg(common::guest("os-distribution-rust"))
        .arg("--data-dir")
        .arg(converted_data())
        .arg("--filter")
        .arg(filter)
        .args(["--json", "--workers", "1"])
        .args(extra);
    command
}

pub(crate) fn report(out: &Output) -> Value {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn a_job_runs_across_two_processes_with_the_output_of_one() {
    let dir = tempfile::tempdir().unwrap();
    let filter = dir.path().join("filter.json");
    std::fs::write(&filter, filter_json(&[])).unwrap();
    let hosts = format!("{},{}", free_port(), free_port());
    let children: Vec<_> = (0..2)
        .map(|process| {
            job_run(
                &filter,
                &["--hosts", &hosts, "--process", &process.to_string()],
            )
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
        })
        .collect();
    let reports: Vec<Value> = children
        .into_iter()
        .map(|c| report(&c.wait_with_output().unwrap()))
        .collect();

    let expected = native_os_distribution(&stored_records(converted_data(), &all_filter()));
    assert!(!expected.is_empty());
    assert_eq!(
        reports[0]["output"], expected,
        "process 0 prints the whole output"
    );
    assert_eq!(reports[1]["output"], "", "process 1 prints nothing");
    assert_eq!(reports[0]["cost"]["workers"], 2, "two workers in all");
    let read = |r: &Value| r["cost"]["records_read"].as_u64().unwrap();
    assert!(
        read(&reports[0]) > 0 && read(&reports[1]) > 0,
        "both processes read data"
    );
    assert_eq!(
        read(&reports[0]) + read(&reports[1]),
        stored_records(converted_data(), &all_filter()).len() as u64,
        "every record is read by exactly one process"
    );

    let single = report(&job_run(&filter, &[]).output().unwrap());
    assert_eq!(
        single["output"], reports[0]["output"],
        "same output as one process"
    );
}

#[test]
fn a_process_index_outside_the_hosts_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let filter = dir.path().join("filter.json");
    std::fs::write(&filter, filter_json(&[])).unwrap();
    let out = job_run(
        &filter,
        &["--hosts", "127.0.0.1:1,127.0.0.1:2", "--process", "2"],
    )
    .output()
    .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--process 2 is not an index into the 2 --hosts"),
        "{stderr}"
    );
    let alone = job_run(&filter, &["--process", "0"]).output().unwrap();
    assert!(!alone.status.success(), "--process needs --hosts");
}
