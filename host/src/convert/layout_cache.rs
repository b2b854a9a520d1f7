//! Bucket layouts of self-described histograms, computed once per conversion thread: a ping
//! carries hundreds of histograms whose own `histogram_type`, `range` and `bucket_count` repeat
//! from ping to ping, and an exponential layout costs a logarithm and an exponential per bucket.
//!
//! Bounded: a thread keeps at most [`MAX_CACHED_BOUNDS`] bucket bounds (512 KiB); when a new
//! layout would exceed that, the thread's cache is emptied first.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use crate::histograms::{BucketLayout, Kind};

/// Most bucket bounds (8 bytes each) one thread's cache holds.
pub const MAX_CACHED_BOUNDS: usize = 1 << 16;

#[derive(Default)]
struct Cache {
    layouts: HashMap<(Kind, i64, i64, i64), Rc<BucketLayout>>,
    /// Bounds held by `layouts`.
    bounds: usize,
}

thread_local! {
    static CACHE: RefCell<Cache> = RefCell::new(Cache::default());
}

/// [`BucketLayout::new`]`(kind, low, high, n)`, from this thread's cache when computed before;
/// `None` when those parameters make no layout.
pub fn layout(kind: Kind, low: i64, high: i64, n: i64) -> Option<Rc<BucketLayout>> {
    let key = (kind, low, high, n);
    if let Some(hit) = CACHE.with(|c| c.borrow().layouts.get(&key).cloned()) {
        return Some(hit);
    }
    let layout = Rc::new(BucketLayout::new(kind, low, high, n).ok()?);
    CACHE.with(|c| {
        let mut cache = c.borrow_mut();
        let size = layout.n_buckets();
        if cache.bounds + size > MAX_CACHED_BOUNDS {
            cache.layouts.clear();
            cache.bounds = 0;
        }
        if size <= MAX_CACHED_BOUNDS {
            cache.bounds += size;
            cache.layouts.insert(key, layout.clone());
        }
    });
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
}
