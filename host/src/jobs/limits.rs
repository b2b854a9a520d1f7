//! [`Limits`]: what one job may use. Every limit has a default that suits real jobs; going over one
//! stops the job with [`JobError::LimitExceeded`](super::JobError::LimitExceeded) naming it.
//! [`MaxLimits`]: the server's ceiling on what a submitted job may ask for (`[jobs.max_limits]`);
//! an ask above it is refused with a [`LimitTooHigh`] per limit, never silently lowered.

use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Per-job resource limits (serialised as JSON/TOML with these field names; missing fields take
/// their defaults).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Linear memory of one guest instance (one per worker), all its memories together, bytes.
    /// Default 256 MiB.
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
    /// Host (server) memory the job's data may take, all workers together: pairs being emitted,
    /// values waiting for `combine`/`reduce`, their results and the output. Default 1 GiB.
    pub host_memory_bytes: u64,
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
            host_memory_bytes: 1 << 30,
        }
    }
}

impl Limits {
    /// These limits with the fields named in `fields` replaced; an unknown field or a value that is
    /// not a non-negative integer is an error.
    pub fn overlay(
        &self,
        fields: serde_json::Map<String, serde_json::Value>,
    ) -> Result<Limits, serde_json::Error> {
        let mut merged = serde_json::to_value(self)?;
        if let Some(base) = merged.as_object_mut() {
            base.extend(fields);
        }
        serde_json::from_value(merged)
    }

    /// Every limit as `(field name, value)`, in declaration order.
    pub fn fields(&self) -> [(&'static str, u64); 8] {
        [
            ("memory_bytes", self.memory_bytes),
            ("call_timeout_ms", self.call_timeout_ms),
            ("wall_time_ms", self.wall_time_ms),
            ("emit_count", self.emit_count),
            ("emit_bytes", self.emit_bytes),
            ("output_bytes", self.output_bytes),
            ("log_bytes", self.log_bytes),
            ("host_memory_bytes", self.host_memory_bytes),
        ]
    }

    pub(crate) fn call_timeout(&self) -> Duration {
        Duration::from_millis(self.call_timeout_ms)
    }
    pub(crate) fn wall_time(&self) -> Duration {
        Duration::from_millis(self.wall_time_ms)
    }
}

/// The most a submitted job may ask for, per limit (`[jobs.max_limits]`): a [`Limits`] with its
/// own defaults, which fields missing from the configuration keep.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct MaxLimits(pub Limits);

impl Default for MaxLimits {
    /// Memory 1 GiB (the runtime's largest instance memory; it cannot be raised above that),
    /// call time 60 s, wall time 6 h, 1e10 emits, 64 GiB emitted, 1 GiB output (results are kept
    /// on the server's disk), 16 MiB log (kept in the job record), 4 GiB host memory.
    fn default() -> Self {
        MaxLimits(Limits {
            memory_bytes: 1 << 30,
            call_timeout_ms: 60_000,
            wall_time_ms: 6 * 3_600_000,
            emit_count: 10_000_000_000,
            emit_bytes: 64 << 30,
            output_bytes: 1 << 30,
            log_bytes: 16 << 20,
            host_memory_bytes: 4 << 30,
        })
    }
}

impl<'de> Deserialize<'de> for MaxLimits {
    /// The given fields over [`MaxLimits::default`] (not over the per-job defaults).
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let fields = serde_json::Map::deserialize(deserializer)?;
        MaxLimits::default()
            .0
            .overlay(fields)
            .map(MaxLimits)
            .map_err(serde::de::Error::custom)
    }
}

impl std::ops::Deref for MaxLimits {
    type Target = Limits;
    fn deref(&self) -> &Limits {
        &self.0
    }
}

impl std::ops::DerefMut for MaxLimits {
    fn deref_mut(&mut self) -> &mut Limits {
        &mut self.0
    }
}

/// One limit a job asked for above the server's maximum.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitTooHigh {
    /// The field (`memory_bytes`, …, or `workers`).
    pub limit: &'static str,
    /// What the job asked for.
    pub asked: u64,
    /// The server's maximum.
    pub max: u64,
    /// The configuration key that sets the maximum.
    pub config_key: String,
}

impl std::fmt::Display for LimitTooHigh {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let shown = |n: u64| {
            if self.limit.ends_with("_bytes") && human_bytes(n) != format!("{n} bytes") {
                format!("{n} ({})", human_bytes(n))
            } else {
                n.to_string()
            }
        };
        write!(
            f,
            "{} = {} is above this server's maximum of {} ({})",
            self.limit,
            shown(self.asked),
            shown(self.max),
            self.config_key
        )
    }
}

impl MaxLimits {
    /// The built-in defaults, each lowered to its maximum: what a job that asks for nothing gets.
    pub fn defaults(&self) -> Limits {
        let d = Limits::default();
        Limits {
            memory_bytes: d.memory_bytes.min(self.memory_bytes),
            call_timeout_ms: d.call_timeout_ms.min(self.call_timeout_ms),
            wall_time_ms: d.wall_time_ms.min(self.wall_time_ms),
            emit_count: d.emit_count.min(self.emit_count),
            emit_bytes: d.emit_bytes.min(self.emit_bytes),
            output_bytes: d.output_bytes.min(self.output_bytes),
            log_bytes: d.log_bytes.min(self.log_bytes),
            host_memory_bytes: d.host_memory_bytes.min(self.host_memory_bytes),
        }
    }

    /// Every limit of `limits` above its maximum (empty when all fit).
    pub fn check(&self, limits: &Limits) -> Vec<LimitTooHigh> {
        limits
            .fields()
            .into_iter()
            .zip(self.0.fields())
            .filter(|((_, asked), (_, max))| asked > max)
            .map(|((limit, asked), (_, max))| LimitTooHigh {
                limit,
                asked,
                max,
                config_key: format!("jobs.max_limits.{limit}"),
            })
            .collect()
    }

    /// The first field that is zero (a maximum of 0 would refuse every job), if any.
    pub fn zero_field(&self) -> Option<&'static str> {
        self.0
            .fields()
            .into_iter()
            .find(|(_, v)| *v == 0)
            .map(|(name, _)| name)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_fit_under_the_default_ceiling() {
        let max = MaxLimits::default();
        assert!(max.check(&Limits::default()).is_empty());
        assert_eq!(max.defaults(), Limits::default());
    }

    #[test]
    fn asks_above_the_ceiling_are_named_with_value_and_maximum() {
        let mut max = MaxLimits::default();
        (max.memory_bytes, max.call_timeout_ms) = (64 << 20, 5_000);
        let asked = Limits {
            memory_bytes: 128 << 20,
            wall_time_ms: 1,
            ..max.defaults()
        };
        let over = max.check(&asked);
        assert_eq!(over.len(), 1, "{over:?}");
        assert_eq!(
            (over[0].limit, over[0].asked, over[0].max),
            ("memory_bytes", 128 << 20, 64 << 20)
        );
        assert_eq!(
            over[0].to_string(),
            "memory_bytes = 134217728 (128 MiB) is above this server's maximum of 67108864 (64 MiB) \
             (jobs.max_limits.memory_bytes)"
        );
        // Defaults above a lowered maximum are lowered to it, so a job asking nothing still fits.
        assert_eq!(max.defaults().call_timeout_ms, 5_000);
        assert!(max.check(&max.defaults()).is_empty());
    }
}
