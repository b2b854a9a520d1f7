//! Mistakes a first-time user makes, each shown to fail loudly instead of silently (issue 17): a
//! filter that names fewer dimensions, names them in another order, misspells one or matches
//! nothing; a mistyped data directory; `job run --json` on a failing job; SDK return-type and
//! export mistakes in JavaScript and Python; a token hash pasted from `sha256sum`; and
//! `storage sample` to see what stored documents look like. Real binary, real converted pings,
//! real guests built from source (`host/tests/guests/`, by scripts/build-guests.sh).

use crate::common;
use crate::jobs_support::{converted_data, filter_json, native_os_distribution, stored_records};

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;
use telemetry_server::storage::{DataDir, LocalSource, PartitionSource, Schema};

fn run(args: &[&str]) -> Output {
    Command::new(common::binary()).args(args).output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `job run GUEST --data-dir <converted data> EXTRA…`.
fn job_run(guest: &str, extra: &[&str]) -> Output {
    let guest = common::guest(guest);
    let data = converted_data();
    let mut args = vec![
        "job",
        "run",
        guest.to_str().unwrap(),
        "--data-dir",
        data.to_str().unwrap(),
        "--workers",
        "2",
    ];
    args.extend_from_slice(extra);
    run(&args)
}

fn stored_files(data: &Path) -> usize {
    let all = Schema::from_json(&filter_json(&[])).unwrap();
    LocalSource::new(DataDir::open(data).unwrap().sub("storage").unwrap())
        .list(&all)
        .unwrap()
        .len()
}

#[test]
fn filters_match_dimensions_by_name_in_any_order_and_subset() {
    let dir = tempfile::tempdir().unwrap();
    // The seed's positional form: all six dimensions in schema order, one restricted.
    let positional = filter_json(&[(0, r#""saved-session""#), (2, r#"["nightly"]"#)]);
    let file = dir.path().join("filter.json");
    std::fs::write(&file, &positional).unwrap();
    let expected = native_os_distribution(&stored_records(
        converted_data(),
        &Schema::from_json(&positional).unwrap(),
    ));
    assert!(!expected.is_empty());

    let by_file = job_run(
        "os-distribution-rust",
        &["--filter", file.to_str().unwrap()],
    );
    assert!(by_file.status.success(), "{}", text(&by_file.stderr));
    assert_eq!(text(&by_file.stdout), expected);
    // Two dimensions by name, reversed, inline: the same partitions.
    let inline = r#"{"dimensions": [
        {"field_name": "appUpdateChannel", "allowed_values": ["nightly"]},
        {"field_name": "reason", "allowed_values": "saved-session"}]}"#;
    let by_name = job_run("os-distribution-rust", &["--filter", inline]);
    assert!(by_name.status.success(), "{}", text(&by_name.stderr));
    assert_eq!(text(&by_name.stdout), expected);

    // No filter: everything, which is more than the restricted run read.
    let all = job_run("os-distribution-rust", &["--json"]);
    assert!(all.status.success(), "{}", text(&all.stderr));
    let report: Value = serde_json::from_slice(&all.stdout).unwrap();
    let everything = native_os_distribution(&stored_records(
        converted_data(),
        &Schema::from_json(&filter_json(&[])).unwrap(),
    ));
    assert_eq!(report["output"], everything.as_str());
    assert_eq!(report["cost"]["files_pruned"], 0);
    assert_eq!(
        report["cost"]["files_matched"].as_u64().unwrap() as usize,
        stored_files(converted_data())
    );
    assert_ne!(everything, expected);
}

#[test]
fn an_unknown_dimension_is_an_error_naming_the_valid_ones() {
    let typo = r#"{"dimensions": [{"field_name": "channel", "allowed_values": ["nightly"]}]}"#;
    let out = job_run("os-distribution-rust", &["--filter", typo]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.contains("\"channel\""), "{err}");
    assert!(
        err.contains("reason, appName, appUpdateChannel, appVersion, appBuildID, submission_date"),
        "{err}"
    );
    assert!(out.stdout.is_empty());
    // A filter argument that is neither JSON nor a file says which.
    let missing = job_run("os-distribution-rust", &["--filter", "no-such-filter.json"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(
        text(&missing.stderr).contains("--filter: cannot read 'no-such-filter.json'"),
        "{}",
        text(&missing.stderr)
    );
}

#[test]
fn a_filter_matching_nothing_fails_with_exit_3_unless_empty_is_allowed() {
    let nothing =
        r#"{"dimensions": [{"field_name": "appUpdateChannel", "allowed_values": ["esr"]}]}"#;
    let out = job_run("os-distribution-rust", &["--filter", nothing]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    let pruned = stored_files(converted_data());
    assert!(err.contains(r#"appUpdateChannel=["esr"]"#), "{err}");
    assert!(
        err.contains(&format!("{pruned} stored files were pruned")),
        "{err}"
    );
    assert_eq!(err.matches("matched no partition file").count(), 1, "{err}");
    assert!(out.stdout.is_empty());

    let allowed = job_run(
        "os-distribution-rust",
        &["--filter", nothing, "--allow-empty"],
    );
    assert!(allowed.status.success(), "{}", text(&allowed.stderr));
    assert!(allowed.stdout.is_empty());
    assert!(text(&allowed.stderr).contains(&format!("0 read of 0 matched, {pruned} pruned")));
}

#[test]
fn a_mistyped_data_dir_is_an_error_and_nothing_is_created() {
    let dir = tempfile::tempdir().unwrap();
    let guest = common::guest("os-distribution-rust");
    let typo = dir.path().join("dta");
    let out = run(&[
        "job",
        "run",
        guest.to_str().unwrap(),
        "--data-dir",
        typo.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("is not a data directory: no such directory"),
        "{}",
        text(&out.stderr)
    );
    assert!(!typo.exists());
    // A directory that exists but holds no storage is not a data directory either, and gets
    // neither storage/ nor cache/.
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    for cmd in [
        vec!["job", "run", guest.to_str().unwrap(), "--data-dir"],
        vec!["storage", "sample", "--data-dir"],
    ] {
        let mut args = cmd.clone();
        args.push(empty.to_str().unwrap());
        let out = run(&args);
        assert_eq!(out.status.code(), Some(1), "{cmd:?}");
        assert!(
            text(&out.stderr).contains("it has no storage/ subdirectory"),
            "{cmd:?}: {}",
            text(&out.stderr)
        );
        assert_eq!(std::fs::read_dir(&empty).unwrap().count(), 0, "{cmd:?}");
    }
    // `convert` still creates its data directory.
    let fresh = dir.path().join("fresh");
    let pings = common::data("pings");
    let tsv = std::fs::read_dir(&pings)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "tsv"))
        .expect("a .tsv of pings in shared/data/pings");
    let out = run(&[
        "convert",
        "--data-dir",
        fresh.to_str().unwrap(),
        tsv.to_str().unwrap(),
    ]);
    assert!(fresh.join("storage").is_dir(), "{}", text(&out.stderr));
}

#[test]
fn sdk_return_type_mistakes_name_the_method_and_type_and_json_keeps_the_log() {
    for (guest, expected) in [
        (
            "bad-return-py",
            "reduce must return a str, but returned int",
        ),
        (
            "bad-return-js",
            "reduce must return a string, but returned number",
        ),
    ] {
        let out = job_run(guest, &[]);
        assert_eq!(out.status.code(), Some(1), "{guest}");
        let err = text(&out.stderr);
        let last = err.lines().last().unwrap_or_default();
        assert!(last.starts_with("error: job "), "{guest}: {err}");
        assert!(last.contains(expected), "{guest}: {err}");
        assert!(err.contains("--- job log ---"), "{guest}: {err}");

        // --json: one object on stdout, with the error and the job log.
        let out = job_run(guest, &["--json"]);
        assert_eq!(out.status.code(), Some(1), "{guest}");
        let doc: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "{guest}: stdout is not one JSON object ({e}): {}",
                text(&out.stdout)
            )
        });
        assert!(
            doc["error"].as_str().unwrap().contains(expected),
            "{guest}: {doc}"
        );
        assert!(
            doc["log"].as_str().unwrap().contains(expected),
            "{guest}: {doc}"
        );
        assert!(doc["progress"]["records"].as_u64().unwrap() > 0, "{doc}");
        // The person still reads the error, once, on stderr.
        assert_eq!(
            text(&out.stderr).matches(expected).count(),
            1,
            "{}",
            text(&out.stderr)
        );
    }
    // A --json run that fails before the job starts still prints one object.
    let out = job_run("os-distribution-rust", &["--json", "--filter", "{"]);
    assert_eq!(out.status.code(), Some(1));
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(doc["error"].as_str().unwrap().contains("--filter"), "{doc}");
}

#[test]
fn a_js_module_with_export_default_is_refused_at_build_time() {
    let dir = tempfile::tempdir().unwrap();
    let output = dir.path().join("job.wasm");
    let guest = common::repo_root().join("host/tests/guests/default-export/js");
    let out = Command::new("bash")
        .arg(common::repo_root().join("scripts/build-guests.sh"))
        .arg("js")
        .arg(&guest)
        .arg(&output)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains("`export default`"), "{err}");
    assert!(err.contains("export const job = defineJob("), "{err}");
    assert!(!output.exists());
}

#[test]
fn storage_sample_prints_documents_and_their_pointers() {
    let data = converted_data().to_str().unwrap();
    let filter = r#"{"dimensions": [{"field_name": "reason", "allowed_values": ["main"]}]}"#;
    let sample = |count: &str, how: &str| {
        let out = run(&[
            "storage",
            "sample",
            "--data-dir",
            data,
            "--filter",
            filter,
            "--count",
            count,
            how,
        ]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        out
    };
    let out = sample("3", "--ndjson");
    let stored: Vec<String> = stored_records(
        converted_data(),
        &Schema::from_json(&filter_json(&[(0, r#"["main"]"#)])).unwrap(),
    )
    .into_iter()
    .map(|(_, json)| json)
    .collect();
    let stdout = text(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 3);
    for line in &lines {
        assert!(
            stored.iter().any(|s| s == line),
            "not a stored main ping: {line:.80}"
        );
    }

    let out = sample("5", "--pointers");
    let table = text(&out.stdout);
    let pointers: Vec<(u64, String)> = table
        .lines()
        .map(|l| {
            let mut cols = l.split('\t');
            let count = cols.next().unwrap();
            let (n, of) = count.split_once('/').unwrap();
            assert_eq!(of, "5", "{l}");
            (n.parse().unwrap(), cols.next().unwrap().to_string())
        })
        .collect();
    // Sorted by pointer (one written as a JSON string sorts by its value).
    let names: Vec<String> = pointers
        .iter()
        .map(|(_, p)| match p.starts_with('"') {
            true => serde_json::from_str(p).unwrap(),
            false => p.clone(),
        })
        .collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted);
    // Every v4 main ping has its environment's OS; the counts are per document.
    assert!(
        pointers.contains(&(5, "/environment/system/os/name".to_string())),
        "{table:.2000}"
    );
    assert!(pointers.iter().all(|(n, _)| (1..=5).contains(n)));
    // Every row has three columns even where a key holds newlines or tabs (slow SQL text).
    let all = run(&[
        "storage",
        "sample",
        "--data-dir",
        data,
        "--count",
        "40",
        "--pointers",
    ]);
    assert!(all.status.success(), "{}", text(&all.stderr));
    let rows = text(&all.stdout);
    assert!(
        rows.lines().all(|l| l.split('\t').count() == 3),
        "{rows:.3000}"
    );
    assert!(
        rows.lines().any(|l| l.contains("\"/payload/slowSQL/")),
        "{rows:.3000}"
    );
    assert!(text(&out.stderr).contains("5 documents sampled"));
}

#[test]
fn token_new_makes_an_entry_that_print_config_and_serve_accept_alike() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(&["token", "new", "--name", "ci", "--role", "admin"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let printed = text(&out.stdout);
    let token = printed.lines().next().unwrap().to_string();
    let entry: String = printed.lines().skip(1).collect::<Vec<_>>().join("\n");
    let hash = entry
        .lines()
        .find_map(|l| l.strip_prefix("sha256 = \""))
        .unwrap()
        .trim_end_matches('"')
        .to_string();
    // The config as printed, and with the hash pasted from `sha256sum` (`HASH  -`): both start.
    for sha256 in [hash.clone(), format!("{hash}  -")] {
        let config = dir.path().join("server.toml");
        std::fs::write(&config, entry.replace(&hash, &sha256)).unwrap();
        let print = run(&[
            "serve",
            "--print-config",
            "--config",
            config.to_str().unwrap(),
        ]);
        assert!(print.status.success(), "{}", text(&print.stderr));
        let data = dir.path().join(format!("data-{}", sha256.len()));
        let server = crate::server_support::ServeProcess::start(&config, &data);
        let status = reqwest::blocking::Client::new()
            .get(format!("http://{}/api/v1/jobs", server.addr))
            .bearer_auth(&token)
            .send()
            .unwrap()
            .status();
        assert_eq!(status.as_u16(), 200, "{}", server.log());
    }
    // A hash that is not one: both refuse it, with one message said once.
    let config = dir.path().join("bad.toml");
    std::fs::write(&config, entry.replace(&hash, &hash[..40])).unwrap();
    let print = run(&[
        "serve",
        "--print-config",
        "--config",
        config.to_str().unwrap(),
    ]);
    let data = dir.path().join("data-bad");
    let serve = run(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--config",
        config.to_str().unwrap(),
        "--data-dir",
        data.to_str().unwrap(),
    ]);
    let message = "jobs.tokens entry 'ci': sha256 must be 64 hex digits";
    for (what, out) in [("--print-config", &print), ("serve", &serve)] {
        assert_eq!(out.status.code(), Some(1), "{what}");
        let err = text(&out.stderr);
        assert_eq!(err.matches(message).count(), 1, "{what}: {err}");
        assert!(err.contains("telemetry-server token new"), "{what}: {err}");
    }
}

#[test]
fn the_one_dimension_filter_of_the_api_docs_runs_through_job_submit() {
    use telemetry_server::api::jobs::{hash_token, Role, TokenConfig};
    let root = crate::job_service::data_root();
    let mut config = telemetry_server::config::Config {
        data_dir: root.path().join("data"),
        ..Default::default()
    };
    config.server.listen = "127.0.0.1:0".parse().unwrap();
    config.ingest.shards = 1;
    config.convert.enabled = false;
    config.jobs.tokens = vec![TokenConfig {
        name: "alice".into(),
        sha256: hash_token("alice-token"),
        role: Role::Submit,
    }];
    let data = config.data_dir.clone();
    let server = crate::server_support::TestServer::start_with(root, config);
    let submit = |filter: &str, extra: &[&str]| {
        let guest = common::guest("os-distribution-rust");
        let url = server.url("");
        let mut args = vec![
            "job",
            "submit",
            guest.to_str().unwrap(),
            "--server",
            &url,
            "--token",
            "alice-token",
            "--wait",
            "--filter",
            filter,
        ];
        args.extend_from_slice(extra);
        run(&args)
    };
    // docs/api/jobs.md's example: one dimension of six.
    let docs = r#"{"version":1,"dimensions":[{"field_name":"reason","allowed_values":"*"}]}"#;
    let out = submit(docs, &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let expected = native_os_distribution(&stored_records(
        &data,
        &Schema::from_json(&filter_json(&[])).unwrap(),
    ));
    assert_eq!(text(&out.stdout), expected);
    // An unknown dimension is a 400 naming the valid ones; a filter matching nothing fails the
    // job saying so, unless --allow-empty.
    let out = submit(
        r#"{"dimensions":[{"field_name":"os","allowed_values":"*"}]}"#,
        &[],
    );
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains("bad_filter") && err.contains("appUpdateChannel"),
        "{err}"
    );
    let nothing = r#"{"dimensions":[{"field_name":"appName","allowed_values":["Thunderbird"]}]}"#;
    let out = submit(nothing, &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("matched no partition file"),
        "{}",
        text(&out.stderr)
    );
    let out = submit(nothing, &["--allow-empty"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(out.stdout.is_empty());
}

#[test]
fn decimal_helpers_pass_the_shared_table_in_javascript_python_and_c() {
    // The Rust SDK's runs as `sdk_decimal::tests`; the same table, the same expected bytes.
    let cases = std::fs::read_to_string(common::repo_root().join("guest-sdk/decimal-cases.tsv"))
        .unwrap()
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .count();
    assert!(cases >= 20, "{cases}");
    let js = common::sdk_node_test("decimal.test.mjs");
    assert!(js.contains("# pass 1"), "{js}");
    let report = common::sdk_python_tests("test_decimal.py");
    assert!(
        report.contains("test_the_shared_table_of_tricky_values") && report.contains("Ran 1 test"),
        "{report}"
    );
    let c = common::sdk_c_test("test_decimal.c", "decimal-cases.tsv");
    assert!(c.contains(&format!("{cases} cases, 0 failed")), "{c}");
}
