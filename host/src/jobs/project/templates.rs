//! The files of a new job project, per language: the job (from `templates/`), the SDK, the pins
//! of its toolchain and `wit/job.wit`, all embedded in the binary so `job new` works anywhere.

use super::Lang;

/// The repository's files a project vendors; `tools` and `build` use the pins too.
pub(super) const WIT: &str = include_str!("../../../../wit/job.wit");
const RUST_SDK_MANIFEST: &str = include_str!("../../../../guest-sdk/rust/Cargo.toml");
const RUST_SDK_LIB: &str = include_str!("../../../../guest-sdk/rust/src/lib.rs");
const RUST_SDK_DECIMAL: &str = include_str!("../../../../guest-sdk/rust/src/decimal.rs");
const RUST_SDK_HISTOGRAM: &str = include_str!("../../../../guest-sdk/rust/src/histogram.rs");
/// The example jobs' lock file: pins wit-bindgen and its dependencies (cargo drops the entries
/// a project does not use and keeps the versions of the rest).
const RUST_LOCK: &str = include_str!("../../../../example-jobs/Cargo.lock");
const C_SDK: &str = include_str!("../../../../guest-sdk/c/telemetry_job.h");
const C_SDK_HISTOGRAM: &str = include_str!("../../../../guest-sdk/c/telemetry_histogram.h");
const C_SDK_DECIMAL: &str = include_str!("../../../../guest-sdk/c/telemetry_decimal.h");
const JS_SDK: &str = include_str!("../../../../guest-sdk/js/telemetry-job.js");
const JS_SDK_DECIMAL: &str = include_str!("../../../../guest-sdk/js/decimal.js");
const JS_SDK_HISTOGRAM: &str = include_str!("../../../../guest-sdk/js/histogram.js");
pub(super) const JS_PACKAGE: &str = include_str!("../../../../guest-sdk/js/package.json");
pub(super) const JS_LOCK: &str = include_str!("../../../../guest-sdk/js/package-lock.json");
const PY_SDK: &str = include_str!("../../../../guest-sdk/python/telemetry_job.py");
const PY_SDK_DECIMAL: &str = include_str!("../../../../guest-sdk/python/telemetry_decimal.py");
const PY_SDK_HISTOGRAM: &str = include_str!("../../../../guest-sdk/python/telemetry_histogram.py");
pub(super) const PY_REQUIREMENTS: &str =
    include_str!("../../../../guest-sdk/python/requirements.txt");

const README: &str = include_str!("templates/README.md.tmpl");
const RUST_MANIFEST: &str = include_str!("templates/rust-Cargo.toml.tmpl");
const RUST_JOB: &str = include_str!("templates/rust-lib.rs.tmpl");
const C_JOB: &str = include_str!("templates/c-job.c.tmpl");
const JS_JOB: &str = include_str!("templates/js-job.js.tmpl");
const PY_JOB: &str = include_str!("templates/python-app.py.tmpl");

/// The project's source file per language: the file a user edits.
pub(super) fn source(lang: Lang) -> &'static str {
    match lang {
        Lang::Rust => "src/lib.rs",
        Lang::C => "src/job.c",
        Lang::Js => "job.js",
        Lang::Python => "app.py",
    }
}

/// Every file of a new project `name` as (relative path, contents), except `telemetry-job.toml`.
pub(super) fn files(name: &str, lang: Lang) -> Vec<(String, Vec<u8>)> {
    let fill = |t: &str| t.replace("{{name}}", name);
    let (job, mut rest, rows, language, guide, toolchain): (_, Vec<(&str, String)>, _, _, _, _) =
        match lang {
            Lang::Rust => (
                RUST_JOB,
                vec![
                    ("Cargo.toml", fill(RUST_MANIFEST)),
                    ("Cargo.lock", RUST_LOCK.to_string()),
                    (
                        "sdk/telemetry-job/Cargo.toml",
                        RUST_SDK_MANIFEST.to_string(),
                    ),
                    ("sdk/telemetry-job/src/lib.rs", RUST_SDK_LIB.to_string()),
                    (
                        "sdk/telemetry-job/src/decimal.rs",
                        RUST_SDK_DECIMAL.to_string(),
                    ),
                    (
                        "sdk/telemetry-job/src/histogram.rs",
                        RUST_SDK_HISTOGRAM.to_string(),
                    ),
                ],
                "| `Cargo.toml`, `Cargo.lock` | the crate and its pinned dependencies |\n\
                 | `sdk/telemetry-job/` | the Rust SDK (`Job`, `export_job!`), vendored |\n",
                "Rust",
                "rust.md",
                "It runs `cargo build --release --target wasm32-unknown-unknown` (rustup's target \
                 if installed, else Debian's rustc 1.96 with `-Zbuild-std`; the cargo target \
                 directory is `target/cargo`, or `$TELEMETRY_JOB_CARGO_TARGET_DIR`), then \
                 `wasm-tools component new`.",
            ),
            Lang::C => (
                C_JOB,
                vec![
                    ("sdk/telemetry_job.h", C_SDK.to_string()),
                    ("sdk/telemetry_histogram.h", C_SDK_HISTOGRAM.to_string()),
                    ("sdk/telemetry_decimal.h", C_SDK_DECIMAL.to_string()),
                ],
                "| `sdk/telemetry_job.h` | the C SDK (`TELEMETRY_JOB`, `tj_emit`), vendored |\n\
                 | `sdk/telemetry_histogram.h`, `sdk/telemetry_decimal.h` | its histogram and decimal helpers |\n",
                "C",
                "c.md",
                "It generates the bindings (`target/c-bindings/`) with wit-bindgen-cli 0.63.0, \
                 compiles with `clang-19 --target=wasm32-wasi` against wasi-libc, and adapts the \
                 module with wasmtime 48.0.8's WASI preview1 reactor adapter (`wasm-tools \
                 component new`). clang-19 and wasi-libc come from your system (Debian: \
                 `apt-get install clang-19 lld-19 libclang-rt-19-dev-wasm32 wasi-libc`).",
            ),
            Lang::Js => (
                JS_JOB,
                vec![
                    ("sdk/telemetry-job.js", JS_SDK.to_string()),
                    ("sdk/decimal.js", JS_SDK_DECIMAL.to_string()),
                    ("sdk/histogram.js", JS_SDK_HISTOGRAM.to_string()),
                    ("package.json", JS_PACKAGE.to_string()),
                    ("package-lock.json", JS_LOCK.to_string()),
                ],
                "| `sdk/telemetry-job.js` | the JavaScript SDK (`defineJob`, `emit`), vendored |\n\
                 | `package.json`, `package-lock.json` | pin the build tool, componentize-qjs |\n",
                "JavaScript",
                "javascript.md",
                "It runs componentize-qjs (QuickJS), pinned by `package-lock.json` and installed \
                 with `npm ci` (needs Node.js and npm).",
            ),
            Lang::Python => (
                PY_JOB,
                vec![
                    ("sdk/telemetry_job.py", PY_SDK.to_string()),
                    ("sdk/telemetry_decimal.py", PY_SDK_DECIMAL.to_string()),
                    ("sdk/telemetry_histogram.py", PY_SDK_HISTOGRAM.to_string()),
                    ("requirements.txt", PY_REQUIREMENTS.to_string()),
                ],
                "| `sdk/telemetry_job.py` | the Python SDK (`MapReduceJob`, `emit`), vendored |\n\
                 | `requirements.txt` | pins the build tool, componentize-py |\n",
                "Python",
                "python.md",
                "It runs componentize-py, pinned by `requirements.txt` and installed into a venv \
                 (needs python3 with venv).",
            ),
        };
    let source = source(lang);
    let rows = format!("| `{source}` | the job |\n{rows}");
    let readme = fill(README)
        .replace("{{language}}", language)
        .replace("{{source}}", source)
        .replace("{{files}}", &rows)
        .replace("{{guide}}", guide)
        .replace("{{toolchain}}", toolchain);
    rest.extend([
        (source, fill(job)),
        ("README.md", readme),
        ("wit/job.wit", WIT.to_string()),
        (".gitignore", "/target/\n/node_modules/\n".to_string()),
    ]);
    rest.into_iter()
        .map(|(p, c)| (p.to_string(), c.into_bytes()))
        .collect()
}
