//! The memory tiers, behind one seam: [`MemoryTier`] is what the engine
//! calls (get, insert, invalidate, invalidate-all, len, evictions), and
//! nothing above it knows which tier it runs on.
//!
//! - [`moka`]: the default. TinyLFU admission and proactive expiry: moka
//!   drops an entry at its last horizon on its own, so on the system clock a
//!   plain function's hit reads no clock.
//! - [`quick`]: `quick_cache` (S3-FIFO, sharded). Faster per hit, scales
//!   with cores and holds an entry in less memory; expiry is the engine's
//!   own (an entry past its last horizon is a miss until it is replaced or
//!   evicted), so a hit reads the coarse clock.

use std::hash::Hash;
use std::sync::{Arc, OnceLock, PoisonError, RwLock};
use std::time::Duration;

use crate::clock::{Clock, Nanos};
use crate::outcome::SharedFailure;
use crate::tags::{HoldsStamps, Stamps};

mod held;
mod moka;
mod quick;

pub(crate) use self::held::{Held, Plain};
use self::moka::MokaTier;
use self::quick::QuickTier;

/// Which memory tier a cache keeps its values in: moka (the default) or
/// quick_cache (`memory = "quick"`).
///
/// Both sit behind the same engine: single flight, entry life, tags, stats
/// and the Redis tier behave the same on each, and CI runs the whole test
/// suite on both.
///
/// | | moka (default) | quick ([quick_cache](https://crates.io/crates/quick_cache)) |
/// |---|---|---|
/// | admission | TinyLFU: a one-off key rarely displaces a hot one | S3-FIFO: new keys pass a small probation queue |
/// | hit | about one raw moka lookup; a plain function's hit reads no clock | several times faster; one coarse clock read (a relaxed atomic load, where `Instant::now` costs ~20 times more) |
/// | more cores | a hit writes memory other cores read: little gain from a second thread | a hit writes no memory another core reads: two threads serve nearly twice the hits |
/// | memory per entry | more than three times quick's | the smaller |
/// | hit ratio | about the same on the traces measured | about the same |
/// | expired entries | dropped by moka at their last horizon: memory shrinks when traffic stops | a miss from the last horizon on (to the coarse clock's millisecond); reclaimed when replaced, evicted, or when stats are read (a sweep over the shards) |
/// | bound | `max_capacity` entries | `max_capacity` plus at most one entry per shard (the capacity is split evenly over the shards, each share rounded up) |
///
/// The figures, with the commands that reproduce them, are in the
/// project's `BENCHMARKS.md` ("Memory tiers"; `cargo bench --bench
/// memory_tiers`).
///
/// Choose per function, with `#[cached(ttl = "1m", memory = "quick")]`, or
/// for the process, before the first cached call:
///
/// ```
/// # use herdcache_runtime as herdcache;
/// use herdcache::Memory;
///
/// let _ = Memory::set_default(Memory::Quick); // first thing in `main`
/// assert_eq!(Memory::process_default(), Memory::Quick);
/// ```
///
/// or with `HERDCACHE_MEMORY=quick` in the environment. A function without
/// the attribute gets the process default: [`Memory::set_default`], else
/// `HERDCACHE_MEMORY` (`moka` or `quick`), else moka.
///
/// moka stays the default: it reclaims expired entries on its own and is
/// the more widely deployed of the two. The quick tier is faster and
/// smaller, and hits as often on the traces measured.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Memory {
    /// moka: TinyLFU admission, proactive expiry.
    #[default]
    Moka,
    /// quick_cache: S3-FIFO, sharded, lazy expiry.
    Quick,
}

static DEFAULT_MEMORY: OnceLock<Memory> = OnceLock::new();

impl Memory {
    /// The tier named `name` (`"moka"` or `"quick"`).
    pub fn from_name(name: &str) -> Option<Memory> {
        match name {
            "moka" => Some(Memory::Moka),
            "quick" => Some(Memory::Quick),
            _ => None,
        }
    }

    /// The tier's name, as `memory = ".."` spells it.
    pub fn name(self) -> &'static str {
        match self {
            Memory::Moka => "moka",
            Memory::Quick => "quick",
        }
    }

    /// Sets the tier of every cache made from now on whose function does
    /// not choose one. Returns `false` (and changes nothing) when the
    /// default was already fixed: by an earlier call, or by a cache made
    /// before this one, so call it first thing in `main`.
    #[must_use = "`false` means the default was already fixed and this call changed nothing"]
    pub fn set_default(memory: Memory) -> bool {
        DEFAULT_MEMORY.set(memory).is_ok()
    }

    /// The process default: what [`set_default`](Self::set_default) set,
    /// else `HERDCACHE_MEMORY`, else moka. Fixed by the first call.
    pub fn process_default() -> Memory {
        *DEFAULT_MEMORY.get_or_init(|| match std::env::var("HERDCACHE_MEMORY") {
            Ok(name) => Memory::from_name(name.trim()).unwrap_or_else(|| {
                tracing::warn!(
                    target: "herdcache",
                    value = %name,
                    "HERDCACHE_MEMORY is neither `moka` nor `quick`: caches use moka"
                );
                Memory::Moka
            }),
            Err(_) => Memory::Moka,
        })
    }
}

/// What an entry holds: a value, or a failure cached by a negative rule.
#[derive(Clone, Debug)]
pub(crate) enum Payload<V> {
    Value(V),
    /// Behind a thin pointer, so that a value's entry stays small.
    Failure(Arc<SharedFailure>),
}

/// A cached value and its horizons (see `expiry.rs`). The last horizon is
/// always `fail_safe_until` (`fresh_until <= stale_until <= fail_safe_until`).
#[derive(Clone, Debug)]
pub(crate) struct Entry<V> {
    pub(crate) payload: Payload<V>,
    pub(crate) fresh_until: Nanos,
    /// Served stale, while one refresh runs, until here (`swr`).
    pub(crate) stale_until: Nanos,
    /// Kept as a fallback for a failing load until here (`fail_safe`).
    pub(crate) fail_safe_until: Nanos,
    /// How long the load took that wrote it: early refresh starts sooner
    /// for a slower loader.
    pub(crate) load_nanos: Nanos,
    /// How long moka keeps the entry (with per-entry expiry): the span up
    /// to its last horizon.
    pub(crate) lifetime: Nanos,
    /// When its value was loaded ([`UNKNOWN_LOAD`] in a plain entry).
    pub(crate) loaded_at: Nanos,
    /// A background refresh of it is running: a stale hit need not look
    /// for one (which takes a lock).
    pub(crate) refreshing: bool,
    /// The versions of its tags when its load began.
    pub(crate) tags: Stamps,
}

/// The `loaded_at` of an entry that does not keep it (a plain entry).
pub(crate) const UNKNOWN_LOAD: Nanos = Nanos::MAX;

/// Runs `$body` on whichever tier `$tier` is: the four share their method
/// names, not a type. An isolated tier runs it on the tier inside (the same
/// method of [`MemoryTier`]), or answers `$released` once that is freed.
macro_rules! on_tier {
    ($tier:expr, $each:ident => $body:expr, released => $released:expr) => {
        match $tier {
            MemoryTier::Moka($each) => $body,
            MemoryTier::MokaPlain($each) => $body,
            MemoryTier::Quick($each) => $body,
            MemoryTier::QuickPlain($each) => $body,
            MemoryTier::Isolated(cell) => {
                match &*cell.read().unwrap_or_else(PoisonError::into_inner) {
                    Some($each) => $body,
                    None => $released,
                }
            }
        }
    };
}

/// The memory tier of one cache. Every store and removal of a key happens
/// under that key's flight-shard lock (held by the caller), which is what
/// makes invalidation linearizable on either tier.
pub(crate) enum MemoryTier<K, V> {
    Moka(MokaTier<K, V>),
    /// The moka tier for a function whose only horizon is freshness, under
    /// a global ttl on the system clock: moka drops an entry at that
    /// horizon, so one it returns is fresh and needs no horizon kept.
    MokaPlain(MokaTier<K, V, Plain<V>>),
    Quick(QuickTier<K, V>),
    /// The quick tier for a function whose only horizon is freshness.
    QuickPlain(QuickTier<K, V, Plain<V>>),
    /// A tier made inside `testing::isolate`: freed when the isolation
    /// ends (its cache, handed out as `&'static`, stays; empty, it holds
    /// nothing from then on).
    Isolated(Arc<RwLock<Option<MemoryTier<K, V>>>>),
}

impl<K, V> MemoryTier<K, V>
where
    K: Hash + Eq + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// A tier of `max_capacity` entries. With `same_lifetime`, every entry
    /// lives exactly that long (moka: a global ttl); otherwise each its own.
    /// `one_horizon`: entries are only ever fresh (no swr, fail-safe, early
    /// refresh or Redis tier), which either tier then holds in less memory
    /// (moka only under a global ttl on the system clock).
    pub(crate) fn new(
        memory: Memory,
        max_capacity: u64,
        same_lifetime: Option<Duration>,
        one_horizon: bool,
        clock: &Clock,
    ) -> Self {
        match memory {
            Memory::Moka => match same_lifetime {
                // moka drops it at its one horizon, on the clock it reads.
                Some(lifetime) if one_horizon && matches!(clock, Clock::System) => {
                    MemoryTier::MokaPlain(MokaTier::with_ttl(max_capacity, lifetime))
                }
                _ => MemoryTier::Moka(MokaTier::new(max_capacity, same_lifetime)),
            },
            Memory::Quick if one_horizon => {
                MemoryTier::QuickPlain(QuickTier::new(max_capacity, clock.clone()))
            }
            Memory::Quick => MemoryTier::Quick(QuickTier::new(max_capacity, clock.clone())),
        }
    }

    /// `tier`, freed by [`release`](Self::release).
    pub(crate) fn isolated(tier: Self) -> Self {
        MemoryTier::Isolated(Arc::new(RwLock::new(Some(tier))))
    }

    /// Frees an isolated tier's storage (nothing for the others).
    pub(crate) fn release(&self) {
        if let MemoryTier::Isolated(cell) = self {
            let tier = cell.write().unwrap_or_else(PoisonError::into_inner).take();
            // Dropped outside the lock: values' `Drop` is user code.
            drop(tier);
        }
    }

    /// Which tier this is (moka, once an isolated one is freed).
    pub(crate) fn kind(&self) -> Memory {
        match self {
            MemoryTier::Moka(_) | MemoryTier::MokaPlain(_) => Memory::Moka,
            MemoryTier::Quick(_) | MemoryTier::QuickPlain(_) => Memory::Quick,
            MemoryTier::Isolated(cell) => inside(cell, Self::kind, Memory::Moka),
        }
    }

    /// What a tag sweep walks to find the tags this tier's entries carry.
    pub(crate) fn stamp_holder(&self) -> Arc<dyn HoldsStamps> {
        match self {
            MemoryTier::Moka(tier) => tier.stamp_holder(),
            MemoryTier::MokaPlain(tier) => tier.stamp_holder(),
            MemoryTier::Quick(tier) => tier.stamp_holder(),
            MemoryTier::QuickPlain(tier) => tier.stamp_holder(),
            MemoryTier::Isolated(cell) => Arc::new(IsolatedStamps(Arc::clone(cell))),
        }
    }

    /// Whether an entry the tier returns is within its last horizon on
    /// `clock` with no further check: moka drops entries on the system
    /// clock; the quick tier checks the horizon itself on either clock.
    pub(crate) fn returns_live_entries(&self, clock: &Clock) -> bool {
        match self {
            MemoryTier::Moka(_) | MemoryTier::MokaPlain(_) => matches!(clock, Clock::System),
            MemoryTier::Quick(_) | MemoryTier::QuickPlain(_) => true,
            MemoryTier::Isolated(cell) => {
                inside(cell, |tier| tier.returns_live_entries(clock), true)
            }
        }
    }

    /// The entry of `key`, if it is within its last horizon.
    #[inline(always)]
    pub(crate) fn get(&self, key: &K) -> Option<Entry<V>> {
        on_tier!(self, tier => tier.get(key), released => None)
    }

    /// Stores `entry`. The caller holds the key's flight-shard lock, so no
    /// other store or invalidation of this key runs between the two calls.
    pub(crate) fn insert(&self, key: K, entry: Entry<V>) {
        on_tier!(self, tier => tier.insert(key, entry), released => ())
    }

    /// Removes the entry of `key`, under its flight-shard lock.
    pub(crate) fn invalidate(&self, key: &K) {
        on_tier!(self, tier => tier.invalidate(key), released => ())
    }

    /// Removes every entry stored before the call; the caller holds every
    /// flight-shard lock, so no store races it.
    pub(crate) fn invalidate_all(&self) {
        on_tier!(self, tier => tier.invalidate_all(), released => ())
    }

    /// Entries the tier dropped on its own, for capacity or expiry.
    pub(crate) fn evictions(&self) -> u64 {
        on_tier!(self, tier => tier.evictions(), released => 0)
    }

    /// [`evictions`](Self::evictions) when the load path may afford it
    /// (each tier says when), to export.
    #[cfg(feature = "metrics")]
    pub(crate) fn evictions_estimate(&self) -> Option<u64> {
        on_tier!(self, tier => tier.evictions_estimate(), released => None)
    }

    /// Entries held, once expired ones are reclaimed.
    pub(crate) fn len(&self) -> u64 {
        on_tier!(self, tier => tier.len(), released => 0)
    }
}

/// What `answer` says of the tier inside an isolated one, or `released`.
fn inside<K, V, R>(
    cell: &RwLock<Option<MemoryTier<K, V>>>,
    answer: impl FnOnce(&MemoryTier<K, V>) -> R,
    released: R,
) -> R {
    match &*cell.read().unwrap_or_else(PoisonError::into_inner) {
        Some(tier) => answer(tier),
        None => released,
    }
}

/// An isolated tier's entries, for a tag sweep: none once it is freed.
struct IsolatedStamps<K, V>(Arc<RwLock<Option<MemoryTier<K, V>>>>);

impl<K, V> HoldsStamps for IsolatedStamps<K, V>
where
    K: Hash + Eq + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    fn each_stamps(&self, each: &mut dyn FnMut(&Stamps)) {
        if let Some(tier) = &*self.0.read().unwrap_or_else(PoisonError::into_inner) {
            tier.stamp_holder().each_stamps(each);
        }
    }
}
