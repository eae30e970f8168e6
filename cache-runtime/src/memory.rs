//! The in-memory tier: moka, holding each value with its freshness horizon.
//!
//! Each entry carries its own `fresh_until`, and moka is told to drop it at
//! that same horizon: a global `time_to_live` when every entry gets the same
//! ttl (no jitter), per-entry expiry otherwise. So on the system clock an
//! entry moka still returns is fresh, and the hit path needs no clock read of
//! its own (`Instant::now` costs as much as a sixth of a moka hit on some
//! VMs). A manual clock does not move moka's, so the engine then checks
//! `fresh_until` itself.
//!
//! Evictions (entries moka drops on its own, for capacity or expiry) are
//! counted by accounting, not with an eviction listener: registering any
//! listener makes moka 0.12.16's periodic upkeep allocate on the read path,
//! and a hit must not allocate.

use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use moka::sync::Cache;
use moka::Expiry;

use crate::expiry::ExpiryPolicy;

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
    /// Entries added under a key that held none.
    admitted: AtomicU64,
    /// Entries removed by invalidation.
    removed: AtomicU64,
}

impl<K, V> MemoryTier<K, V>
where
    K: Hash + Eq + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    pub(crate) fn new(max_capacity: u64, expiry: ExpiryPolicy) -> Self {
        let builder = Cache::builder().max_capacity(max_capacity);
        // Per-entry expiry costs moka about a quarter more per read; only
        // jitter needs it.
        let cache = if expiry.jitter() == 0.0 {
            builder.time_to_live(expiry.ttl()).build()
        } else {
            builder.expire_after(EntryLifetime).build()
        };
        MemoryTier {
            cache,
            admitted: AtomicU64::new(0),
            removed: AtomicU64::new(0),
        }
    }

    #[inline]
    pub(crate) fn get(&self, key: &K) -> Option<Entry<V>> {
        self.cache.get(key)
    }

    /// Stores `entry`. The caller holds the key's flight-shard lock, so no
    /// other store or invalidation of this key runs between the two calls.
    pub(crate) fn insert(&self, key: K, entry: Entry<V>) {
        let replaces = self.cache.contains_key(&key);
        self.cache.insert(key, entry);
        if !replaces {
            self.admitted.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Removes the entry of `key`. (Not moka's `remove`, which clones the
    /// value it returns: user code the caller's lock need not run.)
    pub(crate) fn invalidate(&self, key: &K) {
        if self.cache.contains_key(key) {
            self.cache.invalidate(key);
            self.removed.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub(crate) fn invalidate_all(&self) {
        self.cache.run_pending_tasks();
        let held = self.cache.entry_count();
        self.cache.invalidate_all();
        self.removed.fetch_add(held, Ordering::Relaxed);
    }

    /// Entries dropped by moka itself, for capacity or expiry: all that were
    /// admitted and are neither held nor removed by invalidation. Exact when
    /// no store races an expiry or `invalidate_all`; off by those races else.
    pub(crate) fn evictions(&self) -> u64 {
        let held = self.len();
        let admitted = self.admitted.load(Ordering::Relaxed);
        let removed = self.removed.load(Ordering::Relaxed);
        admitted.saturating_sub(held).saturating_sub(removed)
    }

    /// Entries held, after moka has applied pending removals.
    pub(crate) fn len(&self) -> u64 {
        self.cache.run_pending_tasks();
        self.cache.entry_count()
    }
}
