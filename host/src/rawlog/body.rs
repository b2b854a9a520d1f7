//! Submission bodies: detect gzip (`1F 8B`) and inflate it with an expansion limit, so a
//! gzip bomb is a typed error instead of an out-of-memory crash. Other bodies pass through
//! unchanged and unallocated.

use std::borrow::Cow;

use super::inflate::InflateError;

/// Default limit on an inflated body (32 MiB). The largest real v4 main ping in the shared
/// data is under 1 MB; gzip expands up to ~1000:1, so a 200 KiB body could otherwise claim
/// 200 MB.
pub const DEFAULT_BODY_LIMIT: usize = 32 * 1024 * 1024;

/// The gzip magic bytes.
const GZIP_MAGIC: [u8; 2] = [0x1F, 0x8B];

/// Why a body could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    /// The body inflates to more than the limit (possibly a gzip bomb).
    #[error("gzip body inflates to more than {limit} bytes")]
    TooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// The body starts like gzip but is not valid gzip (corrupt or truncated).
    #[error("corrupt gzip body: {0}")]
    Gzip(#[source] std::io::Error),
}

/// Whether the body starts with the gzip magic bytes.
pub fn is_gzip(body: &[u8]) -> bool {
    body.starts_with(&GZIP_MAGIC)
}

/// Returns the body, gunzipped when it starts with `1F 8B` (all gzip members, as `gzip -d`),
/// refusing to inflate past `limit` bytes.
pub fn decode_body(body: &[u8], limit: usize) -> Result<Cow<'_, [u8]>, BodyError> {
    if !is_gzip(body) {
        return Ok(Cow::Borrowed(body));
    }
    match super::inflate::inflate_gzip(body, limit) {
        Ok(out) => Ok(Cow::Owned(out)),
        Err(InflateError::TooLarge) => Err(BodyError::TooLarge { limit }),
        Err(InflateError::Invalid) => Err(BodyError::Gzip(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "invalid gzip data (header, deflate stream or checksum), truncated, or followed by other bytes",
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(data).unwrap();
        enc.finish().unwrap()
    }

    #[test]
    fn plain_bodies_are_borrowed() {
        let body = br#"{"ver":1}"#;
        assert!(matches!(decode_body(body, 10).unwrap(), Cow::Borrowed(b) if b == body));
    }

    #[test]
    fn gzip_bodies_are_inflated_up_to_exactly_the_limit() {
        let data = vec![b'x'; 1000];
        let gz = gzip(&data);
        assert_eq!(decode_body(&gz, 1000).unwrap().as_ref(), &data[..]);
        assert!(matches!(
            decode_body(&gz, 999),
            Err(BodyError::TooLarge { limit: 999 })
        ));
    }

    #[test]
    fn concatenated_members_are_all_inflated() {
        let mut gz = gzip(b"abc");
        gz.extend(gzip(b"def"));
        assert_eq!(decode_body(&gz, 100).unwrap().as_ref(), b"abcdef");
    }

    #[test]
    fn corrupt_gzip_is_an_error() {
        let mut gz = gzip(&[b'y'; 5000]);
        gz.truncate(gz.len() / 2);
        assert!(matches!(decode_body(&gz, 1 << 20), Err(BodyError::Gzip(_))));
        assert!(matches!(
            decode_body(&[0x1F, 0x8B], 100),
            Err(BodyError::Gzip(_))
        ));
    }
}
