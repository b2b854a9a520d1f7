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
//! The modules are layered in [`STAGES`]: a module uses only modules of earlier stages (its
//! imports point down), and the composition root, [`server`], builds every stage and owns start
//! and shutdown order. `tests/all/layering.rs` checks every `crate::` path against that order.
//!
//! - [`metrics`]: the one Prometheus registry every stage registers its own metrics in.
//! - [`progress`]: progress counters long operations advance (the CLI draws them).
//! - [`mac`]: HMAC-SHA-256 for the compile cache's seals and the cluster handshake.
//! - [`rawlog`]: the raw submission log (v0/v1/v2 byte layouts, file names, the `.finished`
//!   protocol), written by ingest.
//! - [`storage`]: `telemetry_schema.json` dimensions, partition files (zstd/xz), pruning reader,
//!   the data directory, retention.
//! - [`histograms`]: Histograms.json definitions, bucket formulas, revision resolution.
//! - [`s3`]: the S3 transport (client, key layout, the S3 partition source) shared by export
//!   and by jobs reading S3.
//! - [`convert`]: raw submissions → validated, compact JSON records + a bad-record stream; live
//!   conversion of finished raw logs.
//! - [`ingest`]: the submission server's durable log writer and crash recovery.
//! - [`export`]: finished partition files and raw logs to S3.
//! - [`cluster`]: timely configuration for one process or many, and the authenticated mesh
//!   (handshake with a per-run secret) between processes.
//! - [`jobs`]: the Wasm component runtime, the MapReduce executor, the scheduler and the job
//!   service.
//! - [`columns`]: stored documents and job results as Parquet for other tools.
//! - [`chart`]: SVG bar charts of job results.
//! - [`config`]: the server configuration, composing each stage's section.
//! - [`api`]: HTTP routes: submission, job service, metrics, dashboard.
//! - [`server`]: the composition root of `serve`.

#![warn(missing_docs)]

/// The stages, lowest first: a module may use (`crate::…`) only modules of an earlier stage and
/// its own. `tests/all/layering.rs` fails on any other `crate::` path in `host/src`.
#[doc(hidden)]
pub const STAGES: &[&[&str]] = &[
    &["error_chain", "user_cache", "metrics", "progress", "mac"],
    &["rawlog"],
    &["storage"],
    &["histograms"],
    &["s3"],
    &["convert"],
    &["ingest"],
    &["export"],
    &["cluster"],
    &["jobs"],
    &["columns"],
    &["chart"],
    &["fuzzing"],
    &["config"],
    &["api"],
    &["server"],
];

pub mod api;
pub mod chart;
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
pub mod mac;
pub mod metrics;
pub mod progress;
pub mod rawlog;
pub mod s3;
pub mod server;
pub mod storage;
pub mod user_cache;
