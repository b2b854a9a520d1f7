//! The jobs' column cache (`jobs::column_cache`, docs/jobs/column-cache.md) over real converted
//! pings: every example job gives the same bytes with and without it, a second run reads its
//! fields from the cache, a replaced partition file is read again, unreadable cache files are
//! never used (also after a real `job run` is killed while writing them), the budget holds,
//! `job run --no-column-cache` leaves the cache alone, and `s3://` data is cached locally.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use crate::common;
use crate::jobs_support::{all_with, converted_data, output_text, run_guest, tiny_data};
use telemetry_server::jobs::{ColumnCache, JobOutput, RunOptions};
use telemetry_server::storage::DataDir;

/// The example jobs of every language (scripts/build-guests.sh), with their parameter.
const EXAMPLE_JOBS: [(&str, &str); 6] = [
    ("os-distribution-rust", ""),
    ("os-distribution-c", ""),
    ("os-distribution-js", ""),
    ("os-distribution-py", ""),
    ("histogram-aggregate-rust", "GC_MS"),
    ("simple-counter-rust", ""),
];

fn cache_in(dir: &Path, budget: u64) -> Arc<ColumnCache> {
    Arc::new(ColumnCache::open(&DataDir::open(dir).unwrap(), budget).unwrap())
}

fn with_cache(workers: usize, cache: &Arc<ColumnCache>) -> RunOptions {
    RunOptions {
        column_cache: Some(cache.clone()),
        ..all_with(workers)
    }
}

fn with_param(param: &str, opts: RunOptions) -> RunOptions {
    RunOptions {
        param: param.to_string(),
        ..opts
    }
}

/// Bytes of every file under `dir`.
fn tree_bytes(dir: &Path) -> u64 {
    let mut total = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let meta = entry.metadata().unwrap();
        total += if meta.is_dir() {
            tree_bytes(&entry.path())
        } else {
            meta.len()
        };
    }
    total
}

fn same_counts(a: &JobOutput, b: &JobOutput) {
    let (a, b) = (&a.cost, &b.cost);
    assert_eq!(
        (a.files_read, a.records_read, a.bytes_read, a.emits),
        (b.files_read, b.records_read, b.bytes_read, b.emits),
        "the cache changes no count"
    );
}

#[test]
fn every_example_job_gives_the_same_bytes_and_the_second_run_reads_the_cache() {
    let data = converted_data();
    for (job, param) in EXAMPLE_JOBS {
        let plain = run_guest(data, job, &with_param(param, all_with(2))).unwrap();
        assert!(!plain.cost.column_cache.enabled);
        let dir = tempfile::tempdir().unwrap();
        let cache = cache_in(dir.path(), 1 << 30);
        let first = run_guest(data, job, &with_param(param, with_cache(2, &cache))).unwrap();
        let second = run_guest(data, job, &with_param(param, with_cache(3, &cache))).unwrap();
        assert_eq!(
            first.output, plain.output,
            "{job}: first run with the cache"
        );
        assert_eq!(second.output, plain.output, "{job}: run from the cache");
        assert!(!plain.output.is_empty(), "{job}: the job produced output");
        same_counts(&plain, &second);
        let c1 = &first.cost.column_cache;
        let c2 = &second.cost.column_cache;
        // Every example uses the cache, also those importing `histograms` (JavaScript and
        // Python components import every interface; histogram-aggregate calls it).
        assert!(c1.enabled && c2.enabled, "{job}: {c1:?}");
        assert_eq!(
            (c1.hits, c1.misses, c1.writes),
            (0, plain.cost.files_read, plain.cost.files_read),
            "{job}: the first run writes every file"
        );
        assert_eq!(c2.hits, plain.cost.files_read, "{job}: {c2:?}");
        assert!(
            c2.bytes_from_cache * 100 >= second.cost.bytes_read * 95,
            "{job}: {} of {} bytes from the cache",
            c2.bytes_from_cache,
            second.cost.bytes_read
        );
        assert!(
            c2.cache_file_bytes * 5 < second.cost.bytes_read,
            "{job}: the columns ({} bytes) are much smaller than the JSON ({} bytes)",
            c2.cache_file_bytes,
            second.cost.bytes_read
        );
        assert_eq!(
            second.cost.compressed_bytes_read, 0,
            "{job}: no partition file opened"
        );
    }
}

#[test]
fn a_sampled_run_from_the_cache_keeps_the_same_records() {
    let data = converted_data();
    let sampled = |opts: RunOptions| {
        let opts = RunOptions {
            sample: telemetry_server::jobs::Sample::new(0.3).unwrap(),
            ..opts
        };
        run_guest(data, "os-distribution-rust", &opts).unwrap()
    };
    let plain = sampled(all_with(2));
    let dir = tempfile::tempdir().unwrap();
    let cache = cache_in(dir.path(), 1 << 30);
    assert_eq!(
        sampled(with_cache(2, &cache)).cost.column_cache.writes,
        0,
        "a sampled run reads only some records, so it caches nothing"
    );
    run_guest(data, "os-distribution-rust", &with_cache(2, &cache)).unwrap();
    let from_cache = sampled(with_cache(2, &cache));
    assert!(from_cache.cost.column_cache.hits > 0);
    assert_eq!(from_cache.output, plain.output);
    assert_eq!(
        from_cache.cost.records_sampled_out,
        plain.cost.records_sampled_out
    );
}

/// The one partition file of a data directory made by `tiny_data`.
fn only_partition_file(data: &Path) -> std::path::PathBuf {
    let mut stack = vec![data.join("storage")];
    let mut found = Vec::new();
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                found.push(path);
            }
        }
    }
    assert_eq!(found.len(), 1, "{found:?}");
    found.pop().unwrap()
}

fn ping(os: &str) -> String {
    format!(
        r#"{{"environment":{{"system":{{"os":{{"name":"{os}"}}}}}},"application":{{"version":"45.0"}}}}"#
    )
}

#[test]
fn a_replaced_partition_file_is_read_again() {
    let (linux, windows) = (ping("Linux"), ping("Wind0"));
    let data = tiny_data(&[("a", &linux), ("b", &linux), ("c", &windows)]);
    let cache = cache_in(data.path(), 1 << 30);
    let run = || run_guest(data.path(), "os-distribution-rust", &with_cache(1, &cache)).unwrap();
    assert_eq!(output_text(&run()), "Linux,45.0\t2\nWind0,45.0\t1\n");
    assert_eq!(run().cost.column_cache.hits, 1);

    // Same path, other contents (one OS renamed, same length), a later modification time.
    let file = only_partition_file(data.path());
    let before = std::fs::metadata(&file).unwrap();
    let darwin = ping("Darwn");
    let text = format!("a\t{darwin}\nb\t{linux}\nc\t{windows}\n");
    let compressed = zstd::encode_all(text.as_bytes(), 3).unwrap();
    let tmp = file.with_extension("replacing");
    std::fs::write(&tmp, &compressed).unwrap();
    std::fs::File::options()
        .write(true)
        .open(&tmp)
        .unwrap()
        .set_modified(before.modified().unwrap() + std::time::Duration::from_secs(5))
        .unwrap();
    std::fs::rename(&tmp, &file).unwrap();

    let after = run();
    assert_eq!(
        output_text(&after),
        "Darwn,45.0\t1\nLinux,45.0\t1\nWind0,45.0\t1\n",
        "the new contents are read"
    );
    let c = &after.cost.column_cache;
    assert_eq!((c.hits, c.misses, c.writes), (0, 1, 1), "{c:?}");
    assert_eq!(run().cost.column_cache.hits, 1, "and cached again");
}

#[test]
fn unreadable_or_partial_cache_files_are_never_used() {
    let data = converted_data();
    let dir = tempfile::tempdir().unwrap();
    let cache = cache_in(dir.path(), 1 << 30);
    let plain = run_guest(data, "os-distribution-rust", &with_cache(2, &cache)).unwrap();
    // What a writer killed mid-way could leave: a temporary file, and (were the rename not
    // atomic) cut or foreign files in place. Cut every rows file, and fill one field file with
    // garbage.
    let columns = dir.path().join("columns");
    std::fs::write(columns.join("tmp/partial"), b"ARROW1 half").unwrap();
    let mut damaged = 0;
    for key in std::fs::read_dir(&columns).unwrap() {
        let key = key.unwrap().path();
        if key.ends_with("tmp") {
            continue;
        }
        let rows = key.join("rows.arrow");
        let bytes = std::fs::read(&rows).unwrap();
        std::fs::write(&rows, &bytes[..bytes.len() / 2]).unwrap();
        damaged += 1;
    }
    assert!(damaged > 1);
    let again = run_guest(data, "os-distribution-rust", &with_cache(2, &cache)).unwrap();
    assert_eq!(again.output, plain.output);
    let c = &again.cost.column_cache;
    assert_eq!(
        (c.hits, c.writes, c.bad_files),
        (0, damaged, damaged),
        "{c:?}"
    );
    assert!(cache.stats.bad_files.get() >= damaged);
    let third = run_guest(data, "os-distribution-rust", &with_cache(2, &cache)).unwrap();
    assert_eq!(
        third.cost.column_cache.hits, damaged,
        "rewritten files are used"
    );
    assert_eq!(third.output, plain.output);
}

#[test]
fn eviction_keeps_the_budget() {
    let data = converted_data();
    // Measure what the whole data set's columns take, then give a third of that.
    let dir = tempfile::tempdir().unwrap();
    let full = cache_in(dir.path(), 1 << 30);
    let plain = run_guest(data, "os-distribution-rust", &with_cache(2, &full)).unwrap();
    let needed = tree_bytes(&dir.path().join("columns"));
    assert!(needed > 0);
    let budget = needed / 3;
    let small_dir = tempfile::tempdir().unwrap();
    let small = cache_in(small_dir.path(), budget);
    for _ in 0..2 {
        let out = run_guest(data, "os-distribution-rust", &with_cache(2, &small)).unwrap();
        assert_eq!(out.output, plain.output);
        let on_disk = tree_bytes(&small_dir.path().join("columns"));
        assert!(
            on_disk <= budget,
            "{on_disk} bytes on disk, budget {budget}"
        );
        assert!(small.used_bytes() <= budget);
    }
    let evicted = small.stats.evicted_files.get();
    assert!(evicted > 0, "files were evicted");
    // A cache reopened over a directory above its (new) budget shrinks it at once.
    let tiny = budget / 4;
    let reopened = cache_in(small_dir.path(), tiny);
    assert!(tree_bytes(&small_dir.path().join("columns")) <= tiny);
    assert!(reopened.used_bytes() <= tiny);
}

#[test]
fn job_run_fills_the_data_dirs_cache_unless_told_not_to() {
    let linux = ping("Linux");
    let data = tiny_data(&[("a", &linux), ("b", &linux)]);
    let guest = common::guest("os-distribution-rust");
    let run = |extra: &[&str]| {
        let dir = data.path().to_str().unwrap();
        let args = ["--workers", "1", "--data-dir", dir, guest.to_str().unwrap()];
        let (output, cost) = job_run_json(&[&args[..], extra].concat(), &[]);
        (output, cost["column_cache"].clone())
    };
    let (out, cost) = run(&["--no-column-cache"]);
    assert_eq!(out, "Linux,45.0\t2\n");
    assert_eq!(cost["enabled"], false);
    assert!(!data.path().join("columns").exists(), "nothing written");
    let (first, cost) = run(&[]);
    assert_eq!(
        (cost["enabled"].as_bool(), cost["writes"].as_u64()),
        (Some(true), Some(1))
    );
    let (second, cost) = run(&[]);
    assert_eq!(cost["hits"], 1);
    assert_eq!(
        (first.as_str(), second.as_str()),
        (out.as_str(), out.as_str())
    );
}

/// `telemetry-server job run --json ARGS` with `env`: its output and cost report.
fn job_run_json(args: &[&str], env: &[(&str, String)]) -> (String, serde_json::Value) {
    let out = Command::new(common::binary())
        .args(["job", "run", "--json"])
        .args(args)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    (
        doc["output"].as_str().unwrap().to_string(),
        doc["cost"].clone(),
    )
}

#[test]
fn s3_data_is_cached_locally_and_the_second_run_hits() {
    let server = crate::s3_common::S3Server::start();
    let data = converted_data();
    crate::s3_jobs::export_and_open(&server, data, "cached", "pub/");
    let home = tempfile::tempdir().unwrap();
    let mut env = server.env();
    env.push(("XDG_CACHE_HOME", home.path().display().to_string()));
    let guest = common::guest("os-distribution-py");
    let args = ["--data", "s3://cached/pub", guest.to_str().unwrap()];
    let (first, c1) = job_run_json(&args, &env);
    let (second, c2) = job_run_json(&args, &env);
    let files = c1["files_read"].as_u64().unwrap();
    assert!(files > 3);
    let (cc1, cc2) = (&c1["column_cache"], &c2["column_cache"]);
    assert_eq!(
        (cc1["misses"].as_u64(), cc1["writes"].as_u64()),
        (Some(files), Some(files)),
        "{cc1}"
    );
    assert_eq!(cc2["hits"].as_u64(), Some(files), "{cc2}");
    assert_eq!(c2["compressed_bytes_read"], 0, "no object fetched: {c2}");
    assert!(
        cc2["bytes_from_cache"].as_u64().unwrap() * 100 >= c2["bytes_read"].as_u64().unwrap() * 95
    );
    assert_eq!(first, second);
    assert_eq!(
        first,
        output_text(&run_guest(data, "os-distribution-py", &all_with(2)).unwrap())
    );
    let columns = home.path().join("telemetry-server/columns");
    assert!(
        tree_bytes(&columns) > 0,
        "the cache is under XDG_CACHE_HOME"
    );
}

/// Copies the partition files of `from` (a data dir) `times` times into `to`'s `storage/`, each
/// copy under a new random id, so a run has many partition files to cache.
fn many_copies(from: &Path, to: &Path, times: usize) -> usize {
    let mut stack = vec![from.join("storage")];
    let mut made = 0;
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let relative = path.strip_prefix(from).unwrap();
            let target_dir = to.join(relative.parent().unwrap());
            std::fs::create_dir_all(&target_dir).unwrap();
            let name = path.file_name().unwrap().to_str().unwrap();
            // `<build>.<date>.v<N>.log.<32 hex id>.zst`
            let (stem, id_zst) = name.rsplit_once(".log.").unwrap();
            let codec = id_zst.split_once('.').unwrap().1;
            for copy in 0..times {
                let id = format!("{:032x}", (made as u128) << 16 | copy as u128);
                std::fs::copy(&path, target_dir.join(format!("{stem}.log.{id}.{codec}"))).unwrap();
            }
            made += times;
        }
    }
    made
}

/// What a killed run left under `columns/`: complete keys (with `rows.arrow`), and partial
/// writes (keys with field files but no `rows.arrow`, and temporary files).
fn cache_state(columns: &Path) -> (usize, usize) {
    let (mut complete, mut partial) = (0, 0);
    let Ok(entries) = std::fs::read_dir(columns) else {
        return (0, 0);
    };
    for key in entries.flatten() {
        let files: Vec<_> = match std::fs::read_dir(key.path()) {
            Ok(files) => files.flatten().map(|f| f.file_name()).collect(),
            Err(_) => continue,
        };
        if key.file_name() == "tmp" {
            partial += files.len();
        } else if files.iter().any(|f| f == "rows.arrow") {
            complete += 1;
        } else if !files.is_empty() {
            partial += 1;
        }
    }
    (complete, partial)
}

#[test]
fn a_job_run_killed_while_writing_the_cache_leaves_nothing_a_later_run_reads() {
    let data = tempfile::tempdir().unwrap();
    let files = many_copies(converted_data(), data.path(), 30);
    assert!(files > 1000, "{files}");
    let guest = common::guest("os-distribution-rust");
    let dir = data.path().to_str().unwrap();
    let run_args = ["--workers", "2", "--data-dir", dir, guest.to_str().unwrap()];
    let (clean, _) = job_run_json(&[&run_args[..], &["--no-column-cache"]].concat(), &[]);
    let columns = data.path().join("columns");

    // Kill a run once it has cached some files and is writing another, until a kill lands in the
    // middle of a write (a key with field files but no rows file yet, or a temporary file).
    let mut caught = None;
    for attempt in 1..=10 {
        let _ = std::fs::remove_dir_all(&columns);
        let mut child = Command::new(common::binary())
            .args(["job", "run", "--json"])
            .args(run_args)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            let (complete, partial) = cache_state(&columns);
            if (partial > 0 && complete > 0) || complete > files / 4 {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the run wrote no cache"
            );
            assert!(
                child.try_wait().unwrap().is_none(),
                "the run ended before it was killed"
            );
        }
        child.kill().unwrap(); // SIGKILL
        assert!(!child.wait().unwrap().success());
        let (complete, partial) = cache_state(&columns);
        assert!(complete < files, "killed before it cached every file");
        eprintln!("kill {attempt}: {complete} of {files} keys complete, {partial} partial writes");
        if partial > 0 && complete > 0 {
            caught = Some(complete);
            break;
        }
    }
    let complete =
        caught.expect("no kill landed in the middle of a cache write in 10 tries") as u64;

    let (after, cost) = job_run_json(&run_args, &[]);
    assert_eq!(after, clean, "the same output as a run without the cache");
    let c = &cost["column_cache"];
    assert_eq!(c["bad_files"], 0, "no cache file failed to read: {c}");
    assert_eq!(
        c["hits"].as_u64(),
        Some(complete),
        "only complete keys are used: {c}"
    );
    assert_eq!(c["misses"].as_u64(), Some(files as u64 - complete), "{c}");
    let (again, cost) = job_run_json(&run_args, &[]);
    assert_eq!(again, clean);
    assert_eq!(cost["column_cache"]["hits"].as_u64(), Some(files as u64));
}
