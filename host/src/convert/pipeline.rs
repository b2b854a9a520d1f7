//! [`Pipeline`]: a [`Converter`], a [`StorageWriter`] and an [`ErrorStream`] over one data
//! directory. Converts whole raw logs (ingest calls [`Pipeline::convert_log`] for every
//! `.finished` log), `id<TAB>json` text files (plain or compressed) and single JSON documents.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::sync::Arc;

use super::bad_record::{BadRecord, BadRecordKind};
use super::converter::Converter;
use super::dedup::{self, DedupIndex, Reservation};
use super::error_input::{self, ErrorInput};
use super::error_stream::{ErrorEntry, ErrorStream};
use super::parallel::ordered_map;
use super::summary::ConvertSummary;
use crate::rawlog::{self, RawRecord};
use crate::storage::{
    datadir, decompress, Container, DataDir, FinishedFile, StorageError, StorageWriter,
    WriterOptions,
};

/// Why a conversion run stopped (rejected records are not errors: they go to the error stream).
#[derive(Debug, thiserror::Error)]
pub enum ConvertError {
    /// An input raw log could not be read.
    #[error("cannot read {path}: {source}")]
    Input {
        /// The raw log's path.
        path: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// Writing partition files failed.
    #[error("{0}")]
    Storage(#[from] StorageError),
    /// The de-duplication index failed.
    #[error("{0}")]
    Dedup(#[from] super::dedup::DedupError),
}

/// What kind of file an input is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputFormat {
    /// A raw submission log (v0, v1 or v2).
    Log,
    /// `id<TAB>json` lines, plain or compressed (`.gz`, `.xz`, `.lzma`, `.zst`).
    Text,
    /// One JSON document; the id is the file name without extension.
    Json,
    /// An error stream (`errors/*.ndjson`): rejected records converted again.
    Errors,
}

impl std::str::FromStr for InputFormat {
    type Err = String;
    /// `log`, `text`, `json` or `errors`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "log" => Ok(InputFormat::Log),
            "text" => Ok(InputFormat::Text),
            "json" => Ok(InputFormat::Json),
            "errors" => Ok(InputFormat::Errors),
            other => Err(format!(
                "unknown input format {other:?} (expected log, text, json or errors)"
            )),
        }
    }
}

impl InputFormat {
    /// Guesses from the name and the first bytes: compressed or `.txt`/`.tsv` → text, `.json` →
    /// json, a leading `0x1E` → log, a first line with a tab → text, anything else → log (v0).
    pub fn detect(path: &Path) -> Result<InputFormat, ConvertError> {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        let ext = name.rsplit_once('.').map(|(_, e)| e).unwrap_or_default();
        match ext {
            "gz" | "xz" | "lzma" | "zst" | "txt" | "tsv" => return Ok(InputFormat::Text),
            "json" => return Ok(InputFormat::Json),
            "ndjson" => return Ok(InputFormat::Errors),
            _ => {}
        }
        let mut head = Vec::with_capacity(4096);
        open(path)?
            .take(4096)
            .read_to_end(&mut head)
            .map_err(|e| input_error(path, e))?;
        let first_line = head.split(|&b| b == b'\n').next().unwrap_or_default();
        Ok(match head.first() {
            Some(&rawlog::SEPARATOR) => InputFormat::Log,
            _ if first_line.contains(&b'\t') && std::str::from_utf8(first_line).is_ok() => {
                InputFormat::Text
            }
            _ => InputFormat::Log,
        })
    }
}

fn input_error(path: &Path, source: std::io::Error) -> ConvertError {
    ConvertError::Input {
        path: path.display().to_string(),
        source,
    }
}

/// Inputs are named by the operator or by ingest (under its raw directory); they are read by
/// path, outputs only go through the data directory capability.
fn open(path: &Path) -> Result<std::fs::File, ConvertError> {
    std::fs::File::open(path).map_err(|e| input_error(path, e))
}

/// Converter + storage writer + error stream.
pub struct Pipeline {
    converter: Arc<Converter>,
    writer: Option<StorageWriter>,
    errors: ErrorStream,
    finished: Vec<FinishedFile>,
    /// Threads converting the records of one input ([`ordered_map`]); output is the same for any.
    threads: usize,
    /// Ids already stored are skipped as duplicates (see [`Pipeline::with_dedup`]).
    dedup: Option<Arc<DedupIndex>>,
    /// The schema position of `submission_date`, the day an id is indexed under.
    date_dim: Option<usize>,
}

impl Pipeline {
    /// Writes partitions under `<data>/storage` and rejected records to `<data>/errors/<name>.ndjson`
    /// (`name` unique per run, e.g. `convert-<utc time>-<pid>`).
    pub fn new(
        data: &DataDir,
        converter: Arc<Converter>,
        options: WriterOptions,
        error_name: &str,
    ) -> Result<Pipeline, ConvertError> {
        let storage = data.sub(datadir::STORAGE)?;
        let errors = ErrorStream::create(data.sub(datadir::ERRORS)?, error_name);
        let writer = StorageWriter::new(storage, converter.schema().clone(), options);
        let date_dim = converter.schema().position("submission_date");
        Ok(Pipeline {
            converter,
            writer: Some(writer),
            errors,
            finished: Vec::new(),
            threads: 1,
            dedup: None,
            date_dim,
        })
    }

    /// Converts the records of each input on `threads` threads (stored in input order, so the
    /// output is what one thread writes); default 1.
    pub fn with_threads(mut self, threads: usize) -> Pipeline {
        self.threads = threads.max(1);
        self
    }

    /// De-duplicates by document id with `index`: a record whose id is in it is counted in
    /// `duplicate`, not stored, and its id goes to the error stream (kind `duplicate`); the ids
    /// of stored records are committed to it as their partition files are published.
    pub fn with_dedup(mut self, index: Arc<DedupIndex>) -> Pipeline {
        if let Some(writer) = self.writer.as_mut() {
            writer.set_publish_hook(index.hook());
        }
        self.dedup = Some(index);
        self
    }

    /// The converter every record goes through.
    pub fn converter(&self) -> &Converter {
        &self.converter
    }

    /// The error stream's path relative to the data directory.
    pub fn error_file(&self) -> &str {
        self.errors.name()
    }

    /// Converts one raw log.
    pub fn convert_log(&mut self, path: &Path) -> Result<ConvertSummary, ConvertError> {
        self.convert_log_with(path, &mut |_| {})
    }

    /// [`Pipeline::convert_log`], calling `progress` with the bytes of the file consumed so far.
    pub fn convert_log_with(
        &mut self,
        path: &Path,
        progress: &mut dyn FnMut(u64),
    ) -> Result<ConvertSummary, ConvertError> {
        let reader = rawlog::open(path).map_err(|e| input_error(path, e))?;
        self.convert_log_reader(reader, &path.display().to_string(), progress)
    }

    /// Converts the raw log `reader` reads (`source` names it in the error stream), e.g. one
    /// streamed from S3.
    pub fn convert_log_reader<R: std::io::Read + Send>(
        &mut self,
        reader: rawlog::LogReader<R>,
        source: &str,
        progress: &mut dyn FnMut(u64),
    ) -> Result<ConvertSummary, ConvertError> {
        let mut summary = ConvertSummary::default();
        let converter = self.converter.clone();
        let records = WithOffsets(reader);
        let records = ordered_map(
            self.threads,
            records,
            |(item, _)| item.as_ref().ok().map(|rec| convert_raw(&converter, rec)),
            |(item, offset), outcome| {
                match (item, outcome) {
                    (Ok(rec), Some(outcome)) => {
                        self.store_record(&rec, source, outcome, &mut summary)?
                    }
                    (item, _) => {
                        summary.records_read += 1;
                        let bad = BadRecord::new(BadRecordKind::CorruptedData, err_text(item));
                        self.reject(&bad, ErrorEntry::new(&bad, source, None), &mut summary)?;
                    }
                }
                progress(offset);
                Ok(())
            },
        )?;
        summary.skipped_bytes = records.0.skipped_bytes();
        self.collect_finished()?;
        Ok(summary)
    }

    /// Converts one raw record into storage or the error stream.
    pub fn convert_record(
        &mut self,
        rec: &RawRecord,
        source: &str,
        summary: &mut ConvertSummary,
    ) -> Result<(), ConvertError> {
        let outcome = convert_raw(&self.converter, rec);
        self.store_record(rec, source, outcome, summary)
    }

    /// Stores the outcome of [`convert_raw`] for `rec`, or keeps it in the error stream.
    fn store_record(
        &mut self,
        rec: &RawRecord,
        source: &str,
        outcome: RawOutcome,
        summary: &mut ConvertSummary,
    ) -> Result<(), ConvertError> {
        summary.records_read += 1;
        summary.bytes_read += (rec.path.len() + rec.body.len()) as u64;
        summary.bytes_uncompressed += (rec.path.len() + outcome.body_len) as u64;
        let (bad, inflated) = match outcome.result {
            Ok(converted) if self.duplicate(&converted, source, Some(rec), summary)? => {
                return Ok(())
            }
            Ok(converted) => match self.store(&converted, summary)? {
                None => return Ok(()),
                Some(bad) => (bad, None),
            },
            Err((bad, inflated)) => (bad, inflated),
        };
        // The inflated body when it fits the error stream's body limit (readable, and converted
        // again as is), else the body as received (a gzip bomb stays its compressed size, and a
        // large ping stays whole and can be converted again once what it lacked is there).
        let max = super::error_stream::limits().max_body_bytes;
        let body = match inflated.as_deref() {
            Some(inflated) if inflated.len() <= max => inflated,
            _ => &rec.body,
        };
        let entry = ErrorEntry {
            path: Some(&rec.path),
            timestamp_ms: Some(rec.timestamp_ms),
            ip: &rec.ip,
            ..ErrorEntry::new(&bad, source, Some(body))
        };
        self.reject(&bad, entry, summary)
    }

    /// Converts an `id<TAB>json` text file (plain or compressed by extension) whose records were
    /// received on `submission_date` (`YYYYMMDD`).
    pub fn convert_text(
        &mut self,
        path: &Path,
        submission_date: &str,
        progress: &mut dyn FnMut(u64),
    ) -> Result<ConvertSummary, ConvertError> {
        let source = path.display().to_string();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        let file = open(path)?;
        let input: Box<dyn BufRead + Send> = match Container::from_name(name) {
            Some(Container::Plain) | None => Box::new(BufReader::with_capacity(256 * 1024, file)),
            Some(_) => decompress(name, file)?,
        };
        let mut summary = ConvertSummary::default();
        let converter = self.converter.clone();
        let lines = Lines {
            input,
            path,
            consumed: 0,
        };
        ordered_map(
            self.threads,
            lines,
            |(line, _)| converter.convert_line(line, submission_date),
            |(line, consumed), result| {
                summary.records_read += 1;
                summary.bytes_read += line.len() as u64;
                summary.bytes_uncompressed += line.len() as u64;
                self.store_or_reject(result, &source, &line, &mut summary)?;
                progress(consumed);
                Ok(())
            },
        )?;
        self.collect_finished()?;
        Ok(summary)
    }

    /// Converts a file holding one JSON document; its id is the file name without `.json`.
    pub fn convert_json_file(
        &mut self,
        path: &Path,
        submission_date: &str,
    ) -> Result<ConvertSummary, ConvertError> {
        let source = path.display().to_string();
        let body = std::fs::read(path).map_err(|e| input_error(path, e))?;
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("unknown");
        let id = name.strip_suffix(".json").unwrap_or(name);
        let mut summary = ConvertSummary {
            records_read: 1,
            bytes_read: body.len() as u64,
            bytes_uncompressed: body.len() as u64,
            ..Default::default()
        };
        let result = self.converter.convert_body(id, &body, submission_date);
        self.store_or_reject(result, &source, &body, &mut summary)?;
        self.collect_finished()?;
        Ok(summary)
    }

    fn store_or_reject(
        &mut self,
        result: Result<super::Converted, BadRecord>,
        source: &str,
        body: &[u8],
        summary: &mut ConvertSummary,
    ) -> Result<(), ConvertError> {
        let bad = match result {
            Ok(converted) if self.duplicate(&converted, source, None, summary)? => return Ok(()),
            Ok(converted) => match self.store(&converted, summary)? {
                None => return Ok(()),
                Some(bad) => bad,
            },
            Err(bad) => bad,
        };
        self.reject(&bad, ErrorEntry::new(&bad, source, Some(body)), summary)
    }

    /// With dedup: true (and the duplicate counted and logged to the error stream, id only)
    /// when the record's id is stored or reserved already; otherwise the id is now reserved.
    fn duplicate(
        &mut self,
        converted: &super::Converted,
        source: &str,
        rec: Option<&RawRecord>,
        summary: &mut ConvertSummary,
    ) -> Result<bool, ConvertError> {
        let Some(index) = &self.dedup else {
            return Ok(false);
        };
        if index.reserve(&converted.id)? == Reservation::New {
            return Ok(false);
        }
        summary.duplicate += 1;
        let entry = ErrorEntry {
            kind: "duplicate",
            detail: &converted.id,
            source,
            path: Some(rec.map_or(converted.id.as_str(), |r| r.path.as_str())),
            timestamp_ms: rec.map(|r| r.timestamp_ms),
            ip: rec.map_or("", |r| r.ip.as_str()),
            body: None,
            body_base64: None,
            body_bytes: None,
            body_truncated: false,
        };
        self.errors.write(&entry)?;
        Ok(true)
    }

    /// Converts an error stream (`errors/*.ndjson`): every rejected record in it is converted
    /// again (see [`error_input`]); records of text and JSON inputs get `submission_date`.
    pub fn convert_errors(
        &mut self,
        path: &Path,
        submission_date: &str,
        progress: &mut dyn FnMut(u64),
    ) -> Result<ConvertSummary, ConvertError> {
        let source = path.display().to_string();
        let default_ms = chrono::NaiveDate::parse_from_str(submission_date, "%Y%m%d")
            .ok()
            .and_then(|d| d.and_hms_opt(0, 0, 0))
            .map_or(0, |t| t.and_utc().timestamp_millis().max(0) as u64);
        let mut summary = ConvertSummary::default();
        let lines = Lines {
            input: Box::new(BufReader::with_capacity(256 * 1024, open(path)?)),
            path,
            consumed: 0,
        };
        for item in lines {
            let (line, consumed) = item?;
            if line.trim_ascii().is_empty() {
                continue;
            }
            match error_input::parse(&line, default_ms) {
                ErrorInput::Skip => {}
                ErrorInput::Raw(rec) => self.convert_record(&rec, &source, &mut summary)?,
                ErrorInput::Line(text) => {
                    summary.records_read += 1;
                    summary.bytes_read += text.len() as u64;
                    summary.bytes_uncompressed += text.len() as u64;
                    let result = self.converter.convert_line(&text, submission_date);
                    self.store_or_reject(result, &source, &text, &mut summary)?;
                }
                ErrorInput::Document { id, body } => {
                    summary.records_read += 1;
                    summary.bytes_read += body.len() as u64;
                    summary.bytes_uncompressed += body.len() as u64;
                    let result = self.converter.convert_body(&id, &body, submission_date);
                    self.store_or_reject(result, &source, &body, &mut summary)?;
                }
                ErrorInput::Unusable(detail) => {
                    summary.records_read += 1;
                    let bad = BadRecord::new(BadRecordKind::CorruptedData, detail);
                    self.reject(&bad, ErrorEntry::new(&bad, &source, None), &mut summary)?;
                }
            }
            progress(consumed);
        }
        self.collect_finished()?;
        Ok(summary)
    }

    /// Writes a converted record; a storage refusal becomes a `write_failed` bad record.
    fn store(
        &mut self,
        converted: &super::Converted,
        summary: &mut ConvertSummary,
    ) -> Result<Option<BadRecord>, ConvertError> {
        let writer = self.writer.as_mut().ok_or_else(|| {
            StorageError::io("storage", std::io::Error::other("pipeline finished"))
        })?;
        let day = self.dedup.as_ref().map(|_| {
            dedup::day_of(
                self.date_dim
                    .and_then(|i| converted.dims.get(i))
                    .map(String::as_str),
            )
        });
        match writer.write_tracked(
            &converted.dims,
            converted.version,
            &converted.id,
            &converted.json,
            day,
        ) {
            Ok(()) => {
                summary.records_written += 1;
                summary.bytes_written += (converted.id.len() + converted.json.len() + 2) as u64;
                summary.histograms_converted += u64::from(converted.histograms);
                summary.unknown_histograms += u64::from(converted.unknown_histograms);
                summary.histograms_dropped += u64::from(converted.histograms_dropped);
                summary.histograms_self_described += u64::from(converted.histograms_self_described);
                summary.histograms_nearest += u64::from(converted.histograms_nearest);
                if let Some(basis) = converted.validation {
                    *summary
                        .records_by_validation
                        .entry(basis.label())
                        .or_default() += 1;
                }
                Ok(None)
            }
            Err(err) => {
                if let Some(index) = &self.dedup {
                    index.release([converted.id.as_str()]);
                }
                Ok(Some(BadRecord::new(
                    BadRecordKind::WriteFailed,
                    err.to_string(),
                )))
            }
        }
    }

    fn reject(
        &mut self,
        bad: &BadRecord,
        entry: ErrorEntry,
        summary: &mut ConvertSummary,
    ) -> Result<(), ConvertError> {
        summary.add_bad(bad.kind);
        self.errors.write(&entry)?;
        Ok(())
    }

    fn collect_finished(&mut self) -> Result<(), ConvertError> {
        if let Some(writer) = self.writer.as_mut() {
            self.finished.extend(writer.take_finished());
        }
        self.errors.flush()?;
        Ok(())
    }

    /// Finishes partition files open longer than the writer's `max_file_age` (a long-lived
    /// pipeline calls this periodically so data becomes visible); returns every file finished
    /// since the last call.
    pub fn rotate_expired(&mut self) -> Result<Vec<FinishedFile>, ConvertError> {
        if let Some(writer) = self.writer.as_mut() {
            self.finished.extend(writer.rotate_expired()?);
        }
        self.collect_finished()?;
        Ok(self.take_finished())
    }

    /// Partition files finished (rotated) so far, taken.
    pub fn take_finished(&mut self) -> Vec<FinishedFile> {
        std::mem::take(&mut self.finished)
    }

    /// Finishes every open partition file and syncs the error stream. Returns all files finished
    /// since the last [`Pipeline::take_finished`].
    pub fn finish(mut self) -> Result<Vec<FinishedFile>, ConvertError> {
        if let Some(writer) = self.writer.take() {
            self.finished.extend(writer.finish()?);
        }
        self.errors.flush()?;
        Ok(std::mem::take(&mut self.finished))
    }
}

/// A raw record converted off the storing thread: the result, and the inflated body when the
/// record is rejected (the error stream keeps what was decoded).
struct RawOutcome {
    result: Result<super::Converted, (BadRecord, Option<Vec<u8>>)>,
    /// Length of the body as decoded (inflated when gzip).
    body_len: usize,
}

fn convert_raw(converter: &Converter, rec: &RawRecord) -> RawOutcome {
    match converter.decode(rec) {
        Ok(body) => {
            let result = converter.convert_decoded(rec, &body);
            let body_len = body.len();
            let result = result.map_err(|bad| {
                let inflated = match body {
                    std::borrow::Cow::Owned(bytes) => Some(bytes),
                    std::borrow::Cow::Borrowed(_) => None,
                };
                (bad, inflated)
            });
            RawOutcome { result, body_len }
        }
        Err(bad) => RawOutcome {
            result: Err((bad, None)),
            body_len: rec.body.len(),
        },
    }
}

fn err_text(err: Result<RawRecord, rawlog::RecordError>) -> String {
    match err {
        Err(e) => e.to_string(),
        Ok(_) => String::from("record not converted"),
    }
}

/// A raw log's records, each with the reader's offset after it.
struct WithOffsets<R: std::io::Read>(rawlog::LogReader<R>);

impl<R: std::io::Read> Iterator for WithOffsets<R> {
    type Item = Result<(Result<RawRecord, rawlog::RecordError>, u64), ConvertError>;

    fn next(&mut self) -> Option<Self::Item> {
        let item = self.0.next()?;
        Some(Ok((item, self.0.record_offset())))
    }
}

/// The non-empty lines of a text input (line ends stripped), each with the bytes consumed.
struct Lines<'p> {
    input: Box<dyn BufRead + Send>,
    path: &'p Path,
    consumed: u64,
}

impl Iterator for Lines<'_> {
    type Item = Result<(Vec<u8>, u64), ConvertError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let mut line = Vec::new();
            match self.input.read_until(b'\n', &mut line) {
                Ok(0) => return None,
                Ok(n) => self.consumed += n as u64,
                Err(e) => return Some(Err(input_error(self.path, e))),
            }
            while matches!(line.last(), Some(b'\n' | b'\r')) {
                line.pop();
            }
            if !line.is_empty() {
                return Some(Ok((line, self.consumed)));
            }
        }
    }
}
