//! `deploy/` against the real server: every example config is accepted by the binary itself
//! (`serve --config F --print-config`, with the variables the units read from the example
//! environment files), every unit's `ExecStart=` is a command line the binary parses, and every
//! metric `deploy/alerts.yml` uses is on a real
//! server's `/metrics` (with live conversion and export to a real S3-compatible server on), next
//! to the per-channel / per-docType counters fed by real pings.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;

use crate::common;
use crate::s3_common::S3Server;
use crate::server_support::TestServer;
use telemetry_server::config::Config;

fn deploy(rel: &str) -> PathBuf {
    common::repo_root().join("deploy").join(rel)
}

/// The `KEY=VALUE` lines of every `deploy/config/*.env.example`: what the units' `EnvironmentFile=`
/// gives the binary on a real node.
fn example_env() -> Vec<(String, String)> {
    let mut vars = Vec::new();
    for entry in std::fs::read_dir(deploy("config")).unwrap() {
        let path = entry.unwrap().path();
        if !path.to_string_lossy().ends_with(".env.example") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        for line in text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        {
            let (key, value) = line.split_once('=').expect(line);
            vars.push((key.to_string(), value.to_string()));
        }
    }
    vars
}

/// A command of the binary as a unit would run it: no variable of the test's own environment
/// that the binary reads (`TELEMETRY_*`, `AWS_*`), the example environment files' instead.
fn binary_as_a_unit_runs_it() -> Command {
    let mut cmd = Command::new(common::binary());
    for (key, _) in
        std::env::vars().filter(|(k, _)| k.starts_with("TELEMETRY_") || k.starts_with("AWS_"))
    {
        cmd.env_remove(key);
    }
    cmd.envs(example_env());
    cmd
}

#[test]
fn example_configs_are_accepted_by_the_server() {
    let mut configs: Vec<PathBuf> = std::fs::read_dir(deploy("config"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    configs.sort();
    let names: Vec<String> = configs
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    for expected in ["coordinator.toml", "single-node.toml", "worker.toml"] {
        assert!(names.iter().any(|n| n == expected), "{names:?}");
    }
    for path in &configs {
        let out = binary_as_a_unit_runs_it()
            .args(["serve", "--print-config", "--config"])
            .arg(path)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{} rejected: {}",
            path.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        // What the server printed is the file's settings: nothing in the file was dropped.
        let printed = Config::from_toml(&String::from_utf8(out.stdout).unwrap()).unwrap();
        let file = Config::from_toml(&std::fs::read_to_string(path).unwrap()).unwrap();
        assert_eq!(printed.to_toml(), file.to_toml(), "{}", path.display());
        assert_eq!(
            printed.data_dir,
            PathBuf::from("/var/lib/telemetry-server"),
            "the units' ReadWritePaths: {}",
            path.display()
        );
    }
    // The multi-node examples export to the shared S3-compatible store; the worker keeps nothing.
    for (name, deletes) in [("coordinator.toml", false), ("worker.toml", true)] {
        let text = std::fs::read_to_string(deploy("config").join(name)).unwrap();
        let s3 = Config::from_toml(&text).unwrap().s3.expect(name);
        assert!(
            s3.endpoint.is_some() && s3.raw_logs && s3.path_style,
            "{name}"
        );
        assert_eq!(s3.delete_after_upload, deletes, "{name}");
        assert!(
            s3.secret_access_key.is_none(),
            "{name}: credentials belong in s3.env"
        );
    }
}

/// Each unit's `ExecStart=`, its `${VAR}`s filled from the example environment files, with
/// `--help` appended: clap parses every argument before it, so an option the subcommand lacks
/// (the worker unit once ran `worker --config …`, which `worker` does not take) fails here rather
/// than at the unit's first start on a real machine.
#[test]
fn every_unit_runs_a_command_line_the_binary_parses() {
    let env = example_env();
    let mut units: Vec<PathBuf> = std::fs::read_dir(deploy("systemd"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    units.sort();
    let expected = [
        ("telemetry-server.service", "serve"),
        ("telemetry-worker.service", "worker"),
    ];
    let names: Vec<String> = units
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        expected.map(|(name, _)| name),
        "a unit without an expected subcommand"
    );
    let variable = regex::Regex::new(r"\$\{([A-Z_]+)\}").unwrap();
    for (path, (_, subcommand)) in units.iter().zip(expected) {
        let text = std::fs::read_to_string(path).unwrap();
        let line = text
            .lines()
            .find_map(|l| l.strip_prefix("ExecStart="))
            .unwrap_or_else(|| panic!("{}: no ExecStart=", path.display()));
        let line = variable.replace_all(line, |c: &regex::Captures| {
            let name = &c[1];
            let value = env.iter().find(|(k, _)| k == name);
            value
                .unwrap_or_else(|| panic!("{}: ${{{name}}} is in no *.env.example", path.display()))
                .1
                .clone()
        });
        let mut words = line.split_whitespace();
        assert_eq!(words.next(), Some("/usr/local/bin/telemetry-server"));
        let out = binary_as_a_unit_runs_it()
            .args(words)
            .arg("--help")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{}: {line}\n{}",
            path.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            stdout.contains(&format!("Usage: telemetry-server {subcommand} ")),
            "{}: {stdout}",
            path.display()
        );
    }
}

/// Sample names on a `/metrics` page (`name{labels} value` or `name value`).
fn sample_names(metrics: &str) -> BTreeSet<String> {
    metrics
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| l.split(['{', ' ']).next().unwrap().to_string())
        .collect()
}

/// The value of the sample `line_start` (e.g. `name{a="b"}`).
pub(crate) fn sample(metrics: &str, line_start: &str) -> Option<f64> {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(line_start)?.trim().parse().ok())
}

#[test]
fn alert_rules_use_metrics_a_real_server_exports() {
    let s3 = S3Server::start();
    let server = TestServer::start(|c| {
        c.convert.enabled = true;
        c.ingest.max_log_age_ms = 200;
        c.convert.scan_interval_secs = 1;
        let mut s3_config = s3.config("telemetry", "published/");
        s3_config.interval_secs = 1;
        c.s3 = Some(s3_config);
    });
    let client = reqwest::blocking::Client::new();
    let pings = [
        (
            "v4.saved-session.Fx40.0a2-aurora.2015-05.uberi.json",
            "saved-session/Firefox/40.0a2/aurora/20150522004047",
        ),
        (
            "v4.main.Fx60.0a1-nightly.2018-03.gc_sample.pipeline-schemas.json",
            "main/Firefox/60.0a1/nightly/20180308100151",
        ),
        (
            "v4.crash.Fx61.0a1-nightly.2018-04.pipeline-schemas.json",
            "crash/Firefox/61.0a1/nightly-cck-unknown/20180401000000",
        ),
    ];
    let mut sizes = Vec::new();
    for (i, (file, dims)) in pings.iter().enumerate() {
        let body = std::fs::read(common::data(&format!("pings/{file}"))).unwrap();
        sizes.push(body.len());
        let url = server.url(&format!(
            "/submit/telemetry/00000000-0000-4000-8000-00000000000{i}/{dims}"
        ));
        let r = client.post(url).body(body).send().unwrap();
        assert_eq!(r.status().as_u16(), 200);
    }
    // A 404 too, so the error-rate rule's code label exists.
    let r = client.get(server.url("/no-such-page")).send().unwrap();
    assert_eq!(r.status().as_u16(), 404);
    let metrics = server.metrics();

    let rules = std::fs::read_to_string(deploy("alerts.yml")).unwrap();
    let used: BTreeSet<String> = regex::Regex::new(r"telemetry_[a-z0-9_]+")
        .unwrap()
        .find_iter(&rules)
        .map(|m| m.as_str().to_string())
        .collect();
    assert!(used.len() >= 10, "{used:?}");
    let exported = sample_names(&metrics);
    let missing: Vec<&String> = used.iter().filter(|n| !exported.contains(*n)).collect();
    assert!(
        missing.is_empty(),
        "alerts.yml uses {missing:?}, not on /metrics:\n{metrics}"
    );

    // The process gauges (of the test binary here, which runs other tests beside this one).
    for name in [
        "telemetry_process_threads",
        "telemetry_process_resident_memory_bytes",
    ] {
        assert!(
            sample(&metrics, name).is_some_and(|v| v >= 1.0),
            "{name}\n{metrics}"
        );
    }

    // The per-channel / per-docType series: known values as labels, the rest OTHER.
    for (labels, count, bytes) in [
        (
            r#"{channel="aurora",doc_type="saved-session"}"#,
            1.0,
            sizes[0],
        ),
        (r#"{channel="nightly",doc_type="main"}"#, 1.0, sizes[1]),
        (r#"{channel="OTHER",doc_type="crash"}"#, 1.0, sizes[2]),
    ] {
        let at = |name: &str| sample(&metrics, &format!("{name}{labels}"));
        assert_eq!(
            at("telemetry_submissions_total"),
            Some(count),
            "{labels}\n{metrics}"
        );
        assert_eq!(
            at("telemetry_submission_bytes_total"),
            Some(bytes as f64),
            "{labels}"
        );
    }
    assert_eq!(
        metrics
            .lines()
            .filter(|l| l.starts_with("telemetry_submissions_total{"))
            .count(),
        3,
        "{metrics}"
    );
}
