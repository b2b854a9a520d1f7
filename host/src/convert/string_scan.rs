//! Finds where the plain content of a JSON string stops, eight bytes at a time: the next `"`,
//! `\` or (for validation) control character. Most strings of a ping are keys of 5–40 bytes, too
//! short for a vectorised search's set-up to pay off and long enough that a byte-by-byte loop
//! shows in the profile.

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGH: u64 = 0x8080_8080_8080_8080;

/// High bit set in each byte of `word` that is `"`, `\` or (with `CONTROLS`) below 0x20. The
/// lowest set bit is exact; bits above it may be false positives (borrows), which callers never
/// look at.
#[inline(always)]
fn stops<const CONTROLS: bool>(word: u64) -> u64 {
    let zero_byte = |x: u64| x.wrapping_sub(ONES) & !x;
    let mut found =
        zero_byte(word ^ (ONES * u64::from(b'"'))) | zero_byte(word ^ (ONES * u64::from(b'\\')));
    if CONTROLS {
        found |= word.wrapping_sub(ONES * 0x20) & !word;
    }
    found & HIGH
}

/// The offset of the first `"`, `\` or (with `CONTROLS`) control character at or after `from`.
#[inline]
pub fn next_stop<const CONTROLS: bool>(bytes: &[u8], mut from: usize) -> Option<usize> {
    while let Some(chunk) = bytes.get(from..from + 8) {
        let word = u64::from_le_bytes(chunk.try_into().unwrap_or_default());
        let found = stops::<CONTROLS>(word);
        if found != 0 {
            return Some(from + (found.trailing_zeros() / 8) as usize);
        }
        from += 8;
    }
    bytes
        .get(from..)?
        .iter()
        .position(|&b| b == b'"' || b == b'\\' || (CONTROLS && b < 0x20))
        .map(|at| from + at)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The byte-by-byte answer.
    fn slow(bytes: &[u8], from: usize, controls: bool) -> Option<usize> {
        (from..bytes.len()).find(|&i| {
            let b = bytes[i];
            b == b'"' || b == b'\\' || (controls && b < 0x20)
        })
    }

    #[test]
    fn agrees_with_a_byte_by_byte_search_at_every_position() {
        // Every byte value, at every offset in and across the 8-byte words, behind bytes that
        // provoke borrows (0x00, 0x01, 0x1f, 0x21, 0x5b, 0x5d, 0x80, 0xff) and plain text.
        for stop in 0..=255u8 {
            for before in [b'a', 0x00, 0x01, 0x1f, 0x21, 0x5b, 0x5d, 0x80, 0xff] {
                for at in 0..20 {
                    let mut bytes = vec![b'x'; 24];
                    if at > 0 {
                        bytes[at - 1] = before;
                    }
                    bytes[at] = stop;
                    for from in [0, 1, 3, 8, at] {
                        assert_eq!(
                            next_stop::<true>(&bytes, from),
                            slow(&bytes, from, true),
                            "{bytes:?} from {from}"
                        );
                        assert_eq!(
                            next_stop::<false>(&bytes, from),
                            slow(&bytes, from, false),
                            "{bytes:?} from {from}"
                        );
                    }
                }
            }
        }
        assert_eq!(next_stop::<true>(b"abc", 5), None);
        assert_eq!(next_stop::<true>("é\u{7f}ü\"".as_bytes(), 0), Some(5));
    }
}
