//! The error stream: every rejected record, with its reason, as one NDJSON line in
//! `errors/<name>.ndjson` under the data directory, so nothing is dropped silently and a record
//! can be converted again later (for instance once its Histograms.json is available).
//!
//! Line fields: `kind` (bad-record label), `detail`, `source` (input file), `path`,
//! `timestamp_ms`, `ip`, and the body as `body` (UTF-8 text) or `body_base64` (anything else).
//! A gzip submission is kept inflated when that fits `errors.max_body_bytes` (readable), else as
//! received (so a gzip bomb costs its compressed size and a large ping stays whole, to be
//! converted again). A record that could not even be read from a corrupt log has no body.
//!
//! Bounded (one 32 KB gzip POST once wrote a 201 MB line): only the first
//! `errors.max_body_bytes` of a body are kept (`body_bytes` then holds the original size and
//! `body_truncated` is true); `detail`, `path` and `ip` are cut to [`MAX_FIELD_BYTES`]. Once a file
//! holds `errors.max_file_bytes`, or `errors/` as a whole holds `retention.errors_max_bytes`,
//! entries are written without their body; past a further eighth of either budget they are not
//! written at all. Both are counted ([`error_stream_stats`], served on `/metrics`); the retention
//! sweep (`storage::retention`) removes old files. The limits are process-wide
//! ([`set_limits`], called by the server at start-up), since every pipeline writes the same
//! `errors/` directory.

use std::io::{BufWriter, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::RwLock;

use base64::Engine;
use cap_std::fs::{Dir, File, OpenOptions};
use serde::{Deserialize, Serialize};

use super::bad_record::BadRecord;
use crate::storage::{datadir, StorageError};

/// One rejected record as written.
#[derive(Debug, Serialize)]
pub struct ErrorEntry<'a> {
    /// The bad-record kind ([`BadRecordKind`](super::BadRecordKind) name).
    pub kind: &'static str,
    /// Why the record was rejected.
    pub detail: &'a str,
    /// The raw log the record came from.
    pub source: &'a str,
    /// The submission's URL path, when readable.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<&'a str>,
    /// When the submission was received (ms since the epoch), when readable.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timestamp_ms: Option<u64>,
    /// The submitter's IP address; empty when unknown.
    #[serde(skip_serializing_if = "str::is_empty")]
    pub ip: &'a str,
    /// The body as text, when it is UTF-8 (cut to the stream's limit).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body: Option<&'a str>,
    /// The body in base64, when it is not UTF-8 (cut to the stream's limit).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body_base64: Option<String>,
    /// Size of the whole body in bytes (present whenever a body was kept).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body_bytes: Option<u64>,
    /// The body kept is only its first `errors.max_body_bytes` (or was dropped: a budget was spent).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub body_truncated: bool,
}

/// Longest `detail`, `path` or `ip` written (a revision URL in a detail can be megabytes long).
pub const MAX_FIELD_BYTES: usize = 4096;

/// `[errors]` section: how much of a rejected record the error stream keeps.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ErrorStreamConfig {
    /// Bytes of a rejected body kept (a longer body is cut; its size is recorded).
    pub max_body_bytes: usize,
    /// Bytes one error file may reach before entries lose their body (and, an eighth more, are
    /// dropped).
    pub max_file_bytes: u64,
}

impl Default for ErrorStreamConfig {
    fn default() -> Self {
        ErrorStreamConfig {
            max_body_bytes: DEFAULT_LIMITS.max_body_bytes,
            max_file_bytes: DEFAULT_LIMITS.max_file_bytes,
        }
    }
}

impl ErrorStreamConfig {
    /// Rejects limits the error stream cannot work with.
    pub fn validate(&self) -> Result<(), String> {
        if self.max_file_bytes == 0 {
            return Err("errors.max_file_bytes must be > 0".into());
        }
        Ok(())
    }
}

/// The limits in force (see the module doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ErrorLimits {
    /// Bytes of a body kept.
    pub max_body_bytes: usize,
    /// Per-file budget.
    pub max_file_bytes: u64,
    /// Budget of the whole `errors/` directory (0: none).
    pub max_total_bytes: u64,
}

const DEFAULT_LIMITS: ErrorLimits = ErrorLimits {
    max_body_bytes: 256 * 1024,
    max_file_bytes: 256 << 20,
    max_total_bytes: 1 << 30,
};

static LIMITS: RwLock<ErrorLimits> = RwLock::new(DEFAULT_LIMITS);
/// Bytes under `errors/` as last measured by the retention sweep plus what was written since.
static TOTAL_BYTES: AtomicU64 = AtomicU64::new(0);
static TRUNCATED: AtomicU64 = AtomicU64::new(0);
static BODY_DROPPED: AtomicU64 = AtomicU64::new(0);
static DROPPED: AtomicU64 = AtomicU64::new(0);

/// Sets the limits of every error stream of this process.
pub fn set_limits(config: &ErrorStreamConfig, max_total_bytes: u64) {
    *LIMITS.write().unwrap_or_else(|e| e.into_inner()) = ErrorLimits {
        max_body_bytes: config.max_body_bytes,
        max_file_bytes: config.max_file_bytes,
        max_total_bytes,
    };
}

/// The limits in force.
pub fn limits() -> ErrorLimits {
    *LIMITS.read().unwrap_or_else(|e| e.into_inner())
}

/// Records the size of `errors/` measured by a sweep.
pub fn set_total_bytes(bytes: u64) {
    TOTAL_BYTES.store(bytes, Ordering::Relaxed);
}

/// What the bounds did so far, process-wide.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ErrorStreamStats {
    /// Bodies cut to `max_body_bytes`.
    pub truncated: u64,
    /// Entries written without their body because a budget was spent.
    pub body_dropped: u64,
    /// Entries not written because a budget was spent by more than an eighth.
    pub dropped: u64,
}

/// Counters of the bounds so far.
pub fn error_stream_stats() -> ErrorStreamStats {
    ErrorStreamStats {
        truncated: TRUNCATED.load(Ordering::Relaxed),
        body_dropped: BODY_DROPPED.load(Ordering::Relaxed),
        dropped: DROPPED.load(Ordering::Relaxed),
    }
}

/// The longest prefix of `text` of at most `max` bytes ending on a character boundary.
fn prefix(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// Whether `used` bytes are past `budget` (0: no budget), and past it by more than an eighth.
fn over(used: u64, budget: u64) -> (bool, bool) {
    if budget == 0 {
        return (false, false);
    }
    (used >= budget, used >= budget.saturating_add(budget / 8))
}

impl<'a> ErrorEntry<'a> {
    /// An entry for `bad`, with the first `errors.max_body_bytes` of the body kept as text when
    /// they are UTF-8, else base64.
    pub fn new(bad: &'a BadRecord, source: &'a str, body: Option<&'a [u8]>) -> ErrorEntry<'a> {
        let max = limits().max_body_bytes;
        let truncated = body.is_some_and(|b| b.len() > max);
        let kept = body.map(|b| &b[..b.len().min(max)]);
        let text = kept.and_then(|b| match std::str::from_utf8(b) {
            Ok(text) => Some(text),
            // A cut in the middle of a character: keep the text up to it.
            Err(e) if truncated && e.error_len().is_none() => {
                std::str::from_utf8(&b[..e.valid_up_to()]).ok()
            }
            Err(_) => None,
        });
        let base64 = match (kept, text) {
            (Some(b), None) => Some(base64::engine::general_purpose::STANDARD.encode(b)),
            _ => None,
        };
        if truncated {
            TRUNCATED.fetch_add(1, Ordering::Relaxed);
        }
        ErrorEntry {
            kind: bad.kind.as_str(),
            detail: &bad.detail,
            source,
            path: None,
            timestamp_ms: None,
            ip: "",
            body: text,
            body_base64: base64,
            body_bytes: body.map(|b| b.len() as u64),
            body_truncated: truncated,
        }
    }
}

/// An append-only NDJSON file of rejected records, created on the first entry (a run without
/// rejected records leaves no file).
pub struct ErrorStream {
    dir: Dir,
    file_name: String,
    out: Option<BufWriter<File>>,
    name: String,
    entries: u64,
    /// Bytes in the file (what it held when opened plus what this stream wrote).
    file_bytes: u64,
    /// Limits of this stream only (tests); `None`: the process-wide [`limits`].
    own_limits: Option<ErrorLimits>,
}

impl ErrorStream {
    /// An error stream writing `errors/<name>.ndjson` (appending if it exists).
    pub fn create(errors_dir: Dir, name: &str) -> ErrorStream {
        let file_name = format!("{name}.ndjson");
        let name = format!("{}/{file_name}", datadir::ERRORS);
        ErrorStream {
            dir: errors_dir,
            file_name,
            out: None,
            name,
            entries: 0,
            file_bytes: 0,
            own_limits: None,
        }
    }

    /// This stream with its own limits instead of the process-wide ones.
    pub fn with_limits(mut self, limits: ErrorLimits) -> ErrorStream {
        self.own_limits = Some(limits);
        self
    }

    fn file(&mut self) -> Result<&mut BufWriter<File>, StorageError> {
        if self.out.is_none() {
            let file = self
                .dir
                .open_with(
                    &self.file_name,
                    OpenOptions::new().create(true).append(true),
                )
                .map_err(|e| StorageError::io(self.name.clone(), e))?;
            self.file_bytes = file.metadata().map(|m| m.len()).unwrap_or(0);
            self.out = Some(BufWriter::new(file));
        }
        self.out
            .as_mut()
            .ok_or_else(|| StorageError::io(self.name.clone(), std::io::Error::other("not open")))
    }

    /// Path relative to the data directory.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Entries written so far.
    pub fn entries(&self) -> u64 {
        self.entries
    }

    /// Appends one entry, within the budgets (see the module doc): its fields cut to
    /// [`MAX_FIELD_BYTES`], without its body once a budget is spent, not at all an eighth later.
    pub fn write(&mut self, entry: &ErrorEntry) -> Result<(), StorageError> {
        let name = self.name.clone();
        let io = |e: std::io::Error| StorageError::io(name.clone(), e);
        self.file()?;
        let limits = self.own_limits.unwrap_or_else(limits);
        let total = TOTAL_BYTES.load(Ordering::Relaxed);
        let (file_spent, file_full) = over(self.file_bytes, limits.max_file_bytes);
        let (total_spent, total_full) = over(total, limits.max_total_bytes);
        if file_full || total_full {
            DROPPED.fetch_add(1, Ordering::Relaxed);
            return Ok(());
        }
        let has_body = entry.body.is_some() || entry.body_base64.is_some();
        let drop_body = (file_spent || total_spent) && has_body;
        if drop_body {
            BODY_DROPPED.fetch_add(1, Ordering::Relaxed);
        }
        let bounded = ErrorEntry {
            kind: entry.kind,
            detail: prefix(entry.detail, MAX_FIELD_BYTES),
            source: prefix(entry.source, MAX_FIELD_BYTES),
            path: entry.path.map(|p| prefix(p, MAX_FIELD_BYTES)),
            timestamp_ms: entry.timestamp_ms,
            ip: prefix(entry.ip, MAX_FIELD_BYTES),
            body: if drop_body { None } else { entry.body },
            body_base64: if drop_body {
                None
            } else {
                entry.body_base64.clone()
            },
            body_bytes: entry.body_bytes,
            body_truncated: entry.body_truncated || drop_body,
        };
        let mut line = serde_json::to_vec(&bounded).map_err(|e| io(e.into()))?;
        line.push(b'\n');
        let out = self.file()?;
        out.write_all(&line).map_err(io)?;
        self.file_bytes += line.len() as u64;
        TOTAL_BYTES.fetch_add(line.len() as u64, Ordering::Relaxed);
        self.entries += 1;
        Ok(())
    }

    /// Flushes and syncs the file (if any entry was written).
    pub fn flush(&mut self) -> Result<(), StorageError> {
        let Some(out) = self.out.as_mut() else {
            return Ok(());
        };
        let io = |e: std::io::Error| StorageError::io(self.name.clone(), e);
        out.flush().map_err(io)?;
        out.get_ref().sync_data().map_err(io)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::convert::BadRecordKind;

    #[test]
    fn prefixes_end_on_character_boundaries() {
        assert_eq!(prefix("héllo", 2), "h");
        assert_eq!(prefix("héllo", 3), "hé");
        assert_eq!(prefix("abc", 10), "abc");
        assert_eq!(over(10, 0), (false, false));
        assert_eq!(over(80, 80), (true, false));
        assert_eq!(over(90, 80), (true, true));
    }

    #[test]
    fn a_long_body_keeps_only_its_prefix_and_its_size() {
        let bad = BadRecord::new(BadRecordKind::BadPayload, "x".repeat(100_000));
        let body = vec![b'a'; 1 << 20];
        let entry = ErrorEntry::new(&bad, "src", Some(&body));
        assert_eq!(entry.body.map(str::len), Some(limits().max_body_bytes));
        assert_eq!(
            (entry.body_bytes, entry.body_truncated),
            (Some(1 << 20), true)
        );
        let binary = vec![0xffu8; 1 << 20];
        let entry = ErrorEntry::new(&bad, "src", Some(&binary));
        assert!(entry.body.is_none());
        let encoded = entry.body_base64.as_deref().unwrap();
        assert!(
            encoded.len() <= limits().max_body_bytes * 4 / 3 + 4,
            "{}",
            encoded.len()
        );
        let dir = tempfile::tempdir().unwrap();
        let errors = Dir::open_ambient_dir(dir.path(), cap_std::ambient_authority()).unwrap();
        let mut stream = ErrorStream::create(errors, "t");
        stream
            .write(&ErrorEntry::new(&bad, "src", Some(&body)))
            .unwrap();
        stream.flush().unwrap();
        let written = std::fs::read_to_string(dir.path().join("t.ndjson")).unwrap();
        let line: serde_json::Value = serde_json::from_str(written.trim_end()).unwrap();
        assert_eq!(line["detail"].as_str().unwrap().len(), MAX_FIELD_BYTES);
        assert_eq!(line["body_bytes"], 1 << 20);
        assert_eq!(line["body_truncated"], true);
        assert!(
            written.len() < limits().max_body_bytes + 2 * MAX_FIELD_BYTES,
            "{}",
            written.len()
        );
    }

    #[test]
    fn past_the_file_budget_entries_lose_their_body_then_are_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let errors = Dir::open_ambient_dir(dir.path(), cap_std::ambient_authority()).unwrap();
        let limits = ErrorLimits {
            max_body_bytes: 1024,
            max_file_bytes: 4000,
            max_total_bytes: 0,
        };
        let mut stream = ErrorStream::create(errors, "budget").with_limits(limits);
        let bad = BadRecord::new(BadRecordKind::BadPayload, "bad");
        let body = vec![b'x'; 500];
        for _ in 0..40 {
            stream
                .write(&ErrorEntry::new(&bad, "src", Some(&body)))
                .unwrap();
        }
        stream.flush().unwrap();
        let written = std::fs::read_to_string(dir.path().join("budget.ndjson")).unwrap();
        let lines: Vec<serde_json::Value> = written
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let with_body = lines.iter().filter(|l| l.get("body").is_some()).count();
        let without = lines.iter().filter(|l| l.get("body").is_none()).count();
        assert!(
            with_body >= 1 && without >= 1,
            "{with_body} with, {without} without a body"
        );
        assert!(lines[with_body..]
            .iter()
            .all(|l| l["body_truncated"] == true && l["body_bytes"] == 500));
        assert!(
            lines.len() < 40,
            "entries past an eighth more are dropped: {}",
            lines.len()
        );
        assert!(
            written.len() as u64 <= 4000 + 4000 / 8 + 600,
            "{} bytes",
            written.len()
        );
        assert_eq!(stream.entries(), lines.len() as u64);
    }
}
