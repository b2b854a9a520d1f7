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

/// Starts `command(p)` for processes `0..n` at once; their JSON reports in process order.
fn run_processes(n: usize, command: impl Fn(usize) -> Command) -> Vec<Value> {
    let children: Vec<_> = (0..n)
        .map(|p| {
            command(p)
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    children
        .into_iter()
        .map(|c| report(&c.wait_with_output().unwrap()))
        .collect()
}

#[test]
fn a_job_runs_across_two_processes_with_the_output_of_one() {
    let dir = tempfile::tempdir().unwrap();
    let filter = dir.path().join("filter.json");
    std::fs::write(&filter, filter_json(&[])).unwrap();
    let hosts = format!("{},{}", free_port(), free_port());
    let reports = run_processes(2, |process| {
        job_run(
            &filter,
            &["--hosts", &hosts, "--process", &process.to_string()],
        )
    });

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

/// Two processes over the same bucket (s3s-fs): process 0 prints what one process prints, and
/// every file is read by exactly one of them (each reads its workers' share, with read-ahead
/// following that share only).
#[test]
fn two_processes_over_s3_split_the_files_and_give_the_single_process_output() {
    let s3 = crate::s3_common::S3Server::start();
    crate::s3_jobs::export_and_open(&s3, converted_data(), "jobs", "v2/");
    let dir = tempfile::tempdir().unwrap();
    let filter = dir.path().join("filter.json");
    std::fs::write(&filter, filter_json(&[])).unwrap();
    let run = |extra: &[&str]| {
        let mut command = Command::new(common::binary());
        command
            .args(["job", "run"])
            .arg(common::guest("os-distribution-rust"))
            .args(["--data", "s3://jobs/v2", "--json", "--workers", "1"])
            .arg("--filter")
            .arg(&filter)
            .arg("--cache-dir")
            .arg(dir.path().join("cache"))
            .args(extra)
            .envs(s3.env());
        command
    };
    let single = report(&run(&[]).output().unwrap());
    let hosts = format!("{},{}", free_port(), free_port());
    let reports = run_processes(2, |p| {
        run(&["--hosts", &hosts, "--process", &p.to_string()])
    });
    assert_eq!(reports[0]["output"], single["output"]);
    assert!(!single["output"].as_str().unwrap().is_empty());
    let files = |r: &Value| r["cost"]["files_read"].as_u64().unwrap();
    let matched = single["cost"]["files_matched"].as_u64().unwrap();
    assert!(files(&reports[0]) > 0 && files(&reports[1]) > 0);
    assert_eq!(files(&reports[0]) + files(&reports[1]), matched);
    assert_eq!(files(&single), matched);
}
