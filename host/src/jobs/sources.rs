//! Configured job sources (`[jobs.sources.NAME]`): the named places an API job may read from,
//! picked by the manifest's `"source": "NAME"`. Users choose among names the operator
//! configured, never an endpoint or bucket of their own. Without a `source` a job reads the
//! server's local `storage/`.
//!
//! An S3 source is opened afresh for every run ([`Sources::open`]), so each job has its own
//! listing, read-ahead and fetch bounds: the same [`crate::s3::S3Source`] that
//! `job run --data s3://…` uses (key pruning, pagination, read-ahead).

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::s3::{S3Config, S3Source};
use crate::storage::PartitionSource;

/// Longest source name.
const MAX_NAME_LEN: usize = 64;

/// One `[jobs.sources.NAME]` entry: `kind = "local"` or `kind = "s3"` with the S3 settings
/// (`bucket`, `prefix`, `endpoint`, `region`, credentials, `fetch_concurrency`, `prefetch`, … as
/// in `[s3]`; unset endpoint, region and credentials fall back to the AWS environment variables).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SourceConfig {
    /// The server's own `storage/` (what a job without `source` reads).
    Local,
    /// Partition files under `s3://bucket/prefix`.
    S3(Box<S3Config>),
}

/// Why a manifest's source cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The manifest names a source the server does not configure.
    #[error("unknown source '{name}': {}", known_names(.known))]
    Unknown {
        /// The name asked for.
        name: String,
        /// The configured names.
        known: Vec<String>,
    },
    /// The S3 client for a configured source could not be built.
    #[error("source '{name}': {message}")]
    Open {
        /// The source.
        name: String,
        /// What failed.
        message: String,
    },
}

fn known_names(known: &[String]) -> String {
    if known.is_empty() {
        "this server configures no sources ([jobs.sources]); omit 'source' to read its local storage"
            .into()
    } else {
        format!(
            "this server's sources are {} (omit 'source' to read its local storage)",
            known.join(", ")
        )
    }
}

/// Checks every `[jobs.sources]` entry: names of 1–64 ASCII letters, digits, `-` or `_`, and S3
/// settings complete (bucket, credentials) once the environment defaults are applied.
pub fn validate(sources: &BTreeMap<String, SourceConfig>) -> Result<(), String> {
    for (name, source) in sources {
        let valid_name = !name.is_empty()
            && name.len() <= MAX_NAME_LEN
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !valid_name {
            return Err(format!(
                "jobs.sources.{name}: a source name is 1 to {MAX_NAME_LEN} ASCII letters, digits, '-' or '_'"
            ));
        }
        if let SourceConfig::S3(s3) = source {
            s3.clone()
                .with_env_defaults()
                .validate()
                .map_err(|e| format!("jobs.sources.{name}: {e}"))?;
        }
    }
    Ok(())
}

/// The sources a job may read: the local storage and the configured names.
pub struct Sources {
    local: Arc<dyn PartitionSource>,
    named: BTreeMap<String, SourceConfig>,
}

impl Sources {
    /// `local` is the server's `storage/`; `named` the (validated) `[jobs.sources]`.
    pub fn new(local: Arc<dyn PartitionSource>, named: BTreeMap<String, SourceConfig>) -> Self {
        Sources { local, named }
    }

    /// Only the local storage (no configured sources).
    pub fn local_only(local: Arc<dyn PartitionSource>) -> Self {
        Sources::new(local, BTreeMap::new())
    }

    /// The configuration of `name` (`None`: the local storage).
    pub fn config(&self, name: Option<&str>) -> Result<SourceConfig, SourceError> {
        match name {
            None => Ok(SourceConfig::Local),
            Some(name) => self
                .named
                .get(name)
                .cloned()
                .ok_or_else(|| SourceError::Unknown {
                    name: name.to_string(),
                    known: self.named.keys().cloned().collect(),
                }),
        }
    }

    /// A source to run one job over: the shared local storage, or a fresh [`S3Source`].
    pub fn open(&self, name: Option<&str>) -> Result<Arc<dyn PartitionSource>, SourceError> {
        match self.config(name)? {
            SourceConfig::Local => Ok(self.local.clone()),
            SourceConfig::S3(s3) => S3Source::new(&(*s3).with_env_defaults())
                .map(|s| Arc::new(s) as Arc<dyn PartitionSource>)
                .map_err(|e| SourceError::Open {
                    name: name.unwrap_or_default().to_string(),
                    message: e.to_string(),
                }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<BTreeMap<String, SourceConfig>, toml::de::Error> {
        toml::from_str(text)
    }

    #[test]
    fn local_and_s3_sources_parse_and_validate() {
        let sources = parse(
            r#"
            [mine]
            kind = "local"
            [archive]
            kind = "s3"
            bucket = "telemetry"
            prefix = "published/"
            endpoint = "http://127.0.0.1:9000"
            access_key_id = "a"
            secret_access_key = "b"
            "#,
        )
        .unwrap();
        assert_eq!(sources["mine"], SourceConfig::Local);
        let SourceConfig::S3(s3) = &sources["archive"] else {
            panic!("not s3: {:?}", sources["archive"]);
        };
        assert_eq!(
            (s3.bucket.as_str(), s3.prefix.as_str()),
            ("telemetry", "published/")
        );
        assert_eq!(s3.prefetch, S3Config::default().prefetch);
        validate(&sources).unwrap();
    }

    #[test]
    fn typos_unknown_kinds_and_bad_names_are_refused() {
        assert!(parse("[a]\nkind = \"s3\"\nbuckett = \"x\"").is_err());
        assert!(parse("[a]\nkind = \"ftp\"").is_err());
        assert!(parse("[a]\nbucket = \"x\"").is_err(), "kind is required");
        let bad_name = parse("[\"a b\"]\nkind = \"local\"").unwrap();
        assert!(validate(&bad_name)
            .unwrap_err()
            .contains("jobs.sources.a b"));
        let no_bucket =
            parse("[arch]\nkind = \"s3\"\naccess_key_id = \"a\"\nsecret_access_key = \"b\"")
                .unwrap();
        let err = validate(&no_bucket).unwrap_err();
        assert!(
            err.starts_with("jobs.sources.arch: ") && err.contains("bucket"),
            "{err}"
        );
    }

    #[test]
    fn unknown_names_list_the_configured_ones() {
        let local: Arc<dyn PartitionSource> = Arc::new(EmptySource);
        let none = Sources::local_only(local.clone());
        let err = none.open(Some("archive")).err().unwrap().to_string();
        assert!(
            err.contains("unknown source 'archive'") && err.contains("configures no sources"),
            "{err}"
        );
        let some = Sources::new(
            local,
            parse("[b]\nkind = \"local\"\n[a]\nkind = \"local\"").unwrap(),
        );
        let err = some.open(Some("c")).err().unwrap().to_string();
        assert!(err.contains("sources are a, b"), "{err}");
        assert!(some.open(Some("a")).is_ok() && some.open(None).is_ok());
    }

    #[test]
    fn printed_config_redacts_source_secrets() {
        let mut config = crate::config::Config::default();
        config.jobs.sources = parse(
            "[arch]\nkind = \"s3\"\nbucket = \"b\"\naccess_key_id = \"AKIDSHOWN\"\nsecret_access_key = \"hidden-secret\"",
        )
        .unwrap();
        let printed = config.to_toml();
        assert!(!printed.contains("hidden-secret"), "{printed}");
        assert!(printed.contains("AKIDSHOWN") && printed.contains(crate::config::REDACTED));
    }

    struct EmptySource;
    impl PartitionSource for EmptySource {
        fn list(
            &self,
            _: &crate::storage::Schema,
        ) -> Result<Vec<crate::storage::PartitionFile>, crate::storage::StorageError> {
            Ok(Vec::new())
        }
        fn open(
            &self,
            file: &crate::storage::PartitionFile,
        ) -> Result<Box<dyn std::io::BufRead + Send>, crate::storage::StorageError> {
            Err(crate::storage::StorageError::io(
                file.path.clone(),
                std::io::Error::other("empty"),
            ))
        }
    }
}
