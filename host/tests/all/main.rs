//! The integration tests, one binary (wasmtime, cranelift and the AWS SDK are linked once): a
//! module per area, the support modules beside them. Run one area with
//! `cargo test --test all -- server_convert::`.

// Support shared by the areas (and, through `#[path]`, by the benches).
mod chart_support;
mod common;
#[path = "convert_support/defs.rs"]
mod convert_defs;
mod jobs_support;
mod rawlog_support;
mod s3_common;
mod server_support;
// The Rust guest SDK's decimal formatting (dependency-free), compiled in to run its test over the
// table the JavaScript and Python SDKs are tested against too (`loud_failures`).
#[path = "../../../guest-sdk/rust/src/decimal.rs"]
mod sdk_decimal;
// The Rust guest SDK's histogram helpers, over the table every SDK shares (`sdk_histograms`).
#[path = "../../../guest-sdk/rust/src/histogram.rs"]
mod sdk_histogram;

mod cluster_jobs;
mod cluster_transport;
mod cluster_workers;
mod column_cache;
mod column_cache_server;
mod convert;
mod convert_cli;
mod convert_lenient;
mod dashboard;
mod dedup;
mod deploy;
mod first_job;
mod fuzz_smoke;
mod histogram_fetch;
mod histograms;
mod ingest_writer;
mod job_check;
mod job_new;
mod job_results_stream;
mod job_schedules;
mod job_service;
mod jobs;
mod jobs_cache_trust;
mod jobs_cluster;
mod jobs_histograms;
mod jobs_hostile;
mod jobs_languages;
mod jobs_sources;
mod layering;
mod loud_failures;
mod parquet;
mod rawlog;
mod s3_export;
mod s3_jobs;
mod s3_serve;
mod s3_upload;
mod sdk_histograms;
mod server_api;
mod server_binary;
mod server_convert;
mod server_limits;
mod stale_partials;
mod storage;
