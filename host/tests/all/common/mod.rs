//! Helpers shared by the integration tests: where the real data and built guests are.
#![allow(dead_code)]

use std::path::PathBuf;

/// The repository root (parent of `host/`).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// `../shared` beside the repository (read-only in CI), or `TELEMETRY_SHARED_DIR`.
pub fn shared_dir() -> PathBuf {
    match std::env::var_os("TELEMETRY_SHARED_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => repo_root().parent().unwrap().join("shared"),
    }
}

/// A file under `../shared/data`.
pub fn data(rel: &str) -> PathBuf {
    shared_dir().join("data").join(rel)
}

/// Runs `node --test` on a JavaScript SDK test (`guest-sdk/js/NAME`) and returns its stdout;
/// panics with its output when it fails.
pub fn sdk_node_test(name: &str) -> String {
    let js = std::process::Command::new("node")
        .arg("--test")
        .arg(repo_root().join("guest-sdk/js").join(name))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&js.stdout).into_owned();
    assert!(
        js.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&js.stderr)
    );
    stdout
}

/// Runs the Python SDK's unit tests in `guest-sdk/python/` whose file matches `pattern` (e.g.
/// `test_decimal.py`) and returns unittest's verbose report; panics with it when they fail.
pub fn sdk_python_tests(pattern: &str) -> String {
    let py = std::process::Command::new("python3")
        .args(["-m", "unittest", "discover", "-v", "-s"])
        .arg(repo_root().join("guest-sdk/python"))
        .args(["-p", pattern])
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&py.stderr).into_owned();
    assert!(py.status.success(), "{report}");
    report
}

/// Compiles the C SDK's test `guest-sdk/c/NAME` natively (`cc -std=c99 -Wall -Wextra -Werror`),
/// runs it on the shared table `guest-sdk/TABLE` and returns its stdout; panics with the
/// compiler's or the test's output when either fails.
pub fn sdk_c_test(name: &str, table: &str) -> String {
    let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
    let tmp = tempfile::tempdir().unwrap();
    let exe = tmp.path().join(name.trim_end_matches(".c"));
    let cc = std::process::Command::new("cc")
        .args(["-std=c99", "-Wall", "-Wextra", "-Werror", "-o"])
        .arg(&exe)
        .arg(repo_root().join("guest-sdk/c").join(name))
        .arg("-lm")
        .output()
        .unwrap();
    assert!(cc.status.success(), "{}", text(&cc.stderr));
    let run = std::process::Command::new(&exe)
        .arg(repo_root().join("guest-sdk").join(table))
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}{}",
        text(&run.stdout),
        text(&run.stderr)
    );
    text(&run.stdout)
}

/// The `telemetry-server` binary built for this test run.
pub fn binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_telemetry-server"))
}

/// A guest component built by `scripts/build-guests.sh` (e.g. `os-distribution-rust`).
/// Panics with the command to run when it is missing: tests never skip silently.
pub fn guest(name: &str) -> PathBuf {
    let path = repo_root().join("target/jobs").join(format!("{name}.wasm"));
    assert!(
        path.exists(),
        "{} missing: run scripts/build-guests.sh first",
        path.display()
    );
    path
}

/// The complete (newline-terminated) lines of a file another process or thread may still be
/// writing: a last line without its `\n` is still being written and is left out, so a reader
/// never parses a half-written record. A file that vanished meanwhile reads as empty.
pub fn complete_lines(path: &std::path::Path) -> Vec<String> {
    let text = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Vec::new(),
        Err(e) => panic!("{}: {e}", path.display()),
    };
    let complete = match text.iter().rposition(|&b| b == b'\n') {
        Some(end) => &text[..=end],
        None => return Vec::new(),
    };
    String::from_utf8_lossy(complete)
        .lines()
        .map(str::to_owned)
        .collect()
}

/// `count` realistic pings from `../shared/tools/gen-pings.py` (deterministic for `seed`), as
/// its `id<TAB>json` lines.
pub fn gen_pings(count: usize, seed: u64) -> String {
    let out = std::process::Command::new("python3")
        .arg(shared_dir().join("tools/gen-pings.py"))
        .args(["--count", &count.to_string(), "--seed", &seed.to_string()])
        .output()
        .expect("python3 runs ../shared/tools/gen-pings.py");
    assert!(
        out.status.success(),
        "gen-pings.py failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("gen-pings.py writes UTF-8")
}

/// A loopback address with a port that was free a moment ago.
pub fn free_local_addr() -> std::net::SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}
