//! The MapReduce jobs end to end: real guests (Rust and C, built from source by
//! scripts/build-guests.sh) over pings from ../shared/data converted into zstd storage.

use crate::common;

use crate::jobs_support::*;
use std::time::{Duration, Instant};
use telemetry_server::jobs::{
    self, CancelToken, JobError, JobOutput, Limits, Progress, RunOptions,
};
use telemetry_server::storage::Schema;

#[test]
fn os_distribution_in_rust_and_c_equals_the_native_reference() {
    let data = converted_data();
    let expected = native_os_distribution(&stored_records(data, &all_filter()));
    assert!(
        expected.lines().count() >= 4,
        "the data should hold several OS/version pairs:\n{expected}"
    );
    let rust = run_guest(data, "os-distribution-rust", &all_with(2)).unwrap();
    let c = run_guest(data, "os-distribution-c", &all_with(2)).unwrap();
    assert_eq!(output_text(&rust), expected);
    assert_eq!(
        output_text(&c),
        expected,
        "the C job must agree with the Rust job and the reference"
    );
}

#[test]
fn output_and_counts_do_not_depend_on_the_number_of_workers() {
    let data = converted_data();
    let records = stored_records(data, &all_filter());
    let one = run_guest(data, "os-distribution-rust", &all_with(1)).unwrap();
    let two = run_guest(data, "os-distribution-rust", &all_with(2)).unwrap();
    let three = run_guest(data, "os-distribution-rust", &all_with(3)).unwrap();
    assert_eq!(one.output, two.output);
    assert_eq!(one.output, three.output);
    for out in [&one, &two, &three] {
        let c = &out.cost;
        assert_eq!(c.records_read, records.len() as u64);
        assert_eq!(
            c.emits,
            records.len() as u64,
            "os-distribution emits once per record"
        );
        assert_eq!(c.files_read, c.files_matched);
        assert_eq!(c.files_pruned, 0);
        assert_eq!(c.output_lines as usize, output_text(out).lines().count());
        assert!(
            c.bytes_read > c.compressed_bytes_read,
            "zstd storage is smaller than its JSON"
        );
        assert!(c.peak_guest_memory_bytes > 0);
        assert!(c.reduce_calls >= c.output_lines);
    }
    assert_eq!(three.cost.workers, 3);
}

#[test]
fn the_filter_prunes_partitions() {
    let data = converted_data();
    let filter = Schema::from_json(&filter_json(&[(5, "[\"20150601\"]")])).unwrap();
    let expected = native_os_distribution(&stored_records(data, &filter));
    let out = run_guest(
        data,
        "os-distribution-rust",
        &RunOptions {
            workers: 2,
            ..RunOptions::new(filter)
        },
    )
    .unwrap();
    assert_eq!(output_text(&out), expected);
    assert!(
        out.cost.files_pruned > 0,
        "files of other days are pruned: {:?}",
        out.cost
    );
    assert!(out.cost.records_read < stored_records(data, &all_filter()).len() as u64);
}

#[test]
fn progress_reaches_the_totals() {
    let data = converted_data();
    let progress = Progress::default();
    let source = jobs::open_source(data.to_str().unwrap()).unwrap();
    let out = jobs::run(
        runtime(),
        &guest("os-distribution-rust"),
        source,
        &all_with(2),
        &progress,
        &CancelToken::new(),
    )
    .unwrap();
    let (total, done, records, bytes) = progress.snapshot();
    assert_eq!(total, out.cost.files_matched);
    assert_eq!(done, total);
    assert_eq!(records, out.cost.records_read);
    assert_eq!(bytes, out.cost.bytes_read);
}

#[test]
fn simple_counter_counts_records_and_duplicate_ids_per_day() {
    let doc = r#"{"version":4,"type":"main"}"#;
    let data = tiny_data(&[("a", doc), ("b", doc), ("a", doc), ("c", doc), ("a", doc)]);
    let out = run_guest(data.path(), "simple-counter-rust", &all_with(2)).unwrap();
    assert_eq!(output_text(&out), "20150528\trecords=5 duplicates=2\n");
}

#[test]
fn histogram_aggregate_merges_buckets_by_bound_per_channel_and_version() {
    // Compact histograms (3 buckets + 5 statistics) whose layouts the converter noted
    // (`[histogram_type, low, high]`, linear): 1..3 lays buckets out at [0,1,3], 1..2 at [0,1,2].
    let ping = |channel: &str, version: &str, noted: &str, h: &str| {
        format!(
            r#"{{"application":{{"channel":"{channel}","version":"{version}"}},"conversion":{{"layouts":{{"GC_MS":{noted}}}}},"payload":{{"histograms":{{"GC_MS":{h}}}}}}}"#
        )
    };
    let a = ping("release", "40.0", "[1,1,3]", "[1,2,3,6,-1,-1,-1,-1]");
    let b = ping("release", "40.0", "[1,1,2]", "[0,5,1,7.5,-1,-1,-1,-1]");
    let c = ping("beta", "41.0", "[1,1,3]", "[4,0,0,0,-1,-1,-1,-1]");
    let none = r#"{"application":{"channel":"beta","version":"41.0"},"payload":{"histograms":{}}}"#;
    // An array but no layout anywhere (no noted layout, no revision): counted, not merged.
    let unknown = r#"{"application":{"channel":"beta","version":"41.0"},"payload":{"histograms":{"GC_MS":[9,9,9,0,-1,-1,-1,-1]}}}"#;
    let data = tiny_data(&[("1", &a), ("2", &b), ("3", &c), ("4", none), ("5", unknown)]);
    let mut o = all_with(2);
    o.param = "GC_MS".into();
    let out = run_guest(data.path(), "histogram-aggregate-rust", &o).unwrap();
    // release: {0:1, 1:2, 3:3} + {0:0, 1:5, 2:1} by bound; 12 samples, the 6th in bucket 1, the
    // 12th (95 %) in bucket 3; sums 6 + 7 (7.5 rounded toward zero).
    assert_eq!(
        output_text(&out),
        "beta,41.0\t{\"histogram\":{\"bounds\":[0,1,3],\"counts\":[4,0,0],\"sum\":0},\"median\":0,\"p95\":0,\"submissions\":1,\"unknown_layout\":1}\n\
         release,40.0\t{\"histogram\":{\"bounds\":[0,1,2,3],\"counts\":[1,7,1,3],\"sum\":13},\"median\":1,\"p95\":3,\"submissions\":2}\n"
    );
}

#[test]
fn histogram_aggregate_on_converted_pings_finds_the_histogram() {
    // GC_MS is in the real v4 main pings; converted storage holds it in compact form.
    let data = converted_data();
    let mut o = all_with(2);
    o.param = "GC_MS".into();
    let out = run_guest(data, "histogram-aggregate-rust", &o).unwrap();
    let submissions: u64 = output_text(&out)
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l.split('\t').nth(1).unwrap()).unwrap();
            v["submissions"].as_u64().unwrap()
        })
        .sum();
    let expected = stored_records(data, &all_filter())
        .iter()
        .filter(|(_, json)| {
            let doc: serde_json::Value = serde_json::from_str(json).unwrap();
            ["/payload/histograms/GC_MS", "/histograms/GC_MS"]
                .iter()
                .any(|p| doc.pointer(p).is_some_and(|h| h.is_array()))
        })
        .count() as u64;
    assert!(
        expected > 0,
        "the converted data should hold GC_MS histograms"
    );
    assert_eq!(submissions, expected);
}

#[test]
fn a_bad_parameter_is_rejected_by_the_job() {
    let data = tiny_data(&[("1", "{}")]);
    let mut o = all_with(1);
    o.param = "not a name!".into();
    let err = run_guest(data.path(), "histogram-aggregate-rust", &o).unwrap_err();
    assert!(
        matches!(&err, JobError::InvalidParam { message } if message.contains("histogram name")),
        "{err}"
    );
}

#[test]
fn invalid_json_in_storage_fails_the_job_or_is_skipped() {
    let data = tiny_data(&[
        ("good", r#"{"info":{"OS":"Linux"}}"#),
        ("broken", r#"{"info":{"OS":"Lin"#),
    ]);
    let err = run_guest(data.path(), "os-distribution-rust", &all_with(1)).unwrap_err();
    assert!(
        matches!(&err, JobError::BadRecord { record_id: Some(id), .. } if id == "broken"),
        "{err}"
    );
    let out = run_guest(
        data.path(),
        "os-distribution-rust",
        &RunOptions {
            skip_bad_records: true,
            ..all_with(1)
        },
    )
    .unwrap();
    assert_eq!(output_text(&out), "Linux,UNKNOWN\t1\n");
    assert_eq!(out.cost.bad_record_ids, vec!["broken".to_string()]);
}

#[test]
fn components_are_compiled_once_and_cached_by_sha256() {
    let bytes = std::fs::read(common::guest("simple-counter-rust")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cache = telemetry_server::storage::DataDir::open(dir.path())
        .unwrap()
        .sub("cache")
        .unwrap();
    let rt = jobs::Runtime::new(cache, jobs::RuntimeConfig::default()).unwrap();
    let first = rt.compile(&bytes).unwrap();
    assert!(!first.cache_hit());
    let second = rt.compile(&bytes).unwrap();
    assert!(second.cache_hit());
    assert_eq!(first.sha256(), second.sha256());
    use sha2::Digest;
    assert_eq!(first.sha256(), hex::encode(sha2::Sha256::digest(&bytes)));
    assert!(dir
        .path()
        .join("cache")
        .join(format!("{}.cwasm", first.sha256()))
        .exists());
    let loaded = rt.load_cached(first.sha256()).unwrap();
    assert!(loaded.cache_hit());
    assert!(matches!(
        rt.load_cached(&"0".repeat(64)),
        Err(JobError::NotCached { .. })
    ));
    assert!(matches!(
        rt.load_cached("../../etc/passwd"),
        Err(JobError::NotCached { .. })
    ));
}

#[test]
fn invalid_components_are_refused_with_what_is_wrong() {
    let reason = |bytes: &[u8]| match runtime().compile(bytes) {
        Err(JobError::InvalidComponent { reason }) => reason,
        other => panic!(
            "expected InvalidComponent, got {:?}",
            other.map(|j| j.sha256().to_string())
        ),
    };
    assert!(reason(b"hello, world").contains("not a WebAssembly binary"));
    assert!(reason(b"\0asm\x01\0\0\0").contains("core WebAssembly module, not a component"));
    // An empty component: valid, but for no world of ours.
    let empty = reason(b"\0asm\x0d\0\x01\0");
    assert!(
        empty.contains("missing export `telemetry:job/job@0.2.0`"),
        "{empty}"
    );
    assert!(
        empty.contains("`telemetry:job/job@0.1.0` of a job built against 0.1.0"),
        "{empty}"
    );
    assert!(!reason(b"\0asm\x0d\0\x01\0garbage").is_empty());
}

#[test]
fn cancel_stops_a_running_job_within_a_second() {
    let data = tiny_data(&[("1", "{}")]);
    let mut o = all_with(1);
    o.param = "loop".into();
    o.limits = Limits {
        call_timeout_ms: 60_000,
        ..Limits::default()
    };
    let cancel = CancelToken::new();
    let canceller = {
        let cancel = cancel.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            cancel.cancel();
            Instant::now()
        })
    };
    let source = jobs::open_source(data.path().to_str().unwrap()).unwrap();
    let err = jobs::run(
        runtime(),
        &guest("hostile-rust"),
        source,
        &o,
        &Progress::default(),
        &cancel,
    )
    .unwrap_err();
    let stopped = Instant::now();
    let cancelled_at = canceller.join().unwrap();
    assert!(matches!(err, JobError::Cancelled), "{err}");
    assert!(stopped.duration_since(cancelled_at) < Duration::from_secs(1));
}

#[test]
fn the_cli_runs_a_job_and_reports_its_cost() {
    let data = converted_data();
    let dir = tempfile::tempdir().unwrap();
    let filter = dir.path().join("filter.json");
    std::fs::write(&filter, filter_json(&[])).unwrap();
    let output = dir.path().join("out.txt");
    let run = std::process::Command::new(common::binary())
        .args(["job", "run"])
        .arg(common::guest("os-distribution-c"))
        .arg("--data-dir")
        .arg(data)
        .arg("--filter")
        .arg(&filter)
        .args(["--workers", "2", "--json", "--output"])
        .arg(&output)
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap();
    let expected = native_os_distribution(&stored_records(data, &all_filter()));
    assert_eq!(std::fs::read_to_string(&output).unwrap(), expected);
    assert_eq!(report["cost"]["workers"], 2);
    assert_eq!(
        report["cost"]["output_lines"].as_u64().unwrap() as usize,
        expected.lines().count()
    );
    assert!(report["cost"]["phases"]["map_ms"].as_f64().unwrap() > 0.0);

    let bad = std::process::Command::new(common::binary())
        .args(["job", "run"])
        .arg(&filter)
        .arg("--data-dir")
        .arg(data)
        .arg("--filter")
        .arg(&filter)
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("not a WebAssembly binary"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
}

#[test]
fn the_same_dataflow_runs_as_a_two_process_cluster() {
    use telemetry_server::cluster::Topology;
    let data = converted_data();
    let free_port = || {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .to_string()
    };
    let addresses = vec![free_port(), free_port()];
    let secret = telemetry_server::cluster::handshake::MeshSecret::random().unwrap();
    let results: Vec<Result<JobOutput, JobError>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..2)
            .map(|process| {
                let topology = Topology::Cluster {
                    workers: 1,
                    process,
                    addresses: addresses.clone(),
                    secret: secret.clone(),
                };
                s.spawn(move || {
                    let source = jobs::open_source(data.to_str().unwrap()).unwrap();
                    let job = guest("os-distribution-rust");
                    jobs::run_on(
                        &topology,
                        runtime(),
                        &job,
                        source,
                        &all_with(0),
                        &Progress::default(),
                        &CancelToken::new(),
                    )
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let expected = native_os_distribution(&stored_records(data, &all_filter()));
    let outputs: Vec<JobOutput> = results.into_iter().map(Result::unwrap).collect();
    assert_eq!(
        output_text(&outputs[0]),
        expected,
        "process 0 (worker 0) holds the whole output"
    );
    assert!(outputs[1].output.is_empty());
    assert_eq!(outputs[0].cost.workers, 2);
    let records: u64 = outputs.iter().map(|o| o.cost.records_read).sum();
    assert_eq!(
        records,
        stored_records(data, &all_filter()).len() as u64,
        "each file is read by exactly one process"
    );
}

#[test]
fn the_output_size_limit_stops_a_job() {
    let data = converted_data();
    let o = RunOptions {
        limits: Limits {
            output_bytes: 40,
            ..Limits::default()
        },
        ..all_with(2)
    };
    let err = run_guest(data, "os-distribution-rust", &o).unwrap_err();
    assert_limit_exceeded(&err, "output size (40 bytes)");
}

/// `sample`: the host reads only the records whose id the stable hash selects, before any guest
/// call; the output is the native computation over exactly those records, for any worker count,
/// and the cost report accounts for every record read.
#[test]
fn a_sampled_run_maps_exactly_the_records_the_id_hash_selects() {
    let data = converted_data();
    let all = stored_records(data, &all_filter());
    let sample = jobs::Sample::new(0.3).unwrap();
    let chosen: Vec<(String, String)> = all
        .iter()
        .filter(|(id, _)| sample.keeps(id.as_bytes()))
        .cloned()
        .collect();
    assert!(
        !chosen.is_empty() && chosen.len() < all.len(),
        "{} of {}",
        chosen.len(),
        all.len()
    );
    let expected = native_os_distribution(&chosen);
    for workers in [1, 2] {
        let out = run_guest(
            data,
            "os-distribution-rust",
            &RunOptions {
                sample,
                ..all_with(workers)
            },
        )
        .unwrap();
        assert_eq!(output_text(&out), expected, "{workers} workers");
        assert_eq!(out.cost.sample, 0.3);
        assert_eq!(out.cost.records_read, all.len() as u64);
        assert_eq!(
            out.cost.records_sampled_out,
            (all.len() - chosen.len()) as u64
        );
    }
    let full = run_guest(data, "os-distribution-rust", &all_with(2)).unwrap();
    assert_eq!(full.cost.records_sampled_out, 0);
    assert_eq!(full.cost.sample, 1.0);
}
