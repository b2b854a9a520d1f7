//! [`S3Config`]: the `[s3]` section of the server configuration (and the flags of
//! `telemetry-server export`): endpoint, region, bucket, prefixes, credentials, export tuning.
//! Endpoint, region and credentials fall back to the usual AWS environment variables.

use super::{keys, S3Error};

/// Smallest part S3 accepts in a multipart upload (except the last part).
pub const MIN_PART_SIZE: u64 = 5 * 1024 * 1024;

/// `[s3]` section of the server configuration; `None` in the config means no S3.
///
/// Every field has a default; the endpoint, region and credentials also fall back to the usual
/// AWS environment variables (see [`S3Config::with_env_defaults`]).
#[derive(Debug, Clone, serde::Deserialize, serde::Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct S3Config {
    /// Endpoint URL (`http://127.0.0.1:3900` for Garage); `None` means AWS itself.
    /// Env: `AWS_ENDPOINT_URL_S3`, `AWS_ENDPOINT_URL`.
    pub endpoint: Option<String>,
    /// Region used for signing (Garage requires its `s3_region`). Env: `AWS_REGION`, `AWS_DEFAULT_REGION`.
    pub region: String,
    /// Bucket for partition files (and raw logs unless `raw_bucket` is set).
    pub bucket: String,
    /// Key prefix for partition files (`published/` → `published/saved_session/Firefox/…`).
    pub prefix: String,
    /// Access key id. Env: `AWS_ACCESS_KEY_ID`.
    pub access_key_id: Option<String>,
    /// Secret access key. Env: `AWS_SECRET_ACCESS_KEY`.
    pub secret_access_key: Option<String>,
    /// Session token for temporary credentials. Env: `AWS_SESSION_TOKEN`.
    pub session_token: Option<String>,
    /// Path-style addressing (`endpoint/bucket/key`); needed by Garage, s3s-fs and most self-hosted stores.
    pub path_style: bool,
    /// Also export finished raw logs (`*.finished`) for later reprocessing.
    pub raw_logs: bool,
    /// Bucket for raw logs (default: `bucket`).
    pub raw_bucket: Option<String>,
    /// Key prefix for raw logs.
    pub raw_prefix: String,
    /// Delete the local copy once the upload is confirmed (HEAD shows the object with the local size).
    pub delete_after_upload: bool,
    /// Files at least this large go up as multipart uploads.
    pub multipart_threshold: u64,
    /// Part size for multipart uploads (at least 5 MiB).
    pub part_size: u64,
    /// Files uploaded at the same time (and parts of one file in flight at once).
    pub concurrency: usize,
    /// Objects fetched at the same time when a job reads from S3.
    pub fetch_concurrency: usize,
    /// Files read ahead when a job reads from S3 (GETs started before the job opens them;
    /// hides per-object latency on small files). 0 disables read-ahead.
    pub prefetch: usize,
    /// Attempts per request (SDK retries, exponential backoff) and per file (exporter retries).
    pub max_attempts: u32,
    /// Seconds between export passes when running continuously.
    pub interval_secs: u64,
    /// Create the bucket when it does not exist (like the seed's exporter).
    pub create_bucket: bool,
}

impl Default for S3Config {
    fn default() -> Self {
        Self {
            endpoint: None,
            region: "us-east-1".into(),
            bucket: String::new(),
            prefix: String::new(),
            access_key_id: None,
            secret_access_key: None,
            session_token: None,
            path_style: true,
            raw_logs: false,
            raw_bucket: None,
            raw_prefix: "incoming/".into(),
            delete_after_upload: false,
            multipart_threshold: 16 * 1024 * 1024,
            part_size: 8 * 1024 * 1024,
            concurrency: 4,
            fetch_concurrency: 8,
            prefetch: 32,
            max_attempts: 5,
            interval_secs: 10,
            create_bucket: true,
        }
    }
}

impl S3Config {
    /// Fills unset endpoint/credentials from the AWS environment variables, and the region when
    /// it is still the default.
    pub fn with_env_defaults(mut self) -> Self {
        let env = |names: &[&str]| {
            names
                .iter()
                .find_map(|n| std::env::var(n).ok().filter(|v| !v.is_empty()))
        };
        if self.endpoint.is_none() {
            self.endpoint = env(&["AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"]);
        }
        if self.region == S3Config::default().region {
            if let Some(region) = env(&["AWS_REGION", "AWS_DEFAULT_REGION"]) {
                self.region = region;
            }
        }
        if self.access_key_id.is_none() {
            self.access_key_id = env(&["AWS_ACCESS_KEY_ID"]);
        }
        if self.secret_access_key.is_none() {
            self.secret_access_key = env(&["AWS_SECRET_ACCESS_KEY"]);
        }
        if self.session_token.is_none() {
            self.session_token = env(&["AWS_SESSION_TOKEN"]);
        }
        self
    }

    /// A config for `s3://bucket/prefix` with everything else from the environment.
    pub fn from_url(url: &str) -> Result<Self, S3Error> {
        let (bucket, prefix) = keys::parse_s3_url(url)?;
        Ok(S3Config {
            bucket,
            prefix,
            ..S3Config::default()
        }
        .with_env_defaults())
    }

    /// Replaces the secrets that are set (`secret_access_key`, `session_token`) with `mask`.
    pub fn redact(&mut self, mask: &str) {
        for secret in [&mut self.secret_access_key, &mut self.session_token]
            .into_iter()
            .flatten()
        {
            *secret = mask.to_string();
        }
    }

    /// Checks the settings that would otherwise fail late (at the first request or part).
    pub fn validate(&self) -> Result<(), S3Error> {
        let bad = |msg: String| Err(S3Error::Config(msg));
        if self.bucket.is_empty() {
            return bad("no bucket (set `bucket` in [s3] or --bucket)".into());
        }
        if self.access_key_id.is_none() || self.secret_access_key.is_none() {
            return bad(
                "no credentials (set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or the config)"
                    .into(),
            );
        }
        if self.part_size < MIN_PART_SIZE {
            return bad(format!(
                "part_size {} is below the S3 minimum of {MIN_PART_SIZE} bytes",
                self.part_size
            ));
        }
        if self.multipart_threshold < self.part_size {
            return bad("multipart_threshold must be at least part_size".into());
        }
        if self.concurrency == 0 || self.fetch_concurrency == 0 || self.max_attempts == 0 {
            return bad(
                "concurrency, fetch_concurrency and max_attempts must be at least 1".into(),
            );
        }
        if let Some(endpoint) = &self.endpoint {
            if !(endpoint.starts_with("http://") || endpoint.starts_with("https://")) {
                return bad(format!(
                    "endpoint {endpoint:?} must start with http:// or https://"
                ));
            }
        }
        Ok(())
    }

    /// The bucket raw logs go to.
    pub fn raw_bucket(&self) -> &str {
        self.raw_bucket.as_deref().unwrap_or(&self.bucket)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_parses_from_toml_with_defaults() {
        let cfg: S3Config =
            toml::from_str("bucket = 'b'\nprefix = 'p/'\nendpoint = 'http://127.0.0.1:1'").unwrap();
        assert_eq!(cfg.bucket, "b");
        assert_eq!(cfg.prefix, "p/");
        assert!(cfg.path_style);
        assert_eq!(cfg.part_size, S3Config::default().part_size);
        assert!(
            toml::from_str::<S3Config>("bucket = 'b'\nbukket = 'x'").is_err(),
            "unknown keys are rejected"
        );
    }

    #[test]
    fn validate_rejects_small_parts_and_missing_bucket() {
        let good = S3Config {
            bucket: "b".into(),
            access_key_id: Some("a".into()),
            secret_access_key: Some("s".into()),
            ..S3Config::default()
        };
        assert!(good.validate().is_ok());
        assert!(S3Config {
            bucket: String::new(),
            ..good.clone()
        }
        .validate()
        .is_err());
        assert!(S3Config {
            part_size: 1024,
            ..good.clone()
        }
        .validate()
        .is_err());
        assert!(S3Config {
            endpoint: Some("127.0.0.1:9000".into()),
            ..good
        }
        .validate()
        .is_err());
    }
}
