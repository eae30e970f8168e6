//! [`FnCache`]: the cache behind one `#[cached]` function.

use std::future::Future;
use std::hash::Hash;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::clock::Clock;
use crate::expiry::ExpiryPolicy;
use crate::flight::{Flight, FlightMap, Landing, Role};
use crate::memory::{Entry, MemoryTier};
use crate::outcome::{FailureShare, Outcome};
use crate::stats::{Counter, Counters, LatencyHistogram, Stats};

/// The default bound of the in-memory tier, in entries.
pub const DEFAULT_MAX_CAPACITY: u64 = 10_000;

/// How one cache is set up.
#[derive(Clone, Debug)]
pub struct CacheConfig {
    /// Stable name, shown in stats.
    pub name: String,
    /// How long a value is fresh, before jitter.
    pub ttl: Duration,
    /// Spread of the ttl, a fraction in `0.0..=1.0`.
    pub jitter: f64,
    /// Bound of the in-memory tier, in entries.
    pub max_capacity: u64,
    /// Where "now" comes from.
    pub clock: Clock,
}

impl CacheConfig {
    /// A config with the given name and ttl, no jitter, the default capacity
    /// and the system clock.
    pub fn new(name: impl Into<String>, ttl: Duration) -> Self {
        CacheConfig {
            name: name.into(),
            ttl,
            jitter: 0.0,
            max_capacity: DEFAULT_MAX_CAPACITY,
            clock: Clock::System,
        }
    }

    /// Sets the jitter.
    pub fn jitter(mut self, jitter: f64) -> Self {
        self.jitter = jitter;
        self
    }

    /// Sets the capacity.
    pub fn max_capacity(mut self, max_capacity: u64) -> Self {
        self.max_capacity = max_capacity;
        self
    }

    /// Sets the clock.
    pub fn clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }
}

/// The cache of one function: values by key, the loads in flight, counters.
///
/// The `#[cached]` macro makes one per function; it can also be used by hand.
///
/// ```
/// use std::time::Duration;
/// use herdcache_runtime::{CacheConfig, FailureShare, FnCache};
///
/// # tokio_test_block_on(async {
/// let cache: FnCache<u64, String> = FnCache::new(CacheConfig::new("users", Duration::from_secs(60)));
/// let user: Option<String> = cache
///     .get_or_load(42, FailureShare::unit(), async { Some("ada".to_string()) })
///     .await;
/// assert_eq!(user.as_deref(), Some("ada"));
/// assert_eq!(cache.get_fresh(&42).as_deref(), Some("ada"));
/// # });
/// # fn tokio_test_block_on<F: std::future::Future>(f: F) -> F::Output {
/// #     tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(f)
/// # }
/// ```
pub struct FnCache<K, V> {
    name: String,
    expiry: ExpiryPolicy,
    clock: Clock,
    /// On the system clock moka drops an entry at its `fresh_until`, so an
    /// entry it returns is fresh; see the memory tier.
    memory_expiry_is_freshness: bool,
    memory: MemoryTier<K, V>,
    flights: FlightMap<K, V>,
    counters: Counters,
    latency: LatencyHistogram,
}

impl<K, V> FnCache<K, V>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// A cache set up by `config`.
    ///
    /// # Panics
    /// If the ttl is zero or the jitter outside `0.0..=1.0`.
    pub fn new(config: CacheConfig) -> Self {
        let expiry = ExpiryPolicy::new(config.ttl, config.jitter);
        FnCache {
            name: config.name,
            expiry,
            memory_expiry_is_freshness: matches!(config.clock, Clock::System),
            clock: config.clock,
            memory: MemoryTier::new(config.max_capacity, expiry),
            flights: FlightMap::new(),
            counters: Counters::new(),
            latency: LatencyHistogram::new(),
        }
    }

    /// The name shown in stats.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The fresh value of `key`, counted as a hit; `None` (not counted) when
    /// there is none. This is the hit path: no lock, no allocation.
    #[inline]
    pub fn get_fresh(&self, key: &K) -> Option<V> {
        let value = self.fresh(key)?;
        self.counters.incr(Counter::Hits);
        Some(value)
    }

    #[inline]
    fn fresh(&self, key: &K) -> Option<V> {
        let entry = self.memory.get(key)?;
        (self.memory_expiry_is_freshness || entry.fresh_until > self.clock.now())
            .then_some(entry.value)
    }

    /// The fresh value of `key`, or the outcome of `loader`, run at most once
    /// at a time per key however many callers ask.
    pub async fn get_or_load<R, F>(&self, key: K, share: FailureShare<R::Failure>, loader: F) -> R
    where
        R: Outcome<Value = V>,
        F: Future<Output = R>,
    {
        match self.get_fresh(&key) {
            Some(value) => R::from_value(value),
            None => self.load(key, share, loader).await,
        }
    }

    /// The slow path of [`get_or_load`](Self::get_or_load), for a caller
    /// whose [`get_fresh`](Self::get_fresh) missed: join the load in flight
    /// for `key`, or lead a new one with `loader`.
    ///
    /// If the leading caller is dropped or its loader panics, the callers
    /// waiting on it wake and one of them leads a new load with its own loader.
    pub async fn load<R, F>(&self, key: K, share: FailureShare<R::Failure>, loader: F) -> R
    where
        R: Outcome<Value = V>,
        F: Future<Output = R>,
    {
        let mut first_try = true;
        loop {
            let role = {
                let mut shard = self.flights.lock(&key);
                // A load may have landed since the caller's fast path missed.
                if let Some(value) = self.fresh(&key) {
                    if first_try {
                        self.counters.incr(Counter::Hits);
                    }
                    return R::from_value(value);
                }
                shard.join_or_lead(&key)
            };
            if first_try {
                self.counters.incr(Counter::Misses);
            }
            match role {
                Role::Lead(flight) => return self.lead(key, flight, share, loader).await,
                Role::Join(flight) => {
                    if first_try {
                        self.counters.incr(Counter::Coalesced);
                    }
                    first_try = false;
                    match flight.wait().await {
                        Landing::Value(value) => return R::from_value(value),
                        Landing::Failure(failure) => {
                            return R::from_failure(share.unshare(&failure))
                        }
                        Landing::Abandoned => continue,
                    }
                }
            }
        }
    }

    /// Runs `loader` now and stores its value, even if the key is fresh or a
    /// load is in flight (that load may still answer its own callers, but no
    /// longer stores). Callers arriving meanwhile join this load.
    pub async fn refresh<R, F>(&self, key: K, share: FailureShare<R::Failure>, loader: F) -> R
    where
        R: Outcome<Value = V>,
        F: Future<Output = R>,
    {
        let flight = self.flights.lock(&key).lead_anew(&key);
        self.lead(key, flight, share, loader).await
    }

    async fn lead<R, F>(
        &self,
        key: K,
        flight: Arc<Flight<V>>,
        share: FailureShare<R::Failure>,
        loader: F,
    ) -> R
    where
        R: Outcome<Value = V>,
        F: Future<Output = R>,
    {
        let mut guard = LeaderGuard {
            cache: self,
            key,
            flight,
            finished: false,
        };
        self.counters.incr(Counter::Loads);
        let started = Instant::now();
        let outcome = loader.await;
        self.latency.record(started.elapsed());
        let outcome = match outcome.into_parts() {
            Ok(value) => {
                self.store(&guard.key, &guard.flight, &value);
                if guard.flight.waiters() > 0 {
                    guard.flight.land(Landing::Value(value.clone()));
                }
                R::from_value(value)
            }
            Err(failure) => {
                if R::FAILURE_IS_ERROR {
                    self.counters.incr(Counter::LoadErrors);
                }
                self.detach(&guard.key, &guard.flight);
                // Once detached, no caller joins: the count is final.
                let failure = if guard.flight.waiters() > 0 {
                    let (shared, own) = share.share(failure);
                    guard.flight.land(Landing::Failure(shared));
                    own
                } else {
                    failure
                };
                R::from_failure(failure)
            }
        };
        // Only now: a panic above (in a `Clone`, say) still wakes the waiters.
        guard.finished = true;
        outcome
    }

    /// Detaches the finished `flight` and, if it was still attached (no
    /// invalidation or refresh superseded it), stores `value`: both in one
    /// critical section, so that no caller or invalidation of the key can
    /// see the flight gone and the value not yet stored.
    fn store(&self, key: &K, flight: &Arc<Flight<V>>, value: &V) {
        // The value's `Clone` is user code: keep it out of the lock (the
        // key's `Hash`, `Eq` and `Clone` still run inside).
        let value = value.clone();
        let lifetime = self.expiry.draw_ttl();
        let mut shard = self.flights.lock(key);
        if shard.detach_if(key, flight) {
            let entry = Entry {
                value,
                fresh_until: self.clock.now() + lifetime,
                lifetime,
            };
            self.memory.insert(key.clone(), entry);
        }
    }

    /// Detaches `flight` if it is still attached.
    fn detach(&self, key: &K, flight: &Arc<Flight<V>>) {
        self.flights.lock(key).detach_if(key, flight);
    }

    /// Drops the value of `key`. When this returns, no later call sees a
    /// value whose load began before it: a load in flight still answers the
    /// callers that joined it, but does not store.
    pub fn invalidate(&self, key: &K) {
        let mut shard = self.flights.lock(key);
        shard.detach(key);
        // Inside the shard lock, so that a landing load cannot store between
        // the detach and the removal.
        self.memory.invalidate(key);
        drop(shard);
        self.counters.incr(Counter::Invalidations);
    }

    /// Drops every value, with the same guarantee as [`invalidate`](Self::invalidate).
    pub fn invalidate_all(&self) {
        // Loads that land before their shard is detached store, and the
        // memory tier's invalidate_all below removes what they stored: moka
        // hides entries written strictly before its invalidation time, so
        // wait for the clock to move past the last possible store. (This
        // relies on moka stamping with std's `Instant`, as it does without
        // its `quanta` feature, and comparing `entry < valid_after`.)
        self.flights.detach_all();
        let detached_at = Instant::now();
        while Instant::now() <= detached_at {
            std::hint::spin_loop();
        }
        self.memory.invalidate_all();
        self.counters.incr(Counter::Invalidations);
    }

    /// Entries held in memory (fresh or not yet removed).
    pub fn len(&self) -> u64 {
        self.memory.len()
    }

    /// True when no entry is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> Stats {
        let c = |counter| self.counters.sum(counter);
        Stats {
            hits: c(Counter::Hits),
            misses: c(Counter::Misses),
            coalesced: c(Counter::Coalesced),
            loads: c(Counter::Loads),
            load_errors: c(Counter::LoadErrors),
            evictions: self.memory.evictions(),
            invalidations: c(Counter::Invalidations),
            load_p50: self.latency.quantile(0.50),
            load_p95: self.latency.quantile(0.95),
            load_p99: self.latency.quantile(0.99),
        }
    }
}

/// Held by the caller leading a load. If that caller is dropped mid-load or
/// its loader panics, `Drop` detaches the flight and wakes the waiters, one
/// of which leads anew: no path leaves them hanging.
struct LeaderGuard<'a, K, V>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    cache: &'a FnCache<K, V>,
    key: K,
    flight: Arc<Flight<V>>,
    finished: bool,
}

impl<K, V> Drop for LeaderGuard<'_, K, V>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        self.cache.detach(&self.key, &self.flight);
        if std::thread::panicking() {
            self.cache.counters.incr(Counter::LoadErrors);
        }
        self.flight.land(Landing::Abandoned);
    }
}
