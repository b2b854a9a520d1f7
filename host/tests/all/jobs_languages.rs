//! Jobs in any language: os-distribution written in JavaScript (componentize-qjs), Python
//! (componentize-py) and C (guest-sdk/c/telemetry_job.h), built from source by
//! scripts/build-guests.sh, run by the real host over the real pings, must give exactly the Rust
//! guest's output (also when submitted to a real server with `telemetry-server job submit --wait`);
//! every SDK infers the combine and reduce phases from the functions the job defines; and a
//! hostile JavaScript or Python job (endless loop, memory bomb, exception) is stopped with a clear
//! error like a Rust one.

use crate::common;
use crate::jobs_support;
use crate::server_support;

use crate::jobs_histograms::{TwoBuilds, NAME};
use crate::jobs_support::*;
use std::time::{Duration, Instant};
use telemetry_server::jobs::{
    self, CancelToken, JobError, JobOutput, Limits, Progress, RunOptions,
};

/// Runs os-distribution in `language` over the converted real pings and checks it against the
/// Rust guest (and so the native reference, which tests/jobs.rs checks the Rust guest against).
fn same_as_rust(language: &str) {
    let data = converted_data();
    let records = stored_records(data, &all_filter()).len() as u64;
    let rust = run_guest(data, "os-distribution-rust", &all_with(2)).unwrap();
    let other = run_guest(data, &format!("os-distribution-{language}"), &all_with(2)).unwrap();
    assert!(
        output_text(&rust).lines().count() >= 4,
        "the data should hold several OS/version pairs:\n{}",
        output_text(&rust)
    );
    assert_eq!(
        output_text(&other),
        output_text(&rust),
        "os-distribution-{language} must agree with os-distribution-rust"
    );
    assert_eq!(other.cost.records_read, records);
    assert_eq!(other.cost.emits, records, "one emit per record");
    assert!(
        other.cost.combine_calls > 0,
        "the {language} job declared combine and the host called it"
    );
}

/// The same os-distribution job through every SDK (Rust, C, JavaScript, Python) over the same
/// real pings: the native reference's output, and each declared combine and reduce without
/// saying so anywhere but by defining them (the Rust job's `Spec` no longer names its phases).
#[test]
fn os_distribution_is_the_same_in_every_sdk() {
    let data = converted_data();
    let records = stored_records(data, &all_filter());
    let expected = native_os_distribution(&records);
    assert!(
        expected.lines().count() >= 4,
        "several OS/version pairs:\n{expected}"
    );
    for language in ["rust", "c", "js", "py"] {
        let name = format!("os-distribution-{language}");
        let out = run_guest(data, &name, &all_with(2)).unwrap();
        assert_eq!(
            output_text(&out),
            expected,
            "{name} against the native reference"
        );
        assert_eq!(out.cost.records_read, records.len() as u64, "{name}");
        assert!(out.cost.combine_calls > 0, "{name} has a combine phase");
        assert_eq!(
            out.cost.reduce_calls, out.cost.output_lines,
            "{name} has a reduce phase: one call per output line"
        );
    }
}

/// histogram-aggregate through every SDK (Rust, C, JavaScript, Python), each calling the host's
/// `histograms.layout` from its own guest: over the real Firefox 21 and 54 pings, whose
/// MEMORY_JS_GC_HEAP layouts differ, the same bytes, whose merged bounds, counts and sum are
/// checked against the pings themselves; per channel and version (one line per build), the same
/// bytes; over every stored real and generated ping (CYCLE_COLLECTOR, laid out as each converted
/// record noted; documents stored unconverted are skipped), the same bytes; and an array whose
/// layout no definitions give is counted as `unknown_layout` alike.
#[test]
fn histogram_aggregate_is_the_same_in_every_sdk() {
    let builds = TwoBuilds::convert();
    let merged = format!("{NAME}:channel");
    let rust = builds.run("histogram-aggregate-rust", &merged);
    builds.check_merged(&rust);
    let per_build = builds.run("histogram-aggregate-rust", NAME);
    assert_eq!(per_build.lines().count(), 2, "{per_build}");
    let everything = run_guest(
        converted_data(),
        "histogram-aggregate-rust",
        &RunOptions {
            param: "CYCLE_COLLECTOR".into(),
            ..all_with(2)
        },
    )
    .unwrap();
    assert!(
        output_text(&everything).lines().count() >= 4,
        "several channels and versions:\n{}",
        output_text(&everything)
    );
    for language in ["c", "js", "py"] {
        let name = format!("histogram-aggregate-{language}");
        assert_eq!(builds.run(&name, &merged), rust, "{name} {merged}");
        assert_eq!(builds.run(&name, NAME), per_build, "{name} {NAME}");
        let out = run_guest(
            converted_data(),
            &name,
            &RunOptions {
                param: "CYCLE_COLLECTOR".into(),
                ..all_with(2)
            },
        )
        .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(output_text(&out), output_text(&everything), "{name}");
    }

    // A histogram array whose layout the host does not know is counted, not merged; one stored
    // as an object (unconverted) or absent is skipped. The output format says exactly what.
    let info = r#""info":{"appUpdateChannel":"nightly","appVersion":"21.0a1"}"#;
    let unknown =
        format!(r#"{{"histograms":{{"NOT_IN_ANY_DEFINITIONS":[1,2,0,5,0,0,0]}},{info}}}"#);
    let object =
        format!(r#"{{"histograms":{{"NOT_IN_ANY_DEFINITIONS":{{"values":{{"0":1}}}}}},{info}}}"#);
    let absent = format!("{{{info}}}");
    let data = tiny_data(&[
        ("doc-1", &unknown),
        ("doc-2", &unknown),
        ("doc-3", &object),
        ("doc-4", &absent),
    ]);
    let expected = "nightly,21.0a1\t{\"histogram\":{\"bounds\":[],\"counts\":[],\"sum\":0},\
                    \"median\":null,\"p95\":null,\"submissions\":0,\"unknown_layout\":2}\n";
    for language in ["rust", "c", "js", "py"] {
        let name = format!("histogram-aggregate-{language}");
        let opts = RunOptions {
            param: "NOT_IN_ANY_DEFINITIONS".into(),
            ..all_with(2)
        };
        let out = run_guest(data.path(), &name, &opts).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(output_text(&out), expected, "{name}");
    }
}

#[test]
fn os_distribution_in_javascript_equals_rust() {
    same_as_rust("js");
}

#[test]
fn os_distribution_in_python_equals_rust() {
    same_as_rust("py");
}

const RECORDS: [(&str, &str); 3] = [
    ("doc-1", r#"{"info":{"OS":"Linux","appVersion":"40.0"}}"#),
    ("doc-2", r#"{"info":{"OS":"Darwin","appVersion":"40.0"}}"#),
    ("doc-3", r#"{"info":{"OS":"Linux","appVersion":"41.0"}}"#),
];

/// Runs the hostile guest of `language` in `mode` (its job parameter) over three records.
fn hostile(language: &str, mode: &str, limits: Limits) -> Result<JobOutput, JobError> {
    let data = tiny_data(&RECORDS);
    let opts = RunOptions {
        param: mode.into(),
        workers: 2,
        limits,
        ..RunOptions::new(all_filter())
    };
    run_guest(data.path(), &format!("hostile-{language}"), &opts)
}

fn loop_is_stopped(language: &str) {
    jobs_support::guest(&format!("hostile-{language}")); // compiled (or loaded) before timing
    let start = Instant::now();
    let err = hostile(
        language,
        "loop",
        Limits {
            call_timeout_ms: 300,
            ..Limits::default()
        },
    )
    .unwrap_err();
    assert!(
        matches!(&err, JobError::LimitExceeded { what } if what == "call time (300 ms)"),
        "{err}"
    );
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "the epoch deadline stops it promptly"
    );
}

fn memory_bomb_is_stopped(language: &str) {
    let err = hostile(
        language,
        "memory",
        Limits {
            memory_bytes: 64 << 20,
            ..Limits::default()
        },
    )
    .unwrap_err();
    assert!(
        matches!(&err, JobError::LimitExceeded { what } if what == "memory (64 MiB)"),
        "{err}"
    );
}

fn exception_names_the_record(language: &str, mode: &str, message: &str) {
    let err = hostile(language, mode, Limits::default()).unwrap_err();
    match &err {
        JobError::Trap {
            record_id,
            message: m,
        } => {
            assert_eq!(record_id.as_deref(), Some("doc-2"), "{err}");
            assert!(
                m.contains(message),
                "the job's own message is in the error: {m}"
            );
        }
        other => panic!("expected the job to fail on doc-2, got {other}"),
    }
    // The same guest in a harmless mode runs to the end (the failure above was the mode's), and
    // what it prints (`console.log`, `print`) reaches the job log although WASI is stubbed out.
    let out = hostile(language, "", Limits::default()).unwrap();
    assert_eq!(output_text(&out), "doc-1\t1\ndoc-2\t1\ndoc-3\t1\n");
    assert!(out.log.contains("info: mapped doc-2"), "{}", out.log);
}

#[test]
fn a_javascript_endless_loop_hits_the_call_time_limit() {
    loop_is_stopped("js");
}

#[test]
fn a_python_endless_loop_hits_the_call_time_limit() {
    loop_is_stopped("py");
}

#[test]
fn a_javascript_memory_bomb_hits_the_memory_limit() {
    memory_bomb_is_stopped("js");
}

#[test]
fn a_python_memory_bomb_hits_the_memory_limit() {
    memory_bomb_is_stopped("py");
}

#[test]
fn a_javascript_exception_fails_the_job_naming_the_record() {
    exception_names_the_record(
        "js",
        "throw:doc-2",
        "Error: hostile guest throws on record doc-2",
    );
}

#[test]
fn a_python_exception_fails_the_job_naming_the_record() {
    exception_names_the_record(
        "py",
        "raise:doc-2",
        "RuntimeError: hostile guest raises on record doc-2",
    );
}

fn parameter_is_checked_and_chooses_the_fields(language: &str, message: &str) {
    let err = hostile(language, "reject", Limits::default()).unwrap_err();
    assert!(
        matches!(&err, JobError::InvalidParam { message: m } if m == message),
        "{err}"
    );
    let out = hostile(language, "field:/info/OS", Limits::default()).unwrap();
    assert_eq!(output_text(&out), "Darwin\t1\nLinux\t1\nLinux\t1\n");
}

#[test]
fn a_javascript_job_checks_its_parameter_and_declares_fields_from_it() {
    parameter_is_checked_and_chooses_the_fields(
        "js",
        "RangeError: hostile guest rejects its parameter",
    );
}

#[test]
fn a_python_job_checks_its_parameter_and_declares_fields_from_it() {
    parameter_is_checked_and_chooses_the_fields(
        "py",
        "ValueError: hostile guest rejects its parameter",
    );
}

/// The instance pool holds `max_instances` instances of the big guests at once (a Python
/// component instantiates 38 core modules, a JavaScript one defines 3 memories): a job with one
/// worker per slot runs on a runtime of 8 slots.
#[test]
fn every_instance_slot_fits_a_python_or_javascript_guest() {
    let slots: usize = 8;
    let dir = common::repo_root().join("target/test-job-cache");
    let data_dir = telemetry_server::storage::DataDir::open(&dir).unwrap();
    let small = jobs::Runtime::new(
        data_dir.sub("cache").unwrap(),
        jobs::RuntimeConfig {
            max_instances: slots as u32,
            ..jobs::RuntimeConfig::default()
        },
    )
    .unwrap();
    let data = converted_data();
    let expected = run_guest(data, "os-distribution-rust", &all_with(2)).unwrap();
    for language in ["py", "js"] {
        let name = format!("os-distribution-{language}");
        // The shared cache already holds the compiled artifact (same engine settings).
        let job = small
            .compile(&std::fs::read(common::guest(&name)).unwrap())
            .unwrap();
        let source = jobs::open_source(data.to_str().unwrap()).unwrap();
        let out = jobs::run(
            &small,
            &job,
            source,
            &all_with(slots),
            &Progress::default(),
            &CancelToken::new(),
        )
        .unwrap_or_else(|e| panic!("{name} with {slots} workers on {slots} slots: {e}"));
        assert_eq!(out.output, expected.output, "{name}");
        assert_eq!(out.cost.workers, slots);
    }
}

/// The CLI submits the JavaScript and the Python component (1.7 MB and 18 MB) to a real server over
/// HTTP, waits, and prints the Rust guest's output.
#[test]
fn javascript_and_python_jobs_submitted_to_a_server_equal_rust() {
    const TOKEN: &str = "languages-token-0123456789";
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let copied = std::process::Command::new("cp")
        .arg("-r")
        .arg(converted_data().join("storage"))
        .arg(data.join("storage"))
        .status()
        .unwrap();
    assert!(copied.success());
    // The server shares `job run`'s compile cache layout: seed it with the artifacts this test
    // binary compiled, as if the components had been uploaded before (the compile itself is
    // covered above; this test is about the upload and the service).
    let cache = common::repo_root().join("target/test-job-cache/cache");
    std::fs::create_dir_all(data.join("cache")).unwrap();
    for language in ["js", "py"] {
        let sha = jobs_support::guest(&format!("os-distribution-{language}"))
            .sha256()
            .to_string();
        for ext in ["wasm", "cwasm"] {
            std::fs::copy(
                cache.join(format!("{sha}.{ext}")),
                data.join(format!("cache/{sha}.{ext}")),
            )
            .unwrap();
        }
    }
    let mut config = telemetry_server::config::Config {
        data_dir: data.clone(),
        ..Default::default()
    };
    config.server.listen = "127.0.0.1:0".parse().unwrap();
    config.ingest.shards = 1;
    config.convert.enabled = false;
    config.jobs.tokens = vec![telemetry_server::api::jobs::TokenConfig {
        name: "languages".into(),
        sha256: telemetry_server::api::jobs::hash_token(TOKEN),
        role: telemetry_server::api::jobs::Role::Submit,
    }];
    let server = server_support::TestServer::start_with(root, config);
    let filter = common::data("seed/mapreduce-filters/examples-v2/filter_include_all.json");
    let expected = run_guest(&data, "os-distribution-rust", &all_with(2)).unwrap();
    for language in ["js", "py"] {
        let out = std::process::Command::new(common::binary())
            .args(["job", "submit"])
            .arg(common::guest(&format!("os-distribution-{language}")))
            .arg("--filter")
            .arg(&filter)
            .args(["--wait", "--server", &server.url(""), "--token", TOKEN])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{language}: {stderr}");
        assert!(!out.stdout.is_empty(), "{language} produced nothing");
        assert_eq!(
            String::from_utf8(out.stdout).unwrap(),
            output_text(&expected),
            "os-distribution-{language} through the server"
        );
    }
}

/// docs/jobs/languages.md shows the four os-distribution and the four histogram-aggregate jobs
/// side by side: verbatim, so the page cannot drift from the code the tests above run.
#[test]
fn the_languages_page_shows_the_example_jobs_verbatim() {
    let root = common::repo_root();
    let page = std::fs::read_to_string(root.join("docs/jobs/languages.md")).unwrap();
    for (lang, path) in [
        ("rust", "example-jobs/os-distribution/rust/src/lib.rs"),
        ("c", "example-jobs/os-distribution/c/os_distribution.c"),
        ("js", "example-jobs/os-distribution/js/job.js"),
        ("python", "example-jobs/os-distribution/py/app.py"),
        ("rust", "example-jobs/histogram-aggregate/rust/src/lib.rs"),
        (
            "c",
            "example-jobs/histogram-aggregate/c/histogram_aggregate.c",
        ),
        ("js", "example-jobs/histogram-aggregate/js/job.js"),
        ("python", "example-jobs/histogram-aggregate/py/app.py"),
    ] {
        let code = std::fs::read_to_string(root.join(path)).unwrap();
        assert!(
            page.contains(&format!("```{lang}\n{code}```\n")),
            "docs/jobs/languages.md must show {path} verbatim"
        );
    }
}
