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
//! Cached functions are called from async code on a
//! [tokio](https://docs.rs/tokio) runtime (or any executor: the memory tier
//! spawns nothing). The value must be `Clone + Send + Sync + 'static`: return
//! `Arc<T>` for big values, so a hit clones a pointer.
//!
//! ## What the runtime guarantees
//!
//! - **Single flight.** However many callers ask for a cold key at once, the
//!   body runs once; the others wait for its outcome. Different keys never
//!   wait on each other. If the leading caller is dropped or its body panics,
//!   a waiting caller takes over: nobody hangs.
//! - **Expiry with jitter.** A value is fresh for `ttl`, or for a draw from
//!   `ttl·(1 ± jitter)`, so keys written together do not expire together.
//! - **Failures are not cached.** `Err` and `None` go back to the callers
//!   of that load and are not stored. Callers that joined a failing load each
//!   get the error without the body running again (see [Errors](#errors)).
//! - **A staleness budget per function** (attributes of [`cached`]):
//!   `swr` serves a stale value at once while one background refresh runs;
//!   `early_refresh` refreshes a hot key before it expires (XFetch);
//!   `fail_safe` answers a failing load with the last good value for a
//!   window, asking the origin again at most every `fail_safe_throttle`;
//!   `negative_ttl`/`negative` cache failures by rule; `ttl_for` gives a
//!   value its own freshness; `timeout`/`hard_timeout` bound how long a
//!   caller waits (a fallback, or [`Error::Timeout`] as the function's
//!   error) while the load goes on. Background work runs on the caller's
//!   tokio runtime from copies of the arguments (`Self: Clone` for `&self`).
//! - **Invalidation is linearizable.** Once `<fn>_invalidate(..).await` or
//!   [`invalidate_tag`]`(t).await` returns, no call that starts afterwards
//!   sees a value whose load began before it: not fresh, not stale, not as
//!   a fail-safe fallback. A load in flight across it answers the callers
//!   that joined it, and what it stores is never served.
//!
//! ## Tags and writes
//!
//! `tags = ["user:{user_id}", "all-users", expr]` names a value by what it
//! is about, across functions: a template over the arguments, a constant,
//! or an expression yielding a `String`/`&str` or an iterable of them
//! ([`TagSource`]). [`invalidate_tag`] drops every entry carrying a tag,
//! [`expire_tag`] makes them stale (kept for `swr` and `fail_safe`). Both
//! are O(1): a tag is a version that each entry remembers from when its
//! load began, checked on read with one atomic load per tag.
//!
//! A write busts what it changed after it succeeds, with [`invalidate`]:
//!
//! ```
//! use herdcache::{cached, invalidate};
//!
//! #[cached(ttl = "60s", tags = ["user:{id}"])]
//! async fn get_user(id: u64) -> Option<String> {
//!     Some(format!("user {id}"))
//! }
//!
//! #[invalidate(get_user(id), tags = ["user:{id}"])]
//! async fn rename_user(id: u64, name: &str) -> Result<(), std::io::Error> {
//!     let _ = name; // the write
//!     Ok(())
//! }
//! # let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
//! # rt.block_on(async {
//! get_user(7).await;
//! rename_user(7, "ada").await?; // Ok: busted before it returned
//! herdcache::invalidate_tag("user:7").await;
//! # Ok::<(), std::io::Error>(())
//! # }).unwrap();
//! ```
//!
//! herdcache busts and never writes through: a bust after a successful
//! write is always safe, while a cache update that fails (or races another
//! writer) after the write leaves the cache wrong.
//!
//! ## The helpers
//!
//! Beside each cached function `f` the macro writes:
//!
//! | helper | takes | does |
//! |---|---|---|
//! | `f_invalidate(..)` | the arguments the key uses (and `&self` if the key reads `self`) | drops the value: the next call loads, no fallback |
//! | `f_expire(..)` | the same | makes the value stale at once: served under `swr` while one refresh runs, kept as a fail-safe fallback |
//! | `f_refresh(..)` | every argument, like `f` | loads now and stores, even over a fresh value |
//! | `f_uncached(..)` | every argument, like `f` | runs the original body, no cache |
//! | `f_cache()` | nothing | the [`CacheHandle`]: `stats()`, `len()`, `invalidate_all().await` |
//!
//! On a method they are associated functions of the same type
//! (`UserRepo::list_invalidate(org, page)`), except those that take `self`
//! (`_refresh` and `_uncached` always do, like the method; `_invalidate`
//! when the key reads `self`), which are called on an instance. Helpers have
//! the function's visibility; on a trait impl under [`cached_impl`] (whose
//! methods have none) they are `pub`.
//!
//! ## Memory tiers
//!
//! Values live in moka (the default: TinyLFU admission, expired entries
//! reclaimed on their own) or in quick_cache (`memory = "quick"`: S3-FIFO,
//! a hit 3 to 5 times faster that scales with cores, an entry under a third of
//! the memory; an expired entry is a miss and is reclaimed when replaced or
//! evicted, never past the capacity). Everything else behaves the same on
//! both. Per function with the attribute, or for the process before the
//! first cached call with [`Memory::set_default`] or `HERDCACHE_MEMORY=quick`.
//!
//! ## Methods, keys and `self`
//!
//! **`self` is not part of the key unless the key reads it.** Without `key`,
//! the key is every argument but `self`, and one cache serves every instance
//! of the type: what a service with one repository per process wants, since
//! a second instance's first call is then a hit. When instances hold
//! different data (a tenant, a database), say so in the key:
//!
//! ```
//! use herdcache::cached;
//!
//! struct TenantRepo { tenant: u64 }
//!
//! impl TenantRepo {
//!     #[cached(ttl = "5m", key = (self.tenant, id))]
//!     async fn user(&self, id: u64) -> Option<String> {
//!         Some(format!("user {id} of tenant {}", self.tenant))
//!     }
//! }
//! # let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
//! # rt.block_on(async {
//! let acme = TenantRepo { tenant: 1 };
//! let globex = TenantRepo { tenant: 2 };
//! assert_eq!(acme.user(7).await.unwrap(), "user 7 of tenant 1");
//! assert_eq!(globex.user(7).await.unwrap(), "user 7 of tenant 2");
//! acme.user_invalidate(7).await; // the key reads `self`: called on the instance
//! # });
//! ```
//!
//! A key is an argument, a tuple, or an expression over the arguments and
//! `self`. A field in it (`key = req.id`) is copied, like an argument, so the
//! body still owns `req`; an expression that builds a value
//! (`key = format!("{org}:{page}")`) is used as it is. The key's owned form
//! must be `Hash + Eq + Clone + Send + Sync + 'static`.
//!
//! ## Tests
//!
//! `cargo test` runs a crate's tests as threads of one process, so tests that
//! call the same cached function share its values and stats. Wrap a test's
//! body in [`testing::isolate`] to give it caches of its own:
//!
//! ```
//! # use herdcache::cached;
//! # struct UserRepo { rows: Vec<u64> }
//! # impl UserRepo {
//! #     #[cached(ttl = "5m", key = id)]
//! #     async fn find(&self, id: u64) -> Option<u64> { self.rows.iter().copied().find(|r| *r == id) }
//! # }
//! # let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
//! # rt.block_on(async {
//! // #[tokio::test]
//! // async fn an_empty_database_has_no_users() {
//! herdcache::testing::isolate(async {
//!     let repo = UserRepo { rows: vec![] };
//!     assert_eq!(repo.find(1).await, None); // not another test's user 1
//!     assert_eq!(UserRepo::find_cache().stats().misses, 1);
//! })
//! .await;
//! // }
//! # });
//! ```
//!
//! [`invalidate_all()`] drops every function's entries at once.
//!
//! ## Trait impls
//!
//! The helpers cannot be members of a trait, so a trait impl with cached
//! methods takes [`cached_impl`] (above `#[async_trait]`, when there is one),
//! which puts the helpers in an inherent impl of the type:
//!
//! ```
//! use herdcache::{cached, cached_impl};
//!
//! trait UserStore {
//!     async fn get(&self, id: u64) -> Option<String>;
//! }
//!
//! struct PgRepo;
//!
//! #[cached_impl]
//! impl UserStore for PgRepo {
//!     #[cached(ttl = "60s", key = id)]
//!     async fn get(&self, id: u64) -> Option<String> {
//!         Some(format!("user {id}"))
//!     }
//! }
//! # let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
//! # rt.block_on(async {
//! assert_eq!(PgRepo.get(1).await.as_deref(), Some("user 1"));
//! PgRepo::get_invalidate(1).await;
//! # });
//! ```
//!
//! ## Errors
//!
//! Callers that joined a failing load each get an error without the body
//! running again:
//!
//! - when `E: Clone`, a clone: **the simplest path** (wrap a foreign source
//!   such as `sqlx::Error` in `Arc` to make your error `Clone`);
//! - otherwise `E::from(`[`SharedError`]`)`: the original error moves into
//!   the `SharedError`, and every caller of that load gets it, the first one
//!   included. It prints like the original, and
//!   [`SharedError::downcast_ref`] gives the original back, so `match` on it:
//!
//! ```
//! use herdcache::SharedError;
//!
//! #[derive(Debug, thiserror::Error)]
//! enum RepoError {
//!     #[error("not found")]
//!     NotFound,
//!     #[error("database: {0}")]
//!     Db(std::io::Error),
//!     #[error(transparent)]
//!     Shared(#[from] SharedError),
//! }
//!
//! impl RepoError {
//!     /// The error as the body returned it, shared or not.
//!     fn original(&self) -> &RepoError {
//!         match self {
//!             RepoError::Shared(shared) => shared.downcast_ref().unwrap_or(self),
//!             other => other,
//!         }
//!     }
//! }
//!
//! fn status(error: &RepoError) -> u16 {
//!     match error.original() {
//!         RepoError::NotFound => 404,
//!         _ => 503,
//!     }
//! }
//! # assert_eq!(status(&RepoError::from(SharedError::new(RepoError::NotFound))), 404);
//! ```
//!
//! `anyhow::Error`, `std::io::Error` and `Box<dyn Error + Send + Sync>`
//! accept a `SharedError` already. An error that converts from it but is not
//! `Send + Sync` cannot move into it: the first caller keeps its error and
//! the others get its message only (`downcast_ref` is `None`). Any other
//! error type is a compile error at `E` that names both ways out.
//!
//! ## Stats and names
//!
//! `f_cache().stats()` is a [`Stats`] snapshot; [`stats()`] lists every
//! function called so far, sorted by name. A function's name is its `name =
//! ".."` attribute, else its path: `my_crate::users::get_user`, or
//! `my_crate::users::UserRepo::list` for a method that takes `self` or
//! mentions `Self` (one entry per instantiation of a generic impl,
//! `Repo<u8>` and `Repo<u16>` apart; an associated function with neither is
//! named like a free function).
//!
//! ## Tracing
//!
//! Everything herdcache traces has the target `herdcache`, and no event or
//! span ever carries a key (keys may be personal data):
//!
//! | level | what |
//! |---|---|
//! | `debug` | a span per load (`herdcache.load`) or refresh (`herdcache.refresh`) with `function`, `outcome`, `duration_us`, `waiters`; an event when each ends (`herdcache: load ended`), so a subscriber that does not report span closes sees it too |
//! | `info` | fail-safe answered with the last good value |
//! | `warn` | a background refresh failed; a `distributed` function runs without a Redis tier (once); the Redis tier is unreachable, keeps invalidations for replay, or overflowed |
//!
//! To see loads with `tracing_subscriber`:
//! `tracing_subscriber::fmt().with_env_filter("info,herdcache=debug").init()`
//! (the `env-filter` feature), or `RUST_LOG=herdcache=debug` with
//! `EnvFilter::from_default_env()`.
//!
//! ## Limits
//!
//! - Functions generic over types are a compile error: cache a concrete
//!   wrapper. Methods of generic impls get one cache per `Self` type when
//!   they take `self` or mention `Self`; an associated function with
//!   neither cannot see its impl and shares one cache across instantiations.
//! - Only `async fn`s are cached.
//! - Without the `redis` feature each process has its own caches: one
//!   instance's invalidation, by key or by tag, does not reach another's.
//!   With it, `distributed = true` functions share values through Redis
//!   (`Runtime::builder().redis(url).install()`), and tag invalidations and
//!   their key invalidations reach every instance (see the guide's "A
//!   fleet" section).

#![warn(missing_docs)]
#![forbid(unsafe_code)]

pub use herdcache_macros::{cached, cached_impl, invalidate};
pub use herdcache_runtime::{
    expire_tag, expire_tags, flush_fleet, flush_fleet_on_drop, invalidate_all, invalidate_tag,
    invalidate_tags, stats, stats_table, testing, CacheHandle, Error, FlushOnDrop, Memory,
    SharedError, Stats, TagSource,
};

#[cfg(feature = "redis")]
pub use herdcache_runtime::{InstallError, RedisTier, Runtime, RuntimeBuilder};

/// What generated code calls. Not a public API: it may change in any release.
#[doc(hidden)]
pub mod __private {
    pub use core::time::Duration;
    pub use herdcache_runtime::__private::*;
}
