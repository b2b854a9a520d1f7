//! [`Limits`]: what one job may use. Every limit has a default that suits real jobs; going over one
//! stops the job with [`JobError::LimitExceeded`](super::JobError::LimitExceeded) naming it.

use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Per-job resource limits (serialised as JSON/TOML with these field names; missing fields take
/// their defaults).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Linear memory of one guest instance (one per worker), bytes. Default 256 MiB.
    pub memory_bytes: u64,
    /// Wall time of one guest call (`map-batch`, `combine`, `reduce`), milliseconds. Default 10 s.
    pub call_timeout_ms: u64,
    /// Wall time of the whole job, milliseconds. Default 1 hour.
    pub wall_time_ms: u64,
    /// Pairs emitted by `map` over the whole job. Default 1e9.
    pub emit_count: u64,
    /// Bytes of keys + values emitted over the whole job. Default 16 GiB.
    pub emit_bytes: u64,
    /// Bytes of the final output. Default 256 MiB.
    pub output_bytes: u64,
    /// Bytes of job log (guest `log`, stdout, stderr) kept; the rest is dropped with a note.
    /// Default 1 MiB.
    pub log_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            memory_bytes: 256 << 20,
            call_timeout_ms: 10_000,
            wall_time_ms: 3_600_000,
            emit_count: 1_000_000_000,
            emit_bytes: 16 << 30,
            output_bytes: 256 << 20,
            log_bytes: 1 << 20,
        }
    }
}

impl Limits {
    pub(crate) fn call_timeout(&self) -> Duration {
        Duration::from_millis(self.call_timeout_ms)
    }
    pub(crate) fn wall_time(&self) -> Duration {
        Duration::from_millis(self.wall_time_ms)
    }
}

/// Formats a byte count for limit messages (`256 MiB`).
pub(crate) fn human_bytes(n: u64) -> String {
    if n >= 1 << 30 && n.is_multiple_of(1 << 30) {
        format!("{} GiB", n >> 30)
    } else if n >= 1 << 20 && n.is_multiple_of(1 << 20) {
        format!("{} MiB", n >> 20)
    } else {
        format!("{n} bytes")
    }
}
