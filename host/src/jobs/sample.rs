//! [`Sample`]: which records a sampled job run reads. The host decides from the document id
//! alone, before the record is parsed or any guest is called, so the same records are chosen on
//! every run, by every worker count and on every machine.
//!
//! The rule, reproducible anywhere: a record is kept when the 64-bit FNV-1a hash of its id's
//! bytes, as an unsigned integer, is below `fraction × 2^64` (every record when the fraction is 1).

use thiserror::Error;

/// A fraction of the records, chosen by a stable hash of the document id.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    fraction: f64,
    /// Ids hashing below this are kept; `None` keeps everything.
    below: Option<u64>,
}

/// A sample fraction outside (0, 1].
#[derive(Debug, Error, PartialEq)]
#[error("sample must be a fraction in (0, 1], e.g. 0.01 for 1 %; got {0}")]
pub struct BadSample(pub f64);

impl Sample {
    /// Every record.
    pub const ALL: Sample = Sample {
        fraction: 1.0,
        below: None,
    };

    /// A sample of `fraction` of the records (0 < fraction ≤ 1).
    pub fn new(fraction: f64) -> Result<Sample, BadSample> {
        if !(fraction > 0.0 && fraction <= 1.0) {
            return Err(BadSample(fraction));
        }
        let below = (fraction < 1.0).then(|| (fraction * 2f64.powi(64)) as u64);
        Ok(Sample { fraction, below })
    }

    /// The fraction asked for (1 for every record).
    pub fn fraction(&self) -> f64 {
        self.fraction
    }

    /// Whether the record with this document id is read.
    pub fn keeps(&self, id: &[u8]) -> bool {
        self.below.is_none_or(|below| fnv1a64(id) < below)
    }

    /// Whether the stored line `id<TAB>json` is read (its id is everything before the tab).
    pub fn keeps_line(&self, line: &[u8]) -> bool {
        if self.below.is_none() {
            return true;
        }
        let id_end = memchr::memchr(b'\t', line).unwrap_or(line.len());
        self.keeps(&line[..id_end])
    }
}

impl Default for Sample {
    fn default() -> Self {
        Sample::ALL
    }
}

/// 64-bit FNV-1a.
fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The published FNV-1a 64 test vectors, so the rule in the module docs can be reproduced
    /// by any other tool.
    #[test]
    fn the_hash_is_fnv1a_64() {
        assert_eq!(fnv1a64(b""), 0xcbf29ce484222325);
        assert_eq!(fnv1a64(b"a"), 0xaf63dc4c8601ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x85944171f73967e8);
    }

    #[test]
    fn fractions_outside_zero_to_one_are_refused() {
        for bad in [0.0, -0.5, 1.0001, f64::NAN, f64::INFINITY] {
            assert!(Sample::new(bad).is_err(), "{bad}");
        }
        assert!(Sample::new(1.0).unwrap().keeps(b"anything"));
    }

    /// About the fraction asked for is kept, the same ids every time, and a smaller sample is
    /// a subset of a larger one.
    #[test]
    fn samples_are_stable_nested_and_near_their_fraction() {
        let ids: Vec<String> = (0..20_000)
            .map(|i| format!("{:08x}-4d3c-4b2a-9f8e-{i:012x}", i * 7919))
            .collect();
        let tenth = Sample::new(0.1).unwrap();
        let half = Sample::new(0.5).unwrap();
        let kept: Vec<&String> = ids.iter().filter(|id| tenth.keeps(id.as_bytes())).collect();
        let share = kept.len() as f64 / ids.len() as f64;
        assert!((0.09..0.11).contains(&share), "{share}");
        assert!(kept.iter().all(|id| half.keeps(id.as_bytes())));
        let again: Vec<&String> = ids.iter().filter(|id| tenth.keeps(id.as_bytes())).collect();
        assert_eq!(kept, again);
        let line = format!("{}\t{{\"a\":1}}", kept[0]);
        assert!(tenth.keeps_line(line.as_bytes()));
    }
}
