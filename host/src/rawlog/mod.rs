//! The raw submission log: what ingest writes and convert reads.
//!
//! Byte layouts v0, v1 and v2 (seed reference §3) are read; v2 is written. A record is
//! `0x1E | ip len u8 | path len u16 | data len u32 | timestamp u64 ms | ip | path | data`
//! (little-endian). Readers resynchronise on `0x1E` after corruption.
//!
//! INTERFACE CONTRACT (other modules depend on these names; keep them):
//! - [`RawRecord`]
//! - [`encode_v2`]: append one v2 record to a buffer (ingest's writer uses it).
//! - `LogReader<R: Read>`: `Iterator<Item = Result<RawRecord, RecordError>>`, `skipped_bytes()`.
//! - `open(path) -> io::Result<LogReader<..>>` detecting the version.
//! - `decode_body(&[u8], limit) -> Result<Cow<[u8]>, BodyError>`: gunzip when gzip, bounded.

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

/// The v2 record separator.
pub const SEPARATOR: u8 = 0x1E;

/// Appends one v2 record (`0x1E`, 16-byte preamble, ip, path, body) to `out`.
/// Panics never; the caller guarantees `ip.len() <= 255`, `path.len() <= u16::MAX`, `body.len() <= u32::MAX`.
pub fn encode_v2(out: &mut Vec<u8>, timestamp_ms: u64, ip: &str, path: &str, body: &[u8]) {
    out.reserve(16 + ip.len() + path.len() + body.len());
    out.push(SEPARATOR);
    out.push(ip.len() as u8);
    out.extend_from_slice(&(path.len() as u16).to_le_bytes());
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(&timestamp_ms.to_le_bytes());
    out.extend_from_slice(ip.as_bytes());
    out.extend_from_slice(path.as_bytes());
    out.extend_from_slice(body);
}
