//! Export to S3: finished partition files and raw logs, over the transport of [`crate::s3`]
//! (whose [`S3Config`] and [`S3Error`] are re-exported here).
//!
//! - [`journal`]: the local, compacted record of started and confirmed uploads that makes export
//!   resumable and spares requests.
//! - [`upload`]: one file to one key: HEAD only when the journal says it may be there, streamed
//!   PUT or streamed multipart.
//! - [`exporter`]: scans the data dir, uploads in parallel, deletes confirmed local copies, loops.
//! - [`progress`]: the exporter's live figures and metrics.

mod digest;
pub mod exporter;
pub mod journal;
pub mod progress;
pub mod upload;

pub use crate::s3::{S3Config, S3Error};
pub use exporter::{ExportReport, ExportTask, Exporter};
