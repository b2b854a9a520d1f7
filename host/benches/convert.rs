//! Conversion throughput on the real v4 main pings of `../shared/data/pings`, next to a serde_json
//! baseline on the same payloads in the same run: parse into a `serde_json::Value` and serialise
//! it again (the least a converter that builds a tree must do).
//!
//! `cargo bench -p telemetry-server --bench convert` — single-threaded, so the numbers are per core.
//! Definitions for each ping's revision are made from the ping's own histogram parameters (as
//! in the tests), so every histogram is converted and validated.
//!
//! Then the whole `convert` pipeline (text input → converter → zstd partition files) over
//! [`PIPELINE_RECORDS`] records with distinct ids, without and with the dedup index (a fresh
//! index per pass; ids reserved, then committed when the files are published), and a pass over
//! the same records again (all duplicates): the cost of dedup on throughput.

#[path = "../tests/all/common/mod.rs"]
mod common;
#[path = "../tests/all/convert_support/defs.rs"]
mod convert_defs;

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{black_box, Criterion, Throughput};
use serde_json::Value;
use telemetry_server::convert::{Converter, DedupIndex, Pipeline, DEFAULT_SCHEMA};
use telemetry_server::histograms::RevisionCache;
use telemetry_server::storage::{DataDir, Schema, WriterOptions};

/// Records per pipeline pass (the 4 pings repeated with distinct ids).
const PIPELINE_RECORDS: usize = 2000;

/// The v4 main pings with a payload (`v4.main.min` has none: it is an error case, not a ping to convert).
const PINGS: [&str; 4] = [
    "pings/v4.main.Fx45.0-beta.2015-11.latewrites.pipeline-schemas.json",
    "pings/v4.main.Fx45.0-beta.2015-11.sample.pipeline-schemas.json",
    "pings/v4.main.Fx54.0a1-nightly.2017-01.heka-decoded.moztelemetry-gzip.json",
    "pings/v4.main.Fx60.0a1-nightly.2018-03.gc_sample.pipeline-schemas.json",
];

struct Setup {
    bodies: Vec<Vec<u8>>,
    converter: Arc<Converter>,
    _spec_dir: tempfile::TempDir,
}

fn setup() -> Setup {
    let spec_dir = tempfile::tempdir().unwrap();
    let mut bodies = Vec::new();
    for file in PINGS {
        let body = std::fs::read(common::data(file)).unwrap();
        let ping: Value = serde_json::from_slice(&body).unwrap();
        let rev =
            convert_defs::revision_hash(ping["payload"]["info"]["revision"].as_str().unwrap());
        let defs = convert_defs::definitions_from_payload(&ping["payload"]);
        std::fs::write(
            spec_dir.path().join(format!("{rev}.json")),
            defs.to_string(),
        )
        .unwrap();
        bodies.push(body);
    }
    let cache = RevisionCache::empty().with_dir(spec_dir.path()).unwrap();
    let converter = Arc::new(Converter::new(
        Schema::from_json(DEFAULT_SCHEMA).unwrap(),
        Arc::new(cache),
    ));
    for body in &bodies {
        let out = converter.convert_body("id", body, "20170130").unwrap();
        assert_eq!(out.unknown_histograms, 0);
    }
    Setup {
        bodies,
        converter,
        _spec_dir: spec_dir,
    }
}

fn convert_all(s: &Setup) -> usize {
    s.bodies
        .iter()
        .map(|b| {
            s.converter
                .convert_body("id", b, "20170130")
                .unwrap()
                .json
                .len()
        })
        .sum()
}

fn value_round_trip(s: &Setup) -> usize {
    s.bodies
        .iter()
        .map(|b| {
            serde_json::to_string(&serde_json::from_slice::<Value>(b).unwrap())
                .unwrap()
                .len()
        })
        .sum()
}

fn bench(c: &mut Criterion, s: &Setup) {
    let bytes: u64 = s.bodies.iter().map(|b| b.len() as u64).sum();
    let mut group = c.benchmark_group("v4_main_pings");
    group.throughput(Throughput::Bytes(bytes));
    group.bench_function("convert", |b| b.iter(|| black_box(convert_all(s))));
    group.bench_function("serde_json_value_round_trip", |b| {
        b.iter(|| black_box(value_round_trip(s)))
    });
    group.finish();
}

/// Runs `f` over all pings for about `budget`; returns seconds per pass.
fn seconds_per_pass(s: &Setup, budget: Duration, f: fn(&Setup) -> usize) -> f64 {
    let start = Instant::now();
    let mut passes = 0u32;
    while start.elapsed() < budget {
        black_box(f(s));
        passes += 1;
    }
    start.elapsed().as_secs_f64() / f64::from(passes)
}

/// An `id<TAB>json` file of [`PIPELINE_RECORDS`] records with distinct ids.
fn pipeline_input(s: &Setup, dir: &std::path::Path) -> std::path::PathBuf {
    let mut text = Vec::new();
    for i in 0..PIPELINE_RECORDS {
        let body = &s.bodies[i % s.bodies.len()];
        let doc: Value = serde_json::from_slice(body).unwrap();
        text.extend_from_slice(format!("{:08x}-bench-{i:06}\t", i * 7919).as_bytes());
        text.extend_from_slice(serde_json::to_string(&doc).unwrap().as_bytes());
        text.push(b'\n');
    }
    let path = dir.join("pings.tsv");
    std::fs::write(&path, text).unwrap();
    path
}

/// One pipeline pass over `input` into `data` (a fresh data dir unless `again`); seconds and
/// (written, duplicate).
fn pipeline_pass(
    s: &Setup,
    input: &std::path::Path,
    data: &std::path::Path,
    dedup: bool,
) -> (f64, u64, u64) {
    let data = DataDir::open(data).unwrap();
    let start = Instant::now();
    let mut pipeline = Pipeline::new(
        &data,
        s.converter.clone(),
        WriterOptions::default(),
        "bench",
    )
    .unwrap();
    if dedup {
        pipeline = pipeline.with_dedup(Arc::new(DedupIndex::open(&data, 7).unwrap()));
    }
    let summary = pipeline
        .convert_text(input, "20170130", &mut |_| {})
        .unwrap();
    pipeline.finish().unwrap();
    let secs = start.elapsed().as_secs_f64();
    assert_eq!(summary.records_read, PIPELINE_RECORDS as u64);
    (secs, summary.records_written, summary.duplicate)
}

/// Best of `passes` pipeline passes, each into a fresh data dir.
fn best_pipeline(s: &Setup, input: &std::path::Path, dedup: bool, passes: usize) -> f64 {
    (0..passes)
        .map(|_| {
            let dir = tempfile::tempdir().unwrap();
            let (secs, written, _) = pipeline_pass(s, input, &dir.path().join("data"), dedup);
            assert_eq!(written, PIPELINE_RECORDS as u64);
            secs
        })
        .fold(f64::INFINITY, f64::min)
}

fn pipeline_report(s: &Setup) {
    let tmp = tempfile::tempdir().unwrap();
    let input = pipeline_input(s, tmp.path());
    let bytes = std::fs::metadata(&input).unwrap().len() as f64;
    let passes = 5;
    // Interleaved so both see the same machine load.
    let mut plain = f64::INFINITY;
    let mut dedup = f64::INFINITY;
    for _ in 0..passes {
        plain = plain.min(best_pipeline(s, &input, false, 1));
        dedup = dedup.min(best_pipeline(s, &input, true, 1));
    }
    let again_dir = tempfile::tempdir().unwrap();
    let data = again_dir.path().join("data");
    pipeline_pass(s, &input, &data, true);
    let (again, written, duplicate) = pipeline_pass(s, &input, &data, true);
    assert_eq!((written, duplicate), (0, PIPELINE_RECORDS as u64));
    let line = |name: &str, secs: f64| {
        println!(
            "{name:<32} {:>8.0} records/s  {:>7.1} MB/s",
            PIPELINE_RECORDS as f64 / secs,
            bytes / secs / 1e6
        )
    };
    line("pipeline (no dedup)", plain);
    line("pipeline + dedup", dedup);
    line("pipeline + dedup, all duplicates", again);
    println!(
        "dedup throughput loss: {:.1} % (goal <= 10 %)",
        (1.0 - plain / dedup) * 100.0
    );
}

fn main() {
    let s = setup();
    let mut c = Criterion::default().configure_from_args();
    bench(&mut c, &s);
    c.final_summary();

    // One line a person can quote: both numbers and their ratio, measured now, back to back.
    let bytes: usize = s.bodies.iter().map(Vec::len).sum();
    let budget = Duration::from_secs(3);
    let convert = seconds_per_pass(&s, budget, convert_all);
    let baseline = seconds_per_pass(&s, budget, value_round_trip);
    let report = |name: &str, secs: f64| {
        println!(
            "{name:<32} {:>8.0} records/s  {:>7.1} MB/s per core",
            s.bodies.len() as f64 / secs,
            bytes as f64 / secs / 1e6
        )
    };
    report("convert", convert);
    report("serde_json Value round trip", baseline);
    println!(
        "ratio convert / baseline: {:.2} (goal >= 0.5)",
        baseline / convert
    );
    pipeline_report(&s);
}
