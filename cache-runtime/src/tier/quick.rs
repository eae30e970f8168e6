//! The quick tier: `quick_cache`'s S3-FIFO, one single-threaded cache per
//! shard, each behind a reader-sharded lock.
//!
//! A hit takes its shard's read lock and sets the entry's reference bits
//! (only until they saturate): no shared counter, no read buffer. The read
//! lock is crossbeam's `ShardedLock`: eight cache-padded `RwLock`s, a reader
//! takes the one its thread's index picks, a writer takes all eight. So two
//! threads reading the same shard write two different cache lines, and a
//! hit scales with cores; quick_cache's own concurrent cache takes one
//! `RwLock` per shard, whose lock word every reader of the shard writes,
//! which held two threads to about 1.6× the hits of one (raw quick_cache:
//! 1.07×). A write locks eight words instead of one: stores (a load's
//! value, a refresh mark), removals, and the stats sweep.
//!
//! Expiry is the engine's own: an entry carries its horizons,
//! and one past its last horizon (`fail_safe_until`) is a miss, which the
//! load that follows replaces; one nobody asks for again is evicted like
//! any cold entry. Expired entries therefore hold at most the capacity,
//! never more. Reading stats (`len`, `evictions`) sweeps them out first
//! (one pass over the shards, each under its write lock in turn), and an
//! expired entry replaced, removed or swept is counted as evicted, so the
//! figures mean what they mean on moka.

use std::hash::{BuildHasher, Hash};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError};

use crossbeam_utils::sync::{ShardedLock, ShardedLockReadGuard, ShardedLockWriteGuard};
use quick_cache::unsync::Cache;
use quick_cache::{DefaultHashBuilder, Lifecycle, OptionsBuilder, UnitWeighter};

use super::{Entry, Held};
use crate::clock::Clock;
use crate::tags::{HoldsStamps, Stamps};

/// Counts what quick_cache evicts (for capacity), and drops it after the
/// shard lock is released, as quick_cache's own default does.
#[derive(Clone)]
struct CountEvictions(Arc<AtomicU64>);

/// One insert's evictions: what it pushed out, dropped when the request
/// ends (outside the shard lock), and whether it replaces an entry still
/// live.
struct Evicted<K, V> {
    dropped: [Option<(K, V)>; 2],
    /// quick_cache hands the entry an insert replaces to `on_evict`, as if
    /// evicted: a live one was not (its key keeps a value), an expired one
    /// was (as moka counts an expired entry).
    replaces_live: bool,
}

impl<K, V> Default for Evicted<K, V> {
    fn default() -> Self {
        Evicted {
            dropped: [None, None],
            replaces_live: false,
        }
    }
}

impl<K, V> Lifecycle<K, V> for CountEvictions {
    type RequestState = Evicted<K, V>;

    #[inline]
    fn on_evict(&self, state: &mut Self::RequestState, key: K, value: V) {
        // With unit weights a replacement evicts nothing else: its one call
        // is the replaced entry.
        if !std::mem::take(&mut state.replaces_live) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
        if let Some(slot) = state.dropped.iter_mut().find(|slot| slot.is_none()) {
            *slot = Some((key, value));
        }
    }
}

type Shard<K, H> = Cache<K, H, UnitWeighter, DefaultHashBuilder, CountEvictions>;

pub(crate) struct QuickTier<K, V, H = Entry<V>> {
    /// Shared with the tag sweep's handle (see [`stamp_holder`](Self::stamp_holder)).
    shards: Arc<[ShardedLock<Shard<K, H>>]>,
    /// Picks a key's shard (each shard hashes again to find it).
    hasher: DefaultHashBuilder,
    clock: Clock,
    evicted: Arc<AtomicU64>,
    _values: std::marker::PhantomData<fn() -> V>,
}

impl<K, V, H> QuickTier<K, V, H>
where
    K: Hash + Eq + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
    H: Held<V>,
{
    /// A tier of at most `max_capacity` entries, reading "now" from `clock`.
    ///
    /// Shards as quick_cache's concurrent cache makes them: four per core,
    /// fewer when a shard would hold under 32 entries, the capacity split
    /// evenly (rounded up); so both hold the same keys together and evict
    /// alike.
    pub(crate) fn new(max_capacity: u64, clock: Clock) -> Self {
        if matches!(clock, Clock::System) {
            crate::clock::start_coarse_clock();
        }
        let capacity = max_capacity.max(1);
        let cores = std::thread::available_parallelism().map_or(4, std::num::NonZero::get);
        let mut shards = (cores as u64 * 4).next_power_of_two();
        while capacity.div_ceil(shards) < 32 && shards > 1 {
            shards /= 2;
        }
        let per_shard = capacity.div_ceil(shards);
        let evicted = Arc::new(AtomicU64::new(0));
        let hasher = DefaultHashBuilder::default();
        let shard = || {
            let options = OptionsBuilder::new()
                .estimated_items_capacity(usize::try_from(per_shard).unwrap_or(usize::MAX))
                .weight_capacity(per_shard)
                .build()
                .expect("herdcache: quick_cache options (a capacity and its estimate) are valid");
            ShardedLock::new(Cache::with_options(
                options,
                UnitWeighter,
                hasher.clone(),
                CountEvictions(Arc::clone(&evicted)),
            ))
        };
        QuickTier {
            shards: (0..shards).map(|_| shard()).collect(),
            hasher,
            clock,
            evicted,
            _values: std::marker::PhantomData,
        }
    }

    /// The shard that holds `key`: the hash's middle bits, as quick_cache
    /// picks them (its low bits choose the bucket inside the shard).
    #[inline(always)]
    fn shard(&self, key: &K) -> &ShardedLock<Shard<K, H>> {
        let hash = self.hasher.hash_one(key);
        let index = hash.rotate_right(usize::BITS / 2) as usize & (self.shards.len() - 1);
        &self.shards[index]
    }

    /// The read lock of `shard`. A panic under a write lock (in a key's own
    /// `Hash` or `Eq`, or a value's `Drop` in a clear or a sweep) leaves
    /// quick_cache's shard consistent, so a poisoned lock is used as it is,
    /// as quick_cache's own `parking_lot` locks are.
    #[inline(always)]
    fn read(shard: &ShardedLock<Shard<K, H>>) -> ShardedLockReadGuard<'_, Shard<K, H>> {
        shard.read().unwrap_or_else(PoisonError::into_inner)
    }

    #[inline]
    fn write(shard: &ShardedLock<Shard<K, H>>) -> ShardedLockWriteGuard<'_, Shard<K, H>> {
        shard.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// The entry of `key`, unless it is past its last horizon.
    #[inline(always)]
    pub(crate) fn get(&self, key: &K) -> Option<Entry<V>> {
        self.get_held(key).map(H::entry)
    }

    /// [`get`](Self::get), in the form the tier holds it.
    #[inline(always)]
    pub(crate) fn get_held(&self, key: &K) -> Option<H> {
        let held = Self::read(self.shard(key)).get(key)?.clone();
        (self.clock.coarse_now_nanos() < held.last_horizon()).then_some(held)
    }

    /// Stores `entry`. What it evicts is dropped after the lock is released.
    pub(crate) fn insert(&self, key: K, entry: Entry<V>) {
        let mut evicted = Evicted::default();
        let shard = self.shard(&key);
        let mut cache = Self::write(shard);
        // `peek`: a look that does not make the entry hotter.
        evicted.replaces_live = cache
            .peek(&key)
            .is_some_and(|held| self.clock.now_nanos() < held.last_horizon());
        cache.insert_with_lifecycle(key, H::hold(entry), &mut evicted);
        drop(cache);
        drop(evicted);
    }

    /// Removes the entry of `key`. One already past its last horizon was
    /// dead: counted as evicted, as moka counts an expired entry.
    pub(crate) fn invalidate(&self, key: &K) {
        let removed = Self::write(self.shard(key)).remove(key);
        if let Some((_, held)) = removed {
            if self.clock.now_nanos() >= held.last_horizon() {
                self.evicted.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Empties every shard, one after the other (each under its write
    /// lock), as quick_cache's own `clear` does.
    pub(crate) fn invalidate_all(&self) {
        for shard in self.shards.iter() {
            Self::write(shard).clear();
        }
    }

    /// What a tag sweep walks: the entries of every shard, each under its
    /// read lock in turn.
    pub(crate) fn stamp_holder(&self) -> Arc<dyn HoldsStamps> {
        Arc::new(QuickStamps::<K, V, H> {
            shards: Arc::clone(&self.shards),
            _values: std::marker::PhantomData,
        })
    }

    /// Entries held, expired ones included.
    fn raw_len(&self) -> usize {
        self.shards
            .iter()
            .map(|shard| Self::read(shard).len())
            .sum()
    }

    /// Entries dropped for capacity, and expired ones (removed by
    /// [`sweep`](Self::sweep) first, so that the count means what moka's
    /// does).
    pub(crate) fn evictions(&self) -> u64 {
        self.sweep();
        self.evicted_so_far()
    }

    /// [`evictions`](Self::evictions) without the sweep: each one counted
    /// is real; expired entries not yet reclaimed are counted once a sweep
    /// or a store reclaims them.
    pub(crate) fn evicted_so_far(&self) -> u64 {
        self.evicted.load(Ordering::Relaxed)
    }

    /// What the load path exports: [`evicted_so_far`](Self::evicted_so_far),
    /// cheap enough for every load.
    #[cfg(feature = "metrics")]
    pub(crate) fn evictions_estimate(&self) -> Option<u64> {
        Some(self.evicted_so_far())
    }

    /// Entries held that are within their last horizon (after a sweep).
    pub(crate) fn len(&self) -> u64 {
        self.sweep();
        self.raw_len() as u64
    }

    /// Removes every entry past its last horizon, counted as evicted: what
    /// moka does on its own, done here when stats are read. One pass over
    /// the shards, each under its write lock in turn; a store racing it is
    /// checked under that lock, so a fresh entry is never removed.
    fn sweep(&self) {
        let now = self.clock.now_nanos();
        let expired = std::cell::Cell::new(0);
        for shard in self.shards.iter() {
            Self::write(shard).retain(|_, held| {
                let live = now < held.last_horizon();
                expired.set(expired.get() + u64::from(!live));
                live
            });
        }
        self.evicted.fetch_add(expired.get(), Ordering::Relaxed);
    }
}

/// A quick tier's shards, for a tag sweep.
struct QuickStamps<K, V, H> {
    shards: Arc<[ShardedLock<Shard<K, H>>]>,
    _values: std::marker::PhantomData<fn() -> V>,
}

impl<K, V, H> HoldsStamps for QuickStamps<K, V, H>
where
    K: Hash + Eq + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
    H: Held<V>,
{
    fn each_stamps(&self, each: &mut dyn FnMut(&Stamps)) {
        for shard in self.shards.iter() {
            let shard = shard.read().unwrap_or_else(PoisonError::into_inner);
            for (_, held) in shard.iter() {
                each(held.stamps());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::clock::{nanos_since_epoch, ManualClock};
    use crate::tags::Stamps;
    use crate::tier::{Payload, Plain};

    fn entry(value: u64, now: u64, ttl: Duration) -> Entry<u64> {
        let until = now + u64::try_from(ttl.as_nanos()).unwrap();
        Entry {
            payload: Payload::Value(value),
            fresh_until: until,
            stale_until: until,
            fail_safe_until: until,
            load_nanos: 0,
            lifetime: 0,
            loaded_at: now,
            refreshing: false,
            tags: Stamps::None,
        }
    }

    #[test]
    fn expired_entries_never_hold_more_than_the_capacity() {
        let clock = ManualClock::new();
        let tier: QuickTier<u64, u64, Plain<u64>> =
            QuickTier::new(1_000, Clock::Manual(clock.clone()));
        let shards = tier.shards.len() as u64;
        // 100 waves of 1 000 new keys, each expired before the next: nobody
        // asks for them again, so only eviction can reclaim them.
        for wave in 0..100_u64 {
            let now = nanos_since_epoch(clock.now());
            for key in wave * 1_000..(wave + 1) * 1_000 {
                tier.insert(key, entry(key, now, Duration::from_secs(1)));
            }
            clock.advance(Duration::from_secs(2));
            // The raw count, expired entries included (no sweep).
            let held = tier.raw_len() as u64;
            assert!(
                held <= 1_000 + shards,
                "wave {wave}: {held} entries held over a capacity of 1 000"
            );
        }
        assert!(tier.evicted_so_far() >= 98_000, "{}", tier.evicted_so_far());
        assert!(tier.get(&99_999).is_none(), "expired: a miss");
        assert_eq!(tier.len(), 0, "the sweep reclaims the rest");
    }

    #[test]
    fn an_entry_is_served_until_its_last_horizon() {
        let clock = ManualClock::new();
        let tier: QuickTier<u64, u64> = QuickTier::new(10, Clock::Manual(clock.clone()));
        let now = nanos_since_epoch(clock.now());
        let mut with_fallback = entry(70, now, Duration::from_secs(5));
        with_fallback.stale_until += 1_000_000_000;
        with_fallback.fail_safe_until += 2_000_000_000;
        tier.insert(7, with_fallback);
        clock.advance(Duration::from_millis(6_999));
        let held = tier.get(&7).expect("within its fail-safe window");
        assert_eq!(
            (held.fresh_until, held.stale_until, held.fail_safe_until),
            (
                now + 5_000_000_000,
                now + 6_000_000_000,
                now + 7_000_000_000
            ),
            "every horizon kept"
        );
        clock.advance(Duration::from_millis(1));
        assert!(tier.get(&7).is_none());
    }

    #[test]
    fn invalidating_an_expired_entry_counts_it_as_evicted_and_a_live_one_not() {
        let clock = ManualClock::new();
        let tier: QuickTier<u64, u64, Plain<u64>> =
            QuickTier::new(10, Clock::Manual(clock.clone()));
        let now = nanos_since_epoch(clock.now());
        tier.insert(1, entry(10, now, Duration::from_secs(5)));
        tier.insert(2, entry(20, now, Duration::from_secs(50)));
        clock.advance(Duration::from_secs(6));
        tier.invalidate(&1);
        tier.invalidate(&2);
        assert_eq!(tier.evictions(), 1, "the expired one only");
        assert_eq!(tier.len(), 0);
    }

    #[test]
    fn replacing_a_live_entry_is_no_eviction_and_replacing_an_expired_one_is() {
        let clock = ManualClock::new();
        let tier: QuickTier<u64, u64> = QuickTier::new(10, Clock::Manual(clock.clone()));
        let now = nanos_since_epoch(clock.now());
        tier.insert(1, entry(10, now, Duration::from_secs(5)));
        tier.insert(1, entry(11, now, Duration::from_secs(5)));
        tier.insert(1, entry(12, now, Duration::from_secs(5)));
        assert_eq!(tier.evicted_so_far(), 0, "a reload of a live entry");
        clock.advance(Duration::from_secs(6));
        let now = nanos_since_epoch(clock.now());
        tier.insert(1, entry(13, now, Duration::from_secs(5)));
        assert_eq!(tier.evicted_so_far(), 1, "the expired one it replaced");
        assert!(matches!(tier.get(&1).unwrap().payload, Payload::Value(13)));
        assert_eq!(tier.evictions(), 1);
        assert_eq!(tier.len(), 1);
    }

    #[test]
    fn a_plain_entry_is_smaller_and_keeps_what_a_plain_function_reads() {
        assert!(std::mem::size_of::<Plain<u64>>() <= 48);
        assert!(std::mem::size_of::<Plain<u64>>() < std::mem::size_of::<Entry<u64>>());
        let clock = ManualClock::new();
        let tier: QuickTier<u64, u64, Plain<u64>> =
            QuickTier::new(10, Clock::Manual(clock.clone()));
        let now = nanos_since_epoch(clock.now());
        tier.insert(7, entry(70, now, Duration::from_secs(5)));
        clock.advance(Duration::from_millis(4_999));
        let held = tier.get(&7).expect("fresh");
        assert!(matches!(held.payload, Payload::Value(70)));
        assert_eq!(held.fresh_until, now + 5_000_000_000);
        assert_eq!(held.stale_until, held.fresh_until);
        assert_eq!(held.fail_safe_until, held.fresh_until);
        clock.advance(Duration::from_millis(1));
        assert!(tier.get(&7).is_none());
    }
}
