//! The submission API over real HTTP: every status code the seed answered plus ours, real pings in
//! (gzip and plain) and out of the raw logs byte for byte, the path-escape attempt, metrics.

use crate::common;

use crate::server_support::{files, finished_records, gzip, raw_http, walk, TestServer};
use reqwest::blocking::Client;
use telemetry_server::config::OversizeStatus;

const PING_PATH: &str =
    "76f4594f-e90d-e26b-31a6-8fbba68d1403/saved-session/Firefox/40.0a2/aurora/20150522004047";

fn saved_session() -> Vec<u8> {
    std::fs::read(common::data(
        "pings/v4.saved-session.Fx40.0a2-aurora.2015-05.uberi.json",
    ))
    .unwrap()
}

#[test]
fn real_pings_gzip_and_plain_are_stored_as_received() {
    let mut server = TestServer::start(|_| {});
    let client = Client::new();
    let plain = saved_session();
    let gzipped = gzip(&plain);
    let crash = std::fs::read(common::data(
        "pings/v4.crash.Fx61.0a1-nightly.2018-04.pipeline-schemas.json",
    ))
    .unwrap();
    let sent = [
        (
            format!("/submit/telemetry/{PING_PATH}"),
            gzipped.clone(),
            true,
        ),
        (
            format!("/submit/telemetry/{PING_PATH}?v=4"),
            plain.clone(),
            false,
        ),
        (
            "/submit/telemetry/crash-1/crash/Firefox/61.0a1/nightly/20180404100136".to_string(),
            crash.clone(),
            false,
        ),
    ];
    for (i, (path, body, gz)) in sent.iter().enumerate() {
        let mut request = client.post(server.url(path)).body(body.clone());
        if *gz {
            request = request.header("Content-Encoding", "gzip");
        }
        // Alternate PUT (Bagheera) and POST.
        if i == 1 {
            request = client.put(server.url(path)).body(body.clone());
        }
        let response = request.send().unwrap();
        assert_eq!(response.status().as_u16(), 200, "{path}");
        assert_eq!(response.text().unwrap(), "OK");
    }
    server.stop();

    let raw = server.data_dir().join("raw");
    assert!(
        files(&raw).iter().all(|n| n.ends_with(".finished")),
        "every log finished on shutdown: {:?}",
        files(&raw)
    );
    let mut records = finished_records(&raw);
    records.sort_by_key(|r| r.body.len());
    assert_eq!(records.len(), 3);
    let bodies: Vec<&[u8]> = records.iter().map(|r| r.body.as_slice()).collect();
    assert_eq!(
        bodies,
        vec![crash.as_slice(), gzipped.as_slice(), plain.as_slice()],
        "bodies stored byte for byte"
    );
    assert_eq!(
        records[1].path, PING_PATH,
        "query string dropped, prefix removed"
    );
    assert_eq!(records[2].path, PING_PATH);
    assert!(records.iter().all(|r| r.ip == "127.0.0.1"));
    let now = telemetry_server::rawlog::logname::now_ms();
    assert!(records
        .iter()
        .all(|r| r.timestamp_ms <= now && r.timestamp_ms > now - 60_000));
}

#[test]
fn seed_status_codes_and_bodies() {
    let server = TestServer::start(|c| {
        c.server.max_data_length = 1000;
        c.server.max_path_length = 64;
    });
    let client = Client::new();
    let post = |path: &str, body: Vec<u8>| {
        let r = client.post(server.url(path)).body(body).send().unwrap();
        (r.status().as_u16(), r.text().unwrap())
    };
    // 200
    assert_eq!(
        post("/submit/telemetry/id/main", b"{}".to_vec()),
        (200, "OK".into())
    );
    // 411: zero length, no length (chunked), unparsable length
    assert_eq!(
        post("/submit/telemetry/id/main", Vec::new()),
        (411, "Missing content length".into())
    );
    let chunked = b"POST /submit/telemetry/id HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n2\r\n{}\r\n0\r\n\r\n";
    assert_eq!(
        raw_http(server.addr, chunked),
        (411, "Missing content length".into())
    );
    // 202 for an oversize body, answered from the header alone (the body is never sent here)
    let big = b"POST /submit/telemetry/id HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\nConnection: close\r\n\r\n";
    let (code, body) = raw_http(server.addr, big);
    assert_eq!(code, 202);
    assert_eq!(
        body,
        "Request too large (5000 bytes). Limit is 1000 bytes. Server will discard submission."
    );
    // 202 for an oversize path
    let long = format!("/submit/telemetry/{}", "a".repeat(65));
    assert_eq!(
        post(&long, b"{}".to_vec()),
        (202, "Path too long (65 bytes). Limit is 64 bytes".into())
    );
    // 404: wrong prefix, unknown namespace, GET elsewhere
    assert_eq!(
        post("/submit/nope/id", b"{}".to_vec()),
        (404, "Not Found".into())
    );
    assert_eq!(
        post("/upload/telemetry/id", b"{}".to_vec()),
        (404, "Not Found".into())
    );
    assert_eq!(
        client
            .get(server.url("/submit/telemetry/id"))
            .send()
            .unwrap()
            .status()
            .as_u16(),
        404
    );
    assert_eq!(
        client
            .get(server.url("/nothing"))
            .send()
            .unwrap()
            .status()
            .as_u16(),
        404
    );
    // 405 for other methods
    let r = client
        .delete(server.url("/submit/telemetry/id"))
        .send()
        .unwrap();
    assert_eq!(
        r.headers().get("allow").map(|v| v.to_str().unwrap()),
        Some("POST,PUT"),
        "other methods on a submission path say which are allowed"
    );
    assert_eq!(
        (r.status().as_u16(), r.text().unwrap()),
        (405, "Wrong request type".into())
    );
    assert_eq!(
        client
            .patch(server.url("/status"))
            .send()
            .unwrap()
            .status()
            .as_u16(),
        405
    );
    // GET /status
    let r = client.get(server.url("/status")).send().unwrap();
    assert_eq!((r.status().as_u16(), r.text().unwrap()), (200, "OK".into()));

    let metrics = server.metrics();
    for line in [
        "telemetry_http_requests_total{code=\"200\"} 2",
        "telemetry_http_requests_total{code=\"411\"} 2",
        "telemetry_http_requests_total{code=\"202\"} 2",
        "telemetry_http_requests_total{code=\"405\"} 2",
        "telemetry_ingest_written_records_total 1",
    ] {
        assert!(metrics.contains(line), "{line} missing from\n{metrics}");
    }
    assert!(metrics.contains("telemetry_disk_free_bytes "), "{metrics}");
    assert!(
        metrics.contains("telemetry_ingest_fsync_duration_seconds_count"),
        "{metrics}"
    );
}

#[test]
fn http_status_codes_for_oversize_when_selected() {
    let server = TestServer::start(|c| {
        c.server.max_data_length = 10;
        c.server.max_path_length = 8;
        c.server.oversize_status = OversizeStatus::Http;
    });
    let client = Client::new();
    let r = client
        .post(server.url("/submit/telemetry/id"))
        .body(vec![b'x'; 11])
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 413);
    let r = client
        .post(server.url("/submit/telemetry/123456789"))
        .body("{}")
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 414);
}

#[test]
fn a_dimension_cannot_leave_the_data_dir() {
    let mut server = TestServer::start(|_| {});
    let attempts = [
        "/submit/telemetry/..%2F..%2F..%2Fescaped/main/Firefox/1/release/1",
        "/submit/telemetry/../../escaped/main",
        "/submit/telemetry/%2e%2e/%2e%2e/escaped",
        "/submit/telemetry//etc/passwd",
    ];
    for path in attempts {
        // Raw socket: HTTP clients normalise `..` away before sending.
        let request = format!(
            "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{{}}"
        );
        let (code, _) = raw_http(server.addr, request.as_bytes());
        assert_eq!(code, 200, "{path}: stored as data, not as a file name");
    }
    server.stop();
    let outside: Vec<_> = std::fs::read_dir(server.root.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        outside,
        vec![std::ffi::OsString::from("data")],
        "nothing written beside the data dir"
    );
    assert!(walk(&server.data_dir())
        .iter()
        .all(|p| !p.to_string_lossy().contains("escaped")));
    let mut paths: Vec<String> = finished_records(&server.data_dir().join("raw"))
        .into_iter()
        .map(|r| r.path)
        .collect();
    paths.sort();
    assert_eq!(
        paths,
        vec![
            "%2e%2e/%2e%2e/escaped",
            "..%2F..%2F..%2Fescaped/main/Firefox/1/release/1",
            "../../escaped/main",
            "/etc/passwd"
        ]
    );
}

#[test]
fn client_ip_from_a_trusted_proxy_header() {
    let mut server = TestServer::start(|c| {
        c.server.client_ip_header = Some("X-Forwarded-For".into());
        c.server.trusted_proxies = vec!["127.0.0.1".parse().unwrap()];
    });
    let client = Client::new();
    let r = client
        .post(server.url("/submit/telemetry/a"))
        .header("X-Forwarded-For", "203.0.113.7, 10.0.0.1")
        .body("{}")
        .send();
    assert_eq!(r.unwrap().status().as_u16(), 200);
    let r = client
        .post(server.url("/submit/telemetry/b"))
        .header("X-Forwarded-For", "9".repeat(101))
        .body("{}")
        .send();
    assert_eq!(r.unwrap().status().as_u16(), 200);
    server.stop();
    let mut records = finished_records(&server.data_dir().join("raw"));
    records.sort_by(|a, b| a.path.cmp(&b.path));
    assert_eq!(records[0].ip, "203.0.113.7, 10.0.0.1");
    assert_eq!(records[1].ip, "0.0.0.0", "over max_ip_length");
}

#[test]
fn client_ip_header_is_ignored_without_trusted_proxies() {
    let mut server =
        TestServer::start(|c| c.server.client_ip_header = Some("X-Forwarded-For".into()));
    let r = Client::new()
        .post(server.url("/submit/telemetry/a"))
        .header("X-Forwarded-For", "203.0.113.7")
        .body("{}")
        .send();
    assert_eq!(r.unwrap().status().as_u16(), 200);
    server.stop();
    let records = finished_records(&server.data_dir().join("raw"));
    assert_eq!(records.len(), 1);
    assert_eq!(
        records[0].ip, "127.0.0.1",
        "the socket peer, not the header"
    );
}

#[test]
fn stats_log_has_one_seed_line_per_response() {
    let stats = tempfile::NamedTempFile::new().unwrap();
    let mut server = TestServer::start(|c| c.server.stats_log = Some(stats.path().to_path_buf()));
    let client = Client::new();
    assert_eq!(
        client
            .post(server.url("/submit/telemetry/x/y?q=1"))
            .body("{}")
            .send()
            .unwrap()
            .status()
            .as_u16(),
        200
    );
    assert_eq!(
        client
            .post(server.url("/submit/telemetry/x"))
            .body("")
            .send()
            .unwrap()
            .status()
            .as_u16(),
        411
    );
    server.stop();
    // The writer thread flushes when its queue runs dry; give it a moment.
    let mut text = String::new();
    for _ in 0..50 {
        text = std::fs::read_to_string(stats.path()).unwrap();
        if text.lines().count() >= 2 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert_eq!(lines[0]["url"], "/submit/telemetry/x/y?q=1");
    assert_eq!(lines[0]["code"], 200);
    assert_eq!(lines[0]["message"], "OK");
    assert_eq!(lines[0]["size"], 16 + "127.0.0.1".len() + "x/y".len() + 2);
    assert_eq!(lines[1]["code"], 411);
    assert_eq!(lines[1]["size"], 0);
    assert!(lines[0]["timestamp"].as_str().unwrap().ends_with('Z'));
    assert!(lines[0]["duration_ms"].as_f64().unwrap() >= 0.0);
}

#[test]
fn histogram_server_paths_answer_like_the_seed() {
    let server = TestServer::start(|_| {});
    let client = Client::new();
    let revision = "https://hg.mozilla.org/releases/mozilla-aurora/rev/a55c55edf302";
    let get = |path: &str| {
        let r = client.get(server.url(path)).send().unwrap();
        (r.status().as_u16(), r.text().unwrap())
    };
    // The bucket spec matches the one the seed's histogram server cached for this revision, entry
    // for entry. Ours has two more: their ranges are the C++ constants the revision cache patches
    // (docs/formats/histograms.md), which the seed's cached file lacks.
    let (code, body) = get(&format!("/histogram_buckets?revision={revision}"));
    assert_eq!(code, 200);
    let ours: serde_json::Value = serde_json::from_str(&body).unwrap();
    let seed: serde_json::Value = serde_json::from_slice(
        &std::fs::read(common::data(
            "seed/worker-test-data/cache/a55c55edf302.json",
        ))
        .unwrap(),
    )
    .unwrap();
    let (ours, seed) = (
        ours["histograms"].as_object().unwrap(),
        seed["histograms"].as_object().unwrap(),
    );
    assert_eq!(seed.len(), 731);
    for (name, spec) in seed {
        assert_eq!(ours.get(name), Some(spec), "{name}");
    }
    let mut extra: Vec<&String> = ours.keys().filter(|k| !seed.contains_key(*k)).collect();
    extra.sort();
    assert_eq!(extra, ["GC_REASON_2", "STARTUP_MEASUREMENT_ERRORS"]);
    // Percent-encoded revision URLs work too (the seed parsed the query with parse_qs).
    let encoded = "https%3A%2F%2Fhg.mozilla.org%2Freleases%2Fmozilla-aurora%2Frev%2Fa55c55edf302";
    assert_eq!(
        get(&format!("/histogram_buckets?revision={encoded}")).1,
        body
    );
    // The definitions themselves.
    let (code, text) = get(&format!("/histograms?revision={revision}"));
    assert_eq!(code, 200);
    let defs: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert!(defs.get("A11Y_INSTANTIATED_FLAG").is_some());
    // Errors.
    assert_eq!(
        get("/histogram_buckets"),
        (400, "Must provide a revision URL".into())
    );
    let unknown = "https://hg.mozilla.org/mozilla-central/rev/0123456789ab";
    assert_eq!(
        get(&format!("/histograms?revision={unknown}")),
        (404, format!("Not Found: {unknown}"))
    );
    assert_eq!(get("/histogram_buckets?revision=not-a-url").0, 500);
    assert_eq!(
        client
            .head(server.url("/histograms"))
            .send()
            .unwrap()
            .status()
            .as_u16(),
        200
    );
}

#[test]
fn overload_answers_503_with_retry_after_and_loses_nothing_acknowledged() {
    // One shard, one submission in flight at a time, a sync per request: concurrent clients overflow.
    let mut server = TestServer::start(|c| {
        c.ingest.shards = 1;
        c.ingest.queue_capacity = 1;
        c.ingest.durability = telemetry_server::config::Durability::Always;
    });
    let body = gzip(&saved_session());
    let url = server.url("/submit/telemetry");
    let results: Vec<(u16, Option<String>, String)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..16)
            .map(|t| {
                let (url, body) = (url.clone(), body.clone());
                scope.spawn(move || {
                    let client = Client::new();
                    (0..8)
                        .map(|i| {
                            let id = format!("doc-{t}-{i}");
                            let r = client
                                .post(format!("{url}/{id}/main"))
                                .body(body.clone())
                                .send()
                                .unwrap();
                            let retry = r
                                .headers()
                                .get("retry-after")
                                .map(|v| v.to_str().unwrap().to_string());
                            (r.status().as_u16(), retry, id)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    let overloaded: Vec<_> = results.iter().filter(|r| r.0 == 503).collect();
    assert!(
        !overloaded.is_empty(),
        "128 concurrent submissions through one slot never overflowed"
    );
    assert!(
        overloaded.iter().all(|r| r.1.as_deref() == Some("1")),
        "503 carries Retry-After"
    );
    assert!(
        results.iter().all(|r| r.0 == 200 || r.0 == 503),
        "{results:?}"
    );
    server.stop();
    let stored: std::collections::HashSet<String> =
        finished_records(&server.data_dir().join("raw"))
            .into_iter()
            .map(|r| r.path.split('/').next().unwrap().to_string())
            .collect();
    for (code, _, id) in &results {
        assert_eq!(*code == 200, stored.contains(id), "{id}: answered {code}");
    }
}
