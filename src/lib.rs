//! # herdcache
//!
//! Declarative caching for async Rust. One attribute turns an async function
//! into a cached one:
//!
//! ```
//! use herdcache::cached;
//!
//! #[derive(Clone, Debug)]
//! struct User { id: u64, name: String }
//!
//! #[cached(ttl = "60s", jitter = 0.1, key = user_id)]
//! async fn get_user(user_id: u64, db: &str) -> Result<User, std::io::Error> {
//!     // a slow query…
//!     Ok(User { id: user_id, name: format!("user {user_id} from {db}") })
//! }
//! # let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
//! # rt.block_on(async {
//! let first = get_user(42, "primary").await?;   // loads
//! let again = get_user(42, "primary").await?;   // a hit
//! assert_eq!(get_user_cache().stats().hits, 1);
//! get_user_invalidate(42).await;                // the next call loads again
//! # Ok::<(), std::io::Error>(())
//! # }).unwrap();
//! ```
//!
//! What the runtime guarantees:
//!
//! - **Single flight.** However many callers ask for a cold key at once, the
//!   body runs once; the others wait for its outcome. Different keys never
//!   wait on each other. If the leading caller is dropped or its body panics,
//!   a waiting caller takes over: nobody hangs.
//! - **Expiry with jitter.** A value is fresh for `ttl`, or for a draw from
//!   `ttl·(1 ± jitter)`, so keys written together do not expire together.
//! - **Failures are not cached.** `Err` and `None` go back to the callers
//!   of that load and are not stored. Callers that joined a failing load each
//!   get the error, without the body running again: a clone when the error
//!   type is `Clone`, otherwise `E::from(`[`SharedError`]`)`, which
//!   `anyhow::Error` and `Box<dyn Error + Send + Sync>` accept.
//! - **Invalidation is linearizable.** Once `<fn>_invalidate(..).await`
//!   returns, no call sees a value whose load began before it.
//!
//! Beside each cached function the macro writes `<fn>_invalidate` (taking
//! the arguments the key uses), `<fn>_refresh` and `<fn>_uncached` (taking
//! all arguments), and `<fn>_cache()`, a [`CacheHandle`]. [`stats()`] lists
//! every cached function's [`Stats`].

#![warn(missing_docs)]
#![forbid(unsafe_code)]

pub use herdcache_macros::{cached, cached_impl};
pub use herdcache_runtime::{invalidate_all, stats, testing, CacheHandle, SharedError, Stats};

/// What generated code calls. Not a public API: it may change in any release.
#[doc(hidden)]
pub mod __private {
    pub use core::time::Duration;
    pub use herdcache_runtime::{
        plain, CacheConfig, CacheHandle, CacheableValue, FailureShare, FnCache, InvalidKeyPart,
        KeyProbe, NotCacheableValue, Outcome, Plain, PlainIsPlain, PlainIsResultOrOption,
        PlainProbe, ShareByClone, ShareByMessage, ShareBySharedError, ShareNotPossible, ShareProbe,
        Slot, Through, ValidKeyPart, ValueProbe,
    };
}
