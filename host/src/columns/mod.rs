//! Stored telemetry as columnar data for other tools: Parquet files of chosen JSON pointers per
//! partition file (`telemetry-server parquet`, [`export`]; to S3 through [`s3_out`]), and a job's result as Parquet
//! ([`result`]). Column typing rules are in [`typing`]. User documentation: `docs/parquet.md`.
//! (The jobs' own columnar cache is `jobs::column_cache`.)

pub mod export;
pub mod result;
pub mod s3_out;
pub mod typing;

pub use export::{ColumnSpec, ExportError, FileReport, ParquetExport};
pub use result::result_to_parquet;
pub use s3_out::S3Out;
pub use typing::ColumnType;
