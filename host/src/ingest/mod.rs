//! The submission server's data path: durable raw log writing, crash recovery, live conversion.
//!
//! - [`writer`]: per-shard log writer threads with group commit (`always | batch | none`).
//! - [`logname`]: raw log file names and the `.finished` protocol.
//! - [`recover`]: start-up repair of logs left unfinished by a crash (torn tail cut off).
//! - [`live`]: the bounded background pool converting `.finished` logs into storage.
//! - [`stats_log`]: the seed's optional per-request JSON stats log.
//! - [`disk`]: free space and full-disk errors.
//!
//! The HTTP side (status codes, limits, client IP) lives in `api::submit`.

pub mod config;
pub mod disk;
pub mod metrics;
pub mod recover;
pub mod stats_log;
pub mod writer;

pub use writer::{Record, WriteError, WriterPool};
