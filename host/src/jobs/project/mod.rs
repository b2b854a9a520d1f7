//! Job projects that live anywhere: `job new` writes a self-contained project (a small working
//! job, the SDK and `wit/job.wit` vendored from this binary, a README), `job build` turns it into
//! a component with the toolchains the project pins, installing them on first use.
//!
//! - `templates`: the files a new project gets, per language (embedded with `include_str!`).
//! - `tools`: the tool cache (`$TELEMETRY_JOB_TOOLS`) and the pinned installs in it.
//! - `command`: running one external tool with a deadline, its errors.
//! - `build`: the build steps of each language.

mod build;
mod command;
mod templates;
mod tools;

pub use build::build;
pub use tools::Tools;

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The file that marks a job project and names it.
pub const MANIFEST: &str = "telemetry-job.toml";

/// The language of a job project.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Lang {
    /// Rust, built with cargo for `wasm32-unknown-unknown`.
    Rust,
    /// C, built with wit-bindgen's C bindings and clang-19.
    C,
    /// JavaScript (`job.js`), componentized with componentize-qjs.
    Js,
    /// Python (`app.py`), componentized with componentize-py.
    Python,
}

impl std::str::FromStr for Lang {
    type Err = String;
    /// `rust`, `c`, `js` or `python` ([`Lang::name`]).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Lang::ALL
            .into_iter()
            .find(|lang| lang.name() == s)
            .ok_or_else(|| format!("unknown language {s:?} (expected rust, c, js or python)"))
    }
}

impl Lang {
    pub(crate) const ALL: [Lang; 4] = [Lang::Rust, Lang::C, Lang::Js, Lang::Python];

    /// The name used on the command line and in `telemetry-job.toml`.
    pub fn name(self) -> &'static str {
        match self {
            Lang::Rust => "rust",
            Lang::C => "c",
            Lang::Js => "js",
            Lang::Python => "python",
        }
    }
}

/// `telemetry-job.toml`: what `job build` needs to know about a project.
#[derive(Debug, Serialize, Deserialize)]
pub struct Manifest {
    /// The job's name: the component is `target/<name>.wasm`.
    pub name: String,
    /// The language the project is written in, which picks the build recipe.
    pub lang: Lang,
}

/// Why creating or building a project failed.
#[derive(Debug, thiserror::Error)]
pub enum ProjectError {
    /// The job name is not a valid component name.
    #[error(
        "invalid job name {0:?}: use 1 to 64 lowercase letters, digits and '-', starting with a letter"
    )]
    BadName(String),
    /// The directory `job new` would create is already there.
    #[error("{0} already exists: pick another name or --dir")]
    Exists(PathBuf),
    /// The directory has no `telemetry-job.toml`.
    #[error(
        "{0} is not a job project (no {MANIFEST}): create one with `telemetry-server job new`"
    )]
    NotAProject(PathBuf),
    /// A source file the language's build needs (path, language) is missing.
    #[error("{0} is missing: a {1} job project builds from it")]
    MissingSource(PathBuf, &'static str),
    /// `telemetry-job.toml` is not a valid manifest.
    #[error("{path}: {message}")]
    BadManifest {
        /// The manifest's path.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// A project file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A build tool failed or could not be run.
    #[error(transparent)]
    Command(#[from] command::CommandError),
}

/// Attaches the path to an I/O error.
fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ProjectError + '_ {
    move |source| ProjectError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Checks a job name: it becomes a directory, a crate and a file name.
fn check_name(name: &str) -> Result<(), ProjectError> {
    let ok = (1..=64).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if ok {
        Ok(())
    } else {
        Err(ProjectError::BadName(name.to_string()))
    }
}

/// Writes a new project `parent/name` for `lang` and returns its directory. Fails if the
/// directory exists (nothing is overwritten).
pub fn create(parent: &Path, name: &str, lang: Lang) -> Result<PathBuf, ProjectError> {
    check_name(name)?;
    let dir = parent.join(name);
    if dir.exists() {
        return Err(ProjectError::Exists(dir));
    }
    let manifest = toml::to_string(&Manifest {
        name: name.to_string(),
        lang,
    })
    .expect("a manifest serialises");
    let mut files = templates::files(name, lang);
    files.push((
        MANIFEST.into(),
        format!("# Written by `telemetry-server job new`; read by `telemetry-server job build`.\n{manifest}")
            .into_bytes(),
    ));
    for (rel, contents) in files {
        let path = dir.join(rel);
        std::fs::create_dir_all(path.parent().expect("a file in the project"))
            .map_err(io(&path))?;
        std::fs::write(&path, contents).map_err(io(&path))?;
    }
    Ok(dir)
}

/// Reads `dir/telemetry-job.toml`.
pub fn manifest(dir: &Path) -> Result<Manifest, ProjectError> {
    let path = dir.join(MANIFEST);
    let text = match std::fs::read_to_string(&path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(ProjectError::NotAProject(dir.to_path_buf()))
        }
        other => other.map_err(io(&path))?,
    };
    let manifest: Manifest = toml::from_str(&text).map_err(|e| ProjectError::BadManifest {
        path: path.clone(),
        message: e.to_string(),
    })?;
    check_name(&manifest.name).map_err(|e| ProjectError::BadManifest {
        path,
        message: e.to_string(),
    })?;
    Ok(manifest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        for good in ["a", "channel-count", "job2"] {
            assert!(check_name(good).is_ok(), "{good}");
        }
        for bad in ["", "2job", "Job", "a_b", "a/b", "../x", &"a".repeat(65)] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_new_project_names_itself_and_is_never_overwritten() {
        let tmp = tempfile::tempdir().unwrap();
        for lang in Lang::ALL {
            let name = format!("count-{}", lang.name());
            let dir = create(tmp.path(), &name, lang).unwrap();
            let m = manifest(&dir).unwrap();
            assert_eq!((m.name.as_str(), m.lang), (name.as_str(), lang));
            assert!(dir.join("wit/job.wit").is_file());
            assert!(dir.join("README.md").is_file());
            assert!(matches!(
                create(tmp.path(), &name, lang),
                Err(ProjectError::Exists(_))
            ));
        }
        assert!(matches!(
            manifest(tmp.path()),
            Err(ProjectError::NotAProject(_))
        ));
    }
}
