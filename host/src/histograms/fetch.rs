//! Fetching the Histograms.json of a revision from an hg server, into an on-disk cache.
//!
//! The seed's `RevisionCache` fetched `https://hg.mozilla.org/<repo>/raw-file/<rev>/toolkit/
//! components/telemetry/Histograms.json` for every revision it had not seen, with no timeout,
//! no retry limit and no negative caching (docs/formats/histograms.md). [`Fetcher`] does the same
//! fetch with those fixed:
//!
//! - a URL template (`{repo}`, `{rev}`), so a mirror or a test server can stand in for hg;
//! - a timeout per request and a body size cap;
//! - after a failure that may pass (timeout, connection refused, 5xx) the revision is not tried
//!   again for `retry_after`, so a down server costs one timeout per revision, not one per ping;
//!   a 404 or 410 is final and remembered by the caller;
//! - the repository path comes from the ping, so it must be plain path segments
//!   (`[A-Za-z0-9._-]`, no `.` or `..`) before it is put in a URL or a file name;
//! - the cache is a directory under the data dir opened with cap-std, in the seed's layout
//!   `<repo>/<rev>/Histograms.json`, written to a temporary name and renamed, so a crash never
//!   leaves half a file where a later run would read it.
//!
//! - at most `concurrency` fetches run at once (a lookup waits for a slot up to the timeout,
//!   then fails in a way that may pass), and the failure memory is bounded, so a flood of
//!   unknown revisions costs neither unbounded outbound connections nor unbounded memory.
//!
//! Callers make sure one thread fetches a given revision at a time ([`super::RevisionCache`]
//! does, per key, without holding a lock over the fetch).

use std::collections::HashMap;
use std::io::{Read, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

use cap_std::fs::Dir;

use crate::error_chain::error_chain;
use serde::Serialize;

/// The seed's source of definitions.
pub const HG_TEMPLATE: &str =
    "https://hg.mozilla.org/{repo}/raw-file/{rev}/toolkit/components/telemetry/Histograms.json";

/// Largest Histograms.json accepted (the 2017 file is 2.3 MB).
pub const MAX_BYTES: u64 = 64 << 20;

/// Default of `convert.histogram_fetch_concurrency`.
pub const DEFAULT_FETCH_CONCURRENCY: usize = 2;

/// Most failed fetches remembered for their back-off; older ones are forgotten first.
const MAX_FAILURES: usize = 4096;

/// The cache file inside `<repo>/<rev>/`.
const FILE: &str = "Histograms.json";

/// Why a fetch gave no definitions.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The server says the file does not exist (404 or 410): final.
    #[error("{url}: not found on the histogram server ({status})")]
    NotFound {
        /// The URL fetched.
        url: String,
        /// The HTTP status.
        status: u16,
    },
    /// Any other answer, or no answer: may pass.
    #[error("{url}: {reason}")]
    Failed {
        /// The URL fetched.
        url: String,
        /// The status or transport error.
        reason: String,
    },
    /// Tried and failed less than `retry_after` ago.
    #[error("{repo}/{rev}: last fetch failed {ago:?} ago; retrying after {retry_after:?}")]
    Backoff {
        /// Repository of the revision.
        repo: String,
        /// The revision hash.
        rev: String,
        /// How long ago the last fetch failed.
        ago: Duration,
        /// How long a failure is remembered before the next try.
        retry_after: Duration,
    },
    /// The repository path is not plain path segments.
    #[error("repository path {0:?} is not plain path segments")]
    BadRepo(String),
    /// Every fetch slot stayed busy for the whole timeout: may pass.
    #[error("{url}: {concurrency} fetches already running; gave up waiting after {waited:?}")]
    Busy {
        /// The URL that was waiting.
        url: String,
        /// How many fetches may run at once.
        concurrency: usize,
        /// How long it waited for a slot.
        waited: Duration,
    },
}

impl FetchError {
    /// True when asking again later cannot help.
    pub fn is_final(&self) -> bool {
        matches!(self, FetchError::NotFound { .. } | FetchError::BadRepo(_))
    }
}

/// Invalid fetcher settings.
#[derive(Debug, thiserror::Error)]
#[error(
    "histogram server URL template {0:?} must start with http:// or https:// and contain {{rev}}"
)]
pub struct TemplateError(String);

/// Fetch outcomes so far (served on `/metrics`).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct FetchStats {
    /// Definitions downloaded (each then cached on disk).
    pub fetched: u64,
    /// Definitions read back from the disk cache.
    pub cache_hits: u64,
    /// Final misses (404/410, bad repository path).
    pub not_found: u64,
    /// Failures that may pass (timeouts, refused connections, 5xx, bad bodies).
    pub failed: u64,
    /// Lookups that found every fetch slot busy for the whole timeout.
    pub busy: u64,
    /// Revisions remembered as failed for their back-off (at most 4096).
    pub backoff_entries: u64,
}

#[derive(Default)]
struct Counters {
    fetched: AtomicU64,
    cache_hits: AtomicU64,
    not_found: AtomicU64,
    failed: AtomicU64,
    busy: AtomicU64,
}

/// Downloads Histograms.json files and keeps them in a cap-std cache directory.
pub struct Fetcher {
    template: String,
    timeout: Duration,
    retry_after: Duration,
    cache: Dir,
    /// Built on first use, on the fetching thread: a blocking client must not be created or
    /// dropped inside the async runtime.
    client: OnceLock<Result<reqwest::blocking::Client, String>>,
    /// `repo/rev` → when its last fetch failed in a way that may pass (at most [`MAX_FAILURES`]).
    failures: Mutex<HashMap<String, Instant>>,
    /// Fetches running now; at most `concurrency`.
    running: Mutex<usize>,
    /// Signalled when a fetch ends.
    slot_freed: Condvar,
    /// Most fetches at once.
    concurrency: usize,
    counters: Counters,
}

impl Fetcher {
    /// A fetcher for `template` (see [`HG_TEMPLATE`]; `"hg"` stands for it) caching into `cache`.
    pub fn new(
        template: &str,
        cache: Dir,
        timeout: Duration,
        retry_after: Duration,
    ) -> Result<Fetcher, TemplateError> {
        let template = if template == "hg" {
            HG_TEMPLATE
        } else {
            template
        };
        let http = template.starts_with("http://") || template.starts_with("https://");
        if !http || !template.contains("{rev}") {
            return Err(TemplateError(template.to_owned()));
        }
        Ok(Fetcher {
            template: template.to_owned(),
            timeout,
            retry_after,
            cache,
            client: OnceLock::new(),
            failures: Mutex::default(),
            running: Mutex::new(0),
            slot_freed: Condvar::new(),
            concurrency: DEFAULT_FETCH_CONCURRENCY,
            counters: Counters::default(),
        })
    }

    /// Runs at most `concurrency` fetches at once (0: [`DEFAULT_FETCH_CONCURRENCY`]).
    pub fn with_concurrency(mut self, concurrency: usize) -> Fetcher {
        self.concurrency = if concurrency == 0 {
            DEFAULT_FETCH_CONCURRENCY
        } else {
            concurrency
        };
        self
    }

    /// Fetches running now.
    pub fn running(&self) -> usize {
        *self.running.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The URL of a revision's Histograms.json.
    pub fn url(&self, repo: &str, rev: &str) -> String {
        self.template.replace("{repo}", repo).replace("{rev}", rev)
    }

    /// Counters so far.
    pub fn stats(&self) -> FetchStats {
        let c = &self.counters;
        FetchStats {
            fetched: c.fetched.load(Ordering::Relaxed),
            cache_hits: c.cache_hits.load(Ordering::Relaxed),
            not_found: c.not_found.load(Ordering::Relaxed),
            failed: c.failed.load(Ordering::Relaxed),
            busy: c.busy.load(Ordering::Relaxed),
            backoff_entries: self
                .failures
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .len() as u64,
        }
    }

    /// The cached text of a revision fetched earlier, if any.
    pub fn cached(&self, repo: &str, rev: &str) -> Option<String> {
        if !plain_repo(repo) {
            return None;
        }
        let text = self.cache.read_to_string(cache_path(repo, rev)).ok()?;
        self.counters.cache_hits.fetch_add(1, Ordering::Relaxed);
        Some(text)
    }

    /// Downloads a revision's Histograms.json (not yet cached: see [`Fetcher::store`]).
    pub fn fetch(&self, repo: &str, rev: &str) -> Result<String, FetchError> {
        let result = self.fetch_uncounted(repo, rev);
        let counter = match &result {
            Ok(_) => &self.counters.fetched,
            Err(e) if e.is_final() => &self.counters.not_found,
            Err(FetchError::Backoff { .. }) => return result,
            Err(FetchError::Busy { .. }) => &self.counters.busy,
            Err(_) => &self.counters.failed,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        result
    }

    fn fetch_uncounted(&self, repo: &str, rev: &str) -> Result<String, FetchError> {
        if !plain_repo(repo) {
            return Err(FetchError::BadRepo(repo.to_owned()));
        }
        let failure_key = format!("{repo}/{rev}");
        let failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(at) = failures.get(&failure_key) {
            let ago = at.elapsed();
            if ago < self.retry_after {
                return Err(FetchError::Backoff {
                    repo: repo.to_owned(),
                    rev: rev.to_owned(),
                    ago,
                    retry_after: self.retry_after,
                });
            }
        }
        drop(failures);
        let url = self.url(repo, rev);
        let slot = self.slot(&url)?;
        let result = self.get(&url);
        drop(slot);
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        match &result {
            Err(FetchError::Failed { .. }) => {
                if failures.len() >= MAX_FAILURES {
                    let retry_after = self.retry_after;
                    failures.retain(|_, at| at.elapsed() < retry_after);
                    while failures.len() >= MAX_FAILURES {
                        let oldest = failures
                            .iter()
                            .min_by_key(|(_, at)| **at)
                            .map(|(k, _)| k.clone());
                        let Some(oldest) = oldest else { break };
                        failures.remove(&oldest);
                    }
                }
                failures.insert(failure_key, Instant::now());
            }
            _ => {
                failures.remove(&failure_key);
            }
        }
        result
    }

    /// Waits (up to the timeout) for one of the `concurrency` fetch slots.
    fn slot(&self, url: &str) -> Result<Slot<'_>, FetchError> {
        let running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        let (mut running, wait) = self
            .slot_freed
            .wait_timeout_while(running, self.timeout, |n| *n >= self.concurrency)
            .unwrap_or_else(|e| e.into_inner());
        if wait.timed_out() && *running >= self.concurrency {
            return Err(FetchError::Busy {
                url: url.to_owned(),
                concurrency: self.concurrency,
                waited: self.timeout,
            });
        }
        *running += 1;
        Ok(Slot(self))
    }

    fn get(&self, url: &str) -> Result<String, FetchError> {
        let failed = |reason: String| FetchError::Failed {
            url: url.to_owned(),
            reason,
        };
        let client = self
            .client
            .get_or_init(|| {
                reqwest::blocking::Client::builder()
                    .timeout(self.timeout)
                    .user_agent(concat!("telemetry-server/", env!("CARGO_PKG_VERSION")))
                    .build()
                    .map_err(|e| e.to_string())
            })
            .as_ref()
            .map_err(|e| failed(format!("cannot build the HTTP client: {e}")))?;
        let response = client
            .get(url)
            .send()
            .map_err(|e| failed(error_chain(&e)))?;
        let status = response.status();
        if status == reqwest::StatusCode::NOT_FOUND || status == reqwest::StatusCode::GONE {
            return Err(FetchError::NotFound {
                url: url.to_owned(),
                status: status.as_u16(),
            });
        }
        if !status.is_success() {
            return Err(failed(format!("HTTP {status}")));
        }
        let mut body = Vec::new();
        response
            .take(MAX_BYTES + 1)
            .read_to_end(&mut body)
            .map_err(|e| failed(format!("reading the body: {e}")))?;
        if body.len() as u64 > MAX_BYTES {
            return Err(failed(format!("body over {MAX_BYTES} bytes")));
        }
        String::from_utf8(body).map_err(|_| failed("body is not UTF-8".into()))
    }

    /// Keeps a fetched (and parsed: the caller checks it first) Histograms.json in the cache.
    pub fn store(&self, repo: &str, rev: &str, text: &str) -> std::io::Result<()> {
        if !plain_repo(repo) {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("repository path {repo:?} is not plain path segments"),
            ));
        }
        let dir = format!("{repo}/{rev}");
        self.cache.create_dir_all(&dir)?;
        let tmp = format!("{dir}/{FILE}.partial");
        let mut file = self.cache.create(&tmp)?;
        file.write_all(text.as_bytes())?;
        file.sync_data()?;
        drop(file);
        self.cache.rename(&tmp, &self.cache, cache_path(repo, rev))
    }
}

/// A fetch slot, given back when dropped.
struct Slot<'a>(&'a Fetcher);

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        let mut running = self.0.running.lock().unwrap_or_else(|e| e.into_inner());
        *running = running.saturating_sub(1);
        self.0.slot_freed.notify_one();
    }
}

fn cache_path(repo: &str, rev: &str) -> String {
    format!("{repo}/{rev}/{FILE}")
}

/// `releases/mozilla-aurora`: segments of `[A-Za-z0-9._-]`, none of them `.` or `..`.
fn plain_repo(repo: &str) -> bool {
    !repo.is_empty()
        && repo.split('/').all(|seg| {
            !seg.is_empty()
                && seg != "."
                && seg != ".."
                && seg
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repository_paths_must_be_plain() {
        for good in [
            "mozilla-central",
            "releases/mozilla-aurora",
            "projects/ux.2_a",
        ] {
            assert!(plain_repo(good), "{good}");
        }
        for bad in [
            "", "..", "a/../b", "a//b", "/abs", "a/", "a b", "a%2F..", "a\\b",
        ] {
            assert!(!plain_repo(bad), "{bad}");
        }
    }

    #[test]
    fn templates_need_a_scheme_and_a_revision() {
        let dir = tempfile::tempdir().unwrap();
        let open = || Dir::open_ambient_dir(dir.path(), cap_std::ambient_authority()).unwrap();
        let second = Duration::from_secs(1);
        assert!(Fetcher::new("hg.mozilla.org/{repo}", open(), second, second).is_err());
        assert!(Fetcher::new(
            "https://hg.mozilla.org/{repo}/raw-file/tip/H.json",
            open(),
            second,
            second
        )
        .is_err());
        let fetcher = Fetcher::new("hg", open(), second, second).unwrap();
        assert_eq!(
            fetcher.url("releases/mozilla-beta", "0123456789ab"),
            "https://hg.mozilla.org/releases/mozilla-beta/raw-file/0123456789ab/toolkit/components/telemetry/Histograms.json"
        );
    }

    #[test]
    fn a_refused_connection_backs_off_and_a_bad_repo_is_final() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Dir::open_ambient_dir(dir.path(), cap_std::ambient_authority()).unwrap();
        // A port nothing listens on: bind one, then drop it.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let template = format!("http://127.0.0.1:{port}/{{repo}}/raw-file/{{rev}}/Histograms.json");
        let fetcher = Fetcher::new(
            &template,
            cache,
            Duration::from_secs(2),
            Duration::from_secs(3600),
        )
        .unwrap();
        let first = fetcher
            .fetch("mozilla-central", "0123456789ab")
            .unwrap_err();
        assert!(
            matches!(first, FetchError::Failed { .. }) && !first.is_final(),
            "{first}"
        );
        let again = fetcher
            .fetch("mozilla-central", "0123456789ab")
            .unwrap_err();
        assert!(matches!(again, FetchError::Backoff { .. }), "{again}");
        let bad = fetcher.fetch("../etc", "0123456789ab").unwrap_err();
        assert!(bad.is_final(), "{bad}");
        assert_eq!(
            fetcher.stats(),
            FetchStats {
                fetched: 0,
                cache_hits: 0,
                not_found: 1,
                failed: 1,
                busy: 0,
                backoff_entries: 1
            }
        );
        assert!(fetcher.store("../etc", "0123456789ab", "{}").is_err());
    }
}
