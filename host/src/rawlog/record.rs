//! Raw-log record layouts (v0, v1, v2) and the framing step: given the buffered bytes at the
//! cursor, decide whether they hold a record, garbage to skip, a damaged record, or too few
//! bytes to tell. The streaming [`LogReader`](super::LogReader) and version detection both
//! drive this one function; it never allocates.
//!
//! Resynchronisation rules (see `docs/formats/raw-log.md`):
//! - v1/v2 records start with `0x1E`; any other byte at a record start is skipped up to the
//!   next `0x1E` (counted as skipped bytes, not as an error).
//! - A header whose lengths exceed the [`Limits`] is a damaged record; the reader rescans
//!   from the byte after its separator.
//! - A record must be followed by the next record's separator or the end of the file. When it
//!   is not, and a plausible record header starts inside its span, the record was truncated
//!   (the next record begins where its data should be): it is reported damaged and reading
//!   resumes at that header. Otherwise the record stands and the bytes after it are garbage;
//!   except in v0 (no separator) when its own header is implausible too: then it is garbage
//!   read as a header, a damaged record, and the reader rescans from the byte after it.

use std::ops::Range;

/// The v1/v2 record separator.
pub const SEPARATOR: u8 = 0x1E;

/// Longest path accepted (the seed's `max_path_length`, 10 KiB): guards against a corrupt
/// length field making the reader buffer megabytes for one record.
pub const MAX_PATH_BYTES: usize = 10 * 1024;

/// Longest body accepted by default (the seed's `max_data_length`, 200 KiB); configurable in [`Limits`].
pub const MAX_DATA_BYTES: usize = 200 * 1024;

/// Timestamps at or above this (2^44 ms, year 2527) mark a header as implausible while
/// resynchronising; it is not applied to a record read in sequence.
const PLAUSIBLE_TIMESTAMP_MS: u64 = 1 << 44;

/// The three byte layouts of the seed's raw logs (docs/formats/raw-log.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Version {
    /// Before 2013-09-17: no separator; `path len u32 | data len u32 | timestamp u64`.
    V0,
    /// `0x1E | path len u16 | data len u32 | timestamp u64`.
    V1,
    /// `0x1E | ip len u8 | path len u16 | data len u32 | timestamp u64` (written by this server).
    V2,
}

impl Version {
    /// Every version, in the order version detection prefers on a tie.
    pub const ALL: [Version; 3] = [Version::V2, Version::V1, Version::V0];

    /// Bytes before the variable-length fields.
    pub const fn header_len(self) -> usize {
        match self {
            Version::V0 => 16,
            Version::V1 => 15,
            Version::V2 => 16,
        }
    }

    /// `"v0"`, `"v1"` or `"v2"`, as in raw-log file names.
    pub const fn as_str(self) -> &'static str {
        match self {
            Version::V0 => "v0",
            Version::V1 => "v1",
            Version::V2 => "v2",
        }
    }
}

impl std::fmt::Display for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Version {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "v0" | "0" => Ok(Version::V0),
            "v1" | "1" => Ok(Version::V1),
            "v2" | "2" => Ok(Version::V2),
            other => Err(format!(
                "unknown raw-log version {other:?} (expected v0, v1 or v2)"
            )),
        }
    }
}

/// Size limits applied to every record header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Longest path in bytes; longer headers are damaged records.
    pub max_path_bytes: usize,
    /// Longest body in bytes; longer headers are damaged records.
    pub max_data_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_path_bytes: MAX_PATH_BYTES,
            max_data_bytes: MAX_DATA_BYTES,
        }
    }
}

impl Limits {
    /// The largest record these limits admit, in bytes (header + ip + path + data).
    pub fn max_record_bytes(&self, version: Version) -> usize {
        version.header_len() + 255 + self.max_path_bytes + self.max_data_bytes
    }
}

/// Why one record could not be read. The reader continues after it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    /// A length field exceeds its limit (corrupt header or oversized submission).
    #[error("record at byte {offset}: {field} length {len} exceeds the limit of {limit} bytes")]
    TooLarge {
        /// Byte offset of the record in the log.
        offset: u64,
        /// `"path"` or `"data"`.
        field: &'static str,
        /// The length the header claims.
        len: u64,
        /// The configured limit.
        limit: u64,
    },
    /// The record is shorter than its header claims: cut off by the end of the file or by the
    /// start of the next record.
    #[error("record at byte {offset}: truncated: header claims {expected} bytes, only {found} before {cause}")]
    Truncated {
        /// Byte offset of the record in the log.
        offset: u64,
        /// Record length the header claims.
        expected: u64,
        /// Bytes actually present.
        found: u64,
        /// `"end of file"` or `"the next record"`.
        cause: &'static str,
    },
    /// A v0 header within the limits, but implausible (no path, a control character or
    /// invalid UTF-8 in it, an absurd timestamp) and followed by no record: bytes read as a
    /// header where a record was due, typically the rest of a record whose length field was
    /// damaged (v0 has no separator to tell). The reader rescans from the next byte.
    #[error("record at byte {offset}: implausible header followed by no record")]
    Implausible {
        /// Byte offset of the header in the log.
        offset: u64,
    },
    /// Reading the log failed; the reader stops.
    #[error("read error at byte {offset}: {message}")]
    Io {
        /// Byte offset the reader had reached.
        offset: u64,
        /// The I/O error's message.
        message: String,
    },
}

/// Where the fields of one framed record lie, relative to the cursor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Frame {
    pub len: usize,
    pub timestamp_ms: u64,
    pub ip: Range<usize>,
    pub path: Range<usize>,
    pub body: Range<usize>,
}

/// The outcome of one framing step at the cursor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Step {
    /// A well-formed record.
    Record(Frame),
    /// This many bytes belong to no record (garbage before the next separator).
    Skip(usize),
    /// A damaged record: report the error and resume `len` bytes on.
    Damaged { len: usize, error: RecordError },
    /// Too few bytes buffered to decide; read more (never returned at end of file).
    NeedMore,
}

/// Lengths read from a header.
struct Header {
    ip_len: usize,
    path_len: usize,
    data_len: usize,
    timestamp_ms: u64,
}

impl Header {
    fn total(&self, version: Version) -> usize {
        version.header_len() + self.ip_len + self.path_len + self.data_len
    }
}

fn u16_at(b: &[u8], at: usize) -> usize {
    u16::from_le_bytes([b[at], b[at + 1]]) as usize
}

fn u32_at(b: &[u8], at: usize) -> usize {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes")) as usize
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

/// Reads the header at the start of `b` (which holds at least `header_len` bytes).
fn read_header(version: Version, b: &[u8]) -> Header {
    match version {
        Version::V0 => Header {
            ip_len: 0,
            path_len: u32_at(b, 0),
            data_len: u32_at(b, 4),
            timestamp_ms: u64_at(b, 8),
        },
        Version::V1 => Header {
            ip_len: 0,
            path_len: u16_at(b, 1),
            data_len: u32_at(b, 3),
            timestamp_ms: u64_at(b, 7),
        },
        Version::V2 => Header {
            ip_len: b[1] as usize,
            path_len: u16_at(b, 2),
            data_len: u32_at(b, 4),
            timestamp_ms: u64_at(b, 8),
        },
    }
}

fn has_separator(version: Version) -> bool {
    version != Version::V0
}

/// Checks the header lengths against the limits.
fn check_limits(h: &Header, limits: &Limits, offset: u64) -> Result<(), RecordError> {
    if h.path_len > limits.max_path_bytes {
        return Err(RecordError::TooLarge {
            offset,
            field: "path",
            len: h.path_len as u64,
            limit: limits.max_path_bytes as u64,
        });
    }
    if h.data_len > limits.max_data_bytes {
        return Err(RecordError::TooLarge {
            offset,
            field: "data",
            len: h.data_len as u64,
            limit: limits.max_data_bytes as u64,
        });
    }
    Ok(())
}

/// Whether a real record header plausibly starts at `b[0]`: separator (v1/v2), a non-empty
/// path, lengths within limits, a sane timestamp, a printable ASCII ip and a UTF-8 path without control characters.
/// Used only while resynchronising, where a false positive would swallow good records.
/// Returns false when the header, ip and path are not all inside `b`.
pub(crate) fn plausible_header(version: Version, b: &[u8], limits: &Limits) -> bool {
    let hl = version.header_len();
    if b.len() < hl || (has_separator(version) && b[0] != SEPARATOR) {
        return false;
    }
    let h = read_header(version, b);
    // Every real submission has a path (at least its id); zero lengths would make runs of
    // zero bytes look like records.
    if h.path_len == 0
        || check_limits(&h, limits, 0).is_err()
        || h.timestamp_ms >= PLAUSIBLE_TIMESTAMP_MS
    {
        return false;
    }
    let Some(fields) = b.get(hl..hl + h.ip_len + h.path_len) else {
        return false;
    };
    let (ip, path) = fields.split_at(h.ip_len);
    ip.iter().all(|c| c.is_ascii_graphic() || *c == b' ')
        && std::str::from_utf8(path).is_ok_and(|p| !p.chars().any(char::is_control))
}

/// Position (after index 0, up to and including `end`) of the first plausible header in `b`.
fn find_plausible(version: Version, b: &[u8], end: usize, limits: &Limits) -> Option<usize> {
    let end = end.min(b.len().saturating_sub(1));
    if has_separator(version) {
        let mut from = 1;
        while from <= end {
            let i = from + memchr::memchr(SEPARATOR, &b[from..=end])?;
            if plausible_header(version, &b[i..], limits) {
                return Some(i);
            }
            from = i + 1;
        }
        None
    } else {
        (1..=end).find(|&i| plausible_header(version, &b[i..], limits))
    }
}

/// Bytes buffered after a record before judging whether a plausible record follows it, or
/// starts inside it (so a candidate's header, ip and path are whole).
fn lookahead(version: Version, limits: &Limits) -> usize {
    version.header_len() + 255 + limits.max_path_bytes
}

/// Frames the bytes at the cursor.
///
/// `b` is everything buffered from the cursor on, `eof` says no more bytes will come, `offset`
/// is the cursor's byte offset in the log (for error messages), and `in_sync` says the cursor
/// follows a good record or the start of the file (an implausible header there is a damaged
/// record; while resynchronising after garbage it is more garbage).
pub(crate) fn step(
    version: Version,
    b: &[u8],
    eof: bool,
    offset: u64,
    in_sync: bool,
    limits: &Limits,
) -> Step {
    debug_assert!(!b.is_empty());
    if has_separator(version) && b[0] != SEPARATOR {
        let garbage = memchr::memchr(SEPARATOR, b).unwrap_or(b.len());
        return Step::Skip(garbage);
    }
    let hl = version.header_len();
    if b.len() < hl {
        if !eof {
            return Step::NeedMore;
        }
        if !in_sync {
            return Step::Skip(b.len());
        }
        let error = RecordError::Truncated {
            offset,
            expected: hl as u64,
            found: b.len() as u64,
            cause: "end of file",
        };
        return Step::Damaged {
            len: b.len(),
            error,
        };
    }
    let h = read_header(version, b);
    if !in_sync {
        // Resynchronising: only a fully plausible header counts as a record start.
        let need = hl + h.ip_len + h.path_len;
        if b.len() < need && !eof && check_limits(&h, limits, offset).is_ok() {
            return Step::NeedMore;
        }
        if !plausible_header(version, b, limits) {
            return Step::Skip(1);
        }
    }
    if let Err(error) = check_limits(&h, limits, offset) {
        // Rescan from the byte after the separator.
        return Step::Damaged { len: 1, error };
    }
    let total = h.total(version);
    if b.len() < total {
        if !eof {
            return Step::NeedMore;
        }
        let resume = find_plausible(version, b, b.len() - 1, limits);
        let found = resume.unwrap_or(b.len());
        let cause = if resume.is_some() {
            "the next record"
        } else {
            "end of file"
        };
        let error = RecordError::Truncated {
            offset,
            expected: total as u64,
            found: found as u64,
            cause,
        };
        return Step::Damaged { len: found, error };
    }
    // The record must be followed by a plausible record header or the end of the file; if not,
    // a header inside its span means it was cut short (the next record starts within it).
    if b.len() < total + lookahead(version, limits) && !eof {
        return Step::NeedMore;
    }
    if b.len() > total && !plausible_header(version, &b[total..], limits) {
        if let Some(next) = find_plausible(version, b, total - 1, limits) {
            let error = RecordError::Truncated {
                offset,
                expected: total as u64,
                found: next as u64,
                cause: "the next record",
            };
            return Step::Damaged { len: next, error };
        }
        if !has_separator(version) && !plausible_header(version, b, limits) {
            // v0 only (v1/v2 headers start with the separator, framing enough): neither this
            // header nor what follows it looks like a record, so it is garbage.
            let error = RecordError::Implausible { offset };
            return Step::Damaged { len: 1, error };
        }
    }
    let ip = hl..hl + h.ip_len;
    let path = ip.end..ip.end + h.path_len;
    let body = path.end..total;
    Step::Record(Frame {
        len: total,
        timestamp_ms: h.timestamp_ms,
        ip,
        path,
        body,
    })
}

/// Appends one record in the given layout to `out` (the ip is dropped for v0/v1).
/// The caller guarantees the lengths fit the layout's fields.
pub fn encode(
    version: Version,
    out: &mut Vec<u8>,
    timestamp_ms: u64,
    ip: &str,
    path: &str,
    body: &[u8],
) {
    match version {
        Version::V0 => {
            out.extend_from_slice(&(path.len() as u32).to_le_bytes());
            out.extend_from_slice(&(body.len() as u32).to_le_bytes());
            out.extend_from_slice(&timestamp_ms.to_le_bytes());
        }
        Version::V1 => {
            out.push(SEPARATOR);
            out.extend_from_slice(&(path.len() as u16).to_le_bytes());
            out.extend_from_slice(&(body.len() as u32).to_le_bytes());
            out.extend_from_slice(&timestamp_ms.to_le_bytes());
        }
        Version::V2 => return super::encode_v2(out, timestamp_ms, ip, path, body),
    }
    out.extend_from_slice(path.as_bytes());
    out.extend_from_slice(body);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v2(ts: u64, ip: &str, path: &str, body: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        encode(Version::V2, &mut out, ts, ip, path, body);
        out
    }

    #[test]
    fn a_record_needs_the_next_header_or_eof_before_it_is_framed() {
        let rec = v2(1_432_830_425_610, "1.2.3.4", "id/x", b"{}");
        let limits = Limits::default();
        assert_eq!(
            step(Version::V2, &rec, false, 0, true, &limits),
            Step::NeedMore
        );
        let Step::Record(frame) = step(Version::V2, &rec, true, 0, true, &limits) else {
            panic!()
        };
        assert_eq!(frame.len, rec.len());
        assert_eq!(&rec[frame.ip], b"1.2.3.4");
        assert_eq!(&rec[frame.path], b"id/x");
        assert_eq!(&rec[frame.body], b"{}");
        assert_eq!(frame.timestamp_ms, 1_432_830_425_610);
    }

    #[test]
    fn plausibility_rejects_what_real_headers_never_have() {
        let limits = Limits::default();
        assert!(plausible_header(
            Version::V2,
            &v2(1, "1.2.3.4", "id", b"x"),
            &limits
        ));
        assert!(
            !plausible_header(Version::V2, &v2(1, "1.2.3.4", "", b"x"), &limits),
            "empty path"
        );
        assert!(
            !plausible_header(Version::V2, &v2(1 << 50, "", "id", b"x"), &limits),
            "timestamp"
        );
        assert!(
            !plausible_header(Version::V2, &v2(1, "1.2\n", "id", b"x"), &limits),
            "ip"
        );
        assert!(
            !plausible_header(Version::V2, &v2(1, "", "i\u{7}d", b"x"), &limits),
            "control"
        );
        assert!(
            !plausible_header(Version::V2, &v2(1, "", "id", b"x")[..17], &limits),
            "path cut off"
        );
        assert!(
            !plausible_header(Version::V0, &[0u8; 64], &limits),
            "zero run"
        );
    }

    #[test]
    fn garbage_is_skipped_up_to_the_next_separator() {
        let mut bytes = b"junk".to_vec();
        bytes.extend(v2(1, "", "id", b"x"));
        assert_eq!(
            step(Version::V2, &bytes, true, 0, true, &Limits::default()),
            Step::Skip(4)
        );
        // While resynchronising, an implausible header is more garbage, not an error.
        let bad = [
            SEPARATOR, 0, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0, 0, 0, 0, 0, 0, 0, 0, 1,
        ];
        assert_eq!(
            step(Version::V2, &bad, true, 0, false, &Limits::default()),
            Step::Skip(1)
        );
        assert!(matches!(
            step(Version::V2, &bad, true, 7, true, &Limits::default()),
            Step::Damaged {
                len: 1,
                error: RecordError::TooLarge {
                    offset: 7,
                    field: "path",
                    ..
                }
            }
        ));
    }

    #[test]
    fn versions_parse_from_names() {
        for v in Version::ALL {
            assert_eq!(v.as_str().parse::<Version>().unwrap(), v);
        }
        assert!("v3".parse::<Version>().is_err());
    }
}
