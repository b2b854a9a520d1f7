//! S3 export throughput and job-on-S3 vs job-on-local, in one run, on the same data, against a
//! real s3s-fs on loopback (started here, stopped at the end):
//!
//! - `export partitions`: `Exporter::run_once` over the partition files of N generated pings
//!   (`gen-pings.py --count N`, N = `S3_BENCH_PINGS`, default 2000, stored with the
//!   `StorageWriter`, zstd), into a fresh bucket each run; MB/s of compressed bytes sent.
//! - `export multipart`: one `S3_BENCH_BIG_MB` (default 256) MB file, streamed multipart (8 MiB parts).
//! - `job local` / `job s3`: os-distribution-rust through `jobs::run` with 2 workers over the
//!   local `storage/` and over `s3://…` holding the same files; the ratio is s3 / local time.
//!
//! Each variant runs `S3_BENCH_RUNS` times (default 3); medians are reported.
//! `bash bench/s3.sh` (builds the guests, then `cargo bench -p telemetry-server --bench s3`).

#[path = "../tests/all/common/mod.rs"]
mod common;
#[path = "../tests/all/s3_common/mod.rs"]
mod s3_common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use telemetry_server::export::Exporter;
use telemetry_server::jobs::{self, CancelToken, Progress, RunOptions, Runtime, RuntimeConfig};
use telemetry_server::s3::{S3Config, S3Source};
use telemetry_server::storage::{DataDir, LocalSource, PartitionSource, Schema};

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn median(mut xs: Vec<Duration>) -> Duration {
    xs.sort();
    xs[xs.len() / 2]
}

/// A copy of `storage/` in a fresh data dir (so each export run starts with an empty journal).
fn fresh_copy(storage: &std::path::Path) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let status = std::process::Command::new("cp")
        .arg("-r")
        .arg(storage)
        .arg(dir.path().join("storage"))
        .status()
        .unwrap();
    assert!(status.success());
    dir
}

fn export_once(
    cfg: &S3Config,
    data: &std::path::Path,
    rt: &tokio::runtime::Runtime,
) -> (u64, Duration) {
    rt.block_on(async {
        let exporter = Exporter::new(cfg.clone(), data).unwrap();
        let start = Instant::now();
        let report = exporter.run_once(&Default::default()).await.unwrap();
        assert!(
            report.failed.is_empty() && report.uploaded == report.files,
            "{report:?}"
        );
        (report.bytes_uploaded, start.elapsed())
    })
}

fn main() {
    let pings = env_usize("S3_BENCH_PINGS", 2000);
    let runs = env_usize("S3_BENCH_RUNS", 3);
    let big_mb = env_usize("S3_BENCH_BIG_MB", 256);
    let server = s3_common::S3Server::start();
    let rt = s3_common::runtime();

    let data = tempfile::tempdir().unwrap();
    let data_dir = DataDir::open(data.path()).unwrap();
    s3_common::write_generated(&data_dir, pings, &["20151107", "20151108", "20151109"]);
    let storage = data.path().join("storage");
    let files = s3_common::local_files(&storage);
    let total: usize = files.iter().map(|(_, b)| b.len()).sum();
    println!(
        "data: {pings} generated pings -> {} partition files, {:.1} MB zstd",
        files.len(),
        total as f64 / 1e6
    );

    // Export of the partition files, fresh bucket each run.
    let mut times = Vec::new();
    for run in 0..runs {
        let copy = fresh_copy(&storage);
        let cfg = S3Config {
            part_size: 8 << 20,
            multipart_threshold: 16 << 20,
            ..server.config(&format!("bench-{run}"), "v2/")
        };
        let (bytes, took) = export_once(&cfg, copy.path(), &rt);
        assert_eq!(bytes as usize, total);
        times.push(took);
    }
    let t = median(times);
    println!(
        "export partitions: {:.1} MB/s ({} files, {:.1} MB, median of {runs}: {:.3} s)",
        total as f64 / 1e6 / t.as_secs_f64(),
        files.len(),
        total as f64 / 1e6,
        t.as_secs_f64()
    );

    // One big file, streamed multipart.
    let big = tempfile::tempdir().unwrap();
    let rel = "main/Firefox/release/45.0/20151106000000.20151107.v4.log.0123456789abcdef0123456789abcdef.zst";
    let path = big.path().join("storage").join(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, s3_common::pseudo_random(big_mb << 20, 5)).unwrap();
    let mut times = Vec::new();
    for run in 0..runs {
        let _ = std::fs::remove_file(big.path().join("export/journal"));
        let cfg = S3Config {
            part_size: 8 << 20,
            multipart_threshold: 16 << 20,
            ..server.config(&format!("big-{run}"), "")
        };
        times.push(export_once(&cfg, big.path(), &rt).1);
    }
    let t = median(times);
    println!(
        "export multipart: {:.1} MB/s ({big_mb} MiB file, 8 MiB parts, median of {runs}: {:.3} s)",
        (big_mb << 20) as f64 / 1e6 / t.as_secs_f64(),
        t.as_secs_f64()
    );

    // The same job over the local copy and over S3.
    let cache = DataDir::open(&common::repo_root().join("target/bench-s3-cache")).unwrap();
    let runtime = Runtime::new(cache.sub("cache").unwrap(), RuntimeConfig::default()).unwrap();
    let job = runtime
        .compile(&std::fs::read(common::guest("os-distribution-rust")).unwrap())
        .unwrap();
    let filter = Schema::from_json(
        r#"{"version":1,"dimensions":[{"field_name":"reason","allowed_values":"*"},{"field_name":"appName","allowed_values":"*"},{"field_name":"appUpdateChannel","allowed_values":"*"},{"field_name":"appVersion","allowed_values":"*"},{"field_name":"appBuildID","allowed_values":"*"},{"field_name":"submission_date","allowed_values":"*"}]}"#,
    )
    .unwrap();
    let opts = RunOptions {
        workers: 2,
        ..RunOptions::new(filter)
    };
    let local: Arc<dyn PartitionSource> =
        Arc::new(LocalSource::new(data_dir.sub("storage").unwrap()));
    let s3: Arc<dyn PartitionSource> =
        Arc::new(S3Source::new(&server.config("bench-0", "v2/")).unwrap());
    for (name, source) in [("local", &local), ("s3", &s3)] {
        let start = Instant::now();
        let mut listed = source.list(&opts.filter).unwrap();
        listed.sort_by(|a, b| b.size.cmp(&a.size).then_with(|| a.path.cmp(&b.path))); // the executor's order
        let list_time = start.elapsed();
        let start = Instant::now();
        let mut bytes = 0;
        for file in &listed {
            let mut out = Vec::new();
            std::io::Read::read_to_end(&mut source.open(file).unwrap(), &mut out).unwrap();
            bytes += out.len();
        }
        let read_time = start.elapsed();
        println!(
            "{name}: list {} files in {:.3} s; open+read one by one (biggest first) {:.1} MB JSON in {:.3} s ({:.2} ms/file)",
            listed.len(),
            list_time.as_secs_f64(),
            bytes as f64 / 1e6,
            read_time.as_secs_f64(),
            read_time.as_secs_f64() * 1e3 / listed.len() as f64
        );
    }
    let (mut t_local, mut t_s3) = (Vec::new(), Vec::new());
    let mut outputs = Vec::new();
    for _ in 0..runs {
        for (source, times) in [(&local, &mut t_local), (&s3, &mut t_s3)] {
            let start = Instant::now();
            let out = jobs::run(
                &runtime,
                &job,
                source.clone(),
                &opts,
                &Progress::default(),
                &CancelToken::new(),
            )
            .unwrap();
            times.push(start.elapsed());
            outputs.push(out.output);
        }
    }
    assert!(
        outputs.windows(2).all(|w| w[0] == w[1]),
        "job output differs between local and S3"
    );
    let (l, s) = (median(t_local), median(t_s3));
    println!(
        "job os-distribution-rust, 2 workers: local {:.3} s, s3 {:.3} s, s3/local = {:.2} (median of {runs}, same output)",
        l.as_secs_f64(),
        s.as_secs_f64(),
        s.as_secs_f64() / l.as_secs_f64()
    );
}
