//! [`S3Error`]: what can go wrong configuring S3, exporting to it or reading from it; every
//! variant names the bucket/key or local path concerned.

/// Errors from S3 configuration, export and reading.
#[derive(Debug, thiserror::Error)]
pub enum S3Error {
    /// A setting is missing or unusable (the message names it and how to set it).
    #[error("invalid S3 configuration: {0}")]
    Config(String),
    /// An S3 request failed after the SDK's retries; `message` holds the whole error chain.
    #[error("S3 {op} s3://{bucket}/{key}: {message}")]
    Request {
        /// The S3 operation (`PutObject`, `HeadObject`, …).
        op: &'static str,
        /// The bucket addressed.
        bucket: String,
        /// The object key addressed.
        key: String,
        /// The whole error chain, as text.
        message: String,
    },
    /// A local file (export source, journal) could not be read or written.
    #[error("i/o error on {path}: {source}")]
    Io {
        /// The local file.
        path: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// After an upload, HEAD did not show an object of the local size and SHA-256; the local
    /// copy is kept.
    #[error("upload of {key} not confirmed: local {local}, remote {remote}")]
    NotConfirmed {
        /// The object key uploaded.
        key: String,
        /// Size and checksum of the local file.
        local: String,
        /// Size and checksum S3 reports for the object.
        remote: String,
    },
}

impl S3Error {
    /// Wraps any SDK error with the operation and object it concerns (full error chain in the message).
    pub fn request(op: &'static str, bucket: &str, key: &str, err: impl std::error::Error) -> Self {
        let message = crate::error_chain::error_chain(&err);
        S3Error::Request {
            op,
            bucket: bucket.into(),
            key: key.into(),
            message,
        }
    }

    pub(crate) fn io(path: impl std::fmt::Display, source: std::io::Error) -> Self {
        S3Error::Io {
            path: path.to_string(),
            source,
        }
    }
}
