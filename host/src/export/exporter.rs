//! The exporter: finds finished files under the data dir (partition files under `storage/`,
//! and with `raw_logs` the `.finished` raw logs under `raw/` and `raw/converted/`), uploads
//! them with bounded parallelism, deletes confirmed local copies when configured, and repeats
//! every `interval_secs` when run continuously (inside `serve`).
//!
//! Deletion rules: partition files and raw logs already converted (`raw/converted/`) are removed
//! after a confirmed upload when `delete_after_upload` is set; raw logs still waiting in `raw/`
//! are never deleted here, because conversion has not read them yet. A deleted file's journal
//! entry is forgotten, and the first pass drops the entries of files no longer on disk, so the
//! journal stays as small as the set of local files (see [`super::journal`]).

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::progress::ProgressCounter;

use super::journal::{self, Journal};
use super::upload::{Outcome, Uploader};
use crate::s3::requests::{RequestCounter, Requests};
use crate::s3::{client, keys, S3Config, S3Error};

use crate::storage::datadir::{RAW as RAW_DIR, STORAGE as STORAGE_DIR};
use crate::storage::{Container, DataDir};

/// The exporter's directory under the data dir (holds the journal).
pub const EXPORT_DIR: &str = "export";

/// The journal's path relative to the data dir.
pub const JOURNAL_PATH: &str = "export/journal";

/// What one file is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A converted partition file under the data directory.
    Partition,
    /// A finished raw submission log.
    RawLog,
}

/// One local file to export.
#[derive(Debug, Clone)]
pub struct Candidate {
    /// The local file.
    pub path: PathBuf,
    /// The bucket it goes to.
    pub bucket: String,
    /// Its object key there.
    pub key: String,
    /// Its size in bytes when found.
    pub size: u64,
    /// Partition file or raw log.
    pub kind: Kind,
    /// Whether the local copy goes once the upload is confirmed.
    pub delete_after: bool,
}

/// The result of one export pass.
#[derive(Debug, Default, Clone)]
pub struct ExportReport {
    /// Files considered.
    pub files: usize,
    /// Files sent in this pass.
    pub uploaded: usize,
    /// Files found already on S3 (journal or HEAD).
    pub already_there: usize,
    /// Bytes sent in this pass.
    pub bytes_uploaded: u64,
    /// Local copies deleted after a confirmed upload.
    pub deleted: usize,
    /// Files that vanished before they could be read (moved by conversion; picked up next pass).
    pub vanished: usize,
    /// `(path, error)` for each file that failed every attempt.
    pub failed: Vec<(String, String)>,
    /// S3 requests sent in this pass, by kind.
    pub requests: Requests,
    /// Wall time of the pass.
    pub elapsed: Duration,
}

impl ExportReport {
    /// Upload throughput in MB/s (10^6 bytes) over the pass.
    pub fn mb_per_sec(&self) -> f64 {
        self.bytes_uploaded as f64 / 1e6 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// Exports one data dir to the buckets of one [`S3Config`].
pub struct Exporter {
    cfg: S3Config,
    data_dir: PathBuf,
    client: aws_sdk_s3::Client,
    journal: Arc<Journal>,
    uploader: Uploader,
    requests: Arc<RequestCounter>,
    prepared: tokio::sync::OnceCell<()>,
    /// Whether a pass has trimmed the journal to the files on disk (once per exporter).
    trimmed: AtomicBool,
    /// Lag and totals of the continuous passes, for `/metrics`.
    progress: Arc<super::progress::ExportProgress>,
}

impl Exporter {
    /// Validates the config, builds the client and opens the journal (no network yet).
    /// Must be called inside a tokio runtime.
    pub fn new(cfg: S3Config, data_dir: &Path) -> Result<Self, S3Error> {
        Self::with_journal_compaction(cfg, data_dir, journal::MIN_COMPACT_BYTES)
    }

    /// [`Exporter::new`], compacting the journal while running from `min_compact_bytes` on.
    pub fn with_journal_compaction(
        cfg: S3Config,
        data_dir: &Path,
        min_compact_bytes: u64,
    ) -> Result<Self, S3Error> {
        let requests = Arc::new(RequestCounter::default());
        let client = client::build_counted(&cfg, Some(requests.clone()))?;
        let export_dir = DataDir::open(data_dir)
            .and_then(|data| data.sub(EXPORT_DIR))
            .map_err(|e| S3Error::Config(format!("data dir {}: {e}", data_dir.display())))?;
        let shown = data_dir.join(EXPORT_DIR).display().to_string();
        let journal = Arc::new(Journal::with_compact_bytes(
            export_dir,
            &shown,
            min_compact_bytes,
        )?);
        let uploader = Uploader::new(client.clone(), journal.clone(), &cfg);
        Ok(Exporter {
            cfg,
            data_dir: data_dir.to_path_buf(),
            client,
            journal,
            uploader,
            requests,
            prepared: Default::default(),
            trimmed: AtomicBool::new(false),
            progress: Default::default(),
        })
    }

    /// Lag and totals of the continuous passes ([`Exporter::run_forever`]).
    pub fn progress(&self) -> Arc<super::progress::ExportProgress> {
        self.progress.clone()
    }

    /// The export journal.
    pub fn journal(&self) -> &Journal {
        &self.journal
    }

    /// S3 requests sent by this exporter so far, by kind.
    pub fn requests(&self) -> Requests {
        self.requests.snapshot()
    }

    /// Once per exporter (retried each pass until it succeeds): creates the buckets if configured
    /// and aborts multipart uploads an earlier run left open.
    async fn prepare(&self) -> Result<(), S3Error> {
        self.prepared
            .get_or_try_init(|| async {
                if self.cfg.create_bucket {
                    client::ensure_bucket(&self.client, &self.cfg.bucket).await?;
                    if self.cfg.raw_logs && self.cfg.raw_bucket() != self.cfg.bucket {
                        client::ensure_bucket(&self.client, self.cfg.raw_bucket()).await?;
                    }
                }
                for open in self.journal.open_uploads() {
                    tracing::info!(key = %open.key, "aborting multipart upload left by an earlier run");
                    super::upload::abort(&self.client, &self.journal, &open).await?;
                }
                Ok::<(), S3Error>(())
            })
            .await
            .map(|_| ())
    }

    /// The files to export now, sorted by key (deterministic order).
    pub fn candidates(&self) -> Result<Vec<Candidate>, S3Error> {
        let mut out = Vec::new();
        let storage = self.data_dir.join(STORAGE_DIR);
        for (path, rel, size) in walk(&storage)? {
            if is_finished_partition(&rel) {
                let key = keys::object_key(&self.cfg.prefix, &rel);
                let delete_after = self.cfg.delete_after_upload;
                out.push(Candidate {
                    path,
                    bucket: self.cfg.bucket.clone(),
                    key,
                    size,
                    kind: Kind::Partition,
                    delete_after,
                });
            }
        }
        if self.cfg.raw_logs {
            let raw = self.data_dir.join(RAW_DIR);
            for (dir, converted) in [
                (raw.clone(), false),
                (raw.join(crate::storage::datadir::CONVERTED_DIR), true),
            ] {
                for (path, name, size) in list_files(&dir)? {
                    if name.ends_with(crate::rawlog::logname::FINISHED_SUFFIX) && size > 0 {
                        let key = keys::object_key(&self.cfg.raw_prefix, &name);
                        let delete_after = self.cfg.delete_after_upload && converted;
                        let bucket = self.cfg.raw_bucket().to_string();
                        out.push(Candidate {
                            path,
                            bucket,
                            key,
                            size,
                            kind: Kind::RawLog,
                            delete_after,
                        });
                    }
                }
            }
        }
        out.sort_by(|a, b| (&a.bucket, &a.key).cmp(&(&b.bucket, &b.key)));
        Ok(out)
    }

    /// One pass over the data dir. `progress` counts bytes (its total is set here).
    pub async fn run_once(&self, progress: &Arc<ProgressCounter>) -> Result<ExportReport, S3Error> {
        let started = Instant::now();
        let requests_before = self.requests.snapshot();
        self.prepare().await?;
        let candidates = self.candidates()?;
        if !self.trimmed.load(Ordering::Relaxed) {
            // Start-up: entries of files deleted (or gone) since they were journaled go.
            let live: HashSet<(&str, &str)> = candidates
                .iter()
                .map(|c| (c.bucket.as_str(), c.key.as_str()))
                .collect();
            self.journal
                .retain(|(bucket, key)| live.contains(&(bucket.as_str(), key.as_str())))?;
            self.trimmed.store(true, Ordering::Relaxed);
        }
        let pending: u64 = candidates
            .iter()
            .filter(|c| self.journal.done_size(&c.bucket, &c.key) != Some(c.size))
            .map(|c| c.size)
            .sum();
        progress.set_total(pending);
        let mut report = ExportReport {
            files: candidates.len(),
            ..ExportReport::default()
        };
        // At most `concurrency` files in flight; each result is accounted (and the local copy
        // deleted) as soon as it is in, so a crash mid-pass loses none of the work done.
        let mut tasks = tokio::task::JoinSet::new();
        let mut todo = candidates.into_iter();
        loop {
            while tasks.len() < self.cfg.concurrency {
                let Some(candidate) = todo.next() else { break };
                // Confirmed at this size (the scan's): no task, no file access. Files kept after
                // their upload are most of the candidates of every pass.
                if self.journal.done_size(&candidate.bucket, &candidate.key) == Some(candidate.size)
                {
                    let outcome = Outcome::AlreadyThere {
                        bytes: candidate.size,
                    };
                    self.account(&mut report, &candidate, Ok(outcome));
                    continue;
                }
                let (uploader, progress) = (self.uploader.clone(), progress.clone());
                tasks.spawn(async move {
                    let result = uploader
                        .ensure_uploaded(
                            &candidate.path,
                            &candidate.bucket,
                            &candidate.key,
                            &progress,
                        )
                        .await;
                    (candidate, result)
                });
            }
            let Some(joined) = tasks.join_next().await else {
                break;
            };
            let (candidate, result) =
                joined.map_err(|e| S3Error::Config(format!("export task failed: {e}")))?;
            self.account(&mut report, &candidate, result);
        }
        report.requests = self.requests.snapshot().since(&requests_before);
        report.elapsed = started.elapsed();
        Ok(report)
    }

    fn account(&self, report: &mut ExportReport, c: &Candidate, result: Result<Outcome, S3Error>) {
        match result {
            Ok(outcome) => {
                match outcome {
                    Outcome::Uploaded { bytes } => {
                        report.uploaded += 1;
                        report.bytes_uploaded += bytes;
                    }
                    Outcome::AlreadyThere { .. } => report.already_there += 1,
                }
                if c.delete_after {
                    match std::fs::remove_file(&c.path) {
                        Ok(()) => {
                            report.deleted += 1;
                            self.journal.forget(&c.bucket, &c.key);
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                            self.journal.forget(&c.bucket, &c.key)
                        }
                        Err(e) => report
                            .failed
                            .push((c.path.display().to_string(), format!("delete: {e}"))),
                    }
                }
            }
            Err(_) if !c.path.exists() => report.vanished += 1,
            Err(err) => {
                tracing::error!(path = %c.path.display(), error = %err, "export failed");
                report
                    .failed
                    .push((c.path.display().to_string(), err.to_string()));
            }
        }
    }

    /// Exports every `interval_secs` until `shutdown` resolves, then one last pass to flush
    /// (as the seed's exporter did after "stop").
    pub async fn run_forever(&self, shutdown: impl std::future::Future<Output = ()>) {
        let interval = Duration::from_secs(self.cfg.interval_secs.max(1));
        tokio::pin!(shutdown);
        loop {
            self.log_pass().await;
            tokio::select! {
                _ = &mut shutdown => break,
                _ = tokio::time::sleep(interval) => {}
            }
        }
        self.log_pass().await;
    }

    async fn log_pass(&self) {
        let started_ms = crate::rawlog::logname::now_ms();
        let result = self.run_once(&Arc::default()).await;
        self.progress
            .record(started_ms, result.as_ref().map_err(|_| ()));
        match result {
            Ok(r) if r.uploaded > 0 || !r.failed.is_empty() => tracing::info!(
                uploaded = r.uploaded,
                bytes = r.bytes_uploaded,
                mb_per_sec = format!("{:.1}", r.mb_per_sec()),
                failed = r.failed.len(),
                deleted = r.deleted,
                "export pass"
            ),
            Ok(_) => {}
            Err(err) => tracing::warn!(error = %err, "export pass failed; retrying next interval"),
        }
    }
}

/// The continuous exporter running as a background task (owned by `serve`): started with
/// [`ExportTask::start`], stopped with [`ExportTask::stop`], which waits for the final pass so
/// files finished during the drain are exported too.
pub struct ExportTask {
    stop: tokio::sync::oneshot::Sender<()>,
    handle: tokio::task::JoinHandle<()>,
}

impl ExportTask {
    /// Starts exporting every `interval_secs` on the current tokio runtime.
    pub fn start(exporter: Exporter) -> ExportTask {
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let handle = tokio::spawn(async move {
            exporter
                .run_forever(async {
                    let _ = stopped.await;
                })
                .await;
        });
        ExportTask { stop, handle }
    }

    /// Stops the loop after one last pass, and waits for it.
    pub async fn stop(self) {
        let _ = self.stop.send(());
        if let Err(err) = self.handle.await {
            tracing::error!(error = %err, "exporter task failed");
        }
    }
}

/// A finished partition file: a storage container extension (files being written end in
/// `.partial`), no hidden path component.
fn is_finished_partition(rel: &str) -> bool {
    !rel.split('/').any(|part| part.starts_with('.')) && Container::from_name(rel).is_some()
}

/// Regular files directly in `dir`: (path, name, size). A missing dir is empty.
fn list_files(dir: &Path) -> Result<Vec<(PathBuf, String, u64)>, S3Error> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(S3Error::io(dir.display(), e)),
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| S3Error::io(dir.display(), e))?;
        let Ok(meta) = entry.metadata() else { continue }; // vanished meanwhile
        if meta.is_file() {
            if let Some(name) = entry.file_name().to_str() {
                out.push((entry.path(), name.to_string(), meta.len()));
            }
        }
    }
    Ok(out)
}

/// Every regular file under `root`: (path, `/`-separated path relative to root, size).
fn walk(root: &Path) -> Result<Vec<(PathBuf, String, u64)>, S3Error> {
    let mut out = Vec::new();
    let mut stack = vec![(root.to_path_buf(), String::new())];
    while let Some((dir, rel)) = stack.pop() {
        for (path, name, size) in list_files(&dir)? {
            out.push((path, format!("{rel}{name}"), size));
        }
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                if let Some(name) = entry.file_name().to_str() {
                    stack.push((entry.path(), format!("{rel}{name}/")));
                }
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_finished_partition_files_are_candidates() {
        assert!(is_finished_partition(
            "saved_session/Firefox/nightly/22.0a1/2013.20131011.v2.log.ab12.zst"
        ));
        assert!(is_finished_partition(
            "idle_daily/Firefox/release/8.0/x.20111101.v2.log.cd.xz"
        ));
        assert!(!is_finished_partition(
            "saved_session/Firefox/nightly/22.0a1/2013.20131011.v2.log.ab.zst.partial"
        ));
        assert!(!is_finished_partition(
            "saved_session/.tmp/2013.20131011.v2.log.ab.zst"
        ));
        assert!(!is_finished_partition(
            "a/b/.2013.20131011.v2.log.ab.zst.partial.zst"
        ));
    }

    #[test]
    fn walk_lists_nested_files_with_relative_paths() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("a/b")).unwrap();
        std::fs::write(dir.path().join("a/b/f.zst"), b"123").unwrap();
        std::fs::write(dir.path().join("top"), b"1").unwrap();
        let mut files: Vec<(String, u64)> = walk(dir.path())
            .unwrap()
            .into_iter()
            .map(|(_, r, s)| (r, s))
            .collect();
        files.sort();
        assert_eq!(
            files,
            vec![("a/b/f.zst".to_string(), 3), ("top".to_string(), 1)]
        );
        assert!(walk(&dir.path().join("missing")).unwrap().is_empty());
    }
}
