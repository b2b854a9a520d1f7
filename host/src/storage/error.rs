//! [`StorageError`]: everything that can go wrong reading or writing storage, with the path
//! (relative to the data directory) or schema it concerns.

/// Errors from reading or writing storage.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// A file-system operation failed.
    #[error("i/o error on {path}: {source}")]
    Io {
        /// The file or directory, relative to the data directory where possible.
        path: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A path given as a data directory to read from is not one.
    #[error("{path} is not a data directory: {reason}")]
    NotDataDir {
        /// The path given.
        path: String,
        /// What is missing.
        reason: String,
    },
    /// A schema or filter document is not valid.
    #[error("invalid schema {origin}: {message}")]
    Schema {
        /// Where the document came from (a path, or `"<inline>"`).
        origin: String,
        /// What is wrong with it.
        message: String,
    },
    /// A record's dimensions do not match the schema's.
    #[error("expected {expected} dimension values, got {actual}")]
    DimensionCount {
        /// Dimensions in the schema.
        expected: usize,
        /// Values given.
        actual: usize,
    },
    /// A name that must be one plain path component is not (`..`, `/`, empty, absolute).
    #[error("invalid directory name {name:?}: must be one plain path component")]
    InvalidName {
        /// The rejected name.
        name: String,
    },
    /// A file's extension names no known codec.
    #[error("unknown compression for {path}: expected .zst, .xz, .lzma, .gz or .log")]
    UnknownCodec {
        /// The file.
        path: String,
    },
    /// A codec specification (`zstd:3`, `xz:1`) could not be parsed.
    #[error("invalid codec {spec:?}: expected zstd[:LEVEL 1-22] or xz[:PRESET 0-9]")]
    InvalidCodec {
        /// The rejected specification.
        spec: String,
    },
    /// A stored line without the tab between id and JSON.
    #[error("{path}: line {line} has no tab between id and JSON")]
    BadLine {
        /// The partition file.
        path: String,
        /// 1-based line number.
        line: u64,
    },
    /// A directory that must be private (owned by this user, `0700`) is not and cannot be made so.
    #[error("{path} is not private: {reason}")]
    NotPrivate {
        /// The directory.
        path: String,
        /// Who owns it or what is wrong.
        reason: String,
    },
    /// A failure in another partition source (for example S3).
    #[error("{path}: {source}")]
    Source {
        /// The file or key concerned.
        path: String,
        /// The underlying error.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl StorageError {
    /// Wraps an I/O error with the path it concerns.
    pub fn io(path: impl Into<String>, source: std::io::Error) -> Self {
        StorageError::Io {
            path: path.into(),
            source,
        }
    }
}
