//! How a cache is set up ([`CacheConfig`]) and what a load does with its
//! outcome beside storing a value ([`LoadHooks`]: sharing and caching
//! failures, a value's own ttl, the error of a hard timeout).

use std::time::Duration;

use crate::breaker::CircuitBreaker;
use crate::clock::Clock;
use crate::outcome::FailureShare;
use crate::retry::Retry;
use crate::tags::Tags;
use crate::tier::Memory;

/// The default bound of the in-memory tier, in entries.
pub(crate) const DEFAULT_MAX_CAPACITY: u64 = 10_000;

/// The default time a fail-safe fallback is served as fresh once it answered.
pub(crate) const DEFAULT_FAIL_SAFE_THROTTLE: Duration = Duration::from_secs(5);

/// How one cache is set up.
#[derive(Clone, Debug)]
pub struct CacheConfig {
    /// Stable name, shown in stats.
    pub name: String,
    /// How long a value is fresh, before jitter.
    pub ttl: Duration,
    /// Spread of the ttl, a fraction in `0.0..=1.0`.
    pub jitter: f64,
    /// Bound of the in-memory tier, in entries (default 10 000).
    pub max_capacity: u64,
    /// Where "now" comes from.
    pub clock: Clock,
    /// Stale-while-revalidate window (zero: off).
    pub swr: Duration,
    /// Fail-safe window (zero: off).
    pub fail_safe: Duration,
    /// How long a fail-safe fallback is served as fresh once it answered
    /// (default 5 s).
    pub fail_safe_throttle: Duration,
    /// XFetch's β for early refresh (zero: off).
    pub early_refresh: f64,
    /// Entries may live for different spans (negative caching, a per-value
    /// ttl), so the memory tier needs per-entry expiry.
    pub varied_lifetimes: bool,
    /// Values may come from a shared tier: see [`distributed`](Self::distributed).
    pub distributed: bool,
    /// Soft timeout: with a fallback, callers wait this long for a load.
    pub timeout: Option<Duration>,
    /// Callers wait at most this long for a load.
    pub hard_timeout: Option<Duration>,
    /// The memory tier; `None`: the process default
    /// ([`Memory::process_default`]).
    pub memory: Option<Memory>,
    /// How a failed load is retried (`retry = n`); `None`: it is not.
    pub retry: Option<Retry>,
    /// The origin's circuit breaker (`circuit_breaker`); `None`: none.
    pub circuit_breaker: Option<CircuitBreaker>,
}

impl CacheConfig {
    /// A config with the given name and ttl, no jitter or policies, the
    /// default capacity and the system clock.
    pub fn new(name: impl Into<String>, ttl: Duration) -> Self {
        CacheConfig {
            name: name.into(),
            ttl,
            jitter: 0.0,
            max_capacity: DEFAULT_MAX_CAPACITY,
            clock: Clock::System,
            swr: Duration::ZERO,
            fail_safe: Duration::ZERO,
            fail_safe_throttle: DEFAULT_FAIL_SAFE_THROTTLE,
            early_refresh: 0.0,
            varied_lifetimes: false,
            distributed: false,
            timeout: None,
            hard_timeout: None,
            memory: None,
            retry: None,
            circuit_breaker: None,
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

    /// Serves a value stale for `swr` after its ttl while one refresh runs.
    pub fn swr(mut self, swr: Duration) -> Self {
        self.swr = swr;
        self
    }

    /// Keeps a value `fail_safe` past its stale window as a fallback.
    pub fn fail_safe(mut self, fail_safe: Duration) -> Self {
        self.fail_safe = fail_safe;
        self
    }

    /// Sets how long a fallback is served as fresh once it answered.
    pub fn fail_safe_throttle(mut self, throttle: Duration) -> Self {
        self.fail_safe_throttle = throttle;
        self
    }

    /// Turns on early refresh with XFetch's `beta`.
    pub fn early_refresh(mut self, beta: f64) -> Self {
        self.early_refresh = beta;
        self
    }

    /// Says entries may live for different spans (negative caching, `ttl_for`).
    pub fn varied_lifetimes(mut self) -> Self {
        self.varied_lifetimes = true;
        self
    }

    /// Says values may come from a shared tier with the rest of their life
    /// (`distributed = true`): entries live for different spans, and a hit
    /// checks its entry's freshness.
    pub fn distributed(mut self) -> Self {
        self.varied_lifetimes = true;
        self.distributed = true;
        self
    }

    /// With a fallback (stale or fail-safe), callers wait at most `timeout`
    /// for a load, which finishes in the background.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Keeps the values in `memory` (moka or quick), whatever the process
    /// default.
    pub fn memory(mut self, memory: Memory) -> Self {
        self.memory = Some(memory);
        self
    }

    /// Retries a failed load as `retry` says, inside the load (only the
    /// caller leading it retries) and within `hard_timeout`.
    pub fn retry(mut self, retry: Retry) -> Self {
        self.retry = Some(retry);
        self
    }

    /// Sends loads through a circuit breaker set up by `breaker`.
    pub fn circuit_breaker(mut self, breaker: CircuitBreaker) -> Self {
        self.circuit_breaker = Some(breaker);
        self
    }

    /// Callers wait at most `hard_timeout` for a load, which finishes in
    /// the background.
    pub fn hard_timeout(mut self, hard_timeout: Duration) -> Self {
        self.hard_timeout = Some(hard_timeout);
        self
    }
}

/// Whether a failure is cached, and for how long.
#[derive(Debug)]
pub enum Negative<F> {
    /// Failures are never cached.
    Never,
    /// Every failure is cached this long (`negative_ttl`).
    Always(Duration),
    /// A rule decides per failure (`negative = path`).
    Rule(fn(&F) -> Option<Duration>),
}

impl<F> Clone for Negative<F> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<F> Copy for Negative<F> {}

impl<F> Negative<F> {
    pub(crate) fn ttl(&self, failure: &F) -> Option<Duration> {
        match self {
            Negative::Never => None,
            Negative::Always(ttl) => Some(*ttl),
            Negative::Rule(rule) => rule(failure),
        }
    }
}

/// What a load does with its outcome, beside storing a value: how a failure
/// reaches joined callers and whether it is cached, and a value's own ttl.
pub struct LoadHooks<V, F> {
    pub(crate) share: FailureShare<F>,
    pub(crate) negative: Negative<F>,
    pub(crate) ttl_for: Option<fn(&V) -> Duration>,
    /// The failure a caller gets when `hard_timeout` elapsed.
    pub(crate) timeout_error: Option<fn() -> F>,
    /// The tags the load's value will carry.
    pub(crate) tags: Tags,
}

impl<V, F> Clone for LoadHooks<V, F> {
    fn clone(&self) -> Self {
        LoadHooks {
            share: self.share,
            negative: self.negative,
            ttl_for: self.ttl_for,
            timeout_error: self.timeout_error,
            tags: self.tags.clone(),
        }
    }
}

impl<V, F> LoadHooks<V, F> {
    /// Failures shared by `share`, never cached; values live their ttl.
    pub fn new(share: FailureShare<F>) -> Self {
        LoadHooks {
            share,
            negative: Negative::Never,
            ttl_for: None,
            timeout_error: None,
            tags: Tags::new(),
        }
    }

    /// Caches failures as `negative` says.
    pub fn negative(mut self, negative: Negative<F>) -> Self {
        self.negative = negative;
        self
    }

    /// Gives each value its own freshness, capped by the ttl.
    pub fn ttl_for(mut self, ttl_for: fn(&V) -> Duration) -> Self {
        self.ttl_for = Some(ttl_for);
        self
    }

    /// Adds tags the value will carry: `herdcache::invalidate_tag` of any
    /// of them drops it. Their versions are read when the load begins.
    pub fn tags(mut self, tags: Tags) -> Self {
        self.tags.append(tags);
        self
    }

    /// The failure callers get when `hard_timeout` elapsed with no fallback.
    pub fn timeout_error(mut self, timeout_error: fn() -> F) -> Self {
        self.timeout_error = Some(timeout_error);
        self
    }
}
