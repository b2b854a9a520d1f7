//! Helpers for the server tests: an in-process server on a free port with its own data dir,
//! a raw-socket HTTP client for requests a normal client refuses to send, and raw log readers.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use telemetry_server::api::AppState;
use telemetry_server::config::Config;
use telemetry_server::rawlog::RawRecord;
use telemetry_server::server::Server;

/// The value of a metric line starting with `prefix` (name and labels), if present.
pub fn metric(text: &str, prefix: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.split_whitespace().last()?.parse().ok())
}

/// A server running on its own tokio runtime in a background thread.
pub struct TestServer {
    pub addr: SocketAddr,
    pub state: Arc<AppState>,
    /// Holds `data/` (the data dir); anything else appearing here escaped the data dir.
    pub root: tempfile::TempDir,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TestServer {
    /// Starts a server with test defaults (port 0, 2 shards, no live conversion) changed by `tweak`.
    pub fn start(tweak: impl FnOnce(&mut Config)) -> TestServer {
        let root = tempfile::tempdir().unwrap();
        let mut config = Config {
            data_dir: root.path().join("data"),
            ..Config::default()
        };
        config.server.listen = "127.0.0.1:0".parse().unwrap();
        config.ingest.shards = 2;
        config.convert.enabled = false;
        tweak(&mut config);
        Self::start_with(root, config)
    }

    /// Starts a server with exactly `config` (its data dir should be inside `root`).
    pub fn start_with(root: tempfile::TempDir, config: Config) -> TestServer {
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let server = Server::bind(config).await.expect("server starts");
                ready_tx
                    .send((server.local_addr(), server.state().clone()))
                    .unwrap();
                server
                    .run(async {
                        let _ = stop_rx.await;
                    })
                    .await
                    .expect("server runs and drains");
            });
        });
        let (addr, state) = ready_rx
            .recv_timeout(Duration::from_secs(30))
            .expect("server ready");
        TestServer {
            addr,
            state,
            root,
            stop: Some(stop_tx),
            thread: Some(thread),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub fn data_dir(&self) -> PathBuf {
        self.root.path().join("data")
    }

    /// Graceful shutdown: drains requests, syncs and finishes every log. Idempotent.
    pub fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            thread.join().expect("server thread exits cleanly");
        }
    }

    /// The `/metrics` text.
    pub fn metrics(&self) -> String {
        reqwest::blocking::get(self.url("/metrics"))
            .unwrap()
            .text()
            .unwrap()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Sends `request` verbatim on a new connection and returns (status, body).
pub fn raw_http(addr: SocketAddr, request: &[u8]) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream.write_all(request).unwrap();
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    let text = String::from_utf8_lossy(&response).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {text:?}"));
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

/// Every record in the `.finished` raw logs directly under `dir`, with each log's name.
pub fn finished_records(dir: &Path) -> Vec<RawRecord> {
    let mut records = Vec::new();
    for name in files(dir) {
        if name.ends_with(".finished") {
            for record in telemetry_server::rawlog::open(&dir.join(&name)).unwrap() {
                records.push(record.expect("a record the server wrote is well formed"));
            }
        }
    }
    records
}

/// Names of the regular files directly under `dir`, sorted.
pub fn files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_type().unwrap().is_file())
        .map(|e| e.file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

/// Every file under `dir`, recursively, as paths relative to it (empty if `dir` does not exist;
/// entries renamed while walking are skipped, since the server may be running).
pub fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            if kind.is_dir() {
                stack.push(entry.path());
            } else {
                out.push(entry.path().strip_prefix(dir).unwrap().to_path_buf());
            }
        }
    }
    out.sort();
    out
}

/// gzip-compresses `data`.
pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(data).unwrap();
    enc.finish().unwrap()
}

/// A real `telemetry-server serve` process on a free port, its stderr read line by line on a
/// thread that collects it (and ends with the process). Killed when dropped.
pub struct ServeProcess {
    pub child: std::process::Child,
    /// `host:port` it announced.
    pub addr: String,
    log: Arc<std::sync::Mutex<String>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

/// The address in a text log line `listening on ADDR`.
pub fn listening_address(line: &str) -> Option<String> {
    line.strip_prefix("listening on ").map(str::to_owned)
}

impl ServeProcess {
    /// `serve --config CONFIG --data-dir DATA` (`RUST_LOG=info`).
    pub fn start(config: &Path, data: &Path) -> ServeProcess {
        let mut args: Vec<std::ffi::OsString> = vec!["serve".into(), "--config".into()];
        args.extend([config.into(), "--data-dir".into(), data.into()]);
        ServeProcess::start_with(&args, listening_address)
    }

    /// The binary with `args` (which must include `serve`; `--listen 127.0.0.1:0` is added),
    /// `RUST_LOG=info` and no `TELEMETRY_CONFIG`; returns once a stderr line gives its address
    /// through `address` (within 30 s).
    pub fn start_with(
        args: &[std::ffi::OsString],
        address: fn(&str) -> Option<String>,
    ) -> ServeProcess {
        let mut child = std::process::Command::new(crate::common::binary())
            .args(args)
            .args(["--listen", "127.0.0.1:0"])
            .env("RUST_LOG", "info")
            .env_remove("TELEMETRY_CONFIG")
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let (addr, log, reader) = capture_stderr(&mut child, address, "server");
        ServeProcess {
            child,
            addr,
            log,
            reader: Some(reader),
        }
    }

    /// What it wrote to stderr so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// A counter or gauge from `/metrics` (0 when absent).
    pub fn metric(&self, name: &str) -> u64 {
        let text = reqwest::blocking::get(format!("http://{}/metrics", self.addr))
            .unwrap()
            .text()
            .unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix(name).and_then(|v| v.strip_prefix(' ')))
            .map_or(0, |v| v.trim().parse().unwrap())
    }

    /// Polls `done` every 100 ms until it holds; fails naming `what` (with the log) after
    /// `timeout`.
    pub fn wait_for(&self, what: &str, timeout: Duration, mut done: impl FnMut(&Self) -> bool) {
        let start = std::time::Instant::now();
        while !done(self) {
            assert!(
                start.elapsed() < timeout,
                "timed out waiting for {what}; log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// SIGKILL: no drain, no flush.
    pub fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// SIGTERM, then its exit status (within 60 s) and its whole log (read to the end, after
    /// the process closed stderr).
    pub fn terminate(mut self) -> (std::process::ExitStatus, String) {
        let status = std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let start = std::time::Instant::now();
        let exit = loop {
            if let Some(exit) = self.child.try_wait().unwrap() {
                break exit;
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "no exit after SIGTERM; log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        if let Some(reader) = self.reader.take() {
            reader.join().unwrap();
        }
        (exit, self.log())
    }

    /// SIGTERM, which must drain and exit 0; returns the whole log.
    pub fn terminate_ok(self) -> String {
        let (exit, log) = self.terminate();
        assert!(exit.success(), "exit {exit:?}; log:\n{log}");
        log
    }
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Collects `child`'s stderr into the returned log while it runs and waits (at most 30 s) for its
/// `listening on ADDR` line (`serve`, `worker`); panics naming `what` with the log otherwise.
pub fn announced_address(
    child: &mut std::process::Child,
    what: &str,
) -> (String, Arc<std::sync::Mutex<String>>) {
    let (addr, log, _reader) = capture_stderr(child, listening_address, what);
    (addr, log)
}

/// Reads `child`'s stderr line by line on a thread (which ends with the process) into the
/// returned log, until a line gives an address through `address` (at most 30 s; panics naming
/// `what` with the log otherwise).
fn capture_stderr(
    child: &mut std::process::Child,
    address: fn(&str) -> Option<String>,
    what: &str,
) -> (
    String,
    Arc<std::sync::Mutex<String>>,
    std::thread::JoinHandle<()>,
) {
    use std::io::BufRead;
    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    let log = Arc::new(std::sync::Mutex::new(String::new()));
    let captured = log.clone();
    let stderr = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if let Some(addr) = address(&line) {
                let _ = addr_tx.send(addr);
            }
            captured.lock().unwrap().push_str(&(line + "\n"));
        }
    });
    let addr = addr_rx
        .recv_timeout(Duration::from_secs(30))
        .unwrap_or_else(|_| panic!("{what} did not start:\n{}", log.lock().unwrap()));
    (addr, log, reader)
}
