//! The `[convert]` section ([`ConvertConfig`]): live conversion, histogram definitions, storage
//! layout; checked by [`ConvertConfig::validate`] before the server has any side effect.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// `[convert]` section.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConvertConfig {
    /// Convert `.finished` raw logs into storage in the background while serving.
    pub enabled: bool,
    /// Background conversion threads, each converting one finished log at a time (the pool is
    /// bounded: finished logs wait on disk, not in memory); 0 = one per CPU core.
    pub workers: usize,
    /// Threads converting the records of one log (stored in order: the output is the same for
    /// any number); 0 = one per CPU core.
    pub threads: usize,
    /// Seconds between scans of `raw/` for finished logs (rotations also wake the pool at once).
    pub scan_interval_secs: u64,
    /// Seconds between flushes of converted storage (finishing open partition files); raw logs are
    /// retired only after the flush that covers them.
    pub flush_secs: u64,
    /// After conversion, keep the raw log in `raw/converted/` (true) or delete it (false).
    pub keep_raw: bool,
    /// `telemetry_schema.json` deciding the storage dimensions; unset means the seed's production schema.
    pub schema: Option<PathBuf>,
    /// Extra Histograms.json directories searched before the embedded definitions (by conversion and
    /// by the `/histograms` endpoints); the seed's cache layout `<dir>/<repo>/<rev>/Histograms.json`.
    pub histogram_dirs: Vec<PathBuf>,
    /// Fetch the Histograms.json of a revision found nowhere else from this URL template
    /// (`{repo}` and `{rev}` are filled in; the seed's source is
    /// `https://hg.mozilla.org/{repo}/raw-file/{rev}/toolkit/components/telemetry/Histograms.json`),
    /// caching it in `histograms/` under the data dir; `"hg"` stands for that URL. Unset: never fetch.
    pub histogram_server: Option<String>,
    /// Timeout of one fetch, in seconds.
    pub histogram_fetch_timeout_secs: u64,
    /// Largest body a gzip submission may inflate to before it is rejected as `corrupted_data`
    /// (the 2013 C++ converter's `max_uncompressed`).
    pub max_uncompressed_bytes: usize,
    /// Codec and level of new partition files: `zstd`, `zstd:LEVEL` (1–22), `xz`, `xz:PRESET`
    /// (0–9).
    pub codec: crate::storage::Codec,
    /// After a fetch fails in a way that may pass (timeout, refused, 5xx), seconds before that
    /// revision is tried again (pings needing it meanwhile are rejected as `missing_histograms`).
    pub histogram_fetch_retry_secs: u64,
    /// How strictly pings are checked: `keep` (default) every valid ping — own definitions,
    /// else each histogram's own parameters, else the nearest definitions, dropping and counting
    /// histograms that do not validate; `nearest` definitions only; or `reject` as the 2013
    /// converter did.
    pub unknown_revision: super::UnknownRevision,
    /// Revisions with definitions the in-memory Histograms.json cache keeps, least recently used
    /// evicted first. Bounds the memory anonymous `/histograms?revision=` lookups and ping
    /// revisions can take.
    pub histogram_cache_entries: usize,
    /// Revisions known to be missing the cache keeps, apart from the ones with definitions (so a
    /// flood of unknown revisions never evicts definitions in use); least recently used first.
    pub histogram_cache_misses: usize,
    /// Fetches from `histogram_server` running at once (one per revision in any case); a lookup
    /// beyond it waits for a slot, up to `histogram_fetch_timeout_secs`, then misses.
    pub histogram_fetch_concurrency: usize,
    /// Longest dimension value (bytes) stored as is in a partition path; a longer one is stored
    /// as `OTHER`.
    pub dimension_max_bytes: usize,
    /// Regular expression a dimension value must match to be stored as is (schema dimensions
    /// allowing `"*"` or a range); other values are stored as `OTHER`. Empty: no pattern.
    pub dimension_pattern: String,
    /// De-duplication by document id: a record whose id was stored within this many days of
    /// submission dates (counting back from the newest seen) is not stored again. The index is
    /// `dedup/ids.redb` under the data dir, shared with `convert`; 0 disables.
    pub dedup_window_days: u32,
}

impl Default for ConvertConfig {
    fn default() -> Self {
        ConvertConfig {
            enabled: true,
            workers: 0,
            threads: 0,
            scan_interval_secs: 5,
            flush_secs: 60,
            keep_raw: true,
            schema: None,
            histogram_dirs: Vec::new(),
            histogram_server: None,
            histogram_fetch_timeout_secs: 10,
            max_uncompressed_bytes: crate::rawlog::DEFAULT_BODY_LIMIT,
            codec: crate::storage::Codec::Zstd { level: 3 },
            histogram_fetch_retry_secs: 300,
            unknown_revision: super::UnknownRevision::Keep,
            histogram_cache_entries: crate::histograms::DEFAULT_CACHE_ENTRIES,
            histogram_cache_misses: crate::histograms::DEFAULT_CACHE_MISSES,
            histogram_fetch_concurrency: crate::histograms::DEFAULT_FETCH_CONCURRENCY,
            dimension_max_bytes: crate::storage::DEFAULT_DIMENSION_MAX_BYTES,
            dimension_pattern: crate::storage::DEFAULT_DIMENSION_PATTERN.to_string(),
            dedup_window_days: 7,
        }
    }
}

impl ConvertConfig {
    /// Where Histograms.json files come from.
    pub fn definition_sources(&self) -> super::DefinitionSources {
        super::DefinitionSources {
            dirs: self.histogram_dirs.clone(),
            server: self.histogram_server.clone(),
            timeout: std::time::Duration::from_secs(self.histogram_fetch_timeout_secs),
            retry_after: std::time::Duration::from_secs(self.histogram_fetch_retry_secs),
            cache_entries: self.histogram_cache_entries,
            cache_misses: self.histogram_cache_misses,
            fetch_concurrency: self.histogram_fetch_concurrency,
        }
    }
}

impl ConvertConfig {
    /// [`ConvertConfig::workers`] with 0 resolved to the number of CPU cores.
    pub fn workers(&self) -> usize {
        match self.workers {
            0 => super::default_threads(),
            n => n,
        }
    }

    /// [`ConvertConfig::threads`] with 0 resolved to the number of CPU cores.
    pub fn threads(&self) -> usize {
        match self.threads {
            0 => super::default_threads(),
            n => n,
        }
    }

    /// The dimension value policy (length cap and pattern), ready to use.
    pub fn dimension_policy(&self) -> Result<crate::storage::ValuePolicy, String> {
        crate::storage::ValuePolicy::new(self.dimension_max_bytes, &self.dimension_pattern)
            .map_err(|e| format!("convert.dimension_pattern: {e}"))
    }

    /// Rejects values conversion cannot run with.
    pub fn validate(&self) -> Result<(), String> {
        if self.max_uncompressed_bytes == 0 {
            return Err("convert.max_uncompressed_bytes must be > 0".into());
        }
        if self.histogram_cache_entries == 0
            || self.histogram_cache_misses == 0
            || self.histogram_fetch_concurrency == 0
        {
            return Err("convert.histogram_cache_entries, histogram_cache_misses and histogram_fetch_concurrency must be > 0".into());
        }
        if self.dimension_max_bytes == 0 {
            return Err("convert.dimension_max_bytes must be > 0".into());
        }
        self.dimension_policy()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workers_default_to_one_per_core() {
        let config = ConvertConfig::default();
        assert_eq!(config.workers, 0);
        assert_eq!(config.workers(), super::super::default_threads());
        assert!(config.validate().is_ok());
        assert_eq!(
            ConvertConfig {
                workers: 3,
                ..config
            }
            .workers(),
            3
        );
    }
}
