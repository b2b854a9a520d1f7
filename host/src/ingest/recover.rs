//! Start-up recovery of raw logs left unfinished by a crash.
//!
//! The writer only appends whole records and truncates a failed append, so after a crash an active
//! log is a run of complete v2 records possibly followed by one torn record (a write the kernel had
//! not finished, or unsynced blocks lost with the power). Recovery walks the record headers, cuts the
//! file at the end of the last complete record, syncs it and renames it `.finished`. Every record a
//! client saw acknowledged lies inside the complete prefix, so nothing acknowledged is cut.

use std::io::{BufReader, Read, Seek};

use cap_std::fs::{Dir, OpenOptions};

use super::writer::sync_dir;
use crate::rawlog::logname::{is_active_log, FINISHED_SUFFIX};
use crate::rawlog::SEPARATOR;

/// v2 preamble: separator, ip len u8, path len u16, data len u32, timestamp u64.
const PREAMBLE: u64 = 16;

/// What recovery did to one log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recovered {
    /// Name of the log as found (without `.finished`).
    pub name: String,
    /// Complete records kept.
    pub records: u64,
    /// Bytes of torn tail cut off.
    pub cut_bytes: u64,
    /// True when the log held no complete record and was removed.
    pub removed: bool,
}

/// Length of the longest prefix of `reader` (of total length `len`) made of complete v2 records,
/// and the number of those records.
pub fn complete_prefix(reader: impl Read + Seek, len: u64) -> std::io::Result<(u64, u64)> {
    let mut reader = BufReader::new(reader);
    let mut pos = 0u64;
    let mut records = 0u64;
    let mut header = [0u8; PREAMBLE as usize];
    while len - pos >= PREAMBLE {
        reader.read_exact(&mut header)?;
        if header[0] != SEPARATOR {
            break;
        }
        let ip = u64::from(header[1]);
        let path = u64::from(u16::from_le_bytes([header[2], header[3]]));
        let data = u64::from(u32::from_le_bytes([
            header[4], header[5], header[6], header[7],
        ]));
        let total = PREAMBLE + ip + path + data;
        if pos + total > len {
            break;
        }
        reader.seek_relative((total - PREAMBLE) as i64)?;
        pos += total;
        records += 1;
    }
    Ok((pos, records))
}

/// Repairs and finishes every active log named `<base>.v2.…` in `raw`. Run before the writers start.
pub fn recover_active_logs(raw: &Dir, base: &str) -> std::io::Result<Vec<Recovered>> {
    let mut names = Vec::new();
    for entry in raw.entries()? {
        let entry = entry?;
        if let Some(name) = entry.file_name().to_str() {
            if is_active_log(base, name) && entry.file_type()?.is_file() {
                names.push(name.to_string());
            }
        }
    }
    names.sort();
    let mut done = Vec::new();
    for name in names {
        done.push(recover_one(raw, &name)?);
    }
    if !done.is_empty() {
        sync_dir(raw)?;
    }
    Ok(done)
}

fn recover_one(raw: &Dir, name: &str) -> std::io::Result<Recovered> {
    let file = raw
        .open_with(name, OpenOptions::new().read(true).write(true))?
        .into_std();
    let len = file.metadata()?.len();
    let (keep, records) = complete_prefix(&file, len)?;
    let cut_bytes = len - keep;
    if records == 0 {
        drop(file);
        raw.remove_file(name)?;
        tracing::warn!(
            file = name,
            cut_bytes,
            "removed raw log without a complete record"
        );
        return Ok(Recovered {
            name: name.to_string(),
            records,
            cut_bytes,
            removed: true,
        });
    }
    if cut_bytes > 0 {
        file.set_len(keep)?;
        tracing::warn!(
            file = name,
            cut_bytes,
            records,
            "cut a torn tail record off a raw log"
        );
    }
    file.sync_all()?;
    drop(file);
    raw.rename(name, raw, format!("{name}{FINISHED_SUFFIX}"))?;
    tracing::info!(file = name, records, "recovered raw log");
    Ok(Recovered {
        name: name.to_string(),
        records,
        cut_bytes,
        removed: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rawlog::encode_v2;

    fn dir() -> (tempfile::TempDir, Dir) {
        let tmp = tempfile::tempdir().unwrap();
        let dir = Dir::open_ambient_dir(tmp.path(), cap_std::ambient_authority()).unwrap();
        (tmp, dir)
    }

    #[test]
    fn torn_tail_is_cut_and_log_finished() {
        let (tmp, raw) = dir();
        let mut bytes = Vec::new();
        encode_v2(&mut bytes, 1, "127.0.0.1", "id-1/main", b"first body");
        encode_v2(&mut bytes, 2, "127.0.0.1", "id-2/main", b"second body");
        let whole = bytes.len();
        encode_v2(
            &mut bytes,
            3,
            "127.0.0.1",
            "id-3/main",
            b"torn body that never finished",
        );
        bytes.truncate(whole + 20);
        let name = "telemetry.log.v2.h.1_0.1700000000000";
        std::fs::write(tmp.path().join(name), &bytes).unwrap();
        std::fs::write(tmp.path().join("unrelated.txt"), b"x").unwrap();

        let done = recover_active_logs(&raw, "telemetry.log").unwrap();
        assert_eq!(
            done,
            vec![Recovered {
                name: name.into(),
                records: 2,
                cut_bytes: 20,
                removed: false
            }]
        );
        let kept = std::fs::read(tmp.path().join(format!("{name}.finished"))).unwrap();
        assert_eq!(kept, bytes[..whole]);
        assert!(!tmp.path().join(name).exists());
        assert!(tmp.path().join("unrelated.txt").exists());
    }

    #[test]
    fn garbage_after_records_is_cut_and_empty_logs_removed() {
        let (tmp, raw) = dir();
        let mut bytes = Vec::new();
        encode_v2(&mut bytes, 1, "::1", "a", b"{}");
        let whole = bytes.len();
        bytes.extend_from_slice(&[0u8; 40]); // zero-filled blocks after a power loss
        std::fs::write(tmp.path().join("telemetry.log.v2.h.1_0.5"), &bytes).unwrap();
        std::fs::write(tmp.path().join("telemetry.log.v2.h.1_1.6"), [0x1E, 9, 9]).unwrap();

        let done = recover_active_logs(&raw, "telemetry.log").unwrap();
        assert_eq!(done.len(), 2);
        assert_eq!((done[0].records, done[0].cut_bytes), (1, 40));
        assert!(done[1].removed);
        assert_eq!(
            std::fs::read(tmp.path().join("telemetry.log.v2.h.1_0.5.finished"))
                .unwrap()
                .len(),
            whole
        );
        assert!(!tmp.path().join("telemetry.log.v2.h.1_1.6").exists());
    }
}
