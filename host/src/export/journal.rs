//! The export journal: an append-only text file under `<data>/export/` recording which objects
//! are confirmed on S3 (`done`), which uploads were started (`put`, `mpu`) and which multipart
//! uploads were aborted (`abort`), compacted so it only holds what resume and idempotency need.
//!
//! With deterministic keys (a file always goes to the same key, and PUT and
//! CompleteMultipartUpload are atomic, so an object is never partial), uploading a file again
//! is harmless: it rewrites the same bytes. The journal saves requests and bytes, and makes a
//! crash at any point resumable:
//! - crash after a `put`/`mpu` line but before `done`: the object may or may not be there. The
//!   key is *in flight*: the next pass HEADs it and accepts an object of the local size,
//!   otherwise uploads again. A key never started is PUT without a HEAD.
//! - crash after `done` but before the local copy is deleted: the next pass just deletes it.
//! - an `mpu` never closed: its parts are aborted on the next start ([`Journal::open_uploads`]).
//!
//! `mpu` lines are fsynced before the first part is sent (they name server-side parts to clean
//! up). `put` and `done` lines are not: losing them in a power cut costs at most one upload of
//! the same bytes again.
//!
//! What stays: open multipart uploads, and `done`/in-flight entries of files still on disk
//! (without them every pass would HEAD or re-send kept files, e.g. raw logs awaiting conversion).
//! Entries of files deleted after their confirmed upload are dropped ([`Journal::forget`]).
//! The file is rewritten from that state (new file, fsync, rename, through cap-std) on open, by
//! [`Journal::retain`] (the exporter's start-up pass: entries of files no longer on disk go),
//! and whenever it has grown to twice its compacted size ([`Journal::compact_at`]).
//!
//! Line format (tab-separated): `done <bucket> <key> <size>`, `put <bucket> <key> <size>`,
//! `mpu <bucket> <key> <upload id>`, `abort <bucket> <key> <upload id>`. Torn last lines (crash
//! mid-write) are ignored.

use std::collections::{HashMap, HashSet};
use std::io::{Read, Write};
use std::sync::Mutex;

use cap_std::fs::{Dir, File, OpenOptions};

use super::S3Error;

/// (bucket, key) of an object.
pub type ObjectId = (String, String);

/// The journal's file name inside its directory.
pub const FILE_NAME: &str = "journal";

/// The compacted journal is written here, then renamed over [`FILE_NAME`].
const COMPACTING: &str = "journal.compacting";

/// Smallest size at which the journal is compacted while running (64 KiB).
pub const MIN_COMPACT_BYTES: u64 = 64 * 1024;

/// A multipart upload that was started and never completed or aborted.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct OpenUpload {
    /// The bucket of the upload.
    pub bucket: String,
    /// The object key of the upload.
    pub key: String,
    /// The upload id S3 gave, to abort it with.
    pub upload_id: String,
}

/// What the journal knows; every line is a change to it.
#[derive(Default)]
struct State {
    /// Confirmed objects and their sizes.
    done: HashMap<ObjectId, u64>,
    /// Uploads started (`put` or `mpu`) and not confirmed: the object may exist.
    in_flight: HashSet<ObjectId>,
    /// Multipart uploads neither completed nor aborted.
    open: HashSet<OpenUpload>,
}

impl State {
    fn apply(&mut self, line: &str) {
        let fields: Vec<&str> = line.split('\t').collect();
        let id = |bucket: &str, key: &str| (bucket.to_string(), key.to_string());
        match fields.as_slice() {
            ["done", bucket, key, size] => {
                let Ok(size) = size.parse() else { return };
                self.open
                    .retain(|u| !(u.bucket == *bucket && u.key == *key));
                self.in_flight.remove(&id(bucket, key));
                self.done.insert(id(bucket, key), size);
            }
            ["put", bucket, key, size] if size.parse::<u64>().is_ok() => {
                self.done.remove(&id(bucket, key));
                self.in_flight.insert(id(bucket, key));
            }
            ["mpu", bucket, key, upload_id] => {
                self.done.remove(&id(bucket, key));
                self.in_flight.insert(id(bucket, key));
                self.open.insert(OpenUpload {
                    bucket: bucket.to_string(),
                    key: key.to_string(),
                    upload_id: upload_id.to_string(),
                });
            }
            ["abort", bucket, key, upload_id] => {
                self.open.remove(&OpenUpload {
                    bucket: bucket.to_string(),
                    key: key.to_string(),
                    upload_id: upload_id.to_string(),
                });
            }
            _ => {}
        }
    }

    /// The state as journal lines (replaying them gives the same state).
    fn lines(&self) -> String {
        let mut text = String::new();
        for ((bucket, key), size) in &self.done {
            text.push_str(&format!("done\t{bucket}\t{key}\t{size}\n"));
        }
        for (bucket, key) in &self.in_flight {
            // The size of a `put` line is informational; in-flight keys are HEADed by size.
            if !self
                .open
                .iter()
                .any(|u| u.bucket == *bucket && u.key == *key)
            {
                text.push_str(&format!("put\t{bucket}\t{key}\t0\n"));
            }
        }
        for up in &self.open {
            text.push_str(&format!(
                "mpu\t{}\t{}\t{}\n",
                up.bucket, up.key, up.upload_id
            ));
        }
        text
    }
}

/// The open file and the state, changed together under one lock.
struct Inner {
    file: File,
    state: State,
    /// Current size of the file.
    bytes: u64,
    /// Compact when the file reaches this size.
    compact_at: u64,
}

/// The journal file and its in-memory state.
pub struct Journal {
    dir: Dir,
    /// Where the journal is, for messages.
    shown: String,
    min_compact_bytes: u64,
    inner: Mutex<Inner>,
}

impl Journal {
    /// Opens (creating) the journal [`FILE_NAME`] in `dir`, replaying and compacting it.
    /// `shown` names the directory in error messages.
    pub fn open(dir: Dir, shown: &str) -> Result<Self, S3Error> {
        Self::with_compact_bytes(dir, shown, MIN_COMPACT_BYTES)
    }

    /// [`Journal::open`], compacting while running once the file reaches `min_compact_bytes`
    /// (and twice its last compacted size).
    pub fn with_compact_bytes(
        dir: Dir,
        shown: &str,
        min_compact_bytes: u64,
    ) -> Result<Self, S3Error> {
        let shown = format!("{shown}/{FILE_NAME}");
        let io = |e| S3Error::io(&shown, e);
        let mut state = State::default();
        match dir.open(FILE_NAME) {
            Ok(mut file) => {
                let mut text = String::new();
                file.read_to_string(&mut text).map_err(io)?;
                // Only complete lines count: a crash mid-append leaves a last line without its newline.
                let complete = &text[..text.rfind('\n').map_or(0, |i| i + 1)];
                complete.lines().for_each(|line| state.apply(line));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io(e)),
        }
        let (file, bytes) = write_compacted(&dir, &state).map_err(io)?;
        Ok(Journal {
            dir,
            shown,
            min_compact_bytes,
            inner: Mutex::new(Inner {
                file,
                state,
                bytes,
                compact_at: compact_at(min_compact_bytes, bytes),
            }),
        })
    }

    /// The confirmed size of an object, if the journal says it is on S3.
    pub fn done_size(&self, bucket: &str, key: &str) -> Option<u64> {
        let inner = self.inner.lock().unwrap();
        inner.state.done.get(&id(bucket, key)).copied()
    }

    /// Whether an upload to `bucket/key` was started and not confirmed (by this run or by one
    /// that crashed): the object may already be there.
    pub fn maybe_in_flight(&self, bucket: &str, key: &str) -> bool {
        let inner = self.inner.lock().unwrap();
        inner.state.in_flight.contains(&id(bucket, key))
    }

    /// Multipart uploads left open by an earlier run.
    pub fn open_uploads(&self) -> Vec<OpenUpload> {
        let inner = self.inner.lock().unwrap();
        inner.state.open.iter().cloned().collect()
    }

    /// Entries held: confirmed objects, in-flight keys and open multipart uploads.
    pub fn entries(&self) -> usize {
        let inner = self.inner.lock().unwrap();
        inner.state.done.len() + inner.state.in_flight.len() + inner.state.open.len()
    }

    /// The journal file's current size in bytes.
    pub fn file_bytes(&self) -> u64 {
        self.inner.lock().unwrap().bytes
    }

    /// Records that `bucket/key` is confirmed on S3 with `size` bytes (not synced; see above).
    pub fn record_done(&self, bucket: &str, key: &str, size: u64) -> Result<(), S3Error> {
        self.append(&format!("done\t{bucket}\t{key}\t{size}\n"), false)
    }

    /// Records that a single PUT of `size` bytes to `bucket/key` is about to be sent (not
    /// synced: if the line is lost, so is the knowledge that a HEAD could save a re-upload).
    pub fn record_put_started(&self, bucket: &str, key: &str, size: u64) -> Result<(), S3Error> {
        self.append(&format!("put\t{bucket}\t{key}\t{size}\n"), false)
    }

    /// Records the start of a multipart upload (before any part is sent; synced).
    pub fn record_upload_started(&self, up: &OpenUpload) -> Result<(), S3Error> {
        self.append(
            &format!("mpu\t{}\t{}\t{}\n", up.bucket, up.key, up.upload_id),
            true,
        )
    }

    /// Records that a multipart upload was aborted (its parts are gone).
    pub fn record_upload_aborted(&self, up: &OpenUpload) -> Result<(), S3Error> {
        self.append(
            &format!("abort\t{}\t{}\t{}\n", up.bucket, up.key, up.upload_id),
            false,
        )
    }

    /// Drops what the journal knows about `bucket/key` once its local copy is deleted after a
    /// confirmed upload: nothing will ask again. Written out at the next compaction; until then
    /// a restart replays the entry and [`Journal::retain`] drops it.
    pub fn forget(&self, bucket: &str, key: &str) {
        let mut inner = self.inner.lock().unwrap();
        let key = id(bucket, key);
        inner.state.done.remove(&key);
        if !inner
            .state
            .open
            .iter()
            .any(|u| (&u.bucket, &u.key) == (&key.0, &key.1))
        {
            inner.state.in_flight.remove(&key);
        }
    }

    /// Keeps the `done` and in-flight entries of the objects `keep` accepts (those whose local
    /// file is still there) and open multipart uploads, and rewrites the file.
    pub fn retain(&self, keep: impl Fn(&ObjectId) -> bool) -> Result<(), S3Error> {
        let mut inner = self.inner.lock().unwrap();
        let state = &mut inner.state;
        state.done.retain(|k, _| keep(k));
        let open: HashSet<ObjectId> = state
            .open
            .iter()
            .map(|u| (u.bucket.clone(), u.key.clone()))
            .collect();
        state.in_flight.retain(|k| keep(k) || open.contains(k));
        self.compact(&mut inner)
    }

    fn append(&self, line: &str, sync: bool) -> Result<(), S3Error> {
        if line.trim_end_matches('\n').contains('\n') {
            return Err(S3Error::Config(format!(
                "journal line with a newline: {line:?}"
            )));
        }
        let io = |e| S3Error::io(&self.shown, e);
        let mut inner = self.inner.lock().unwrap();
        inner.file.write_all(line.as_bytes()).map_err(io)?;
        if sync {
            inner.file.sync_data().map_err(io)?;
        }
        inner.bytes += line.len() as u64;
        inner.state.apply(line.trim_end_matches('\n'));
        if inner.bytes >= inner.compact_at {
            self.compact(&mut inner)?;
        }
        Ok(())
    }

    /// Rewrites the file from the state (the caller holds the lock).
    fn compact(&self, inner: &mut Inner) -> Result<(), S3Error> {
        let (file, bytes) =
            write_compacted(&self.dir, &inner.state).map_err(|e| S3Error::io(&self.shown, e))?;
        inner.file = file;
        inner.bytes = bytes;
        inner.compact_at = compact_at(self.min_compact_bytes, bytes);
        tracing::debug!(bytes, "export journal compacted");
        Ok(())
    }
}

fn id(bucket: &str, key: &str) -> ObjectId {
    (bucket.to_string(), key.to_string())
}

/// The size at which a journal compacted to `bytes` is compacted again.
fn compact_at(min_compact_bytes: u64, bytes: u64) -> u64 {
    min_compact_bytes.max(bytes.saturating_mul(2))
}

/// Writes the state to [`COMPACTING`], syncs it, renames it over [`FILE_NAME`], syncs the
/// directory, and opens the result for appending: (file, size).
fn write_compacted(dir: &Dir, state: &State) -> std::io::Result<(File, u64)> {
    let text = state.lines();
    {
        let mut out = dir.create(COMPACTING)?;
        out.write_all(text.as_bytes())?;
        out.sync_all()?;
    }
    dir.rename(COMPACTING, dir, FILE_NAME)?;
    dir.open(".")?.sync_all()?;
    let file = dir.open_with(FILE_NAME, OpenOptions::new().append(true))?;
    Ok((file, text.len() as u64))
}

#[cfg(test)]
mod tests {
    use super::*;
    use cap_std::ambient_authority;

    fn open_dir(path: &std::path::Path) -> Dir {
        std::fs::create_dir_all(path).unwrap();
        Dir::open_ambient_dir(path, ambient_authority()).unwrap()
    }

    fn upload(key: &str, id: &str) -> OpenUpload {
        OpenUpload {
            bucket: "b".into(),
            key: key.into(),
            upload_id: id.into(),
        }
    }

    #[test]
    fn journal_replays_done_and_open_uploads_and_ignores_torn_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("export");
        {
            let j = Journal::open(open_dir(&path), "x").unwrap();
            j.record_done("b", "k1", 10).unwrap();
            j.record_upload_started(&upload("k2", "u2")).unwrap();
            j.record_upload_started(&upload("k3", "u3")).unwrap();
            j.record_upload_aborted(&upload("k3", "u3")).unwrap();
            j.record_put_started("b", "k4", 7).unwrap();
        }
        // A crash mid-write leaves a torn line.
        std::fs::OpenOptions::new()
            .append(true)
            .open(path.join(FILE_NAME))
            .unwrap()
            .write_all(b"done\tb\tk9\t1")
            .unwrap();
        let j = Journal::open(open_dir(&path), "x").unwrap();
        assert_eq!(j.done_size("b", "k1"), Some(10));
        assert_eq!(j.done_size("b", "k9"), None, "torn line ignored");
        assert_eq!(j.open_uploads(), vec![upload("k2", "u2")]);
        for (key, in_flight) in [("k1", false), ("k2", true), ("k3", true), ("k4", true)] {
            assert_eq!(j.maybe_in_flight("b", key), in_flight, "{key}");
        }
        j.record_done("b", "k2", 5).unwrap();
        assert!(j.open_uploads().is_empty(), "done closes the open upload");
        assert!(
            !j.maybe_in_flight("b", "k2"),
            "and the key is no longer in flight"
        );
        drop(j);
        let j = Journal::open(open_dir(&path), "x").unwrap();
        assert_eq!(j.done_size("b", "k2"), Some(5));
        assert!(
            j.maybe_in_flight("b", "k4"),
            "in-flight keys survive compaction"
        );
    }

    #[test]
    fn forgotten_and_unretained_entries_go_and_the_file_stays_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("export");
        let j = Journal::with_compact_bytes(open_dir(&path), "x", 4096).unwrap();
        j.record_upload_started(&upload("big", "u1")).unwrap();
        for i in 0..10_000 {
            let key = format!("storage/file-{i:05}.zst");
            j.record_put_started("b", &key, 100).unwrap();
            j.record_done("b", &key, 100).unwrap();
            j.forget("b", &key);
        }
        let on_disk = std::fs::metadata(path.join(FILE_NAME)).unwrap().len();
        assert_eq!(on_disk, j.file_bytes());
        assert!(
            on_disk < 8192,
            "journal of 10,000 forgotten uploads is {on_disk} bytes"
        );
        assert_eq!(
            j.open_uploads(),
            vec![upload("big", "u1")],
            "open uploads are kept"
        );
        assert_eq!(j.entries(), 2, "the open upload and its in-flight key");

        // Entries replayed for files that are gone are dropped by retain.
        j.record_done("b", "kept", 1).unwrap();
        j.record_done("b", "gone", 1).unwrap();
        drop(j);
        let j = Journal::open(open_dir(&path), "x").unwrap();
        assert_eq!(j.done_size("b", "gone"), Some(1));
        j.retain(|(_, key)| key == "kept").unwrap();
        assert_eq!(
            (j.done_size("b", "kept"), j.done_size("b", "gone")),
            (Some(1), None)
        );
        assert_eq!(j.open_uploads().len(), 1);
        drop(j);
        let j = Journal::open(open_dir(&path), "x").unwrap();
        assert_eq!(j.done_size("b", "gone"), None, "retain rewrote the file");
        assert!(!path.join(COMPACTING).exists());
    }
}
