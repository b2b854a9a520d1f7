//! `job new` + `job build` outside the repository: a project in each of Rust, C, JavaScript and
//! Python is created in a temp dir, built by the real binary from another working directory with
//! the pinned toolchains, and run with `job run` over the converted real pings; the four outputs
//! must be byte-identical and equal to the count computed natively from the stored records.
//! Builds reuse the repository's tool installs (`target/guest-tools`, `TELEMETRY_JOB_TOOLS`) and
//! the guests' cargo target dir (`target/guests`), so nothing is reinstalled and std is compiled once.

use crate::common;
use crate::jobs_support::{all_filter, converted_data, filter_json, stored_records};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

pub const LANGS: [&str; 4] = ["rust", "c", "js", "python"];

/// The binary, with the build environment of the job project tests.
fn binary_cmd() -> Command {
    let mut cmd = Command::new(common::binary());
    with_build_env(&mut cmd);
    cmd
}

/// Points `job build` at the repository's tool installs and guests' cargo target dir.
pub fn with_build_env(cmd: &mut Command) -> &mut Command {
    cmd.env(
        "TELEMETRY_JOB_TOOLS",
        common::repo_root().join("target/guest-tools"),
    )
    .env(
        "TELEMETRY_JOB_CARGO_TARGET_DIR",
        common::repo_root().join("target/guests"),
    )
}

/// Runs `cmd` and returns its stdout; panics with its stderr when it fails.
pub fn run_ok(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Runs `cmd`, expects it to fail, and returns its stderr.
fn run_err(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(!out.status.success(), "{cmd:?} should fail");
    String::from_utf8(out.stderr).unwrap()
}

/// A temp dir outside the repository tree.
pub fn outside_repo() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    let repo = common::repo_root().canonicalize().unwrap();
    assert!(
        !tmp.path().canonicalize().unwrap().starts_with(&repo),
        "{} is inside the repository",
        tmp.path().display()
    );
    tmp
}

/// The template job computed natively: submissions per update channel, `channel<TAB>count`.
pub fn native_channels(data: &Path) -> String {
    let text = |v: Option<&Value>| match v? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    };
    let mut counts: BTreeMap<String, u64> = BTreeMap::new();
    for (_, json) in stored_records(data, &all_filter()) {
        let doc: Value = serde_json::from_str(&json).unwrap();
        let channel = text(doc.pointer("/application/channel"))
            .or_else(|| text(doc.pointer("/info/appUpdateChannel")))
            .unwrap_or_else(|| "UNKNOWN".into());
        *counts.entry(channel).or_default() += 1;
    }
    counts.iter().map(|(k, v)| format!("{k}\t{v}\n")).collect()
}

#[test]
fn new_projects_build_anywhere_and_agree_in_four_languages() {
    let tmp = outside_repo();
    let projects = tmp.path().join("projects");
    let elsewhere = tmp.path().join("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    let dirs: Vec<PathBuf> = LANGS
        .iter()
        .map(|lang| {
            let name = format!("count-{lang}");
            let printed = run_ok(
                binary_cmd()
                    .args(["job", "new", &name, "--lang", lang, "--dir"])
                    .arg(&projects),
            );
            assert_eq!(printed.trim(), projects.join(&name).to_str().unwrap());
            projects.join(name)
        })
        .collect();

    // Built side by side (Python's componentize-py is single-threaded), each from a working
    // directory that is neither the project nor the repository, given a relative path.
    let builds: Vec<_> = LANGS
        .iter()
        .map(|lang| {
            let (lang, elsewhere) = (lang.to_string(), elsewhere.clone());
            std::thread::spawn(move || {
                let start = Instant::now();
                let printed = run_ok(
                    binary_cmd()
                        .args(["job", "build"])
                        .arg(format!("../projects/count-{lang}"))
                        .current_dir(&elsewhere),
                );
                eprintln!("job build {lang}: {:.1} s", start.elapsed().as_secs_f64());
                printed
            })
        })
        .collect();
    let wasm: Vec<PathBuf> = builds
        .into_iter()
        .zip(&dirs)
        .map(|(b, dir)| {
            let printed = PathBuf::from(b.join().unwrap().trim());
            let name = dir.file_name().unwrap().to_str().unwrap();
            assert_eq!(
                printed,
                dir.canonicalize()
                    .unwrap()
                    .join(format!("target/{name}.wasm"))
            );
            assert!(printed.is_file());
            printed
        })
        .collect();

    let data = converted_data();
    let expected = native_channels(data);
    assert!(
        expected.lines().count() >= 3,
        "the data should hold several channels:\n{expected}"
    );
    let filter = tmp.path().join("filter.json");
    std::fs::write(&filter, filter_json(&[])).unwrap();
    for (lang, wasm) in LANGS.iter().zip(&wasm) {
        let output = run_ok(
            binary_cmd()
                .args(["job", "run"])
                .arg(wasm)
                .arg("--data-dir")
                .arg(data)
                .arg("--filter")
                .arg(&filter)
                .arg("--cache-dir")
                .arg(tmp.path().join(format!("cache-{lang}"))),
        );
        assert_eq!(
            output, expected,
            "the {lang} template's output differs from the native count"
        );
    }
}

#[test]
fn mistakes_are_named() {
    let tmp = outside_repo();
    let err = run_err(binary_cmd().args(["job", "build"]).arg(tmp.path()));
    assert!(err.contains("is not a job project"), "{err}");
    let err = run_err(
        binary_cmd()
            .args(["job", "new", "Bad_Name", "--lang", "js", "--dir"])
            .arg(tmp.path()),
    );
    assert!(err.contains("invalid job name"), "{err}");
    let new = || {
        let mut cmd = binary_cmd();
        cmd.args(["job", "new", "twice", "--lang", "python", "--dir"])
            .arg(tmp.path());
        cmd
    };
    run_ok(&mut new());
    let err = run_err(&mut new());
    assert!(err.contains("already exists"), "{err}");
    // Without its module componentize-py would fail with a bare AssertionError.
    std::fs::remove_file(tmp.path().join("twice/app.py")).unwrap();
    let err = run_err(
        binary_cmd()
            .args(["job", "build"])
            .arg(tmp.path().join("twice")),
    );
    assert!(err.contains("app.py is missing"), "{err}");
}
