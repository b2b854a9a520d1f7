//! Fetching Histograms.json from a histogram server: a real HTTP server in the test plays
//! hg.mozilla.org (`/<repo>/raw-file/<rev>/Histograms.json`) with real definitions from
//! ../shared/data, and real pings are converted with `telemetry-server convert
//! --histogram-server`, or looked up through a running server's `/histograms` endpoint.

use crate::common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};

use crate::server_support::TestServer;
use axum::extract::{Path as UrlPath, State};
use axum::http::StatusCode;
use axum::routing::get;
use serde_json::Value;

/// Nightly 2018-03 ping: neither its revision nor its build is covered by the embedded
/// definitions and table, so without a fetch it is `missing_histograms`. Its two histograms are
/// defined alike in the 2017-03 file the fake hg serves for its revision.
const FX60: &str = "pings/v4.main.Fx60.0a1-nightly.2018-03.gc_sample.pipeline-schemas.json";
const FX60_REV: &str = "919570891f1c8c8576be89f273f47fb9542c2a1f";
/// Beta 2015-11 ping (also not covered): the fake hg answers 404 for its revision.
const FX45: &str = "pings/v4.main.Fx45.0-beta.2015-11.sample.pipeline-schemas.json";
const FX45_REV: &str = "bb4d614a0b09";
/// A body that makes the fake hg answer 503 after 5 seconds.
const SLOW: &str = "SLOW";
/// A repository the fake hg does not have (404 for every revision).
const FAKE_REPO: &str = "not-a-repo";
const DEFINITIONS: &str = "histograms/Histograms.mozilla-central.2017-03.telemetry-batch-view.json";

/// The fake hg server: revision → (status, body); every request path is recorded.
struct FakeHg {
    addr: SocketAddr,
    requests: Arc<Mutex<Vec<String>>>,
    _runtime: tokio::runtime::Runtime,
}

type Files = Arc<HashMap<String, (StatusCode, String)>>;

impl FakeHg {
    fn start(files: &[(&str, StatusCode, String)]) -> FakeHg {
        let files: Files = Arc::new(
            files
                .iter()
                .map(|(rev, status, body)| (rev.to_string(), (*status, body.clone())))
                .collect(),
        );
        let requests = Arc::new(Mutex::new(Vec::new()));
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let app = axum::Router::new()
            .route("/{repo}/raw-file/{rev}/Histograms.json", get(serve))
            .with_state((files, requests.clone()));
        runtime.spawn(async move { axum::serve(listener, app).await.unwrap() });
        FakeHg {
            addr,
            requests,
            _runtime: runtime,
        }
    }

    fn template(&self) -> String {
        format!(
            "http://{}/{{repo}}/raw-file/{{rev}}/Histograms.json",
            self.addr
        )
    }

    fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }
}

async fn serve(
    State((files, requests)): State<(Files, Arc<Mutex<Vec<String>>>)>,
    UrlPath((repo, rev)): UrlPath<(String, String)>,
) -> (StatusCode, String) {
    requests.lock().unwrap().push(format!("{repo}/{rev}"));
    if repo == FAKE_REPO {
        return (StatusCode::NOT_FOUND, "no such repository".into());
    }
    let file = files
        .get(&rev)
        .cloned()
        .unwrap_or((StatusCode::NOT_FOUND, "not found".into()));
    if file.1 == SLOW {
        tokio::time::sleep(std::time::Duration::from_secs(5)).await;
        return (StatusCode::SERVICE_UNAVAILABLE, "slow and then down".into());
    }
    file
}

fn definitions() -> String {
    std::fs::read_to_string(common::data(DEFINITIONS)).unwrap()
}

/// `convert --json` of `inputs` into `data` with the fake server; returns the summary.
fn convert(data: &Path, template: &str, inputs: &[&Path]) -> Value {
    let out = Command::new(common::binary())
        // Dedup off: the second run into the same data dir must convert (not skip) the same ids.
        .args([
            "convert",
            "--json",
            "--unknown-revision",
            "reject",
            "--dedup-window-days",
            "0",
            "--date",
            "20170115",
            "--histogram-server",
            template,
            "--data-dir",
        ])
        .arg(data)
        .args(inputs)
        .output()
        .unwrap();
    assert!(
        out.status.code().is_some_and(|c| c <= 1),
        "convert failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// A `id<TAB>json` file holding `copies` copies of one ping.
fn tsv_of(dir: &Path, ping: &str, copies: usize) -> std::path::PathBuf {
    let doc: Value =
        serde_json::from_str(&std::fs::read_to_string(common::data(ping)).unwrap()).unwrap();
    let text: String = (0..copies).map(|i| format!("copy-{i}\t{doc}\n")).collect();
    let path = dir.join(format!("copies-{copies}.tsv"));
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn a_missing_revision_is_fetched_once_cached_on_disk_and_converts() {
    let hg = FakeHg::start(&[(FX60_REV, StatusCode::OK, definitions())]);
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let pings = tsv_of(tmp.path(), FX60, 3);

    let first = convert(&data, &hg.template(), &[&pings]);
    assert_eq!(first["records_written"], 3, "{first}");
    assert_eq!(first["bad_records"], 0, "{first}");
    assert!(
        first["histograms_converted"].as_u64().unwrap() >= 3,
        "{first}"
    );
    assert_eq!(
        hg.requests(),
        [format!("mozilla-central/{FX60_REV}")],
        "three pings, one fetch"
    );
    let cached = data.join(format!(
        "histograms/mozilla-central/{FX60_REV}/Histograms.json"
    ));
    assert_eq!(
        std::fs::read_to_string(&cached).unwrap(),
        definitions(),
        "cached byte for byte"
    );

    // A new process finds it on disk and asks nothing.
    let second = convert(&data, &hg.template(), &[&pings]);
    assert_eq!(second["records_written"], 3, "{second}");
    assert_eq!(
        second["histograms_converted"],
        first["histograms_converted"]
    );
    assert_eq!(
        hg.requests().len(),
        1,
        "second run served from the disk cache"
    );

    // Without the server the same ping has no definitions (what the fetch added).
    let without = Command::new(common::binary())
        .args([
            "convert",
            "--json",
            "--unknown-revision",
            "reject",
            "--date",
            "20170115",
            "--data-dir",
        ])
        .arg(tmp.path().join("other"))
        .arg(&pings)
        .output()
        .unwrap();
    let without: Value = serde_json::from_slice(&without.stdout).unwrap();
    assert_eq!(
        without["bad_records_by_type"]["missing_histograms"], 3,
        "{without}"
    );
}

#[test]
fn a_revision_the_server_does_not_have_is_asked_once_and_rejected() {
    let hg = FakeHg::start(&[]);
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let summary = convert(&data, &hg.template(), &[&tsv_of(tmp.path(), FX45, 4)]);
    assert_eq!(
        summary["bad_records_by_type"]["missing_histograms"], 4,
        "{summary}"
    );
    assert_eq!(
        hg.requests(),
        [format!("mozilla-central/{FX45_REV}")],
        "a 404 is remembered"
    );
    assert!(!data
        .join("histograms/mozilla-central")
        .join(FX45_REV)
        .exists());
}

#[test]
fn definitions_that_do_not_parse_reject_the_pings_and_are_not_cached() {
    let hg = FakeHg::start(&[(
        FX60_REV,
        StatusCode::OK,
        "{\"histograms\": [not json".into(),
    )]);
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let summary = convert(&data, &hg.template(), &[&tsv_of(tmp.path(), FX60, 2)]);
    assert_eq!(summary["records_written"], 0, "{summary}");
    assert_eq!(
        summary["bad_records_by_type"]["conversion_error"], 2,
        "{summary}"
    );
    assert!(!data
        .join(format!(
            "histograms/mozilla-central/{FX60_REV}/Histograms.json"
        ))
        .exists());
    assert_eq!(
        hg.requests().len(),
        1,
        "a bad file is remembered, not fetched again per ping"
    );
}

#[test]
fn a_server_error_is_retried_only_after_the_back_off() {
    let hg = FakeHg::start(&[(FX60_REV, StatusCode::SERVICE_UNAVAILABLE, "busy".into())]);
    let tmp = tempfile::tempdir().unwrap();
    let summary = convert(
        &tmp.path().join("data"),
        &hg.template(),
        &[&tsv_of(tmp.path(), FX60, 5)],
    );
    assert_eq!(
        summary["bad_records_by_type"]["missing_histograms"], 5,
        "{summary}"
    );
    assert_eq!(
        hg.requests().len(),
        1,
        "five pings, one attempt within the back-off"
    );
}

#[test]
fn the_histograms_endpoint_fetches_through_and_counts_it() {
    let hg = FakeHg::start(&[(FX60_REV, StatusCode::OK, definitions())]);
    let template = hg.template();
    let server = TestServer::start(|config| config.convert.histogram_server = Some(template));
    let url = format!("https://hg.mozilla.org/mozilla-central/rev/{FX60_REV}");
    let client = reqwest::blocking::Client::new();
    for _ in 0..2 {
        let response = client
            .get(server.url("/histograms"))
            .query(&[("revision", &url)])
            .send()
            .unwrap();
        assert_eq!(response.status(), 200);
        let body = response.text().unwrap();
        assert_eq!(
            body,
            telemetry_server::histograms::patch_cpp_constants(&definitions())
        );
    }
    let buckets = client
        .get(server.url("/histogram_buckets"))
        .query(&[("revision", &url)])
        .send()
        .unwrap();
    assert_eq!(buckets.status(), 200);
    let spec: Value = buckets.json().unwrap();
    assert!(
        spec["histograms"]
            .as_object()
            .is_some_and(|o| o.len() > 100),
        "a bucket spec per histogram"
    );
    assert_eq!(hg.requests().len(), 1);
    let unknown = client
        .get(server.url("/histograms"))
        .query(&[(
            "revision",
            format!("https://hg.mozilla.org/mozilla-central/rev/{FX45_REV}"),
        )])
        .send()
        .unwrap();
    assert_eq!(unknown.status(), 404);
    let metrics = server.metrics();
    let value = |outcome: &str| {
        metrics
            .lines()
            .find(|l| {
                l.starts_with(&format!(
                    "telemetry_histogram_definitions_total{{outcome=\"{outcome}\"}}"
                ))
            })
            .and_then(|l| l.split_whitespace().last())
            .map(|v| v.to_string())
    };
    assert_eq!(value("fetched").as_deref(), Some("1"), "{metrics}");
    assert_eq!(value("fetch_not_found").as_deref(), Some("1"), "{metrics}");
}

/// Issue 11: the cache ignored the repository, so a lookup of a real revision in a fake repository
/// (404) was remembered for the revision and the real one became unfindable.
#[test]
fn a_fake_repository_does_not_make_a_real_revision_unfindable() {
    let hg = FakeHg::start(&[(FX60_REV, StatusCode::OK, definitions())]);
    let template = hg.template();
    let server = TestServer::start(|config| config.convert.histogram_server = Some(template));
    let client = reqwest::blocking::Client::new();
    let lookup = |repo: &str| {
        let url = format!("https://hg.mozilla.org/{repo}/rev/{FX60_REV}");
        client
            .get(server.url("/histograms"))
            .query(&[("revision", &url)])
            .send()
            .unwrap()
            .status()
            .as_u16()
    };
    assert_eq!(lookup(FAKE_REPO), 404);
    assert_eq!(lookup("mozilla-central"), 200);
    assert_eq!(
        lookup(FAKE_REPO),
        404,
        "the fake repository's miss is remembered for it alone"
    );
    assert_eq!(
        hg.requests(),
        [
            format!("{FAKE_REPO}/{FX60_REV}"),
            format!("mozilla-central/{FX60_REV}")
        ]
    );
}

/// Issue 11: every fetch ran under one global lock, so a normal lookup waited behind attackers'
/// fetches. Now fetches run outside any lock, at most `histogram_fetch_concurrency` at once: with
/// four slow fetches wanted and a cap of two, two reach the histogram server while the others
/// wait, and a lookup of definitions the server has answers meanwhile.
#[test]
fn slow_fetches_are_capped_and_do_not_hold_up_other_lookups() {
    let slow: Vec<String> = (0..4).map(|i| format!("{i:040x}")).collect();
    let files: Vec<(&str, StatusCode, String)> = slow
        .iter()
        .map(|rev| (rev.as_str(), StatusCode::OK, SLOW.to_string()))
        .collect();
    let hg = FakeHg::start(&files);
    let template = hg.template();
    let server = TestServer::start(|config| {
        config.convert.histogram_server = Some(template);
        config.convert.histogram_fetch_concurrency = 2;
        config.convert.histogram_fetch_timeout_secs = 30;
    });
    let lookups: Vec<_> = slow
        .iter()
        .map(|rev| {
            let url = server.url("/histograms");
            let revision = format!("https://hg.mozilla.org/mozilla-central/rev/{rev}");
            std::thread::spawn(move || {
                let client = reqwest::blocking::Client::builder()
                    .timeout(std::time::Duration::from_secs(60))
                    .build()
                    .unwrap();
                client
                    .get(url)
                    .query(&[("revision", revision)])
                    .send()
                    .unwrap()
                    .status()
                    .as_u16()
            })
        })
        .collect();
    let start = std::time::Instant::now();
    while hg.requests().len() < 2 {
        assert!(
            start.elapsed() < std::time::Duration::from_secs(30),
            "fetches never started"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // The embedded definitions answer while the slow fetches run...
    let client = reqwest::blocking::Client::new();
    let real = "https://hg.mozilla.org/releases/mozilla-release/rev/a55c55edf302";
    let status = client
        .get(server.url("/histograms"))
        .query(&[("revision", real)])
        .send()
        .unwrap()
        .status();
    assert_eq!(status, 200);
    // ...and only two of the four fetches have reached the histogram server.
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert_eq!(hg.requests().len(), 2, "{:?}", hg.requests());
    let metrics = server.metrics();
    assert!(
        metrics
            .lines()
            .any(|l| l == "telemetry_revision_fetches_running 2"),
        "{metrics}"
    );
    for lookup in lookups {
        assert_eq!(lookup.join().unwrap(), 404, "a failed fetch is a miss");
    }
    assert_eq!(
        hg.requests().len(),
        4,
        "the waiting lookups fetched once a slot was free"
    );
}
