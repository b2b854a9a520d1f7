//! The `[ingest]` section ([`IngestConfig`]): raw logs, durability, rotation, overload; checked
//! by [`IngestConfig::validate`] before the server has any side effect.

use serde::{Deserialize, Serialize};

/// When a submission is acknowledged relative to the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Durability {
    /// One `fdatasync` per request before its 200. Slowest; simplest promise.
    Always,
    /// Group commit: one `fdatasync` covers every request that arrived while the previous one ran;
    /// every 200 follows the sync that covers its record. The default.
    Batch,
    /// 200 once the record is written to the log file (page cache): survives a process crash, not a
    /// power loss or kernel crash.
    None,
}

impl std::str::FromStr for Durability {
    type Err = String;
    /// `always`, `batch` or `none` (as in `ingest.durability`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "always" => Ok(Durability::Always),
            "batch" => Ok(Durability::Batch),
            "none" => Ok(Durability::None),
            other => Err(format!(
                "unknown durability {other:?} (expected always, batch or none)"
            )),
        }
    }
}

/// `[ingest]` section.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IngestConfig {
    /// `always | batch | none` (see [`Durability`]).
    pub durability: Durability,
    /// Number of writer shards, each with its own log file and writer thread; 0 means one per CPU.
    /// Fewer shards make larger batches (fewer writes and syncs); more let writes and syncs of
    /// different files run in parallel.
    pub shards: usize,
    /// Rotate a log once it holds at least this many bytes.
    pub max_log_size: u64,
    /// Rotate a non-empty log this many milliseconds after its first record, busy or not.
    pub max_log_age_ms: u64,
    /// Base of raw log names: `<base>.v2.<host>.<pid>_<shard>.<ms>`, then `.finished`.
    pub log_base: String,
    /// Submissions per shard that may be writing or waiting for their sync; beyond
    /// `shards × queue_capacity` requests get 503 (overload).
    pub queue_capacity: usize,
}

impl Default for IngestConfig {
    fn default() -> Self {
        IngestConfig {
            durability: Durability::Batch,
            shards: 0,
            max_log_size: 64 * 1024 * 1024,
            max_log_age_ms: 60_000,
            log_base: "telemetry.log".to_string(),
            queue_capacity: 4096,
        }
    }
}

impl IngestConfig {
    /// The number of shards to run (`shards`, or when 0 the CPU count).
    pub fn shard_count(&self) -> usize {
        if self.shards > 0 {
            self.shards
        } else {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        }
    }

    /// Rejects values the writers cannot run with.
    pub fn validate(&self) -> Result<(), String> {
        if self.max_log_size == 0 || self.max_log_age_ms == 0 {
            return Err("ingest.max_log_size and ingest.max_log_age_ms must be > 0".into());
        }
        if self.queue_capacity == 0 {
            return Err("ingest.queue_capacity must be > 0".into());
        }
        if self.log_base.is_empty() || self.log_base.contains('/') {
            return Err("ingest.log_base must be a plain file name".into());
        }
        Ok(())
    }
}
