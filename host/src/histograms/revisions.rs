//! Revision resolution: which Histograms.json describes a ping's histograms.
//!
//! Order (docs/formats/histograms.md, plus the fallback the seed documented but never built):
//! 1. the revision URL (`https://hg.mozilla.org/<repo>/rev/<hash>`): memory, then each spec
//!    directory (`<dir>/<repo>/<rev>/Histograms.json`, the seed's on-disk cache layout, or
//!    `<dir>/<rev>.json[.*]`), then the definitions embedded in the binary; hashes of different
//!    lengths match by prefix (12 hex digits at least);
//! 2. when that fails or the ping has no revision: the [`RevisionTable`] by channel + build id,
//!    then by major app version.
//!
//! The C++ constants the seed's cache patched get the seed's values, and the definitions using
//! them are marked as assumed (the real values changed between revisions). With a [`Fetcher`]
//! ([`RevisionCache::with_fetcher`]), a hex revision found nowhere above is downloaded from the hg
//! server and cached on disk, as the seed did, but with a timeout and a back-off. Every outcome
//! is counted ([`RevisionStats`]); a missing spec is a [`ResolveError`], never a panic.
//!
//! The revision part of a URL comes from anonymous clients (pings, `/histograms?revision=`), so
//! the memory it can take is bounded (issue 11): a revision must be an hg hash (12–40 hex
//! digits, [`is_hg_hash`]) and the repository plain and short before anything is looked up;
//! what is remembered is keyed by repository **and** revision (a request naming a fake
//! repository cannot hide a real revision) and held in two LRU maps, one for definitions found
//! and one, larger, for misses, so a flood of unknown revisions never evicts the definitions in
//! use; a miss is looked up (and fetched) once per key at a time, outside every lock, while
//! other keys proceed ([`CacheStats`] counts entries and evictions).

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::definitions::{Definitions, SpecError};
use super::fetch::{FetchError, FetchStats, Fetcher};
use super::lru::Lru;

/// Default number of revisions with definitions kept in memory (`convert.histogram_cache_entries`).
pub const DEFAULT_CACHE_ENTRIES: usize = 64;
/// Default number of revisions known to be missing kept in memory (`convert.histogram_cache_misses`).
pub const DEFAULT_CACHE_MISSES: usize = 4096;
/// Longest repository path looked up (`releases/mozilla-aurora` is 23 bytes).
const MAX_REPO_BYTES: usize = 128;
/// How long a lookup waits for another thread's lookup of the same revision before giving up.
const FOLLOWER_WAIT: Duration = Duration::from_secs(60);

/// Whether `rev` looks like an hg changeset hash: 12 to 40 lowercase or uppercase hex digits.
pub fn is_hg_hash(rev: &str) -> bool {
    (12..=40).contains(&rev.len()) && rev.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Whether a repository path from a URL is worth a lookup: short, plain path segments.
fn plain_repo(repo: &str) -> bool {
    repo.len() <= MAX_REPO_BYTES
        && repo.split('/').all(|seg| {
            !seg.is_empty()
                && seg != "."
                && seg != ".."
                && seg
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        })
}

/// The seed's textual patches (bug 920169), applied before parsing and caching.
const PATCHES: [(&str, &str); 3] = [
    ("\"JS::gcreason::NUM_TELEMETRY_REASONS\"", "101"),
    ("\"mozilla::StartupTimeline::MAX_EVENT_ID\"", "12"),
    ("\"80 + 1\"", "81"),
];

/// The C++ constants of [`PATCHES`] as values for [`Definitions::from_json_with_constants`].
pub const SEED_CONSTANTS: [(&str, i64); 2] = [
    ("JS::gcreason::NUM_TELEMETRY_REASONS", 101),
    ("mozilla::StartupTimeline::MAX_EVENT_ID", 12),
];

/// Applies the seed's three textual patches to a Histograms.json text.
pub fn patch_cpp_constants(text: &str) -> Cow<'_, str> {
    let mut out = Cow::Borrowed(text);
    for (from, to) in PATCHES {
        if out.contains(from) {
            out = Cow::Owned(out.replace(from, to));
        }
    }
    out
}

/// Definitions compiled into the binary: `(revision key, Histograms.json text)`.
const EMBEDDED: [(&str, &str); 4] = [
    (
        "a55c55edf302",
        include_str!("../../assets/histograms/a55c55edf302.json.FIREFOX_AURORA_23_BASE"),
    ),
    (
        "8d3810543edc",
        include_str!("../../assets/histograms/8d3810543edc.json.FIREFOX_AURORA_24_BASE"),
    ),
    (
        "ad0ae007aa9e",
        include_str!("../../assets/histograms/ad0ae007aa9e.json.FIREFOX_AURORA_25_BASE"),
    ),
    (
        "mozilla-central-2017-03",
        include_str!("../../assets/histograms/mozilla-central-2017-03.json"),
    ),
];

/// The revision table compiled into the binary.
const EMBEDDED_TABLE: &str = include_str!("../../assets/histograms/revisions.json");

/// File name of a revision table inside a spec directory (its entries are tried first).
pub const TABLE_FILE: &str = "revisions.json";

/// A revision URL split like the seed's regex `^(http[s]?://[^/]+)/(.+)/rev/([0-9a-f]+)/?$`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevisionUrl {
    /// Repository path, e.g. `releases/mozilla-aurora`.
    pub repo: String,
    /// Revision hash (lowercase hex).
    pub rev: String,
}

impl RevisionUrl {
    /// Parses a revision URL; the host is ignored, as in the seed.
    pub fn parse(url: &str) -> Result<RevisionUrl, ResolveError> {
        let invalid = || ResolveError::InvalidUrl(url.to_owned());
        let rest = url
            .strip_prefix("https://")
            .or_else(|| url.strip_prefix("http://"))
            .ok_or_else(invalid)?;
        let (host, path) = rest.split_once('/').ok_or_else(invalid)?;
        let path = path.strip_suffix('/').unwrap_or(path);
        let (repo, rev) = path.rsplit_once("/rev/").ok_or_else(invalid)?;
        let hex = !rev.is_empty()
            && rev
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if host.is_empty() || repo.is_empty() || !hex {
            return Err(invalid());
        }
        Ok(RevisionUrl {
            repo: repo.to_owned(),
            rev: rev.to_owned(),
        })
    }
}

/// What a ping says about its build, for resolution.
#[derive(Debug, Clone, Copy, Default)]
pub struct Query<'a> {
    /// `info.revision` (classic) or `payload.info.revision` (unified).
    pub revision: Option<&'a str>,
    /// The build's update channel (`appUpdateChannel`): which build-id ranges of the table apply.
    pub channel: Option<&'a str>,
    /// The build id (`appBuildID`, a `YYYYMMDDhhmmss` date) looked up in the channel's ranges.
    pub build_id: Option<&'a str>,
    /// The app version (`appVersion`): its major version is the last resort.
    pub app_version: Option<&'a str>,
}

/// How a definitions set was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// Found by the ping's revision URL.
    Revision,
    /// Found by channel and build id in the revision table.
    ChannelBuildId,
    /// Found by major app version in the revision table.
    AppVersion,
    /// The newest definitions available ([`RevisionCache::nearest`] only).
    Newest,
}

/// A resolved definitions set.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// The histogram definitions to validate and compact the ping with.
    pub definitions: Arc<Definitions>,
    /// Key of the revision used (hash or table key).
    pub revision: String,
    /// Which of the ping's fields found them.
    pub source: Source,
}

/// Why no definitions could be found.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    /// Same text as the seed's (the bad-record classification depends on it).
    #[error("Invalid revision URL: {0}")]
    InvalidUrl(String),
    /// No revision, and no table entry for the channel/build id/app version.
    #[error("Missing in payload: info.revision")]
    NoRevision,
    /// A revision, but no definitions for it here nor by the table.
    #[error("Failed to fetch histograms for URL: {0}")]
    NotFound(String),
    /// Definitions were found but are unusable.
    #[error("Bad Histogram definition for revision {revision}: {source}")]
    BadSpec {
        /// Key of the definitions that failed to parse.
        revision: String,
        /// Why they are unusable.
        source: Arc<SpecError>,
    },
}

/// One row of the revision table.
#[derive(Debug, Clone, Deserialize)]
pub struct TableEntry {
    /// Repository name as in revision URLs (`mozilla-central`, `releases/mozilla-aurora`, …).
    pub repo: String,
    /// Revision hash or key of the definitions (as found in spec directories or embedded).
    pub rev: String,
    /// Major app versions (`"23"`) this revision stands for.
    #[serde(default)]
    pub app_versions: Vec<String>,
    /// Channel → `[from, to)` build-id (date) range.
    #[serde(default)]
    pub builds: BTreeMap<String, [String; 2]>,
    /// The definitions' file, named in the table's directory (`histograms import-history`
    /// writes each distinct Histograms.json once, named by its content hash); absolute once the
    /// table is loaded.
    #[serde(default)]
    pub file: Option<PathBuf>,
}

/// Revisions with the build dates and versions they cover.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct RevisionTable {
    /// Every row, in file order.
    pub revisions: Vec<TableEntry>,
}

impl RevisionTable {
    pub(crate) fn from_json(text: &str) -> Result<RevisionTable, serde_json::Error> {
        serde_json::from_str(text)
    }

    /// The table shipped with the binary.
    pub fn embedded() -> RevisionTable {
        Self::from_json(EMBEDDED_TABLE).unwrap_or_default()
    }

    /// The entry whose `channel` build range holds `build_id`.
    pub fn by_build(&self, channel: &str, build_id: &str) -> Option<&TableEntry> {
        if build_id.is_empty() || !build_id.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let build = pad14(build_id);
        self.revisions.iter().find(|e| {
            e.builds
                .get(channel)
                .is_some_and(|[from, to]| pad14(from) <= build && build < pad14(to))
        })
    }

    /// The entry listing the major version of `app_version` (`"23.0.1"` → `"23"`).
    pub fn by_version(&self, app_version: &str) -> Option<&TableEntry> {
        let major = app_version.split('.').next().unwrap_or_default();
        self.revisions
            .iter()
            .find(|e| e.app_versions.iter().any(|v| v == major))
    }
}

/// Build ids compare as 14-digit strings (`"20130805"` → `"20130805000000"`).
fn pad14(id: &str) -> String {
    format!("{id:0<14}")
}

/// Counters of resolution outcomes (served on metrics and in summaries).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct RevisionStats {
    /// Resolved by revision URL.
    pub by_revision: u64,
    /// Resolved by channel and build id.
    pub by_channel_build_id: u64,
    /// Resolved by major app version.
    pub by_app_version: u64,
    /// Pings whose definitions were not found.
    pub missing: u64,
    /// Pings whose revision was not a valid revision URL.
    pub invalid_url: u64,
    /// Pings whose definitions were found but failed to parse.
    pub bad_spec: u64,
}

#[derive(Default)]
struct Counters {
    by_revision: AtomicU64,
    by_channel_build_id: AtomicU64,
    by_app_version: AtomicU64,
    missing: AtomicU64,
    invalid_url: AtomicU64,
    bad_spec: AtomicU64,
}

/// Sizes and evictions of the in-memory cache (served on `/metrics`).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct CacheStats {
    /// Revisions with definitions (or unusable ones) held.
    pub entries: u64,
    /// Revisions known to be missing held.
    pub miss_entries: u64,
    /// Entries evicted from either map.
    pub evictions: u64,
    /// Lookups refused before any work: not an hg hash or not a plain repository path.
    pub rejected: u64,
}

/// What the cache remembers, keyed by `(repository, revision)`.
type Key = (String, String);

/// One lookup in progress; lookups of the same key wait for its outcome.
#[derive(Default)]
struct Flight {
    outcome: Mutex<Option<Remembered>>,
    done: Condvar,
}

/// The two bounded maps: found (or unusable) definitions, and known misses.
struct Memory {
    found: Lru<Key, Remembered>,
    missing: Lru<Key, ()>,
}

/// Finds and caches definitions per revision. Shared between threads (`&self` everywhere).
pub struct RevisionCache {
    dirs: Vec<PathBuf>,
    embedded: bool,
    table: RevisionTable,
    /// `(repo, rev)` → parsed definitions or why they are unusable, and the known misses
    /// (negative answers are cached too, so a flood of pings for an unknown revision costs one
    /// directory scan). Bounded; the lock is never held during I/O.
    memory: Mutex<Memory>,
    /// Lookups in progress by key (singleflight): at most one thread loads or fetches a key.
    flights: Mutex<HashMap<Key, Arc<Flight>>>,
    fetcher: Option<Fetcher>,
    counters: Counters,
    rejected: AtomicU64,
    /// Table positions, newest first ([`RevisionCache::nearest`]'s last resort): the table does
    /// not change once built, so the order is computed once, not for every ping.
    newest_first: std::sync::OnceLock<Vec<usize>>,
}

impl Default for RevisionCache {
    fn default() -> Self {
        Self::embedded()
    }
}

impl RevisionCache {
    /// Embedded definitions and table only.
    pub fn embedded() -> RevisionCache {
        RevisionCache {
            dirs: Vec::new(),
            embedded: true,
            table: RevisionTable::embedded(),
            memory: Mutex::new(Memory {
                found: Lru::new(DEFAULT_CACHE_ENTRIES),
                missing: Lru::new(DEFAULT_CACHE_MISSES),
            }),
            flights: Mutex::default(),
            fetcher: None,
            counters: Counters::default(),
            rejected: AtomicU64::new(0),
            newest_first: std::sync::OnceLock::new(),
        }
    }

    /// Keeps at most `entries` revisions with definitions and `misses` known misses in memory.
    pub fn with_capacities(mut self, entries: usize, misses: usize) -> RevisionCache {
        self.memory = Mutex::new(Memory {
            found: Lru::new(entries),
            missing: Lru::new(misses),
        });
        self
    }

    /// Fetches from the histogram server running now.
    pub fn fetches_running(&self) -> usize {
        self.fetcher.as_ref().map_or(0, Fetcher::running)
    }

    /// Entries and evictions of the in-memory cache.
    pub fn cache_stats(&self) -> CacheStats {
        let memory = self.memory.lock().unwrap_or_else(|e| e.into_inner());
        CacheStats {
            entries: memory.found.len() as u64,
            miss_entries: memory.missing.len() as u64,
            evictions: memory.found.evictions() + memory.missing.evictions(),
            rejected: self.rejected.load(Ordering::Relaxed),
        }
    }

    /// Nothing at all: every lookup misses (tests, or a strict deployment adding dirs).
    pub fn empty() -> RevisionCache {
        RevisionCache {
            embedded: false,
            table: RevisionTable::default(),
            ..Self::embedded()
        }
    }

    /// Adds a spec directory (searched before the embedded definitions, in the order added). A
    /// `revisions.json` in it is put in front of the table.
    pub fn with_dir(mut self, dir: impl Into<PathBuf>) -> Result<RevisionCache, std::io::Error> {
        let dir = dir.into();
        let table_path = dir.join(TABLE_FILE);
        if table_path.is_file() {
            let text = std::fs::read_to_string(&table_path)?;
            let mut table = RevisionTable::from_json(&text).map_err(|e| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("{}: {e}", table_path.display()),
                )
            })?;
            for entry in &mut table.revisions {
                entry.file = entry
                    .file
                    .take()
                    .and_then(|name| plain_file_name(&dir, &name));
            }
            table.revisions.append(&mut self.table.revisions);
            self.table = table;
            self.newest_first = std::sync::OnceLock::new();
            self.newest_first = std::sync::OnceLock::new();
        }
        self.dirs.push(dir);
        Ok(self)
    }

    /// Downloads revisions found nowhere else (tried after the spec directories and the
    /// embedded definitions).
    pub fn with_fetcher(mut self, fetcher: Fetcher) -> RevisionCache {
        self.fetcher = Some(fetcher);
        self
    }

    /// Fetch counters, when a fetcher is set.
    pub fn fetch_stats(&self) -> Option<FetchStats> {
        self.fetcher.as_ref().map(Fetcher::stats)
    }

    /// Replaces the revision table.
    pub fn with_table(mut self, table: RevisionTable) -> RevisionCache {
        self.table = table;
        self
    }

    /// The revision table this cache resolves channels, build ids and versions with.
    pub fn table(&self) -> &RevisionTable {
        &self.table
    }

    /// Counters so far.
    pub fn stats(&self) -> RevisionStats {
        let c = &self.counters;
        RevisionStats {
            by_revision: c.by_revision.load(Ordering::Relaxed),
            by_channel_build_id: c.by_channel_build_id.load(Ordering::Relaxed),
            by_app_version: c.by_app_version.load(Ordering::Relaxed),
            missing: c.missing.load(Ordering::Relaxed),
            invalid_url: c.invalid_url.load(Ordering::Relaxed),
            bad_spec: c.bad_spec.load(Ordering::Relaxed),
        }
    }

    /// Resolves a ping's definitions: revision URL first, then the table.
    pub fn resolve(&self, query: &Query) -> Result<Resolved, ResolveError> {
        let result = self.resolve_uncounted(query);
        let counter = match &result {
            Ok(r) => match r.source {
                Source::Revision => &self.counters.by_revision,
                Source::ChannelBuildId => &self.counters.by_channel_build_id,
                Source::AppVersion => &self.counters.by_app_version,
                // `resolve` never answers with the newest set; only `nearest` does.
                Source::Newest => &self.counters.missing,
            },
            Err(ResolveError::InvalidUrl(_)) => &self.counters.invalid_url,
            Err(ResolveError::BadSpec { .. }) => &self.counters.bad_spec,
            Err(ResolveError::NoRevision | ResolveError::NotFound(_)) => &self.counters.missing,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        result
    }

    fn resolve_uncounted(&self, query: &Query) -> Result<Resolved, ResolveError> {
        let url = query.revision.map(RevisionUrl::parse);
        if let Some(Ok(url)) = &url {
            if let Some(definitions) = self.checked_definitions(&url.repo, &url.rev)? {
                return Ok(Resolved {
                    definitions,
                    revision: url.rev.clone(),
                    source: Source::Revision,
                });
            }
        }
        if let Some(resolved) = self.fallback(query)? {
            return Ok(resolved);
        }
        match (url, query.revision) {
            (Some(Err(invalid)), _) => Err(invalid),
            (_, Some(text)) => Err(ResolveError::NotFound(text.to_owned())),
            _ => Err(ResolveError::NoRevision),
        }
    }

    fn fallback(&self, query: &Query) -> Result<Option<Resolved>, ResolveError> {
        let by_build = match (query.channel, query.build_id) {
            (Some(channel), Some(build)) => self
                .table
                .by_build(channel, build)
                .map(|e| (e, Source::ChannelBuildId)),
            _ => None,
        };
        let by_version = || {
            query
                .app_version
                .and_then(|v| self.table.by_version(v))
                .map(|e| (e, Source::AppVersion))
        };
        for (entry, source) in by_build.into_iter().chain(by_version()) {
            if let Some(definitions) = self.definitions(&entry.repo, &entry.rev)? {
                return Ok(Some(Resolved {
                    definitions,
                    revision: entry.rev.clone(),
                    source,
                }));
            }
        }
        Ok(None)
    }

    /// Approximate definitions for a ping whose own cannot be found (`convert --unknown-revision
    /// nearest`): the table by channel + build id, then by app version, else the newest
    /// definitions the table names that are available. Not counted in [`RevisionStats`].
    pub fn nearest(&self, query: &Query) -> Result<Resolved, ResolveError> {
        if let Some(resolved) = self.fallback(query)? {
            return Ok(resolved);
        }
        let order = self.newest_first.get_or_init(|| {
            let revisions = &self.table.revisions;
            // By the end of the latest build range, later table entries first on ties.
            let mut order: Vec<usize> = (0..revisions.len()).rev().collect();
            order.sort_by_key(|&i| {
                std::cmp::Reverse(revisions[i].builds.values().map(|[_, to]| pad14(to)).max())
            });
            order
        });
        for entry in order.iter().map(|&i| &self.table.revisions[i]) {
            if let Some(definitions) = self.definitions(&entry.repo, &entry.rev)? {
                return Ok(Resolved {
                    definitions,
                    revision: entry.rev.clone(),
                    source: Source::Newest,
                });
            }
        }
        Err(ResolveError::NotFound(
            query.revision.unwrap_or_default().to_owned(),
        ))
    }

    /// Definitions of a revision URL only (the histogram server's lookup; no table fallback).
    pub fn by_url(&self, url: &str) -> Result<Arc<Definitions>, ResolveError> {
        let parsed = RevisionUrl::parse(url)?;
        self.checked_definitions(&parsed.repo, &parsed.rev)?
            .ok_or_else(|| ResolveError::NotFound(url.to_owned()))
    }

    /// The patched Histograms.json text of a revision URL (the seed's `/histograms` endpoint).
    pub fn text_by_url(&self, url: &str) -> Result<String, ResolveError> {
        let parsed = RevisionUrl::parse(url)?;
        // Fetches and caches the file if need be (and checks that it parses).
        if self
            .checked_definitions(&parsed.repo, &parsed.rev)?
            .is_none()
        {
            return Err(ResolveError::NotFound(url.to_owned()));
        }
        self.load_text(&parsed.repo, &parsed.rev)
            .map(|t| patch_cpp_constants(&t).into_owned())
            .ok_or_else(|| ResolveError::NotFound(url.to_owned()))
    }

    /// [`Self::definitions`] for a repository and revision taken from a URL (anonymous input):
    /// anything but an hg hash in a plain, short repository is not found, without a lookup, a
    /// fetch or a cache entry.
    fn checked_definitions(
        &self,
        repo: &str,
        rev: &str,
    ) -> Result<Option<Arc<Definitions>>, ResolveError> {
        if !is_hg_hash(rev) || !plain_repo(repo) {
            self.rejected.fetch_add(1, Ordering::Relaxed);
            return Ok(None);
        }
        self.definitions(repo, rev)
    }

    /// What `memory` knows of `key`.
    fn recall(&self, key: &Key) -> Option<Remembered> {
        let mut memory = self.memory.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(found) = memory.found.get(key) {
            return Some(found);
        }
        memory.missing.get(key).map(|()| Ok(None))
    }

    /// Parsed definitions of `rev` in `repo`, from memory or loaded (or fetched) and remembered,
    /// unusable ones too (so a bad file is neither re-parsed nor re-fetched for every ping). A
    /// fetch failure that may pass is not remembered: the fetcher's back-off decides when to
    /// retry. One thread loads a key at a time (the others wait for its outcome); no lock is held
    /// while loading, so other keys are not delayed.
    fn definitions(&self, repo: &str, rev: &str) -> Result<Option<Arc<Definitions>>, ResolveError> {
        let key: Key = (repo.to_owned(), rev.to_owned());
        if let Some(hit) = self.recall(&key) {
            return answer(rev, hit);
        }
        let (flight, leader) = {
            let mut flights = self.flights.lock().unwrap_or_else(|e| e.into_inner());
            match flights.get(&key) {
                Some(flight) => (flight.clone(), false),
                None => {
                    let flight = Arc::new(Flight::default());
                    flights.insert(key.clone(), flight.clone());
                    (flight, true)
                }
            }
        };
        if !leader {
            return answer(rev, wait_for(&flight));
        }
        // Ends the flight even if loading panics: followers wake, later lookups start anew.
        let landing = Landing {
            flights: &self.flights,
            key: &key,
            flight: &flight,
        };
        // The leader: check memory again (a flight may have ended between the two looks).
        let outcome = match self.recall(&key) {
            Some(hit) => hit,
            None => {
                let (outcome, remember) = self.load(repo, rev);
                if remember {
                    let mut memory = self.memory.lock().unwrap_or_else(|e| e.into_inner());
                    match &outcome {
                        Ok(None) => memory.missing.insert(key.clone(), ()),
                        _ => {
                            memory.missing.remove(&key);
                            memory.found.insert(key.clone(), outcome.clone());
                        }
                    }
                }
                outcome
            }
        };
        *flight.outcome.lock().unwrap_or_else(|e| e.into_inner()) = Some(outcome.clone());
        drop(landing);
        answer(rev, outcome)
    }

    /// Loads (or fetches) a key; the flag says whether the outcome may be remembered.
    fn load(&self, repo: &str, rev: &str) -> (Remembered, bool) {
        match self.load_text(repo, rev) {
            Some(text) => (parse(&text).map(Some), true),
            None => match self.fetch(repo, rev) {
                Ok(Some(text)) => {
                    let parsed = parse(&text).map(|definitions| {
                        if let Some(fetcher) = &self.fetcher {
                            if let Err(err) = fetcher.store(repo, rev, &text) {
                                tracing::warn!(repo, rev, error = %err, "cannot cache fetched Histograms.json");
                            }
                        }
                        Some(definitions)
                    });
                    (parsed, true)
                }
                Ok(None) => (Ok(None), true),
                Err(err) => {
                    tracing::debug!(error = %err, "histogram definitions not fetched");
                    (Ok(None), false)
                }
            },
        }
    }

    /// Raw text of `rev`: spec directories first, then the embedded set, then what the fetcher
    /// cached earlier.
    fn load_text(&self, repo: &str, rev: &str) -> Option<String> {
        let imported = self.table.revisions.iter().find_map(|e| {
            (e.repo == repo && same_revision(&e.rev, rev)).then_some(e.file.as_ref()?)
        });
        if let Some(text) = imported.and_then(|path| std::fs::read_to_string(path).ok()) {
            return Some(text);
        }
        for dir in &self.dirs {
            if let Some(text) = load_from_dir(dir, repo, rev) {
                return Some(text);
            }
        }
        if self.embedded {
            if let Some((_, text)) = EMBEDDED.iter().find(|(key, _)| same_revision(key, rev)) {
                return Some((*text).to_owned());
            }
        }
        self.fetcher.as_ref()?.cached(repo, rev)
    }

    /// Downloads `rev` when a fetcher is set and `rev` is an hg hash (table keys are not).
    /// `Ok(None)`: nothing to fetch, or the server says it does not exist (final).
    fn fetch(&self, repo: &str, rev: &str) -> Result<Option<String>, FetchError> {
        let Some(fetcher) = &self.fetcher else {
            return Ok(None);
        };
        if !is_hg_hash(rev) {
            return Ok(None);
        }
        match fetcher.fetch(repo, rev) {
            Ok(text) => Ok(Some(text)),
            Err(err) if err.is_final() => {
                tracing::info!(error = %err, "no histogram definitions for this revision");
                Ok(None)
            }
            Err(err) => {
                if !matches!(err, FetchError::Backoff { .. }) {
                    tracing::warn!(error = %err, "cannot fetch histogram definitions; retrying later");
                }
                Err(err)
            }
        }
    }
}

/// What the cache keeps per revision: definitions, a known miss (`None`), or why they are unusable.
type Remembered = Result<Option<Arc<Definitions>>, Arc<SpecError>>;

/// Ends a flight when dropped: removes it from the map and wakes its followers (who read a miss
/// if the leader set no outcome).
struct Landing<'a> {
    flights: &'a Mutex<HashMap<Key, Arc<Flight>>>,
    key: &'a Key,
    flight: &'a Flight,
}

impl Drop for Landing<'_> {
    fn drop(&mut self) {
        self.flights
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(self.key);
        let mut outcome = self
            .flight
            .outcome
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if outcome.is_none() {
            *outcome = Some(Ok(None));
        }
        self.flight.done.notify_all();
    }
}

/// Waits for the leader of a flight; a leader that takes too long counts as a miss for this caller.
fn wait_for(flight: &Flight) -> Remembered {
    let outcome = flight.outcome.lock().unwrap_or_else(|e| e.into_inner());
    let (outcome, _) = flight
        .done
        .wait_timeout_while(outcome, FOLLOWER_WAIT, |o| o.is_none())
        .unwrap_or_else(|e| e.into_inner());
    outcome.clone().unwrap_or(Ok(None))
}

/// A remembered outcome as the answer for `rev`.
fn answer(rev: &str, remembered: Remembered) -> Result<Option<Arc<Definitions>>, ResolveError> {
    remembered.map_err(|source| ResolveError::BadSpec {
        revision: rev.to_owned(),
        source,
    })
}

/// Parses a Histograms.json text with the seed's constants.
fn parse(text: &str) -> Result<Arc<Definitions>, Arc<SpecError>> {
    Definitions::from_json_with_constants(text, &SEED_CONSTANTS)
        .map(Arc::new)
        .map_err(Arc::new)
}

/// Two revision keys name the same revision: equal, or hashes where one is a prefix of the
/// other and the shorter has at least 12 digits (hg short and full hashes).
fn same_revision(a: &str, b: &str) -> bool {
    let (short, long) = if a.len() <= b.len() { (a, b) } else { (b, a) };
    short == long || (short.len() >= 12 && long.starts_with(short))
}

/// `dir/name` when `name` is a plain file name (a table cannot point outside its directory).
fn plain_file_name(dir: &Path, name: &Path) -> Option<PathBuf> {
    let mut parts = name.components();
    match (parts.next(), parts.next()) {
        (Some(std::path::Component::Normal(file)), None) => Some(dir.join(file)),
        _ => None,
    }
}

/// `<dir>/<repo>/<rev>/Histograms.json`, else a file `<key>.json` or `<key>.json.<tag>` in
/// `dir` whose key names the same revision.
fn load_from_dir(dir: &Path, repo: &str, rev: &str) -> Option<String> {
    let safe = |s: &str| !s.split('/').any(|c| c.is_empty() || c == "." || c == "..");
    if safe(repo) && safe(rev) {
        if let Ok(text) = std::fs::read_to_string(dir.join(repo).join(rev).join("Histograms.json"))
        {
            return Some(text);
        }
    }
    let entries = std::fs::read_dir(dir).ok()?;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some((key, _)) = name.split_once(".json") else {
            continue;
        };
        if same_revision(key, rev) && entry.path().is_file() {
            if let Ok(text) = std::fs::read_to_string(entry.path()) {
                return Some(text);
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_revision_urls_like_the_seed() {
        let url =
            RevisionUrl::parse("https://hg.mozilla.org/releases/mozilla-aurora/rev/0555aa58d0d5")
                .unwrap();
        assert_eq!(
            (url.repo.as_str(), url.rev.as_str()),
            ("releases/mozilla-aurora", "0555aa58d0d5")
        );
        assert!(
            RevisionUrl::parse("http://hg.mozilla.org/mozilla-central/rev/44ae8462d6ab/").is_ok()
        );
        for bad in [
            "/rev/",
            "https://hg.mozilla.org/rev/abc",
            "https://hg.mozilla.org/m-c/rev/tip",
            "ftp://x/y/rev/ab",
            "",
        ] {
            assert!(
                matches!(RevisionUrl::parse(bad), Err(ResolveError::InvalidUrl(_))),
                "{bad}"
            );
        }
        assert_eq!(
            ResolveError::InvalidUrl("/rev/".into()).to_string(),
            "Invalid revision URL: /rev/"
        );
    }

    #[test]
    fn patches_the_three_constants() {
        let text = r#"{"n_values": "JS::gcreason::NUM_TELEMETRY_REASONS", "a": "80 + 1", "b": "mozilla::StartupTimeline::MAX_EVENT_ID"}"#;
        assert_eq!(
            patch_cpp_constants(text),
            r#"{"n_values": 101, "a": 81, "b": 12}"#
        );
    }

    #[test]
    fn resolves_by_revision_then_build_then_version() {
        let cache = RevisionCache::embedded();
        let by_rev = cache
            .resolve(&Query {
                revision: Some("http://hg.mozilla.org/releases/mozilla-release/rev/a55c55edf302"),
                ..Query::default()
            })
            .unwrap();
        assert_eq!(
            (by_rev.revision.as_str(), by_rev.source),
            ("a55c55edf302", Source::Revision)
        );
        // The patched constants make GC_REASON_2 usable (101 values).
        assert_eq!(
            by_rev
                .definitions
                .get("GC_REASON_2")
                .unwrap()
                .layout
                .as_ref()
                .unwrap()
                .n_buckets(),
            102
        );

        let by_build = cache
            .resolve(&Query {
                channel: Some("beta"),
                build_id: Some("20131001120000"),
                app_version: Some("25.0"),
                ..Query::default()
            })
            .unwrap();
        assert_eq!(
            (by_build.revision.as_str(), by_build.source),
            ("ad0ae007aa9e", Source::ChannelBuildId)
        );
        let by_version = cache
            .resolve(&Query {
                channel: Some("esr"),
                build_id: Some("2013"),
                app_version: Some("24.0.1"),
                ..Query::default()
            })
            .unwrap();
        assert_eq!(
            (by_version.revision.as_str(), by_version.source),
            ("8d3810543edc", Source::AppVersion)
        );

        let missing = cache.resolve(&Query {
            revision: Some("https://hg.mozilla.org/mozilla-central/rev/bb4d614a0b09"),
            app_version: Some("45.0"),
            ..Query::default()
        });
        assert!(matches!(missing, Err(ResolveError::NotFound(_))));
        assert!(matches!(
            cache.resolve(&Query::default()),
            Err(ResolveError::NoRevision)
        ));
        assert!(matches!(
            cache.resolve(&Query {
                revision: Some("/rev/"),
                ..Query::default()
            }),
            Err(ResolveError::InvalidUrl(_))
        ));
        let stats = cache.stats();
        assert_eq!(
            (
                stats.by_revision,
                stats.by_channel_build_id,
                stats.by_app_version
            ),
            (1, 1, 1)
        );
        assert_eq!((stats.missing, stats.invalid_url), (2, 1));
    }

    #[test]
    fn spec_directories_in_both_layouts_and_their_table_come_first() {
        let dir = tempfile::tempdir().unwrap();
        let seed_layout = dir.path().join("releases/mozilla-beta/0123456789ab");
        std::fs::create_dir_all(&seed_layout).unwrap();
        std::fs::write(
            seed_layout.join("Histograms.json"),
            r#"{"A": {"kind": "flag"}}"#,
        )
        .unwrap();
        std::fs::write(
            dir.path().join("fedcba987654.json.SOME_TAG"),
            r#"{"B": {"kind": "boolean"}}"#,
        )
        .unwrap();
        std::fs::write(
            dir.path().join("custom.json"),
            r#"{"C": {"kind": "count"}}"#,
        )
        .unwrap();
        std::fs::write(
            dir.path().join(TABLE_FILE),
            r#"{"revisions": [{"repo": "x", "rev": "custom", "app_versions": ["23"], "builds": {"release": ["20130801", "20130901"]}}]}"#,
        )
        .unwrap();
        let cache = RevisionCache::embedded().with_dir(dir.path()).unwrap();
        let get = |query: Query| cache.resolve(&query).unwrap();
        let seed = get(Query {
            revision: Some("https://hg.mozilla.org/releases/mozilla-beta/rev/0123456789ab"),
            ..Query::default()
        });
        assert!(seed.definitions.get("A").is_some());
        let long =
            "https://hg.mozilla.org/mozilla-central/rev/fedcba9876543210fedcba9876543210fedcba98";
        assert!(get(Query {
            revision: Some(long),
            ..Query::default()
        })
        .definitions
        .get("B")
        .is_some());
        // The directory's table is tried before the embedded one (which maps release 2013-08 to Fx 23).
        let by_build = get(Query {
            channel: Some("release"),
            build_id: Some("20130814063812"),
            ..Query::default()
        });
        assert_eq!(
            (by_build.revision.as_str(), by_build.source),
            ("custom", Source::ChannelBuildId)
        );
        let by_version = get(Query {
            app_version: Some("24.0"),
            ..Query::default()
        });
        assert_eq!(by_version.revision, "8d3810543edc");
        // A malformed spec is a typed error, not a panic.
        std::fs::write(dir.path().join("badbadbadbad.json"), "{not json").unwrap();
        let bad = cache.resolve(&Query {
            revision: Some("https://h/r/rev/badbadbadbad"),
            ..Query::default()
        });
        assert!(matches!(bad, Err(ResolveError::BadSpec { .. })));
        assert_eq!(cache.stats().bad_spec, 1);
        // Remembered: the same answer again, even once the file is gone.
        std::fs::remove_file(dir.path().join("badbadbadbad.json")).unwrap();
        let again = cache.resolve(&Query {
            revision: Some("https://h/r/rev/badbadbadbad"),
            ..Query::default()
        });
        assert!(
            matches!(again, Err(ResolveError::BadSpec { .. })),
            "{again:?}"
        );
        assert_eq!(cache.stats().bad_spec, 2);
    }

    #[test]
    fn a_fake_repository_does_not_hide_a_real_revision_and_misses_are_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("releases/mozilla-beta/0123456789ab");
        std::fs::create_dir_all(&real).unwrap();
        std::fs::write(real.join("Histograms.json"), r#"{"A": {"kind": "flag"}}"#).unwrap();
        let cache = RevisionCache::empty()
            .with_dir(dir.path())
            .unwrap()
            .with_capacities(2, 3);
        let by_url = |url: &str| cache.by_url(url).map(|d| d.get("A").is_some());
        assert!(matches!(
            by_url("https://h/not-a-repo/rev/0123456789ab"),
            Err(ResolveError::NotFound(_))
        ));
        assert!(by_url("https://h/releases/mozilla-beta/rev/0123456789ab").unwrap());
        for i in 0..10 {
            let miss = format!("https://h/mozilla-central/rev/{i:012x}");
            assert!(matches!(by_url(&miss), Err(ResolveError::NotFound(_))));
        }
        let stats = cache.cache_stats();
        assert_eq!((stats.entries, stats.miss_entries), (1, 3), "{stats:?}");
        assert_eq!(stats.evictions, 8, "{stats:?}"); // 11 misses into 3 places
        assert!(
            by_url("https://h/releases/mozilla-beta/rev/0123456789ab").unwrap(),
            "misses never evict hits"
        );
        // Not an hg hash, or not a plain short repository: refused without a cache entry.
        for bad in [
            format!("https://h/mozilla-central/rev/{}", "a".repeat(41)),
            "https://h/mozilla-central/rev/abcdef".to_string(),
            format!("https://h/{}/rev/0123456789ab", "r".repeat(200)),
        ] {
            assert!(
                matches!(by_url(&bad), Err(ResolveError::NotFound(_))),
                "{bad}"
            );
        }
        assert_eq!(cache.cache_stats().rejected, 3);
        assert_eq!(cache.cache_stats().miss_entries, 3);
        assert!(is_hg_hash("0123456789ab") && is_hg_hash(&"f".repeat(40)));
        assert!(
            !is_hg_hash("0123456789a")
                && !is_hg_hash(&"f".repeat(41))
                && !is_hg_hash("0123456789ag")
        );
    }

    #[test]
    fn concurrent_lookups_of_one_revision_load_it_once() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Arc::new(RevisionCache::empty().with_dir(dir.path()).unwrap());
        std::fs::write(
            dir.path().join("fedcba987654.json"),
            r#"{"B": {"kind": "flag"}}"#,
        )
        .unwrap();
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let cache = cache.clone();
                std::thread::spawn(move || cache.by_url("https://h/m-c/rev/fedcba987654").is_ok())
            })
            .collect();
        assert!(threads.into_iter().all(|t| t.join().unwrap()));
        let stats = cache.cache_stats();
        assert_eq!(
            (stats.entries, stats.miss_entries, stats.evictions),
            (1, 0, 0)
        );
        assert!(
            cache.flights.lock().unwrap().is_empty(),
            "every flight landed"
        );
    }

    #[test]
    fn prefix_matching_needs_twelve_digits() {
        assert!(same_revision(
            "a55c55edf302",
            "a55c55edf3021234567890abcdef"
        ));
        assert!(!same_revision("a55c", "a55c55edf302"));
        assert!(!same_revision("a55c55edf302", "a55c55edf303"));
    }
}
