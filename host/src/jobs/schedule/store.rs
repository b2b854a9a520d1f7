//! The schedules' files under the data dir's `jobs/schedules/` (cap-std, atomic writes as in the
//! job store): `<id>.json` records and `<id>.<seq>.txt` run results.

use cap_std::fs::Dir;

use super::record::ScheduleRecord;
use crate::jobs::scheduler::{
    is_job_id, load_records, read_all, remove_if_exists, write_atomic, StoreError,
};

/// Directory under `jobs/`.
pub const SCHEDULES: &str = "schedules";

/// `jobs/schedules/`.
#[derive(Debug)]
pub struct ScheduleStore {
    dir: Dir,
}

fn io(what: &'static str, name: &str) -> impl FnOnce(std::io::Error) -> StoreError {
    let path = format!("{SCHEDULES}/{name}");
    move |source| StoreError::Io { what, path, source }
}

impl ScheduleStore {
    /// Opens (creating) `schedules/` inside `jobs`.
    pub fn open(jobs: &Dir) -> Result<Self, StoreError> {
        jobs.create_dir_all(SCHEDULES).map_err(io("create", ""))?;
        Ok(ScheduleStore {
            dir: jobs.open_dir(SCHEDULES).map_err(io("open", ""))?,
        })
    }

    /// Writes a schedule record (atomically).
    pub fn save(&self, record: &ScheduleRecord) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec_pretty(record).map_err(|source| StoreError::Encode {
            id: record.id.clone(),
            source,
        })?;
        write_atomic(&self.dir, SCHEDULES, &format!("{}.json", record.id), &bytes)
    }

    /// Every stored schedule; unreadable records are renamed `*.corrupt` and listed second.
    pub fn load_all(&self) -> Result<(Vec<ScheduleRecord>, Vec<String>), StoreError> {
        let (mut records, corrupt) =
            load_records(&self.dir, SCHEDULES, |r: &ScheduleRecord, id| r.id == id)?;
        records.sort_by(|a, b| (&a.created_at, &a.id).cmp(&(&b.created_at, &b.id)));
        Ok((records, corrupt))
    }

    /// Copies a run's result into the history (atomically); returns its size.
    pub fn put_result(&self, id: &str, seq: u64, bytes: &[u8]) -> Result<u64, StoreError> {
        write_atomic(&self.dir, SCHEDULES, &result_name(id, seq), bytes)?;
        Ok(bytes.len() as u64)
    }

    /// A run's kept result.
    pub fn result(&self, id: &str, seq: u64) -> Result<Option<Vec<u8>>, StoreError> {
        if !is_job_id(id) {
            return Ok(None);
        }
        let name = result_name(id, seq);
        match read_all(&self.dir, &name) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io("read", &name)(e)),
        }
    }

    /// Deletes a run's kept result.
    pub fn remove_result(&self, id: &str, seq: u64) -> Result<(), StoreError> {
        remove_if_exists(&self.dir, SCHEDULES, &result_name(id, seq))
    }

    /// Deletes a schedule record (its results are removed by the caller, run by run).
    pub fn remove(&self, id: &str) -> Result<(), StoreError> {
        remove_if_exists(&self.dir, SCHEDULES, &format!("{id}.json"))
    }
}

fn result_name(id: &str, seq: u64) -> String {
    format!("{id}.{seq}.txt")
}
