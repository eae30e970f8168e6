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
mod clock;
mod config;
mod error;
mod expiry;
mod flight;
mod fn_cache;
mod invalidation;
mod isolation;
mod key;
#[cfg(feature = "metrics")]
mod metrics;
mod outcome;
#[cfg(feature = "redis")]
mod redis;
#[cfg(not(feature = "redis"))]
#[path = "redis_off.rs"]
mod redis;
mod registry;
mod stats;
mod tags;
pub mod testing;
mod tier;
mod value;

pub use background::{BackgroundCopy, BackgroundLoad, CanCopy, CannotCopy, CopyProbe};
pub use clock::{Clock, ManualClock};
pub use config::{
    CacheConfig, LoadHooks, Negative, DEFAULT_FAIL_SAFE_THROTTLE, DEFAULT_MAX_CAPACITY,
};
pub use error::{Error, TimeoutConverts, TimeoutDoesNotConvert, TimeoutError, TimeoutProbe};
pub use expiry::ExpiryPolicy;
pub use fn_cache::FnCache;
pub use invalidation::{expire_tag, expire_tags, invalidate_tag, invalidate_tags};
pub use key::{
    CacheKeyPart, CopiedReceiver, InvalidKeyPart, KeyProbe, LentReceiver, NotAKey, ReceiverProbe,
    ValidKeyPart,
};
pub use outcome::{
    plain, FailureShare, NamedResultOrOption, Outcome, Plain, PlainIsPlain, PlainIsResultOrOption,
    PlainProbe, ShareByClone, ShareByMessage, ShareBySharedError, ShareNotPossible, ShareProbe,
    ShareableError, SharedError, SharedFailure, WriteIsPlain, WriteIsResultOrOption, WriteProbe,
};
pub use redis::{flush_fleet, flush_fleet_on_drop, FlushOnDrop};
#[cfg(feature = "redis")]
pub use redis::{
    Codec, DistributedKey, DistributedValue, InstallError, KeyCannotTravel, KeyTravels,
    KeyWireProbe, RedisTier, Runtime, RuntimeBuilder, ValueCannotTravel, ValueTravels,
    ValueWireProbe, Wire, DEFAULT_MAX_PAYLOAD, DEFAULT_PENDING_LIMIT, DEFAULT_REDIS_TIMEOUT,
};
#[cfg(not(feature = "redis"))]
pub use redis::{
    Codec, KeyCannotTravel, KeyTravels, KeyWireProbe, RedisFeature, ValueCannotTravel,
    ValueTravels, ValueWireProbe, Wire,
};
pub use registry::{invalidate_all, stats, stats_table, CacheHandle, Slot};
pub use stats::Stats;
pub use tags::{TagSource, Tags};
pub use tier::Memory;
pub use value::{
    CacheableValue, CachedValue, Direct, NotAValue, NotCacheableValue, NotSharedValue, Refused,
    SharedValue, Through, ValueProbe,
};
