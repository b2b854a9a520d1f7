//! The real `telemetry-server serve` process: starts with no config file, accepts a real ping, and
//! on SIGTERM drains, finishes its logs and exits 0; its logs as text or JSON.

use crate::common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::server_support::{files, finished_records, listening_address, ServeProcess};

/// `serve --log-format FORMAT` on a free port over `data` with no config file and no live
/// conversion; the address is found in a stderr line by `address`.
fn serve_without_config(
    log_format: &str,
    data: &std::path::Path,
    address: fn(&str) -> Option<String>,
) -> ServeProcess {
    let args: Vec<std::ffi::OsString> = vec![
        "--log-format".into(),
        log_format.into(),
        "serve".into(),
        "--convert".into(),
        "false".into(),
        "--data-dir".into(),
        data.into(),
    ];
    ServeProcess::start_with(&args, address)
}

/// POSTs the one record of the real v2 raw log (its gzip body) to its submission URL on `addr`,
/// asserting a 200; returns the body sent.
fn post_real_ping(addr: &str) -> Vec<u8> {
    let ping = std::fs::read(common::data(
        "pings/rawlog-v2.saved-session.Fx40.0a2-aurora.2015-05.uberi.finished",
    ))
    .unwrap();
    let body = ping[16 + 9 + 87..].to_vec(); // the gzip body of the seed's one-record v2 log
    let url = format!("http://{addr}/submit/telemetry/76f4594f-e90d-e26b-31a6-8fbba68d1403/saved-session/Firefox/40.0a2/aurora/20150522004047");
    let response = reqwest::blocking::Client::new()
        .post(url)
        .body(body.clone())
        .send()
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    body
}

#[test]
fn serve_accepts_then_drains_on_sigterm_and_exits_zero() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let server = serve_without_config("text", &data, listening_address);

    let body = post_real_ping(&server.addr);

    let log = server.terminate_ok();
    assert!(log.contains("raw logs synced and finished"), "{log}");
    assert!(
        !log.contains('\x1b'),
        "no terminal colour codes when stderr is not a terminal:\n{log}"
    );
    let raw = data.join("raw");
    assert!(
        files(&raw).iter().all(|n| n.ends_with(".finished")),
        "{:?}",
        files(&raw)
    );
    let records = finished_records(&raw);
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].body, body);
}

/// `--log-format json`: everything `serve` writes to stderr, from the address it listens on to
/// its shutdown, is one JSON object per line with a timestamp, a level and a message.
#[test]
fn json_logs_are_one_object_per_line() {
    let tmp = tempfile::tempdir().unwrap();
    let server = serve_without_config("json", &tmp.path().join("data"), |line| {
        let event: serde_json::Value = serde_json::from_str(line).ok()?;
        let message = event["fields"]["message"].as_str()?;
        listening_address(message)
    });
    assert_eq!(
        reqwest::blocking::get(format!("http://{}/status", server.addr))
            .unwrap()
            .status()
            .as_u16(),
        200
    );
    let events: Vec<serde_json::Value> = server
        .terminate_ok()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(events.len() >= 3, "{events:?}");
    for event in &events {
        assert!(
            event["level"].is_string() && event["timestamp"].is_string(),
            "{event}"
        );
        assert!(event["fields"]["message"].is_string(), "{event}");
    }
    assert!(
        events
            .iter()
            .any(|e| e["fields"]["message"] == "SIGTERM received"),
        "{events:?}"
    );
}

/// Every file and directory `serve` leaves under its data directory, after ingesting and
/// converting a real ping, is its user's alone (umask `077`), and a data directory created more
/// open beforehand is tightened; with `umask = "027"` the group may read.
#[test]
fn the_data_dir_is_private_to_the_servers_user() {
    use std::os::unix::fs::PermissionsExt;
    for (umask, open_bits) in [(None, 0o077), (Some("027"), 0o027)] {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("data");
        std::fs::create_dir(&data).unwrap();
        std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
        let config = tmp.path().join("server.toml");
        let umask_line = umask
            .map(|u| format!("umask = \"{u}\"\n"))
            .unwrap_or_default();
        std::fs::write(
            &config,
            format!(
                "[server]\n{umask_line}[ingest]\nmax_log_age_ms = 200\n\
                 [convert]\nenabled = true\nflush_secs = 1\nscan_interval_secs = 1\n"
            ),
        )
        .unwrap();
        let server = ServeProcess::start(&config, &data);
        post_real_ping(&server.addr);
        server.wait_for("the ping to be stored", Duration::from_secs(60), |_| {
            crate::server_support::walk(&data.join("storage"))
                .iter()
                .any(|p| !p.to_string_lossy().ends_with(".partial"))
        });
        server.terminate_ok();

        let root_mode = std::fs::metadata(&data).unwrap().permissions().mode() & 0o777;
        assert_eq!(root_mode, 0o755 & !open_bits, "data dir tightened");
        let mut checked = 0;
        let mut stack = vec![data.clone()];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let entry = entry.unwrap();
                let meta = entry.metadata().unwrap();
                let mode = meta.permissions().mode() & 0o777;
                assert_eq!(
                    mode & open_bits,
                    0,
                    "{} is {mode:o} under umask {open_bits:03o}",
                    entry.path().display()
                );
                checked += 1;
                if meta.is_dir() {
                    stack.push(entry.path());
                }
            }
        }
        assert!(
            checked >= 6,
            "raw/, storage/ and their files were checked ({checked})"
        );
        if umask.is_some() {
            let stored = crate::server_support::walk(&data.join("storage"));
            let mode = std::fs::metadata(data.join("storage").join(&stored[0]))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(
                mode & 0o040,
                0o040,
                "umask 027 lets the group read stored pings"
            );
        }
    }
}

/// A bad `[s3]` section fails `serve` before any side effect: the process exits non-zero with the
/// reason, and the data directory (recovery, live conversion, the writers, the job service and
/// the exporter would all create things under it) is never even created.
#[test]
fn a_bad_s3_section_fails_serve_before_anything_is_created() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let config = tmp.path().join("server.toml");
    std::fs::write(
        &config,
        format!(
            "data_dir = {data:?}\n[server]\nlisten = \"127.0.0.1:0\"\n[s3]\nbucket = \"telemetry\"\n\
             endpoint = \"http://127.0.0.1:9\"\naccess_key_id = \"k\"\nsecret_access_key = \"s\"\n\
             part_size = 1\nmultipart_threshold = 1\n"
        ),
    )
    .unwrap();
    let mut child = Command::new(common::binary())
        .arg("serve")
        .arg("--config")
        .arg(&config)
        .env_remove("TELEMETRY_DATA_DIR")
        .env_remove("TELEMETRY_LISTEN")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("serve with a bad [s3] section still runs after 30 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(!status.success(), "serve started: {stderr}");
    let reason = format!(
        "part_size 1 is below the S3 minimum of {} bytes",
        telemetry_server::s3::MIN_PART_SIZE
    );
    assert!(
        stderr.contains(&reason),
        "stderr does not say {reason:?}: {stderr}"
    );
    assert!(
        !data.exists(),
        "the data directory was created before the config was checked: {:?}",
        files(&data)
    );
}
