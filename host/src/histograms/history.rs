//! `histograms import-history`: the history of Histograms.json read from local Mercurial or git
//! clones of the Firefox repositories (mozilla-central, -aurora, -beta, -release). Every
//! distinct version is written once, named by its content hash (`<sha256 prefix>.json`), and a
//! revision table (`revisions.json`, [`super::RevisionTable`]) says which revision was in effect
//! from when to when, on which channel and for which app version: what the converter's fallback
//! by channel + build id and by app version reads for pings that name no revision.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use cap_std::fs::Dir;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::revisions::TABLE_FILE;

/// Where Firefox keeps its histogram definitions.
pub const HISTOGRAMS_PATH: &str = "toolkit/components/telemetry/Histograms.json";
/// The app version of a checkout (last non-comment line, e.g. `23.0a1`).
const MILESTONE_PATH: &str = "config/milestone.txt";
/// Longest one `hg`/`git` command may take.
const COMMAND_DEADLINE: Duration = Duration::from_secs(300);
/// Build ids are compared as 14-digit strings; the last revision's range ends here.
const OPEN_END: &str = "99999999999999";

/// Why an import failed.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    /// The path has neither `.hg` nor `.git`.
    #[error("{0}: not a Mercurial or git clone (no .hg or .git)")]
    NotARepository(PathBuf),
    /// `hg`/`git` could not be started.
    #[error("{command}: {source}")]
    Spawn {
        /// The command line that was run.
        command: String,
        /// Why it could not start.
        source: std::io::Error,
    },
    /// `hg`/`git` exited with failure.
    #[error("{command} failed: {stderr}")]
    Failed {
        /// The command line that was run.
        command: String,
        /// What it wrote to stderr.
        stderr: String,
    },
    /// `hg`/`git` ran past its deadline and was killed.
    #[error("{command} took longer than {} s", COMMAND_DEADLINE.as_secs())]
    Deadline {
        /// The command line that was run.
        command: String,
    },
    /// A file or directory could not be read or written.
    #[error("{what}: {source}")]
    Io {
        /// The file or directory.
        what: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The existing revision table (file name, parse error) could not be read as JSON.
    #[error("{0}: existing revision table is not valid JSON: {1}")]
    Table(String, serde_json::Error),
    /// No commit of the repository has the Histograms.json file.
    #[error("{0}: the repository never had {HISTOGRAMS_PATH}")]
    NoHistory(PathBuf),
}

/// One repository to import: its name in revision URLs and the path of its clone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Repository {
    /// Repository name as it appears in revision URLs.
    pub name: String,
    /// Path of the local clone.
    pub path: PathBuf,
}

impl Repository {
    /// `NAME=PATH`, or a bare `PATH` named after its directory: `mozilla-central` as is, any
    /// other `mozilla-*` under `releases/` (as in hg.mozilla.org URLs).
    pub fn parse(arg: &str) -> Repository {
        if let Some((name, path)) = arg.split_once('=') {
            return Repository {
                name: name.to_owned(),
                path: PathBuf::from(path),
            };
        }
        let path = PathBuf::from(arg);
        let dir = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let name = if dir == "mozilla-central" || !dir.starts_with("mozilla-") {
            dir
        } else {
            format!("releases/{dir}")
        };
        Repository { name, path }
    }

    /// The update channel whose builds come from this repository.
    pub fn channel(&self) -> Option<&'static str> {
        let base = self.name.rsplit('/').next().unwrap_or_default();
        Some(match base {
            "mozilla-central" => "nightly",
            "mozilla-aurora" => "aurora",
            "mozilla-beta" => "beta",
            "mozilla-release" => "release",
            _ => return None,
        })
    }
}

/// What an import did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ImportSummary {
    /// Revisions that changed Histograms.json, per repository name.
    pub revisions: BTreeMap<String, usize>,
    /// Distinct Histograms.json versions among them.
    pub distinct_files: usize,
    /// Of those, files not already in the output directory.
    pub files_written: usize,
}

#[derive(Clone, Copy)]
enum Vcs {
    Hg,
    Git,
}

/// A revision that changed Histograms.json.
struct Change {
    rev: String,
    /// Commit time, seconds since the epoch (UTC).
    time: i64,
}

/// Imports every repository into `out` (created if needed): content-addressed files and a
/// `revisions.json` whose entries for these repositories are replaced, others kept. `progress`
/// is told `(repository, done, total)` as revisions are read.
pub fn import(
    repos: &[Repository],
    out: &Path,
    progress: &mut dyn FnMut(&str, usize, usize),
) -> Result<ImportSummary, HistoryError> {
    std::fs::create_dir_all(out).map_err(|source| io(out, source))?;
    let dir = Dir::open_ambient_dir(out, cap_std::ambient_authority())
        .map_err(|source| io(out, source))?;
    let mut summary = ImportSummary::default();
    let mut entries = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for repo in repos {
        let vcs = detect(&repo.path)?;
        let mut changes = history(vcs, &repo.path)?;
        if changes.is_empty() {
            return Err(HistoryError::NoHistory(repo.path.clone()));
        }
        changes.sort_by_key(|c| c.time);
        let total = changes.len();
        for (i, change) in changes.iter().enumerate() {
            progress(&repo.name, i, total);
            let Some(text) = file_at(vcs, &repo.path, &change.rev, HISTOGRAMS_PATH)? else {
                continue; // the change deleted the file
            };
            let file = format!("{}.json", &hex::encode(Sha256::digest(&text))[..32]);
            if seen.insert(file.clone()) {
                summary.distinct_files += 1;
                if !dir.exists(&file) {
                    write_atomically(&dir, &file, &text)?;
                    summary.files_written += 1;
                }
            }
            let version = file_at(vcs, &repo.path, &change.rev, MILESTONE_PATH)?
                .and_then(|m| major_version(&String::from_utf8_lossy(&m)));
            let from = build_id(change.time);
            let to = changes
                .get(i + 1)
                .map_or(OPEN_END.to_owned(), |next| build_id(next.time));
            let mut builds = serde_json::Map::new();
            if let Some(channel) = repo.channel() {
                builds.insert(channel.into(), json!([from, to]));
            }
            entries.push(json!({
                "repo": repo.name,
                "rev": &change.rev[..change.rev.len().min(12)],
                "app_versions": version.into_iter().collect::<Vec<_>>(),
                "builds": builds,
                "file": file,
                "from": from,
                "to": to,
            }));
        }
        progress(&repo.name, total, total);
        summary.revisions.insert(repo.name.clone(), total);
    }
    let imported: Vec<&str> = repos.iter().map(|r| r.name.as_str()).collect();
    let mut table = existing_entries(&dir)?;
    table.retain(|e| !imported.contains(&e["repo"].as_str().unwrap_or_default()));
    table.extend(entries);
    // Newest first, so that a lookup by app version finds the latest definitions of a version.
    table.sort_by(|a, b| b["from"].as_str().cmp(&a["from"].as_str()));
    let doc = json!({
        "about": "Written by `telemetry-server histograms import-history`: each revision that changed Histograms.json, the file holding its content, and the build ids ([from, to), YYYYMMDDhhmmss UTC) and app versions it was in effect for.",
        "revisions": table,
    });
    let text = serde_json::to_vec_pretty(&doc).unwrap_or_default();
    write_atomically(&dir, TABLE_FILE, &text)?;
    Ok(summary)
}

fn io(path: &Path, source: std::io::Error) -> HistoryError {
    HistoryError::Io {
        what: path.display().to_string(),
        source,
    }
}

fn detect(path: &Path) -> Result<Vcs, HistoryError> {
    if path.join(".hg").is_dir() {
        Ok(Vcs::Hg)
    } else if path.join(".git").exists() {
        Ok(Vcs::Git)
    } else {
        Err(HistoryError::NotARepository(path.to_owned()))
    }
}

/// Every revision that changed Histograms.json.
fn history(vcs: Vcs, path: &Path) -> Result<Vec<Change>, HistoryError> {
    let output = match vcs {
        Vcs::Hg => run(Command::new("hg").arg("--cwd").arg(path).args([
            "log",
            "--template",
            "{node}\\t{date|hgdate}\\n",
            HISTOGRAMS_PATH,
        ]))?,
        Vcs::Git => run(Command::new("git").arg("-C").arg(path).args([
            "log",
            "--format=%H%x09%ct",
            "--",
            HISTOGRAMS_PATH,
        ]))?,
    };
    let text = String::from_utf8_lossy(&output);
    Ok(text
        .lines()
        .filter_map(|line| {
            let (rev, date) = line.split_once('\t')?;
            let time = date.split_whitespace().next()?.parse().ok()?;
            Some(Change {
                rev: rev.to_owned(),
                time,
            })
        })
        .collect())
}

/// The content of `file` at `rev`; `None` when it does not exist there.
fn file_at(vcs: Vcs, path: &Path, rev: &str, file: &str) -> Result<Option<Vec<u8>>, HistoryError> {
    let mut command = match vcs {
        Vcs::Hg => {
            let mut c = Command::new("hg");
            c.arg("--cwd").arg(path).args(["cat", "-r", rev, file]);
            c
        }
        Vcs::Git => {
            let mut c = Command::new("git");
            c.arg("-C")
                .arg(path)
                .arg("show")
                .arg(format!("{rev}:{file}"));
            c
        }
    };
    match run(&mut command) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(HistoryError::Failed { .. }) => Ok(None),
        Err(other) => Err(other),
    }
}

/// Runs `command` to completion within [`COMMAND_DEADLINE`]; its standard output.
fn run(command: &mut Command) -> Result<Vec<u8>, HistoryError> {
    let name = format!("{command:?}");
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| HistoryError::Spawn {
            command: name.clone(),
            source,
        })?;
    let mut stdout = child.stdout.take().expect("piped");
    let mut stderr = child.stderr.take().expect("piped");
    let reader = std::thread::spawn(move || {
        let mut out = Vec::new();
        let _ = stdout.read_to_end(&mut out);
        out
    });
    let errors = std::thread::spawn(move || {
        let mut err = Vec::new();
        let _ = stderr.read_to_end(&mut err);
        err
    });
    let start = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if start.elapsed() > COMMAND_DEADLINE => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(HistoryError::Deadline { command: name });
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(5)),
            Err(source) => {
                return Err(HistoryError::Spawn {
                    command: name,
                    source,
                })
            }
        }
    };
    let out = reader.join().unwrap_or_default();
    let err = errors.join().unwrap_or_default();
    if !status.success() {
        return Err(HistoryError::Failed {
            command: name,
            stderr: String::from_utf8_lossy(&err).trim().to_owned(),
        });
    }
    Ok(out)
}

/// The major version in a `milestone.txt` (`"23.0a1"` → `"23"`).
fn major_version(milestone: &str) -> Option<String> {
    let line = milestone
        .lines()
        .map(str::trim)
        .rfind(|l| !l.is_empty() && !l.starts_with('#'))?;
    let major: String = line.chars().take_while(char::is_ascii_digit).collect();
    (!major.is_empty()).then_some(major)
}

/// A commit time as a build id (`YYYYMMDDhhmmss`, UTC).
fn build_id(time: i64) -> String {
    chrono::DateTime::from_timestamp(time, 0)
        .map(|t| t.format("%Y%m%d%H%M%S").to_string())
        .unwrap_or_else(|| OPEN_END.to_owned())
}

fn existing_entries(dir: &Dir) -> Result<Vec<Value>, HistoryError> {
    let text = match dir.read_to_string(TABLE_FILE) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => return Err(io(Path::new(TABLE_FILE), source)),
    };
    let doc: Value =
        serde_json::from_str(&text).map_err(|e| HistoryError::Table(TABLE_FILE.into(), e))?;
    Ok(doc["revisions"].as_array().cloned().unwrap_or_default())
}

/// Writes `name` through a temporary file and a rename, so a reader never sees half a file.
fn write_atomically(dir: &Dir, name: &str, bytes: &[u8]) -> Result<(), HistoryError> {
    let tmp = format!(".{name}.tmp");
    dir.write(&tmp, bytes)
        .and_then(|()| dir.rename(&tmp, dir, name))
        .map_err(|source| io(Path::new(name), source))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repository_names_and_channels() {
        let central = Repository::parse("/src/mozilla-central");
        assert_eq!(central.name, "mozilla-central");
        assert_eq!(central.channel(), Some("nightly"));
        let aurora = Repository::parse("clones/mozilla-aurora");
        assert_eq!(aurora.name, "releases/mozilla-aurora");
        assert_eq!(aurora.channel(), Some("aurora"));
        let named = Repository::parse("releases/mozilla-beta=/tmp/x");
        assert_eq!(
            (named.name.as_str(), named.path.as_path()),
            ("releases/mozilla-beta", Path::new("/tmp/x"))
        );
        assert_eq!(named.channel(), Some("beta"));
        assert_eq!(Repository::parse("/tmp/fork").channel(), None);
    }

    #[test]
    fn versions_and_build_ids() {
        assert_eq!(
            major_version("# comment\n\n23.0a1\n").as_deref(),
            Some("23")
        );
        assert_eq!(major_version("# only comments\n"), None);
        assert_eq!(build_id(1_368_403_200), "20130513000000");
    }
}
