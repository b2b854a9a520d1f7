//! Conversion: raw submissions → validated records with compact histograms, plus a bad-record
//! stream (docs/convert.md).
//!
//! - [`Converter::convert`] turns one [`crate::rawlog::RawRecord`] into a [`Converted`] record
//!   (id, schema-applied dimensions, format version, one-line JSON) or a [`BadRecord`] of the
//!   seed's taxonomy ([`BadRecordKind`]). Classic payloads (`ver` 1/2/3/5) and unified pings
//!   (`version` 4/5: main, saved-session, other types passed through) are handled; histogram
//!   sections (keyed ones too) become compact arrays validated against their definitions
//!   ([`crate::histograms`]); everything else is copied through unparsed. [`ConvertOptions`]
//!   opt into converting pings whose definitions are unavailable ([`UnknownRevision::Nearest`]).
//! - [`Pipeline`] runs a converter into a [`crate::storage::StorageWriter`] and keeps every
//!   rejected record in the error stream under `errors/` ([`ErrorStream`]), returning a
//!   mergeable [`ConvertSummary`].
//! - [`DedupIndex`] (`dedup`): the persistent index of stored document ids that makes
//!   re-conversion idempotent; a [`Pipeline`] uses it with [`Pipeline::with_dedup`].
//! - [`DefinitionSources`] builds the [`crate::histograms::RevisionCache`] from spec directories,
//!   the embedded definitions and an optional histogram server.

mod bad_record;
mod compact;
pub mod config;
mod converter;
pub mod dedup;
mod document;
mod error_input;
mod error_stream;
mod fields;
mod json_scan;
mod layout_cache;
pub mod live;
pub mod metrics;
mod minify;
mod options;
mod parallel;
mod pipeline;
mod saved_session;
mod sources;
mod split;
mod string_scan;
mod summary;
mod validation;

pub use bad_record::{BadRecord, BadRecordKind};
pub use compact::{Basis, HistogramCounts};
pub use converter::{Converted, Converter, DEFAULT_SCHEMA};
pub use error_stream::{
    error_stream_stats, ErrorEntry, ErrorLimits, ErrorStream, ErrorStreamConfig, ErrorStreamStats,
};
pub use layout_cache::{stats as layout_cache_stats, LayoutCacheStats};
pub mod error_limits {
    //! Process-wide limits of the error stream (see [`super::ErrorStream`]).
    pub use super::error_stream::{limits, set_limits, set_total_bytes, MAX_FIELD_BYTES};
}
pub use dedup::{DedupError, DedupIndex};
pub(crate) use json_scan::assert_agrees_with_serde_json;
pub use minify::minify;
pub use options::{ConvertOptions, UnknownRevision};
pub use parallel::default_threads;
pub use pipeline::{ConvertError, InputFormat, Pipeline};
pub use sources::{DefinitionSources, SourceError};
pub use summary::ConvertSummary;
