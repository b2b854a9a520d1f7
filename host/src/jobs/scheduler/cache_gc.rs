//! [`ComponentCache`]: garbage collection of the compile cache (the data dir's `cache/`, where the
//! runtime keeps `<sha256>.wasm` and `<sha256>.cwasm` for every component ever uploaded).
//!
//! A component's *last use* is the newest modification time of its two files: they are written
//! when it is compiled, and [`ComponentCache::touch`] sets it whenever an upload or a submission
//! uses it. [`ComponentCache::collect`] (run by the scheduler at start-up and after every
//! retention pass) keeps:
//!
//! 1. every component a retained job record references (queued, running or finished);
//! 2. every component used less than `min_age` ago (an upload about to be submitted by hash);
//! 3. of the others, the most recently used ones, newest first, while at most `keep_unreferenced`
//!    of them fit in `max_unreferenced_bytes`;
//!
//! and deletes the rest, both files. Temporary files of interrupted cache writes older than
//! `min_age` go too. Touch and collect take the same lock, so a component touched before it is
//! loaded is never deleted between the two.

use std::collections::{BTreeMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use cap_std::fs::Dir;
use prometheus_client::metrics::counter::Counter;

use super::record::is_sha256;

/// The retention rule for unreferenced components (from `[jobs]`).
#[derive(Debug, Clone)]
pub struct CacheRetention {
    /// Unreferenced components kept, most recently used first.
    pub keep_unreferenced: usize,
    /// Bytes (both files) those kept unreferenced components may take together.
    pub max_unreferenced_bytes: u64,
    /// A component used more recently than this is never deleted.
    pub min_age: Duration,
}

/// What one collection did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GcReport {
    /// SHA-256 of the components deleted, sorted.
    pub deleted: Vec<String>,
    /// Bytes freed (components and stale temporary files).
    pub freed_bytes: u64,
    /// Components left in the cache.
    pub kept: usize,
}

/// The compile cache directory with its retention rule.
pub struct ComponentCache {
    dir: Dir,
    retention: CacheRetention,
    /// Serialises [`touch`](Self::touch) and [`collect`](Self::collect).
    lock: Mutex<()>,
    /// Components deleted (for `telemetry_jobs_cache_deleted_components_total`).
    pub deleted: Counter,
}

/// One component's files.
#[derive(Default)]
struct Entry {
    bytes: u64,
    last_used: Option<SystemTime>,
}

impl ComponentCache {
    /// The cache in `dir` (the data dir's `cache/`).
    pub fn new(dir: Dir, retention: CacheRetention) -> ComponentCache {
        ComponentCache {
            dir,
            retention,
            lock: Mutex::new(()),
            deleted: Counter::default(),
        }
    }

    /// Records that the component `sha256` is being used now (no-op when it is not cached).
    pub fn touch(&self, sha256: &str) {
        if !is_sha256(sha256) {
            return;
        }
        let _guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        let now = SystemTime::now();
        for name in [format!("{sha256}.wasm"), format!("{sha256}.cwasm")] {
            let touched = self
                .dir
                .open(&name)
                .and_then(|f| f.into_std().set_modified(now));
            if let Err(error) = touched {
                if error.kind() != std::io::ErrorKind::NotFound {
                    tracing::warn!(file = %name, %error, "cannot mark a cached component as used");
                }
            }
        }
    }

    /// Applies the retention rule; `referenced` are the components of every retained job.
    pub fn collect(&self, referenced: &HashSet<String>) -> std::io::Result<GcReport> {
        let _guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        let now = SystemTime::now();
        let age = |t: Option<SystemTime>| {
            t.and_then(|t| now.duration_since(t).ok())
                .unwrap_or_default()
        };
        let mut components: BTreeMap<String, Entry> = BTreeMap::new();
        let mut report = GcReport::default();
        for entry in self.dir.entries()? {
            let entry = entry?;
            let Ok(name) = entry.file_name().into_string() else {
                continue;
            };
            let meta = entry.metadata()?;
            if !meta.is_file() {
                continue;
            }
            let modified = meta
                .modified()
                .ok()
                .map(cap_std::time::SystemTime::into_std);
            if name.starts_with('.') && name.ends_with(".tmp") {
                if age(modified) >= self.retention.min_age && self.dir.remove_file(&name).is_ok() {
                    report.freed_bytes += meta.len();
                }
                continue;
            }
            let sha = name
                .strip_suffix(".cwasm")
                .or_else(|| name.strip_suffix(".wasm"));
            let Some(sha) = sha.filter(|s| is_sha256(s)) else {
                continue;
            };
            let component = components.entry(sha.to_string()).or_default();
            component.bytes += meta.len();
            component.last_used = component.last_used.max(modified);
        }
        let mut unreferenced: Vec<(&String, &Entry)> = components
            .iter()
            .filter(|(sha, _)| !referenced.contains(*sha))
            .collect();
        unreferenced.sort_by(|a, b| b.1.last_used.cmp(&a.1.last_used).then(a.0.cmp(b.0)));
        let (mut kept, mut kept_bytes) = (0usize, 0u64);
        let mut doomed = Vec::new();
        for (sha, component) in unreferenced {
            let recent = age(component.last_used) < self.retention.min_age;
            let fits = kept < self.retention.keep_unreferenced
                && kept_bytes + component.bytes <= self.retention.max_unreferenced_bytes;
            if recent || fits {
                kept += 1;
                kept_bytes += component.bytes;
            } else {
                doomed.push((sha.clone(), component.bytes));
            }
        }
        for (sha, bytes) in doomed {
            let mut removed = true;
            for name in [format!("{sha}.cwasm"), format!("{sha}.wasm")] {
                match self.dir.remove_file(&name) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                        tracing::warn!(file = %name, error = %e, "cannot delete a cached component");
                        removed = false;
                    }
                    _ => {}
                }
            }
            if removed {
                report.freed_bytes += bytes;
                report.deleted.push(sha);
            }
        }
        report.deleted.sort();
        report.kept = components.len() - report.deleted.len();
        self.deleted.inc_by(report.deleted.len() as u64);
        if !report.deleted.is_empty() {
            tracing::info!(
                deleted = report.deleted.len(),
                freed_bytes = report.freed_bytes,
                kept = report.kept,
                "deleted unused components from the compile cache"
            );
        }
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sha(n: u8) -> String {
        format!("{n:02x}").repeat(32)
    }

    /// A cache directory with a component per `(n, size, seconds since last use)`.
    fn cache(components: &[(u8, usize, u64)]) -> (tempfile::TempDir, Dir) {
        let tmp = tempfile::tempdir().unwrap();
        for &(n, size, age) in components {
            for ext in ["wasm", "cwasm"] {
                let path = tmp.path().join(format!("{}.{ext}", sha(n)));
                std::fs::write(&path, vec![0u8; size]).unwrap();
                let file = std::fs::File::options().write(true).open(&path).unwrap();
                file.set_modified(SystemTime::now() - Duration::from_secs(age))
                    .unwrap();
            }
        }
        let dir = Dir::open_ambient_dir(tmp.path(), cap_std::ambient_authority()).unwrap();
        (tmp, dir)
    }

    fn present(tmp: &tempfile::TempDir, n: u8) -> bool {
        let (wasm, cwasm) = (format!("{}.wasm", sha(n)), format!("{}.cwasm", sha(n)));
        assert_eq!(
            tmp.path().join(&wasm).exists(),
            tmp.path().join(&cwasm).exists(),
            "files go together"
        );
        tmp.path().join(wasm).exists()
    }

    #[test]
    fn keeps_referenced_recent_and_the_newest_within_count_and_bytes() {
        // (component, bytes per file, seconds since last use)
        let (tmp, dir) = cache(&[
            (1, 100, 5000),
            (2, 100, 4000),
            (3, 100, 3000),
            (4, 400, 2000),
            (5, 10, 10),
        ]);
        std::fs::write(tmp.path().join(".x.wasm.0123.tmp"), b"torn").unwrap();
        let gc = ComponentCache::new(
            dir,
            CacheRetention {
                keep_unreferenced: 2,
                max_unreferenced_bytes: 450,
                min_age: Duration::from_secs(60),
            },
        );
        let referenced: HashSet<String> = [sha(1)].into_iter().collect();
        let report = gc.collect(&referenced).unwrap();
        // 1: referenced, although the oldest. 5: used 10 s ago (< min_age), counts as kept.
        // Then newest first: 4 (800 bytes) would exceed 450 with 5's 20; 3 (200) fits: the
        // second kept; 2 is over the count.
        assert!(present(&tmp, 1) && present(&tmp, 5) && present(&tmp, 3));
        assert!(!present(&tmp, 4) && !present(&tmp, 2));
        assert_eq!(report.deleted, vec![sha(2), sha(4)]);
        assert_eq!(report.kept, 3);
        assert_eq!(gc.deleted.get(), 2);
        assert!(
            tmp.path().join(".x.wasm.0123.tmp").exists(),
            "a fresh temporary file may be a write in progress"
        );
    }

    #[test]
    fn touch_makes_a_component_recent_and_nothing_unreferenced_survives_a_zero_budget() {
        let (tmp, dir) = cache(&[(1, 10, 5000), (2, 10, 5000)]);
        let gc = ComponentCache::new(
            dir,
            CacheRetention {
                keep_unreferenced: 0,
                max_unreferenced_bytes: 0,
                min_age: Duration::from_secs(60),
            },
        );
        gc.touch(&sha(2));
        gc.touch("../../etc/passwd"); // not a hash: ignored
        let report = gc.collect(&HashSet::new()).unwrap();
        assert_eq!(report.deleted, vec![sha(1)]);
        assert!(present(&tmp, 2));
    }
}
