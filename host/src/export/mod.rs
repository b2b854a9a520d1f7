//! Export to S3 (finished partition files and raw logs) and S3 as a job data source.

/// `[s3]` section of the server configuration; `None` in the config means no S3.
#[derive(Debug, Clone, Default, serde::Deserialize, serde::Serialize)]
#[serde(default)]
pub struct S3Config {}
