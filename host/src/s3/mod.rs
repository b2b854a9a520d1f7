//! The S3 transport shared by export (uploads) and by the storage source that reads S3 (jobs and
//! `convert s3://…`).
//!
//! - [`S3Config`]: where and how to reach the bucket (`[s3]` in the server config, or flags).
//! - [`S3Error`]: errors naming the object or file concerned.
//! - [`client`]: builds the trimmed `aws-sdk-s3` client (path-style, checksums "when required").
//! - [`keys`]: the seed's key layout (partition path relative to the data root; raw log file name).
//! - [`requests`]: counts the S3 requests sent, by kind.
//! - [`source`]: [`S3Source`], a [`crate::storage::PartitionSource`] over `s3://bucket/prefix`,
//!   with its streamed GETs (`stream`) and read-ahead (`prefetch`).

pub mod client;
mod config;
mod error;
pub mod keys;
mod prefetch;
pub mod requests;
pub mod source;
mod stream;

use std::time::Duration;

pub use config::{S3Config, MIN_PART_SIZE};
pub use error::S3Error;
pub use source::{RawLogObject, S3Source};

/// Delay before retry `attempt` (1-based): 250 ms doubling, capped at 8 s.
pub fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(250u64.saturating_mul(1 << attempt.min(5).saturating_sub(1)))
        .min(Duration::from_secs(8))
}

#[cfg(test)]
mod tests {
    #[test]
    fn backoff_doubles_and_is_capped() {
        use super::backoff;
        assert_eq!(backoff(1).as_millis(), 250);
        assert_eq!(backoff(2).as_millis(), 500);
        assert_eq!(backoff(3).as_millis(), 1000);
        assert!(backoff(30).as_secs() <= 8);
    }
}
