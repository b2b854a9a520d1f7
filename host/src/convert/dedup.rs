//! [`DedupIndex`]: the persistent, bounded index of the document ids stored in the last
//! `window_days` days of submission dates, so a document submitted (or converted) again is
//! counted as a duplicate instead of being stored twice. Shared by live conversion and
//! `convert` (one [`Arc`] per process; the file is locked by the process that opens it).
//!
//! The store is [redb](https://docs.rs/redb): pure Rust, one file (`DATA_DIR/dedup/ids.redb`),
//! ACID transactions whose commit is durable (fsync) when it returns, and crash-safe (a torn
//! commit is rolled back at the next open). Tables:
//!
//! - `ids`: id → submission day (`YYYYMMDD`);
//! - `by_day`: `day (4 bytes BE) ++ id` → `()`, so expiry deletes a key range;
//! - `pending`: partition file path → the `(id, day)`s it holds, written in the same commit as
//!   the ids, before the file is renamed to its final name, dropped right after the rename;
//! - `meta`: `newest_day`, the newest submission day seen.
//!
//! **Ordering with storage.** A record's id is *reserved* in memory when it is written to an open
//! (`.partial`) partition file, so no other writer of this process stores the same id. When the
//! storage writer publishes files (a flush, a rotation: [`PublishHook`]), their streams are
//! synced first, then one durable commit adds their ids and a `pending` entry per file, then the
//! files are renamed. A crash before the commit leaves neither ids nor final files (the
//! `.partial` files are moved aside at the next start and their raw logs converted again); a
//! crash between the commit and the rename leaves a `pending` entry whose final file does not
//! exist: [`DedupIndex::open`] removes those ids, so the records are stored when converted again.
//! A `pending` entry whose file exists (crash right after the rename) is simply dropped. So every stored
//! record's id is in the index and every id in the index belongs to a stored record.
//!
//! **Window.** An id is kept while its submission day is within `window_days` of the newest day
//! seen (`day > newest - window_days`); older ones are deleted at every commit, so the index size
//! is bounded by the ids of `window_days` days. The window follows the data, not the wall clock,
//! so backfills of old data are de-duplicated as well.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use cap_std::fs::Dir;
use redb::{
    Database, Durability, ReadOnlyTable, ReadableDatabase, ReadableTable, ReadableTableMetadata,
    TableDefinition,
};

use crate::storage::{datadir, DataDir, PublishHook, SealedFile, StorageError, TrackedRecord};

/// Subdirectory of the data directory holding the index.
pub const DEDUP_DIR: &str = "dedup";
/// The index file in [`DEDUP_DIR`].
pub const INDEX_FILE: &str = "ids.redb";

/// redb's page cache for the index (its default is 1 GiB): lookups of new ids touch a few
/// B-tree pages, and a miss costs one read of the local file (from the OS page cache when hot).
/// Small on purpose: every commit writes fresh copies of the pages it touches, so the cache fills
/// within seconds under load and then holds its size; at 16 MiB the server's memory was still
/// climbing after two minutes of steady ingest. A 100,000-id index costs ~2 µs more per lookup
/// at 4 MiB than at 16 MiB, well under 1 % of converting a real ping.
const CACHE_BYTES: usize = 4 << 20;

const IDS: TableDefinition<&str, u32> = TableDefinition::new("ids");
const BY_DAY: TableDefinition<&[u8], ()> = TableDefinition::new("by_day");
const PENDING: TableDefinition<&str, &[u8]> = TableDefinition::new("pending");
const META: TableDefinition<&str, u32> = TableDefinition::new("meta");
const NEWEST_DAY: &str = "newest_day";

/// Why the index cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum DedupError {
    /// Another process holds the index file's lock.
    #[error("the dedup index {path} is open in another process (a running server or convert on this data directory?); stop it or disable dedup (window 0)")]
    InUse {
        /// The index file.
        path: PathBuf,
    },
    /// The index store failed (open, read or commit).
    #[error("dedup index {path}: {source}")]
    Store {
        /// The index file.
        path: PathBuf,
        /// The store's error.
        source: redb::Error,
    },
    /// Partition storage failed while de-duplicating.
    #[error("{0}")]
    Storage(#[from] StorageError),
}

/// Whether a document id may be stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reservation {
    /// Not stored yet: reserved for the caller until its file is published or abandoned.
    New,
    /// Already stored (or being stored by another writer).
    Duplicate,
}

/// The index (see the module doc).
pub struct DedupIndex {
    db: Database,
    path: PathBuf,
    window_days: u32,
    /// Ids written to open partition files and not yet committed or abandoned. Bounded by the
    /// records in open files (the storage writer bounds those by size and age).
    reserved: Mutex<HashSet<Box<str>>>,
    /// Published files whose `pending` entry is dropped at the next commit.
    published: Mutex<Vec<String>>,
    /// Ids in the index after the last commit.
    entries: AtomicU64,
    /// The `ids` table as of the last commit, so a lookup needs no read transaction of its own;
    /// dropped by every commit before it releases reservations (see [`DedupIndex::reserve`]).
    snapshot: Mutex<Option<ReadOnlyTable<&'static str, u32>>>,
}

impl DedupIndex {
    /// Opens (creating) `DATA_DIR/dedup/ids.redb` with a window of `window_days` (> 0), resolves
    /// the `pending` entries a crash left (against `DATA_DIR/storage/`) and expires old ids.
    pub fn open(data: &DataDir, window_days: u32) -> Result<DedupIndex, DedupError> {
        data.sub(DEDUP_DIR)?;
        let storage = data.sub(datadir::STORAGE)?;
        // redb opens by path (it needs the file for mmap and its lock); the directory was
        // created through the capability above.
        let path = data.path().join(DEDUP_DIR).join(INDEX_FILE);
        let db = match Database::builder()
            .set_cache_size(CACHE_BYTES)
            .create(&path)
        {
            Ok(db) => db,
            Err(redb::DatabaseError::DatabaseAlreadyOpen) => {
                return Err(DedupError::InUse { path });
            }
            Err(e) => {
                return Err(DedupError::Store {
                    path,
                    source: e.into(),
                })
            }
        };
        let index = DedupIndex {
            db,
            path,
            window_days: window_days.max(1),
            reserved: Mutex::new(HashSet::new()),
            published: Mutex::new(Vec::new()),
            entries: AtomicU64::new(0),
            snapshot: Mutex::new(None),
        };
        index.recover(&storage)?;
        Ok(index)
    }

    fn store_error(&self, e: impl Into<redb::Error>) -> DedupError {
        DedupError::Store {
            path: self.path.clone(),
            source: e.into(),
        }
    }

    /// The window in days of submission dates.
    pub fn window_days(&self) -> u32 {
        self.window_days
    }

    /// Ids in the index (committed).
    pub fn entries(&self) -> u64 {
        self.entries.load(Ordering::Relaxed)
    }

    /// Reserves `id` for a record about to be written, unless it is stored or reserved already.
    pub fn reserve(&self, id: &str) -> Result<Reservation, DedupError> {
        let mut reserved = self.reserved.lock().unwrap_or_else(|e| e.into_inner());
        if reserved.contains(id) {
            return Ok(Reservation::Duplicate);
        }
        // Under the lock: a commit inserts ids before it releases their reservations, so an id
        // is always in one of the two.
        if self.contains(id)? {
            return Ok(Reservation::Duplicate);
        }
        reserved.insert(id.into());
        Ok(Reservation::New)
    }

    /// Forgets reservations whose records were not stored.
    pub fn release<'a>(&self, ids: impl IntoIterator<Item = &'a str>) {
        let mut reserved = self.reserved.lock().unwrap_or_else(|e| e.into_inner());
        for id in ids {
            reserved.remove(id);
        }
    }

    /// Whether `id` is committed in the index.
    pub fn contains(&self, id: &str) -> Result<bool, DedupError> {
        let mut snapshot = self.snapshot.lock().unwrap_or_else(|e| e.into_inner());
        if snapshot.is_none() {
            let read = self.db.begin_read().map_err(|e| self.store_error(e))?;
            match read.open_table(IDS) {
                Ok(table) => *snapshot = Some(table),
                Err(redb::TableError::TableDoesNotExist(_)) => return Ok(false),
                Err(e) => return Err(self.store_error(e)),
            }
        }
        let table = snapshot.as_ref().expect("opened above");
        let found = table.get(id).map_err(|e| self.store_error(e))?.is_some();
        Ok(found)
    }

    /// A [`PublishHook`] for a storage writer, committing its files' ids into this index.
    pub fn hook(self: &Arc<Self>) -> Box<dyn PublishHook> {
        Box::new(DedupHook(self.clone()))
    }

    /// One durable commit: the ids of `files` and a `pending` entry per file, the `pending`
    /// entries of files published since the last commit dropped, old ids expired. Then the
    /// files' reservations are released (their ids are in the index now).
    pub fn commit_files(&self, files: &[SealedFile]) -> Result<(), DedupError> {
        let published =
            std::mem::take(&mut *self.published.lock().unwrap_or_else(|e| e.into_inner()));
        let result = self.transaction(|txn| {
            let mut ids = txn.open_table(IDS)?;
            let mut by_day = txn.open_table(BY_DAY)?;
            let mut pending = txn.open_table(PENDING)?;
            let mut meta = txn.open_table(META)?;
            for path in &published {
                pending.remove(path.as_str())?;
            }
            let mut newest = meta.get(NEWEST_DAY)?.map_or(0, |v| v.value());
            for file in files {
                if file.tracked.is_empty() {
                    continue;
                }
                for record in &file.tracked {
                    ids.insert(&*record.id, record.day)?;
                    by_day.insert(day_key(record.day, &record.id).as_slice(), ())?;
                    newest = newest.max(record.day);
                }
                pending.insert(file.path.as_str(), encode(&file.tracked).as_slice())?;
            }
            meta.insert(NEWEST_DAY, newest)?;
            expire(&mut ids, &mut by_day, newest, self.window_days)?;
            Ok(ids.len()?)
        });
        match result {
            Ok(len) => {
                self.entries.store(len, Ordering::Relaxed);
                self.release(files.iter().flat_map(|f| f.tracked.iter().map(|r| &*r.id)));
                Ok(())
            }
            Err(e) => {
                // Try again at the next commit.
                self.published
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .extend(published);
                Err(e)
            }
        }
    }

    /// Files renamed to their final names: their `pending` entries are dropped now, in a
    /// commit that is not synced (it becomes durable with the next [`commit_files`]), so an
    /// entry never outlives its file by long (the S3 exporter may delete a published file after
    /// uploading it) without a second fsync per publish; or at the next commit if this one
    /// fails. A crash before that next commit leaves the entry behind; [`DedupIndex::open`]
    /// then drops it (the file exists) or removes its ids (the file was uploaded and deleted:
    /// those ids lose their protection, their records are not lost).
    ///
    /// [`commit_files`]: DedupIndex::commit_files
    pub fn mark_published(&self, files: &[SealedFile]) {
        let mut published = self.published.lock().unwrap_or_else(|e| e.into_inner());
        published.extend(
            files
                .iter()
                .filter(|f| !f.tracked.is_empty())
                .map(|f| f.path.clone()),
        );
        if published.is_empty() {
            return;
        }
        let done = self.transaction_with(Durability::None, |txn| {
            let mut pending = txn.open_table(PENDING)?;
            for path in published.iter() {
                pending.remove(path.as_str())?;
            }
            Ok(())
        });
        match done {
            Ok(()) => published.clear(),
            Err(error) => tracing::warn!(%error, "dedup index: cannot drop pending entries yet"),
        }
    }

    /// Files that will not be published: their ids leave the index (if committed) and their
    /// reservations are released, so the records are stored when converted again.
    pub fn abandon(&self, files: &[SealedFile]) -> Result<(), DedupError> {
        let result = self.transaction(|txn| {
            let mut ids = txn.open_table(IDS)?;
            let mut by_day = txn.open_table(BY_DAY)?;
            let mut pending = txn.open_table(PENDING)?;
            for file in files {
                for record in &file.tracked {
                    remove_id(&mut ids, &mut by_day, record)?;
                }
                pending.remove(file.path.as_str())?;
            }
            Ok(ids.len()?)
        });
        self.release(files.iter().flat_map(|f| f.tracked.iter().map(|r| &*r.id)));
        self.entries.store(result?, Ordering::Relaxed);
        Ok(())
    }

    /// Resolves `pending` entries left by a crash: ids of files that never got their final name
    /// are removed; then expires old ids.
    fn recover(&self, storage: &Dir) -> Result<(), DedupError> {
        let len = self.transaction(|txn| {
            let mut ids = txn.open_table(IDS)?;
            let mut by_day = txn.open_table(BY_DAY)?;
            let mut pending = txn.open_table(PENDING)?;
            let meta = txn.open_table(META)?;
            let mut left = Vec::new();
            for entry in pending.iter()? {
                let (path, tracked) = entry?;
                left.push((path.value().to_string(), decode(tracked.value())));
            }
            let mut removed = 0usize;
            for (path, tracked) in &left {
                if !storage.exists(path) {
                    for record in tracked {
                        remove_id(&mut ids, &mut by_day, record)?;
                    }
                    removed += tracked.len();
                }
                pending.remove(path.as_str())?;
            }
            if removed > 0 {
                tracing::warn!(
                    ids = removed,
                    files = left.len(),
                    "dedup index: removed the ids of partition files a crash left unpublished"
                );
            }
            let newest = meta.get(NEWEST_DAY)?.map_or(0, |v| v.value());
            expire(&mut ids, &mut by_day, newest, self.window_days)?;
            Ok(ids.len()?)
        })?;
        self.entries.store(len, Ordering::Relaxed);
        Ok(())
    }

    /// Runs `body` in a durable write transaction and commits it.
    fn transaction<T>(
        &self,
        body: impl FnOnce(&redb::WriteTransaction) -> Result<T, redb::Error>,
    ) -> Result<T, DedupError> {
        self.transaction_with(Durability::Immediate, body)
    }

    /// Runs `body` in a write transaction committed with `durability`, then drops the lookup
    /// snapshot (before any caller releases reservations, so a released id is always found).
    fn transaction_with<T>(
        &self,
        durability: Durability,
        body: impl FnOnce(&redb::WriteTransaction) -> Result<T, redb::Error>,
    ) -> Result<T, DedupError> {
        let mut txn = self.db.begin_write().map_err(|e| self.store_error(e))?;
        txn.set_durability(durability)
            .map_err(|e| self.store_error(redb::Error::from(e)))?;
        let value = body(&txn).map_err(|e| self.store_error(e))?;
        txn.commit().map_err(|e| self.store_error(e))?;
        *self.snapshot.lock().unwrap_or_else(|e| e.into_inner()) = None;
        Ok(value)
    }
}

impl Drop for DedupIndex {
    /// Drops the `pending` entries of files published since the last commit.
    fn drop(&mut self) {
        let published =
            std::mem::take(&mut *self.published.lock().unwrap_or_else(|e| e.into_inner()));
        if published.is_empty() {
            return;
        }
        let done = self.transaction(|txn| {
            let mut pending = txn.open_table(PENDING)?;
            for path in &published {
                pending.remove(path.as_str())?;
            }
            Ok(())
        });
        if let Err(error) = done {
            tracing::warn!(%error, "dedup index: cannot drop pending entries (resolved at the next open)");
        }
    }
}

/// Deletes every id whose day is `<= newest - window_days`.
fn expire(
    ids: &mut redb::Table<&str, u32>,
    by_day: &mut redb::Table<&[u8], ()>,
    newest: u32,
    window_days: u32,
) -> Result<(), redb::Error> {
    let Some(cutoff) = cutoff_day(newest, window_days) else {
        return Ok(());
    };
    let end = (cutoff + 1).to_be_bytes();
    let mut old = Vec::new();
    for entry in by_day.range(..&end[..])? {
        let (key, _) = entry?;
        old.push(key.value().to_vec());
    }
    for key in &old {
        by_day.remove(key.as_slice())?;
        if let Ok(id) = std::str::from_utf8(&key[4..]) {
            ids.remove(id)?;
        }
    }
    Ok(())
}

/// The newest day that is out of the window, `newest - window_days` (`None` for an empty index
/// or an unparsable day).
fn cutoff_day(newest: u32, window_days: u32) -> Option<u32> {
    let date = chrono::NaiveDate::from_ymd_opt(
        (newest / 10_000) as i32,
        newest / 100 % 100,
        newest % 100,
    )?;
    let cut = date.checked_sub_days(chrono::Days::new(u64::from(window_days)))?;
    cut.format("%Y%m%d").to_string().parse().ok()
}

fn remove_id(
    ids: &mut redb::Table<&str, u32>,
    by_day: &mut redb::Table<&[u8], ()>,
    record: &TrackedRecord,
) -> Result<(), redb::Error> {
    ids.remove(&*record.id)?;
    by_day.remove(day_key(record.day, &record.id).as_slice())?;
    Ok(())
}

fn day_key(day: u32, id: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(4 + id.len());
    key.extend_from_slice(&day.to_be_bytes());
    key.extend_from_slice(id.as_bytes());
    key
}

/// `(day u32 BE, id length u32 BE, id)` per record.
fn encode(tracked: &[TrackedRecord]) -> Vec<u8> {
    let mut out = Vec::new();
    for record in tracked {
        out.extend_from_slice(&record.day.to_be_bytes());
        out.extend_from_slice(&(record.id.len() as u32).to_be_bytes());
        out.extend_from_slice(record.id.as_bytes());
    }
    out
}

fn decode(mut bytes: &[u8]) -> Vec<TrackedRecord> {
    let mut out = Vec::new();
    while bytes.len() >= 8 {
        let day = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
        let len = u32::from_be_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]) as usize;
        let Some(id) = bytes.get(8..8 + len) else {
            break;
        };
        out.push(TrackedRecord {
            id: String::from_utf8_lossy(id).into(),
            day,
        });
        bytes = &bytes[8 + len..];
    }
    out
}

/// The submission day of a record: its `YYYYMMDD` dimension value, else today (UTC).
pub fn day_of(value: Option<&str>) -> u32 {
    value
        .filter(|v| v.len() == 8)
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            chrono::Utc::now()
                .format("%Y%m%d")
                .to_string()
                .parse()
                .unwrap_or(0)
        })
}

/// The [`PublishHook`] of a storage writer whose records are de-duplicated.
struct DedupHook(Arc<DedupIndex>);

impl PublishHook for DedupHook {
    fn before_publish(&mut self, files: &[SealedFile]) -> Result<(), StorageError> {
        if files.iter().all(|f| f.tracked.is_empty()) {
            return Ok(());
        }
        self.0
            .commit_files(files)
            .map_err(|e| StorageError::io(DEDUP_DIR, std::io::Error::other(e.to_string())))
    }

    fn published(&mut self, files: &[SealedFile]) {
        self.0.mark_published(files);
    }

    fn abandoned(&mut self, files: &[SealedFile]) {
        if let Err(error) = self.0.abandon(files) {
            tracing::error!(%error, "dedup index: cannot remove the ids of unpublished files");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str, ids: &[(&str, u32)]) -> SealedFile {
        SealedFile {
            path: path.to_string(),
            tracked: ids
                .iter()
                .map(|(id, day)| TrackedRecord {
                    id: (*id).into(),
                    day: *day,
                })
                .collect(),
        }
    }

    #[test]
    fn reserved_then_committed_ids_are_duplicates_and_survive_reopening() {
        let tmp = tempfile::tempdir().unwrap();
        let data = DataDir::open(tmp.path()).unwrap();
        let index = DedupIndex::open(&data, 7).unwrap();
        assert_eq!(index.reserve("a").unwrap(), Reservation::New);
        assert_eq!(
            index.reserve("a").unwrap(),
            Reservation::Duplicate,
            "reserved"
        );
        assert_eq!(index.reserve("b").unwrap(), Reservation::New);
        index.release(["b"]);
        assert_eq!(index.reserve("b").unwrap(), Reservation::New, "released");
        std::fs::write(tmp.path().join("storage/f1"), b"x").unwrap();
        let files = [file("f1", &[("a", 20261201), ("b", 20261201)])];
        index.commit_files(&files).unwrap();
        index.mark_published(&files);
        assert_eq!(index.entries(), 2);
        assert_eq!(
            index.reserve("a").unwrap(),
            Reservation::Duplicate,
            "committed"
        );
        drop(index);
        let again = DedupIndex::open(&data, 7).unwrap();
        assert_eq!(again.entries(), 2);
        assert!(again.contains("a").unwrap() && again.contains("b").unwrap());
        assert_eq!(again.reserve("c").unwrap(), Reservation::New);
    }

    #[test]
    fn a_second_open_is_refused_while_the_first_lives() {
        let tmp = tempfile::tempdir().unwrap();
        let data = DataDir::open(tmp.path()).unwrap();
        let _first = DedupIndex::open(&data, 7).unwrap();
        assert!(matches!(
            DedupIndex::open(&data, 7),
            Err(DedupError::InUse { .. })
        ));
    }

    #[test]
    fn ids_of_files_never_renamed_are_removed_at_open() {
        let tmp = tempfile::tempdir().unwrap();
        let data = DataDir::open(tmp.path()).unwrap();
        let index = DedupIndex::open(&data, 7).unwrap();
        // Committed, then the "crash": one file got its final name, the other did not.
        std::fs::write(tmp.path().join("storage/renamed"), b"x").unwrap();
        index
            .commit_files(&[
                file("renamed", &[("kept", 20261201)]),
                file("lost", &[("gone", 20261201)]),
            ])
            .unwrap();
        assert_eq!(index.entries(), 2);
        drop(index);
        let again = DedupIndex::open(&data, 7).unwrap();
        assert!(again.contains("kept").unwrap());
        assert!(
            !again.contains("gone").unwrap(),
            "its record was never stored"
        );
        assert_eq!(again.entries(), 1);
    }

    #[test]
    fn abandoned_files_release_their_ids() {
        let tmp = tempfile::tempdir().unwrap();
        let data = DataDir::open(tmp.path()).unwrap();
        let index = DedupIndex::open(&data, 7).unwrap();
        assert_eq!(index.reserve("x").unwrap(), Reservation::New);
        let files = [file("f", &[("x", 20261201)])];
        index.commit_files(&files).unwrap();
        index.abandon(&files).unwrap();
        assert_eq!(index.entries(), 0);
        assert_eq!(index.reserve("x").unwrap(), Reservation::New);
    }

    #[test]
    fn ids_older_than_the_window_expire() {
        let tmp = tempfile::tempdir().unwrap();
        let data = DataDir::open(tmp.path()).unwrap();
        let index = DedupIndex::open(&data, 7).unwrap();
        index
            .commit_files(&[file("f1", &[("old", 20261123), ("edge", 20261124)])])
            .unwrap();
        assert_eq!(index.entries(), 2);
        // Newest 20261201: days <= 20261124 leave, 20261125.. stay.
        index
            .commit_files(&[file("f2", &[("new", 20261201), ("inside", 20261125)])])
            .unwrap();
        assert!(!index.contains("old").unwrap());
        assert!(!index.contains("edge").unwrap());
        assert!(index.contains("inside").unwrap());
        assert!(index.contains("new").unwrap());
        assert_eq!(index.entries(), 2);
    }

    #[test]
    fn cutoff_crosses_months_and_years() {
        assert_eq!(cutoff_day(20260103, 7), Some(20251227));
        assert_eq!(cutoff_day(20260301, 1), Some(20260228));
        assert_eq!(cutoff_day(0, 7), None);
        assert_eq!(day_of(Some("20150528")), 20150528);
        assert!(day_of(Some("UNKNOWN")) > 20260000);
    }

    #[test]
    fn pending_entries_round_trip() {
        let tracked = file("p", &[("a", 1), ("üñí", 20261201), ("", 3)]).tracked;
        assert_eq!(decode(&encode(&tracked)), tracked);
    }
}
