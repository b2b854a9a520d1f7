//! The job service's files under the data dir's `jobs/` (through cap-std, so nothing leaves it):
//! `queue/<id>.json` job records and `results/<id>.txt` job outputs (uploaded components live in
//! the runtime's compile cache, the data dir's `cache/`). Every write goes to a temporary file, is synced and then renamed,
//! so a crash leaves either the old or the new version, never half a file.

use std::io::{Read, Write};

use cap_std::fs::{Dir, OpenOptions};

use super::record::{is_job_id, JobRecord};

/// Errors from the job store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A file operation under `jobs/` failed.
    #[error("job store: {what} 'jobs/{path}': {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// Path relative to `jobs/`.
        path: String,
        /// The error.
        source: std::io::Error,
    },
    /// A record could not be encoded.
    #[error("job store: cannot encode job {id}: {source}")]
    Encode {
        /// Job id.
        id: String,
        /// The error.
        source: serde_json::Error,
    },
}

fn io(what: &'static str, path: impl Into<String>) -> impl FnOnce(std::io::Error) -> StoreError {
    let path = path.into();
    move |source| StoreError::Io { what, path, source }
}

/// The `jobs/` directory of the data dir.
#[derive(Debug)]
pub struct JobStore {
    queue: Dir,
    results: Dir,
}

const QUEUE: &str = "queue";
const RESULTS: &str = "results";

impl JobStore {
    /// Opens (creating as needed) the store's sub-directories inside `jobs`.
    pub fn open(jobs: &Dir) -> Result<Self, StoreError> {
        let sub = |name: &'static str| -> Result<Dir, StoreError> {
            jobs.create_dir_all(name).map_err(io("create", name))?;
            jobs.open_dir(name).map_err(io("open", name))
        };
        Ok(JobStore {
            queue: sub(QUEUE)?,
            results: sub(RESULTS)?,
        })
    }

    /// Writes a job record (atomically).
    pub fn save(&self, record: &JobRecord) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec_pretty(record).map_err(|source| StoreError::Encode {
            id: record.id.clone(),
            source,
        })?;
        write_atomic(&self.queue, QUEUE, &format!("{}.json", record.id), &bytes)
    }

    /// Every stored job record. Unreadable or corrupt records are renamed `*.corrupt` and
    /// reported in the second list, so one bad file never stops the server.
    pub fn load_all(&self) -> Result<(Vec<JobRecord>, Vec<String>), StoreError> {
        let (mut records, corrupt) =
            load_records(&self.queue, QUEUE, |r: &JobRecord, id| r.id == id)?;
        records.sort_by(|a, b| (&a.submitted_at, &a.id).cmp(&(&b.submitted_at, &b.id)));
        Ok((records, corrupt))
    }

    /// Deletes a job's record and result.
    pub fn remove(&self, id: &str) -> Result<(), StoreError> {
        remove_if_exists(&self.results, RESULTS, &format!("{id}.txt"))?;
        remove_if_exists(&self.queue, QUEUE, &format!("{id}.json"))
    }

    /// Stores a job's output (atomically); returns its size.
    pub fn put_result(&self, id: &str, output: &[u8]) -> Result<u64, StoreError> {
        write_atomic(&self.results, RESULTS, &format!("{id}.txt"), output)?;
        Ok(output.len() as u64)
    }

    /// A job's stored output, opened for streaming, with its size.
    pub fn open_result(&self, id: &str) -> Result<Option<(std::fs::File, u64)>, StoreError> {
        if !is_job_id(id) {
            return Ok(None);
        }
        let name = format!("{id}.txt");
        let opened = self.results.open(&name).and_then(|file| {
            let size = file.metadata()?.len();
            Ok((file.into_std(), size))
        });
        match opened {
            Ok(opened) => Ok(Some(opened)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io("open", format!("{RESULTS}/{name}"))(e)),
        }
    }

    /// A job's stored output.
    pub fn result(&self, id: &str) -> Result<Option<Vec<u8>>, StoreError> {
        if !is_job_id(id) {
            return Ok(None);
        }
        let name = format!("{id}.txt");
        match read_all(&self.results, &name) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io("read", format!("{RESULTS}/{name}"))(e)),
        }
    }
}

/// Every `<id>.json` record in `dir` (`sub` names it in messages) that parses and that `belongs`
/// to its id (a job id, so no other file is taken); `*.tmp` leftovers are deleted, unreadable or
/// corrupt records renamed `*.corrupt` and listed second.
pub(crate) fn load_records<T: serde::de::DeserializeOwned>(
    dir: &Dir,
    sub: &str,
    belongs: impl Fn(&T, &str) -> bool,
) -> Result<(Vec<T>, Vec<String>), StoreError> {
    let mut records = Vec::new();
    let mut corrupt = Vec::new();
    for entry in dir.entries().map_err(io("list", sub))? {
        let entry = entry.map_err(io("list", sub))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(id) = name.strip_suffix(".json") else {
            if name.ends_with(".tmp") {
                let _ = dir.remove_file(&name);
            }
            continue;
        };
        let parsed = read_all(dir, &name)
            .ok()
            .and_then(|bytes| serde_json::from_slice::<T>(&bytes).ok())
            .filter(|r| is_job_id(id) && belongs(r, id));
        match parsed {
            Some(record) => records.push(record),
            None => {
                let _ = dir.rename(&name, dir, format!("{name}.corrupt"));
                corrupt.push(format!("{sub}/{name}"));
            }
        }
    }
    Ok((records, corrupt))
}

pub(crate) fn read_all(dir: &Dir, name: &str) -> std::io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    dir.open(name)?.read_to_end(&mut bytes)?;
    Ok(bytes)
}

pub(crate) fn write_atomic(
    dir: &Dir,
    sub: &str,
    name: &str,
    bytes: &[u8],
) -> Result<(), StoreError> {
    let tmp = format!("{name}.{}.tmp", uuid::Uuid::new_v4().simple());
    let path = format!("{sub}/{name}");
    let mut file = dir
        .open_with(&tmp, OpenOptions::new().write(true).create_new(true))
        .map_err(io("create", path.clone()))?;
    file.write_all(bytes).map_err(io("write", path.clone()))?;
    file.sync_all().map_err(io("sync", path.clone()))?;
    drop(file);
    dir.rename(&tmp, dir, name).map_err(io("rename", path))
}

pub(crate) fn remove_if_exists(dir: &Dir, sub: &str, name: &str) -> Result<(), StoreError> {
    match dir.remove_file(name) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(io("remove", format!("{sub}/{name}"))(e))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jobs::scheduler::record::{JobState, Manifest};

    fn temp_store() -> (tempfile::TempDir, JobStore) {
        let tmp = tempfile::tempdir().unwrap();
        let dir = Dir::open_ambient_dir(tmp.path(), cap_std::ambient_authority()).unwrap();
        let store = JobStore::open(&dir).unwrap();
        (tmp, store)
    }

    fn record() -> JobRecord {
        let m: Manifest = serde_json::from_str(r#"{"name":"n","filter":{}}"#).unwrap();
        JobRecord::queued("alice", m, "ab".repeat(32))
    }

    #[test]
    fn records_survive_reopen_and_corrupt_ones_are_set_aside() {
        let (tmp, store) = temp_store();
        let mut a = record();
        store.save(&a).unwrap();
        a.state = JobState::Running;
        store.save(&a).unwrap();
        std::fs::write(
            tmp.path()
                .join("queue/11111111-1111-4111-8111-111111111111.json"),
            b"{not json",
        )
        .unwrap();
        let dir = Dir::open_ambient_dir(tmp.path(), cap_std::ambient_authority()).unwrap();
        let (records, corrupt) = JobStore::open(&dir).unwrap().load_all().unwrap();
        assert_eq!(records, vec![a.clone()]);
        assert_eq!(
            corrupt,
            vec!["queue/11111111-1111-4111-8111-111111111111.json".to_string()]
        );
        assert!(tmp
            .path()
            .join("queue/11111111-1111-4111-8111-111111111111.json.corrupt")
            .exists());
        store.remove(&a.id).unwrap();
        assert!(store.load_all().unwrap().0.is_empty());
    }

    #[test]
    fn results_round_trip() {
        let (_tmp, store) = temp_store();
        assert_eq!(store.result("../x").unwrap(), None);
        let r = record();
        assert_eq!(store.put_result(&r.id, b"k\tv\n").unwrap(), 4);
        assert_eq!(
            store.result(&r.id).unwrap().as_deref(),
            Some(&b"k\tv\n"[..])
        );
    }
}
