//! The job service API under `/api/v1` (upload, queue, status, results). Placeholder until it lands.

/// `[jobs]` section of the server configuration.
#[derive(Debug, Clone, Default, serde::Deserialize, serde::Serialize)]
#[serde(default)]
pub struct JobsConfig {}
