//! The column cache's Prometheus metrics (`telemetry_jobs_column_cache_*`): its counters
//! ([`super::CacheStats`]) and, brought up to date at every scrape, the bytes it takes and its
//! budget.

use std::sync::Arc;

use prometheus_client::metrics::gauge::Gauge;

use super::ColumnCache;
use crate::metrics::Registry;

/// Registers `cache`'s metrics in `registry` (once, at start-up).
pub fn register(cache: &Arc<ColumnCache>, registry: &Registry) {
    let s = &cache.stats;
    for (name, help, counter) in [
        (
            "jobs_column_cache_hits",
            "Partition files a job read from the column cache",
            &s.hits,
        ),
        (
            "jobs_column_cache_misses",
            "Partition files a job read as JSON because a column was not cached",
            &s.misses,
        ),
        (
            "jobs_column_cache_read_bytes",
            "Bytes of column cache files read by hits",
            &s.bytes_read,
        ),
        (
            "jobs_column_cache_writes",
            "Partition files whose columns were written to the cache",
            &s.writes,
        ),
        (
            "jobs_column_cache_written_bytes",
            "Bytes of column cache files written",
            &s.bytes_written,
        ),
        (
            "jobs_column_cache_write_errors",
            "Column cache writes that failed (the job went on without caching the file)",
            &s.write_errors,
        ),
        (
            "jobs_column_cache_bad_files",
            "Column cache files found unreadable (cut, garbage, another key's) and deleted",
            &s.bad_files,
        ),
        (
            "jobs_column_cache_evicted_files",
            "Column cache files deleted to keep jobs.column_cache_bytes",
            &s.evicted_files,
        ),
        (
            "jobs_column_cache_evicted_bytes",
            "Bytes of column cache files deleted to keep jobs.column_cache_bytes",
            &s.evicted_bytes,
        ),
    ] {
        registry.register(name, help, counter.clone());
    }
    let used = Gauge::<i64>::default();
    let budget = Gauge::<i64>::default();
    registry.register(
        "jobs_column_cache_bytes",
        "Bytes the column cache takes on disk",
        used.clone(),
    );
    registry.register(
        "jobs_column_cache_budget_bytes",
        "The column cache's byte budget (jobs.column_cache_bytes, or its default)",
        budget.clone(),
    );
    let cache = Arc::downgrade(cache);
    registry.on_scrape(move || {
        if let Some(cache) = cache.upgrade() {
            used.set(i64::try_from(cache.used_bytes()).unwrap_or(i64::MAX));
            budget.set(i64::try_from(cache.budget()).unwrap_or(i64::MAX));
        }
    });
}
