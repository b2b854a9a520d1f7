//! Conversion throughput on the real v4 main pings of `../shared/data/pings`, next to a serde_json
//! baseline on the same payloads in the same run: parse into a `serde_json::Value` and serialise
//! it again (the least a converter that builds a tree must do).
//!
//! `cargo bench -p telemetry-server --bench convert` — single-threaded, so the numbers are per core.
//! Definitions for each ping's revision are made from the ping's own histogram parameters (as
//! in the tests), so every histogram is converted and validated.

#[path = "../tests/all/common/mod.rs"]
mod common;
#[path = "../tests/all/convert_support/defs.rs"]
mod convert_defs;

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{black_box, Criterion, Throughput};
use serde_json::Value;
use telemetry_server::convert::{Converter, DEFAULT_SCHEMA};
use telemetry_server::histograms::RevisionCache;
use telemetry_server::storage::Schema;

/// The v4 main pings with a payload (`v4.main.min` has none: it is an error case, not a ping to convert).
const PINGS: [&str; 4] = [
    "pings/v4.main.Fx45.0-beta.2015-11.latewrites.pipeline-schemas.json",
    "pings/v4.main.Fx45.0-beta.2015-11.sample.pipeline-schemas.json",
    "pings/v4.main.Fx54.0a1-nightly.2017-01.heka-decoded.moztelemetry-gzip.json",
    "pings/v4.main.Fx60.0a1-nightly.2018-03.gc_sample.pipeline-schemas.json",
];

struct Setup {
    bodies: Vec<Vec<u8>>,
    converter: Converter,
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
    let converter = Converter::new(Schema::from_json(DEFAULT_SCHEMA).unwrap(), Arc::new(cache));
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
}
