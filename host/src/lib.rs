//! Telemetry Server: receives, validates, converts, stores and analyses Firefox Telemetry.
//!
//! The modules follow the pipeline, and data flows one way through them:
//!
//! ```text
//! ingest ─▶ rawlog ─▶ convert (histograms) ─▶ storage ─▶ export (S3)
//!                                                 │
//!                                                 ▼
//!                          jobs (wasmtime + timely MapReduce) ◀─ api (HTTP) ◀─ users
//! ```
//!
//! - [`rawlog`]: the raw submission log (v0/v1/v2 byte layouts), written by ingest.
//! - [`histograms`]: Histograms.json definitions, bucket formulas, revision resolution.
//! - [`convert`]: raw submissions → validated, compact JSON records + a bad-record stream.
//! - [`storage`]: `telemetry_schema.json` dimensions, partition files (zstd/xz), pruning reader.
//! - [`export`]: finished partition files and raw logs to S3; S3 as a job data source.
//! - [`jobs`]: the Wasm component runtime and the MapReduce executor.
//! - [`cluster`]: timely configuration for one process or many.
//! - [`columns`]: stored documents and job results as Parquet for other tools.
//! - [`ingest`]: the submission server's durable log writer and live conversion.
//! - [`api`]: HTTP routes: submission, job service, metrics.

pub mod api;
pub mod cluster;
pub mod columns;
pub mod config;
pub mod convert;
pub mod error_chain;
pub mod export;
#[doc(hidden)]
pub mod fuzzing;
pub mod histograms;
pub mod ingest;
pub mod jobs;
pub mod rawlog;
pub mod storage;
pub mod user_cache;
