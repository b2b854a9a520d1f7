//! Live conversion: a bounded pool of threads converting `.finished` raw logs into storage.
//!
//! The queue is the `raw/` directory itself: writers announce each log they finish, and a scanner
//! thread lists `raw/` every `scan_interval_secs` to pick up logs left by earlier runs or missed
//! announcements. Only names are held in memory, so a slow converter makes finished logs wait on
//! disk (visible as `telemetry_convert_pending_logs`), never grows memory. Each worker owns one
//! converter.
//!
//! Converted records sit in open partition files until the worker flushes (every `flush_secs`, and
//! on stop), which finishes those files under their final names. Only then do the raw logs they came
//! from move to `raw/converted/` (or get deleted when `keep_raw` is off): a crash before the flush
//! leaves them `.finished` in `raw/`, so they are converted again at the next start and nothing is
//! lost (records in partition files finished before the crash would then be stored twice, but the dedup
//! index below counts them as duplicates). The files
//! the crash left `.partial` hold only records of such logs; the next start moves them aside
//! (`storage::stale`). A log that keeps failing as a whole moves to `raw/failed/` so it is not
//! retried forever.
//!
//! With `dedup_window_days` > 0 every worker's pipeline shares one [`DedupIndex`]: the ids of the
//! records in partition files are committed to it as the files are published (same flush points),
//! so records of a log converted again after a crash are counted as duplicates, not stored twice.

use std::collections::{BTreeSet, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use cap_std::fs::Dir;

use super::config::ConvertConfig;
use super::metrics::{BadTypeLabel, ConvertMetrics, ValidationLabel};
use crate::convert::{ConvertSummary, Converter, DedupIndex, Pipeline};
use crate::rawlog::logname::is_finished_log;
use crate::storage::{DataDir, WriterOptions};

pub use crate::storage::datadir::{CONVERTED_DIR, FAILED_DIR};

/// One worker's converter: converts whole raw logs into storage and the error stream.
pub trait LogConverter: Send {
    /// Converts the raw log at `path`; `Err` means the log as a whole could not be converted.
    fn convert_log(&mut self, path: &Path) -> Result<ConvertSummary, String>;
    /// Makes everything converted so far durable and visible (finishes open partition files).
    fn flush(&mut self) -> Result<(), String>;
    /// Opens the dedup index this converter's storage needs (called on one converter of the
    /// pool); `None` when it keeps none.
    fn open_dedup(&self, _window_days: u32) -> Result<Option<Arc<DedupIndex>>, String> {
        Ok(None)
    }
    /// Uses `index` (shared by all workers) for every record converted from now on.
    fn set_dedup(&mut self, _index: Arc<DedupIndex>) {}
}

/// Makes one converter per worker.
pub type ConverterFactory = Arc<dyn Fn() -> Result<Box<dyn LogConverter>, String> + Send + Sync>;

#[derive(Default)]
struct Queue {
    pending: BTreeSet<String>,
    taken: HashSet<String>,
    /// Failed attempts per log; a log is put aside after [`MAX_ATTEMPTS`].
    failures: std::collections::HashMap<String, u32>,
    stop: bool,
}

/// Attempts before a raw log that keeps failing (not just its bad records) is moved to `raw/failed/`.
/// Failures such as a full disk are retried at the next scan.
const MAX_ATTEMPTS: u32 = 3;

struct Shared {
    queue: Mutex<Queue>,
    wake: Condvar,
    raw: Dir,
    raw_path: PathBuf,
    log_base: String,
    keep_raw: bool,
    flush_every: Duration,
    metrics: ConvertMetrics,
    /// The workers' shared dedup index, for its size metric.
    dedup: Option<Arc<DedupIndex>>,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn add(&self, names: impl IntoIterator<Item = String>) {
        let mut queue = self.lock();
        for name in names {
            if !queue.taken.contains(&name) {
                queue.pending.insert(name);
            }
        }
        self.metrics
            .pending_logs
            .set((queue.pending.len() + queue.taken.len()) as i64);
        drop(queue);
        self.wake.notify_all();
    }

    fn scan(&self) -> std::io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in self.raw.entries()? {
            let entry = entry?;
            if let Some(name) = entry.file_name().to_str() {
                if is_finished_log(&self.log_base, name) {
                    names.push(name.to_string());
                }
            }
        }
        Ok(names)
    }
}

/// The running pool.
pub struct ConvertPool {
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
}

impl ConvertPool {
    /// Starts [`ConvertConfig::workers`] converter threads and the scanner over `raw` (found at `raw_path`).
    pub fn start(
        raw: &Dir,
        raw_path: PathBuf,
        log_base: &str,
        config: &ConvertConfig,
        metrics: ConvertMetrics,
        factory: ConverterFactory,
    ) -> std::io::Result<ConvertPool> {
        raw.create_dir_all(CONVERTED_DIR)?;
        raw.create_dir_all(FAILED_DIR)?;
        let workers = config.workers();
        let mut converters = Vec::with_capacity(workers);
        for _ in 0..workers {
            converters.push(factory().map_err(std::io::Error::other)?);
        }
        let mut dedup = None;
        if config.dedup_window_days > 0 {
            if let Some(first) = converters.first() {
                dedup = first
                    .open_dedup(config.dedup_window_days)
                    .map_err(std::io::Error::other)?;
            }
        }
        if let Some(index) = &dedup {
            for converter in &mut converters {
                converter.set_dedup(index.clone());
            }
            metrics.dedup_entries.set(index.entries() as i64);
        }
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue::default()),
            wake: Condvar::new(),
            raw: raw.try_clone()?,
            raw_path,
            log_base: log_base.to_string(),
            keep_raw: config.keep_raw,
            flush_every: Duration::from_secs(config.flush_secs),
            metrics,
            dedup,
        });
        shared.add(shared.scan()?);
        let mut threads = Vec::new();
        for (index, converter) in converters.into_iter().enumerate() {
            let shared = shared.clone();
            threads.push(
                std::thread::Builder::new()
                    .name(format!("convert-{index}"))
                    .spawn(move || work(&shared, converter))?,
            );
        }
        let interval = Duration::from_secs(config.scan_interval_secs.max(1));
        let scanner = shared.clone();
        threads.push(
            std::thread::Builder::new()
                .name("convert-scan".into())
                .spawn(move || scan_loop(&scanner, interval))?,
        );
        Ok(ConvertPool { shared, threads })
    }

    /// A callback for the writers that queues each finished log.
    pub fn notifier(&self) -> crate::rawlog::logname::OnFinished {
        let shared = Arc::downgrade(&self.shared);
        Arc::new(move |name: &str| {
            if let Some(shared) = shared.upgrade() {
                shared.add([name.to_string()]);
            }
        })
    }

    /// A probe giving the age in seconds of the oldest log waiting for or in conversion
    /// (0 when none; the backlog age metric). Computed from the names when called.
    pub fn backlog_age_probe(&self) -> impl Fn() -> u64 + Send + Sync + 'static {
        let shared = Arc::downgrade(&self.shared);
        move || {
            let Some(shared) = shared.upgrade() else {
                return 0;
            };
            let queue = shared.lock();
            let oldest = queue
                .pending
                .iter()
                .chain(queue.taken.iter())
                .filter_map(|name| crate::rawlog::logname::created_ms(name))
                .min();
            drop(queue);
            oldest.map_or(0, |ms| {
                crate::rawlog::logname::now_ms().saturating_sub(ms) / 1000
            })
        }
    }

    /// Lets each worker finish the log it is converting, flushes the converters and joins the threads.
    /// Logs still waiting stay in `raw/` for the next start.
    pub fn stop(self) {
        self.shared.lock().stop = true;
        self.shared.wake.notify_all();
        for thread in self.threads {
            if thread.join().is_err() {
                tracing::error!("a conversion thread panicked");
            }
        }
    }
}

fn scan_loop(shared: &Shared, interval: Duration) {
    let mut queue = shared.lock();
    let mut last = std::time::Instant::now();
    while !queue.stop {
        queue = shared
            .wake
            .wait_timeout(queue, interval)
            .unwrap_or_else(|e| e.into_inner())
            .0;
        if queue.stop {
            break;
        }
        if last.elapsed() < interval {
            continue; // woken by an announcement, not by the timer
        }
        last = std::time::Instant::now();
        drop(queue);
        match shared.scan() {
            Ok(names) => shared.add(names),
            Err(err) => tracing::warn!(error = %err, "cannot list raw logs"),
        }
        queue = shared.lock();
    }
}

fn work(shared: &Shared, mut converter: Box<dyn LogConverter>) {
    // Converted logs whose records are not yet in finished partition files.
    let mut unflushed: Vec<String> = Vec::new();
    let mut last_flush = std::time::Instant::now();
    loop {
        let (name, stop) = {
            let mut queue = shared.lock();
            loop {
                if queue.stop {
                    break (None, true);
                }
                if let Some(name) = queue.pending.pop_first() {
                    queue.taken.insert(name.clone());
                    break (Some(name), false);
                }
                let wait = shared.flush_every.saturating_sub(last_flush.elapsed());
                if !unflushed.is_empty() && wait.is_zero() {
                    break (None, false);
                }
                let timeout = if unflushed.is_empty() {
                    Duration::from_secs(3600)
                } else {
                    wait
                };
                queue = shared
                    .wake
                    .wait_timeout(queue, timeout)
                    .unwrap_or_else(|e| e.into_inner())
                    .0;
            }
        };
        if let Some(name) = name {
            if convert_one(shared, converter.as_mut(), &name) {
                unflushed.push(name);
            } else {
                release(shared, &[name]);
            }
        }
        if !unflushed.is_empty() && (stop || last_flush.elapsed() >= shared.flush_every) {
            flush(shared, converter.as_mut(), &mut unflushed);
            last_flush = std::time::Instant::now();
        }
        if stop {
            return;
        }
    }
}

/// Finishes the converter's partition files, then retires the raw logs they came from.
fn flush(shared: &Shared, converter: &mut dyn LogConverter, unflushed: &mut Vec<String>) {
    match converter.flush() {
        Ok(()) => {
            for name in unflushed.iter() {
                let done = if shared.keep_raw {
                    shared
                        .raw
                        .rename(name, &shared.raw, format!("{CONVERTED_DIR}/{name}"))
                } else {
                    shared.raw.remove_file(name)
                };
                if let Err(err) = done {
                    tracing::error!(log = %name, error = %err, "cannot retire converted raw log");
                }
            }
            tracing::debug!(logs = unflushed.len(), "flushed converted storage");
            if let Some(index) = &shared.dedup {
                shared.metrics.dedup_entries.set(index.entries() as i64);
            }
        }
        // The logs stay in raw/ and are converted again after the next scan or restart.
        Err(err) => {
            tracing::error!(error = %err, "cannot flush converted storage; raw logs kept for another pass")
        }
    }
    release(shared, unflushed);
    unflushed.clear();
}

/// Forgets logs a worker held, so the scanner may queue them again if they are still in `raw/`.
fn release(shared: &Shared, names: &[String]) {
    let mut queue = shared.lock();
    for name in names {
        queue.taken.remove(name);
    }
    shared
        .metrics
        .pending_logs
        .set((queue.pending.len() + queue.taken.len()) as i64);
}

/// Converts one log; true when it converted (it then waits for the next flush).
fn convert_one(shared: &Shared, converter: &mut dyn LogConverter, name: &str) -> bool {
    if !shared.raw.exists(name) {
        return false; // moved away by an operator
    }
    let metrics = &shared.metrics;
    match converter.convert_log(&shared.raw_path.join(name)) {
        Ok(outcome) => {
            metrics.logs.inc();
            metrics.records_read.inc_by(outcome.records_read);
            metrics.records_written.inc_by(outcome.records_written);
            metrics.duplicates.inc_by(outcome.duplicate);
            for (kind, count) in &outcome.bad_records_by_type {
                metrics
                    .bad_records
                    .get_or_create(&BadTypeLabel {
                        r#type: kind.to_string(),
                    })
                    .inc_by(*count);
            }
            for (validation, count) in &outcome.records_by_validation {
                metrics
                    .validated_records
                    .get_or_create(&ValidationLabel {
                        validation: validation.to_string(),
                    })
                    .inc_by(*count);
            }
            tracing::info!(
                log = name,
                read = outcome.records_read,
                written = outcome.records_written,
                duplicate = outcome.duplicate,
                "converted raw log"
            );
            shared.lock().failures.remove(name);
            true
        }
        Err(err) => {
            let attempts = {
                let mut queue = shared.lock();
                let attempts = queue.failures.entry(name.to_string()).or_insert(0);
                *attempts += 1;
                *attempts
            };
            if attempts < MAX_ATTEMPTS {
                tracing::warn!(log = name, attempts, error = %err, "raw log conversion failed; will retry");
                return false;
            }
            metrics.failed_logs.inc();
            shared.lock().failures.remove(name);
            tracing::error!(log = name, error = %err, "raw log conversion failed; moved to raw/{FAILED_DIR}/");
            if let Err(err) = shared
                .raw
                .rename(name, &shared.raw, format!("{FAILED_DIR}/{name}"))
            {
                tracing::error!(log = name, error = %err, "cannot move failed raw log");
            }
            false
        }
    }
}

/// The production [`LogConverter`]: a `convert::Pipeline` writing into the data directory's
/// `storage/` and `errors/`, recreated after each flush (a flush finishes the pipeline).
pub struct PipelineConverter {
    data: Arc<DataDir>,
    converter: Arc<Converter>,
    options: WriterOptions,
    worker: usize,
    pipeline: Option<Pipeline>,
    /// Threads converting the records of one log.
    threads: usize,
    generation: u64,
    /// A flush that failed inside `convert_log`, reported by the next [`LogConverter::flush`] so the
    /// raw logs it covered are not retired.
    failed_flush: Option<String>,
    /// The pool's dedup index, given to every pipeline.
    dedup: Option<Arc<DedupIndex>>,
}

impl PipelineConverter {
    pub(crate) fn new(
        data: Arc<DataDir>,
        converter: Arc<Converter>,
        options: WriterOptions,
        worker: usize,
    ) -> PipelineConverter {
        PipelineConverter {
            data,
            converter,
            options,
            worker,
            pipeline: None,
            threads: 1,
            generation: 0,
            failed_flush: None,
            dedup: None,
        }
    }

    /// Converts the records of each log on `threads` threads (output as with one).
    pub fn with_threads(mut self, threads: usize) -> PipelineConverter {
        self.threads = threads.max(1);
        self
    }

    fn pipeline(&mut self) -> Result<&mut Pipeline, String> {
        if self.pipeline.is_none() {
            self.generation += 1;
            let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%S");
            let name = format!(
                "live-{stamp}-{}-{}-{}",
                std::process::id(),
                self.worker,
                self.generation
            );
            let pipeline = Pipeline::new(
                &self.data,
                self.converter.clone(),
                self.options.clone(),
                &name,
            )
            .map_err(|e| e.to_string())?
            .with_threads(self.threads);
            let pipeline = match &self.dedup {
                Some(index) => pipeline.with_dedup(index.clone()),
                None => pipeline,
            };
            self.pipeline = Some(pipeline);
        }
        Ok(self.pipeline.as_mut().expect("created above"))
    }
}

impl LogConverter for PipelineConverter {
    fn convert_log(&mut self, path: &Path) -> Result<ConvertSummary, String> {
        let result = self
            .pipeline()?
            .convert_log(path)
            .map_err(|e| e.to_string());
        if result.is_err() {
            // Finish what this pipeline holds and start afresh with the next log.
            if let Some(pipeline) = self.pipeline.take() {
                if let Err(err) = pipeline.finish() {
                    self.failed_flush = Some(err.to_string());
                }
            }
        }
        result
    }

    fn flush(&mut self) -> Result<(), String> {
        let finished = match self.pipeline.take() {
            None => Ok(()),
            Some(pipeline) => pipeline.finish().map(|_| ()).map_err(|e| e.to_string()),
        };
        match self.failed_flush.take() {
            Some(err) => Err(err),
            None => finished,
        }
    }

    fn open_dedup(&self, window_days: u32) -> Result<Option<Arc<DedupIndex>>, String> {
        DedupIndex::open(&self.data, window_days)
            .map(|index| Some(Arc::new(index)))
            .map_err(|e| e.to_string())
    }

    fn set_dedup(&mut self, index: Arc<DedupIndex>) {
        self.dedup = Some(index);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    /// A pool over the raw logs in `dir`, and the metrics it updates.
    fn start_pool(
        dir: &Path,
        config: &ConvertConfig,
        factory: ConverterFactory,
    ) -> (ConvertPool, ConvertMetrics) {
        let raw = Dir::open_ambient_dir(dir, cap_std::ambient_authority()).unwrap();
        let metrics = crate::metrics::Registry::default().with_registry(ConvertMetrics::register);
        let pool = ConvertPool::start(
            &raw,
            dir.to_path_buf(),
            "telemetry.log",
            config,
            metrics.clone(),
            factory,
        )
        .unwrap();
        (pool, metrics)
    }

    /// A converter whose every attempt fails, counting attempts.
    struct AlwaysFails(Arc<AtomicUsize>);

    impl LogConverter for AlwaysFails {
        fn convert_log(&mut self, _path: &Path) -> Result<ConvertSummary, String> {
            self.0.fetch_add(1, Ordering::SeqCst);
            Err("storage unavailable".into())
        }
        fn flush(&mut self) -> Result<(), String> {
            Ok(())
        }
    }

    #[test]
    fn a_log_that_keeps_failing_is_retried_then_put_aside() {
        let tmp = tempfile::tempdir().unwrap();
        let name = "telemetry.log.v2.h.1_0.5.finished";
        let mut record = Vec::new();
        crate::rawlog::encode_v2(&mut record, 1, "::1", "id/main", b"{}");
        std::fs::write(tmp.path().join(name), &record).unwrap();
        let attempts = Arc::new(AtomicUsize::new(0));
        let counter = attempts.clone();
        let factory: ConverterFactory =
            Arc::new(move || Ok(Box::new(AlwaysFails(counter.clone())) as Box<dyn LogConverter>));
        let config = ConvertConfig {
            scan_interval_secs: 1,
            ..ConvertConfig::default()
        };
        let (pool, metrics) = start_pool(tmp.path(), &config, factory);
        let failed = tmp.path().join(FAILED_DIR).join(name);
        let start = std::time::Instant::now();
        while !failed.exists() {
            assert!(start.elapsed() < Duration::from_secs(20), "never put aside");
            std::thread::sleep(Duration::from_millis(50));
        }
        pool.stop();
        assert_eq!(attempts.load(Ordering::SeqCst), MAX_ATTEMPTS as usize);
        assert_eq!(std::fs::read(&failed).unwrap(), record, "moved intact");
        assert_eq!(metrics.failed_logs.get(), 1);
        assert_eq!(metrics.logs.get(), 0);
    }

    /// A converter that converts one log each time the test says so.
    struct Gated(std::sync::mpsc::Receiver<()>);

    impl LogConverter for Gated {
        fn convert_log(&mut self, _path: &Path) -> Result<ConvertSummary, String> {
            self.0
                .recv_timeout(Duration::from_secs(30))
                .map_err(|e| e.to_string())?;
            Ok(ConvertSummary::default())
        }
        fn flush(&mut self) -> Result<(), String> {
            Ok(())
        }
    }

    #[test]
    fn backlog_age_is_the_oldest_waiting_log_until_it_is_retired() {
        let tmp = tempfile::tempdir().unwrap();
        let now = crate::rawlog::logname::now_ms();
        for age_ms in [120_000, 10_000] {
            let name = format!("telemetry.log.v2.h.1_0.{}.finished", now - age_ms);
            std::fs::write(tmp.path().join(name), b"").unwrap();
        }
        let (go, gate) = std::sync::mpsc::channel();
        let gate = Arc::new(Mutex::new(Some(gate)));
        let factory: ConverterFactory = Arc::new(move || {
            let gate = gate
                .lock()
                .unwrap()
                .take()
                .ok_or_else(|| "one worker only".to_string())?;
            Ok(Box::new(Gated(gate)) as Box<dyn LogConverter>)
        });
        let config = ConvertConfig {
            workers: 1,
            flush_secs: 0,
            ..ConvertConfig::default()
        };
        let (pool, metrics) = start_pool(tmp.path(), &config, factory);
        let age = pool.backlog_age_probe();
        let wait_for = |range: std::ops::RangeInclusive<u64>| {
            let start = std::time::Instant::now();
            while !range.contains(&age()) {
                assert!(
                    start.elapsed() < Duration::from_secs(20),
                    "age {} not in {range:?}",
                    age()
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        };
        wait_for(120..=125);
        go.send(()).unwrap(); // the oldest converts and is retired; the newer one is the oldest now
        wait_for(10..=15);
        go.send(()).unwrap();
        wait_for(0..=0);
        pool.stop();
        assert_eq!(metrics.logs.get(), 2);
        assert_eq!(
            std::fs::read_dir(tmp.path().join(CONVERTED_DIR))
                .unwrap()
                .count(),
            2
        );
    }
}
