//! [`InstanceLimiter`]: the `ResourceLimiter` of one job instance. It keeps the total of *all* the
//! instance's linear memories and of all its tables, not each one alone: a component may define up
//! to 8 memories (a componentize-qjs guest has 3), and a per-memory check would let it hold 8 × the
//! job's `memory_bytes`. Going over the memory total traps with a `Stop::Limit` naming it; a table
//! that would go over the element total just fails to grow (`table.grow` returns -1), as wasm
//! allows.

use super::guest::Stop;
use super::limits::human_bytes;

/// Table elements all tables of one instance may hold together. Guests need a few thousand (one
/// per function address taken); this guards the host against a guest that grows tables to use
/// the host's memory (each element is a pointer-sized host allocation).
pub(crate) const MAX_TABLE_ELEMENTS: usize = 1_000_000;

/// Sums the sizes of every memory and table of one instance against the job's limits.
#[derive(Debug)]
pub(crate) struct InstanceLimiter {
    /// The job's `memory_bytes`: the most all linear memories together may hold.
    memory_limit: u64,
    /// Bytes of all linear memories now.
    memory_total: u64,
    /// Largest `memory_total` seen.
    memory_peak: u64,
    /// Elements of all tables now.
    table_total: usize,
}

impl InstanceLimiter {
    /// A limiter allowing `memory_limit` bytes of linear memory in total.
    pub fn new(memory_limit: u64) -> Self {
        InstanceLimiter {
            memory_limit,
            memory_total: 0,
            memory_peak: 0,
            table_total: 0,
        }
    }

    /// Largest total of linear memory this instance reached, bytes.
    pub fn memory_peak(&self) -> u64 {
        self.memory_peak
    }
}

impl wasmtime::ResourceLimiter for InstanceLimiter {
    /// Called for each memory's initial size (`current` 0) and for every `memory.grow`.
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _max: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let total = (self.memory_total - (current as u64).min(self.memory_total))
            .saturating_add(desired as u64);
        if total > self.memory_limit {
            return Err(Stop::Limit(format!("memory ({})", human_bytes(self.memory_limit))).into());
        }
        self.memory_total = total;
        self.memory_peak = self.memory_peak.max(total);
        Ok(true)
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        _max: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let total = (self.table_total - current.min(self.table_total)).saturating_add(desired);
        if total > MAX_TABLE_ELEMENTS {
            return Ok(false);
        }
        self.table_total = total;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasmtime::ResourceLimiter;

    const MIB: usize = 1 << 20;

    #[test]
    fn memories_are_limited_by_their_sum() {
        let mut l = InstanceLimiter::new(32 << 20);
        // Two memories of 12 MiB fit (24 MiB)…
        assert!(l.memory_growing(0, 12 * MIB, None).unwrap());
        assert!(l.memory_growing(0, 12 * MIB, None).unwrap());
        // …a third memory of 12 MiB would make 36 MiB: refused, though it alone is under 32 MiB.
        let err = l.memory_growing(0, 12 * MIB, None).unwrap_err();
        match err.downcast_ref::<Stop>() {
            Some(Stop::Limit(what)) => assert_eq!(what, "memory (32 MiB)"),
            other => panic!("expected a memory limit stop, got {other:?}"),
        }
        // Growing the first from 12 to 20 MiB brings the total to exactly 32 MiB: allowed.
        assert!(l.memory_growing(12 * MIB, 20 * MIB, None).unwrap());
        assert_eq!(l.memory_peak(), 32 << 20);
        // One page more anywhere is over.
        assert!(l.memory_growing(12 * MIB, 12 * MIB + 65536, None).is_err());
    }

    #[test]
    fn tables_are_limited_by_their_sum() {
        let mut l = InstanceLimiter::new(1 << 30);
        assert!(l.table_growing(0, MAX_TABLE_ELEMENTS / 2, None).unwrap());
        assert!(l.table_growing(0, MAX_TABLE_ELEMENTS / 2, None).unwrap());
        assert!(
            !l.table_growing(0, 1, None).unwrap(),
            "a third table goes over the total"
        );
        assert!(!l
            .table_growing(MAX_TABLE_ELEMENTS / 2, MAX_TABLE_ELEMENTS / 2 + 1, None)
            .unwrap());
    }
}
