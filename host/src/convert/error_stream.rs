//! The error stream: every rejected record, with its reason, as one NDJSON line in
//! `errors/<name>.ndjson` under the data directory, so nothing is dropped silently and a record
//! can be converted again later (for instance once its Histograms.json is available).
//!
//! Line fields: `kind` (bad-record label), `detail`, `source` (input file), `path`,
//! `timestamp_ms`, `ip`, and the body as `body` (UTF-8 text, inflated if it was gzip) or
//! `body_base64` (anything else). A record that could not even be read from a corrupt log has
//! no body.

use std::io::{BufWriter, Write};

use base64::Engine;
use cap_std::fs::{Dir, File, OpenOptions};
use serde::Serialize;

use super::bad_record::BadRecord;
use crate::storage::{datadir, StorageError};

/// One rejected record as written.
#[derive(Debug, Serialize)]
pub struct ErrorEntry<'a> {
    pub kind: &'static str,
    pub detail: &'a str,
    pub source: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timestamp_ms: Option<u64>,
    #[serde(skip_serializing_if = "str::is_empty")]
    pub ip: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body_base64: Option<String>,
}

impl<'a> ErrorEntry<'a> {
    /// An entry for `bad`, with the body kept as text when it is UTF-8, else base64.
    pub fn new(bad: &'a BadRecord, source: &'a str, body: Option<&'a [u8]>) -> ErrorEntry<'a> {
        let text = body.and_then(|b| std::str::from_utf8(b).ok());
        let base64 = match (body, text) {
            (Some(b), None) => Some(base64::engine::general_purpose::STANDARD.encode(b)),
            _ => None,
        };
        ErrorEntry {
            kind: bad.kind.as_str(),
            detail: &bad.detail,
            source,
            path: None,
            timestamp_ms: None,
            ip: "",
            body: text,
            body_base64: base64,
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
        }
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

    /// Appends one entry.
    pub fn write(&mut self, entry: &ErrorEntry) -> Result<(), StorageError> {
        let name = self.name.clone();
        let io = |e: std::io::Error| StorageError::io(name.clone(), e);
        let out = self.file()?;
        serde_json::to_writer(&mut *out, entry).map_err(|e| io(e.into()))?;
        out.write_all(b"\n").map_err(io)?;
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
