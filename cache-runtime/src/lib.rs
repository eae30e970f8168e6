//! The engine behind [herdcache](https://docs.rs/herdcache): one
//! [`FnCache`] per cached function, with single flight per key, expiry with
//! jitter, linearizable invalidation and striped stats, over a memory tier
//! (moka, or quick_cache: see [`Memory`]).
//!
//! Users depend on the `herdcache` facade and its `#[cached]` attribute; this
//! crate is what the generated code calls, and can be used by hand.

#![warn(missing_docs)]
#![forbid(unsafe_code)]

/// Declares the engine's shared-tier module: the Redis tier's entry points
/// (`shared/redis.rs`), or stand-ins that do nothing without the `redis`
/// feature (`shared/memory_only.rs`, where the tier's type has no value).
/// Picked here, so that the engine's own files never name the feature.
/// (The module is the engine's child: its entry points are `FnCache`'s.)
macro_rules! shared_tier_module {
    ($name:ident) => {
        #[cfg(feature = "redis")]
        #[path = "shared/redis.rs"]
        mod $name;
        #[cfg(not(feature = "redis"))]
        #[path = "shared/memory_only.rs"]
        mod $name;
    };
}
pub(crate) use shared_tier_module;

mod background;
mod breaker;
mod clock;
mod config;
mod entry;
mod error;
mod expiry;
#[cfg(feature = "redis")]
pub mod fleet;
mod flight;
mod fn_cache;
#[cfg(feature = "http")]
pub mod http;
mod idempotent;
// `#[idempotent]`'s records in Redis, or the stand-in without the feature:
// picked here with the tier, so that `idempotent/mod.rs` never names it.
#[cfg(feature = "redis")]
#[path = "idempotent/fleet.rs"]
mod idem_fleet;
#[cfg(not(feature = "redis"))]
#[path = "idempotent/fleet_off.rs"]
mod idem_fleet;
mod invalidation;
mod isolation;
#[cfg(feature = "metrics")]
mod metrics;
mod outcome;
mod previous;
mod probe;
#[cfg(feature = "redis")]
mod redis;
#[cfg(not(feature = "redis"))]
#[path = "redis_off.rs"]
mod redis;
// The probes of what a `distributed` function sends to Redis, or their
// stand-ins: picked here with the tier (`probe/mod.rs` re-exports them).
mod registry;
mod retry;
mod stats;
mod tags;
pub mod testing;
mod tier;
#[cfg(feature = "redis")]
#[path = "probe/wire.rs"]
mod wire_probe;
#[cfg(not(feature = "redis"))]
#[path = "probe/wire_off.rs"]
mod wire_probe;

pub use background::BackgroundLoad;
pub use breaker::{BreakerState, CircuitBreaker};
pub use clock::{Clock, ManualClock};
pub use config::{CacheConfig, LoadHooks, Negative};
pub use entry::{Entry, Served};
pub use error::Error;
pub use expiry::ExpiryPolicy;
pub use fn_cache::FnCache;
pub use idempotent::{
    idempotency_stats, IdempotencyError, IdempotencyStats, Idempotent, MAX_KEY_BYTES,
};
pub use invalidation::{expire_tag, expire_tags, invalidate_tag, invalidate_tags};
pub use outcome::{FailureShare, Outcome, SharedError};
pub use previous::{previous, Previous};
pub use redis::{flush_fleet, flush_fleet_on_drop, FlushOnDrop};
#[cfg(feature = "redis")]
pub use redis::{Codec, InstallError, RedisTier, Runtime, RuntimeBuilder, Wire};
pub use registry::{invalidate_all, stats, stats_table, CacheHandle};
pub use retry::Retry;
pub use stats::Stats;
pub use tags::{TagSource, Tags};
pub use tier::Memory;

/// What a type needs to be used by a cached function, as the traits the
/// compile errors name: each is implemented by no type, and exists only so
/// that a type missing a bound is one error, at the user's token, that says
/// what the type needs and the way out.
pub mod requirements {
    pub use crate::probe::{
        BackgroundCopy, BreakerError, CacheKeyPart, CachedValue, NamedResultOrOption,
        ShareableError, SharedValue, TimeoutError,
    };
    #[cfg(not(feature = "redis"))]
    pub use crate::redis::RedisFeature;
    #[cfg(feature = "redis")]
    pub use crate::wire_probe::{DistributedKey, DistributedValue};
    pub use crate::{
        idem_fleet::StoredOutcome,
        idempotent::{FingerprintPart, IdempotencyKey, IdempotentError},
    };
}

/// What generated code names: the compile-time probes, the per-function
/// slot and the adapters between a function's outcome and the engine. Not
/// a public API: it may change in any release.
#[doc(hidden)]
pub mod __private {
    pub use crate::entry::{EntryMeta, Served, WithEntry};
    pub use crate::idem_fleet::StoredOutcome;
    pub use crate::idempotent::{
        IdemConfig, IdemFailure, IdemSlot, Idempotency, IdempotencyKey, StableDigest,
        DEFAULT_LEASE, DEFAULT_TTL, DEFAULT_WAIT,
    };
    pub use crate::outcome::{plain, Plain, SharedFailure};
    pub use crate::probe::*;
    #[cfg(not(feature = "redis"))]
    pub use crate::redis::RedisFeature;
    pub use crate::redis::{Codec, Wire};
    pub use crate::registry::Slot;
    pub use crate::{
        invalidate_tags, BackgroundLoad, CacheConfig, CacheHandle, CircuitBreaker, FailureShare,
        FnCache, LoadHooks, Memory, Negative, Outcome, Retry, Tags,
    };
    pub use crate::{IdempotencyError, Idempotent};
}
