//! Bucket layouts of self-described histograms, computed once per conversion thread: a ping
//! carries hundreds of histograms whose own `histogram_type`, `range` and `bucket_count` repeat
//! from ping to ping, and an exponential layout costs a logarithm and an exponential per bucket.
//!
//! Bounded: a thread keeps at most [`MAX_CACHED_BOUNDS`] bucket bounds (512 KiB); when a new
//! layout would exceed that, the thread's cache is emptied first. [`stats`] sums every thread's
//! cache for `/metrics`; only misses touch the shared counters, so hits stay thread-local.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::histograms::{BucketLayout, Kind};

/// Most bucket bounds (8 bytes each) one thread's cache holds.
pub const MAX_CACHED_BOUNDS: usize = 1 << 16;

/// The caches' counters, summed over threads.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LayoutCacheStats {
    /// Bucket bounds held now by all threads' caches.
    pub held_bounds: u64,
    /// Layouts computed on a miss, since the process started.
    pub computed: u64,
    /// Caches emptied because a new layout would exceed [`MAX_CACHED_BOUNDS`].
    pub emptied: u64,
}

/// Shared counters that every thread's cache updates on a miss.
#[derive(Default)]
struct Counters {
    held_bounds: AtomicU64,
    computed: AtomicU64,
    emptied: AtomicU64,
}

static COUNTERS: Counters = Counters {
    held_bounds: AtomicU64::new(0),
    computed: AtomicU64::new(0),
    emptied: AtomicU64::new(0),
};

/// The counters of every thread's cache together.
pub fn stats() -> LayoutCacheStats {
    COUNTERS.read()
}

impl Counters {
    fn read(&self) -> LayoutCacheStats {
        LayoutCacheStats {
            held_bounds: self.held_bounds.load(Ordering::Relaxed),
            computed: self.computed.load(Ordering::Relaxed),
            emptied: self.emptied.load(Ordering::Relaxed),
        }
    }
}

/// One thread's layouts.
struct Cache {
    layouts: HashMap<(Kind, i64, i64, i64), Rc<BucketLayout>>,
    /// Bounds held by `layouts`.
    bounds: usize,
    counters: &'static Counters,
}

impl Cache {
    fn new(counters: &'static Counters) -> Cache {
        Cache {
            layouts: HashMap::new(),
            bounds: 0,
            counters,
        }
    }

    /// Keeps a layout just computed for `key`, emptying the cache first when it would not fit.
    fn insert(&mut self, key: (Kind, i64, i64, i64), layout: &Rc<BucketLayout>) {
        self.counters.computed.fetch_add(1, Ordering::Relaxed);
        let size = layout.n_buckets();
        if self.bounds + size > MAX_CACHED_BOUNDS {
            self.empty();
            self.counters.emptied.fetch_add(1, Ordering::Relaxed);
        }
        if size <= MAX_CACHED_BOUNDS {
            self.bounds += size;
            self.counters
                .held_bounds
                .fetch_add(size as u64, Ordering::Relaxed);
            self.layouts.insert(key, layout.clone());
        }
    }

    fn empty(&mut self) {
        self.counters
            .held_bounds
            .fetch_sub(self.bounds as u64, Ordering::Relaxed);
        self.layouts.clear();
        self.bounds = 0;
    }
}

impl Drop for Cache {
    /// A retiring conversion thread's bounds leave the shared total with it.
    fn drop(&mut self) {
        self.empty();
    }
}

thread_local! {
    static CACHE: RefCell<Cache> = RefCell::new(Cache::new(&COUNTERS));
}

/// [`BucketLayout::new`]`(kind, low, high, n)`, from this thread's cache when computed before;
/// `None` when those parameters make no layout.
pub fn layout(kind: Kind, low: i64, high: i64, n: i64) -> Option<Rc<BucketLayout>> {
    let key = (kind, low, high, n);
    if let Some(hit) = CACHE.with(|c| c.borrow().layouts.get(&key).cloned()) {
        return Some(hit);
    }
    let layout = Rc::new(BucketLayout::new(kind, low, high, n).ok()?);
    CACHE.with(|c| c.borrow_mut().insert(key, &layout));
    Some(layout)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cached_layouts_equal_computed_ones_and_the_cache_stays_bounded() {
        let first = layout(Kind::Exponential, 1, 3000, 10).unwrap();
        assert_eq!(
            *first,
            BucketLayout::new(Kind::Exponential, 1, 3000, 10).unwrap()
        );
        assert!(Rc::ptr_eq(
            &first,
            &layout(Kind::Exponential, 1, 3000, 10).unwrap()
        ));
        assert!(layout(Kind::Linear, 5, 5, 10).is_none());
        for high in 0..100 {
            layout(Kind::Linear, 1, 10_000 + high, 10_000).unwrap();
            let held = CACHE.with(|c| c.borrow().bounds);
            assert!(held <= MAX_CACHED_BOUNDS, "{held}");
        }
    }

    #[test]
    fn the_shared_counters_follow_misses_emptyings_and_retiring_threads() {
        let counters: &'static Counters = Box::leak(Box::default());
        let mut cache = Cache::new(counters);
        for high in 0..20 {
            let layout =
                Rc::new(BucketLayout::new(Kind::Linear, 1, 20_000 + high, 10_000).unwrap());
            cache.insert((Kind::Linear, 1, 20_000 + high, 10_000), &layout);
            assert_eq!(counters.read().held_bounds, cache.bounds as u64);
        }
        // Six layouts of 10,000 bounds fit in 65,536: the 7th, 13th and 19th empty the cache.
        assert_eq!(
            counters.read(),
            LayoutCacheStats {
                held_bounds: 20_000,
                computed: 20,
                emptied: 3
            }
        );
        drop(cache);
        assert_eq!(counters.read().held_bounds, 0);
    }
}
