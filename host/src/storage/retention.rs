//! Retention: age and size limits for the directories the server only ever adds to.
//!
//! `errors/` (the error stream), `raw/converted/` (raw logs kept after conversion),
//! `raw/failed/` (raw logs whose conversion failed) and `histograms/` (Histograms.json files
//! fetched from the histogram server) grew without end (issue 11). A [`Sweeper`] runs
//! [`sweep`] in the background every `retention.sweep_interval_secs`: in each directory (and
//! below it) it removes files older than the directory's `*_max_age_secs`, then the oldest files
//! until the rest fits in `*_max_bytes` (0 turns a rule off). A file modified less than
//! `retention.min_age_secs` ago is never removed (it may still be open for writing). A sweep stops
//! at `retention.sweep_deadline_secs` and goes on at the next interval. Every removal is counted
//! by directory and rule, and the bytes left per directory are a gauge
//! ([`RetentionMetrics`]). Everything goes through the data directory's cap-std
//! handle.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use cap_std::fs::Dir;
use serde::{Deserialize, Serialize};

use super::datadir::{self, DataDir};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// The retention sweeps' metrics.
#[derive(Clone, Default)]
pub struct RetentionMetrics {
    /// Files removed by retention sweeps, by directory and rule.
    pub files_removed: Family<SweepLabel, Counter>,
    /// Bytes removed by retention sweeps, by directory and rule.
    pub bytes_removed: Family<SweepLabel, Counter>,
    /// Bytes under each swept directory after the last sweep.
    pub dir_bytes: Family<DirLabel, Gauge>,
    /// Sweeps that hit their deadline before finishing.
    pub sweeps_cut: Counter,
}

impl RetentionMetrics {
    /// Creates the metrics and registers them in `registry`.
    pub fn register(registry: &mut Registry) -> RetentionMetrics {
        let metrics = RetentionMetrics::default();
        registry.register(
            "retention_removed_files",
            "Files removed by retention sweeps by directory and rule (age, bytes)",
            metrics.files_removed.clone(),
        );
        registry.register(
            "retention_removed_bytes",
            "Bytes removed by retention sweeps by directory and rule (age, bytes)",
            metrics.bytes_removed.clone(),
        );
        registry.register(
            "retention_dir_bytes",
            "Bytes under each swept directory after the last sweep",
            metrics.dir_bytes.clone(),
        );
        registry.register(
            "retention_sweeps_cut",
            "Retention sweeps stopped by their deadline",
            metrics.sweeps_cut.clone(),
        );
        metrics
    }
}

/// Label set `{dir="errors", rule="age"}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SweepLabel {
    /// The swept directory (`errors`, `raw_converted`, `raw_failed`, `histograms`).
    pub dir: &'static str,
    /// The rule that removed the file (`age`, `bytes`).
    pub rule: &'static str,
}

/// Label set `{dir="errors"}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DirLabel {
    /// The swept directory.
    pub dir: &'static str,
}

/// Told the bytes left in `errors/` after each complete sweep of it (the error stream's
/// process-wide budget is kept by the conversion stage; the composition root connects the two).
pub type ErrorsSwept = Arc<dyn Fn(u64) + Send + Sync>;

/// `[retention]` section.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetentionConfig {
    /// Seconds between sweeps (the first runs at start-up).
    pub sweep_interval_secs: u64,
    /// Longest a sweep may run, in seconds; the rest waits for the next sweep.
    pub sweep_deadline_secs: u64,
    /// Files modified less than this many seconds ago are never removed.
    pub min_age_secs: u64,
    /// `errors/`: files older than this are removed (0: no age limit).
    pub errors_max_age_secs: u64,
    /// `errors/`: the oldest files are removed beyond this many bytes (0: no limit). Also the
    /// error stream's total budget: past it, new entries lose their body.
    pub errors_max_bytes: u64,
    /// `raw/converted/`: age limit in seconds (0: none).
    pub raw_converted_max_age_secs: u64,
    /// `raw/converted/`: size limit in bytes (0: none).
    pub raw_converted_max_bytes: u64,
    /// `raw/failed/`: age limit in seconds (0: none).
    pub raw_failed_max_age_secs: u64,
    /// `raw/failed/`: size limit in bytes (0: none).
    pub raw_failed_max_bytes: u64,
    /// `histograms/`: age limit in seconds (0: none); a removed file is fetched again when needed.
    pub histograms_max_age_secs: u64,
    /// `histograms/`: size limit in bytes (0: none).
    pub histograms_max_bytes: u64,
}

const DAY: u64 = 24 * 3600;
const GIB: u64 = 1 << 30;

impl Default for RetentionConfig {
    fn default() -> Self {
        RetentionConfig {
            sweep_interval_secs: 300,
            sweep_deadline_secs: 60,
            min_age_secs: 600,
            errors_max_age_secs: 14 * DAY,
            errors_max_bytes: GIB,
            raw_converted_max_age_secs: 30 * DAY,
            raw_converted_max_bytes: 64 * GIB,
            raw_failed_max_age_secs: 30 * DAY,
            raw_failed_max_bytes: 8 * GIB,
            histograms_max_age_secs: 0,
            histograms_max_bytes: GIB,
        }
    }
}

impl RetentionConfig {
    /// Rejects settings the sweeper cannot run with.
    pub fn validate(&self) -> Result<(), String> {
        if self.sweep_interval_secs == 0 || self.sweep_deadline_secs == 0 {
            return Err(
                "retention.sweep_interval_secs and retention.sweep_deadline_secs must be > 0"
                    .into(),
            );
        }
        Ok(())
    }

    /// The swept directories with their limits.
    pub fn targets(&self) -> [Target; 4] {
        [
            Target {
                label: "errors",
                path: &[datadir::ERRORS],
                max_age_secs: self.errors_max_age_secs,
                max_bytes: self.errors_max_bytes,
            },
            Target {
                label: "raw_converted",
                path: &[datadir::RAW, datadir::CONVERTED_DIR],
                max_age_secs: self.raw_converted_max_age_secs,
                max_bytes: self.raw_converted_max_bytes,
            },
            Target {
                label: "raw_failed",
                path: &[datadir::RAW, datadir::FAILED_DIR],
                max_age_secs: self.raw_failed_max_age_secs,
                max_bytes: self.raw_failed_max_bytes,
            },
            Target {
                label: "histograms",
                path: &[datadir::HISTOGRAMS],
                max_age_secs: self.histograms_max_age_secs,
                max_bytes: self.histograms_max_bytes,
            },
        ]
    }
}

/// One swept directory.
#[derive(Debug, Clone, Copy)]
pub struct Target {
    /// Metric label.
    pub label: &'static str,
    /// Path components under the data directory.
    pub path: &'static [&'static str],
    /// Age limit in seconds (0: none).
    pub max_age_secs: u64,
    /// Size limit in bytes (0: none).
    pub max_bytes: u64,
}

/// What one sweep of one directory did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SweepReport {
    /// Files removed by the age rule.
    pub aged_files: u64,
    /// Bytes removed by the age rule.
    pub aged_bytes: u64,
    /// Files removed by the size rule.
    pub sized_files: u64,
    /// Bytes removed by the size rule.
    pub sized_bytes: u64,
    /// Bytes left.
    pub left_bytes: u64,
    /// The deadline stopped the sweep.
    pub cut: bool,
}

/// A file found by a sweep.
struct Found {
    /// Path relative to the swept directory.
    path: String,
    bytes: u64,
    modified: SystemTime,
}

/// Sweeps one directory (see the module doc); `now` and `deadline` are passed in for tests.
pub fn sweep(
    root: &Dir,
    target: &Target,
    min_age: Duration,
    now: SystemTime,
    deadline: Instant,
) -> std::io::Result<SweepReport> {
    let mut report = SweepReport::default();
    let mut dir = match root.open_dir(target.path[0]) {
        Ok(dir) => dir,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(report),
        Err(e) => return Err(e),
    };
    for component in &target.path[1..] {
        dir = match dir.open_dir(component) {
            Ok(dir) => dir,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(report),
            Err(e) => return Err(e),
        };
    }
    let mut files = Vec::new();
    report.cut = walk(&dir, "", &mut files, deadline, 0);
    files.sort_by_key(|f| f.modified);
    let age = |f: &Found| now.duration_since(f.modified).unwrap_or_default();
    let mut total: u64 = files.iter().map(|f| f.bytes).sum();
    let mut kept = Vec::with_capacity(files.len());
    for file in files {
        if report.cut || Instant::now() > deadline {
            report.cut = true;
            kept.push(file);
            continue;
        }
        let old = target.max_age_secs > 0
            && age(&file) > Duration::from_secs(target.max_age_secs).max(min_age);
        if old && remove(&dir, &file.path) {
            report.aged_files += 1;
            report.aged_bytes += file.bytes;
            total -= file.bytes;
        } else {
            kept.push(file);
        }
    }
    if target.max_bytes > 0 && !report.cut {
        for file in kept {
            if total <= target.max_bytes || age(&file) < min_age {
                break; // oldest first: everything after is as young or younger
            }
            if Instant::now() > deadline {
                report.cut = true;
                break;
            }
            if remove(&dir, &file.path) {
                report.sized_files += 1;
                report.sized_bytes += file.bytes;
                total -= file.bytes;
            }
        }
    }
    report.left_bytes = total;
    Ok(report)
}

/// Collects the regular files under `dir` (at most 16 levels deep); true when the deadline cut it.
fn walk(dir: &Dir, prefix: &str, out: &mut Vec<Found>, deadline: Instant, depth: usize) -> bool {
    let Ok(entries) = dir.entries() else {
        return false;
    };
    for entry in entries.flatten() {
        if Instant::now() > deadline {
            return true;
        }
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        let path = if prefix.is_empty() {
            name.clone()
        } else {
            format!("{prefix}/{name}")
        };
        if kind.is_dir() && depth < 16 {
            if let Ok(sub) = dir.open_dir(&name) {
                if walk(&sub, &path, out, deadline, depth + 1) {
                    return true;
                }
            }
        } else if kind.is_file() {
            let Ok(meta) = entry.metadata() else { continue };
            let modified = meta
                .modified()
                .map(|t| t.into_std())
                .unwrap_or_else(|_| SystemTime::now());
            out.push(Found {
                path,
                bytes: meta.len(),
                modified,
            });
        }
    }
    false
}

/// Removes a file and the directories it leaves empty (up to the swept directory).
fn remove(dir: &Dir, path: &str) -> bool {
    if let Err(error) = dir.remove_file(path) {
        if error.kind() != std::io::ErrorKind::NotFound {
            tracing::warn!(path, %error, "retention: cannot remove file");
        }
        return false;
    }
    let mut parent = path;
    while let Some((up, _)) = parent.rsplit_once('/') {
        if dir.remove_dir(up).is_err() {
            break; // not empty
        }
        parent = up;
    }
    true
}

/// Sweeps every directory once, updating the metrics and the error stream's view of `errors/`.
pub fn sweep_all(
    data: &DataDir,
    config: &RetentionConfig,
    metrics: &RetentionMetrics,
    errors_swept: &ErrorsSwept,
) {
    let deadline = Instant::now() + Duration::from_secs(config.sweep_deadline_secs);
    let min_age = Duration::from_secs(config.min_age_secs);
    let mut cut = false;
    for target in config.targets() {
        match sweep(data.dir(), &target, min_age, SystemTime::now(), deadline) {
            Ok(report) => {
                for (rule, files, bytes) in [
                    ("age", report.aged_files, report.aged_bytes),
                    ("bytes", report.sized_files, report.sized_bytes),
                ] {
                    let label = SweepLabel {
                        dir: target.label,
                        rule,
                    };
                    metrics.files_removed.get_or_create(&label).inc_by(files);
                    metrics.bytes_removed.get_or_create(&label).inc_by(bytes);
                }
                metrics
                    .dir_bytes
                    .get_or_create(&DirLabel { dir: target.label })
                    .set(report.left_bytes.min(i64::MAX as u64) as i64);
                if target.label == "errors" && !report.cut {
                    errors_swept(report.left_bytes);
                }
                if report.aged_files + report.sized_files > 0 {
                    tracing::info!(
                        dir = target.label,
                        files = report.aged_files + report.sized_files,
                        bytes = report.aged_bytes + report.sized_bytes,
                        "retention: removed old files"
                    );
                }
                cut |= report.cut;
            }
            Err(error) => tracing::warn!(dir = target.label, %error, "retention sweep failed"),
        }
        if cut {
            break;
        }
    }
    if cut {
        metrics.sweeps_cut.inc();
        tracing::warn!("retention sweep stopped at its deadline; continuing at the next one");
    }
}

/// The background sweep loop; [`Sweeper::stop`] ends it.
pub struct Sweeper {
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Sweeper {
    /// Starts sweeping now and every `sweep_interval_secs` (each sweep on the blocking pool).
    pub fn start(
        data: Arc<DataDir>,
        config: RetentionConfig,
        metrics: RetentionMetrics,
        errors_swept: ErrorsSwept,
    ) -> Sweeper {
        let (stop, mut stopped) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(async move {
            let interval = Duration::from_secs(config.sweep_interval_secs);
            loop {
                let (data, config, metrics, swept) = (
                    data.clone(),
                    config.clone(),
                    metrics.clone(),
                    errors_swept.clone(),
                );
                let _ = tokio::task::spawn_blocking(move || {
                    sweep_all(&data, &config, &metrics, &swept)
                })
                .await;
                tokio::select! {
                    () = tokio::time::sleep(interval) => {}
                    _ = stopped.wait_for(|s| *s) => return,
                }
            }
        });
        Sweeper { stop, task }
    }

    /// Stops the loop (waiting for a sweep in progress, which its deadline bounds).
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn touch(dir: &std::path::Path, rel: &str, bytes: usize, age_secs: u64) {
        let path = dir.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, vec![b'x'; bytes]).unwrap();
        let when = SystemTime::now() - Duration::from_secs(age_secs);
        std::fs::File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_modified(when)
            .unwrap();
    }

    #[test]
    fn removes_old_files_then_the_oldest_beyond_the_size_limit() {
        let tmp = tempfile::tempdir().unwrap();
        let base = tmp.path().join("histograms");
        touch(&base, "repo/aaaaaaaaaaaa/Histograms.json", 100, 10 * DAY);
        touch(&base, "repo/bbbbbbbbbbbb/Histograms.json", 100, 3 * DAY);
        touch(&base, "repo/cccccccccccc/Histograms.json", 100, 2 * DAY);
        touch(&base, "repo/dddddddddddd/Histograms.json", 100, 1); // too young to remove
        let root = Dir::open_ambient_dir(tmp.path(), cap_std::ambient_authority()).unwrap();
        let target = Target {
            label: "histograms",
            path: &["histograms"],
            max_age_secs: 5 * DAY,
            max_bytes: 150,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        let report = sweep(
            &root,
            &target,
            Duration::from_secs(600),
            SystemTime::now(),
            deadline,
        )
        .unwrap();
        assert_eq!((report.aged_files, report.aged_bytes), (1, 100));
        // 300 bytes left > 150: b and c go (oldest first); d is too young even though 100 < 150 now.
        assert_eq!(
            (report.sized_files, report.sized_bytes, report.left_bytes),
            (2, 200, 100)
        );
        assert!(!report.cut);
        assert!(
            !base.join("repo/aaaaaaaaaaaa").exists(),
            "empty directories are removed"
        );
        assert!(base.join("repo/dddddddddddd/Histograms.json").exists());
        // A missing directory is nothing to do.
        let none = Target {
            label: "errors",
            path: &["errors"],
            max_age_secs: 1,
            max_bytes: 1,
        };
        assert_eq!(
            sweep(&root, &none, Duration::ZERO, SystemTime::now(), deadline).unwrap(),
            SweepReport::default()
        );
    }

    #[test]
    fn a_past_deadline_removes_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        touch(&tmp.path().join("errors"), "old.ndjson", 10, 100 * DAY);
        let root = Dir::open_ambient_dir(tmp.path(), cap_std::ambient_authority()).unwrap();
        let target = Target {
            label: "errors",
            path: &["errors"],
            max_age_secs: DAY,
            max_bytes: 0,
        };
        let past = Instant::now() - Duration::from_millis(1);
        let report = sweep(&root, &target, Duration::ZERO, SystemTime::now(), past).unwrap();
        assert!(report.cut);
        assert_eq!(report.aged_files, 0);
        assert!(tmp.path().join("errors/old.ndjson").exists());
    }
}
