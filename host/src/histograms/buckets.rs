//! Bucket lower bounds, by histogram_tools' `linear_buckets` and `exponential_buckets`
//! (docs/formats/histograms.md). Index 0 is always the underflow bucket `0`.

/// Largest bucket count accepted from a definition. Firefox itself later capped histograms at
/// 100 buckets; 2013 files stay far below this. Guards memory and time on hostile input.
pub const MAX_BUCKETS: i64 = 10_000;

/// `r[i] = int((min*(n-1-i) + max*(i-1)) / (n-2) + 0.5)` for `i` in `1..n`, computed in `f64`
/// like Python. Requires `n >= 3`.
pub fn linear(min: i64, max: i64, n: usize) -> Vec<i64> {
    let (fmin, fmax, fden) = (min as f64, max as f64, (n - 2) as f64);
    let mut out = vec![0; n];
    for (i, slot) in out.iter_mut().enumerate().skip(1) {
        let value = (fmin * (n - 1 - i) as f64 + fmax * (i as f64 - 1.0)) / fden;
        *slot = (value + 0.5) as i64;
    }
    out
}

/// Geometric spacing from `min` to `max`, every step at least +1. Requires `n >= 2`, `min >= 1`.
pub fn exponential(min: i64, max: i64, n: usize) -> Vec<i64> {
    let log_max = (max as f64).ln();
    let mut out = vec![0; n];
    let mut current = min;
    if n > 1 {
        out[1] = current;
    }
    for (i, slot) in out.iter_mut().enumerate().skip(2) {
        let log_current = (current as f64).ln();
        let log_ratio = (log_max - log_current) / (n - i) as f64;
        let next = (log_current + log_ratio).exp() + 0.5;
        let next = next.floor() as i64;
        current = if next > current {
            next
        } else {
            current.saturating_add(1)
        };
        *slot = current;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exponential_matches_the_seed_examples() {
        assert_eq!(
            exponential(1, 3000, 10),
            [0, 1, 3, 8, 21, 57, 154, 414, 1114, 3000]
        );
        let b = exponential(1, 10000, 50);
        assert_eq!(&b[..12], &[0, 1, 2, 3, 4, 5, 6, 7, 8, 10, 12, 14]);
        assert_eq!(&b[47..], &[7083, 8416, 10000]);
    }

    #[test]
    fn linear_matches_the_seed_examples() {
        assert_eq!(linear(1, 2, 3), [0, 1, 2]);
        assert_eq!(linear(1, 11, 12), (0..12).collect::<Vec<_>>());
        assert_eq!(&linear(1, 1000, 50)[..6], &[0, 1, 22, 43, 63, 84]);
    }
}
