//! Job outputs: `[jobs.outputs.NAME]` names an S3 bucket and prefix (an [`S3Config`], the same
//! settings and client as `[s3]`); a manifest's `"output": "NAME"` writes the job's result there
//! once it succeeds, rendered as its `output_format` (text, CSV or NDJSON), one object per run at
//! `PREFIX/NAME_OF_JOB/RUN_TIMESTAMP/result.EXT` ([`object_key`]). The object is read back and its
//! SHA-256 compared with what was sent; a failed or unconfirmed write fails the job with the
//! reason (the job's `error`), never silently.
//!
//! [`OutputExecutor`] wraps the executor that runs jobs, so the write happens on the job's runner
//! thread, within [`WRITE_DEADLINE`].

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use prometheus_client::metrics::counter::Counter;
use sha2::Digest;

use crate::jobs::result_format::{render_line, ResultFormat};
use crate::jobs::scheduler::{
    Executor, Finished, JobRecord, OutputReceipt, RunControl, RunFailure,
};
use crate::s3::{client, keys, S3Config, S3Error};

/// The longest one output write (upload and read-back, with retries) may take.
pub const WRITE_DEADLINE: Duration = Duration::from_secs(300);

/// Why a result could not be written to an output.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    /// The manifest names an output the server does not have.
    #[error("no output named {0:?} in this server's [jobs.outputs]")]
    Unknown(String),
    /// A request failed (after the client's retries).
    #[error(transparent)]
    S3(#[from] S3Error),
    /// The object read back is not what was sent.
    #[error("{url}: the object read back has SHA-256 {remote} ({remote_bytes} bytes), not the {local} ({local_bytes} bytes) sent")]
    Mismatch {
        /// `s3://bucket/key`.
        url: String,
        /// SHA-256 sent.
        local: String,
        /// Bytes sent.
        local_bytes: u64,
        /// SHA-256 read back.
        remote: String,
        /// Bytes read back.
        remote_bytes: u64,
    },
    /// The write did not finish within [`WRITE_DEADLINE`], or its runtime could not start.
    #[error("{0}")]
    Aborted(String),
}

/// Whether `name` can name an output (`[A-Za-z0-9_-]`, 1 to 64 characters).
pub fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Checks `[jobs.outputs]`: names, and each output's S3 settings (with the AWS environment
/// variables filled in, as when it is used).
pub fn validate(outputs: &BTreeMap<String, S3Config>) -> Result<(), String> {
    for (name, cfg) in outputs {
        if !valid_name(name) {
            return Err(format!(
                "jobs.outputs.{name}: an output name is 1 to 64 letters, digits, '_' or '-'"
            ));
        }
        cfg.clone()
            .with_env_defaults()
            .validate()
            .map_err(|e| format!("jobs.outputs.{name}: {e}"))?;
    }
    Ok(())
}

/// The file extension of a format.
pub fn extension(format: ResultFormat) -> &'static str {
    match format {
        ResultFormat::Text => "txt",
        ResultFormat::Csv => "csv",
        ResultFormat::Ndjson => "ndjson",
    }
}

/// `PREFIX/JOB_NAME/YYYYMMDDTHHMMSS.mmmZ/result.EXT`; characters of the job name other than
/// letters, digits, `.`, `_` and `-` become `_`.
pub fn object_key(
    prefix: &str,
    job_name: &str,
    run_at: DateTime<Utc>,
    format: ResultFormat,
) -> String {
    let name: String = job_name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    let name = if name.trim_matches('.').is_empty() {
        "job".to_string()
    } else {
        name
    };
    keys::object_key(
        prefix,
        &format!(
            "{name}/{}/result.{}",
            run_at.format("%Y%m%dT%H%M%S%.3fZ"),
            extension(format)
        ),
    )
}

/// A stored result (`key<TAB>value` lines) rendered in `format`.
pub fn render(stored: &[u8], format: ResultFormat) -> Vec<u8> {
    if format == ResultFormat::Text {
        return stored.to_vec();
    }
    let mut out = String::from(format.header());
    for line in String::from_utf8_lossy(stored).lines() {
        render_line(&mut out, line, format);
    }
    out.into_bytes()
}

/// The configured outputs and their counters.
pub struct Outputs {
    configs: BTreeMap<String, S3Config>,
    /// Results written and confirmed.
    pub written: Counter,
    /// Writes that failed (each failed its job).
    pub failed: Counter,
}

impl Outputs {
    /// `[jobs.outputs]`, with the AWS environment variables filled in.
    pub fn new(configs: &BTreeMap<String, S3Config>) -> Self {
        Outputs {
            configs: configs
                .iter()
                .map(|(k, v)| (k.clone(), v.clone().with_env_defaults()))
                .collect(),
            written: Counter::default(),
            failed: Counter::default(),
        }
    }

    /// Whether an output is configured under `name`.
    pub fn contains(&self, name: &str) -> bool {
        self.configs.contains_key(name)
    }

    /// The configured names, sorted.
    pub fn names(&self) -> Vec<&str> {
        self.configs.keys().map(String::as_str).collect()
    }

    /// Writes `stored` (rendered as `format`) to output `name` for the run of `job_name` at
    /// `run_at`, reads it back and compares checksums. Blocks (own runtime); call off async code.
    pub fn write(
        &self,
        name: &str,
        job_name: &str,
        run_at: DateTime<Utc>,
        format: ResultFormat,
        stored: &[u8],
    ) -> Result<OutputReceipt, OutputError> {
        let cfg = self
            .configs
            .get(name)
            .ok_or_else(|| OutputError::Unknown(name.to_string()))?;
        let body = render(stored, format);
        let key = object_key(&cfg.prefix, job_name, run_at, format);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| OutputError::Aborted(format!("cannot start the upload runtime: {e}")))?;
        let written = runtime.block_on(async {
            tokio::time::timeout(WRITE_DEADLINE, put_and_verify(cfg, &key, format, body))
                .await
                .map_err(|_| {
                    OutputError::Aborted(format!(
                        "writing s3://{}/{key} took longer than {}s",
                        cfg.bucket,
                        WRITE_DEADLINE.as_secs()
                    ))
                })?
        });
        match &written {
            Ok(_) => self.written.inc(),
            Err(_) => self.failed.inc(),
        };
        written.map(|(bytes, sha256)| OutputReceipt {
            name: name.to_string(),
            url: format!("s3://{}/{key}", cfg.bucket),
            bytes,
            sha256,
        })
    }
}

async fn put_and_verify(
    cfg: &S3Config,
    key: &str,
    format: ResultFormat,
    body: Vec<u8>,
) -> Result<(u64, String), OutputError> {
    let s3 = client::build(cfg)?;
    if cfg.create_bucket {
        client::ensure_bucket(&s3, &cfg.bucket).await?;
    }
    let local = hex::encode(sha2::Sha256::digest(&body));
    let local_bytes = body.len() as u64;
    s3.put_object()
        .bucket(&cfg.bucket)
        .key(key)
        .content_type(format.content_type())
        .body(body.into())
        .send()
        .await
        .map_err(|e| S3Error::request("PutObject", &cfg.bucket, key, e))?;
    let got = s3
        .get_object()
        .bucket(&cfg.bucket)
        .key(key)
        .send()
        .await
        .map_err(|e| S3Error::request("GetObject", &cfg.bucket, key, e))?;
    let remote = got
        .body
        .collect()
        .await
        .map_err(|e| S3Error::request("GetObject", &cfg.bucket, key, e))?
        .into_bytes();
    let remote_sha = hex::encode(sha2::Sha256::digest(&remote));
    if remote_sha != local {
        return Err(OutputError::Mismatch {
            url: format!("s3://{}/{key}", cfg.bucket),
            local,
            local_bytes,
            remote: remote_sha,
            remote_bytes: remote.len() as u64,
        });
    }
    Ok((local_bytes, local))
}

/// Runs jobs with `inner`, then writes the result of a succeeded job whose manifest names an
/// `output`; a failed write fails the job (cost report and log kept).
pub struct OutputExecutor {
    inner: Arc<dyn Executor>,
    outputs: Arc<Outputs>,
}

impl OutputExecutor {
    /// Wraps `inner`.
    pub fn new(inner: Arc<dyn Executor>, outputs: Arc<Outputs>) -> Self {
        OutputExecutor { inner, outputs }
    }
}

impl Executor for OutputExecutor {
    fn execute(&self, job: &JobRecord, control: &RunControl) -> Result<Finished, RunFailure> {
        let mut finished = self.inner.execute(job, control)?;
        let Some(name) = job.manifest.output.as_deref() else {
            return Ok(finished);
        };
        let run_at = [job.manifest.run_at.as_deref(), job.started_at.as_deref()]
            .into_iter()
            .flatten()
            .find_map(|t| DateTime::parse_from_rfc3339(t).ok())
            .map_or_else(Utc::now, |t| t.with_timezone(&Utc));
        let format = job.manifest.output_format.unwrap_or_default();
        match self
            .outputs
            .write(name, &job.manifest.name, run_at, format, &finished.output)
        {
            Ok(receipt) => {
                tracing::info!(job = %job.id, url = %receipt.url, bytes = receipt.bytes, "job output written");
                finished.written_to = Some(receipt);
                Ok(finished)
            }
            Err(error) => Err(RunFailure::Failed {
                error: format!(
                    "the job succeeded but writing its result to output '{name}' failed: {error}"
                ),
                cost: finished.cost,
                log: finished.log,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_stable_and_safe() {
        let at = DateTime::parse_from_rfc3339("2026-12-02T02:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(
            object_key("daily/", "os distribution/nightly", at, ResultFormat::Csv),
            "daily/os_distribution_nightly/20261202T020000.000Z/result.csv"
        );
        assert_eq!(
            object_key("", "..", at, ResultFormat::Text),
            "job/20261202T020000.000Z/result.txt"
        );
    }

    #[test]
    fn render_matches_the_api_formats() {
        let stored = b"Linux\t3\nWINNT\t12\n";
        assert_eq!(render(stored, ResultFormat::Text), stored);
        assert_eq!(
            String::from_utf8(render(stored, ResultFormat::Csv)).unwrap(),
            "key,value\r\nLinux,3\r\nWINNT,12\r\n"
        );
        assert_eq!(
            String::from_utf8(render(stored, ResultFormat::Ndjson)).unwrap(),
            "{\"key\":\"Linux\",\"value\":\"3\"}\n{\"key\":\"WINNT\",\"value\":\"12\"}\n"
        );
    }

    #[test]
    fn names_and_settings_are_validated() {
        assert!(valid_name("daily-s3_1"));
        assert!(!valid_name("a/b") && !valid_name(""));
        let good = S3Config {
            bucket: "b".into(),
            access_key_id: Some("a".into()),
            secret_access_key: Some("s".into()),
            ..S3Config::default()
        };
        let mut outputs = BTreeMap::from([("daily".to_string(), good.clone())]);
        assert!(validate(&outputs).is_ok());
        outputs.insert("bad name".into(), good.clone());
        assert!(validate(&outputs)
            .unwrap_err()
            .contains("jobs.outputs.bad name"));
        let outputs = BTreeMap::from([(
            "nobucket".to_string(),
            S3Config {
                bucket: String::new(),
                ..good
            },
        )]);
        assert!(validate(&outputs)
            .unwrap_err()
            .contains("jobs.outputs.nobucket: invalid S3 configuration: no bucket"));
    }
}
