//! The moka tier (the default): each value with its horizons, and moka
//! told to drop it at its last one.
//!
//! Each entry carries its horizons, and moka is told to drop it at its last
//! one: a global `time_to_live` when every entry lives equally long (no
//! jitter, no per-value ttl, no negative entries, no fail-safe throttling),
//! per-entry expiry otherwise. For a function with no swr, fail-safe or
//! early refresh the last horizon is freshness itself, so on the system
//! clock an entry moka still returns is fresh, and the hit path needs no
//! clock read of its own (`Instant::now` costs as much as a sixth of a moka
//! hit on some VMs). A manual clock does not move moka's, so the engine then
//! checks `fresh_until` itself.
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

use super::{Entry, Held};
use crate::expiry::MAX_LIFETIME;
use crate::tags::{HoldsStamps, Stamps};

/// Tells moka to drop each entry when its own lifetime is over.
struct EntryLifetime;

impl<K, V> Expiry<K, Entry<V>> for EntryLifetime {
    fn expire_after_create(&self, _: &K, entry: &Entry<V>, _: Instant) -> Option<Duration> {
        Some(Duration::from_nanos(entry.lifetime).min(MAX_LIFETIME))
    }

    fn expire_after_update(
        &self,
        _: &K,
        entry: &Entry<V>,
        _: Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        Some(Duration::from_nanos(entry.lifetime).min(MAX_LIFETIME))
    }
}

/// A moka cache of entries held as `H`: whole ([`Entry`]), or [`Plain`]
/// for a one-horizon function under a global ttl (40 bytes less per entry,
/// and a hit that copies less).
///
/// [`Plain`]: super::Plain
pub(crate) struct MokaTier<K, V, H = Entry<V>> {
    cache: Cache<K, H>,
    /// Entries added under a key that held none.
    admitted: AtomicU64,
    /// Entries removed by invalidation.
    removed: AtomicU64,
    /// When the load path last exported the evictions (nanoseconds since
    /// the process's first `Instant`).
    #[cfg(feature = "metrics")]
    settled_at: AtomicU64,
    _values: std::marker::PhantomData<fn() -> V>,
}

impl<K, V> MokaTier<K, V>
where
    K: Hash + Eq + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// A tier of `max_capacity` whole entries. With `same_lifetime`, every
    /// entry lives exactly that long (a global ttl); otherwise each its own.
    pub(crate) fn new(max_capacity: u64, same_lifetime: Option<Duration>) -> Self {
        match same_lifetime {
            Some(lifetime) => Self::with_ttl(max_capacity, lifetime),
            // Per-entry expiry costs moka about a quarter more per read;
            // only varying lifetimes need it.
            None => Self::over(
                Cache::builder()
                    .max_capacity(max_capacity)
                    .expire_after(EntryLifetime)
                    .build(),
            ),
        }
    }
}

impl<K, V, H> MokaTier<K, V, H>
where
    K: Hash + Eq + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
    H: Held<V>,
{
    /// A tier of `max_capacity` entries, each living `lifetime`.
    pub(crate) fn with_ttl(max_capacity: u64, lifetime: Duration) -> Self {
        Self::over(
            Cache::builder()
                .max_capacity(max_capacity)
                .time_to_live(lifetime)
                .build(),
        )
    }

    fn over(cache: Cache<K, H>) -> Self {
        MokaTier {
            cache,
            admitted: AtomicU64::new(0),
            removed: AtomicU64::new(0),
            #[cfg(feature = "metrics")]
            settled_at: AtomicU64::new(0),
            _values: std::marker::PhantomData,
        }
    }

    #[inline(always)]
    pub(crate) fn get(&self, key: &K) -> Option<Entry<V>> {
        self.get_held(key).map(H::entry)
    }

    /// [`get`](Self::get), in the form the tier holds it.
    #[inline(always)]
    pub(crate) fn get_held(&self, key: &K) -> Option<H> {
        self.cache.get(key)
    }

    /// Stores `entry`. The caller holds the key's flight-shard lock, so no
    /// other store or invalidation of this key runs between the two calls.
    pub(crate) fn insert(&self, key: K, entry: Entry<V>) {
        let replaces = self.cache.contains_key(&key);
        self.cache.insert(key, H::hold(entry));
        if !replaces {
            // Release: a count that sees it sees moka's insert queued.
            self.admitted.fetch_add(1, Ordering::Release);
        }
    }

    /// Removes the entry of `key`. (Not moka's `remove`, which clones the
    /// value it returns: user code the caller's lock need not run.)
    pub(crate) fn invalidate(&self, key: &K) {
        if self.cache.contains_key(key) {
            // Counted first: a count racing this sees one eviction fewer
            // for a moment, never one that did not happen.
            self.removed.fetch_add(1, Ordering::Release);
            self.cache.invalidate(key);
        }
    }

    /// Drops every entry stored before the call. The caller holds every
    /// flight-shard lock, so no store runs meanwhile.
    pub(crate) fn invalidate_all(&self) {
        // moka hides entries written strictly before its invalidation
        // time: wait for the clock to move past the last possible store.
        // (This relies on moka stamping with std's `Instant`, as it does
        // without its `quanta` feature, and comparing `entry < valid_after`.)
        let called_at = Instant::now();
        while Instant::now() <= called_at {
            std::hint::spin_loop();
        }
        self.cache.run_pending_tasks();
        let held = self.cache.entry_count();
        self.removed.fetch_add(held, Ordering::Release);
        self.cache.invalidate_all();
    }

    /// Entries dropped by moka itself, for capacity or expiry: all that were
    /// admitted and are neither held nor removed by invalidation, after
    /// moka has applied its pending work.
    ///
    /// Read in an order that makes a race undercount for a moment, never
    /// count an eviction that did not happen: `admitted` before moka
    /// settles (an entry admitted later and already held is not subtracted
    /// twice), `removed` after (it is counted before the entry goes).
    pub(crate) fn evictions(&self) -> u64 {
        let admitted = self.admitted.load(Ordering::Acquire);
        self.cache.run_pending_tasks();
        let held = self.cache.entry_count();
        let removed = self.removed.load(Ordering::Acquire);
        admitted.saturating_sub(held).saturating_sub(removed)
    }

    /// [`evictions`](Self::evictions) for the load path, which exports it:
    /// at most once a second per cache (settling moka's pending work costs
    /// more than a load should pay each time), `None` in between. moka's
    /// `entry_count` lags its inserts until it settles, so a count taken
    /// without settling would report evictions that never happened.
    #[cfg(feature = "metrics")]
    pub(crate) fn evictions_estimate(&self) -> Option<u64> {
        const EVERY: u64 = 1_000_000_000;
        let now = crate::clock::nanos_since_epoch(Instant::now());
        let last = self.settled_at.load(Ordering::Relaxed);
        if now.saturating_sub(last) < EVERY
            || self
                .settled_at
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            return None;
        }
        Some(self.evictions())
    }

    /// What a tag sweep walks: the entries of this cache (moka's own
    /// handle, shared).
    pub(crate) fn stamp_holder(&self) -> std::sync::Arc<dyn HoldsStamps> {
        std::sync::Arc::new(MokaStamps::<K, V, H> {
            cache: self.cache.clone(),
            _values: std::marker::PhantomData,
        })
    }

    /// Entries held, after moka has applied pending removals.
    pub(crate) fn len(&self) -> u64 {
        self.cache.run_pending_tasks();
        self.cache.entry_count()
    }
}

/// A moka cache's entries, for a tag sweep.
struct MokaStamps<K, V, H> {
    cache: Cache<K, H>,
    _values: std::marker::PhantomData<fn() -> V>,
}

impl<K, V, H> HoldsStamps for MokaStamps<K, V, H>
where
    K: Hash + Eq + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
    H: Held<V>,
{
    fn each_stamps(&self, each: &mut dyn FnMut(&Stamps)) {
        // moka's iterator clones each entry (its value too), and does not
        // count as a use of it.
        for (_, held) in &self.cache {
            each(held.stamps());
        }
    }
}
