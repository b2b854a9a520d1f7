//! [`S3Out`]: where `telemetry-server parquet --out s3://bucket/prefix` puts its files. Each
//! Parquet file is built in memory (a partition file's values are bounded by
//! [`super::export::MAX_FILE_VALUE_BYTES`]) and sent as one `PutObject` to
//! `prefix/<partition path>.parquet`, through the project's one S3 transport ([`crate::s3`]). A
//! PUT is atomic, so a reader of the prefix never sees a partial file.

use std::time::Duration;

use crate::s3::{client, keys, S3Config, S3Error};

/// The longest one PUT (with the client's retries) may take.
pub const PUT_DEADLINE: Duration = Duration::from_secs(300);

/// An S3 prefix receiving Parquet files, with the runtime that drives its client.
pub struct S3Out {
    cfg: S3Config,
    client: aws_sdk_s3::Client,
    runtime: tokio::runtime::Runtime,
}

impl S3Out {
    /// The prefix of `url` (`s3://bucket/prefix`), endpoint and credentials from the AWS
    /// environment variables; creates the bucket when `cfg.create_bucket` says so.
    pub fn open(url: &str) -> Result<S3Out, S3Error> {
        let cfg = S3Config::from_url(url)?;
        cfg.validate()?;
        let client = client::build(&cfg)?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| S3Error::io("the S3 upload runtime", e))?;
        if cfg.create_bucket {
            runtime.block_on(client::ensure_bucket(&client, &cfg.bucket))?;
        }
        Ok(S3Out {
            cfg,
            client,
            runtime,
        })
    }

    /// `s3://bucket/prefix/` (for messages).
    pub fn url(&self) -> String {
        format!(
            "s3://{}/{}",
            self.cfg.bucket,
            keys::normalize_prefix(&self.cfg.prefix)
        )
    }

    /// Puts `body` at `relative` under the prefix (callable from several threads at once).
    pub fn put(&self, relative: &str, body: Vec<u8>) -> Result<(), S3Error> {
        let key = keys::object_key(&self.cfg.prefix, relative);
        let bucket = &self.cfg.bucket;
        let put = self
            .client
            .put_object()
            .bucket(bucket)
            .key(&key)
            .content_type("application/vnd.apache.parquet")
            .body(body.into())
            .send();
        self.runtime.block_on(async {
            match tokio::time::timeout(PUT_DEADLINE, put).await {
                Ok(sent) => sent
                    .map(|_| ())
                    .map_err(|e| S3Error::request("PutObject", bucket, &key, e)),
                Err(_) => Err(S3Error::Request {
                    op: "PutObject",
                    bucket: bucket.clone(),
                    key: key.clone(),
                    message: format!("no answer within {}s", PUT_DEADLINE.as_secs()),
                }),
            }
        })
    }
}
