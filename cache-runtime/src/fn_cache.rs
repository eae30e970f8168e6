//! [`FnCache`]: the cache behind one `#[cached]` function: the read path,
//! leading a load, and what a finished load leaves behind.

use std::future::Future;
use std::hash::Hash;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::background::BackgroundLoad;
use crate::clock::{nanos, Clock};
use crate::config::{CacheConfig, LoadHooks};
use crate::entry::Served;
use crate::expiry::ExpiryPolicy;
use crate::flight::{Answered, Flight, FlightMap, Landing, Role};
use crate::outcome::{FailureShare, Outcome, SharedFailure};
use crate::stats::{Counter, Counters, LatencyHistogram, Stats};
use crate::tags::{HolderPlace, Pinned, Stamps, TagState};
use crate::tier::{Entry, Memory, MemoryTier, Payload, Plain};

mod attempts;
mod deadline;
mod entries;
// The shared tier's entry points (`shared/redis.rs`), or their stand-ins
// without it (`shared/memory_only.rs`): picked in `lib.rs`.
crate::shared_tier_module!(distributed);
mod landing;
mod refresh;
mod trace;

/// What kind of load is running: it decides what a failure does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum LoadKind {
    /// A caller is waiting for it.
    Foreground,
    /// A refresh nobody waits for (`swr`, early refresh), unless callers
    /// joined it once the value went past its stale window.
    Background,
    /// `<fn>_refresh`: its failure goes to its caller, and the cached value
    /// stays as it was.
    Explicit,
    /// A foreground load run on its own task, so that callers can stop
    /// waiting for it (`timeout`, `hard_timeout`): as `Foreground`, but its
    /// own outcome goes to nobody.
    Detached,
}

/// What a read found.
enum Found<V> {
    /// A fresh value; `refresh` when early refresh drew this call.
    Fresh { value: V, refresh: bool },
    /// A value past its freshness but within its stale window; `refresh`
    /// unless a refresh of it already runs.
    Stale { value: V, refresh: bool },
    /// A cached failure.
    Negative(Arc<SharedFailure>),
    /// Nothing that can be served: load.
    Miss,
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
    /// On the system clock, without swr, fail-safe or early refresh, the
    /// moka tier drops an entry at its `fresh_until`, so an entry it returns
    /// is fresh and a hit reads no clock; see the memory tiers.
    memory_expiry_is_freshness: bool,
    memory: MemoryTier<K, V>,
    flights: FlightMap<K, V>,
    counters: Counters,
    latency: LatencyHistogram,
    /// `timeout` and `hard_timeout`: loads then run detached, see `deadline`.
    deadlines: Deadlines,
    /// The Redis tier of a `distributed` function.
    l2: Option<distributed::L2<K, V>>,
    /// The isolation scope the cache was made for (`testing::isolate`; 0
    /// for a cache made by hand): its tags are those of that scope.
    isolation: u64,
    /// Its place among what a tag sweep walks, taken by its first tagged
    /// load.
    tag_holder: HolderPlace,
    /// Which memory tier holds the values, for [`Stats::memory`].
    memory_kind: Memory,
    /// Retries and the circuit breaker (`retry`, `circuit_breaker`).
    origin: attempts::Origin,
    /// `HERDCACHE_DISABLED`: every call runs the body (read once).
    disabled: bool,
}

/// How long callers wait for a load.
#[derive(Clone, Copy, Debug, Default)]
struct Deadlines {
    /// With a fallback at hand.
    soft: Option<Duration>,
    /// In any case.
    hard: Option<Duration>,
}

impl Deadlines {
    fn any(&self) -> bool {
        self.soft.is_some() || self.hard.is_some()
    }
}

impl<K, V> FnCache<K, V>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// A cache set up by `config`.
    ///
    /// # Panics
    /// If the ttl is zero, the jitter outside `0.0..=1.0` or `early_refresh`
    /// negative.
    pub fn new(config: CacheConfig) -> Self {
        Self::new_in(config, 0)
    }

    /// A cache made for the isolation scope `isolation` (`testing::isolate`):
    /// its tags are that scope's.
    pub(crate) fn new_in(config: CacheConfig, isolation: u64) -> Self {
        let expiry = ExpiryPolicy::new(config.ttl, config.jitter)
            .swr(config.swr)
            .fail_safe(config.fail_safe, config.fail_safe_throttle)
            .early_refresh(config.early_refresh);
        let checks_freshness = expiry.has_policies() || config.distributed;
        if checks_freshness && matches!(config.clock, Clock::System) {
            crate::clock::start_coarse_clock();
        }
        let counters = Counters::new(&config.name);
        let memory_kind = config.memory.unwrap_or_else(Memory::process_default);
        let memory = MemoryTier::new(
            memory_kind,
            config.max_capacity,
            expiry.same_lifetime(config.varied_lifetimes),
            !checks_freshness,
            &config.clock,
        );
        // Freed when its isolation ends.
        let memory = if isolation == 0 {
            memory
        } else {
            MemoryTier::isolated(memory)
        };
        FnCache {
            name: config.name,
            expiry,
            memory_expiry_is_freshness: !checks_freshness
                && memory.returns_live_entries(&config.clock),
            clock: config.clock,
            memory,
            flights: FlightMap::new(),
            counters,
            latency: LatencyHistogram::new(),
            deadlines: Deadlines {
                soft: config.timeout,
                hard: config.hard_timeout,
            },
            isolation,
            tag_holder: HolderPlace::default(),
            memory_kind,
            l2: None,
            origin: attempts::Origin {
                retry: config.retry,
                breaker: config
                    .circuit_breaker
                    .map(crate::breaker::OriginBreaker::new),
            },
            disabled: entries::disabled_by_env(),
        }
    }

    /// The name shown in stats.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The fresh value of `key`, counted as a hit; `None` (not counted) when
    /// there is none. No lock, no allocation.
    #[inline]
    pub fn get_fresh(&self, key: &K) -> Option<V> {
        match self.find(key) {
            Found::Fresh { value, .. } => {
                self.counters.incr(Counter::Hits);
                Some(value)
            }
            _ => None,
        }
    }

    /// What the memory tier holds for `key`, judged by the entry's horizons.
    /// Always inlined into the hit path: as a call, its prologue and
    /// epilogue moving the entry cost as much as its checks.
    #[inline(always)]
    fn find(&self, key: &K) -> Found<V> {
        // One copy of the judgement per tier: through a common `get`, the
        // entry would be moved once more (measured: ~15 instructions a hit).
        match &self.memory {
            MemoryTier::Moka(tier) => self.judge(tier.get(key)),
            MemoryTier::Quick(tier) => self.judge(tier.get(key)),
            // Only ever made for a function whose one horizon the tier
            // checks itself: no `Entry` to build, only payload and tags.
            MemoryTier::MokaPlain(tier) => Self::plain(tier.get_held(key)),
            MemoryTier::QuickPlain(tier) => Self::plain(tier.get_held(key)),
            MemoryTier::Isolated(_) => self.judge(self.memory.get(key)),
        }
    }

    /// What a plain entry the tier vouches is fresh answers (if any).
    #[inline(always)]
    fn plain(held: Option<Plain<V>>) -> Found<V> {
        match held {
            Some(held) => {
                let (payload, tags) = held.into_parts();
                Self::live(payload, tags.state())
            }
            None => Found::Miss,
        }
    }

    /// What an entry the tier vouches is within its only horizon answers:
    /// its payload, unless a tag moved (without a stale window, an expired
    /// tag is a miss too).
    #[inline(always)]
    fn live(payload: Payload<V>, tags: TagState) -> Found<V> {
        if tags != TagState::Current {
            return Found::Miss;
        }
        match payload {
            Payload::Value(value) => Found::Fresh {
                value,
                refresh: false,
            },
            Payload::Failure(failure) => Found::Negative(failure),
        }
    }

    /// What an entry the memory tier returned (if any) can answer.
    #[inline(always)]
    fn judge(&self, entry: Option<Entry<V>>) -> Found<V> {
        let Some(entry) = entry else {
            return Found::Miss;
        };
        // A tag invalidated since the load began: gone; expired: stale.
        // Without a stale window, expired is a miss too.
        let tags = entry.tags.state();
        if self.memory_expiry_is_freshness {
            return Self::live(entry.payload, tags);
        }
        if tags == TagState::Gone {
            return Found::Miss;
        }
        let now = self.clock.coarse_now_nanos();
        // An expired tag: stale at once, for as long as the entry has a
        // stale window (none without swr).
        let (fresh_until, stale_until) = match tags {
            TagState::Current => (entry.fresh_until, entry.stale_until),
            _ if entry.stale_until > entry.fresh_until => (0, entry.stale_until),
            _ => (0, 0),
        };
        match entry.payload {
            Payload::Failure(failure) if now < fresh_until => Found::Negative(failure),
            Payload::Failure(_) => Found::Miss,
            Payload::Value(value) if now < fresh_until => Found::Fresh {
                refresh: !entry.refreshing
                    && self
                        .expiry
                        .early_refresh_due(now, entry.fresh_until, entry.load_nanos),
                value,
            },
            Payload::Value(value) if now < stale_until => Found::Stale {
                value,
                refresh: !entry.refreshing,
            },
            Payload::Value(_) => Found::Miss,
        }
    }

    /// The hit path of a `#[cached]` call: the outcome for `key` if the
    /// cache can answer now (a fresh value, a cached failure). `hooks` is
    /// called only for a cached failure. No lock, no allocation.
    ///
    /// For a function without background policies: a stale value (which it
    /// does not have) would be served without a refresh.
    #[inline]
    pub fn hit<R, H>(&self, key: &K, hooks: H) -> Option<R>
    where
        R: Outcome<Value = V>,
        H: FnOnce() -> LoadHooks<V, R::Failure>,
    {
        self.served(self.find(key), true, || hooks().share)
    }

    /// What a read answers with, counted as a hit of its kind when `count`
    /// (a caller's first look); `None` on a miss.
    #[inline]
    fn served<R, S>(&self, found: Found<V>, count: bool, share: S) -> Option<R>
    where
        R: Outcome<Value = V>,
        S: FnOnce() -> FailureShare<R::Failure>,
    {
        // Each arm counts for itself: a fresh hit (the hot one) then does
        // one increment and no test of a second.
        let count_as = |kind: Option<Counter>| {
            if count {
                self.counters.incr(Counter::Hits);
                if let Some(kind) = kind {
                    self.counters.incr(kind);
                }
            }
        };
        match found {
            Found::Fresh { value, .. } => {
                count_as(None);
                Some(R::from_value(value))
            }
            Found::Stale { value, .. } => {
                count_as(Some(Counter::StaleHits));
                Some(R::from_value(value))
            }
            Found::Negative(failure) => {
                count_as(Some(Counter::NegativeHits));
                Some(R::from_failure(share().unshare(&failure)))
            }
            Found::Miss => None,
        }
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
            None => self.load(key, LoadHooks::new(share), loader).await,
        }
    }

    /// [`load`](Self::load) for a function with `timeout` or `hard_timeout`:
    /// `detached` (the same load from owned copies of the arguments, see
    /// [`detachable`](Self::detachable)) runs on its own task and callers
    /// wait for it at most that long.
    pub async fn load_or_detach<R, F>(
        &'static self,
        key: K,
        hooks: LoadHooks<V, R::Failure>,
        loader: F,
        detached: Option<BackgroundLoad<R>>,
    ) -> R
    where
        R: Outcome<Value = V> + Send + 'static,
        F: Future<Output = R>,
    {
        match detached {
            Some(detached) if self.deadlines.any() && !self.disabled => {
                self.load_within_deadlines(key, hooks, loader, detached)
                    .await
                    .0
            }
            _ => self.load(key, hooks, loader).await,
        }
    }

    /// The load [`load_or_detach`](Self::load_or_detach) can detach: made
    /// only when the function has a deadline (it copies the arguments).
    #[inline]
    pub fn detachable<R, B>(&self, background: B) -> Option<BackgroundLoad<R>>
    where
        B: FnOnce() -> Option<BackgroundLoad<R>>,
    {
        if self.deadlines.any() {
            background()
        } else {
            None
        }
    }

    /// The slow path of a `#[cached]` call, for a caller whose
    /// [`hit`](Self::hit) found nothing: join the load in flight for `key`,
    /// or lead a new one with `loader`.
    ///
    /// If the leading caller is dropped or its loader panics, the callers
    /// waiting on it wake and one of them leads a new load with its own loader.
    pub async fn load<R, F>(&self, key: K, hooks: LoadHooks<V, R::Failure>, loader: F) -> R
    where
        R: Outcome<Value = V>,
        F: Future<Output = R>,
    {
        self.load_how(key, hooks, loader).await.0
    }

    /// [`load`](Self::load), saying how the caller was answered.
    async fn load_how<R, F>(
        &self,
        key: K,
        hooks: LoadHooks<V, R::Failure>,
        loader: F,
    ) -> (R, Served)
    where
        R: Outcome<Value = V>,
        F: Future<Output = R>,
    {
        if self.disabled {
            return (self.run_disabled(loader).await, Served::Loaded);
        }
        let mut first_try = true;
        loop {
            let role = match self.served_or_role(&key, first_try, &hooks) {
                Ok(outcome) => return (outcome, Served::Hit),
                Err(role) => role,
            };
            first_try = false;
            match role {
                Role::Lead(flight) => {
                    return self
                        .lead(key, flight, hooks, loader, LoadKind::Foreground)
                        .await
                }
                Role::Join(flight) => {
                    if let Some(outcome) = answer(flight.wait().await, &hooks) {
                        return (outcome, served_by(&flight, false));
                    }
                }
            }
        }
    }

    /// One turn of a miss, under the key's shard lock: what landed since
    /// the caller last looked, else its role in the key's flight. Its first
    /// turn counts a miss, and a coalesced caller when it joins.
    pub(super) fn served_or_role<R: Outcome<Value = V>>(
        &self,
        key: &K,
        first_try: bool,
        hooks: &LoadHooks<V, R::Failure>,
    ) -> Result<R, Role<V>> {
        let role = {
            let mut shard = self.flights.lock(key);
            // A load may have landed since the caller's fast path missed.
            if let Some(outcome) = self.served(self.find(key), first_try, || hooks.share) {
                return Ok(outcome);
            }
            shard.join_or_lead(key)
        };
        if first_try {
            self.counters.incr(Counter::Misses);
            if matches!(role, Role::Join(_)) {
                self.counters.incr(Counter::Coalesced);
            }
        }
        Err(role)
    }

    /// Runs `loader` now and stores its value, even if the key is fresh or a
    /// load is in flight (that load may still answer its own callers, but no
    /// longer stores). Callers arriving meanwhile join this load. A failure
    /// goes to the caller and leaves the cached value as it was.
    pub async fn refresh<R, F>(&self, key: K, hooks: LoadHooks<V, R::Failure>, loader: F) -> R
    where
        R: Outcome<Value = V>,
        F: Future<Output = R>,
    {
        if self.disabled {
            return self.run_disabled(loader).await;
        }
        let flight = self.flights.lock(&key).lead_anew(&key);
        self.lead(key, flight, hooks, loader, LoadKind::Explicit)
            .await
            .0
    }

    async fn lead<R, F>(
        &self,
        key: K,
        flight: Arc<Flight<V>>,
        hooks: LoadHooks<V, R::Failure>,
        loader: F,
        kind: LoadKind,
    ) -> (R, Served)
    where
        R: Outcome<Value = V>,
        F: Future<Output = R>,
    {
        // A tagged distributed function's tags, for their versions in Redis.
        let redis_tags = self.l2.is_some().then(|| hooks.tags.clone());
        // The versions of its tags, before the loader runs: an invalidation
        // from here on ends the value it will store.
        let stamps = hooks.tags.stamp(self.isolation);
        if !matches!(stamps.stamps(), Stamps::None) {
            // From its first tagged entry on, sweeps keep the tags it holds.
            self.tag_holder.register(|| self.memory.stamp_holder());
        }
        flight.set_stamps(stamps.stamps());
        let mut guard = LeaderGuard {
            cache: self,
            key,
            flight,
            stamps,
            background: kind == LoadKind::Background,
            finished: false,
            write: distributed::WriteSlot::default(),
        };
        if let Some(tags) = &redis_tags {
            let reads_redis = kind != LoadKind::Explicit;
            self.read_versions(&guard, tags, reads_redis).await;
        }
        // A load asks the Redis tier first, inside the flight: a refresh
        // too, so that a hot key is refreshed once for the fleet, not once
        // per instance (only `<fn>_refresh` always runs the body).
        if kind != LoadKind::Explicit {
            if let Some(value) = self.read_l2(&guard).await {
                guard.finished = true;
                return (R::from_value(value), Served::Remote);
            }
        }
        self.counters.incr(Counter::Loads);
        #[cfg(feature = "metrics")]
        self.counters.exported.load_started();
        let span = trace::load_span(&self.name, kind);
        let (revalidation, not_modified) = self.revalidation(&guard.key);
        let started = Instant::now();
        let loader = crate::previous::scope(revalidation, loader);
        let caught = tracing::Instrument::instrument(catch_unwind(loader), span.clone()).await;
        let kept = not_modified.is_some_and(|flag| flag.load(std::sync::atomic::Ordering::Relaxed));
        if kept {
            self.counters.incr(Counter::NotModified);
            trace::not_modified(&span);
        }
        let outcome = self.landed(&guard, caught, started.elapsed(), hooks, kind, &span);
        // Only now: a panic above (in a `Clone`, say) still wakes the waiters.
        guard.finished = true;
        self.finish_l2(&guard.write, kept).await;
        outcome
    }

    /// What a load of `key` refreshes, for `herdcache::previous()`: the
    /// value held (fresh, stale or kept for fail-safe) unless a tag ended
    /// it, and the flag its body sets to say "not modified". Nothing (and
    /// no clone) when there is no value.
    fn revalidation(
        &self,
        key: &K,
    ) -> (
        Option<crate::previous::Revalidation>,
        Option<Arc<std::sync::atomic::AtomicBool>>,
    ) {
        match self.memory.get(key) {
            Some(entry) if entry.tags.state() != crate::tags::TagState::Gone => {
                match entry.payload {
                    Payload::Value(value) => {
                        let (revalidation, flag) = crate::previous::Revalidation::new(value);
                        (Some(revalidation), Some(flag))
                    }
                    Payload::Failure(_) => (None, None),
                }
            }
            _ => (None, None),
        }
    }

    /// Detaches `flight` if it is still attached, storing nothing: the
    /// entry it may have been refreshing is no longer being refreshed.
    fn detach(&self, key: &K, flight: &Arc<Flight<V>>) {
        let mut shard = self.flights.lock(key);
        if shard.detach_if(key, flight) {
            self.mark_refreshing(key, false);
        }
    }

    /// Drops the value of `key`. When this returns, no later call sees a
    /// value whose load began before it: a load in flight still answers the
    /// callers that joined it, but does not store.
    ///
    /// With a Redis tier, the key's copy there ends first and the other
    /// instances hear of it last. If Redis does not take it, the
    /// invalidation is kept and replayed once Redis answers, and this
    /// instance does not use the key's copy in Redis until then.
    pub async fn invalidate(&self, key: &K) {
        let begun = self.begin_key(key, false).await;
        self.invalidate_here(key);
        distributed::announce(begun).await;
    }

    /// Makes the value of `key` stale at once, for data that may have
    /// changed ("a webhook said so") but whose old value still beats an
    /// error: under `swr` the next call gets it while one refresh runs, and
    /// it stays a fail-safe fallback; its horizons are those of a value that
    /// expired now. When this returns, no later call sees a value whose load
    /// began before it as fresh: a load in flight does not store. Without
    /// swr or fail-safe there is nothing to keep, and this is
    /// [`invalidate`](Self::invalidate). With a Redis tier, as
    /// `invalidate` (the copy there is deleted: a fresh copy would make the
    /// key fresh here again on the next miss).
    pub async fn expire(&self, key: &K) {
        let begun = self.begin_key(key, true).await;
        self.expire_here(key);
        distributed::announce(begun).await;
    }

    /// Drops every value, with the same guarantee as
    /// [`invalidate`](Self::invalidate). With a Redis tier, every copy of
    /// the function there ends too (its epoch, part of every key name,
    /// moves) and the other instances drop theirs; kept and replayed as
    /// `invalidate` is when Redis does not take it.
    pub async fn invalidate_all(&self) {
        let begun = self.begin_all().await;
        self.invalidate_all_here();
        distributed::announce(begun).await;
    }

    /// [`invalidate`](Self::invalidate) in this instance's memory only: what
    /// the bus applies. Redis and the other instances keep their copies:
    /// for benchmarks and tests that need a memory miss.
    #[doc(hidden)]
    pub fn invalidate_here(&self, key: &K) {
        let mut shard = self.flights.lock(key);
        shard.detach(key);
        // Inside the shard lock, so that a landing load cannot store between
        // the detach and the removal.
        self.memory.invalidate(key);
        drop(shard);
        self.counters.incr(Counter::Invalidations);
    }

    /// [`expire`](Self::expire) in this instance's memory only.
    pub(crate) fn expire_here(&self, key: &K) {
        if !self.expiry.has_policies() {
            return self.invalidate_here(key);
        }
        let mut shard = self.flights.lock(key);
        shard.detach(key);
        // Under the lock, as `invalidate`: a landing load cannot store
        // between the detach and the rewrite. (The value's `Clone` runs here.)
        if let Some(mut entry) = self.memory.get(key) {
            match entry.payload {
                Payload::Value(_) => {
                    // "Now" as hits read it: the coarse clock, which lags
                    // the precise one. From the precise "now", a value
                    // would stay fresh (or, without swr, stale) for that
                    // lag after this returned.
                    let now = self.clock.coarse_now_nanos();
                    let horizons = self.expiry.horizons(now, Duration::ZERO);
                    entry.fresh_until = 0;
                    // Without swr, no stale window at all (not one that
                    // ends at a "now" a lagging reading has not reached).
                    entry.stale_until = if self.expiry.swr_window().is_zero() {
                        0
                    } else {
                        horizons.stale_until
                    };
                    entry.fail_safe_until = horizons.fail_safe_until;
                    entry.lifetime = nanos(horizons.lifetime);
                    entry.refreshing = false;
                    self.memory.insert(key.clone(), entry);
                }
                Payload::Failure(_) => self.memory.invalidate(key),
            }
        }
        drop(shard);
        self.counters.incr(Counter::Invalidations);
    }

    /// Frees the memory tier of a cache made inside an isolation that
    /// ended (its entries were dropped): later calls find it empty.
    pub(crate) fn release(&self) {
        self.tag_holder.withdraw();
        self.memory.release();
    }

    /// [`invalidate_all`](Self::invalidate_all) in this instance's memory
    /// only.
    pub(crate) fn invalidate_all_here(&self) {
        // Every shard locked at once: every store into the memory tier
        // happens under its key's shard lock, so none can slip in between
        // (the tier's own invalidate_all removes what was stored before).
        let shards = self.flights.detach_all_locked();
        self.memory.invalidate_all();
        drop(shards);
        self.counters.incr(Counter::Invalidations);
    }

    /// The memory tier the values are kept in.
    pub fn memory(&self) -> Memory {
        self.memory.kind()
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
        let evictions = self.memory.evictions();
        #[cfg(feature = "metrics")]
        self.counters.exported.evictions(evictions);
        Stats {
            hits: c(Counter::Hits),
            misses: c(Counter::Misses),
            coalesced: c(Counter::Coalesced),
            loads: c(Counter::Loads),
            load_errors: c(Counter::LoadErrors),
            evictions,
            memory: self.memory_kind,
            invalidations: c(Counter::Invalidations),
            stale_hits: c(Counter::StaleHits),
            refreshes: c(Counter::Refreshes),
            refresh_errors: c(Counter::RefreshErrors),
            fail_safe_hits: c(Counter::FailSafeHits),
            negative_hits: c(Counter::NegativeHits),
            timeouts: c(Counter::Timeouts),
            l2_hits: c(Counter::L2Hits),
            l2_misses: c(Counter::L2Misses),
            l2_errors: c(Counter::L2Errors),
            l2_corrupt: c(Counter::L2Corrupt),
            remote_fills: c(Counter::RemoteFills),
            retries: c(Counter::Retries),
            breaker_rejected: c(Counter::BreakerRejected),
            breaker_openings: c(Counter::BreakerOpenings),
            not_modified: c(Counter::NotModified),
            breaker: self.breaker_state(),
            bus_messages: self.bus_messages(),
            fleet_pending: self.fleet_pending(),
            fleet_failures: self.fleet_failures(),
            l2_breaker_open: self.l2_breaker_open(),
            load_p50: self.latency.quantile(0.50),
            load_p95: self.latency.quantile(0.95),
            load_p99: self.latency.quantile(0.99),
        }
    }
}

/// Runs `loader`, catching a panic in it (zero cost unless it panics).
async fn catch_unwind<F: Future>(loader: F) -> std::thread::Result<F::Output> {
    let mut loader = std::pin::pin!(loader);
    std::future::poll_fn(|cx| {
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| loader.as_mut().poll(cx))) {
            Ok(std::task::Poll::Ready(output)) => std::task::Poll::Ready(Ok(output)),
            Ok(std::task::Poll::Pending) => std::task::Poll::Pending,
            Err(panic) => std::task::Poll::Ready(Err(panic)),
        }
    })
    .await
}

/// How a caller that waited for `flight` was served: fail-safe's fallback
/// when the load failed; else, when it led the load (on a task of its
/// own, behind a deadline), loaded or from Redis; else coalesced (it
/// joined another caller's).
fn served_by<V: Clone>(flight: &Flight<V>, led: bool) -> Served {
    match flight.answered_by() {
        Answered::FailSafe => Served::FailSafe,
        Answered::Remote if led => Served::Remote,
        Answered::Body if led => Served::Loaded,
        Answered::Remote | Answered::Body => Served::Coalesced,
    }
}

/// A joined caller's answer from the load it waited for; `None` when the
/// leader went away without one (the caller then tries again).
fn answer<V, R: Outcome<Value = V>>(
    landing: Landing<V>,
    hooks: &LoadHooks<V, R::Failure>,
) -> Option<R> {
    match landing {
        Landing::Value(value) => Some(R::from_value(value)),
        Landing::Failure(failure) => Some(R::from_failure(hooks.share.unshare(&failure))),
        Landing::Abandoned => None,
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
    /// The versions of the load's tags, held until it is over.
    stamps: Pinned,
    background: bool,
    finished: bool,
    /// The write-back to Redis the load leaves (`distributed`).
    write: distributed::WriteSlot,
}

impl<K, V> Drop for LeaderGuard<'_, K, V>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    fn drop(&mut self) {
        if !self.finished {
            self.cache.detach(&self.key, &self.flight);
            if std::thread::panicking() {
                self.cache.count_error(self.background);
            }
        }
        // Always: a caller that joined after the outcome counted its
        // waiters (and so got nothing landed) wakes and tries again. The
        // first landing stands, so this changes nothing for the others.
        self.flight.land(Landing::Abandoned);
    }
}
