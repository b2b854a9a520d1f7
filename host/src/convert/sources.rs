//! Where the converter (and the `/histograms` endpoints) find Histograms.json files: extra spec
//! directories, the definitions embedded in the binary, and optionally an hg server whose files
//! are cached under the data dir's `histograms/`.

use std::path::PathBuf;
use std::time::Duration;

use crate::histograms::{Fetcher, RevisionCache, TemplateError};
use crate::storage::{datadir, DataDir, StorageError};

/// The sources, in lookup order after the embedded definitions' place (see [`RevisionCache`]).
#[derive(Debug, Clone, Default)]
pub struct DefinitionSources {
    /// Spec directories searched before the embedded definitions.
    pub dirs: Vec<PathBuf>,
    /// URL template of the histogram server (`{repo}`, `{rev}`); `None`: never fetch.
    pub server: Option<String>,
    /// Deadline of one fetch from the histogram server.
    pub timeout: Duration,
    /// How long a failed fetch is remembered before the revision is tried again.
    pub retry_after: Duration,
    /// Revisions the in-memory cache keeps (0: the default, [`crate::histograms::DEFAULT_CACHE_ENTRIES`]).
    pub cache_entries: usize,
    /// Known misses the in-memory cache keeps (0: the default, [`crate::histograms::DEFAULT_CACHE_MISSES`]).
    pub cache_misses: usize,
    /// Outbound fetches at once (0: the default, [`crate::histograms::DEFAULT_FETCH_CONCURRENCY`]).
    pub fetch_concurrency: usize,
}

/// A source that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// A histogram directory could not be opened.
    #[error("cannot use histogram directory {path}: {source}")]
    Dir {
        /// The directory.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The histogram server URL template is invalid.
    #[error(transparent)]
    Template(#[from] TemplateError),
    /// The on-disk cache of fetched definitions could not be opened.
    #[error("cannot open the histogram cache: {0}")]
    Cache(#[from] StorageError),
}

impl DefinitionSources {
    /// The revision cache over these sources; fetched files are cached in `data`'s `histograms/`.
    pub fn revision_cache(&self, data: &DataDir) -> Result<RevisionCache, SourceError> {
        let or = |value: usize, default: usize| if value == 0 { default } else { value };
        let mut cache = RevisionCache::embedded().with_capacities(
            or(self.cache_entries, crate::histograms::DEFAULT_CACHE_ENTRIES),
            or(self.cache_misses, crate::histograms::DEFAULT_CACHE_MISSES),
        );
        for dir in &self.dirs {
            cache = cache.with_dir(dir).map_err(|source| SourceError::Dir {
                path: dir.clone(),
                source,
            })?;
        }
        if let Some(template) = &self.server {
            let dir = data.sub(datadir::HISTOGRAMS)?;
            let fetcher = Fetcher::new(template, dir, self.timeout, self.retry_after)?
                .with_concurrency(self.fetch_concurrency);
            cache = cache.with_fetcher(fetcher);
        }
        Ok(cache)
    }
}
