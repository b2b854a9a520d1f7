//! Configured job sources (`[jobs.sources.NAME]`) against a real s3s-fs and a real server: a job
//! submitted with `job submit --source NAME` reads the bucket (the server's own storage is empty)
//! and gives what `job run --data s3://…` gives; an unknown source is a 400 naming the
//! configured ones; a source without a bucket stops `serve` at config load.

use std::process::Command;

use serde_json::Value;
use telemetry_server::api::jobs::{hash_token, Role, TokenConfig};
use telemetry_server::jobs::sources::SourceConfig;

use crate::common;
use crate::jobs_support;
use crate::s3_common::S3Server;
use crate::s3_jobs::export_and_open;
use crate::server_support::TestServer;

const TOKEN: &str = "sources-token-0123456789";

/// A server with an empty data dir whose `[jobs.sources]` has `archive` = the bucket `jobs/v2/`.
fn server(s3: &S3Server) -> TestServer {
    TestServer::start(|config| {
        config.jobs.tokens = vec![TokenConfig {
            name: "alice".into(),
            sha256: hash_token(TOKEN),
            role: Role::Submit,
        }];
        config.jobs.sources.insert(
            "archive".into(),
            SourceConfig::S3(Box::new(s3.config("jobs", "v2/"))),
        );
        config
            .jobs
            .sources
            .insert("here".into(), SourceConfig::Local);
    })
}

fn submit(server: &TestServer, extra: &[&str]) -> std::process::Output {
    Command::new(common::binary())
        .args(["job", "submit", "--wait", "--filter", "{}"])
        .arg(common::guest("os-distribution-rust"))
        .args(["--server", &server.url(""), "--token", TOKEN])
        .args(extra)
        .output()
        .unwrap()
}

/// `GET /api/v1/jobs`.
fn list_jobs(server: &TestServer) -> Value {
    reqwest::blocking::Client::new()
        .get(server.url("/api/v1/jobs"))
        .bearer_auth(TOKEN)
        .send()
        .unwrap()
        .json()
        .unwrap()
}

#[test]
fn an_api_job_on_an_s3_source_equals_job_run_over_the_bucket() {
    let s3 = S3Server::start();
    let data = jobs_support::converted_data();
    export_and_open(&s3, data, "jobs", "v2/");
    let server = server(&s3);

    let api = submit(&server, &["--source", "archive"]);
    assert!(
        api.status.success(),
        "job submit --source archive failed: {}",
        String::from_utf8_lossy(&api.stderr)
    );
    let cache = tempfile::tempdir().unwrap();
    let run = Command::new(common::binary())
        .args(["job", "run"])
        .arg(common::guest("os-distribution-rust"))
        .args(["--data", "s3://jobs/v2", "--filter", "{}", "--cache-dir"])
        .arg(cache.path())
        .envs(s3.env())
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(!run.stdout.is_empty());
    assert_eq!(
        String::from_utf8_lossy(&api.stdout),
        String::from_utf8_lossy(&run.stdout)
    );

    // The server's own storage is empty: without a source (or with the `local` one) the job
    // finds nothing, so the output above came from the bucket.
    for extra in [&[][..], &["--source", "here"][..]] {
        let local = submit(&server, extra);
        assert!(!local.status.success(), "{extra:?} read something");
        let stderr = String::from_utf8_lossy(&local.stderr);
        assert!(stderr.contains("failed"), "{extra:?}: {stderr}");
    }

    // The stored job says which source it read.
    let jobs = list_jobs(&server);
    let sources: Vec<Option<&str>> = jobs["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["manifest"]["source"].as_str())
        .collect();
    assert_eq!(sources, [Some("archive"), None, Some("here")]);
}

/// `job submit --allow-partial` puts `allow_partial` in the manifest: the server refuses it with
/// an S3 source (a lost member's share is re-read there) and keeps it with a local one.
#[test]
fn allow_partial_from_the_cli_reaches_the_manifest() {
    let s3 = S3Server::start();
    let server = server(&s3);
    let out = submit(&server, &["--source", "archive", "--allow-partial"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("bad_manifest")
            && stderr.contains("'allow_partial' is for a job over a local source"),
        "{stderr}"
    );
    // The server's storage is empty, so --allow-empty lets the local job succeed.
    let out = submit(
        &server,
        &["--source", "here", "--allow-partial", "--allow-empty"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let jobs = list_jobs(&server);
    let stored: Vec<(&Value, &Value)> = jobs["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| (&j["manifest"]["source"], &j["manifest"]["allow_partial"]))
        .collect();
    assert_eq!(stored, [(&Value::from("here"), &Value::from(true))]);
}

#[test]
fn an_unknown_source_is_a_400_naming_the_configured_ones() {
    let s3 = S3Server::start();
    let server = server(&s3);
    let out = submit(&server, &["--source", "elsewhere"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("unknown_source")
            && stderr.contains("unknown source 'elsewhere'")
            && stderr.contains("sources are archive, here"),
        "{stderr}"
    );
    // Nothing was queued.
    let jobs = list_jobs(&server);
    assert_eq!(jobs["jobs"].as_array().unwrap().len(), 0);
}

#[test]
fn a_source_without_a_bucket_stops_serve_at_config_load() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("server.toml");
    std::fs::write(
        &config,
        "[jobs.sources.archive]\nkind = \"s3\"\nprefix = \"v2/\"\naccess_key_id = \"a\"\nsecret_access_key = \"b\"\n",
    )
    .unwrap();
    let out = Command::new(common::binary())
        .arg("serve")
        .arg("--config")
        .arg(&config)
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("jobs.sources.archive") && stderr.contains("bucket"),
        "{stderr}"
    );
}
