//! The export journal: an append-only text file recording which objects are confirmed on S3
//! (`done`) and which multipart uploads are in flight (`mpu` … `abort`/`done`).
//!
//! `mpu` lines are fsynced before the first part is sent; `done` lines are not: a `done` lost
//! in a crash only costs one HEAD on the next pass (the object is confirmed again by size), so
//! the journal never holds up an upload with a disk sync.
//!
//! With deterministic keys it makes export resumable after a crash at any point:
//! - crash before `done` → the next pass HEADs the key; an object of the local size is accepted
//!   (the upload finished), anything else is uploaded again (PUT and CompleteMultipartUpload are
//!   atomic, so there is never a partial object);
//! - crash after `done` but before the local copy is deleted → the next pass just deletes it;
//! - an `mpu` never closed → its parts are aborted on the next start ([`Journal::open_uploads`]).
//!
//! Line format (tab-separated): `done <bucket> <key> <size>`, `mpu <bucket> <key> <upload id>`,
//! `abort <bucket> <key> <upload id>`. Torn last lines (crash mid-write) are ignored.

use std::collections::{HashMap, HashSet};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::S3Error;

/// (bucket, key) of an object.
pub type ObjectId = (String, String);

/// A multipart upload that was started and never completed or aborted.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct OpenUpload {
    pub bucket: String,
    pub key: String,
    pub upload_id: String,
}

#[derive(Default)]
struct State {
    done: HashMap<ObjectId, u64>,
    open: HashSet<OpenUpload>,
}

/// The journal file and its in-memory state.
pub struct Journal {
    path: PathBuf,
    file: Mutex<File>,
    state: Mutex<State>,
}

impl Journal {
    /// Opens (creating) the journal at `path`, replaying and compacting it.
    pub fn open(path: &Path) -> Result<Self, S3Error> {
        let io = |e| S3Error::io(path.display(), e);
        let mut state = State::default();
        if path.exists() {
            let text = std::fs::read_to_string(path).map_err(io)?;
            // Only complete lines count: a crash mid-append leaves a last line without its newline.
            let complete = &text[..text.rfind('\n').map_or(0, |i| i + 1)];
            complete.lines().for_each(|line| apply(&mut state, line));
        }
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        // Compact: rewrite the live state to a temp file and rename it over the journal.
        let tmp = path.with_extension("compacting");
        {
            let mut out = File::create(&tmp).map_err(io)?;
            let mut text = String::new();
            for ((bucket, key), size) in &state.done {
                text.push_str(&format!("done\t{bucket}\t{key}\t{size}\n"));
            }
            for up in &state.open {
                text.push_str(&format!(
                    "mpu\t{}\t{}\t{}\n",
                    up.bucket, up.key, up.upload_id
                ));
            }
            out.write_all(text.as_bytes()).map_err(io)?;
            out.sync_all().map_err(io)?;
        }
        std::fs::rename(&tmp, path).map_err(io)?;
        let file = OpenOptions::new().append(true).open(path).map_err(io)?;
        Ok(Journal {
            path: path.to_path_buf(),
            file: Mutex::new(file),
            state: Mutex::new(state),
        })
    }

    /// The confirmed size of an object, if the journal says it is on S3.
    pub fn done_size(&self, bucket: &str, key: &str) -> Option<u64> {
        self.state
            .lock()
            .unwrap()
            .done
            .get(&(bucket.to_string(), key.to_string()))
            .copied()
    }

    /// Multipart uploads left open by an earlier run.
    pub fn open_uploads(&self) -> Vec<OpenUpload> {
        self.state.lock().unwrap().open.iter().cloned().collect()
    }

    /// Records that `bucket/key` is confirmed on S3 with `size` bytes (not synced; see above).
    pub fn record_done(&self, bucket: &str, key: &str, size: u64) -> Result<(), S3Error> {
        self.append(&format!("done\t{bucket}\t{key}\t{size}\n"), false)
    }

    /// Records the start of a multipart upload (before any part is sent).
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

    fn append(&self, line: &str, sync: bool) -> Result<(), S3Error> {
        if line.trim_end_matches('\n').contains('\n') {
            return Err(S3Error::Config(format!(
                "journal line with a newline: {line:?}"
            )));
        }
        let io = |e| S3Error::io(self.path.display(), e);
        let mut file = self.file.lock().unwrap();
        file.write_all(line.as_bytes()).map_err(io)?;
        if sync {
            file.sync_data().map_err(io)?;
        }
        apply(&mut self.state.lock().unwrap(), line.trim_end_matches('\n'));
        Ok(())
    }
}

/// Applies one journal line to the state; malformed (torn) lines are ignored.
fn apply(state: &mut State, line: &str) {
    let fields: Vec<&str> = line.split('\t').collect();
    match fields.as_slice() {
        ["done", bucket, key, size] => {
            let Ok(size) = size.parse() else { return };
            state
                .open
                .retain(|u| !(u.bucket == *bucket && u.key == *key));
            state
                .done
                .insert((bucket.to_string(), key.to_string()), size);
        }
        ["mpu", bucket, key, id] => {
            state.open.insert(OpenUpload {
                bucket: bucket.to_string(),
                key: key.to_string(),
                upload_id: id.to_string(),
            });
        }
        ["abort", bucket, key, id] => {
            state.open.remove(&OpenUpload {
                bucket: bucket.to_string(),
                key: key.to_string(),
                upload_id: id.to_string(),
            });
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn journal_replays_done_and_open_uploads_and_ignores_torn_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state/journal");
        {
            let j = Journal::open(&path).unwrap();
            j.record_done("b", "k1", 10).unwrap();
            let up = OpenUpload {
                bucket: "b".into(),
                key: "k2".into(),
                upload_id: "u2".into(),
            };
            j.record_upload_started(&up).unwrap();
            let up3 = OpenUpload {
                bucket: "b".into(),
                key: "k3".into(),
                upload_id: "u3".into(),
            };
            j.record_upload_started(&up3).unwrap();
            j.record_upload_aborted(&up3).unwrap();
        }
        // A crash mid-write leaves a torn line.
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(b"done\tb\tk9\t1")
            .unwrap();
        let j = Journal::open(&path).unwrap();
        assert_eq!(j.done_size("b", "k1"), Some(10));
        assert_eq!(j.done_size("b", "k9"), None, "torn line ignored");
        assert_eq!(
            j.open_uploads(),
            vec![OpenUpload {
                bucket: "b".into(),
                key: "k2".into(),
                upload_id: "u2".into()
            }]
        );
        j.record_done("b", "k2", 5).unwrap();
        assert!(j.open_uploads().is_empty(), "done closes the open upload");
        drop(j);
        let j = Journal::open(&path).unwrap();
        assert_eq!(j.done_size("b", "k2"), Some(5));
    }
}
