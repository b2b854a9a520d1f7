//! The raw submission log: what ingest writes and convert reads.
//!
//! Byte layouts v0, v1 and v2 (`docs/formats/raw-log.md`) are read; v2 is
//! written. A v2 record is
//! `0x1E | ip len u8 | path len u16 | data len u32 | timestamp u64 ms | ip | path | data`
//! (little-endian, no file header). Readers resynchronise on `0x1E` after corruption, so a
//! damaged log loses only the damaged record, and report how many bytes they skipped.
//!
//! - [`record`]: the byte layouts and the framing step shared by the reader and version detection.
//! - [`reader`]: [`LogReader`], a streaming reader with resynchronisation, and [`open`].
//! - [`body`]: [`decode_body`], gzip detection and bounded inflation (gzip-bomb safe), by
//!   `inflate` (libdeflate, whole buffers).
//! - [`encode_v2`]: append one v2 record to a buffer; [`encode_v2_head`]: all of it but the body
//!   (ingest's writer writes the body after it uncopied).

pub mod body;
mod inflate;
pub mod logname;
pub mod reader;
pub mod record;

pub use body::{decode_body, BodyError, DEFAULT_BODY_LIMIT};
pub use reader::{open, version_from_file_name, LogReader};
pub use record::{Limits, RecordError, Version, MAX_DATA_BYTES, MAX_PATH_BYTES, SEPARATOR};

/// One submission as stored in a raw log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawRecord {
    /// Milliseconds since the Unix epoch, taken when the server started handling the request.
    pub timestamp_ms: u64,
    /// Client IP (v2 only; empty for v0/v1).
    pub ip: String,
    /// URL path after `/submit/telemetry/` (for other namespaces: after `/submit/`).
    pub path: String,
    /// Request body exactly as received (often gzip).
    pub body: Vec<u8>,
}

/// Appends one v2 record (`0x1E`, 16-byte preamble, ip, path, body) to `out`.
/// Panics never; the caller guarantees `ip.len() <= 255`, `path.len() <= u16::MAX`, `body.len() <= u32::MAX`.
pub fn encode_v2(out: &mut Vec<u8>, timestamp_ms: u64, ip: &str, path: &str, body: &[u8]) {
    out.reserve(16 + ip.len() + path.len() + body.len());
    encode_v2_head(out, timestamp_ms, ip, path, body.len());
    out.extend_from_slice(body);
}

/// Appends everything of a v2 record but its body (`body_len` bytes, which must follow) to `out`:
/// the ingest writer writes the head and the received body with one vectored write, uncopied.
pub fn encode_v2_head(out: &mut Vec<u8>, timestamp_ms: u64, ip: &str, path: &str, body_len: usize) {
    out.reserve(16 + ip.len() + path.len());
    out.push(SEPARATOR);
    out.push(ip.len() as u8);
    out.extend_from_slice(&(path.len() as u16).to_le_bytes());
    out.extend_from_slice(&(body_len as u32).to_le_bytes());
    out.extend_from_slice(&timestamp_ms.to_le_bytes());
    out.extend_from_slice(ip.as_bytes());
    out.extend_from_slice(path.as_bytes());
}
