//! Server configuration: embedded defaults, overridden by a TOML file, environment variables and flags.
//!
//! Precedence, lowest first: [`Config::default`] (works with no file: listen `127.0.0.1:8080`, data dir
//! `./data`, no S3), the TOML file (`serve --config FILE` or `TELEMETRY_CONFIG`), then the environment
//! variables and command-line flags of `serve` (see `cli/serve.rs`; each flag has a `TELEMETRY_*` twin).
//! Every section and key is optional in the file; unknown keys are errors so typos do not pass silently
//! (the seed's "spot" config misspelled `max_data_lenth` and ran with defaults for months).
//!
//! `docs/configuration.md` is the reference for every key.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use crate::convert::config::ConvertConfig;
pub use crate::ingest::config::{Durability, IngestConfig};
use crate::jobs::service::config::JobsConfig;
use crate::s3::S3Config;

/// The whole server configuration.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Root of everything the server stores (`raw/`, `storage/`, `errors/`, ...). Opened once with cap-std.
    pub data_dir: PathBuf,
    /// `[server]`: the HTTP listener and the submission API.
    pub server: ServerConfig,
    /// `[ingest]`: raw logs, durability, rotation, overload.
    pub ingest: IngestConfig,
    /// `[convert]`: the live conversion of finished raw logs into storage.
    pub convert: ConvertConfig,
    /// `[jobs]`: the job service (owned by `api::jobs`).
    pub jobs: JobsConfig,
    /// `[s3]`: export to S3; absent means no S3.
    pub s3: Option<S3Config>,
    /// `[errors]`: size limits of the error stream (`errors/`).
    pub errors: crate::convert::ErrorStreamConfig,
    /// `[retention]`: age and size limits of `errors/`, `raw/converted/`, `raw/failed/` and
    /// `histograms/`, enforced by a background sweep.
    pub retention: crate::storage::RetentionConfig,
    /// `[metrics]`: the channels and document types counted under their own label on `/metrics`.
    pub metrics: crate::metrics::MetricsConfig,
    /// `[cluster]`: worker heartbeats, when a silent worker is lost, the member table's size.
    pub cluster: crate::cluster::config::ClusterConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: PathBuf::from("./data"),
            server: ServerConfig::default(),
            ingest: IngestConfig::default(),
            convert: ConvertConfig::default(),
            jobs: JobsConfig::default(),
            s3: None,
            errors: crate::convert::ErrorStreamConfig::default(),
            retention: crate::storage::RetentionConfig::default(),
            metrics: crate::metrics::MetricsConfig::default(),
            cluster: crate::cluster::config::ClusterConfig::default(),
        }
    }
}

/// `[server]` section.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Address and port to listen on; port 0 picks a free port.
    pub listen: SocketAddr,
    /// Largest accepted body in bytes (`Content-Length`); the seed's `max_data_length`.
    pub max_data_length: u32,
    /// Largest accepted stored path (after the prefix) in bytes; the seed's `max_path_length`.
    pub max_path_length: u16,
    /// Longest client IP string kept; longer values are stored as `0.0.0.0` (seed `max_ip_length`).
    pub max_ip_length: u8,
    /// Status for an oversize body or path: `202` (seed: the client discards it and does not retry) or
    /// `413`/`414` (`"http"`: the standard codes).
    pub oversize_status: OversizeStatus,
    /// Header holding the real client IP when behind a proxy (e.g. `X-Forwarded-For`); stored verbatim.
    /// Unset: the socket's peer address is used.
    pub client_ip_header: Option<String>,
    /// Peers (exact IPs) allowed to set `client_ip_header`; empty means none is (the header is
    /// ignored and the socket peer is used), so a forgotten list fails closed.
    pub trusted_proxies: Vec<std::net::IpAddr>,
    /// Document namespaces accepted under `/submit/<namespace>/`. `telemetry` paths are stored without
    /// the prefix (as the seed did); other namespaces are stored as `<namespace>/<rest>`.
    pub namespaces: Vec<String>,
    /// Optional per-request JSON-lines stats log in the seed's format (one line per response).
    pub stats_log: Option<PathBuf>,
    /// Seconds to wait for in-flight requests on shutdown before closing connections.
    pub shutdown_grace_secs: u64,
    /// Most connections open at once. At the cap the server stops accepting (new clients wait in
    /// the kernel's backlog) until one closes: back-pressure against fd exhaustion by idle sockets.
    pub max_connections: usize,
    /// Seconds a client has to send a complete request head (line + headers), from the moment the
    /// server starts reading it; guards against slowloris clients dripping header bytes.
    pub header_read_timeout_secs: u64,
    /// Seconds a connection may sit with no request in flight and no bytes moving (a fresh
    /// connection that sends nothing, a keep-alive connection between requests, a client that
    /// stopped reading its response) before it is closed.
    pub idle_timeout_secs: u64,
    /// Seconds from the request head to the end of its body; a slower body is cut off (408 on
    /// the submission API) and the connection closed.
    pub body_read_timeout_secs: u64,
    /// Permission bits taken from every file and directory the server creates, octal text
    /// (`"077"`: files 0600, directories 0700; `"027"` lets the group read, e.g. for backups).
    /// The data directory itself is tightened to match at start.
    pub umask: crate::storage::file_mode::Umask,
}

impl ServerConfig {
    /// Rejects values the listener and the submission API cannot run with.
    pub fn validate(&self) -> Result<(), String> {
        if self.max_data_length == 0 {
            return Err("server.max_data_length must be > 0".into());
        }
        if self.namespaces.is_empty() {
            return Err("server.namespaces must name at least one namespace".into());
        }
        if self
            .namespaces
            .iter()
            .any(|ns| ns.is_empty() || ns.contains('/'))
        {
            return Err("server.namespaces entries must be non-empty and contain no '/'".into());
        }
        if self.max_connections == 0 {
            return Err("server.max_connections must be > 0".into());
        }
        if self.header_read_timeout_secs == 0
            || self.idle_timeout_secs == 0
            || self.body_read_timeout_secs == 0
        {
            return Err("server.header_read_timeout_secs, idle_timeout_secs and body_read_timeout_secs must be > 0".into());
        }
        Ok(())
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            max_data_length: 204_800,
            max_path_length: 10_240,
            max_ip_length: 100,
            oversize_status: OversizeStatus::Seed,
            client_ip_header: None,
            trusted_proxies: Vec::new(),
            namespaces: vec!["telemetry".to_string()],
            stats_log: None,
            shutdown_grace_secs: 30,
            max_connections: 1024,
            header_read_timeout_secs: 10,
            idle_timeout_secs: 30,
            body_read_timeout_secs: 60,
            umask: crate::storage::file_mode::Umask::PRIVATE,
        }
    }
}

/// What an oversize body or path gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OversizeStatus {
    /// `202 Accepted` with a message: the seed's choice, so clients drop the submission instead of retrying.
    Seed,
    /// `413 Payload Too Large` / `414 URI Too Long`.
    Http,
}

/// Errors loading the configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The config file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The config file's path.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The config file is not valid TOML for [`Config`].
    #[error("invalid config file {path}: {source}")]
    Parse {
        /// The config file's path.
        path: PathBuf,
        /// The parse error, with its location.
        source: toml::de::Error,
    },
    /// A value is out of range or sections contradict each other.
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

impl Config {
    /// Defaults overridden by the TOML file at `path`, if any.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        let config = match path {
            None => Config::default(),
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.to_path_buf(),
                    source,
                })?;
                Config::from_toml(&text).map_err(|source| ConfigError::Parse {
                    path: path.to_path_buf(),
                    source,
                })?
            }
        };
        config.validate()?;
        Ok(config)
    }

    /// Parses a TOML document over the defaults.
    pub fn from_toml(text: &str) -> Result<Config, toml::de::Error> {
        toml::from_str(text)
    }

    /// Rejects values the server cannot run with: each section checks its own.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.server.validate().map_err(ConfigError::Invalid)?;
        self.ingest.validate().map_err(ConfigError::Invalid)?;
        self.convert.validate().map_err(ConfigError::Invalid)?;
        self.errors.validate().map_err(ConfigError::Invalid)?;
        self.retention.validate().map_err(ConfigError::Invalid)?;
        self.jobs.validate().map_err(ConfigError::Invalid)?;
        self.metrics.validate().map_err(ConfigError::Invalid)?;
        self.cluster.validate().map_err(ConfigError::Invalid)?;
        Ok(())
    }

    /// The dimension value policy of `[convert]` (length cap and pattern), ready to use.
    pub fn dimension_policy(&self) -> Result<crate::storage::ValuePolicy, ConfigError> {
        self.convert
            .dimension_policy()
            .map_err(ConfigError::Invalid)
    }

    /// The configuration as TOML (for `serve --print-config`), with its secrets replaced by
    /// [`REDACTED`] (see [`Config::redacted`]): the output ends up in terminals, logs and tickets.
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(&self.redacted()).unwrap_or_default()
    }

    /// A copy with every secret set replaced by [`REDACTED`]: S3 `secret_access_key` and
    /// `session_token` (of `[s3]` and of each `[jobs.sources]` entry), and each job token's `sha256` (a hash, but of a token that may be guessable).
    /// Unset secrets stay unset, so the output still shows which ones are configured.
    pub fn redacted(&self) -> Config {
        let mut config = self.clone();
        // `[s3]`, every `[jobs.outputs.NAME]` and every S3 `[jobs.sources.NAME]` hold S3
        // credentials.
        for s3 in config.s3.iter_mut().chain(config.jobs.outputs.values_mut()) {
            s3.redact(REDACTED);
        }
        for source in config.jobs.sources.values_mut() {
            if let crate::jobs::sources::SourceConfig::S3(s3) = source {
                s3.redact(REDACTED);
            }
        }
        for token in &mut config.jobs.tokens {
            token.sha256 = REDACTED.to_string();
        }
        config
    }
}

/// What [`Config::to_toml`] prints in place of a secret.
pub const REDACTED: &str = "<redacted>";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_work_without_a_file() {
        let c = Config::load(None).unwrap();
        assert_eq!(c.server.listen, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(c.data_dir, PathBuf::from("./data"));
        assert!(c.s3.is_none());
        assert_eq!(c.ingest.durability, Durability::Batch);
        assert_eq!(c.server.max_data_length, 204_800);
    }

    #[test]
    fn file_overrides_defaults_and_rejects_typos() {
        let c = Config::from_toml(
            "data_dir = \"/srv/t\"\n[server]\nlisten = \"0.0.0.0:9000\"\noversize_status = \"http\"\n\
             [ingest]\ndurability = \"none\"\nshards = 3\n",
        )
        .unwrap();
        assert_eq!(c.server.listen.port(), 9000);
        assert_eq!(c.server.oversize_status, OversizeStatus::Http);
        assert_eq!(c.ingest.durability, Durability::None);
        assert_eq!(c.ingest.shard_count(), 3);
        assert_eq!(c.ingest.max_log_age_ms, 60_000, "unset keys keep defaults");
        let err = Config::from_toml("[server]\nmax_data_lenth = 5\n").unwrap_err();
        assert!(err.to_string().contains("max_data_lenth"), "{err}");
    }

    #[test]
    fn printed_config_redacts_every_secret() {
        let mut c = Config {
            s3: Some(S3Config {
                access_key_id: Some("AKIDVISIBLE".into()),
                secret_access_key: Some("s3-secret-value".into()),
                session_token: Some("s3-session-value".into()),
                ..S3Config::default()
            }),
            ..Config::default()
        };
        c.jobs.tokens = vec![crate::jobs::service::auth::TokenConfig {
            name: "alice".into(),
            sha256: "ab".repeat(32),
            role: crate::jobs::service::auth::Role::Submit,
        }];
        let printed = c.to_toml();
        for secret in ["s3-secret-value", "s3-session-value", &"ab".repeat(32)] {
            assert!(!printed.contains(secret), "{secret} printed:\n{printed}");
        }
        assert_eq!(
            printed.matches(&format!("\"{REDACTED}\"")).count(),
            3,
            "{printed}"
        );
        // What is not secret is still shown, and the original is untouched.
        assert!(
            printed.contains("AKIDVISIBLE") && printed.contains("alice"),
            "{printed}"
        );
        assert_eq!(
            c.s3.unwrap().secret_access_key.as_deref(),
            Some("s3-secret-value")
        );
    }

    #[test]
    fn printed_config_redacts_output_secrets() {
        let mut c = Config::default();
        c.jobs.outputs.insert(
            "daily".into(),
            S3Config {
                bucket: "results".into(),
                secret_access_key: Some("output-secret-value".into()),
                ..S3Config::default()
            },
        );
        let printed = c.to_toml();
        assert!(!printed.contains("output-secret-value"), "{printed}");
        assert!(
            printed.contains("[jobs.outputs.daily]") && printed.contains("results"),
            "{printed}"
        );
    }

    #[test]
    fn round_trips_through_toml() {
        let c = Config::default();
        let back = Config::from_toml(&c.to_toml()).unwrap();
        assert_eq!(back.server.listen, c.server.listen);
        assert_eq!(back.ingest.max_log_size, c.ingest.max_log_size);
    }
}
