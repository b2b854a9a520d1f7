//! Hostile guests, one behaviour per test (example-jobs/hostile, selected by the job parameter):
//! each is stopped or contained with a clear error, and the same runtime keeps running jobs.

use crate::jobs_support::*;
use std::time::{Duration, Instant};
use telemetry_server::jobs::{
    self, CancelToken, JobError, JobOutput, Limits, Progress, RunOptions,
};

const RECORDS: [(&str, &str); 3] = [
    ("doc-1", r#"{"info":{"OS":"Linux","appVersion":"40.0"}}"#),
    ("doc-2", r#"{"info":{"OS":"Darwin","appVersion":"40.0"}}"#),
    ("doc-3", r#"{"info":{"OS":"Linux","appVersion":"41.0"}}"#),
];

fn hostile(mode: &str, limits: Limits, skip_bad_records: bool) -> Result<JobOutput, JobError> {
    hostile_with(mode, limits, skip_bad_records, &CancelToken::new()).0
}

/// [`hostile`] with the caller's cancel token; also returns how long the hostile run itself took
/// (the normal job run after it is not counted).
fn hostile_with(
    mode: &str,
    limits: Limits,
    skip_bad_records: bool,
    cancel: &CancelToken,
) -> (Result<JobOutput, JobError>, Duration) {
    let data = tiny_data(&RECORDS);
    let opts = RunOptions {
        param: mode.into(),
        workers: 2,
        limits,
        skip_bad_records,
        ..RunOptions::new(all_filter())
    };
    let source = jobs::open_source(data.path().to_str().unwrap()).unwrap();
    let start = Instant::now();
    let result = jobs::run(
        runtime(),
        &guest("hostile-rust"),
        source,
        &opts,
        &Progress::default(),
        cancel,
    );
    let took = start.elapsed();
    assert_host_carries_on(&data);
    (result, took)
}

/// After any hostile run the same runtime still runs a normal job correctly.
fn assert_host_carries_on(data: &tempfile::TempDir) {
    let source = jobs::open_source(data.path().to_str().unwrap()).unwrap();
    let opts = RunOptions {
        workers: 2,
        ..RunOptions::new(all_filter())
    };
    let out = jobs::run(
        runtime(),
        &guest("os-distribution-rust"),
        source,
        &opts,
        &Progress::default(),
        &CancelToken::new(),
    )
    .expect("a normal job after a hostile one");
    assert_eq!(
        String::from_utf8(out.output).unwrap(),
        "Darwin,40.0\t1\nLinux,40.0\t1\nLinux,41.0\t1\n"
    );
}

fn output(out: &JobOutput) -> &str {
    std::str::from_utf8(&out.output).unwrap()
}

#[test]
fn an_infinite_loop_hits_the_call_time_limit() {
    let start = Instant::now();
    let err = hostile(
        "loop",
        Limits {
            call_timeout_ms: 300,
            ..Limits::default()
        },
        false,
    )
    .unwrap_err();
    assert_limit_exceeded(&err, "call time (300 ms)");
    assert!(start.elapsed() < Duration::from_secs(10));
}

#[test]
fn a_memory_bomb_hits_the_memory_limit() {
    let err = hostile(
        "memory",
        Limits {
            memory_bytes: 32 << 20,
            ..Limits::default()
        },
        false,
    )
    .unwrap_err();
    assert_limit_exceeded(&err, "memory (32 MiB)");
}

#[test]
fn an_emit_flood_hits_the_emit_limit() {
    let err = hostile(
        "emit-flood",
        Limits {
            emit_count: 10_000,
            ..Limits::default()
        },
        false,
    )
    .unwrap_err();
    assert_limit_exceeded(&err, "emit count (10000)");
    let err = hostile(
        "emit-flood",
        Limits {
            emit_bytes: 1 << 20,
            ..Limits::default()
        },
        false,
    )
    .unwrap_err();
    assert_limit_exceeded(&err, "emit bytes (1 MiB)");
}

#[test]
fn a_panic_fails_the_job_naming_the_record_and_the_message() {
    let err = hostile("panic:doc-2", Limits::default(), false).unwrap_err();
    match &err {
        JobError::Trap { record_id, message } => {
            assert_eq!(record_id.as_deref(), Some("doc-2"));
            assert!(
                message.contains("hostile guest panics on record doc-2"),
                "{message}"
            );
            assert!(
                message.contains("unreachable"),
                "the trap kind is named too: {message}"
            );
        }
        other => panic!("expected a trap, got {other}"),
    }
    assert!(err.to_string().contains("on record doc-2"));
}

#[test]
fn skip_bad_records_counts_and_lists_the_records_that_trap() {
    let out = hostile("panic:doc-2", Limits::default(), true).unwrap();
    assert_eq!(output(&out), "ok\tdoc-1\nok\tdoc-3\n");
    assert_eq!(out.cost.bad_records, 1);
    assert_eq!(out.cost.bad_record_ids, vec!["doc-2".to_string()]);
    assert!(
        out.cost.instances > 2,
        "a fresh instance replaces the trapped one"
    );
    assert!(out.log.contains("skipped record doc-2"), "{}", out.log);
    assert!(
        out.log.contains("hostile guest panics on record doc-2"),
        "the panic message reaches the job log"
    );
}

#[test]
fn deep_recursion_traps_without_hurting_the_host() {
    let err = hostile("recursion", Limits::default(), false).unwrap_err();
    match &err {
        JobError::Trap {
            record_id: Some(_),
            message,
        } => {
            assert!(
                message.contains("stack") || message.contains("out of bounds"),
                "{message}"
            )
        }
        other => panic!("expected a trap, got {other}"),
    }
}

#[test]
fn opening_files_finds_no_directory_to_open_them_in() {
    let out = hostile("files", Limits::default(), false).unwrap();
    // Every record reports no preopened directories, so there was nothing to open files in.
    assert_eq!(output(&out), "preopens\t0\npreopens\t0\npreopens\t0\n");
}

#[test]
fn reading_the_environment_sees_nothing() {
    std::env::set_var("JOBS_HOSTILE_SECRET", "do-not-leak");
    let out = hostile("env", Limits::default(), false).unwrap();
    let text = output(&out);
    assert!(!text.contains("do-not-leak"));
    assert_eq!(
        text.lines().filter(|l| *l == "env-vars\t0").count(),
        3,
        "{text}"
    );
    assert_eq!(
        text.lines().filter(|l| *l == "args\t0").count(),
        3,
        "{text}"
    );
    assert_eq!(
        text.lines().filter(|l| *l == "cwd\tNone").count(),
        3,
        "{text}"
    );
}

#[test]
fn opening_sockets_is_denied() {
    let out = hostile("socket", Limits::default(), false).unwrap();
    let text = output(&out);
    for line in text.lines() {
        let (key, outcome) = line.split_once('\t').unwrap();
        match key {
            "tcp" => assert!(outcome.contains("access-denied"), "{line}"),
            "dns" => assert!(outcome.starts_with("Err"), "{line}"),
            other => panic!("unexpected line {other}"),
        }
        assert!(
            !outcome.contains("connected") && !outcome.contains("Ok("),
            "{line}"
        );
    }
    assert_eq!(text.lines().count(), 6);
}

#[test]
fn a_log_flood_is_capped() {
    let out = hostile(
        "log-flood",
        Limits {
            log_bytes: 64 << 10,
            ..Limits::default()
        },
        false,
    )
    .unwrap();
    assert_eq!(output(&out).lines().count(), 3, "the job itself completes");
    assert!(
        out.log.len() < (64 << 10) + 200,
        "log is {} bytes",
        out.log.len()
    );
    assert!(
        out.log.contains("log limit of 65536 bytes reached"),
        "{}",
        &out.log[out.log.len() - 200..]
    );
    assert!(
        out.log.starts_with("stdout line of record doc-"),
        "guest stdout is captured: {}",
        &out.log[..200]
    );
}

// Guests blocked in WASI: `sleep` and `poll-sleep` wait an hour on a `wasi:clocks` pollable (in
// `pollable.block` and in `wasi:io/poll.poll`). Without the runtime's bounded poll they would hold
// the worker for that hour whatever the limits say; each test would then not finish.

#[test]
fn a_guest_sleeping_in_wasi_hits_the_call_time_limit() {
    let (result, took) = hostile_with(
        "sleep",
        Limits {
            call_timeout_ms: 300,
            ..Limits::default()
        },
        false,
        &CancelToken::new(),
    );
    let err = result.unwrap_err();
    assert_limit_exceeded(&err, "call time (300 ms)");
    assert!(
        took >= Duration::from_millis(300),
        "stopped before its limit: {took:?}"
    );
    assert!(
        took < Duration::from_secs(10),
        "the sleep was not cut at the call time limit: {took:?}"
    );
}

#[test]
fn a_guest_waiting_in_wasi_poll_hits_the_wall_time_limit() {
    let limits = Limits {
        wall_time_ms: 1_000,
        call_timeout_ms: 60_000,
        ..Limits::default()
    };
    let (result, took) = hostile_with("poll-sleep", limits, false, &CancelToken::new());
    let err = result.unwrap_err();
    assert_limit_exceeded(&err, "wall time (1000 ms)");
    assert!(
        took >= Duration::from_millis(1_000),
        "stopped before its limit: {took:?}"
    );
    assert!(
        took < Duration::from_secs(10),
        "the poll was not cut at the wall-time limit: {took:?}"
    );
}

#[test]
fn a_sleeping_guest_is_cancelled_within_a_second() {
    let cancel = CancelToken::new();
    let cancelled_at = std::sync::Arc::new(std::sync::Mutex::new(None));
    let canceller = {
        let (cancel, cancelled_at) = (cancel.clone(), cancelled_at.clone());
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(500)); // both workers are asleep in WASI by now
            *cancelled_at.lock().unwrap() = Some(Instant::now());
            cancel.cancel();
        })
    };
    let data = tiny_data(&RECORDS);
    let opts = RunOptions {
        param: "sleep".into(),
        workers: 2,
        ..RunOptions::new(all_filter())
    };
    let source = jobs::open_source(data.path().to_str().unwrap()).unwrap();
    let result = jobs::run(
        runtime(),
        &guest("hostile-rust"),
        source,
        &opts,
        &Progress::default(),
        &cancel,
    );
    let returned_at = Instant::now();
    canceller.join().unwrap();
    let err = result.unwrap_err();
    assert!(matches!(err, JobError::Cancelled), "{err}");
    let cancelled_at = cancelled_at
        .lock()
        .unwrap()
        .expect("cancelled before the run returned");
    let took = returned_at - cancelled_at;
    assert!(
        took < Duration::from_secs(1),
        "cancellation of a sleeping guest took {took:?}"
    );
    assert_host_carries_on(&data);
}

#[test]
fn a_short_sleep_still_sleeps_and_the_job_completes() {
    let out = hostile("nap", Limits::default(), false).unwrap();
    // Each record's guest slept its 20 ms (measured on the guest's own monotonic clock).
    assert_eq!(
        output(&out),
        "napped\tdoc-1 20ms+\nnapped\tdoc-2 20ms+\nnapped\tdoc-3 20ms+\n"
    );
}

// Host memory: what the server holds for a job is bounded by `host_memory_bytes`.

#[test]
fn an_emit_flood_hits_the_host_memory_limit() {
    // Emit count and bytes keep their defaults (10^9 pairs, 16 GiB): only the host budget stops it.
    let err = hostile(
        "emit-flood",
        Limits {
            host_memory_bytes: 8 << 20,
            ..Limits::default()
        },
        false,
    )
    .unwrap_err();
    assert_limit_exceeded(&err, "host memory (8 MiB)");
    assert_eq!(
        err.to_string(),
        "job exceeded its host memory (8 MiB) limit"
    );
}

#[test]
fn a_memory_hungry_reduce_hits_the_host_memory_limit() {
    // Three keys, each reduced to 8 MiB: the second result takes the job over 16 MiB.
    let err = hostile(
        "big-reduce:8",
        Limits {
            host_memory_bytes: 16 << 20,
            ..Limits::default()
        },
        false,
    )
    .unwrap_err();
    assert_limit_exceeded(&err, "host memory (16 MiB)");
}

#[test]
fn a_reduce_larger_than_the_output_limit_fails_while_reducing() {
    let err = hostile(
        "big-reduce:8",
        Limits {
            output_bytes: 1 << 20,
            ..Limits::default()
        },
        false,
    )
    .unwrap_err();
    assert_limit_exceeded(&err, "output size (1 MiB)");
}

#[test]
fn the_cost_report_shows_the_host_memory_a_job_took() {
    let out = hostile("big-reduce:1", Limits::default(), false).unwrap();
    assert_eq!(out.output.len(), 3 * ("doc-1\t".len() + (1 << 20) + 1));
    let peak = out.cost.peak_host_memory_bytes;
    // Three 1 MiB lines plus the joined output (3 MiB) are held at the end.
    assert!(peak >= 6 << 20, "peak host memory {peak}");
    assert!(peak < 16 << 20, "peak host memory {peak}");
}
