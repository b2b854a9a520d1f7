//! [`S3Source`]: partition files on S3 as a job's input.
//!
//! Listing walks the key hierarchy one directory level at a time with delimiter `/`, keeping
//! only the directories whose values pass the filter (partition pruning on keys: a filter on
//! `reason` lists one directory per allowed reason, never the rest of the bucket), following
//! continuation tokens (S3 pages hold at most 1,000 keys). Sibling directories are listed
//! concurrently. Files found are kept when their parsed dimensions match the filter.
//!
//! Opening a file starts a streamed GET (at most `fetch_concurrency` objects in flight across
//! the source) whose chunks flow through a bounded channel into the decompressor: nothing is
//! downloaded whole first. The [`super::prefetch`] read-ahead starts the GETs of the next
//! `prefetch` files meanwhile, so per-object latency overlaps with reading.

use std::io::BufRead;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use aws_sdk_s3::Client;
use tokio::sync::Semaphore;

use super::prefetch::Prefetcher;
use super::stream::{self, runtime, Fetch};
use super::{client, keys, S3Config, S3Error};
use crate::storage::{
    decompress, parse_partition_path, Container, PartitionFile, PartitionSource, Schema,
    StorageError,
};

/// Partition files under `s3://bucket/prefix`.
pub struct S3Source {
    client: Client,
    bucket: String,
    prefix: String,
    max_attempts: u32,
    /// Bounds the objects fetched at once (each open reader holds a permit while it streams).
    fetch_limit: Arc<Semaphore>,
    list_concurrency: usize,
    /// GETs resumed after a dropped connection (see [`S3Source::resumed_reads`]).
    resumed: Arc<AtomicU64>,
    /// Read-ahead of the files expected next, with its own bound on objects in flight.
    prefetcher: Prefetcher,
    prefetch_limit: Arc<Semaphore>,
}

impl S3Source {
    /// A source over `cfg.bucket`/`cfg.prefix`.
    pub fn new(cfg: &S3Config) -> Result<Self, S3Error> {
        let _guard = runtime().enter();
        Ok(S3Source {
            client: client::build(cfg)?,
            bucket: cfg.bucket.clone(),
            prefix: keys::normalize_prefix(&cfg.prefix),
            max_attempts: cfg.max_attempts,
            fetch_limit: Arc::new(Semaphore::new(cfg.fetch_concurrency)),
            list_concurrency: cfg.fetch_concurrency,
            resumed: Arc::new(AtomicU64::new(0)),
            prefetcher: Prefetcher::new(cfg.prefetch),
            prefetch_limit: Arc::new(Semaphore::new(cfg.prefetch.max(1))),
        })
    }

    /// A source over `s3://bucket/prefix`, endpoint and credentials from the AWS environment variables.
    pub fn from_url(url: &str) -> Result<Self, S3Error> {
        S3Source::new(&S3Config::from_url(url)?)
    }

    /// Starts streaming `file` (its GET waits for a permit of `limit`).
    fn fetch(&self, file: &PartitionFile, limit: &Arc<Semaphore>) -> stream::ChannelReader {
        stream::open(Fetch {
            client: self.client.clone(),
            bucket: self.bucket.clone(),
            key: format!("{}{}", self.prefix, file.path),
            size: file.size,
            max_attempts: self.max_attempts,
            limit: limit.clone(),
            resumed: self.resumed.clone(),
        })
    }

    /// How many reads were resumed with a `Range` GET after the connection failed mid-object.
    pub fn resumed_reads(&self) -> u64 {
        self.resumed.load(Ordering::Relaxed)
    }

    /// Raw logs (`*.finished`) directly under the prefix, in name order: what `export --raw-logs`
    /// uploads (`<raw_prefix><name>.finished`), for `convert s3://…`.
    pub fn list_raw_logs(&self) -> Result<Vec<RawLogObject>, S3Error> {
        let (_, files) = runtime().block_on(list_level(
            self.client.clone(),
            self.bucket.clone(),
            self.prefix.clone(),
        ))?;
        let mut logs: Vec<RawLogObject> = files
            .into_iter()
            .filter(|(key, _)| key.ends_with(".finished"))
            .map(|(key, size)| RawLogObject {
                name: key[self.prefix.len()..].to_owned(),
                key,
                size,
            })
            .collect();
        logs.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(logs)
    }

    /// Streams one raw log (resumed with a `Range` GET if the connection drops; bounded by
    /// `fetch_concurrency` like partition files).
    pub fn open_raw_log(&self, log: &RawLogObject) -> impl std::io::Read + Send {
        stream::open(Fetch {
            client: self.client.clone(),
            bucket: self.bucket.clone(),
            key: log.key.clone(),
            size: log.size,
            max_attempts: self.max_attempts,
            limit: self.fetch_limit.clone(),
            resumed: self.resumed.clone(),
        })
    }

    /// `s3://bucket/key` of an object of this source.
    pub fn url(&self, key: &str) -> String {
        format!("s3://{}/{key}", self.bucket)
    }

    /// The pruned walk: one level at a time, at most `list_concurrency` listings in flight.
    async fn list_matching(&self, filter: &Schema) -> Result<Vec<PartitionFile>, S3Error> {
        let dir_levels = filter.len().saturating_sub(2);
        let mut level: Vec<String> = vec![self.prefix.clone()];
        let mut found = Vec::new();
        for depth in 0..=dir_levels {
            let mut next = Vec::new();
            let mut listings = tokio::task::JoinSet::new();
            let mut todo = level.into_iter();
            loop {
                while listings.len() < self.list_concurrency {
                    let Some(dir) = todo.next() else { break };
                    listings.spawn(list_level(self.client.clone(), self.bucket.clone(), dir));
                }
                let Some(listing) = listings.join_next().await else {
                    break;
                };
                let (dirs, files) =
                    listing.map_err(|e| S3Error::Config(format!("listing task failed: {e}")))??;
                if depth < dir_levels {
                    // Directory level `depth`: descend only where the filter allows the value.
                    let allowed = |dir: &String| {
                        let name = dir[..dir.len() - 1].rsplit('/').next().unwrap_or_default();
                        filter.matches_prefix(depth, name)
                    };
                    next.extend(dirs.into_iter().filter(allowed));
                    continue;
                }
                for (key, size) in files {
                    let path = key[self.prefix.len()..].to_string();
                    if Container::from_name(&path).is_none() {
                        continue; // not a partition file (or still being written)
                    }
                    let Some(dims) = parse_partition_path(&path, filter.len()) else {
                        continue;
                    };
                    if filter.matches(&dims) {
                        found.push(PartitionFile { path, dims, size });
                    }
                }
            }
            level = next;
            if level.is_empty() {
                break;
            }
        }
        found.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(found)
    }
}

/// A raw log on S3.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawLogObject {
    /// Full key.
    pub key: String,
    /// Key without the source's prefix (the raw log's file name).
    pub name: String,
    /// Size of the object in bytes.
    pub size: u64,
}

/// Every key directly under `prefix` (delimiter `/`), all pages: (sub-directory prefixes, (key, size) of files).
async fn list_level(
    client: Client,
    bucket: String,
    prefix: String,
) -> Result<(Vec<String>, Vec<(String, u64)>), S3Error> {
    let (mut dirs, mut files) = (Vec::new(), Vec::new());
    let mut token: Option<String> = None;
    loop {
        let page = client
            .list_objects_v2()
            .bucket(&bucket)
            .prefix(&prefix)
            .delimiter("/")
            .set_continuation_token(token.take())
            .send()
            .await
            .map_err(|e| S3Error::request("ListObjectsV2", &bucket, &prefix, e))?;
        dirs.extend(
            page.common_prefixes()
                .iter()
                .filter_map(|p| p.prefix().map(str::to_string)),
        );
        files.extend(
            page.contents()
                .iter()
                .filter_map(|o| Some((o.key()?.to_string(), o.size().unwrap_or(0).max(0) as u64))),
        );
        match page.next_continuation_token() {
            Some(next) if page.is_truncated() == Some(true) => token = Some(next.to_string()),
            _ => return Ok((dirs, files)),
        }
    }
}

fn storage_error(key: &str, err: S3Error) -> StorageError {
    StorageError::Source {
        path: key.to_string(),
        source: Box::new(err),
    }
}

impl PartitionSource for S3Source {
    fn list(&self, filter: &Schema) -> Result<Vec<PartitionFile>, StorageError> {
        let files = runtime()
            .block_on(self.list_matching(filter))
            .map_err(|e| storage_error(&self.prefix, e))?;
        self.prefetcher.listed(&files);
        Ok(files)
    }

    fn open(&self, file: &PartitionFile) -> Result<Box<dyn BufRead + Send>, StorageError> {
        let reader = self.prefetcher.open(
            file,
            |f| self.fetch(f, &self.fetch_limit),
            |f| self.fetch(f, &self.prefetch_limit),
        );
        decompress(&file.path, reader)
    }

    /// The read-ahead follows this (smaller) listing: a cluster process no longer prefetches the
    /// files of the other processes, which it never opens and which would fill its read-ahead.
    fn will_read(&self, files: &[PartitionFile]) {
        self.prefetcher.listed(files);
    }
}
