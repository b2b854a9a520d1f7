//! HTTP routes: the submission API (ingest), the job service (`/api/v1`), metrics.

pub mod jobs;
