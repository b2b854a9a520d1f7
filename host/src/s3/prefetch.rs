//! Read-ahead for [`super::S3Source`]: object stores answer each GET after a round trip
//! (tens of ms), so reading small partition files one after another is latency-bound. When a
//! file is opened, the prefetcher starts GETs for the files expected next, up to `depth` of
//! them, so their first chunks are already there when the job opens them.
//!
//! "Expected next" follows the job executor's order: biggest file first (then by path), which
//! is also the order each worker consumes its share in. A job may list several times (the
//! executor lists once more without the filter to count pruned files), so the order is taken
//! from the smallest recent listing that holds the opened file.
//!
//! Bounds: at most `depth` objects are prefetched at once, each buffers at most the stream's
//! channel (a few MB in all); prefetches use their own permits, so a prefetched file that is
//! never opened cannot hold up a file that is.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Mutex;

use crate::storage::PartitionFile;

use super::stream::ChannelReader;

/// Listings remembered for choosing the order (a job lists at most twice).
const LISTINGS_KEPT: usize = 4;

/// One listing in read order, with each path's position.
struct Listing {
    files: Vec<PartitionFile>,
    position: HashMap<String, usize>,
}

#[derive(Default)]
struct State {
    listings: VecDeque<Listing>,
    /// Prefetched readers not yet opened, by path.
    ready: HashMap<String, ChannelReader>,
    /// Paths already fetched (opened or prefetched) since the last listing.
    started: HashSet<String>,
}

/// The read-ahead state of one source.
pub(crate) struct Prefetcher {
    depth: usize,
    state: Mutex<State>,
}

impl Prefetcher {
    pub(crate) fn new(depth: usize) -> Self {
        Prefetcher {
            depth,
            state: Mutex::new(State::default()),
        }
    }

    /// Remembers a listing (in the executor's read order); drops read-ahead of earlier jobs.
    pub(crate) fn listed(&self, files: &[PartitionFile]) {
        let mut files = files.to_vec();
        files.sort_by(|a, b| b.size.cmp(&a.size).then_with(|| a.path.cmp(&b.path)));
        let position = files
            .iter()
            .enumerate()
            .map(|(i, f)| (f.path.clone(), i))
            .collect();
        let mut state = self.state.lock().unwrap();
        state.ready.clear();
        state.started.clear();
        state.listings.push_back(Listing { files, position });
        if state.listings.len() > LISTINGS_KEPT {
            state.listings.pop_front();
        }
    }

    /// The reader for `file`: the prefetched one if there is one, else `fetch(file)`; then
    /// starts fetches (`prefetch`) for the files expected next.
    pub(crate) fn open(
        &self,
        file: &PartitionFile,
        fetch: impl Fn(&PartitionFile) -> ChannelReader,
        prefetch: impl Fn(&PartitionFile) -> ChannelReader,
    ) -> ChannelReader {
        let mut state = self.state.lock().unwrap();
        let state = &mut *state;
        state.started.insert(file.path.clone());
        let reader = state
            .ready
            .remove(&file.path)
            .unwrap_or_else(|| fetch(file));
        if self.depth == 0 {
            return reader;
        }
        let listing = state
            .listings
            .iter()
            .filter(|l| l.position.contains_key(&file.path))
            .min_by_key(|l| l.files.len());
        if let Some(listing) = listing {
            let from = listing.position[&file.path] + 1;
            for next in &listing.files[from.min(listing.files.len())..] {
                if state.ready.len() >= self.depth {
                    break;
                }
                if state.started.insert(next.path.clone()) {
                    state.ready.insert(next.path.clone(), prefetch(next));
                }
            }
        }
        reader
    }
}
