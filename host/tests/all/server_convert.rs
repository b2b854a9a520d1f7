//! Submit → 200 → rotation → live conversion → storage, over real HTTP with real pings; rejected
//! records reach the error stream with their seed bad-record type; a path-escape attempt converts
//! (or is rejected) without anything leaving the data dir; restart converts leftovers.

use crate::common;

use std::io::BufRead;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::server_support::{gzip, metric, raw_http, walk, TestServer};
use reqwest::blocking::Client;
use telemetry_server::convert::UnknownRevision;

const SAVED_SESSION_ID: &str = "76f4594f-e90d-e26b-31a6-8fbba68d1403";

/// The seed's classic idle-daily ping (Firefox 23.0.1, gzip, with `info.revision`): (path, body).
fn idle_daily() -> (String, Vec<u8>) {
    let mut log =
        telemetry_server::rawlog::open(&common::data("seed/worker-test-data/telemetry1.log"))
            .unwrap();
    let record = log.next().unwrap().unwrap();
    (record.path, record.body)
}

fn gunzip(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(body), &mut out).unwrap();
    out
}

/// Live conversion with the 2013 converter's rules (strict mode).
fn converting_strictly(c: &mut telemetry_server::config::Config) {
    converting(c);
    c.convert.unknown_revision = UnknownRevision::Reject;
}

fn converting(c: &mut telemetry_server::config::Config) {
    c.convert.enabled = true;
    c.convert.flush_secs = 1;
    c.convert.scan_interval_secs = 1;
    c.ingest.max_log_age_ms = 200;
}

/// Every stored line (`id\tjson`) in finished partition files under `storage/`.
fn stored_lines(data: &Path) -> Vec<String> {
    let storage = data.join("storage");
    let mut lines = Vec::new();
    if !storage.exists() {
        return lines;
    }
    for rel in walk(&storage) {
        let name = rel.to_string_lossy().to_string();
        if name.ends_with(".partial") {
            continue;
        }
        let file = std::fs::File::open(storage.join(&rel)).unwrap();
        let reader = telemetry_server::storage::decompress(&name, file).unwrap();
        lines.extend(reader.lines().map(|l| l.unwrap()));
    }
    lines
}

/// Every complete error-stream entry under `errors/` (the server may be writing the last one).
fn error_entries(data: &Path) -> Vec<serde_json::Value> {
    let dir = data.join("errors");
    let mut out = Vec::new();
    for rel in walk(&dir) {
        for line in common::complete_lines(&dir.join(&rel)) {
            out.push(
                serde_json::from_str(&line).unwrap_or_else(|e| panic!("{rel:?}: {e}: {line}")),
            );
        }
    }
    out
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn submissions_rotate_convert_and_land_in_storage() {
    let mut server = TestServer::start(converting_strictly);
    let client = Client::new();
    let (idle_path, idle_gzip) = idle_daily();
    let idle_id = idle_path.split('/').next().unwrap().to_string();
    let plain_path = idle_path.replacen(&idle_id, "plain-copy-of-idle-daily", 1);
    let saved_session = std::fs::read(common::data(
        "pings/v4.saved-session.Fx40.0a2-aurora.2015-05.uberi.json",
    ))
    .unwrap();
    let submissions: Vec<(String, Vec<u8>)> = vec![
        (format!("/submit/telemetry/{idle_path}"), idle_gzip.clone()),
        (format!("/submit/telemetry/{plain_path}"), gunzip(&idle_gzip)),
        (format!("/submit/telemetry/{SAVED_SESSION_ID}/saved-session/Firefox/40.0a2/aurora/20150522004047"), gzip(&saved_session)),
        ("/submit/telemetry/just-an-id".into(), b"{\"ver\":1}".to_vec()),
        ("/submit/telemetry/bad-json/idle-daily/Firefox/23.0.1/release/20130814063812".into(), b"{not json".to_vec()),
    ];
    for (path, body) in &submissions {
        let response = client
            .post(server.url(path))
            .body(body.clone())
            .send()
            .unwrap();
        assert_eq!(response.status().as_u16(), 200, "{path}");
    }
    let data = server.data_dir();
    wait_for("both idle-daily copies in storage", || {
        let lines = stored_lines(&data);
        lines.iter().any(|l| l.starts_with(&format!("{idle_id}\t")))
            && lines
                .iter()
                .any(|l| l.starts_with("plain-copy-of-idle-daily\t"))
    });
    wait_for("every rejected record in the error stream", || {
        error_entries(&data).len() >= 3
    });
    wait_for("raw logs retired to raw/converted", || {
        walk(&data.join("raw"))
            .iter()
            .all(|p| p.starts_with("converted"))
    });
    let metrics = server.metrics();
    server.stop();

    let lines = stored_lines(&data);
    assert_eq!(lines.len(), 2, "two stored records: {lines:?}");
    for line in &lines {
        let (_, json) = line.split_once('\t').unwrap();
        let doc: serde_json::Value = serde_json::from_str(json).expect("stored record is JSON");
        assert_eq!(doc["ver"], 2, "classic ping converted to version 2");
        assert!(
            doc["histograms"].as_object().is_some_and(|h| !h.is_empty()),
            "compact histograms kept"
        );
    }
    assert!(walk(&data.join("storage"))
        .iter()
        .all(|p| p.starts_with("idle_daily/Firefox/release/23.0.1")));
    let mut kinds: Vec<String> = error_entries(&data)
        .iter()
        .map(|e| e["kind"].as_str().unwrap().to_string())
        .collect();
    kinds.sort();
    assert_eq!(kinds.len(), 3, "{kinds:?}");
    assert!(
        kinds
            .iter()
            .any(|k| k == "uuid_only_path" || k == "invalid_path"),
        "{kinds:?}"
    );
    for kind in &kinds {
        assert!(
            metrics.contains(&format!(
                "telemetry_convert_bad_records_total{{type=\"{kind}\"}}"
            )),
            "{kind}: {metrics}"
        );
    }
    assert!(
        metrics.contains("telemetry_convert_records_written_total 2"),
        "{metrics}"
    );
}

#[test]
fn path_escape_attempts_convert_inside_the_data_dir() {
    let mut server = TestServer::start(converting);
    let ping = std::fs::read(common::data(
        "pings/v4.saved-session.Fx40.0a2-aurora.2015-05.uberi.json",
    ))
    .unwrap();
    for path in [
        "/submit/telemetry/..%2F..%2F..%2Fescaped/saved-session/..%2F..%2Fescaped/40.0a2/aurora/20150522004047",
        "/submit/telemetry/../../escaped/saved-session/Firefox/../../../escaped/aurora/20150522004047",
    ] {
        let mut request =
            format!("POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", ping.len()).into_bytes();
        request.extend_from_slice(&ping);
        assert_eq!(raw_http(server.addr, &request).0, 200, "{path}");
    }
    let data = server.data_dir();
    wait_for("both records converted or rejected", || {
        stored_lines(&data).len() + error_entries(&data).len() >= 2
    });
    server.stop();
    let beside: Vec<_> = std::fs::read_dir(server.root.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        beside,
        vec![std::ffi::OsString::from("data")],
        "nothing written beside the data dir"
    );
    for rel in walk(&data) {
        assert!(!rel.components().any(|c| c.as_os_str() == ".."), "{rel:?}");
        let canonical = std::fs::canonicalize(data.join(&rel)).unwrap();
        assert!(
            canonical.starts_with(std::fs::canonicalize(&data).unwrap()),
            "{canonical:?}"
        );
    }
}

#[test]
fn a_restart_converts_logs_left_by_the_previous_run() {
    // First run: no conversion, so the finished log stays in raw/.
    let mut first = TestServer::start(|c| c.ingest.max_log_age_ms = 60_000);
    let (path, body) = idle_daily();
    let id = path.split('/').next().unwrap().to_string();
    let url = first.url(&format!("/submit/telemetry/{path}"));
    assert_eq!(
        Client::new()
            .post(url)
            .body(body)
            .send()
            .unwrap()
            .status()
            .as_u16(),
        200
    );
    first.stop();
    let root = std::mem::replace(&mut first.root, tempfile::tempdir().unwrap());
    let data = root.path().join("data");
    assert!(stored_lines(&data).is_empty());

    let mut config = telemetry_server::config::Config {
        data_dir: data.clone(),
        ..Default::default()
    };
    config.server.listen = "127.0.0.1:0".parse().unwrap();
    converting(&mut config);
    let mut second = TestServer::start_with(root, config);
    wait_for("the leftover log converted", || {
        stored_lines(&data).iter().any(|l| l.starts_with(&id))
    });
    second.stop();
}

/// The Fx40 aurora saved-session names revision 0555aa58d0d5, which is not available here:
/// strict mode refuses it, `nearest` stores it, and the default stores it laid out by its
/// histograms' own parameters, marked so in the document and on `/metrics`.
#[test]
fn convert_unknown_revision_modes_over_live_conversion() {
    let body = gzip(
        &std::fs::read(common::data(
            "pings/v4.saved-session.Fx40.0a2-aurora.2015-05.uberi.json",
        ))
        .unwrap(),
    );
    let path = format!(
        "/submit/telemetry/{SAVED_SESSION_ID}/saved-session/Firefox/40.0a2/aurora/20150522004047"
    );
    for mode in [
        None,
        Some(UnknownRevision::Reject),
        Some(UnknownRevision::Nearest),
    ] {
        let mut server = TestServer::start(|c| {
            converting(c);
            if let Some(mode) = mode {
                c.convert.unknown_revision = mode;
            }
        });
        let response = Client::new()
            .post(server.url(&path))
            .body(body.clone())
            .send()
            .unwrap();
        assert_eq!(response.status().as_u16(), 200);
        let data = server.data_dir();
        wait_for("the ping converted or rejected", || {
            !stored_lines(&data).is_empty() || !error_entries(&data).is_empty()
        });
        let metrics = server.metrics();
        server.stop();
        let (stored, errors) = (stored_lines(&data), error_entries(&data));
        if mode == Some(UnknownRevision::Reject) {
            assert!(stored.is_empty());
            assert_eq!(errors.len(), 1);
            assert_eq!(errors[0]["kind"], "missing_histograms");
            continue;
        }
        assert_eq!(stored.len(), 1, "{mode:?}: {errors:?}");
        assert!(errors.is_empty(), "{errors:?}");
        let (id, json) = stored[0].split_once('\t').unwrap();
        assert_eq!(id, SAVED_SESSION_ID);
        let doc: serde_json::Value = serde_json::from_str(json).unwrap();
        let label = if mode.is_none() {
            "self_described"
        } else {
            "nearest"
        };
        assert_eq!(doc["conversion"]["validation"], label, "{mode:?}");
        assert!(
            metrics.contains(&format!(
                "telemetry_convert_validated_records_total{{validation=\"{label}\"}} 1"
            )),
            "{metrics}"
        );
        if mode.is_none() {
            // Its self-described histograms went through the layout caches, which /metrics counts
            // (the counters are process-wide, so other tests' conversions may add to them).
            assert!(
                metric(&metrics, "telemetry_convert_layout_cache_computed_total")
                    .is_some_and(|n| n >= 1.0),
                "{metrics}"
            );
            assert!(
                metric(&metrics, "telemetry_convert_layout_cache_bounds").is_some(),
                "{metrics}"
            );
        }
    }
}

/// The submission URL a client would use for `doc`: classic pings name their `info`, unified
/// ones their `type` and `application` (a Heka frame: the ping inside); what is missing is
/// `UNKNOWN`.
fn natural_path(id: &str, doc: &serde_json::Value) -> String {
    let doc = match doc.get("fields") {
        Some(_) => &doc["payload"],
        None => doc,
    };
    let s = |v: &serde_json::Value| v.as_str().unwrap_or("UNKNOWN").to_owned();
    let dims = if doc.get("ver").is_some() {
        let info = &doc["info"];
        [
            s(&info["reason"]),
            s(&info["appName"]),
            s(&info["appVersion"]),
            s(&info["appUpdateChannel"]),
            s(&info["appBuildID"]),
        ]
    } else {
        let app = &doc["application"];
        [
            s(&doc["type"]),
            s(&app["name"]),
            s(&app["version"]),
            s(&app["channel"]),
            s(&app["buildId"]),
        ]
    };
    format!("/submit/telemetry/{id}/{}", dims.join("/"))
}

/// Every real ping of the test data (JSON files, `id<TAB>json` files, the records of the real
/// raw log), POSTed gzip-compressed as a client sends it to a server on default settings (live
/// conversion in `keep` mode), ends up stored: nothing in the error stream.
#[test]
fn every_real_ping_posted_to_a_default_server_is_stored() {
    let mut submissions: Vec<(String, Vec<u8>)> = Vec::new();
    let dir = common::data("pings");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    for name in &names {
        let path = dir.join(name);
        if name.ends_with(".json") {
            let body = std::fs::read(&path).unwrap();
            let doc: serde_json::Value = serde_json::from_slice(&body).unwrap();
            let id = format!("real-{}", name.trim_end_matches(".json"));
            submissions.push((natural_path(&id, &doc), body));
        } else if name.ends_with(".tsv") {
            for line in std::fs::read_to_string(&path).unwrap().lines() {
                let (id, json) = line.split_once('\t').unwrap();
                let doc: serde_json::Value = serde_json::from_str(json).unwrap();
                // The two anonymised toolbox pings share one id: made distinct, or the second
                // would (rightly) be a duplicate.
                let id = format!("{id}-{}", submissions.len());
                submissions.push((natural_path(&id, &doc), json.as_bytes().to_vec()));
            }
        } else if name.ends_with(".finished") {
            for record in telemetry_server::rawlog::open(&path).unwrap() {
                let record = record.unwrap();
                submissions.push((format!("/submit/telemetry/{}", record.path), record.body));
            }
        }
    }
    assert!(submissions.len() >= 12, "{}", submissions.len());

    let mut server = TestServer::start(converting);
    let client = Client::new();
    for (path, body) in &submissions {
        let body = match body.starts_with(&[0x1f, 0x8b]) {
            true => body.clone(),
            false => gzip(body),
        };
        let response = client.post(server.url(path)).body(body).send().unwrap();
        assert_eq!(response.status().as_u16(), 200, "{path}");
    }
    let data = server.data_dir();
    let ids: Vec<String> = submissions
        .iter()
        .map(|(path, _)| path.split('/').nth(3).unwrap().to_owned())
        .collect();
    wait_for("every real ping stored", || {
        let stored: std::collections::BTreeSet<String> = stored_lines(&data)
            .iter()
            .map(|l| l.split('\t').next().unwrap().to_owned())
            .collect();
        ids.iter().all(|id| stored.contains(id)) || !error_entries(&data).is_empty()
    });
    server.stop();
    let errors = error_entries(&data);
    assert!(errors.is_empty(), "rejected: {errors:?}");
    let lines = stored_lines(&data);
    assert_eq!(lines.len(), ids.len(), "each stored once");
    for line in &lines {
        let (_, json) = line.split_once('\t').unwrap();
        let doc: serde_json::Value = serde_json::from_str(json).unwrap();
        assert!(doc["info"].is_object(), "{json:.300}");
    }
}
