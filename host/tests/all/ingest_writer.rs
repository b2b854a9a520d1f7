//! The raw log writer on its own: rotation by size, rotation by age while busy, group commit
//! (fewer syncs than records, every record acknowledged), and record order within a log.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::server_support::finished_records;
use telemetry_server::api::metrics::Metrics;
use telemetry_server::config::{Durability, IngestConfig};
use telemetry_server::ingest::WriterPool;

fn pool(dir: &std::path::Path, config: IngestConfig) -> (WriterPool, Arc<Metrics>) {
    let raw = cap_std::fs::Dir::open_ambient_dir(dir, cap_std::ambient_authority()).unwrap();
    let metrics = Metrics::new();
    let pool = WriterPool::start(
        &raw,
        &config,
        metrics.ingest.clone(),
        Arc::new(|_: &str| {}),
    )
    .unwrap();
    (pool, metrics)
}

fn record(id: &str, body_len: usize) -> Vec<u8> {
    let mut out = Vec::new();
    telemetry_server::rawlog::encode_v2(&mut out, 1, "127.0.0.1", id, &vec![b'x'; body_len]);
    out
}

fn finished_logs(dir: &std::path::Path) -> Vec<u64> {
    let mut sizes: Vec<u64> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".finished"))
        .map(|e| e.metadata().unwrap().len())
        .collect();
    sizes.sort();
    sizes
}

fn metric(metrics: &Metrics, name: &str) -> f64 {
    let text = metrics.encode();
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|rest| rest.strip_prefix(' ')))
        .unwrap_or_else(|| panic!("{name} not in {text}"))
        .parse()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_rotate_by_size_and_keep_record_order() {
    let tmp = tempfile::tempdir().unwrap();
    let config = IngestConfig {
        shards: 1,
        max_log_size: 1000,
        durability: Durability::None,
        ..Default::default()
    };
    let (pool, _) = pool(tmp.path(), config);
    for i in 0..10 {
        pool.append(record(&format!("doc-{i}"), 300)).await.unwrap();
    }
    pool.close();
    let sizes = finished_logs(tmp.path());
    let one = record("doc-0", 300).len() as u64;
    assert_eq!(sizes.iter().sum::<u64>(), 10 * one);
    assert!(sizes.len() >= 3, "rotated at 1000 bytes: {sizes:?}");
    assert!(sizes.iter().all(|&s| s < 1000 + one), "{sizes:?}");
    let mut paths: Vec<String> = finished_records(tmp.path())
        .into_iter()
        .map(|r| r.path)
        .collect();
    paths.sort_by_key(|p| p[4..].parse::<u32>().unwrap());
    assert_eq!(
        paths,
        (0..10).map(|i| format!("doc-{i}")).collect::<Vec<_>>()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn busy_logs_rotate_by_age() {
    let tmp = tempfile::tempdir().unwrap();
    let config = IngestConfig {
        shards: 1,
        max_log_age_ms: 100,
        durability: Durability::None,
        ..Default::default()
    };
    let (pool, metrics) = pool(tmp.path(), config);
    let start = Instant::now();
    let mut sent = 0;
    // Never idle for more than a few milliseconds: the seed would never have rotated this log.
    while start.elapsed() < Duration::from_millis(650) {
        pool.append(record(&format!("doc-{sent}"), 100))
            .await
            .unwrap();
        sent += 1;
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    // Logs finished while traffic was still flowing.
    assert!(metric(&metrics, "telemetry_ingest_rotations_total") >= 4.0);
    pool.close();
    assert!(
        finished_logs(tmp.path()).len() >= 5,
        "{:?}",
        finished_logs(tmp.path())
    );
    assert_eq!(finished_records(tmp.path()).len(), sent);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_commit_covers_many_records_per_sync() {
    let tmp = tempfile::tempdir().unwrap();
    let config = IngestConfig {
        shards: 1,
        durability: Durability::Batch,
        ..Default::default()
    };
    let (pool, metrics) = pool(tmp.path(), config);
    let pool = Arc::new(pool);
    let tasks: Vec<_> = (0..64)
        .map(|t| {
            let pool = pool.clone();
            tokio::spawn(async move {
                for i in 0..20 {
                    pool.append(record(&format!("doc-{t}-{i}"), 1000))
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let records = metric(&metrics, "telemetry_ingest_batch_records_sum");
    let commits = metric(&metrics, "telemetry_ingest_batch_records_count");
    let syncs = metric(&metrics, "telemetry_ingest_fsync_duration_seconds_count");
    assert_eq!(
        records, 1280.0,
        "every acknowledged record was covered by a sync"
    );
    assert!(
        commits < records / 4.0,
        "{commits} syncs for {records} records: no grouping"
    );
    assert!(syncs >= commits);
    pool.close();
    assert_eq!(finished_records(tmp.path()).len(), 1280);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appends_after_close_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let (pool, _) = pool(
        tmp.path(),
        IngestConfig {
            shards: 2,
            ..Default::default()
        },
    );
    pool.append(record("before", 10)).await.unwrap();
    pool.close();
    let err = pool.append(record("after", 10)).await.unwrap_err();
    assert_eq!(err, telemetry_server::ingest::WriteError::ShuttingDown);
    let paths: Vec<String> = finished_records(tmp.path())
        .into_iter()
        .map(|r| r.path)
        .collect();
    assert_eq!(paths, ["before"]);
}
