//! The in-memory tier: moka, holding each value with its freshness horizon.
//!
//! Each entry carries its own `fresh_until`, and moka is told to drop it at
//! that same horizon: a global `time_to_live` when every entry gets the same
//! ttl (no jitter), per-entry expiry otherwise. So on the system clock an
//! entry moka still returns is fresh, and the hit path needs no clock read of
//! its own (`Instant::now` costs as much as a sixth of a moka hit on some
//! VMs). A manual clock does not move moka's, so the engine then checks
//! `fresh_until` itself.

use std::hash::Hash;
use std::sync::Arc;
use std::time::{Duration, Instant};

use moka::notification::RemovalCause;
use moka::sync::Cache;
use moka::Expiry;

use crate::expiry::ExpiryPolicy;
use crate::stats::{Counter, Counters};

/// A cached value and its horizon.
#[derive(Clone, Debug)]
pub(crate) struct Entry<V> {
    pub(crate) value: V,
    pub(crate) fresh_until: Instant,
    /// How long moka keeps the entry: the span up to its last horizon.
    pub(crate) lifetime: Duration,
}

/// Tells moka to drop each entry when its own lifetime is over.
struct EntryLifetime;

impl<K, V> Expiry<K, Entry<V>> for EntryLifetime {
    fn expire_after_create(&self, _: &K, entry: &Entry<V>, _: Instant) -> Option<Duration> {
        Some(entry.lifetime)
    }

    fn expire_after_update(
        &self,
        _: &K,
        entry: &Entry<V>,
        _: Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        Some(entry.lifetime)
    }
}

pub(crate) struct MemoryTier<K, V> {
    cache: Cache<K, Entry<V>>,
}

impl<K, V> MemoryTier<K, V>
where
    K: Hash + Eq + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    pub(crate) fn new(max_capacity: u64, expiry: ExpiryPolicy, counters: Arc<Counters>) -> Self {
        let builder = Cache::builder()
            .max_capacity(max_capacity)
            .eviction_listener(move |_, _, cause| {
                if cause == RemovalCause::Size {
                    counters.incr(Counter::Evictions);
                }
            });
        // Per-entry expiry costs moka about a quarter more per read; only
        // jitter needs it.
        let cache = if expiry.jitter() == 0.0 {
            builder.time_to_live(expiry.ttl()).build()
        } else {
            builder.expire_after(EntryLifetime).build()
        };
        MemoryTier { cache }
    }

    #[inline]
    pub(crate) fn get(&self, key: &K) -> Option<Entry<V>> {
        self.cache.get(key)
    }

    pub(crate) fn insert(&self, key: K, entry: Entry<V>) {
        self.cache.insert(key, entry);
    }

    pub(crate) fn invalidate(&self, key: &K) {
        self.cache.invalidate(key);
    }

    pub(crate) fn invalidate_all(&self) {
        self.cache.invalidate_all();
    }

    /// Entries held, after moka has applied pending removals.
    pub(crate) fn len(&self) -> u64 {
        self.cache.run_pending_tasks();
        self.cache.entry_count()
    }
}
