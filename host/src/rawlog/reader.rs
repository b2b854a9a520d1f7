//! [`LogReader`]: streams records out of a raw log of any version, resynchronising after
//! corruption, and [`open`] for a log file on disk (version from its name, else detected).
//!
//! The reader keeps its own buffer, which starts small and doubles while reads fill it, up to
//! [`MIN_BUFFER_BYTES`] or two of the largest records (~210 KiB with default limits), and frames
//! records in place with [`record::step`](super::record); each record costs one allocation for
//! its body. A short log (an upload, a fuzz input) so never pays for a megabyte it does not use.

use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::Path;

use super::record::{self, Limits, RecordError, Step, Version};
use super::RawRecord;

/// The buffer a reader starts with.
const INITIAL_BUFFER_BYTES: usize = 16 << 10;

/// The buffer a long log grows to (at least): large reads keep the per-read overhead negligible.
const MIN_BUFFER_BYTES: usize = 1 << 20;

/// Version detection parses this many records cleanly before deciding (as the seed did).
const DETECT_RECORDS: usize = 3;

/// Reads records from a raw log. Yields `Ok(record)` for each good record and `Err` for each
/// damaged one (then continues after it); garbage between records is skipped and counted.
pub struct LogReader<R> {
    inner: R,
    buf: Vec<u8>,
    /// The size `buf` grows to while reads fill it: room for two of the largest records.
    full_size: usize,
    /// Unconsumed bytes are `buf[start..end]`.
    start: usize,
    end: usize,
    /// Byte offset in the log of `buf[start]`.
    offset: u64,
    eof: bool,
    done: bool,
    version: Option<Version>,
    limits: Limits,
    /// True at the start and after a good record; false while resynchronising.
    in_sync: bool,
    skipped: u64,
    records: u64,
    errors: u64,
    last_offset: u64,
}

impl<R: Read> LogReader<R> {
    /// A reader with the default [`Limits`]. `version: None` detects the layout from the first
    /// records (the layout that frames the most of the first three records cleanly wins).
    pub fn new(inner: R, version: Option<Version>) -> Self {
        Self::with_limits(inner, version, Limits::default())
    }

    /// A reader with explicit size limits.
    pub fn with_limits(inner: R, version: Option<Version>, limits: Limits) -> Self {
        let largest = limits.max_record_bytes(Version::V0) + 255 + limits.max_path_bytes + 64;
        LogReader {
            inner,
            buf: vec![0; INITIAL_BUFFER_BYTES],
            full_size: MIN_BUFFER_BYTES.max(2 * largest),
            start: 0,
            end: 0,
            offset: 0,
            eof: false,
            done: false,
            version,
            limits,
            in_sync: true,
            skipped: 0,
            records: 0,
            errors: 0,
            last_offset: 0,
        }
    }

    /// The layout being read (`None` until detection has run on the first `next()`).
    pub fn version(&self) -> Option<Version> {
        self.version
    }

    /// Bytes that did not become a good record: garbage skipped while resynchronising plus
    /// the bytes of damaged records.
    pub fn skipped_bytes(&self) -> u64 {
        self.skipped
    }

    /// Good records yielded so far.
    pub fn records(&self) -> u64 {
        self.records
    }

    /// Damaged records (errors) yielded so far.
    pub fn errors(&self) -> u64 {
        self.errors
    }

    /// Bytes of the log consumed so far: in good records, damaged records or skipped garbage
    /// (the whole log once the reader has returned `None`).
    pub fn bytes_read(&self) -> u64 {
        self.offset
    }

    /// Byte offset in the log of the record (or damaged record) yielded last.
    pub fn record_offset(&self) -> u64 {
        self.last_offset
    }

    /// Reads more bytes into the buffer, moving the unconsumed ones to the front first. The
    /// buffer doubles when unconsumed bytes fill it (a record longer than it), and up to
    /// `full_size` when the previous read filled it (a long log: fewer, larger reads).
    fn fill(&mut self) -> io::Result<()> {
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.end == self.buf.len() {
            self.buf.resize(self.buf.len() * 2, 0);
        }
        loop {
            let room = self.buf.len() - self.end;
            match self.inner.read(&mut self.buf[self.end..]) {
                Ok(0) => {
                    self.eof = true;
                    return Ok(());
                }
                Ok(n) => {
                    self.end += n;
                    if n == room && self.buf.len() < self.full_size {
                        let grown = (self.buf.len() * 2).min(self.full_size);
                        self.buf.resize(grown, 0);
                    }
                    return Ok(());
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// Buffers the start of the log and picks the layout that frames it best.
    fn detect(&mut self) -> io::Result<Version> {
        while !self.eof && self.end < MIN_BUFFER_BYTES {
            self.fill()?;
        }
        let data = &self.buf[..self.end];
        // Best: frames a record at byte 0 (as the seed: "the first record had the expected
        // length"), then the most good records, then the fewest bad bytes; ties go to v2, v1, v0.
        let mut best = (Version::V2, (false, 0usize, usize::MAX));
        for version in Version::ALL {
            let (first, good, bad) = frame_prefix(version, data, self.eof, &self.limits);
            let better = (first, good, std::cmp::Reverse(bad))
                > (best.1 .0, best.1 .1, std::cmp::Reverse(best.1 .2));
            if better {
                best = (version, (first, good, bad));
            }
        }
        Ok(best.0)
    }

    fn advance(&mut self, n: usize) {
        self.start += n;
        self.offset += n as u64;
    }

    fn io_error(&mut self, error: io::Error) -> Option<Result<RawRecord, RecordError>> {
        self.done = true;
        self.errors += 1;
        Some(Err(RecordError::Io {
            offset: self.offset,
            message: error.to_string(),
        }))
    }
}

/// Frames up to [`DETECT_RECORDS`] records of `data` as `version`: (a record starts at byte 0,
/// good records, bad bytes).
fn frame_prefix(version: Version, data: &[u8], eof: bool, limits: &Limits) -> (bool, usize, usize) {
    let (mut pos, mut good, mut bad, mut in_sync) = (0, 0, 0, true);
    let mut first = false;
    while pos < data.len() && good < DETECT_RECORDS {
        match record::step(version, &data[pos..], eof, pos as u64, in_sync, limits) {
            Step::Record(frame) => {
                first |= pos == 0;
                good += 1;
                pos += frame.len;
                in_sync = true;
            }
            Step::Skip(len) | Step::Damaged { len, .. } => {
                bad += len;
                pos += len;
                in_sync = false;
            }
            Step::NeedMore => break,
        }
    }
    (first, good, bad)
}

impl<R: Read> Iterator for LogReader<R> {
    type Item = Result<RawRecord, RecordError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let version = match self.version {
            Some(v) => v,
            None => match self.detect() {
                Ok(v) => {
                    self.version = Some(v);
                    v
                }
                Err(e) => return self.io_error(e),
            },
        };
        loop {
            if self.start == self.end {
                if self.eof {
                    self.done = true;
                    return None;
                }
                if let Err(e) = self.fill() {
                    return self.io_error(e);
                }
                continue;
            }
            let bytes = &self.buf[self.start..self.end];
            match record::step(
                version,
                bytes,
                self.eof,
                self.offset,
                self.in_sync,
                &self.limits,
            ) {
                Step::NeedMore => {
                    if let Err(e) = self.fill() {
                        return self.io_error(e);
                    }
                }
                Step::Skip(len) => {
                    self.skipped += len as u64;
                    self.in_sync = false;
                    self.advance(len);
                }
                Step::Damaged { len, error } => {
                    self.last_offset = self.offset;
                    self.skipped += len as u64;
                    self.errors += 1;
                    self.in_sync = false;
                    self.advance(len);
                    return Some(Err(error));
                }
                Step::Record(frame) => {
                    let record = RawRecord {
                        timestamp_ms: frame.timestamp_ms,
                        ip: String::from_utf8_lossy(&bytes[frame.ip]).into_owned(),
                        path: String::from_utf8_lossy(&bytes[frame.path]).into_owned(),
                        body: bytes[frame.body].to_vec(),
                    };
                    self.last_offset = self.offset;
                    self.records += 1;
                    self.in_sync = true;
                    self.advance(frame.len);
                    return Some(Ok(record));
                }
            }
        }
    }
}

/// The version marked in a raw-log file name (`.v1.` or `.v2.`, as the seed's
/// "simple detection"), if any.
pub fn version_from_file_name(name: &str) -> Option<Version> {
    if name.contains(".v2.") || name.ends_with(".v2") {
        Some(Version::V2)
    } else if name.contains(".v1.") || name.ends_with(".v1") {
        Some(Version::V1)
    } else {
        None
    }
}

/// Opens a raw log file. The version comes from `.v1.`/`.v2.` in the file name, else it is
/// detected from the content.
pub fn open(path: &Path) -> io::Result<LogReader<BufReader<File>>> {
    let version = path
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(version_from_file_name);
    let file = File::open(path)?;
    Ok(LogReader::new(
        BufReader::with_capacity(64 * 1024, file),
        version,
    ))
}
