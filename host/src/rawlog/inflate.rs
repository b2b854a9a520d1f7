//! Gzip bodies inflated whole by libdeflate: a submission is one buffer in memory, and
//! libdeflate's whole-buffer decoder inflates the 19 KB saved-session ping in about half the
//! time of the streaming zlib-rs decoder (42 vs 80 µs on the reference machine), the largest
//! single cost of converting a ping. Every member of a multi-member body is inflated, as
//! `gzip -d` does, never past the caller's limit.

use std::cell::RefCell;
use std::ptr::NonNull;

use libdeflate_sys::{
    libdeflate_alloc_decompressor, libdeflate_decompressor, libdeflate_free_decompressor,
    libdeflate_gzip_decompress_ex, libdeflate_result_LIBDEFLATE_INSUFFICIENT_SPACE,
    libdeflate_result_LIBDEFLATE_SUCCESS,
};

/// Why a body did not inflate.
#[derive(Debug, PartialEq, Eq)]
pub enum InflateError {
    /// It inflates to more than the limit.
    TooLarge,
    /// It is not valid gzip (bad header, deflate data or checksum, truncated, trailing bytes).
    Invalid,
}

/// The largest expansion deflate can encode (a 258-byte match in under two bits).
const MAX_RATIO: usize = 1032;

/// One libdeflate decompressor (about 10 KiB of tables), reused by its thread.
struct Decompressor(NonNull<libdeflate_decompressor>);

impl Decompressor {
    fn new() -> Decompressor {
        // SAFETY: no preconditions; it answers null only when out of memory.
        let raw = unsafe { libdeflate_alloc_decompressor() };
        Decompressor(NonNull::new(raw).unwrap_or_else(|| {
            std::alloc::handle_alloc_error(std::alloc::Layout::new::<[u8; 1 << 14]>())
        }))
    }

    /// Inflates the first gzip member of `input` into `out`: bytes of input used and of output
    /// written, `Ok(None)` when `out` is too small.
    fn member(
        &mut self,
        input: &[u8],
        out: &mut [u8],
    ) -> Result<Option<(usize, usize)>, InflateError> {
        let (mut used, mut written) = (0usize, 0usize);
        // SAFETY: the decompressor is valid and used by this thread only; `input` and `out` are
        // live buffers of the lengths given, libdeflate reads at most `input.len()` bytes and
        // writes at most `out.len()`, and the two result pointers are valid for writes.
        let result = unsafe {
            libdeflate_gzip_decompress_ex(
                self.0.as_ptr(),
                input.as_ptr().cast(),
                input.len(),
                out.as_mut_ptr().cast(),
                out.len(),
                &mut used,
                &mut written,
            )
        };
        #[allow(non_upper_case_globals)]
        match result {
            libdeflate_result_LIBDEFLATE_SUCCESS => Ok(Some((used, written))),
            libdeflate_result_LIBDEFLATE_INSUFFICIENT_SPACE => Ok(None),
            _ => Err(InflateError::Invalid),
        }
    }
}

impl Drop for Decompressor {
    fn drop(&mut self) {
        // SAFETY: allocated by `libdeflate_alloc_decompressor`, freed once.
        unsafe { libdeflate_free_decompressor(self.0.as_ptr()) }
    }
}

thread_local! {
    static DECOMPRESSOR: RefCell<Decompressor> = RefCell::new(Decompressor::new());
}

/// Inflates every gzip member of `body` (which must be gzip), up to `limit` bytes in all.
pub fn inflate_gzip(body: &[u8], limit: usize) -> Result<Vec<u8>, InflateError> {
    DECOMPRESSOR.with(|d| inflate_with(&mut d.borrow_mut(), body, limit))
}

fn inflate_with(d: &mut Decompressor, body: &[u8], limit: usize) -> Result<Vec<u8>, InflateError> {
    let mut out = Vec::new();
    let mut input = body;
    loop {
        let start = out.len();
        let room = limit - start;
        // The trailer's size is exact for the usual single member; for others, or when it lies,
        // the buffer doubles (up to the limit) and the member is inflated again.
        let mut size = trailer_size(input)
            .min(input.len().saturating_mul(MAX_RATIO))
            .min(room);
        loop {
            if out.is_empty() {
                out = vec![0; size]; // zeroed by the allocator: large buffers are fresh pages
            } else {
                out.resize(start + size, 0);
            }
            match d.member(input, &mut out[start..])? {
                Some((used, written)) => {
                    out.truncate(start + written);
                    input = &input[used..];
                    break;
                }
                None if size < room => size = size.saturating_mul(2).max(4096).min(room),
                None => return Err(InflateError::TooLarge),
            }
        }
        if input.is_empty() {
            return Ok(out);
        }
    }
}

/// The uncompressed size a gzip member's trailer states (of the last member of `input`, modulo
/// 2^32); 0 when `input` is too short to have one.
fn trailer_size(input: &[u8]) -> usize {
    match input.len().checked_sub(4) {
        Some(at) if at >= 14 => {
            u32::from_le_bytes([input[at], input[at + 1], input[at + 2], input[at + 3]]) as usize
        }
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        enc.write_all(data).unwrap();
        enc.finish().unwrap()
    }

    /// flate2's streaming reading of every member, limited as [`inflate_gzip`] is.
    fn streamed(body: &[u8], limit: usize) -> Result<Vec<u8>, InflateError> {
        let mut out = Vec::new();
        flate2::read::MultiGzDecoder::new(body)
            .take(limit as u64 + 1)
            .read_to_end(&mut out)
            .map_err(|_| InflateError::Invalid)?;
        if out.len() > limit {
            return Err(InflateError::TooLarge);
        }
        Ok(out)
    }

    /// Sets the last member's trailer size to `size`, leaving its checksum (so the body still
    /// inflates only if that size was right).
    fn with_trailer_size(mut body: Vec<u8>, size: u32) -> Vec<u8> {
        let at = body.len() - 4;
        body[at..].copy_from_slice(&size.to_le_bytes());
        body
    }

    #[test]
    fn agrees_with_a_streaming_decoder() {
        // ~100 KB of ping-like JSON: compressible, but not one repeated byte.
        let ping: Vec<u8> = (0..4000)
            .map(|i| {
                format!(
                    "\"H_{i}\":{{\"values\":{{\"{}\":{}}}}},",
                    i % 97,
                    i * 31 % 1013
                )
            })
            .collect::<String>()
            .into_bytes();
        let big = gzip(&ping);
        let two = [gzip(b"first "), gzip(&ping)].concat();
        let lying_small = [gzip(&ping), with_trailer_size(gzip(b"x"), 1)].concat();
        let with_empty = [gzip(b"abc"), gzip(b""), gzip(b"def")].concat();
        let mut truncated = big.clone();
        truncated.truncate(big.len() / 2);
        let mut bad_crc = big.clone();
        let at = bad_crc.len() - 6;
        bad_crc[at] ^= 1;
        let cases: Vec<(&str, Vec<u8>)> = vec![
            ("one member", big.clone()),
            ("two members", two),
            (
                "a first member larger than the last trailer says",
                lying_small,
            ),
            ("an empty member between two", with_empty),
            ("only an empty member", gzip(b"")),
            ("truncated", truncated),
            ("bad checksum", bad_crc),
            ("trailing bytes", [big.clone(), b"xyz".to_vec()].concat()),
            ("trailing zeros", [gzip(b"abc"), vec![0; 4]].concat()),
            ("a lone magic", vec![0x1f, 0x8b]),
            ("a header only", gzip(b"")[..10].to_vec()),
        ];
        for (what, body) in &cases {
            for limit in [0, 3, 6, ping.len() - 1, ping.len(), ping.len() + 6, 1 << 22] {
                assert_eq!(
                    inflate_gzip(body, limit),
                    streamed(body, limit),
                    "{what}, limit {limit}"
                );
            }
        }
    }

    #[test]
    fn a_trailer_claiming_more_than_the_limit_is_not_believed() {
        let body = with_trailer_size(gzip(&[b'a'; 1000]), u32::MAX);
        // The size is wrong, so the checksum of the size fails: invalid, not too large.
        assert_eq!(inflate_gzip(&body, 1 << 20), Err(InflateError::Invalid));
        let bomb = gzip(&vec![0; 8 << 20]);
        assert_eq!(inflate_gzip(&bomb, 1 << 20), Err(InflateError::TooLarge));
        assert_eq!(inflate_gzip(&bomb, 8 << 20).map(|v| v.len()), Ok(8 << 20));
    }
}
