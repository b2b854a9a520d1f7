//! One local file to one S3 key, idempotently. Keys are deterministic and PUT and
//! CompleteMultipartUpload atomic, so sending a file again only rewrites the same bytes; the
//! journal keeps that rare:
//! - the journal has the object confirmed with the local size: nothing to do, no request;
//! - the journal says an upload of the key may have been in flight (started, never confirmed:
//!   a crash or a failed attempt), or the file is multipart-sized: HEAD first, and an object of
//!   the local size *and* the local SHA-256 (its `sha256` metadata) is accepted;
//! - otherwise straight to a streamed PUT of exactly the local size carrying the file's SHA-256
//!   as `x-amz-checksum-sha256` (small files: one request; a 200 means S3 stored those bytes
//!   and checked their digest, so no HEAD after it), or a streamed multipart upload (parts read
//!   from disk at their offsets, each with its own SHA-256 checksum, a bounded number in
//!   flight) confirmed by a HEAD of the size and the `sha256` metadata.
//!
//! An object of the right size but without this file's digest (another file's bytes, or an
//! upload by a version that did not record digests) is never taken as confirmation: the file
//! is sent again, so a local copy is only deleted once S3 holds its exact content.
//!
//! The start of each upload is journaled first (`put`/`mpu`), its confirmation after (`done`).
//! Whole-file retries with exponential backoff sit on top of the SDK's per-request retries.

use std::path::Path;
use std::sync::Arc;

use aws_sdk_s3::primitives::{ByteStream, Length};
use aws_sdk_s3::types::{ChecksumAlgorithm, CompletedMultipartUpload, CompletedPart};
use aws_sdk_s3::Client;

use super::digest::{self, Sha256Digest};
use super::journal::{Journal, OpenUpload};
use crate::progress::ProgressCounter;
use crate::s3::{backoff, S3Config, S3Error};

/// What happened to one file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Sent now; `bytes` uploaded and confirmed.
    Uploaded {
        /// Bytes uploaded.
        bytes: u64,
    },
    /// Already on S3 with the local size (journal or HEAD); nothing sent.
    AlreadyThere {
        /// Size of the object on S3.
        bytes: u64,
    },
}

/// What a HEAD found under a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Remote {
    /// No object.
    Missing,
    /// An object of `size` bytes, with the `sha256` metadata it was uploaded with, if any.
    Object {
        /// The object's size in bytes.
        size: u64,
        /// Its `sha256` metadata, if any.
        sha256: Option<String>,
    },
}

impl Remote {
    /// Whether this is exactly the local file: same size and same recorded SHA-256.
    pub fn holds(&self, size: u64, sha256: &Sha256Digest) -> bool {
        matches!(self, Remote::Object { size: s, sha256: Some(d) } if *s == size && *d == sha256.hex())
    }
}

impl std::fmt::Display for Remote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Remote::Missing => f.write_str("no object"),
            Remote::Object {
                size,
                sha256: Some(d),
            } => write!(f, "{size} bytes, sha256 {d}"),
            Remote::Object { size, sha256: None } => write!(f, "{size} bytes, no sha256 metadata"),
        }
    }
}

/// Uploads files with the settings of one [`S3Config`].
#[derive(Clone)]
pub struct Uploader {
    client: Client,
    journal: Arc<Journal>,
    multipart_threshold: u64,
    part_size: u64,
    part_concurrency: usize,
    max_attempts: u32,
}

impl Uploader {
    /// An uploader that sends with `client`, records confirmed uploads in `journal`, and takes multipart and retry settings from `cfg`.
    pub fn new(client: Client, journal: Arc<Journal>, cfg: &S3Config) -> Self {
        Uploader {
            client,
            journal,
            multipart_threshold: cfg.multipart_threshold,
            part_size: cfg.part_size,
            part_concurrency: cfg.concurrency,
            max_attempts: cfg.max_attempts,
        }
    }

    /// Makes sure `bucket/key` holds the file at `path`, retrying the whole file on failure.
    pub async fn ensure_uploaded(
        &self,
        path: &Path,
        bucket: &str,
        key: &str,
        progress: &ProgressCounter,
    ) -> Result<Outcome, S3Error> {
        let mut attempt = 1;
        loop {
            match self.try_once(path, bucket, key, progress).await {
                Ok(outcome) => return Ok(outcome),
                Err(err) if attempt < self.max_attempts && !matches!(err, S3Error::Io { .. }) => {
                    tracing::warn!(%key, attempt, error = %err, "upload failed, retrying");
                    tokio::time::sleep(backoff(attempt)).await;
                    attempt += 1;
                }
                Err(err) => return Err(err),
            }
        }
    }

    async fn try_once(
        &self,
        path: &Path,
        bucket: &str,
        key: &str,
        progress: &ProgressCounter,
    ) -> Result<Outcome, S3Error> {
        let size = tokio::fs::metadata(path)
            .await
            .map_err(|e| S3Error::io(path.display(), e))?
            .len();
        if self.journal.done_size(bucket, key) == Some(size) {
            return Ok(Outcome::AlreadyThere { bytes: size });
        }
        let sha256 = digest::file(path).await?;
        let multipart = size >= self.multipart_threshold;
        if (multipart || self.journal.maybe_in_flight(bucket, key))
            && self.remote(bucket, key).await?.holds(size, &sha256)
        {
            // Uploaded by an earlier attempt that stopped before journaling it.
            self.journal.record_done(bucket, key, size)?;
            progress.add(size);
            return Ok(Outcome::AlreadyThere { bytes: size });
        }
        if multipart {
            self.put_multipart(path, size, &sha256, bucket, key, progress)
                .await?;
            let remote = self.remote(bucket, key).await?;
            if !remote.holds(size, &sha256) {
                return Err(S3Error::NotConfirmed {
                    key: key.to_string(),
                    local: format!("{size} bytes, sha256 {}", sha256.hex()),
                    remote: remote.to_string(),
                });
            }
        } else {
            self.journal.record_put_started(bucket, key, size)?;
            self.put_single(path, size, &sha256, bucket, key).await?;
            progress.add(size);
        }
        self.journal.record_done(bucket, key, size)?;
        Ok(Outcome::Uploaded { bytes: size })
    }

    /// What S3 holds under the key (one HEAD).
    pub async fn remote(&self, bucket: &str, key: &str) -> Result<Remote, S3Error> {
        match self
            .client
            .head_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
        {
            Ok(head) => Ok(Remote::Object {
                size: head.content_length().unwrap_or(0).max(0) as u64,
                sha256: head
                    .metadata()
                    .and_then(|m| m.get(digest::METADATA_KEY))
                    .map(|v| v.to_ascii_lowercase()),
            }),
            Err(err) if err.as_service_error().is_some_and(|e| e.is_not_found()) => {
                Ok(Remote::Missing)
            }
            Err(err) => Err(S3Error::request("HeadObject", bucket, key, err)),
        }
    }

    /// One PUT of exactly `size` bytes streamed from disk (a shorter file fails the body; the
    /// Content-Length makes S3 refuse anything but `size` bytes, so success confirms the object).
    async fn put_single(
        &self,
        path: &Path,
        size: u64,
        sha256: &Sha256Digest,
        bucket: &str,
        key: &str,
    ) -> Result<(), S3Error> {
        let body = ByteStream::read_from()
            .path(path)
            .length(Length::Exact(size))
            .build()
            .await
            .map_err(|e| S3Error::io(path.display(), std::io::Error::other(e)))?;
        self.client
            .put_object()
            .bucket(bucket)
            .key(key)
            .content_length(size as i64)
            .checksum_sha256(sha256.base64())
            .metadata(digest::METADATA_KEY, sha256.hex())
            .body(body)
            .send()
            .await
            .map_err(|e| S3Error::request("PutObject", bucket, key, e))?;
        Ok(())
    }

    /// A multipart upload, journaled so a crash leaves no orphaned parts behind for long.
    async fn put_multipart(
        &self,
        path: &Path,
        size: u64,
        sha256: &Sha256Digest,
        bucket: &str,
        key: &str,
        progress: &ProgressCounter,
    ) -> Result<(), S3Error> {
        let created = self
            .client
            .create_multipart_upload()
            .bucket(bucket)
            .key(key)
            .checksum_algorithm(ChecksumAlgorithm::Sha256)
            .metadata(digest::METADATA_KEY, sha256.hex())
            .send()
            .await
            .map_err(|e| S3Error::request("CreateMultipartUpload", bucket, key, e))?;
        let upload_id = created
            .upload_id()
            .ok_or_else(|| S3Error::Request {
                op: "CreateMultipartUpload",
                bucket: bucket.into(),
                key: key.into(),
                message: "no upload id".into(),
            })?
            .to_string();
        let open = OpenUpload {
            bucket: bucket.into(),
            key: key.into(),
            upload_id: upload_id.clone(),
        };
        self.journal.record_upload_started(&open)?;
        match self
            .send_parts_and_complete(path, size, &open, progress)
            .await
        {
            Ok(()) => Ok(()),
            Err(err) => {
                // Best effort: if this fails too, the next start aborts it from the journal.
                let _ = abort(&self.client, &self.journal, &open).await;
                Err(err)
            }
        }
    }

    async fn send_parts_and_complete(
        &self,
        path: &Path,
        size: u64,
        up: &OpenUpload,
        progress: &ProgressCounter,
    ) -> Result<(), S3Error> {
        let part_count = size.div_ceil(self.part_size);
        let mut in_flight = tokio::task::JoinSet::new();
        let mut parts = Vec::with_capacity(part_count as usize);
        for index in 0..part_count {
            if in_flight.len() >= self.part_concurrency {
                parts.push(join_part(in_flight.join_next().await, progress)?);
            }
            let offset = index * self.part_size;
            let len = self.part_size.min(size - offset);
            let (client, up, path) = (self.client.clone(), up.clone(), path.to_path_buf());
            in_flight.spawn(async move {
                let part_sha256 = digest::range(&path, offset, Some(len)).await?.base64();
                let body = ByteStream::read_from()
                    .path(&path)
                    .offset(offset)
                    .length(Length::Exact(len))
                    .build()
                    .await
                    .map_err(|e| S3Error::io(path.display(), std::io::Error::other(e)))?;
                let number = index as i32 + 1;
                let sent = client
                    .upload_part()
                    .bucket(&up.bucket)
                    .key(&up.key)
                    .upload_id(&up.upload_id)
                    .part_number(number)
                    .content_length(len as i64)
                    .checksum_sha256(&part_sha256)
                    .body(body)
                    .send()
                    .await
                    .map_err(|e| S3Error::request("UploadPart", &up.bucket, &up.key, e))?;
                let part = CompletedPart::builder()
                    .set_e_tag(sent.e_tag().map(str::to_string))
                    .checksum_sha256(part_sha256)
                    .part_number(number)
                    .build();
                Ok::<_, S3Error>((part, len))
            });
        }
        while let Some(done) = in_flight.join_next().await {
            parts.push(join_part(Some(done), progress)?);
        }
        parts.sort_by_key(|p| p.part_number());
        self.client
            .complete_multipart_upload()
            .bucket(&up.bucket)
            .key(&up.key)
            .upload_id(&up.upload_id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(parts))
                    .build(),
            )
            .send()
            .await
            .map_err(|e| S3Error::request("CompleteMultipartUpload", &up.bucket, &up.key, e))?;
        Ok(())
    }
}

type PartResult = Result<(CompletedPart, u64), S3Error>;

fn join_part(
    joined: Option<Result<PartResult, tokio::task::JoinError>>,
    progress: &ProgressCounter,
) -> Result<CompletedPart, S3Error> {
    let joined = joined.expect("join_next called with parts in flight");
    let (part, len) = joined.map_err(|e| S3Error::Config(format!("upload task failed: {e}")))??;
    progress.add(len);
    Ok(part)
}

/// Aborts a multipart upload and journals it. An upload the server refuses to abort with a 4xx
/// answer counts as gone too: `NoSuchUpload` (already completed or aborted; s3s-fs answers
/// `AccessDenied` for a completed one) or any other client error, logged, so a crash between
/// CompleteMultipartUpload and its `done` line cannot block every later start. A server error or
/// a failure to reach the server leaves the upload open in the journal for the next try.
pub async fn abort(client: &Client, journal: &Journal, up: &OpenUpload) -> Result<(), S3Error> {
    let result = client
        .abort_multipart_upload()
        .bucket(&up.bucket)
        .key(&up.key)
        .upload_id(&up.upload_id)
        .send()
        .await;
    match result {
        Ok(_) => {}
        Err(err)
            if err
                .as_service_error()
                .is_some_and(|e| e.is_no_such_upload()) => {}
        Err(err) => match err.raw_response().map(|r| r.status().as_u16()) {
            Some(400..=499) => tracing::warn!(
                key = %up.key,
                upload_id = %up.upload_id,
                error = %S3Error::request("AbortMultipartUpload", &up.bucket, &up.key, err),
                "multipart upload could not be aborted; forgetting it (a bucket lifecycle rule \
                 for incomplete uploads cleans up any parts left)"
            ),
            _ => {
                return Err(S3Error::request(
                    "AbortMultipartUpload",
                    &up.bucket,
                    &up.key,
                    err,
                ))
            }
        },
    }
    journal.record_upload_aborted(up)
}
