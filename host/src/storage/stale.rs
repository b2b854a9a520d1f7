//! Stale `.partial` partition files left by a crash, and the writer lock that tells them apart
//! from files a live writer still owns.
//!
//! Every [`StorageWriter`](super::StorageWriter) holds a *shared* `flock` on the `storage/`
//! directory itself (no lock file, so listings see nothing new) for as long as it may have files
//! open, in whatever process it runs (`serve`'s live conversion, `convert`).
//! [`recover_stale_partials`] runs at the start of those commands: it takes the lock
//! *exclusively* without waiting, so it succeeds only when no writer is alive anywhere, and then
//! every `.partial` file it listed before and that is still there is stale (the lock is held only
//! for the moves, not the walk). The kernel drops a dead process's locks, so a crash never
//! leaves the lock held. It moves them to
//! `errors/stale-partials/<UTC time>-<pid>/<original path>` rather than deleting them (see
//! `docs/durability.md` for why). When another process holds the lock, nothing is touched and
//! the next start tries again. A writer that starts while recovery runs waits for it (a few ms).

use std::fs::TryLockError;

use cap_std::fs::Dir;

use super::datadir::{DataDir, ERRORS, STORAGE};
use super::partition::PARTIAL_SUFFIX;
use super::StorageError;

/// Where stale partial files are moved, under `errors/`.
pub const STALE_DIR: &str = "stale-partials";

/// A shared `flock` on the storage directory, held by a live writer.
#[derive(Debug)]
pub struct WriterLock {
    _dir: std::fs::File,
}

impl WriterLock {
    /// Takes the shared lock on `storage`; waits only while a recovery holds it exclusively.
    pub fn shared(storage: &Dir) -> std::io::Result<WriterLock> {
        let dir = open_lock(storage)?;
        dir.lock_shared()?;
        Ok(WriterLock { _dir: dir })
    }
}

/// A new read-only open file description of `storage`: a `flock` belongs to one, so a lock is
/// never shared by accident with another handle of the same directory (and cap-std's own
/// directory handles are `O_PATH`, which cannot be locked).
fn open_lock(storage: &Dir) -> std::io::Result<std::fs::File> {
    use rustix::fs::{openat, Mode, OFlags};
    let fd = openat(
        storage,
        ".",
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    Ok(std::fs::File::from(fd))
}

/// What [`recover_stale_partials`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StalePartials {
    /// Paths (relative to `storage/`) of the stale files moved, sorted.
    pub moved: Vec<String>,
    /// Their total size in bytes.
    pub bytes: u64,
    /// Where they went, relative to the data directory (`errors/stale-partials/<stamp>`); empty
    /// when nothing was moved.
    pub moved_to: String,
    /// Stale files that could not be moved (each logged).
    pub failed: usize,
    /// True when `.partial` files were found but a live writer holds the lock, so none was moved.
    pub skipped: bool,
}

/// Moves every `.partial` file under `storage/` to `errors/stale-partials/<UTC time>-<pid>/`,
/// provided no writer holds the storage lock (see the module doc). Logs what it did.
pub fn recover_stale_partials(data: &DataDir) -> Result<StalePartials, StorageError> {
    let storage = data.sub(STORAGE)?;
    // Listed before locking, so a long walk never holds up writers. A file listed here that a
    // live writer owned is either still owned when the lock is tried (which then fails) or was
    // finished and renamed meanwhile (so it is gone and skipped below): whatever is still there
    // once the lock is held belonged to a writer that died.
    let mut found = Vec::new();
    find_partials(&storage, "", &mut found)?;
    found.sort();
    let mut report = StalePartials::default();
    if found.is_empty() {
        return Ok(report);
    }
    let lock = open_lock(&storage).map_err(|e| StorageError::io(STORAGE, e))?;
    match lock.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            tracing::info!(
                files = found.len(),
                "another process is writing storage; .partial files are checked again at the next start"
            );
            report.skipped = true;
            return Ok(report);
        }
        Err(TryLockError::Error(e)) => return Err(StorageError::io(STORAGE, e)),
    }
    let stamp = format!(
        "{}-{}",
        chrono::Utc::now().format("%Y%m%dT%H%M%SZ"),
        std::process::id()
    );
    let target = format!("{STALE_DIR}/{stamp}");
    let errors = data.sub(ERRORS)?;
    for (rel, size) in found {
        if !storage.exists(&rel) {
            continue; // finished by its writer after the listing
        }
        let to = format!("{target}/{rel}");
        let parent = to.rsplit_once('/').map_or(target.as_str(), |(dir, _)| dir);
        let moved = errors
            .create_dir_all(parent)
            .and_then(|()| storage.rename(&rel, &errors, &to));
        match moved {
            Ok(()) => {
                report.bytes += size;
                report.moved.push(rel);
            }
            Err(error) => {
                report.failed += 1;
                tracing::error!(file = %format!("{STORAGE}/{rel}"), %error, "cannot move a stale partial file");
            }
        }
    }
    drop(lock);
    if !report.moved.is_empty() {
        report.moved_to = format!("{ERRORS}/{target}");
        tracing::warn!(
            files = report.moved.len(),
            bytes = report.bytes,
            to = %report.moved_to,
            "moved stale .partial storage files left by a crash (their records are converted again)"
        );
    }
    Ok(report)
}

/// Appends `(path, size)` of every regular `.partial` file under `dir` (at `prefix`) to `out`.
/// Symbolic links are not followed.
fn find_partials(
    dir: &Dir,
    prefix: &str,
    out: &mut Vec<(String, u64)>,
) -> Result<(), StorageError> {
    let shown = |name: &str| {
        if prefix.is_empty() {
            name.to_string()
        } else {
            format!("{prefix}/{name}")
        }
    };
    let io = |path: String| move |e| StorageError::io(format!("{STORAGE}/{path}"), e);
    for entry in dir.entries().map_err(io(shown("")))? {
        let entry = entry.map_err(io(shown("")))?;
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        let path = shown(&name);
        let kind = entry.file_type().map_err(io(path.clone()))?;
        if kind.is_dir() {
            let sub = entry.open_dir().map_err(io(path.clone()))?;
            find_partials(&sub, &path, out)?;
        } else if kind.is_file() && name.ends_with(PARTIAL_SUFFIX) {
            match entry.metadata() {
                Ok(meta) => out.push((path, meta.len())),
                // Finished (renamed) by a live writer while listed.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io(path)(e)),
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plant(root: &std::path::Path, rel: &str, bytes: &[u8]) {
        let path = root.join("storage").join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
    }

    #[test]
    fn stale_partials_move_to_errors_only_when_no_writer_is_alive() {
        let tmp = tempfile::tempdir().unwrap();
        let data = DataDir::open(tmp.path()).unwrap();
        let stale = "main/Firefox/nightly/45.0/20151103.20151110.v4.log.0123.zst.partial";
        plant(tmp.path(), stale, b"half a zstd stream");
        plant(tmp.path(), "20151110.v4.log.abcd.zst.partial", b"xy");
        let finished = "main/Firefox/nightly/45.0/20151103.20151110.v4.log.4567.zst";
        plant(tmp.path(), finished, b"a finished file");

        // A live writer (here: this process's lock) owns the partials: nothing is touched.
        let live = WriterLock::shared(&data.sub(STORAGE).unwrap()).unwrap();
        let report = recover_stale_partials(&data).unwrap();
        assert!(report.skipped);
        assert!(tmp.path().join("storage").join(stale).exists());
        drop(live);

        let report = recover_stale_partials(&data).unwrap();
        assert!(!report.skipped);
        assert_eq!(
            report.moved,
            vec![
                "20151110.v4.log.abcd.zst.partial".to_string(),
                stale.to_string()
            ]
        );
        assert_eq!(report.bytes, 20);
        assert_eq!(report.failed, 0);
        assert!(
            report.moved_to.starts_with("errors/stale-partials/"),
            "{}",
            report.moved_to
        );
        let moved = tmp.path().join(&report.moved_to);
        assert_eq!(
            std::fs::read(moved.join(stale)).unwrap(),
            b"half a zstd stream"
        );
        assert!(!tmp.path().join("storage").join(stale).exists());
        assert!(
            tmp.path().join("storage").join(finished).exists(),
            "finished files stay"
        );

        // Nothing left: a second run moves nothing and creates no directory.
        let again = recover_stale_partials(&data).unwrap();
        assert_eq!(again, StalePartials::default());
    }
}
