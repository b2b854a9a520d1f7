//! `telemetry-server export` against a real s3s-fs: real converted pings exported under the
//! seed's key layout, raw logs under `incoming/`, and crash-resilience: the S3 server killed and
//! restarted mid-export, and the exporter itself killed mid-export and run again. Each ends with
//! exactly the local files on S3, byte-identical: nothing lost, nothing duplicated.

use crate::common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::s3_common::{
    converted_data_dir, get_bytes, list_all, local_files, pseudo_random, runtime, S3Server,
};
use telemetry_server::export::Exporter;
use telemetry_server::s3::requests::Requests;
use telemetry_server::s3::{client, S3Config, MIN_PART_SIZE};

fn export_command(server: &S3Server, data: &Path, extra: &[&str]) -> Command {
    let mut cmd = Command::new(common::binary());
    cmd.arg("export")
        .arg("--data-dir")
        .arg(data)
        .args(["--bucket", "telemetry-published"])
        .args(extra);
    cmd.envs(server.env())
        .env_remove("TELEMETRY_CONFIG")
        .env("RUST_LOG", "warn");
    cmd
}

fn run_export(server: &S3Server, data: &Path, extra: &[&str]) -> Output {
    let out = export_command(server, data, extra).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "export failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Asserts that the bucket holds exactly `expected` (key → bytes): no missing, extra or different object.
fn assert_bucket_is(server: &S3Server, bucket: &str, expected: &BTreeMap<String, Vec<u8>>) {
    runtime().block_on(async {
        let client = client::build(&server.config(bucket, "")).unwrap();
        let listed = list_all(&client, bucket, "").await;
        let want: Vec<&String> = expected.keys().collect();
        assert_eq!(
            listed.keys().collect::<Vec<_>>(),
            want,
            "object keys differ from the local files"
        );
        for (key, bytes) in expected {
            assert_eq!(listed[key], bytes.len() as u64, "{key}: size");
            assert!(
                get_bytes(&client, bucket, key).await == *bytes,
                "{key}: bytes differ"
            );
        }
    });
}

fn keyed(prefix: &str, files: &[(String, Vec<u8>)]) -> BTreeMap<String, Vec<u8>> {
    files
        .iter()
        .map(|(rel, bytes)| (format!("{prefix}{rel}"), bytes.clone()))
        .collect()
}

#[test]
fn export_of_real_converted_pings_follows_the_seed_layout() {
    let server = S3Server::start();
    let (data, files) = converted_data_dir(&["20150528", "20150529"], 100);
    // A finished raw log (the real v2 sample) waiting for conversion.
    std::fs::create_dir_all(data.path().join("raw")).unwrap();
    let raw_name = "telemetry.log.v2.web1.1234_0.1432830425610.finished";
    let raw = std::fs::read(common::data(
        "pings/rawlog-v2.saved-session.Fx40.0a2-aurora.2015-05.uberi.finished",
    ))
    .unwrap();
    std::fs::write(data.path().join("raw").join(raw_name), &raw).unwrap();

    let out = run_export(
        &server,
        data.path(),
        &["--prefix", "v2", "--raw-logs", "--delete-after-upload"],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let total = files.len() + 1;
    assert!(
        stdout.starts_with(&format!("exported {total} of {total} files")),
        "{stdout}"
    );

    let mut expected = keyed("v2/", &files);
    expected.insert(format!("incoming/{raw_name}"), raw);
    assert_bucket_is(&server, "telemetry-published", &expected);
    // Keys are the seed's: <reason>/<appName>/<channel>/<version>/<buildid>.<date>.v<N>.log.<uuid32>.zst
    let layout = regex_like_seed_layout();
    for key in expected.keys().filter(|k| k.starts_with("v2/")) {
        assert!(layout(&key[3..]), "{key} does not follow the seed layout");
    }
    assert!(
        expected
            .keys()
            .any(|k| k.contains("/saved_session/Firefox/")),
        "sanitised reason in keys"
    );

    // Confirmed partition files are gone locally; the unconverted raw log stays for conversion.
    assert!(local_files(&data.path().join("storage")).is_empty());
    assert!(
        data.path().join("raw").join(raw_name).exists(),
        "unconverted raw logs are never deleted by export"
    );

    // Idempotent: a second run sends nothing.
    let out = run_export(&server, data.path(), &["--prefix", "v2", "--raw-logs"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.starts_with("exported 0 of 1 files"), "{stdout}");
}

/// `<d>/<d>/<d>/<d>/<build>.<yyyymmdd>.v<N>.log.<32 hex>.zst`.
fn regex_like_seed_layout() -> impl Fn(&str) -> bool {
    |rel: &str| {
        let parts: Vec<&str> = rel.split('/').collect();
        let Some(name) = parts.last() else {
            return false;
        };
        let fields: Vec<&str> = name.split('.').collect();
        parts.len() == 5
            && parts[..4].iter().all(|p| {
                !p.is_empty()
                    && p.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"_.".contains(&b))
            })
            && fields.len() == 6
            && fields[1].len() == 8
            && fields[1].bytes().all(|b| b.is_ascii_digit())
            && fields[2].starts_with('v')
            && fields[3] == "log"
            && fields[4].len() == 32
            && fields[5] == "zst"
    }
}

/// A data dir with many partition files (small ones and two multipart-sized ones).
fn many_files(data: &Path, small: usize) -> Vec<(String, Vec<u8>)> {
    let mut files = Vec::new();
    for i in 0..small {
        let rel = format!(
            "main/Firefox/release/45.0/2015110600{:04}.20151107.v4.log.{:032x}.zst",
            i % 7,
            i
        );
        files.push((rel, pseudo_random(100_000 + i * 37, i as u64 + 1)));
    }
    for i in 0..2 {
        let rel = format!(
            "main/Firefox/nightly/54.0a1/20170101000000.2017010{i}.v4.log.{:032x}.zst",
            1000 + i
        );
        files.push((
            rel,
            pseudo_random((MIN_PART_SIZE * 2 + 1000) as usize, 99 + i as u64),
        ));
    }
    for (rel, bytes) in &files {
        let path = data.join("storage").join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
    }
    files.sort();
    files
}

/// Objects s3s-fs has stored so far in `bucket` (its plain files).
fn stored_objects(server: &S3Server, bucket: &str) -> usize {
    let root = server.root.path().join(bucket);
    if !root.exists() {
        return 0;
    }
    local_files(&root).len()
}

fn wait_for_objects(server: &S3Server, bucket: &str, at_least: usize, export: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while stored_objects(server, bucket) < at_least {
        assert!(
            export.try_wait().unwrap().is_none(),
            "export ended before {at_least} objects were stored"
        );
        assert!(Instant::now() < deadline, "export made no progress");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn s3_server_killed_mid_export_and_restarted_loses_and_duplicates_nothing() {
    let mut server = S3Server::start();
    let data = tempfile::tempdir().unwrap();
    let files = many_files(data.path(), 300);
    let mut export = export_command(
        &server,
        data.path(),
        &[
            "--concurrency",
            "1",
            "--part-size-mib",
            "5",
            "--multipart-threshold-mib",
            "5",
        ],
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    wait_for_objects(&server, "telemetry-published", 20, &mut export);
    server.kill();
    let at_kill = stored_objects(&server, "telemetry-published");
    assert!(
        at_kill < files.len(),
        "the export must still be running when the server dies ({at_kill} stored)"
    );
    std::thread::sleep(Duration::from_millis(1500));
    server.restart();
    let out = export.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "export did not recover: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(&format!("of {} files", files.len())) && stdout.contains("0 failed"),
        "{stdout}"
    );
    assert_bucket_is(&server, "telemetry-published", &keyed("", &files));
}

#[test]
fn exporter_killed_mid_export_resumes_without_loss_or_duplicates() {
    let server = S3Server::start();
    let data = tempfile::tempdir().unwrap();
    let files = many_files(data.path(), 300);
    let args = [
        "--concurrency",
        "1",
        "--part-size-mib",
        "5",
        "--multipart-threshold-mib",
        "5",
        "--delete-after-upload",
    ];
    let mut export = export_command(&server, data.path(), &args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for_objects(&server, "telemetry-published", 30, &mut export);
    export.kill().unwrap(); // SIGKILL: no chance to clean up
    export.wait().unwrap();
    let left = local_files(&data.path().join("storage")).len();
    assert!(
        left > 0 && left < files.len(),
        "killed mid-way: {left} of {} files left locally",
        files.len()
    );

    let out = run_export(&server, data.path(), &args);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(&format!("of {left} files")) && stdout.contains("0 failed"),
        "{stdout}"
    );
    assert_bucket_is(&server, "telemetry-published", &keyed("", &files));
    assert!(
        local_files(&data.path().join("storage")).is_empty(),
        "every confirmed file deleted"
    );
    let journal = std::fs::read_to_string(data.path().join("export/journal")).unwrap();
    assert!(
        !journal.lines().any(|l| l.starts_with("mpu\t")),
        "no multipart upload left open:\n{journal}"
    );
    // The next start trims the journal to the files still on disk: none, so it is empty.
    let out = run_export(&server, data.path(), &args);
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("exported 0 of 0 files"));
    let journal = std::fs::read_to_string(data.path().join("export/journal")).unwrap();
    assert_eq!(journal, "", "entries of deleted files are dropped");
}

/// `count` small files of pseudo-random bytes under `storage/`, named by `round`: (rel, bytes).
fn small_files(data: &Path, round: usize, count: usize) -> Vec<(String, Vec<u8>)> {
    (0..count)
        .map(|i| {
            let rel = format!(
                "main/Firefox/release/45.0/20151106{round:06}.20151107.v4.log.{:032x}.zst",
                round * 1000 + i
            );
            let bytes = pseudo_random(2_000 + i * 13, (round * 1000 + i) as u64 + 7);
            let path = data.join("storage").join(&rel);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, &bytes).unwrap();
            (rel, bytes)
        })
        .collect()
}

fn in_process_config(server: &S3Server, delete_after_upload: bool) -> S3Config {
    S3Config {
        delete_after_upload,
        ..server.config("telemetry-published", "")
    }
}

#[test]
fn journal_stays_bounded_over_many_exports_and_a_small_file_costs_one_request() {
    let server = S3Server::start();
    let data = tempfile::tempdir().unwrap();
    let journal_path = data.path().join("export/journal");
    let rt = runtime();
    let mut all = Vec::new();
    rt.block_on(async {
        // Compacted from 2 KiB on, so it happens inside passes too.
        let exporter =
            Exporter::with_journal_compaction(in_process_config(&server, true), data.path(), 2048)
                .unwrap();
        let mut largest = 0;
        for round in 0..10 {
            all.extend(small_files(data.path(), round, 20));
            let report = exporter.run_once(&Default::default()).await.unwrap();
            assert_eq!(
                (report.uploaded, report.deleted, report.failed.len()),
                (20, 20, 0),
                "{report:?}"
            );
            if round > 0 {
                // One PUT per small file: no HEAD before (never in flight) nor after.
                assert_eq!(
                    report.requests,
                    Requests {
                        put: 20,
                        ..Requests::default()
                    },
                    "round {round}"
                );
            }
            largest = largest.max(std::fs::metadata(&journal_path).unwrap().len());
        }
        // 200 files exported: an append-only journal would hold 400 lines (about 44 KB).
        assert!(largest < 4096, "the journal reached {largest} bytes");
        assert_eq!(
            exporter.journal().entries(),
            0,
            "every confirmed, deleted file forgotten"
        );
    });
    assert_bucket_is(&server, "telemetry-published", &keyed("", &all));
    // A restart trims what the last run appended for files it deleted.
    rt.block_on(async {
        let exporter = Exporter::new(in_process_config(&server, true), data.path()).unwrap();
        let report = exporter.run_once(&Default::default()).await.unwrap();
        assert_eq!((report.files, report.requests.put), (0, 0));
    });
    assert_eq!(
        std::fs::read_to_string(&journal_path).unwrap(),
        "",
        "nothing left to remember"
    );
}

#[test]
fn files_kept_locally_stay_in_the_journal_and_cost_no_request_again() {
    let server = S3Server::start();
    let data = tempfile::tempdir().unwrap();
    let files = small_files(data.path(), 0, 30);
    let rt = runtime();
    for run in 0..2 {
        rt.block_on(async {
            // A new exporter each run: the start-up trim keeps entries of files still on disk.
            let exporter = Exporter::with_journal_compaction(
                in_process_config(&server, false),
                data.path(),
                1024,
            )
            .unwrap();
            let pass = exporter.run_once(&Default::default()).await.unwrap();
            let again = exporter.run_once(&Default::default()).await.unwrap();
            if run == 0 {
                assert_eq!(
                    (pass.uploaded, pass.requests.put, pass.requests.head),
                    (30, 30, 1),
                    "HEAD is the bucket check"
                );
            } else {
                assert_eq!(
                    (
                        pass.already_there,
                        pass.requests.put + pass.requests.upload_part
                    ),
                    (30, 0),
                    "{pass:?}"
                );
            }
            assert_eq!(
                (again.already_there, again.requests.total()),
                (30, 0),
                "{again:?}"
            );
            assert_eq!(exporter.journal().entries(), 30);
        });
    }
    assert_bucket_is(&server, "telemetry-published", &keyed("", &files));
}

#[test]
fn only_keys_the_journal_says_were_in_flight_are_checked_with_head() {
    let server = S3Server::start();
    let data = tempfile::tempdir().unwrap();
    let files = small_files(data.path(), 0, 3);
    let rt = runtime();
    // Objects 0 and 1 already on S3 (an earlier run uploaded them, with their SHA-256 as
    // metadata, then crashed or lost its journal).
    rt.block_on(async {
        use sha2::Digest;
        let client = client::build(&server.config("telemetry-published", "")).unwrap();
        client::ensure_bucket(&client, "telemetry-published")
            .await
            .unwrap();
        for (rel, bytes) in &files[..2] {
            client
                .put_object()
                .bucket("telemetry-published")
                .key(rel)
                .metadata("sha256", hex::encode(sha2::Sha256::digest(bytes)))
                .body(bytes.clone().into())
                .send()
                .await
                .unwrap();
        }
    });
    // The crashed run had journaled the start of the uploads of 0 and 2 (a torn line at the end).
    std::fs::create_dir_all(data.path().join("export")).unwrap();
    let journal = format!(
        "put\ttelemetry-published\t{}\t1\nput\ttelemetry-published\t{}\t1\ndone\ttele",
        files[0].0, files[2].0
    );
    std::fs::write(data.path().join("export/journal"), journal).unwrap();
    rt.block_on(async {
        let exporter = Exporter::new(in_process_config(&server, true), data.path()).unwrap();
        let report = exporter.run_once(&Default::default()).await.unwrap();
        // 0: in flight, HEAD finds it: kept. 2: in flight, HEAD finds nothing: PUT.
        // 1: unknown to the journal: PUT again, the same bytes to the same key.
        assert_eq!(
            (report.already_there, report.uploaded, report.deleted),
            (1, 2, 3),
            "{report:?}"
        );
        assert_eq!(
            (report.requests.head - 1, report.requests.put),
            (2, 2),
            "{:?}",
            report.requests
        );
    });
    assert_bucket_is(&server, "telemetry-published", &keyed("", &files));
}

/// `convert --export` stores the real raw log and then uploads exactly the partition files it
/// wrote, under the `[s3]` section of `--config`; with no bucket it refuses before converting.
#[test]
fn convert_with_export_uploads_what_it_stored_and_checks_the_config_first() {
    let server = S3Server::start();
    let raw = common::data("pings/rawlog-v2.saved-session.Fx40.0a2-aurora.2015-05.uberi.finished");
    let dir = tempfile::tempdir().unwrap();
    let convert = |config: &str, data: &Path| {
        let config_file = dir.path().join("server.toml");
        std::fs::write(&config_file, config).unwrap();
        Command::new(common::binary())
            .args(["convert", "--json", "--export", "--config"])
            .arg(&config_file)
            .arg("--data-dir")
            .arg(data)
            .arg(&raw)
            .envs(server.env())
            .output()
            .unwrap()
    };

    let refused = dir.path().join("refused");
    let out = convert("[s3]\nprefix = \"v2/\"\n", &refused);
    assert_eq!(out.status.code(), Some(2), "no bucket is a usage error");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("bucket"), "{stderr}");
    assert!(
        !refused.join("storage").exists(),
        "nothing converted before the config was checked"
    );

    let data = dir.path().join("data");
    let out = convert("[s3]\nbucket = \"published\"\nprefix = \"v2/\"\n", &data);
    assert!(
        out.status.code().is_some_and(|c| c <= 1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let stored = local_files(&data.join("storage"));
    assert!(!stored.is_empty(), "{summary}");
    assert_eq!(summary["export"]["files"], stored.len());
    assert_eq!(summary["export"]["uploaded"], stored.len());
    assert_eq!(summary["export"]["failed"], 0);
    assert_bucket_is(&server, "published", &keyed("v2/", &stored));
}
