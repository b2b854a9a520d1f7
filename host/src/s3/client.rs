//! Builds the `aws-sdk-s3` client from an [`S3Config`]: rustls (ring) HTTP client, static
//! credentials, path-style, request/response checksums only "when required" (so non-AWS stores
//! accept streamed bodies), standard retries with exponential backoff; optionally counting the
//! requests it sends ([`super::requests`]).

use std::sync::Arc;
use std::time::Duration;

use aws_sdk_s3::config::{
    BehaviorVersion, Credentials, Region, RequestChecksumCalculation, ResponseChecksumValidation,
};
use aws_smithy_http_client::tls::{rustls_provider::CryptoMode, Provider};
use aws_smithy_types::retry::RetryConfig;

use super::requests::{CountRequests, RequestCounter};
use super::{S3Config, S3Error};

/// A client for `cfg` (validated first). Must be used from within a tokio runtime.
pub fn build(cfg: &S3Config) -> Result<aws_sdk_s3::Client, S3Error> {
    build_counted(cfg, None)
}

/// [`build`], counting every request sent into `counter` when given.
pub fn build_counted(
    cfg: &S3Config,
    counter: Option<Arc<RequestCounter>>,
) -> Result<aws_sdk_s3::Client, S3Error> {
    cfg.validate()?;
    let credentials = Credentials::new(
        cfg.access_key_id.clone().unwrap_or_default(),
        cfg.secret_access_key.clone().unwrap_or_default(),
        cfg.session_token.clone(),
        None,
        "telemetry-server-config",
    );
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::Ring))
        .build_https();
    let retry = RetryConfig::standard()
        .with_max_attempts(cfg.max_attempts)
        .with_initial_backoff(Duration::from_millis(200))
        .with_max_backoff(Duration::from_secs(5));
    let mut builder = aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .http_client(http)
        .region(Region::new(cfg.region.clone()))
        .credentials_provider(credentials)
        .force_path_style(cfg.path_style)
        .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
        .response_checksum_validation(ResponseChecksumValidation::WhenRequired)
        .retry_config(retry);
    if let Some(endpoint) = &cfg.endpoint {
        builder = builder.endpoint_url(endpoint);
    }
    if let Some(counter) = counter {
        builder = builder.interceptor(CountRequests(counter));
    }
    Ok(aws_sdk_s3::Client::from_conf(builder.build()))
}

/// Creates `bucket` unless it exists already (HEAD first; "already owned" counts as success).
pub async fn ensure_bucket(client: &aws_sdk_s3::Client, bucket: &str) -> Result<(), S3Error> {
    if client.head_bucket().bucket(bucket).send().await.is_ok() {
        return Ok(());
    }
    match client.create_bucket().bucket(bucket).send().await {
        Ok(_) => Ok(()),
        Err(err) => {
            let service = err.as_service_error();
            if service
                .is_some_and(|e| e.is_bucket_already_owned_by_you() || e.is_bucket_already_exists())
            {
                Ok(())
            } else {
                Err(S3Error::request("CreateBucket", bucket, "", err))
            }
        }
    }
}
