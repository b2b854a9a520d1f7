//! Export to S3 (finished partition files and raw logs) and S3 as a job data source.
//!
//! - [`S3Config`]: where and how to reach the bucket (`[s3]` in the server config, or flags).
//! - [`S3Error`]: errors naming the object or file concerned.
//! - [`client`]: builds the trimmed `aws-sdk-s3` client (path-style, checksums "when required").
//! - [`keys`]: the seed's key layout (partition path relative to the data root; raw log file name).
//! - [`journal`]: the local, compacted record of started and confirmed uploads that makes export
//!   resumable and spares requests.
//! - [`upload`]: one file to one key: HEAD only when the journal says it may be there, streamed
//!   PUT or streamed multipart.
//! - [`requests`]: counts the S3 requests sent, by kind.
//! - [`exporter`]: scans the data dir, uploads in parallel, deletes confirmed local copies, loops.
//! - [`source`]: [`S3Source`], a [`crate::storage::PartitionSource`] over `s3://bucket/prefix`.

pub mod client;
mod config;
mod digest;
mod error;
pub mod exporter;
pub mod journal;
pub mod keys;
mod prefetch;
pub mod progress;
pub mod requests;
pub mod source;
mod stream;
pub mod upload;

pub use config::{S3Config, MIN_PART_SIZE};
pub use error::S3Error;
pub use exporter::{ExportReport, ExportTask, Exporter};
pub use source::{RawLogObject, S3Source};
