//! Job results are streamed from disk to clients, never loaded whole: a real `serve` process
//! answers two concurrent downloads (text and CSV) of a large stored result correctly while its
//! resident memory grows by far less than the result's size.

use crate::jobs_support::{run_job_over_http, tiny_data};
use crate::server_support::ServeProcess;
use reqwest::blocking::Client;
use sha2::{Digest, Sha256};
use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use telemetry_server::api::jobs::hash_token;

const TOKEN: &str = "stream-test-token";
/// Lines of the large result (`key-<i>\t<i>`, ~23 bytes each: ~190 MiB).
const LINES: u64 = 8_000_000;
/// Growth of the server's RSS allowed during the two downloads (each used to hold the result,
/// and the text route a copy of it: ~4 × the result size).
const RSS_GROWTH_CAP: u64 = 48 << 20;

fn rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    kib << 10
}

fn line(i: u64) -> String {
    format!("key-{i:09}\t{i}\n")
}

/// Streams a response body into SHA-256; returns (digest, bytes).
fn digest(mut body: impl Read) -> (String, u64) {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut total = 0;
    loop {
        let n = body.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        total += n as u64;
    }
    (hex::encode(hasher.finalize()), total)
}

#[test]
fn a_large_result_streams_to_two_clients_without_growing_the_server_by_its_size() {
    let data = tiny_data(&[("a", r#"{"info":{"OS":"Linux"}}"#)]);
    let config = data.path().join("server.toml");
    std::fs::write(
        &config,
        format!(
            "[[jobs.tokens]]\nname = \"alice\"\nsha256 = \"{}\"\nrole = \"submit\"\n",
            hash_token(TOKEN)
        ),
    )
    .unwrap();
    let server = ServeProcess::start(&config, data.path());
    let addr = &server.addr;
    let http = Client::builder()
        .timeout(Duration::from_secs(300))
        .build()
        .unwrap();
    let url = |path: &str| format!("http://{addr}{path}");

    let id = run_job_over_http(&http, &url(""), TOKEN, "simple-counter-rust");

    // The job's stored result, replaced by a large one (written aside, renamed into place).
    let results = data.path().join("jobs/results");
    let tmp = results.join("big.tmp");
    let (mut text_sha, mut csv_sha) = (Sha256::new(), Sha256::new());
    csv_sha.update(b"key,value\r\n");
    {
        let mut out = std::io::BufWriter::new(std::fs::File::create(&tmp).unwrap());
        for i in 0..LINES {
            let l = line(i);
            out.write_all(l.as_bytes()).unwrap();
            text_sha.update(l.as_bytes());
            csv_sha.update(format!("key-{i:09},{i}\r\n").as_bytes());
        }
        out.flush().unwrap();
    }
    let size = std::fs::metadata(&tmp).unwrap().len();
    std::fs::rename(&tmp, results.join(format!("{id}.txt"))).unwrap();
    let (text_sha, csv_sha) = (
        hex::encode(text_sha.finalize()),
        hex::encode(csv_sha.finalize()),
    );

    let pid = server.child.id();
    let before = rss_bytes(pid);
    let (peak, done) = (
        Arc::new(AtomicU64::new(before)),
        Arc::new(AtomicBool::new(false)),
    );
    let sampler = {
        let (peak, done) = (peak.clone(), done.clone());
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                peak.fetch_max(rss_bytes(pid), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(10));
            }
        })
    };
    let download = |format: &'static str| {
        let (http, url) = (http.clone(), url(&format!("/api/v1/jobs/{id}/result")));
        std::thread::spawn(move || {
            let r = http
                .get(url)
                .query(&[("format", format)])
                .bearer_auth(TOKEN)
                .send()
                .unwrap();
            assert_eq!(r.status().as_u16(), 200);
            let length = r.content_length();
            let (sha, bytes) = digest(r);
            (sha, bytes, length)
        })
    };
    let (text, csv) = (download("text"), download("csv"));
    let (text, csv) = (text.join().unwrap(), csv.join().unwrap());
    done.store(true, Ordering::Relaxed);
    sampler.join().unwrap();

    assert_eq!((text.0.as_str(), text.1), (text_sha.as_str(), size));
    assert_eq!(text.2, Some(size), "the text result has a Content-Length");
    assert_eq!(csv.0, csv_sha, "the CSV rendering of every line");
    let growth = peak.load(Ordering::Relaxed).saturating_sub(before);
    eprintln!(
        "result {} MiB, two downloads: server RSS {} MiB -> peak +{} MiB",
        size >> 20,
        before >> 20,
        growth >> 20
    );
    assert!(
        growth < RSS_GROWTH_CAP,
        "server RSS grew by {} MiB during two downloads of a {} MiB result",
        growth >> 20,
        size >> 20
    );
    server.kill();
}
