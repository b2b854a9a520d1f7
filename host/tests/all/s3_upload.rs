//! Export uploads against a real s3s-fs: streamed PUTs and streamed multipart uploads read back
//! byte-identical, re-runs upload nothing, confirmed local copies are deleted when configured.

use crate::s3_common::{get_bytes, list_all, pseudo_random, runtime, S3Server};
use telemetry_server::export::{journal::Journal, upload::Uploader, Exporter};
use telemetry_server::s3::{client, MIN_PART_SIZE};

const DIR: &str = "saved_session/Firefox/nightly/22.0a1";

/// A data dir with two partition files: one small (single streamed PUT), one of 2.5 parts (multipart).
fn data_dir_with_files() -> (tempfile::TempDir, Vec<(String, Vec<u8>)>) {
    let data = tempfile::tempdir().unwrap();
    let storage = data.path().join("storage").join(DIR);
    std::fs::create_dir_all(&storage).unwrap();
    let small =
        format!("{DIR}/20130226031002.20131011.v2.log.0123456789abcdef0123456789abcdef.zst");
    let large =
        format!("{DIR}/20130226031002.20131012.v2.log.fedcba9876543210fedcba9876543210.zst");
    let files = vec![
        (small, pseudo_random(300_000, 1)),
        (large, pseudo_random((MIN_PART_SIZE * 5 / 2) as usize, 2)),
    ];
    for (rel, bytes) in &files {
        std::fs::write(data.path().join("storage").join(rel), bytes).unwrap();
    }
    // Not finished yet: never exported.
    std::fs::write(
        storage.join("20130226031002.20131013.v2.log.00000000000000000000000000000000.zst.partial"),
        b"x",
    )
    .unwrap();
    (data, files)
}

#[test]
fn streamed_and_multipart_uploads_read_back_byte_identical() {
    let server = S3Server::start();
    let cfg = server.config("published", "v2/");
    let (data, files) = data_dir_with_files();
    let rt = runtime();
    rt.block_on(async {
        let exporter = Exporter::new(cfg.clone(), data.path()).unwrap();
        let report = exporter.run_once(&Default::default()).await.unwrap();
        assert!(report.failed.is_empty(), "{:?}", report.failed);
        assert_eq!(
            (report.files, report.uploaded),
            (2, 2),
            "the .partial file is not exported"
        );
        let total: usize = files.iter().map(|(_, b)| b.len()).sum();
        assert_eq!(report.bytes_uploaded, total as u64);

        let client = client::build(&cfg).unwrap();
        let listed = list_all(&client, "published", "").await;
        let expected: Vec<String> = files.iter().map(|(rel, _)| format!("v2/{rel}")).collect();
        assert_eq!(
            listed.keys().cloned().collect::<Vec<_>>(),
            expected,
            "keys = prefix + path under storage/"
        );
        for (rel, bytes) in &files {
            let key = format!("v2/{rel}");
            assert!(
                get_bytes(&client, "published", &key).await == *bytes,
                "{key} differs on read-back"
            );
            assert!(
                std::fs::read(server.object_file("published", &key)).unwrap() == *bytes,
                "{key} differs on disk"
            );
        }
        // The large file really went up in parts: a multipart ETag ends in -<part count>.
        let head = client
            .head_object()
            .bucket("published")
            .key(&expected[1])
            .send()
            .await
            .unwrap();
        assert!(
            head.e_tag().unwrap().trim_matches('"').ends_with("-3"),
            "etag {:?}",
            head.e_tag()
        );
        let head = client
            .head_object()
            .bucket("published")
            .key(&expected[0])
            .send()
            .await
            .unwrap();
        assert!(
            !head.e_tag().unwrap().contains('-'),
            "small file is a single PUT"
        );

        // Idempotent: a second pass (new exporter, journal reloaded) sends nothing.
        let again = Exporter::new(cfg.clone(), data.path())
            .unwrap()
            .run_once(&Default::default())
            .await
            .unwrap();
        assert_eq!(
            (again.uploaded, again.already_there, again.bytes_uploaded),
            (0, 2, 0)
        );
    });
}

#[test]
fn lost_journal_is_recovered_by_head_and_local_copies_go_only_after_confirmation() {
    let mut server = S3Server::start();
    let (data, files) = data_dir_with_files();
    let rt = runtime();
    rt.block_on(async {
        let cfg = server.config("published", "");
        Exporter::new(cfg.clone(), data.path())
            .unwrap()
            .run_once(&Default::default())
            .await
            .unwrap();
        // As if the process crashed after the uploads but before journaling them: the starts of
        // the uploads (`put`/`mpu` lines) are in the journal, the `done` lines are not.
        forget_confirmations(data.path());
        let cfg = telemetry_server::s3::S3Config {
            delete_after_upload: true,
            ..cfg
        };
        let report = Exporter::new(cfg.clone(), data.path())
            .unwrap()
            .run_once(&Default::default())
            .await
            .unwrap();
        assert_eq!(
            (report.uploaded, report.already_there, report.deleted),
            (0, 2, 2),
            "HEAD confirms, nothing re-sent"
        );
        for (rel, _) in &files {
            assert!(
                !data.path().join("storage").join(rel).exists(),
                "{rel} deleted after confirmation"
            );
        }
        assert!(
            data.path()
                .join("storage")
                .join(DIR)
                .read_dir()
                .unwrap()
                .count()
                == 1,
            "the .partial file stays"
        );

        // A file whose upload cannot be confirmed (server down) is kept.
        let kept = data
            .path()
            .join("storage/idle_daily/Firefox/release/8.0/20111101.20111102.v2.log.aa.zst");
        std::fs::create_dir_all(kept.parent().unwrap()).unwrap();
        std::fs::write(&kept, b"payload").unwrap();
        server.kill();
        let cfg = telemetry_server::s3::S3Config {
            max_attempts: 1,
            create_bucket: false,
            ..cfg
        };
        let report = Exporter::new(cfg, data.path())
            .unwrap()
            .run_once(&Default::default())
            .await
            .unwrap();
        assert_eq!(report.failed.len(), 1, "{report:?}");
        assert!(
            kept.exists(),
            "an unconfirmed upload never deletes the local copy"
        );
    });
}

/// Drops the journal's `done` lines, as if the process crashed after uploading but before
/// journaling: the next pass must ask S3 what it holds.
fn forget_confirmations(data: &std::path::Path) {
    let journal_path = data.join(telemetry_server::export::exporter::JOURNAL_PATH);
    let journal = std::fs::read_to_string(&journal_path).unwrap();
    let started: String = journal
        .lines()
        .filter(|l| !l.starts_with("done\t"))
        .map(|l| format!("{l}\n"))
        .collect();
    assert!(started.lines().count() >= 2, "{journal}");
    std::fs::write(&journal_path, started).unwrap();
}

#[test]
fn an_object_of_the_right_size_with_other_bytes_is_replaced_before_the_local_copy_goes() {
    use sha2::Digest;
    let server = S3Server::start();
    let (data, files) = data_dir_with_files();
    let rt = runtime();
    rt.block_on(async {
        let cfg = server.config("published", "");
        Exporter::new(cfg.clone(), data.path())
            .unwrap()
            .run_once(&Default::default())
            .await
            .unwrap();
        let client = client::build(&cfg).unwrap();
        for (rel, bytes) in &files {
            let head = client
                .head_object()
                .bucket("published")
                .key(rel)
                .send()
                .await
                .unwrap();
            let recorded = head.metadata().and_then(|m| m.get("sha256")).cloned();
            assert_eq!(
                recorded,
                Some(hex::encode(sha2::Sha256::digest(bytes))),
                "{rel}: the object records the file's SHA-256"
            );
            // Another file's bytes of exactly the same size (a truncated-and-padded write, an
            // older export, a mistaken copy) replace it on S3, with no digest.
            let other = pseudo_random(bytes.len(), 99);
            client
                .put_object()
                .bucket("published")
                .key(rel)
                .body(other.into())
                .send()
                .await
                .unwrap();
        }
        forget_confirmations(data.path());
        let cfg = telemetry_server::export::S3Config {
            delete_after_upload: true,
            ..cfg
        };
        let report = Exporter::new(cfg, data.path())
            .unwrap()
            .run_once(&Default::default())
            .await
            .unwrap();
        assert!(report.failed.is_empty(), "{:?}", report.failed);
        assert_eq!(
            (report.uploaded, report.already_there, report.deleted),
            (2, 0, 2),
            "same size is not the same content: both files are sent again before deletion"
        );
        for (rel, bytes) in &files {
            assert!(
                get_bytes(&client, "published", rel).await == *bytes,
                "{rel} holds the local bytes again"
            );
        }
    });
}

#[test]
fn streamed_multipart_of_a_file_larger_than_memory_chunks_is_exact() {
    // The uploader on its own: 4 parts of a file streamed from disk, parts in flight in parallel.
    let server = S3Server::start();
    let cfg = server.config("bulk", "");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.bin");
    let bytes = pseudo_random((MIN_PART_SIZE * 3 + 12345) as usize, 7);
    std::fs::write(&path, &bytes).unwrap();
    runtime().block_on(async {
        let client = client::build(&cfg).unwrap();
        client::ensure_bucket(&client, "bulk").await.unwrap();
        let journal_dir =
            cap_std::fs::Dir::open_ambient_dir(dir.path(), cap_std::ambient_authority()).unwrap();
        let journal = std::sync::Arc::new(Journal::open(journal_dir, "test journal").unwrap());
        let uploader = Uploader::new(client.clone(), journal.clone(), &cfg);
        let progress = telemetry_server::progress::ProgressCounter::default();
        let outcome = uploader
            .ensure_uploaded(&path, "bulk", "a/big.bin", &progress)
            .await
            .unwrap();
        assert_eq!(
            outcome,
            telemetry_server::export::upload::Outcome::Uploaded {
                bytes: bytes.len() as u64
            }
        );
        assert_eq!(
            progress.done(),
            bytes.len() as u64,
            "progress counts every part once"
        );
        assert!(get_bytes(&client, "bulk", "a/big.bin").await == bytes);
        assert!(
            journal.open_uploads().is_empty(),
            "completed upload closed in the journal"
        );
        assert_eq!(
            journal.done_size("bulk", "a/big.bin"),
            Some(bytes.len() as u64)
        );
    });
}
