//! `job build`: the build steps of each language, from a project directory to
//! `target/<name>.wasm`. Every path given to a tool is absolute and every tool runs in the project
//! directory, so a build works from any working directory.

use super::command::{self, Output};
use super::tools::{on_path, Tools};
use super::{io, manifest, Lang, ProjectError};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// A compile or link step that takes longer than this is stopped (a cold Rust build with
/// `-Zbuild-std` takes a few minutes on 2 cores).
const BUILD_TIMEOUT: Duration = Duration::from_secs(30 * 60);
/// The world every job implements (wit/job.wit).
const WORLD: &str = "mapreduce";
/// Overrides the Rust build's cargo target directory (default `target/cargo` in the project);
/// share one across projects to compile std once.
pub const CARGO_TARGET_ENV: &str = "TELEMETRY_JOB_CARGO_TARGET_DIR";
/// Debian's rustc-web std source, for the `-Zbuild-std` route.
const DEBIAN_RUST_SRC: &str = "/usr/src/rustc-1.96.0/library";

/// Builds the project in `dir` and returns the component's path, `dir/target/<name>.wasm`.
/// The component appears whole (built aside, then renamed).
pub fn build(dir: &Path, tools: &Tools) -> Result<PathBuf, ProjectError> {
    let dir = dir.canonicalize().map_err(io(dir))?;
    let m = manifest(&dir)?;
    // Checked here because componentize-py, given no `app` module, fails with a bare
    // AssertionError ("No module named 'app'").
    let source = dir.join(super::templates::source(m.lang));
    if !source.is_file() {
        return Err(ProjectError::MissingSource(source, m.lang.name()));
    }
    let target = dir.join("target");
    std::fs::create_dir_all(&target).map_err(io(&target))?;
    let out = target.join(format!("{}.wasm", m.name));
    let tmp = target.join(format!("{}.wasm.tmp", m.name));
    tools.say(&format!("building {} ({})", m.name, m.lang.name()));
    match m.lang {
        Lang::Rust => rust(&dir, &m.name, tools, &tmp)?,
        Lang::C => c(&dir, &m.name, tools, &tmp)?,
        Lang::Js => js(&dir, tools, &tmp)?,
        Lang::Python => python(&dir, tools, &tmp)?,
    }
    std::fs::rename(&tmp, &out).map_err(io(&out))?;
    Ok(out)
}

/// Runs a build tool, its output captured for the error.
fn tool(cmd: &mut Command, what: &str) -> Result<(), ProjectError> {
    Ok(command::run(cmd, what, BUILD_TIMEOUT, Output::Capture, "")?)
}

/// `wasm-tools component new CORE [--adapt wasi_snapshot_preview1=ADAPTER] -o OUT`.
pub fn component_new(
    tools: &Tools,
    core: &Path,
    adapter: Option<&Path>,
    out: &Path,
) -> Result<(), ProjectError> {
    let mut cmd = Command::new(tools.wasm_tools()?);
    cmd.args(["component", "new"]).arg(core);
    if let Some(adapter) = adapter {
        cmd.arg("--adapt")
            .arg(format!("wasi_snapshot_preview1={}", adapter.display()));
    }
    tool(cmd.arg("-o").arg(out), "wasm-tools component new")
}

/// Rust: cargo for wasm32-unknown-unknown (rustup's target if it is there, else Debian's rustc
/// with `-Zbuild-std`), then `wasm-tools component new`.
fn rust(dir: &Path, name: &str, tools: &Tools, out: &Path) -> Result<(), ProjectError> {
    let target_dir = std::env::var_os(CARGO_TARGET_ENV)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| dir.join("target/cargo"));
    let mut cmd = if rust_plain_route_works() {
        tools.say("Rust: rustup's wasm32-unknown-unknown target");
        Command::new("cargo")
    } else {
        if !Path::new(DEBIAN_RUST_SRC).is_dir() {
            return Err(ProjectError::Io {
                path: DEBIAN_RUST_SRC.into(),
                source: std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "no wasm32-unknown-unknown target in rustup and no Debian std source: \
                     `rustup target add wasm32-unknown-unknown`, or \
                     `apt-get install rustc-web cargo-web rust-web-src`",
                ),
            });
        }
        tools.say(&format!(
            "Rust: Debian rustc-web + -Zbuild-std (the first build into {} compiles std, a few minutes)",
            target_dir.display()
        ));
        let mut cmd = Command::new("/usr/bin/cargo");
        let mut path = std::ffi::OsString::new();
        if let Some(bin) = rustup_linker_dir() {
            path.push(bin.as_os_str());
            path.push(":");
        }
        path.push("/usr/bin:");
        path.push(std::env::var_os("PATH").unwrap_or_default());
        cmd.env("__CARGO_TESTS_ONLY_SRC_ROOT", DEBIAN_RUST_SRC)
            .env("RUSTC_BOOTSTRAP", "1")
            .env("RUSTC", "/usr/bin/rustc")
            .env("PATH", path)
            .env_remove("RUSTUP_TOOLCHAIN")
            .args(["build", "-Zbuild-std=std,panic_abort"]);
        cmd
    };
    if cmd.get_args().next().is_none() {
        cmd.arg("build");
    }
    cmd.args(["--release", "--target", "wasm32-unknown-unknown"])
        .arg("--manifest-path")
        .arg(dir.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(&target_dir)
        .env_remove("CARGO_TARGET_DIR")
        .current_dir(dir);
    command::run(
        &mut cmd,
        "cargo build",
        BUILD_TIMEOUT,
        Output::Show,
        "install Rust: rustup, or apt-get install rustc-web cargo-web rust-web-src",
    )?;
    let core = target_dir
        .join("wasm32-unknown-unknown/release")
        .join(format!("{}.wasm", name.replace('-', "_")));
    component_new(tools, &core, None, out)
}

/// True when rustup's own wasm32-unknown-unknown target is (or quickly can be) installed, as in
/// scripts/build-guests.sh; `GUEST_RUST_ROUTE=build-std` forces the Debian route.
fn rust_plain_route_works() -> bool {
    if std::env::var("GUEST_RUST_ROUTE").as_deref() == Ok("build-std")
        || on_path("rustup").is_none()
    {
        return false;
    }
    let has_target = || {
        Command::new("rustc")
            .args(["--print", "sysroot"])
            .output()
            .ok()
            .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()))
            .is_some_and(|s| s.join("lib/rustlib/wasm32-unknown-unknown/lib").is_dir())
    };
    has_target()
        || (command::run(
            Command::new("rustup").args(["target", "add", "wasm32-unknown-unknown"]),
            "rustup target add",
            Duration::from_secs(20),
            Output::Capture,
            "",
        )
        .is_ok()
            && has_target())
}

/// A rustup toolchain's `rust-lld` directory (Debian's rustc links wasm with it).
fn rustup_linker_dir() -> Option<PathBuf> {
    let home = std::env::var_os("RUSTUP_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".rustup")))?;
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(home.join("toolchains"))
        .ok()?
        .flatten()
        .map(|e| e.path().join("lib/rustlib/x86_64-unknown-linux-gnu/bin"))
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    dirs.into_iter().next()
}

/// C: wit-bindgen C bindings, clang-19 for wasm32-wasi (reactor), then `wasm-tools component
/// new` with wasmtime's WASI preview1 reactor adapter (embedded in this binary).
fn c(dir: &Path, name: &str, tools: &Tools, out: &Path) -> Result<(), ProjectError> {
    let bind = dir.join("target/c-bindings");
    if bind.exists() {
        std::fs::remove_dir_all(&bind).map_err(io(&bind))?;
    }
    std::fs::create_dir_all(&bind).map_err(io(&bind))?;
    tool(
        Command::new(tools.wit_bindgen()?)
            .arg("c")
            .arg(dir.join("wit"))
            .args(["--world", WORLD, "--out-dir"])
            .arg(&bind)
            .current_dir(dir),
        "wit-bindgen c",
    )?;
    let src = dir.join("src");
    let mut sources: Vec<PathBuf> = std::fs::read_dir(&src)
        .map_err(io(&src))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "c"))
        .collect();
    sources.sort();
    let core = dir.join(format!("target/{name}.core.wasm"));
    command::run(
        Command::new("clang-19")
            .args([
                "--target=wasm32-wasi",
                "-mexec-model=reactor",
                "-O2",
                "-Wl,--strip-debug",
            ])
            .arg("-I")
            .arg(&bind)
            .arg("-I")
            .arg(dir.join("sdk"))
            .arg(bind.join(format!("{WORLD}.c")))
            .args(&sources)
            .arg(bind.join(format!("{WORLD}_component_type.o")))
            .arg("-o")
            .arg(&core)
            .current_dir(dir),
        "clang-19",
        BUILD_TIMEOUT,
        Output::Capture,
        "apt-get install clang-19 lld-19 libclang-rt-19-dev-wasm32 wasi-libc",
    )?;
    let adapter = dir.join("target/wasi_snapshot_preview1.reactor.wasm");
    std::fs::write(
        &adapter,
        wasi_preview1_component_adapter_provider::WASI_SNAPSHOT_PREVIEW1_REACTOR_ADAPTER,
    )
    .map_err(io(&adapter))?;
    component_new(tools, &core, Some(&adapter), out)
}

/// JavaScript: componentize-qjs (QuickJS) over `job.js`, WASI stubbed out.
fn js(dir: &Path, tools: &Tools, out: &Path) -> Result<(), ProjectError> {
    let qjs = tools.componentize_qjs(&dir.join("package.json"), &dir.join("package-lock.json"))?;
    tools.say("componentize-qjs job.js");
    tool(
        Command::new(qjs)
            .arg("--wit")
            .arg(dir.join("wit"))
            .args(["-n", WORLD, "--module-root"])
            .arg(dir)
            .arg("--js")
            .arg(dir.join("job.js"))
            .args(["--sync", "--stub-wasi", "-o"])
            .arg(out)
            .current_dir(dir),
        "componentize-qjs",
    )
}

/// Python: componentize-py over the module `app` (the project directory and `sdk/` on its
/// path), WASI stubbed out.
fn python(dir: &Path, tools: &Tools, out: &Path) -> Result<(), ProjectError> {
    let cpy = tools.componentize_py(&dir.join("requirements.txt"))?;
    tools.say("componentize-py app.py (~30 s)");
    tool(
        Command::new(cpy)
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .arg("-d")
            .arg(dir.join("wit"))
            .args(["-w", WORLD, "componentize", "app", "-p"])
            .arg(dir)
            .arg("-p")
            .arg(dir.join("sdk"))
            .arg("-o")
            .arg(out)
            .arg("--stub-wasi")
            .current_dir(dir),
        "componentize-py",
    )
}
