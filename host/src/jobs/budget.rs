//! [`HostBudget`]: the job's `host_memory_bytes` limit — what the *host* may hold for one job, as
//! opposed to `memory_bytes`, which bounds the guest's linear memory. The executor charges every
//! buffer that grows with what the guest produces: pairs emitted in the running `map-batch`, values
//! waiting for `combine` or `reduce` (local and after the exchange), values returned by `combine`
//! and `reduce`, and the output lines. It releases a charge when the data is handed on or dropped.
//! Going over fails the job with [`HostMemoryExceeded`] (→ `LimitExceeded { what: "host memory
//! (…)" }`) instead of letting the server grow without bound. The figures are estimates of heap
//! use (string bytes with allocator rounding, plus a fixed per-item overhead), not allocator
//! measurements; they err on the high side for the small pairs an emit flood makes.

use super::limits::human_bytes;
use super::JobError;
use std::sync::atomic::{AtomicU64, Ordering};

/// Host bytes counted for one key/value pair or one output line besides its strings' heap: the
/// `String` headers (24 bytes each), the tuple, vector or hash-map slot holding them, and the
/// slack of a vector that grows by doubling.
pub(crate) const ITEM_OVERHEAD: u64 = 96;

/// Heap bytes of a string of `len` bytes: rounded up to the allocator's 16-byte granule, plus its
/// 16-byte chunk header (nothing for an empty string, which does not allocate).
fn heap(len: usize) -> u64 {
    match len {
        0 => 0,
        n => (n as u64).next_multiple_of(16) + 16,
    }
}

/// Estimated host bytes of one `(key, value)` pair.
pub(crate) fn pair_cost(key: &str, value: &str) -> u64 {
    heap(key.len()) + heap(value.len()) + ITEM_OVERHEAD
}

/// Estimated host bytes of one output line.
pub(crate) fn line_cost(line: &str) -> u64 {
    heap(line.len()) + ITEM_OVERHEAD
}

/// A charge that would take the job's host memory over its limit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("host memory limit of {} reached (holding {held} bytes, {wanted} more asked)", human_bytes(*.limit))]
pub struct HostMemoryExceeded {
    /// The job's `host_memory_bytes`.
    pub limit: u64,
    /// Bytes charged when the charge was refused.
    pub held: u64,
    /// The refused charge.
    pub wanted: u64,
}

impl HostMemoryExceeded {
    /// The limit as named in `LimitExceeded::what`: `host memory (64 MiB)`.
    pub fn what(&self) -> String {
        format!("host memory ({})", human_bytes(self.limit))
    }
}

impl From<HostMemoryExceeded> for JobError {
    fn from(e: HostMemoryExceeded) -> Self {
        JobError::LimitExceeded { what: e.what() }
    }
}

/// Bytes the host holds for one job, shared by all its workers (relaxed atomics: a charge is
/// refused as soon as the running total would pass the limit).
#[derive(Debug)]
pub(crate) struct HostBudget {
    limit: u64,
    used: AtomicU64,
    peak: AtomicU64,
}

impl HostBudget {
    /// A budget of `limit` bytes, nothing charged.
    pub fn new(limit: u64) -> Self {
        HostBudget {
            limit,
            used: AtomicU64::new(0),
            peak: AtomicU64::new(0),
        }
    }

    /// Counts `bytes` more, or refuses (counting nothing) if that would pass the limit.
    pub fn charge(&self, bytes: u64) -> Result<(), HostMemoryExceeded> {
        let before = self.used.fetch_add(bytes, Ordering::Relaxed);
        let after = before.saturating_add(bytes);
        if after > self.limit {
            self.used.fetch_sub(bytes, Ordering::Relaxed);
            return Err(HostMemoryExceeded {
                limit: self.limit,
                held: before,
                wanted: bytes,
            });
        }
        self.peak.fetch_max(after, Ordering::Relaxed);
        Ok(())
    }

    /// Counts `bytes` less (data handed on or dropped). Never goes below zero.
    pub fn release(&self, bytes: u64) {
        let _ = self
            .used
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |used| {
                Some(used.saturating_sub(bytes))
            });
    }

    /// Bytes charged now.
    #[cfg(test)]
    pub fn used(&self) -> u64 {
        self.used.load(Ordering::Relaxed)
    }

    /// Most bytes charged at once.
    pub fn peak(&self) -> u64 {
        self.peak.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charges_up_to_the_limit_and_refuses_past_it() {
        let budget = HostBudget::new(1000);
        budget.charge(600).unwrap();
        let err = budget.charge(500).unwrap_err();
        assert_eq!(
            err,
            HostMemoryExceeded {
                limit: 1000,
                held: 600,
                wanted: 500
            }
        );
        assert_eq!(budget.used(), 600, "a refused charge counts nothing");
        budget.charge(400).unwrap();
        assert_eq!((budget.used(), budget.peak()), (1000, 1000));
        budget.release(700);
        budget.charge(500).unwrap();
        assert_eq!((budget.used(), budget.peak()), (800, 1000));
        budget.release(10_000);
        assert_eq!(budget.used(), 0);
    }

    #[test]
    fn the_error_names_the_limit() {
        let err = HostBudget::new(64 << 20).charge(65 << 20).unwrap_err();
        assert_eq!(err.what(), "host memory (64 MiB)");
        let job: JobError = err.into();
        assert_eq!(
            job.to_string(),
            "job exceeded its host memory (64 MiB) limit"
        );
        // Two short strings: a 16-byte granule and a 16-byte header each.
        assert_eq!(pair_cost("ab", "cde"), 64 + ITEM_OVERHEAD);
        assert_eq!(pair_cost("", &"x".repeat(17)), 48 + ITEM_OVERHEAD);
    }
}
