//! One local file to one S3 key, idempotently. Keys are deterministic and PUT and
//! CompleteMultipartUpload atomic, so sending a file again only rewrites the same bytes; the
//! journal keeps that rare:
//! - the journal has the object confirmed with the local size: nothing to do, no request;
//! - the journal says an upload of the key may have been in flight (started, never confirmed:
//!   a crash or a failed attempt), or the file is multipart-sized: HEAD first, and an object of
//!   the local size is accepted;
//! - otherwise straight to a streamed PUT of exactly the local size (small files: one request;
//!   a 200 means S3 stored all of those bytes, so no HEAD after it), or a streamed multipart
//!   upload (parts read from disk at their offsets, a bounded number in flight) confirmed by a
//!   HEAD of the size.
//!
//! The start of each upload is journaled first (`put`/`mpu`), its confirmation after (`done`).
//! Whole-file retries with exponential backoff sit on top of the SDK's per-request retries.

use std::path::Path;
use std::sync::Arc;

use aws_sdk_s3::primitives::{ByteStream, Length};
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use aws_sdk_s3::Client;

use super::journal::{Journal, OpenUpload};
use crate::progress::ProgressCounter;
use crate::s3::{backoff, S3Config, S3Error};

/// What happened to one file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Sent now; `bytes` uploaded and confirmed.
    Uploaded { bytes: u64 },
    /// Already on S3 with the local size (journal or HEAD); nothing sent.
    AlreadyThere { bytes: u64 },
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
        let multipart = size >= self.multipart_threshold;
        if (multipart || self.journal.maybe_in_flight(bucket, key))
            && self.head_size(bucket, key).await? == Some(size)
        {
            // Uploaded by an earlier attempt that stopped before journaling it.
            self.journal.record_done(bucket, key, size)?;
            progress.add(size);
            return Ok(Outcome::AlreadyThere { bytes: size });
        }
        if multipart {
            self.put_multipart(path, size, bucket, key, progress)
                .await?;
            match self.head_size(bucket, key).await? {
                Some(remote) if remote == size => {}
                remote => {
                    return Err(S3Error::NotConfirmed {
                        key: key.to_string(),
                        local: size,
                        remote,
                    })
                }
            }
        } else {
            self.journal.record_put_started(bucket, key, size)?;
            self.put_single(path, size, bucket, key).await?;
            progress.add(size);
        }
        self.journal.record_done(bucket, key, size)?;
        Ok(Outcome::Uploaded { bytes: size })
    }

    /// The object's size, `None` when it does not exist.
    pub async fn head_size(&self, bucket: &str, key: &str) -> Result<Option<u64>, S3Error> {
        match self
            .client
            .head_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
        {
            Ok(head) => Ok(Some(head.content_length().unwrap_or(0).max(0) as u64)),
            Err(err) if err.as_service_error().is_some_and(|e| e.is_not_found()) => Ok(None),
            Err(err) => Err(S3Error::request("HeadObject", bucket, key, err)),
        }
    }

    /// One PUT of exactly `size` bytes streamed from disk (a shorter file fails the body; the
    /// Content-Length makes S3 refuse anything but `size` bytes, so success confirms the object).
    async fn put_single(
        &self,
        path: &Path,
        size: u64,
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
        bucket: &str,
        key: &str,
        progress: &ProgressCounter,
    ) -> Result<(), S3Error> {
        let created = self
            .client
            .create_multipart_upload()
            .bucket(bucket)
            .key(key)
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
                    .body(body)
                    .send()
                    .await
                    .map_err(|e| S3Error::request("UploadPart", &up.bucket, &up.key, e))?;
                let part = CompletedPart::builder()
                    .set_e_tag(sent.e_tag().map(str::to_string))
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
