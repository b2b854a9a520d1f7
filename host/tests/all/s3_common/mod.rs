//! A real S3-compatible server for the S3 tests: `s3s-fs` started on a free loopback port over a
//! temp dir, killed when dropped (and killable/restartable mid-test). Fails loudly when `s3s-fs`
//! is missing, with the command that installs it.
#![allow(dead_code)]

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use telemetry_server::s3::S3Config;

pub const ACCESS_KEY: &str = "AKIDTEST";
pub const SECRET_KEY: &str = "SECRETTEST";

/// The `s3s-fs` binary: on PATH or in `~/.cargo/bin`.
pub fn s3s_fs_binary() -> PathBuf {
    let mut candidates: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| {
            std::env::split_paths(&p)
                .map(|d| d.join("s3s-fs"))
                .collect()
        })
        .unwrap_or_default();
    if let Some(home) = std::env::var_os("HOME") {
        candidates.push(PathBuf::from(home).join(".cargo/bin/s3s-fs"));
    }
    candidates.into_iter().find(|p| p.is_file()).unwrap_or_else(|| {
        panic!(
            "s3s-fs not found: the S3 tests need a real S3-compatible server. Install it with \
             `cargo install --locked s3s-fs@0.14.1 --features binary` (or run scripts/install-deps.sh)"
        )
    })
}

/// One running s3s-fs.
pub struct S3Server {
    pub root: tempfile::TempDir,
    pub addr: SocketAddr,
    child: Option<Child>,
}

impl S3Server {
    /// Starts s3s-fs on a free loopback port over a fresh temp dir and waits until it accepts connections.
    pub fn start() -> S3Server {
        let root = tempfile::tempdir().unwrap();
        let addr = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let mut server = S3Server {
            root,
            addr,
            child: None,
        };
        server.restart();
        server
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// (Re)starts the server on the same port and directory.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "server already running");
        let child = Command::new(s3s_fs_binary())
            .args([
                "--host",
                "127.0.0.1",
                "--port",
                &self.addr.port().to_string(),
            ])
            .args(["--access-key", ACCESS_KEY, "--secret-key", SECRET_KEY])
            .arg(self.root.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("cannot start s3s-fs");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect_timeout(&self.addr, Duration::from_millis(200)).is_err() {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("s3s-fs exited at start-up with {status}");
            }
            assert!(
                Instant::now() < deadline,
                "s3s-fs did not listen on {} within 20 s",
                self.addr
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills the server (SIGKILL), as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Settings for this server: path-style, test credentials, small parts so tests stay fast.
    pub fn config(&self, bucket: &str, prefix: &str) -> S3Config {
        S3Config {
            endpoint: Some(self.endpoint()),
            bucket: bucket.to_string(),
            prefix: prefix.to_string(),
            access_key_id: Some(ACCESS_KEY.to_string()),
            secret_access_key: Some(SECRET_KEY.to_string()),
            part_size: telemetry_server::s3::MIN_PART_SIZE,
            multipart_threshold: telemetry_server::s3::MIN_PART_SIZE,
            ..S3Config::default()
        }
    }

    /// Environment for child processes (`telemetry-server export`, `job run --data s3://…`).
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL", self.endpoint()),
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY.to_string()),
            ("AWS_SECRET_ACCESS_KEY", SECRET_KEY.to_string()),
            ("AWS_REGION", "us-east-1".to_string()),
        ]
    }

    /// Where s3s-fs keeps `bucket/key` as a plain file.
    pub fn object_file(&self, bucket: &str, key: &str) -> PathBuf {
        self.root.path().join(bucket).join(key)
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A tokio runtime for driving the SDK from a test.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Every object in `bucket` under `prefix` (all pages): key → size.
pub async fn list_all(
    client: &aws_sdk_s3::Client,
    bucket: &str,
    prefix: &str,
) -> std::collections::BTreeMap<String, u64> {
    let mut out = std::collections::BTreeMap::new();
    let mut token = None;
    loop {
        let page = client
            .list_objects_v2()
            .bucket(bucket)
            .prefix(prefix)
            .set_continuation_token(token)
            .send()
            .await
            .expect("ListObjectsV2");
        for object in page.contents() {
            out.insert(
                object.key().unwrap().to_string(),
                object.size().unwrap() as u64,
            );
        }
        token = page.next_continuation_token().map(str::to_string);
        if token.is_none() {
            return out;
        }
    }
}

/// The whole object, read back through the SDK.
pub async fn get_bytes(client: &aws_sdk_s3::Client, bucket: &str, key: &str) -> Vec<u8> {
    let out = client
        .get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .expect("GetObject");
    out.body.collect().await.unwrap().into_bytes().to_vec()
}

/// Every regular file under `root` as (`/`-separated relative path, bytes), sorted.
pub fn local_files(root: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let entry = entry.unwrap();
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let rel = path
                    .strip_prefix(root)
                    .unwrap()
                    .to_str()
                    .unwrap()
                    .replace('\\', "/");
                out.push((rel, std::fs::read(&path).unwrap()));
            }
        }
    }
    out.sort();
    out
}

/// Deterministic incompressible bytes (xorshift), for upload tests that need exact sizes.
pub fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// A data dir holding the real pings of `../shared/data/pings` converted into partition files
/// by the convert pipeline (each JSON ping once per submission date given, the `.tsv` files and
/// the raw v2 log once), plus `generated` realistic pings from `../shared/tools/gen-pings.py`
/// written with `StorageWriter` (the converter rejects generated classic pings for lack of
/// `info.revision`, as the seed did). Returns the temp dir and the storage files (relative path, bytes).
pub fn converted_data_dir(
    dates: &[&str],
    generated: usize,
) -> (tempfile::TempDir, Vec<(String, Vec<u8>)>) {
    use telemetry_server::convert::{Converter, Pipeline};
    use telemetry_server::storage::{DataDir, WriterOptions};
    let dir = tempfile::tempdir().unwrap();
    let data = DataDir::open(dir.path()).unwrap();
    let converter = std::sync::Arc::new(Converter::with_defaults());
    let mut pipeline =
        Pipeline::new(&data, converter, WriterOptions::default(), "s3-test").unwrap();
    let pings = crate::common::data("pings");
    let mut names: Vec<PathBuf> = std::fs::read_dir(&pings)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    names.sort();
    for path in &names {
        let name = path.file_name().unwrap().to_str().unwrap();
        if name.ends_with(".json") {
            for date in dates {
                pipeline.convert_json_file(path, date).unwrap();
            }
        } else if name.ends_with(".tsv") {
            pipeline.convert_text(path, dates[0], &mut |_| {}).unwrap();
        } else if name.ends_with(".finished") {
            pipeline.convert_log(path).unwrap();
        }
    }
    let converted = pipeline.finish().unwrap();
    assert!(
        converted.len() >= 2,
        "the real pings should convert into several partition files"
    );
    if generated > 0 {
        write_generated(&data, generated, dates);
    }
    let files = local_files(&dir.path().join("storage"));
    (dir, files)
}

/// Writes `count` pings from `gen-pings.py` into storage with `StorageWriter` under the seed's
/// production schema (dimensions from the ping's own fields), spread over `dates`, in files of
/// at most ~2 MB uncompressed so a partition holds several files.
pub fn write_generated(data: &telemetry_server::storage::DataDir, count: usize, dates: &[&str]) {
    use telemetry_server::convert::DEFAULT_SCHEMA;
    use telemetry_server::storage::{Schema, StorageWriter, WriterOptions};
    let schema = Schema::from_json(DEFAULT_SCHEMA).unwrap();
    let options = WriterOptions {
        max_file_bytes: 2_000_000,
        ..WriterOptions::default()
    };
    let mut writer = StorageWriter::new(data.sub("storage").unwrap(), schema.clone(), options);
    let text = crate::common::gen_pings(count, 6);
    for (i, line) in text.lines().enumerate() {
        let (id, json) = line.split_once('\t').unwrap();
        let doc: serde_json::Value = serde_json::from_str(json).unwrap();
        let field = |ptrs: &[&str]| {
            ptrs.iter()
                .find_map(|p| doc.pointer(p).and_then(|v| v.as_str()).map(str::to_string))
        };
        let values = [
            field(&["/info/reason", "/type"]),
            field(&["/info/appName", "/application/name"]),
            field(&["/info/appUpdateChannel", "/application/channel"]),
            field(&["/info/appVersion", "/application/version"]),
            field(&["/info/appBuildID", "/application/buildId"]),
            Some(dates[i % dates.len()].to_string()),
        ];
        let refs: Vec<Option<&str>> = values.iter().map(|v| v.as_deref()).collect();
        let dims = schema.apply(&refs);
        let version = if doc.get("ver").is_some() { 1 } else { 4 };
        writer.write(&dims, version, id, json).unwrap();
    }
    writer.finish().unwrap();
}
