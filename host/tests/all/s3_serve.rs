//! The continuous exporter inside `serve`, against a real s3s-fs: a submission's raw log is
//! exported under `incoming/` once it is finished, partition files under the prefix while the
//! server runs, and a file finished just before shutdown goes up in the final pass.

use crate::common;

use std::time::{Duration, Instant};

use crate::s3_common::{list_all, runtime, S3Server};
use crate::server_support::TestServer;
use telemetry_server::s3::client;

fn keys_on(server: &S3Server) -> Vec<String> {
    runtime().block_on(async {
        let client = client::build(&server.config("serve", "")).unwrap();
        // No bucket yet (the exporter creates it in its first pass) reads as no keys.
        if client.head_bucket().bucket("serve").send().await.is_err() {
            return Vec::new();
        }
        list_all(&client, "serve", "").await.into_keys().collect()
    })
}

fn bucket_exists(server: &S3Server) -> bool {
    runtime().block_on(async {
        let client = client::build(&server.config("serve", "")).unwrap();
        client.head_bucket().bucket("serve").send().await.is_ok()
    })
}

fn wait_for(server: &S3Server, what: &str, pred: impl Fn(&[String]) -> bool) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let keys = keys_on(server);
        if pred(&keys) {
            return keys;
        }
        assert!(
            Instant::now() < deadline,
            "{what} never appeared on S3; keys: {keys:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn put_partition_file(data: &std::path::Path, rel: &str, bytes: &[u8]) {
    let path = data.join("storage").join(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn serve_exports_raw_logs_and_partitions_continuously_and_flushes_on_shutdown() {
    let s3 = S3Server::start();
    let mut cfg = s3.config("serve", "published/");
    cfg.raw_logs = true;
    cfg.interval_secs = 1;
    let mut server = TestServer::start(|c| {
        c.ingest.max_log_age_ms = 200;
        c.s3 = Some(cfg);
    });
    let ping = std::fs::read(common::data("pings/v4.main.min.pipeline-schemas.json")).unwrap();
    let status = reqwest::blocking::Client::new()
        .post(server.url("/submit/telemetry/6c49ec73-4350-45a0-9c8a-6c8f5aff0f99/main/Firefox/45.0/beta/20151103030248"))
        .body(ping)
        .send()
        .unwrap()
        .status();
    assert_eq!(status, 200);
    let keys = wait_for(&s3, "the finished raw log", |k| {
        k.iter()
            .any(|k| k.starts_with("incoming/") && k.ends_with(".finished"))
    });
    assert!(
        keys.iter()
            .all(|k| k.starts_with("incoming/telemetry.log.v2.")),
        "{keys:?}"
    );

    let data = server.data_dir();
    let rel = "main/Firefox/beta/45.0/20151103030248.20151107.v4.log.0123456789abcdef0123456789abcdef.zst";
    put_partition_file(&data, rel, b"partition bytes");
    wait_for(&s3, "the partition file", |k| {
        k.contains(&format!("published/{rel}"))
    });

    server.stop();
}

#[test]
fn serve_exports_files_finished_during_shutdown_in_a_final_pass() {
    let s3 = S3Server::start();
    let mut cfg = s3.config("serve", "published/");
    cfg.interval_secs = 3600; // only the start-up pass and the final pass run in this test
    let mut server = TestServer::start(|c| c.s3 = Some(cfg));
    let deadline = Instant::now() + Duration::from_secs(30);
    while !bucket_exists(&s3) {
        assert!(
            Instant::now() < deadline,
            "the start-up pass never created the bucket"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(300)); // the start-up pass (nothing to send) is over
    let last = "main/Firefox/beta/45.0/20151103030248.20151108.v4.log.fedcba9876543210fedcba9876543210.zst";
    put_partition_file(&server.data_dir(), last, b"last one");
    assert!(keys_on(&s3).is_empty());
    server.stop();
    assert_eq!(
        keys_on(&s3),
        vec![format!("published/{last}")],
        "final pass on shutdown"
    );
}
