//! [`Lru`]: a small bounded map that evicts the least recently used entry when full.
//!
//! Used by the revision cache ([`super::RevisionCache`]) so that the memory anonymous
//! `/histograms?revision=` lookups and ping revisions can take is bounded by a configured entry
//! count. Not thread-safe on its own: the caller holds it behind a lock and keeps every critical
//! section to a map operation (no I/O under the lock).

use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;

/// A map of at most `capacity` entries; inserting into a full map evicts the entry used least
/// recently (a `get` counts as a use).
#[derive(Debug)]
pub struct Lru<K, V> {
    capacity: usize,
    /// Key → (value, tick of its last use).
    map: HashMap<K, (V, u64)>,
    /// Tick of last use → key, oldest first (ticks are unique).
    order: BTreeMap<u64, K>,
    tick: u64,
    evictions: u64,
}

impl<K: Eq + Hash + Clone, V: Clone> Lru<K, V> {
    /// An empty map holding at most `capacity` entries (at least 1).
    pub fn new(capacity: usize) -> Lru<K, V> {
        Lru {
            capacity: capacity.max(1),
            map: HashMap::new(),
            order: BTreeMap::new(),
            tick: 0,
            evictions: 0,
        }
    }

    fn next_tick(&mut self) -> u64 {
        self.tick += 1;
        self.tick
    }

    /// The value of `key`, marking it used.
    pub fn get(&mut self, key: &K) -> Option<V> {
        let tick = self.next_tick();
        let (value, used) = self.map.get_mut(key)?;
        self.order.remove(used);
        *used = tick;
        self.order.insert(tick, key.clone());
        Some(value.clone())
    }

    /// Inserts or replaces `key`, evicting the least recently used entries beyond the capacity.
    pub fn insert(&mut self, key: K, value: V) {
        let tick = self.next_tick();
        if let Some((_, used)) = self.map.insert(key.clone(), (value, tick)) {
            self.order.remove(&used);
        }
        self.order.insert(tick, key);
        while self.map.len() > self.capacity {
            let Some((_, oldest)) = self.order.pop_first() else {
                break;
            };
            self.map.remove(&oldest);
            self.evictions += 1;
        }
    }

    /// Removes `key`.
    pub fn remove(&mut self, key: &K) -> Option<V> {
        let (value, used) = self.map.remove(key)?;
        self.order.remove(&used);
        Some(value)
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether the map is empty.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Entries evicted so far.
    pub fn evictions(&self) -> u64 {
        self.evictions
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evicts_the_least_recently_used_entry() {
        let mut lru = Lru::new(2);
        lru.insert("a", 1);
        lru.insert("b", 2);
        assert_eq!(lru.get(&"a"), Some(1)); // "b" is now the oldest
        lru.insert("c", 3);
        assert_eq!(
            (lru.get(&"b"), lru.get(&"a"), lru.get(&"c")),
            (None, Some(1), Some(3))
        );
        assert_eq!((lru.len(), lru.evictions()), (2, 1));
        lru.insert("a", 10); // replacing does not evict
        assert_eq!(
            (lru.get(&"a"), lru.len(), lru.evictions()),
            (Some(10), 2, 1)
        );
        assert_eq!(lru.remove(&"c"), Some(3));
        assert_eq!(lru.len(), 1);
    }

    #[test]
    fn never_grows_past_its_capacity() {
        let mut lru = Lru::new(100);
        for i in 0..10_000 {
            lru.insert(i, i);
            assert!(lru.len() <= 100);
        }
        assert_eq!(lru.evictions(), 9_900);
        assert_eq!(lru.get(&9_999), Some(9_999));
        assert_eq!(lru.get(&0), None);
    }
}
