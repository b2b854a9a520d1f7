//! `[jobs]` section of the server configuration: API tokens, upload and queue limits, the share of
//! cores jobs may use, the ceiling on what a job may ask for (`[jobs.max_limits]`), and how long
//! results are kept.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::auth::TokenConfig;
use crate::jobs::limits::MaxLimits;
use crate::jobs::sources::SourceConfig;
use crate::jobs::RuntimeConfig;

/// `[jobs]` section of the server configuration.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct JobsConfig {
    /// Bearer tokens allowed to use `/api/v1`, stored as SHA-256 hashes (`[[jobs.tokens]]`).
    /// With no tokens every job request is refused with 401; ingest is never affected.
    pub tokens: Vec<TokenConfig>,
    /// Largest accepted component upload. Guards memory and the compiler against huge uploads
    /// (a Python guest is ~18 MB, a SpiderMonkey one ~12 MB).
    pub max_component_bytes: u64,
    /// Largest accepted manifest JSON part of an upload.
    pub max_manifest_bytes: u64,
    /// Jobs running at the same time; the rest wait in the queue.
    pub max_concurrent_jobs: usize,
    /// Jobs accepted but not yet finished; beyond this `POST /jobs` answers 503.
    pub max_queued_jobs: usize,
    /// Worker threads one job may use. 0 = one less than the number of cores (at least 1),
    /// so a heavy job always leaves a core to the ingest server.
    pub max_workers_per_job: usize,
    /// Nice value (0–19) of the job threads: the kernel then prefers ingest threads when
    /// both want the CPU.
    pub job_nice: i32,
    /// Also run job threads under Linux's `SCHED_IDLE` policy: a waking ingest thread then
    /// preempts a job at once instead of waiting for the end of its time slice.
    pub job_sched_idle: bool,
    /// Finished jobs and their results are deleted this long after they finish.
    pub result_retention_secs: u64,
    /// How often the retention sweeper looks for expired results.
    pub retention_sweep_secs: u64,
    /// Compiled components (in the data dir's `cache/`) that no retained job references are
    /// deleted, except this many most recently used ones...
    pub cache_keep_unreferenced: usize,
    /// ...as long as those together take at most this many bytes.
    pub cache_max_unreferenced_bytes: u64,
    /// A component uploaded or used less than this long ago is never deleted (covers the time
    /// between `POST /components` and the job that names its hash).
    pub cache_min_age_secs: u64,
    /// Component compilations (uploads, and cached components whose artifact must be rebuilt)
    /// running at once; 0 means half the cores, at least 1.
    pub max_concurrent_compiles: usize,
    /// How long a compile waits for its turn before the upload is refused with a 503.
    pub compile_wait_secs: u64,
    /// Component bytes one token may keep in the compile cache (uploads that add a component).
    pub upload_quota_bytes: u64,
    /// `[jobs.max_limits]`: the most a submitted job's `limits` may ask for; above it the job is
    /// refused with a 400 naming the limit. Missing fields keep their defaults.
    pub max_limits: MaxLimits,
    /// Jobs keep the fields they extract in `columns/` for later runs
    /// (`docs/jobs/column-cache.md`); `false` turns the column cache off.
    pub column_cache: bool,
    /// Most bytes `columns/` may take, least recently used files evicted first; 0 = a tenth of
    /// the free disk at start-up, at most 20 GiB.
    pub column_cache_bytes: u64,
    /// Runs (with their results) kept in each schedule's history (`jobs::schedule`).
    pub schedule_history_runs: usize,
    /// Schedules kept at once; beyond this a scheduled submission answers 503.
    pub max_schedules: usize,
    /// How often due schedules are looked for, in milliseconds.
    pub schedule_tick_ms: u64,
    /// `[jobs.outputs.NAME]`: S3 buckets/prefixes a manifest's `output` may name (`jobs::output`;
    /// the same keys as `[s3]`, validated at load).
    pub outputs: std::collections::BTreeMap<String, crate::s3::S3Config>,
    /// `[jobs.sources.NAME]`: where a manifest's `"source": "NAME"` reads (`kind = "local"` or
    /// `kind = "s3"` with bucket, prefix, endpoint, credentials). Empty: local storage only.
    pub sources: BTreeMap<String, SourceConfig>,
}

impl Default for JobsConfig {
    fn default() -> Self {
        JobsConfig {
            tokens: Vec::new(),
            max_component_bytes: default_max_component_bytes(),
            max_manifest_bytes: 64 * 1024,
            max_concurrent_jobs: 1,
            max_queued_jobs: 1000,
            max_workers_per_job: 0,
            job_nice: 19,
            job_sched_idle: true,
            result_retention_secs: 7 * 24 * 3600,
            retention_sweep_secs: 600,
            cache_keep_unreferenced: 16,
            cache_max_unreferenced_bytes: 1 << 30,
            cache_min_age_secs: 24 * 3600,
            max_concurrent_compiles: 0,
            compile_wait_secs: 60,
            upload_quota_bytes: 1 << 30,
            max_limits: MaxLimits::default(),
            column_cache: true,
            column_cache_bytes: 0,
            schedule_history_runs: 30,
            max_schedules: 100,
            schedule_tick_ms: 1000,
            outputs: Default::default(),
            sources: BTreeMap::new(),
        }
    }
}

fn default_max_component_bytes() -> u64 {
    64 * 1024 * 1024
}

impl JobsConfig {
    /// Rejects settings the job service cannot run with.
    pub fn validate(&self) -> Result<(), String> {
        for token in &self.tokens {
            token.digest().map_err(|e| e.to_string())?;
        }
        if let Some(field) = self.max_limits.zero_field() {
            return Err(format!("jobs.max_limits.{field} must be > 0"));
        }
        if self.schedule_history_runs == 0 || self.max_schedules == 0 || self.schedule_tick_ms == 0
        {
            return Err(
                "jobs.schedule_history_runs, max_schedules and schedule_tick_ms must be > 0".into(),
            );
        }
        crate::jobs::output::validate(&self.outputs)?;
        crate::jobs::sources::validate(&self.sources)?;
        let runtime_max = RuntimeConfig::default().max_memory_bytes;
        if self.max_limits.memory_bytes > runtime_max {
            return Err(format!(
                "jobs.max_limits.memory_bytes ({}) is above the runtime's largest instance memory ({runtime_max})",
                self.max_limits.memory_bytes
            ));
        }
        Ok(())
    }

    /// Compiles at once on this machine (resolves `max_concurrent_compiles = 0`).
    pub fn compile_ceiling(&self) -> usize {
        match self.max_concurrent_compiles {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get() / 2),
            n => n,
        }
        .max(1)
    }

    /// Worker threads a job may use on this machine (resolves `max_workers_per_job = 0`).
    pub fn worker_ceiling(&self) -> usize {
        if self.max_workers_per_job > 0 {
            return self.max_workers_per_job;
        }
        let cores = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1);
        cores.saturating_sub(1).max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_round_trips_through_toml() {
        let text = toml::to_string(&JobsConfig::default()).unwrap();
        let back: JobsConfig = toml::from_str(&text).unwrap();
        assert_eq!(back.max_component_bytes, default_max_component_bytes());
        assert!(back.tokens.is_empty());
    }

    #[test]
    fn tokens_parse_from_toml() {
        let config: JobsConfig = toml::from_str(
            r#"
            max_concurrent_jobs = 2
            [[tokens]]
            name = "alice"
            sha256 = "2bb80d537b1da3e38bd30361aa855686bde0eacd7162fef6a25fe97bf527a25b"
            role = "admin"
            "#,
        )
        .unwrap();
        assert_eq!(config.max_concurrent_jobs, 2);
        assert_eq!(config.tokens[0].name, "alice");
    }

    #[test]
    fn unknown_keys_are_rejected() {
        assert!(toml::from_str::<JobsConfig>("max_jobs = 3").is_err());
        assert!(toml::from_str::<JobsConfig>("[max_limits]\nmemory = 3").is_err());
    }

    #[test]
    fn max_limits_keep_their_own_defaults_and_are_validated() {
        let config: JobsConfig = toml::from_str("[max_limits]\ncall_timeout_ms = 2000").unwrap();
        assert_eq!(config.max_limits.call_timeout_ms, 2000);
        assert_eq!(
            config.max_limits.memory_bytes,
            MaxLimits::default().memory_bytes,
            "not the per-job default"
        );
        assert!(config.validate().is_ok());
        let zero: JobsConfig = toml::from_str("[max_limits]\nwall_time_ms = 0").unwrap();
        assert!(zero
            .validate()
            .unwrap_err()
            .contains("jobs.max_limits.wall_time_ms"));
        let huge: JobsConfig = toml::from_str("[max_limits]\nmemory_bytes = 4294967296").unwrap();
        assert!(huge.validate().unwrap_err().contains("memory_bytes"));
    }

    #[test]
    fn worker_ceiling_leaves_a_core_free() {
        let config = JobsConfig::default();
        let cores = std::thread::available_parallelism().unwrap().get();
        assert_eq!(config.worker_ceiling(), cores.saturating_sub(1).max(1));
        let pinned = JobsConfig {
            max_workers_per_job: 3,
            ..JobsConfig::default()
        };
        assert_eq!(pinned.worker_ceiling(), 3);
    }
}
