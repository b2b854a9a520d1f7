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

use crate::api::jobs::JobsConfig;
use crate::export::S3Config;

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
    pub metrics: crate::api::submission_metrics::MetricsConfig,
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
            metrics: crate::api::submission_metrics::MetricsConfig::default(),
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

/// When a submission is acknowledged relative to the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Durability {
    /// One `fdatasync` per request before its 200. Slowest; simplest promise.
    Always,
    /// Group commit: one `fdatasync` covers every request that arrived while the previous one ran;
    /// every 200 follows the sync that covers its record. The default.
    Batch,
    /// 200 once the record is written to the log file (page cache): survives a process crash, not a
    /// power loss or kernel crash.
    None,
}

/// `[ingest]` section.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IngestConfig {
    /// `always | batch | none` (see [`Durability`]).
    pub durability: Durability,
    /// Number of writer shards, each with its own log file and sync thread; 0 means one per CPU but
    /// at least 4 (syncs of different files run in parallel: more shards, more records synced per
    /// second in `batch` mode).
    pub shards: usize,
    /// Rotate a log once it holds at least this many bytes.
    pub max_log_size: u64,
    /// Rotate a non-empty log this many milliseconds after its first record, busy or not.
    pub max_log_age_ms: u64,
    /// Base of raw log names: `<base>.v2.<host>.<pid>_<shard>.<ms>`, then `.finished`.
    pub log_base: String,
    /// Submissions per shard that may be writing or waiting for their sync; beyond
    /// `shards × queue_capacity` requests get 503 (overload).
    pub queue_capacity: usize,
}

impl Default for IngestConfig {
    fn default() -> Self {
        IngestConfig {
            durability: Durability::Batch,
            shards: 0,
            max_log_size: 64 * 1024 * 1024,
            max_log_age_ms: 60_000,
            log_base: "telemetry.log".to_string(),
            queue_capacity: 4096,
        }
    }
}

impl ConvertConfig {
    /// Where Histograms.json files come from.
    pub fn definition_sources(&self) -> crate::convert::DefinitionSources {
        crate::convert::DefinitionSources {
            dirs: self.histogram_dirs.clone(),
            server: self.histogram_server.clone(),
            timeout: std::time::Duration::from_secs(self.histogram_fetch_timeout_secs),
            retry_after: std::time::Duration::from_secs(self.histogram_fetch_retry_secs),
            cache_entries: self.histogram_cache_entries,
            cache_misses: self.histogram_cache_misses,
            fetch_concurrency: self.histogram_fetch_concurrency,
        }
    }
}

impl IngestConfig {
    /// The number of shards to run (`shards`, or when 0 the CPU count but at least 4).
    pub fn shard_count(&self) -> usize {
        if self.shards > 0 {
            self.shards
        } else {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
                .max(4)
        }
    }
}

/// `[convert]` section.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConvertConfig {
    /// Convert `.finished` raw logs into storage in the background while serving.
    pub enabled: bool,
    /// Background conversion threads (the pool is bounded: finished logs wait on disk, not in memory).
    pub workers: usize,
    /// Threads converting the records of one log (stored in order: the output is the same for
    /// any number); 0 = one per CPU core.
    pub threads: usize,
    /// Seconds between scans of `raw/` for finished logs (rotations also wake the pool at once).
    pub scan_interval_secs: u64,
    /// Seconds between flushes of converted storage (finishing open partition files); raw logs are
    /// retired only after the flush that covers them.
    pub flush_secs: u64,
    /// After conversion, keep the raw log in `raw/converted/` (true) or delete it (false).
    pub keep_raw: bool,
    /// `telemetry_schema.json` deciding the storage dimensions; unset means the seed's production schema.
    pub schema: Option<PathBuf>,
    /// Extra Histograms.json directories searched before the embedded definitions (by conversion and
    /// by the `/histograms` endpoints); the seed's cache layout `<dir>/<repo>/<rev>/Histograms.json`.
    pub histogram_dirs: Vec<PathBuf>,
    /// Fetch the Histograms.json of a revision found nowhere else from this URL template
    /// (`{repo}` and `{rev}` are filled in; the seed's source is
    /// `https://hg.mozilla.org/{repo}/raw-file/{rev}/toolkit/components/telemetry/Histograms.json`),
    /// caching it in `histograms/` under the data dir; `"hg"` stands for that URL. Unset: never fetch.
    pub histogram_server: Option<String>,
    /// Timeout of one fetch, in seconds.
    pub histogram_fetch_timeout_secs: u64,
    /// Largest body a gzip submission may inflate to before it is rejected as `corrupted_data`
    /// (the 2013 C++ converter's `max_uncompressed`).
    pub max_uncompressed_bytes: usize,
    /// Codec and level of new partition files: `zstd`, `zstd:LEVEL` (1–22), `xz`, `xz:PRESET`
    /// (0–9).
    pub codec: crate::storage::Codec,
    /// After a fetch fails in a way that may pass (timeout, refused, 5xx), seconds before that
    /// revision is tried again (pings needing it meanwhile are rejected as `missing_histograms`).
    pub histogram_fetch_retry_secs: u64,
    /// How strictly pings are checked: `keep` (default) every valid ping — own definitions,
    /// else each histogram's own parameters, else the nearest definitions, dropping and counting
    /// histograms that do not validate; `nearest` definitions only; or `reject` as the 2013
    /// converter did.
    pub unknown_revision: crate::convert::UnknownRevision,
    /// Revisions with definitions the in-memory Histograms.json cache keeps, least recently used
    /// evicted first. Bounds the memory anonymous `/histograms?revision=` lookups and ping
    /// revisions can take.
    pub histogram_cache_entries: usize,
    /// Revisions known to be missing the cache keeps, apart from the ones with definitions (so a
    /// flood of unknown revisions never evicts definitions in use); least recently used first.
    pub histogram_cache_misses: usize,
    /// Fetches from `histogram_server` running at once (one per revision in any case); a lookup
    /// beyond it waits for a slot, up to `histogram_fetch_timeout_secs`, then misses.
    pub histogram_fetch_concurrency: usize,
    /// Longest dimension value (bytes) stored as is in a partition path; a longer one is stored
    /// as `OTHER`.
    pub dimension_max_bytes: usize,
    /// Regular expression a dimension value must match to be stored as is (schema dimensions
    /// allowing `"*"` or a range); other values are stored as `OTHER`. Empty: no pattern.
    pub dimension_pattern: String,
    /// De-duplication by document id: a record whose id was stored within this many days of
    /// submission dates (counting back from the newest seen) is not stored again. The index is
    /// `dedup/ids.redb` under the data dir, shared with `convert`; 0 disables.
    pub dedup_window_days: u32,
}

impl Default for ConvertConfig {
    fn default() -> Self {
        ConvertConfig {
            enabled: true,
            workers: 1,
            threads: 0,
            scan_interval_secs: 5,
            flush_secs: 60,
            keep_raw: true,
            schema: None,
            histogram_dirs: Vec::new(),
            histogram_server: None,
            histogram_fetch_timeout_secs: 10,
            max_uncompressed_bytes: crate::rawlog::DEFAULT_BODY_LIMIT,
            codec: crate::storage::Codec::Zstd { level: 3 },
            histogram_fetch_retry_secs: 300,
            unknown_revision: crate::convert::UnknownRevision::Keep,
            histogram_cache_entries: crate::histograms::DEFAULT_CACHE_ENTRIES,
            histogram_cache_misses: crate::histograms::DEFAULT_CACHE_MISSES,
            histogram_fetch_concurrency: crate::histograms::DEFAULT_FETCH_CONCURRENCY,
            dimension_max_bytes: crate::storage::DEFAULT_DIMENSION_MAX_BYTES,
            dimension_pattern: crate::storage::DEFAULT_DIMENSION_PATTERN.to_string(),
            dedup_window_days: 7,
        }
    }
}

/// Errors loading the configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid config file {path}: {source}")]
    Parse {
        path: PathBuf,
        source: toml::de::Error,
    },
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

impl ConvertConfig {
    /// [`ConvertConfig::threads`] with 0 resolved to the number of CPU cores.
    pub fn threads(&self) -> usize {
        match self.threads {
            0 => crate::convert::default_threads(),
            n => n,
        }
    }
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

    /// Rejects values the server cannot run with.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |msg: &str| Err(ConfigError::Invalid(msg.to_string()));
        if self.server.max_data_length == 0 {
            return invalid("server.max_data_length must be > 0");
        }
        if self.server.namespaces.is_empty() {
            return invalid("server.namespaces must name at least one namespace");
        }
        if self
            .server
            .namespaces
            .iter()
            .any(|ns| ns.is_empty() || ns.contains('/'))
        {
            return invalid("server.namespaces entries must be non-empty and contain no '/'");
        }
        if self.ingest.max_log_size == 0 || self.ingest.max_log_age_ms == 0 {
            return invalid("ingest.max_log_size and ingest.max_log_age_ms must be > 0");
        }
        if self.ingest.queue_capacity == 0 {
            return invalid("ingest.queue_capacity must be > 0");
        }
        if self.ingest.log_base.is_empty() || self.ingest.log_base.contains('/') {
            return invalid("ingest.log_base must be a plain file name");
        }
        if self.convert.enabled && self.convert.workers == 0 {
            return invalid("convert.workers must be > 0 when convert.enabled");
        }
        if self.convert.max_uncompressed_bytes == 0 {
            return invalid("convert.max_uncompressed_bytes must be > 0");
        }
        if self.server.max_connections == 0 {
            return invalid("server.max_connections must be > 0");
        }
        if self.server.header_read_timeout_secs == 0
            || self.server.idle_timeout_secs == 0
            || self.server.body_read_timeout_secs == 0
        {
            return invalid("server.header_read_timeout_secs, idle_timeout_secs and body_read_timeout_secs must be > 0");
        }
        if self.convert.histogram_cache_entries == 0
            || self.convert.histogram_cache_misses == 0
            || self.convert.histogram_fetch_concurrency == 0
        {
            return invalid("convert.histogram_cache_entries, histogram_cache_misses and histogram_fetch_concurrency must be > 0");
        }
        if self.convert.dimension_max_bytes == 0 {
            return invalid("convert.dimension_max_bytes must be > 0");
        }
        self.dimension_policy()?;
        self.errors.validate().map_err(ConfigError::Invalid)?;
        self.retention.validate().map_err(ConfigError::Invalid)?;
        self.jobs.validate().map_err(ConfigError::Invalid)?;
        self.metrics.validate().map_err(ConfigError::Invalid)?;
        Ok(())
    }

    /// The dimension value policy of `[convert]` (length cap and pattern), ready to use.
    pub fn dimension_policy(&self) -> Result<crate::storage::ValuePolicy, ConfigError> {
        crate::storage::ValuePolicy::new(
            self.convert.dimension_max_bytes,
            &self.convert.dimension_pattern,
        )
        .map_err(|e| ConfigError::Invalid(format!("convert.dimension_pattern: {e}")))
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
        if let Some(s3) = &mut config.s3 {
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
        let mut c = Config::default();
        c.s3 = Some(S3Config {
            access_key_id: Some("AKIDVISIBLE".into()),
            secret_access_key: Some("s3-secret-value".into()),
            session_token: Some("s3-session-value".into()),
            ..S3Config::default()
        });
        c.jobs.tokens = vec![crate::api::jobs::TokenConfig {
            name: "alice".into(),
            sha256: "ab".repeat(32),
            role: crate::api::jobs::Role::Submit,
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
    fn round_trips_through_toml() {
        let c = Config::default();
        let back = Config::from_toml(&c.to_toml()).unwrap();
        assert_eq!(back.server.listen, c.server.listen);
        assert_eq!(back.ingest.max_log_size, c.ingest.max_log_size);
    }
}
