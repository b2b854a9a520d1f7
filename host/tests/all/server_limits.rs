//! The bounds of issue 11 on the ingest side, over real HTTP against an in-process server:
//! idle, slow-header and slow-body connections are closed by their deadlines while normal POSTs
//! keep succeeding; the connection cap applies back-pressure; an unauthenticated upload gets its
//! 401 without its body being read; hostile `/histograms?revision=` lookups leave a bounded cache
//! and do not evict real definitions; a hostile rejected body leaves a bounded line in `errors/`;
//! hostile dimension values are stored as `OTHER`.

use crate::common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::server_support::{gzip, metric, walk, TestServer};
use reqwest::blocking::Client;

const PING_PATH: &str =
    "76f4594f-e90d-e26b-31a6-8fbba68d1403/saved-session/Firefox/40.0a2/aurora/20150522004047";

fn saved_session() -> Vec<u8> {
    std::fs::read(common::data(
        "pings/v4.saved-session.Fx40.0a2-aurora.2015-05.uberi.json",
    ))
    .unwrap()
}

/// Reads until the peer closes the connection (or `limit` passes); returns what was read and
/// whether the connection was closed within the limit.
fn read_until_closed(stream: &mut TcpStream, limit: Duration) -> (String, bool) {
    let start = Instant::now();
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    stream
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    while start.elapsed() < limit {
        match stream.read(&mut buf) {
            Ok(0) => return (String::from_utf8_lossy(&out).into_owned(), true),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return (String::from_utf8_lossy(&out).into_owned(), true), // reset: closed too
        }
    }
    (String::from_utf8_lossy(&out).into_owned(), false)
}

fn post_ping(client: &Client, server: &TestServer, body: &[u8]) -> u16 {
    client
        .post(server.url(&format!("/submit/telemetry/{PING_PATH}")))
        .header("Content-Encoding", "gzip")
        .body(body.to_vec())
        .send()
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
}

#[test]
fn idle_slow_header_and_slow_body_connections_are_closed_while_posts_succeed() {
    let server = TestServer::start(|c| {
        c.server.header_read_timeout_secs = 1;
        c.server.idle_timeout_secs = 1;
        c.server.body_read_timeout_secs = 2;
    });
    let ping = gzip(&saved_session());
    let client = Client::builder()
        .timeout(Duration::from_secs(10))
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    // An idle socket, a slowloris head (one byte every 200 ms, never finished), a slow body.
    let mut idle = TcpStream::connect(server.addr).unwrap();
    let mut slow_head = TcpStream::connect(server.addr).unwrap();
    let mut slow_body = TcpStream::connect(server.addr).unwrap();
    slow_body
        .write_all(format!("POST /submit/telemetry/{PING_PATH} HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{{\"ver\"").as_bytes())
        .unwrap();
    let dripper = std::thread::spawn(move || {
        let head = b"GET /status HTTP/1.1\r\nHost: x\r\nX-Padding: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
        for byte in head {
            if slow_head.write_all(&[*byte]).is_err() {
                return (slow_head, true);
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        (slow_head, false)
    });
    // Meanwhile normal POSTs keep succeeding.
    for _ in 0..5 {
        assert_eq!(post_ping(&client, &server, &ping), 200);
        std::thread::sleep(Duration::from_millis(200));
    }
    let (_, idle_closed) = read_until_closed(&mut idle, Duration::from_secs(10));
    assert!(
        idle_closed,
        "an idle connection is closed after server.idle_timeout_secs"
    );
    let (answer, body_closed) = read_until_closed(&mut slow_body, Duration::from_secs(10));
    assert!(body_closed, "a slow body is cut off");
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    let (mut slow_head, write_failed) = dripper.join().unwrap();
    let (answer, head_closed) = read_until_closed(&mut slow_head, Duration::from_secs(10));
    assert!(write_failed || head_closed, "a slowloris head is cut off");
    assert!(!answer.contains("200 OK"), "{answer}");
    assert_eq!(post_ping(&client, &server, &ping), 200);
    let metrics = server.metrics();
    for kind in ["idle", "header", "body"] {
        let value = metric(
            &metrics,
            &format!("telemetry_http_timeouts_total{{kind=\"{kind}\"}}"),
        );
        assert!(value.is_some_and(|v| v >= 1.0), "{kind}: {metrics}");
    }
}

#[test]
fn the_connection_cap_stops_accepting_until_a_connection_closes() {
    let server = TestServer::start(|c| {
        c.server.max_connections = 3;
        c.server.idle_timeout_secs = 60;
    });
    let holders: Vec<TcpStream> = (0..3)
        .map(|_| TcpStream::connect(server.addr).unwrap())
        .collect();
    // Give the accept loop time to take all three permits.
    std::thread::sleep(Duration::from_millis(1000));
    // The fourth connects (kernel backlog) but is not served while the three are open.
    let mut waiting = TcpStream::connect(server.addr).unwrap();
    waiting
        .write_all(b"GET /status HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    waiting
        .set_read_timeout(Some(Duration::from_millis(700)))
        .unwrap();
    let mut buf = [0u8; 256];
    let early = waiting.read(&mut buf);
    assert!(
        matches!(&early, Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut)),
        "no answer while at the cap: {early:?}"
    );
    drop(holders);
    let (answer, closed) = read_until_closed(&mut waiting, Duration::from_secs(10));
    assert!(
        closed && answer.starts_with("HTTP/1.1 200"),
        "served once a permit is free: {answer}"
    );
    let metrics = server.metrics();
    assert!(
        metric(&metrics, "telemetry_http_connections_throttled_total").is_some_and(|v| v >= 1.0),
        "{metrics}"
    );
    assert!(
        metric(&metrics, "telemetry_http_connections_accepted_total").is_some_and(|v| v >= 5.0),
        "{metrics}"
    );
    assert!(
        metric(&metrics, "telemetry_http_open_connections").is_some_and(|v| v <= 3.0),
        "{metrics}"
    );
}

#[test]
fn an_unauthenticated_upload_is_refused_before_its_body_is_read() {
    let server = TestServer::start(|c| {
        c.jobs.tokens = vec![telemetry_server::api::jobs::TokenConfig {
            name: "alice".into(),
            sha256: telemetry_server::api::jobs::hash_token("alice-secret"),
            role: telemetry_server::api::jobs::Role::Submit,
        }];
    });
    for (path, auth) in [
        ("/api/v1/jobs", ""),
        ("/api/v1/components", "Authorization: Bearer wrong\r\n"),
    ] {
        let mut stream = TcpStream::connect(server.addr).unwrap();
        // Announce 60 MB, send only the head and 1 KiB: the answer must not wait for the rest.
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: x\r\n{auth}Content-Type: multipart/form-data; boundary=XYZ\r\nContent-Length: 62914560\r\n\r\n"
        );
        stream.write_all(head.as_bytes()).unwrap();
        stream.write_all(&[b'z'; 1024]).unwrap();
        let (answer, _) = read_until_closed(&mut stream, Duration::from_secs(5));
        assert!(answer.starts_with("HTTP/1.1 401"), "{path}: {answer:?}");
    }
}

#[test]
fn hostile_revision_lookups_stay_bounded_and_do_not_evict_real_definitions() {
    let server = TestServer::start(|c| {
        c.convert.histogram_cache_entries = 4;
        c.convert.histogram_cache_misses = 50;
    });
    let client = Client::new();
    let real = "https://hg.mozilla.org/releases/mozilla-release/rev/a55c55edf302";
    let lookup = |revision: &str| {
        client
            .get(server.url("/histograms"))
            .query(&[("revision", revision)])
            .send()
            .unwrap()
            .status()
            .as_u16()
    };
    assert_eq!(lookup(real), 200);
    for i in 0..200u32 {
        let rev = format!("{:040x}", 0xdead_0000_u64 + u64::from(i));
        assert_eq!(
            lookup(&format!("https://hg.mozilla.org/mozilla-central/rev/{rev}")),
            404
        );
    }
    // Not hg hashes (too long, too short) and a repository that is no path: refused before any work.
    let long = "a".repeat(30_000);
    for bad in [
        format!("https://hg.mozilla.org/mozilla-central/rev/{long}"),
        "https://hg.mozilla.org/mozilla-central/rev/abc".to_string(),
        format!(
            "https://hg.mozilla.org/{}/rev/a55c55edf302",
            "x/".repeat(100)
        ),
    ] {
        let response = client
            .get(server.url("/histograms"))
            .query(&[("revision", &bad)])
            .send()
            .unwrap();
        assert_eq!(response.status(), 404);
        assert!(
            response.text().unwrap().len() < 1024,
            "the answer does not echo the whole revision"
        );
    }
    assert_eq!(
        lookup(real),
        200,
        "a flood of misses does not evict definitions"
    );
    let metrics = server.metrics();
    assert_eq!(
        metric(&metrics, "telemetry_revision_cache_miss_entries"),
        Some(50.0),
        "{metrics}"
    );
    assert_eq!(
        metric(&metrics, "telemetry_revision_cache_entries"),
        Some(1.0),
        "{metrics}"
    );
    assert!(
        metric(&metrics, "telemetry_revision_cache_evictions_total").is_some_and(|v| v >= 150.0),
        "{metrics}"
    );
    assert_eq!(
        metric(&metrics, "telemetry_revision_rejected_total"),
        Some(3.0),
        "{metrics}"
    );
}

/// The last `n` complete lines of every file under `errors/`.
fn error_lines(data: &Path) -> Vec<String> {
    let dir = data.join("errors");
    walk(&dir)
        .into_iter()
        .flat_map(|rel| common::complete_lines(&dir.join(rel)))
        .collect()
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

fn converting(c: &mut telemetry_server::config::Config) {
    c.convert.enabled = true;
    c.convert.flush_secs = 1;
    c.convert.scan_interval_secs = 1;
    c.ingest.max_log_age_ms = 200;
}

/// The seed's classic idle-daily ping (Firefox 23.0.1, gzip, `info` at the top): (path, JSON).
fn idle_daily() -> (String, serde_json::Value) {
    let mut log =
        telemetry_server::rawlog::open(&common::data("seed/worker-test-data/telemetry1.log"))
            .unwrap();
    let record = log.next().unwrap().unwrap();
    let mut json = Vec::new();
    flate2::read::GzDecoder::new(&record.body[..])
        .read_to_end(&mut json)
        .unwrap();
    (record.path, serde_json::from_slice(&json).unwrap())
}

#[test]
fn a_rejected_gzip_bomb_leaves_a_bounded_error_line_and_odd_dimensions_become_other() {
    let mut server = TestServer::start(converting);
    let client = Client::new();
    // 20 MB of JSON string inflating from a small gzip body, never closed: rejected.
    let mut bomb_json =
        b"{\"ver\": 1, \"info\": {\"revision\": \"https://hg.mozilla.org/m-c/rev/".to_vec();
    bomb_json.resize(bomb_json.len() + (20 << 20), b'f');
    let bomb = gzip(&bomb_json);
    assert!(bomb.len() < 204_800, "fits the body limit: {}", bomb.len());
    let bomb_status = client
        .post(
            server.url("/submit/telemetry/bomb-1/idle-daily/Firefox/23.0.1/release/20130814063812"),
        )
        .header("Content-Encoding", "gzip")
        .body(bomb)
        .send()
        .unwrap()
        .status();
    assert_eq!(bomb_status, 200);
    // A good ping whose appVersion is 200 bytes and whose build id has a space and a slash in it.
    let (path, mut doc) = idle_daily();
    let long_version = "2".repeat(200);
    doc["info"]["appVersion"] = serde_json::json!(long_version);
    doc["info"]["appBuildID"] = serde_json::json!("2013 08/../x");
    let status = client
        .post(server.url(&format!("/submit/telemetry/{path}")))
        .body(gzip(doc.to_string().as_bytes()))
        .send()
        .unwrap()
        .status();
    assert_eq!(status, 200);
    let data = server.data_dir();
    wait_for("the bomb rejected", || {
        error_lines(&data).iter().any(|l| l.contains("bomb-1"))
    });
    let stored = |data: &Path| -> Vec<String> {
        walk(&data.join("storage"))
            .iter()
            .map(|p| p.to_string_lossy().into_owned())
            .filter(|p| !p.ends_with(".partial"))
            .collect()
    };
    wait_for("the odd ping stored", || !stored(&data).is_empty());
    server.stop();
    let max_body = telemetry_server::convert::ErrorStreamConfig::default().max_body_bytes;
    let mut bombs = 0;
    for line in error_lines(&data) {
        let entry: serde_json::Value = serde_json::from_str(&line).unwrap();
        let limit = max_body + 4 * telemetry_server::convert::error_limits::MAX_FIELD_BYTES + 1024;
        assert!(line.len() < limit, "{} bytes", line.len());
        if line.contains("bomb-1") {
            bombs += 1;
            // Kept as received (its inflated 20 MiB do not fit): whole, compressed, convertible.
            use base64::Engine;
            let kept = base64::engine::general_purpose::STANDARD
                .decode(
                    entry["body_base64"]
                        .as_str()
                        .unwrap_or_else(|| panic!("{}", &line[..300])),
                )
                .unwrap();
            assert_eq!(&kept[..2], &[0x1f, 0x8b], "the gzip body as sent");
            assert!(kept.len() < 64 << 10, "{} bytes", kept.len());
            assert!(entry.get("body_truncated").is_none(), "{}", &line[..300]);
        }
    }
    assert_eq!(bombs, 1);
    let stored = stored(&data);
    for path in &stored {
        assert!(
            path.split('/').all(|c| c.len() <= 80),
            "no long path component: {path}"
        );
    }
    assert!(
        stored
            .iter()
            .any(|p| p.contains("OTHER") && p.contains("idle_daily")),
        "{stored:?}"
    );
}

/// Writes `bytes` bytes at `rel` under `dir`, last modified `age_secs` ago.
fn aged_file(dir: &Path, rel: &str, bytes: usize, age_secs: u64) {
    let path = dir.join(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, vec![b'x'; bytes]).unwrap();
    let when = std::time::SystemTime::now() - Duration::from_secs(age_secs);
    std::fs::File::options()
        .write(true)
        .open(&path)
        .unwrap()
        .set_modified(when)
        .unwrap();
}

#[test]
fn retention_sweeps_old_and_excess_files_out_of_every_growing_directory() {
    const DAY: u64 = 24 * 3600;
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    // Old enough for the age rule in each directory, plus young files the size rule trims.
    aged_file(&data, "errors/convert-old.ndjson", 1000, 20 * DAY);
    aged_file(&data, "errors/convert-recent.ndjson", 1000, 2 * DAY);
    aged_file(
        &data,
        "raw/converted/telemetry.log.v2.h.1_0.1.finished",
        1000,
        40 * DAY,
    );
    aged_file(
        &data,
        "raw/failed/telemetry.log.v2.h.1_0.2.finished",
        1000,
        40 * DAY,
    );
    aged_file(
        &data,
        "histograms/mozilla-central/0123456789ab/Histograms.json",
        3000,
        3 * DAY,
    );
    aged_file(
        &data,
        "histograms/mozilla-central/0123456789ac/Histograms.json",
        3000,
        2 * DAY,
    );
    aged_file(
        &data,
        "histograms/mozilla-central/0123456789ad/Histograms.json",
        3000,
        0,
    );
    let mut config = telemetry_server::config::Config {
        data_dir: data.clone(),
        ..Default::default()
    };
    config.server.listen = "127.0.0.1:0".parse().unwrap();
    config.ingest.shards = 2;
    config.convert.enabled = false;
    config.retention.histograms_max_bytes = 5000;
    let server = TestServer::start_with(root, config);
    let gone = |rel: &str| !data.join(rel).exists();
    // The histograms directory is swept last; its gauge appears once it is done.
    wait_for("the first sweep", || {
        metric(
            &server.metrics(),
            "telemetry_retention_dir_bytes{dir=\"histograms\"}",
        )
        .is_some()
    });
    assert!(
        gone("errors/convert-old.ndjson") && gone("histograms/mozilla-central/0123456789ab"),
        "empty directories go too"
    );
    assert!(gone("raw/converted/telemetry.log.v2.h.1_0.1.finished"));
    assert!(gone("raw/failed/telemetry.log.v2.h.1_0.2.finished"));
    assert!(
        gone("histograms/mozilla-central/0123456789ac/Histograms.json"),
        "oldest first until 5000 bytes fit"
    );
    assert!(
        !gone("errors/convert-recent.ndjson"),
        "younger than errors_max_age_secs"
    );
    assert!(
        !gone("histograms/mozilla-central/0123456789ad/Histograms.json"),
        "younger than min_age_secs"
    );
    let metrics = server.metrics();
    for (dir, rule, files) in [
        ("errors", "age", 1.0),
        ("raw_converted", "age", 1.0),
        ("raw_failed", "age", 1.0),
        ("histograms", "bytes", 2.0),
    ] {
        let prefix =
            format!("telemetry_retention_removed_files_total{{dir=\"{dir}\",rule=\"{rule}\"}}");
        assert_eq!(
            metric(&metrics, &prefix),
            Some(files),
            "{prefix}: {metrics}"
        );
    }
    assert_eq!(
        metric(
            &metrics,
            "telemetry_retention_dir_bytes{dir=\"histograms\"}"
        ),
        Some(3000.0),
        "{metrics}"
    );
}
