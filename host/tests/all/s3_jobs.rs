//! Jobs straight from S3 against a real s3s-fs: `S3Source` lists with partition pruning over
//! more than 1,000 keys (several pages), streams the same records as the local copy (and resumes
//! a read the server cut off), and a real Wasm job gives the same output over S3 as over the
//! local data, in-process and through `telemetry-server job run --data s3://…`.

use crate::common;
use crate::jobs_support;

use std::io::{BufRead, Read};
use std::process::Command;

use crate::jobs_support::{all_filter, filter_json, guest};
use crate::s3_common::{pseudo_random, runtime, S3Server};
use telemetry_server::export::Exporter;
use telemetry_server::jobs::{self, CancelToken, Progress, RunOptions};
use telemetry_server::s3::{client, S3Source};
use telemetry_server::storage::{DataDir, LocalSource, PartitionSource, Schema};

/// Exports `data` (its `storage/`) to `bucket` under `prefix` and returns a source over it.
pub(crate) fn export_and_open(
    server: &S3Server,
    data: &std::path::Path,
    bucket: &str,
    prefix: &str,
) -> S3Source {
    // The exporter keeps its journal in the data dir; use a copy so fixtures stay untouched.
    let copy = tempfile::tempdir().unwrap();
    copy_dir(&data.join("storage"), &copy.path().join("storage"));
    let cfg = server.config(bucket, prefix);
    runtime().block_on(async {
        let report = Exporter::new(cfg.clone(), copy.path())
            .unwrap()
            .run_once(&Default::default())
            .await
            .unwrap();
        assert!(
            report.failed.is_empty() && report.uploaded > 0,
            "{report:?}"
        );
    });
    S3Source::new(&cfg).unwrap()
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &to.join(entry.file_name()));
        } else {
            std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
        }
    }
}

fn local_source(data: &std::path::Path) -> LocalSource {
    LocalSource::new(DataDir::open(data).unwrap().sub("storage").unwrap())
}

fn read_all(
    source: &dyn PartitionSource,
    file: &telemetry_server::storage::PartitionFile,
) -> Vec<u8> {
    let mut out = Vec::new();
    source.open(file).unwrap().read_to_end(&mut out).unwrap();
    out
}

#[test]
fn listing_prunes_by_key_and_pages_past_1000_keys() {
    let server = S3Server::start();
    let cfg = server.config("many", "pub/");
    let wanted_dir = "pub/main/Firefox/release/45.0";
    let mut keys: Vec<(String, bool)> = (0..1100)
        .map(|i| {
            (
                format!(
                    "{wanted_dir}/20151106{:06}.201511{:02}.v4.log.{i:032x}.zst",
                    i % 5,
                    1 + i % 28
                ),
                true,
            )
        })
        .collect();
    // Pruned by the filter: another channel, another reason, and a file outside the layout.
    keys.extend((0..30).map(|i| {
        (
            format!(
                "pub/main/Firefox/beta/45.0/2015110600000{}.20151107.v4.log.{i:032x}.zst",
                i % 3
            ),
            false,
        )
    }));
    keys.extend((0..30).map(|i| {
        (
            format!("pub/crash/Firefox/release/45.0/20151106000000.20151107.v4.log.{i:032x}.zst"),
            false,
        )
    }));
    keys.push(("pub/main/Firefox/release/45.0/notes.txt".into(), false));
    runtime().block_on(async {
        let client = client::build(&cfg).unwrap();
        client::ensure_bucket(&client, "many").await.unwrap();
        let mut puts = tokio::task::JoinSet::new();
        for (key, _) in keys.clone() {
            let client = client.clone();
            puts.spawn(async move {
                client
                    .put_object()
                    .bucket("many")
                    .key(key)
                    .body(b"x".to_vec().into())
                    .send()
                    .await
                    .unwrap()
            });
            if puts.len() >= 32 {
                puts.join_next().await.unwrap().unwrap();
            }
        }
        while let Some(put) = puts.join_next().await {
            put.unwrap();
        }
    });
    let filter = Schema::from_json(&filter_json(&[(0, "\"main\""), (2, "[\"release\"]")])).unwrap();
    let source = S3Source::new(&cfg).unwrap();
    let listed = source.list(&filter).unwrap();
    let mut expected: Vec<String> = keys
        .iter()
        .filter(|(_, w)| *w)
        .map(|(k, _)| k["pub/".len()..].to_string())
        .collect();
    expected.sort();
    assert_eq!(
        listed.len(),
        1100,
        "every key of the wanted partition, across pages"
    );
    assert_eq!(
        listed.iter().map(|f| f.path.clone()).collect::<Vec<_>>(),
        expected
    );
    assert!(listed
        .iter()
        .all(|f| f.size == 1 && f.dims[0] == "main" && f.dims[2] == "release"));
    // A date range on the file-name level prunes too.
    let dated = Schema::from_json(&filter_json(&[
        (0, "\"main\""),
        (5, r#"{"min":"20151101","max":"20151103"}"#),
    ]))
    .unwrap();
    let listed = source.list(&dated).unwrap();
    let in_range = expected
        .iter()
        .filter(|k| {
            ["20151101", "20151102", "20151103"]
                .iter()
                .any(|d| k.contains(&format!(".{d}.")))
        })
        .count();
    assert_eq!(listed.len(), in_range);
}

#[test]
fn s3_source_streams_the_same_records_as_the_local_copy() {
    let server = S3Server::start();
    let data = jobs_support::converted_data();
    let s3 = export_and_open(&server, data, "telemetry", "published");
    let local = local_source(data);
    for filter in [
        all_filter(),
        Schema::from_json(&filter_json(&[(0, "[\"main\", \"saved-session\"]")])).unwrap(),
    ] {
        let (on_s3, on_disk) = (s3.list(&filter).unwrap(), local.list(&filter).unwrap());
        assert!(!on_disk.is_empty());
        assert_eq!(on_s3, on_disk, "same files, dimensions and sizes");
        for file in &on_disk {
            assert!(
                read_all(&s3, file) == read_all(&local, file),
                "{}: decompressed records differ",
                file.path
            );
        }
    }
    // Readers stream independently; several open at once (bounded fetches) still read right.
    let files = local.list(&all_filter()).unwrap();
    let mut readers: Vec<_> = files.iter().take(6).map(|f| s3.open(f).unwrap()).collect();
    let firsts: Vec<String> = readers
        .iter_mut()
        .map(|r| {
            let mut l = String::new();
            r.read_line(&mut l).unwrap();
            l
        })
        .collect();
    for (file, first) in files.iter().zip(&firsts) {
        let mut expected = String::new();
        local.open(file).unwrap().read_line(&mut expected).unwrap();
        assert_eq!(first, &expected);
    }
}

#[test]
fn a_read_cut_off_by_the_server_resumes_where_it_stopped() {
    let mut server = S3Server::start();
    let cfg = server.config("resume", "");
    // A plain (`.log`) partition file, big enough that most of it is still unread when the server dies.
    let body: Vec<u8> = pseudo_random(48 << 20, 3)
        .chunks(100)
        .enumerate()
        .flat_map(|(i, c)| format!("id{i}\t{{\"x\":\"{}\"}}\n", hex::encode(&c[..20])).into_bytes())
        .collect();
    let key = "main/Firefox/release/45.0/20151106000000.20151107.v4.log.0123456789abcdef0123456789abcdef.log";
    runtime().block_on(async {
        let client = client::build(&cfg).unwrap();
        client::ensure_bucket(&client, "resume").await.unwrap();
        client
            .put_object()
            .bucket("resume")
            .key(key)
            .body(body.clone().into())
            .send()
            .await
            .unwrap();
    });
    let source = S3Source::new(&cfg).unwrap();
    let files = source.list(&all_filter()).unwrap();
    assert_eq!(files.len(), 1);
    let mut reader = source.open(&files[0]).unwrap();
    let mut got = vec![0u8; 4096];
    reader.read_exact(&mut got).unwrap();
    server.kill();
    std::thread::sleep(std::time::Duration::from_millis(300));
    server.restart();
    reader.read_to_end(&mut got).unwrap();
    assert!(
        source.resumed_reads() >= 1,
        "the read was cut off and resumed with a Range GET"
    );
    assert_eq!(
        got.len(),
        body.len(),
        "every byte once: nothing lost, nothing repeated"
    );
    assert!(got == body);
}

#[test]
fn a_job_over_s3_gives_the_same_output_as_over_the_local_copy() {
    let server = S3Server::start();
    let data = jobs_support::converted_data();
    let s3: std::sync::Arc<dyn PartitionSource> =
        std::sync::Arc::new(export_and_open(&server, data, "jobs", "v2/"));
    let local: std::sync::Arc<dyn PartitionSource> = std::sync::Arc::new(local_source(data));
    let opts = RunOptions {
        workers: 2,
        ..RunOptions::new(all_filter())
    };
    let run = |source| {
        jobs::run(
            jobs_support::runtime(),
            &guest("os-distribution-rust"),
            source,
            &opts,
            &Progress::default(),
            &CancelToken::new(),
        )
        .unwrap()
    };
    let (on_s3, on_disk) = (run(s3), run(local));
    assert!(!on_disk.output.is_empty());
    assert_eq!(
        String::from_utf8_lossy(&on_s3.output),
        String::from_utf8_lossy(&on_disk.output)
    );
    assert_eq!(on_s3.cost.records_read, on_disk.cost.records_read);

    // The same through the CLI: `job run --data s3://jobs/v2` vs `--data-dir <local>`.
    let filter = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(filter.path(), filter_json(&[])).unwrap();
    let cache = tempfile::tempdir().unwrap();
    let cli = |data_args: &[&str]| {
        let out = Command::new(common::binary())
            .args(["job", "run"])
            .arg(common::guest("os-distribution-rust"))
            .args(data_args)
            .arg("--filter")
            .arg(filter.path())
            .arg("--cache-dir")
            .arg(cache.path())
            .envs(server.env())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "job run failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    };
    let from_s3 = cli(&["--data", "s3://jobs/v2"]);
    let from_disk = cli(&["--data-dir", data.to_str().unwrap()]);
    assert!(!from_disk.is_empty());
    assert_eq!(
        String::from_utf8_lossy(&from_s3),
        String::from_utf8_lossy(&from_disk)
    );
}

/// Every stored line under a data directory's `storage/`, sorted.
fn stored_lines(data: &std::path::Path) -> Vec<String> {
    let source = local_source(data);
    let mut lines = Vec::new();
    for file in source.list(&all_filter()).unwrap() {
        lines.extend(source.open(&file).unwrap().lines().map(Result::unwrap));
    }
    lines.sort();
    lines
}

/// `convert s3://bucket/prefix/` reads the raw logs exported there (streamed) and stores what
/// converting the local copies stores; objects that are not finished raw logs are left alone.
#[test]
fn convert_from_s3_equals_converting_the_local_copy() {
    let server = S3Server::start();
    let logs = [
        (
            "telemetry.log.v1.host.1.1378822911255.finished",
            common::data("seed/worker-test-data/telemetry1.log"),
        ),
        (
            "telemetry.log.v2.osboxes.1965.1432830357331.finished",
            common::data("pings/rawlog-v2.saved-session.Fx40.0a2-aurora.2015-05.uberi.finished"),
        ),
    ];
    let local = tempfile::tempdir().unwrap();
    let cfg = server.config("raw", "incoming/");
    runtime().block_on(async {
        let client = client::build(&cfg).unwrap();
        client::ensure_bucket(&client, "raw").await.unwrap();
        for (name, path) in &logs {
            let body = std::fs::read(path).unwrap();
            std::fs::write(local.path().join(name), &body).unwrap();
            client
                .put_object()
                .bucket("raw")
                .key(format!("incoming/{name}"))
                .body(body.into())
                .send()
                .await
                .unwrap();
        }
        client
            .put_object()
            .bucket("raw")
            .key("incoming/telemetry.log.v2.x.1.2")
            .body(b"being written".to_vec().into())
            .send()
            .await
            .unwrap();
    });
    let convert = |inputs: &[String]| {
        let data = tempfile::tempdir().unwrap();
        let out = Command::new(common::binary())
            .args(["convert", "--json", "--data-dir"])
            .arg(data.path())
            .args(inputs)
            .envs(server.env())
            .output()
            .unwrap();
        assert!(
            out.status.code().is_some_and(|c| c <= 1),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        summary.as_object_mut().unwrap().remove("error_file");
        (summary, stored_lines(data.path()))
    };
    let (s3_summary, s3_lines) = convert(&["s3://raw/incoming/".to_owned()]);
    let local_inputs: Vec<String> = logs
        .iter()
        .map(|(name, _)| local.path().join(name).display().to_string())
        .collect();
    let (local_summary, local_lines) = convert(&local_inputs);
    assert!(local_lines.len() >= 2, "{local_summary}");
    assert_eq!(s3_summary, local_summary);
    assert_eq!(s3_lines, local_lines);
}
