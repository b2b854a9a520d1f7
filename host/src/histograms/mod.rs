//! Histogram definitions: Histograms.json of every era, bucket formulas, the seed's bucket-spec
//! document, and revision resolution (which definitions describe a ping).
//!
//! - [`Definitions::from_json`] parses a raw Histograms.json (string parameters with arithmetic,
//!   every kind) or a bucket-spec document; never panics.
//! - [`bucket_spec_json`] / [`bucket_spec_string`] produce what the seed's histogram server
//!   served at `/histogram_buckets`.
//! - [`RevisionCache`] finds definitions by revision URL, spec directories, embedded files and
//!   the channel/build-id/version [`RevisionTable`]; with a [`Fetcher`], from an hg server.
//! - [`import`] reads the history of Histograms.json from local hg or git clones into
//!   content-addressed files and a revision table.

mod bucket_spec;
mod buckets;
mod definitions;
mod fetch;
mod history;
mod lru;
mod params;
pub(crate) mod raw_object;
mod revisions;

pub use bucket_spec::{bucket_spec_json, bucket_spec_string, BucketSpec};
pub use buckets::MAX_BUCKETS;
pub use definitions::{BucketLayout, Definition, DefinitionError, Definitions, Kind, SpecError};
pub use fetch::{
    FetchError, FetchStats, Fetcher, TemplateError, DEFAULT_FETCH_CONCURRENCY, HG_TEMPLATE,
};
pub use history::{import, HistoryError, ImportSummary, Repository, HISTOGRAMS_PATH};
pub use lru::Lru;
pub use params::{eval_expr, eval_param};
pub use raw_object::RawObject;
pub use revisions::{
    is_hg_hash, patch_cpp_constants, CacheStats, Query, ResolveError, Resolved, RevisionCache,
    RevisionStats, RevisionTable, RevisionUrl, Source, TableEntry, DEFAULT_CACHE_ENTRIES,
    DEFAULT_CACHE_MISSES, SEED_CONSTANTS, TABLE_FILE,
};
