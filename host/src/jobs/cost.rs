//! [`CostReport`]: what a job run read, produced and spent, shown after `job run` and returned by
//! the job service.

use serde::{Deserialize, Serialize};

/// Resource use of one job run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CostReport {
    /// Timely workers (all processes).
    pub workers: usize,
    /// Partition files that matched the filter.
    pub files_matched: u64,
    /// Partition files skipped by the filter (their directories or names did not match).
    pub files_pruned: u64,
    /// Partition files read.
    pub files_read: u64,
    /// Records read (those the sample left out included).
    pub records_read: u64,
    /// The fraction of records sampled (1: every record).
    #[serde(default = "every_record")]
    pub sample: f64,
    /// Records the sample left out: read from the file, never parsed nor handed to the guest.
    #[serde(default)]
    pub records_sampled_out: u64,
    /// Bytes of stored JSON lines read (after decompression).
    pub bytes_read: u64,
    /// Compressed bytes of the files read.
    pub compressed_bytes_read: u64,
    /// Records skipped as bad (with `skip_bad_records`).
    pub bad_records: u64,
    /// Ids of the skipped records (the first 1000).
    pub bad_record_ids: Vec<String>,
    /// Pairs emitted by `map`.
    pub emits: u64,
    /// Bytes of emitted keys and values.
    pub emit_bytes: u64,
    /// `combine` calls.
    pub combine_calls: u64,
    /// `reduce` calls.
    pub reduce_calls: u64,
    /// Output lines.
    pub output_lines: u64,
    /// Output bytes.
    pub output_bytes: u64,
    /// Largest linear memory any guest instance reached (all its memories together), bytes.
    pub peak_guest_memory_bytes: u64,
    /// Most host memory the job's data took at once (its `host_memory_bytes` budget), bytes.
    #[serde(default)]
    pub peak_host_memory_bytes: u64,
    /// Guest instances created (one per worker, plus one after every trap).
    pub instances: u64,
    /// Whether the compiled component came from the cache.
    pub compile_cache_hit: bool,
    /// What the column cache served and stored (`docs/jobs/column-cache.md`).
    #[serde(default)]
    pub column_cache: ColumnCacheCost,
    /// Wall time per phase.
    pub phases: Phases,
    /// `bytes_read` per second of map phase, MB/s (10^6 bytes).
    pub mb_per_s: f64,
}

/// The column cache's part in a run. `bytes_from_cache` counts stored JSON bytes (as
/// `bytes_read` does) whose records came from the cache instead.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ColumnCacheCost {
    /// Whether the run used the cache (off with `--no-column-cache`, the manifest's
    /// `column_cache: false`, or for jobs that want the whole payload).
    pub enabled: bool,
    /// Partition files read from the cache.
    pub hits: u64,
    /// Partition files read as JSON while the cache was on.
    pub misses: u64,
    /// Partition files whose columns this run wrote to the cache.
    pub writes: u64,
    /// Of `bytes_read`, the bytes whose records came from the cache.
    pub bytes_from_cache: u64,
    /// Bytes of cache files read.
    pub cache_file_bytes: u64,
    /// Cache files found unreadable (cut, garbage, another key's), deleted and not used: each
    /// partition file concerned was read as JSON instead.
    #[serde(default)]
    pub bad_files: u64,
}

/// Wall time per phase, milliseconds. Map and reduce are the slowest worker's.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Phases {
    /// Compiling the component (or loading it from the cache).
    pub compile_ms: f64,
    /// Listing and filtering partition files.
    pub list_ms: f64,
    /// Reading, decompressing, extracting, mapping and combining locally.
    pub map_ms: f64,
    /// Grouping by key and reducing.
    pub reduce_ms: f64,
    /// The whole run, compile included.
    pub total_ms: f64,
}

/// `sample` of reports written before sampling existed: every record.
fn every_record() -> f64 {
    1.0
}
