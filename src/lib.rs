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
//! [tokio](https://docs.rs/tokio) runtime (or any executor, without `swr`,
//! `early_refresh` or timeouts, which spawn tasks). The attributes are the
//! table in the README (<https://github.com/herdcache/herdcache#attributes>);
//! what each freshness policy does is on [`cached`]. This page says what
//! the cache does.
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
//! - **A staleness budget per function**: `swr`, `early_refresh`,
//!   `fail_safe`, `negative_ttl`/`negative`, `ttl_for`,
//!   `timeout`/`hard_timeout` (each on [`cached`]).
//! - **Invalidation is linearizable.** Once `<fn>_invalidate(..).await` or
//!   [`invalidate_tag`]`(t).await` returns, no call that starts afterwards
//!   sees a value whose load began before it: not fresh, not stale, not as
//!   a fail-safe fallback. A load in flight across it answers the callers
//!   that joined it, and what it stores is never served.
//! - **Bounded memory.** At most `max_capacity` entries a cache, and at
//!   most 1.25 times the tags they carry (see [Tags](#tags-and-writes)). In
//!   Redis, every copy and version expires once nothing can read it.
//!
//! ## Return types
//!
//! `Result<T, E>` caches `Ok` and never `Err`; `Option<T>` caches `Some`
//! and never `None`; any other type is always cached. `Result` and
//! `Option` are recognised by name, so aliases such as `anyhow::Result<T>`
//! and `io::Result<T>` work. An alias of another name
//! (`type DbResult<T> = Result<T, DbError>`) is a compile error rather than
//! a cache of failures. The value must be `Clone + Send + Sync + 'static`:
//! return `Arc<T>` for big values, so a hit clones a pointer.
//!
//! ## Single flight
//!
//! One load per key at a time in a process. The body runs in the first
//! caller's task, with its arguments (no `'static` bound, no spawn). If that
//! caller is dropped (a timeout, a disconnected client) or its body panics,
//! the callers waiting on it wake, and one of them runs the body again with
//! its own arguments. A panic is counted in `load_errors` and never poisons
//! the key; each waiter in turn retries a body that keeps panicking. A
//! leading future that is kept but never polled again holds its waiters
//! until it is dropped: drop futures you stop polling. `<fn>_refresh`
//! always starts a new load.
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
//! | `f_entry(..)` | every argument, like `f` | `f` through the same cache, its value in an [`Entry`] (see [Entries](#entries-and-conditional-refresh)) |
//! | `f_uncached(..)` | every argument, like `f` | runs the original body, no cache |
//! | `f_cache()` | nothing | the [`CacheHandle`]: `stats()`, `len()`, `memory()` (the tier, once called), `invalidate_all().await` |
//!
//! On a method they are associated functions of the same type
//! (`UserRepo::list_invalidate(org, page)`), except those that take `self`
//! (`_refresh` and `_uncached` always do, like the method; `_invalidate`
//! when the key reads `self`), which are called on an instance. Helpers have
//! the function's visibility; on a trait impl under [`cached_impl`] (whose
//! methods have none) they are `pub`.
//!
//! **Invalidate or expire.** `<fn>_invalidate`, [`CacheHandle::invalidate_all`],
//! [`invalidate_tag`] and [`invalidate_all()`]: invalidated means gone,
//! fresh, stale or as a fallback. Use them when the old value must never be
//! served again (a revoked permission). `<fn>_expire` and [`expire_tag`]
//! are the soft verbs, for data that *may* have changed ("a webhook said
//! so"): the value is stale at once, so under `swr` the next call gets it
//! while one refresh runs, and it stays a fail-safe fallback. Without `swr`
//! or `fail_safe`, expiring is invalidating. Either way a load in flight
//! across it answers the callers that joined it but does not store;
//! `<fn>_refresh` likewise supersedes a load in flight.
//!
//! ## Entries and conditional refresh
//!
//! `f_entry(..)` answers what `f` does, its value in an [`Entry`]:
//! `Result<Entry<T>, E>`, `Option<Entry<T>>`, or `Entry<T>` for a plain
//! value. The entry says how the call was served ([`Served`]: a hit, a
//! stale value, a fail-safe fallback, this call's load, a load it joined,
//! a copy from Redis), the value's age, how long it stays fresh, and the
//! function's `swr` and `fail_safe` windows. With the `serde` feature (on
//! with `redis` and `http`), [`Entry::etag`] digests the value's bytes:
//! the same strong `ETag` on every instance. The `http` feature turns an
//! entry into a response with `ETag`, `Cache-Control` and `304`s (the
//! `http` module). Callers of `f` pay nothing for it. (A function called
//! only through `f_entry` is still one rustc reports unused.)
//!
//! A body that refreshes a value the cache holds can ask the origin
//! whether it changed: [`previous`] returns that value (with the origin's
//! `ETag` in it, say), and [`Previous::not_modified`] keeps it, fresh for a
//! new ttl, when the origin answers `304`. Counted in
//! [`Stats::not_modified`]. For a `distributed` function the value does not
//! travel again: one script rewrites the copy's horizons and expiry in
//! Redis, in place, when the copy still holds this value (by its digest)
//! with the same tag versions (otherwise the value is written whole). The
//! other instances take the new horizons from Redis when their own copy
//! goes stale (their refreshes ask Redis first), so the origin is asked
//! once for the fleet.
//!
//! ```
//! # #[derive(Clone)] struct Rates { etag: String, body: String }
//! # async fn get(url: &str, if_none_match: Option<&str>) -> std::io::Result<(u16, Rates)> { unimplemented!() }
//! #[herdcache::cached(ttl = "1m", swr = "1h", key = url)]
//! async fn rates(url: &str) -> std::io::Result<Rates> {
//!     let previous = herdcache::previous::<Rates>();
//!     let etag = previous.as_ref().map(|p| p.value().etag.clone());
//!     match get(url, etag.as_deref()).await? {
//!         (304, _) if previous.is_some() => Ok(previous.unwrap().not_modified()),
//!         (_, rates) => Ok(rates),
//!     }
//! }
//! ```
//!
//! `HERDCACHE_DISABLED=1` in the environment turns every cache of the
//! process off (every call runs its body, nothing is stored, no single
//! flight): for measuring what the cache saves. Read once, by the first
//! cache made.
//!
//! ## Tags and writes
//!
//! `tags = ["user:{user_id}", "all-users", expr]` names a value by what it
//! is about, across functions: a template over the arguments, a constant,
//! or an expression yielding a `String`/`&str` or an iterable of them
//! ([`TagSource`]), computed when a load begins. [`invalidate_tag`] drops
//! every entry carrying a tag, [`invalidate_tags`] several at once;
//! [`expire_tag`] and [`expire_tags`] make them stale instead (the entries
//! keep the stale and fail-safe windows they were loaded with).
//!
//! Tags are versions, never scans: invalidating one bumps a counter, O(1)
//! whatever the number of entries. An entry remembers its tags' versions
//! from when its load *began* and is dead once one of them moved, which a
//! hit checks with one atomic load per tag (entries with three tags or
//! more share one version for the set). So a load in flight across the
//! invalidation, a refresh or a load past a soft timeout never brings the
//! old value back, and a caller that arrives after the invalidation does
//! not join a load that began before it. The tags of a
//! [`testing::isolate`]d test are its own.
//!
//! Bookkeeping follows the caches, not the clock: the process remembers at
//! most 1.25 times the tags its held entries and running loads carry (or
//! 4 096 if that is more), about 50 bytes each, however many distinct tags
//! go by. A tag no held entry carries is forgotten at the next sweep;
//! forgetting bumps it first, so it can cost a miss, never a stale value.
//!
//! **Writes: bust the cache, never write through it.** After a write
//! succeeds, invalidate what it changed, before answering the caller.
//! [`invalidate`] does it for you:
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
//! By hand it is the same: call `balance_invalidate(account).await` after
//! the write's `?` and before `Ok(..)`, so a failed write busts nothing.
//! herdcache never writes values into the cache for you: a
//! write that succeeds while the cache update fails (or races another
//! writer) leaves the cache wrong until its ttl, while a bust after a
//! successful write is always safe. An account balance read before a
//! payment must be busted by the payment itself, as above; a display name
//! can wait for its ttl or a webhook's `_expire`.
//!
//! ## Memory tiers
//!
//! Values live in moka (the default) or in quick_cache (`memory = "quick"`:
//! faster hits that scale with cores, smaller entries). Everything else
//! behaves the same on both. How they differ and how to choose: [`Memory`].
//!
//! ## Keys and methods
//!
//! A key is an argument, a tuple, or an expression over the arguments and
//! `self`; its owned form must be `Hash + Eq + Clone + Send + Sync +
//! 'static`. Arguments are keyed by owned copies: `&str` as `String`, `&T`
//! by `ToOwned` (so `T: Clone`), owned arguments by `Clone`. A hit on a
//! `u64` key allocates nothing; a `&str` key allocates its `String` on every
//! call. A field in the key (`key = req.id`, `self.tenant_id`) is copied the
//! same way, so the body still owns `req`, and so is a place passed by value
//! inside a key expression (`key = Some(req.id)`). A method called on an
//! argument or a field (`key = req.name.to_lowercase()`) reads it without
//! moving it; one that consumes a value that is not `Copy`
//! (`key = req.id.into_bytes()`) is one error at that expression, where
//! rustc suggests `.clone()`. Any other expression
//! (`key = format!("{org}:{page}")`) is evaluated as written, before the
//! body runs.
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
//! [`testing::isolate_with_clock`] does the same on a
//! [`testing::ManualClock`], so a test of a ttl or a policy moves time
//! instead of sleeping. [`invalidate_all()`] drops every function's entries
//! at once.
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
//! running again: a clone when `E: Clone` (the simplest path), else
//! `E::from(`[`SharedError`]`)`, from which [`SharedError::downcast_ref`]
//! gives the original back. Which error types work, and how to match on
//! the original: [`SharedError`].
//!
//! ## A fleet
//!
//! With the `redis` feature, `distributed = true` shares a function's
//! values, loads and invalidations with every instance through Redis or
//! Redis Cluster: one origin call per key for the fleet. Without it each
//! process has its own caches, and an invalidation stays in its process.
//! How the tier behaves: `herdcache::fleet`; set-up: `herdcache::Runtime`;
//! the bound under each fault: `herdcache::RedisTier` (all with the `redis`
//! feature).
//!
//! ## HTTP
//!
//! With the `http` feature, `herdcache::http` answers axum 0.8 requests
//! from an [`Entry`]: `Cached::private(entry).respond(&conditional)` writes
//! its JSON with an `ETag` and a `Cache-Control` made from its freshness
//! and windows, and a `304` when the client's copy matches. `Problem` gives
//! errors as RFC 9457 problem details, and `#[idempotent]` writes get an
//! `Idempotency-Key` extractor and responses for their refusals and
//! replays. The mapping: the `herdcache::http` module page.
//!
//! ## Stats and names
//!
//! `f_cache().stats()` is a [`Stats`] snapshot; [`stats()`] lists every
//! function called so far, sorted by name, and [`stats_table()`] renders
//! them as a table. A function's name is its `name = ".."` attribute, else
//! its path: `my_crate::users::get_user`, or
//! `my_crate::users::UserRepo::list` for a method that takes `self` or
//! mentions `Self` (one entry per instantiation of a generic impl,
//! `Repo<u8>` and `Repo<u16>` apart; an associated function with neither is
//! named like a free function). Prometheus names (the `metrics` feature):
//! [`Stats`].
//!
//! ## Tracing
//!
//! Everything herdcache traces has the target `herdcache`, and no event or
//! span ever carries a key (keys may be personal data). Hits are not traced
//! (they must stay cheap).
//!
//! | level | what |
//! |---|---|
//! | `debug` | a span per load (`herdcache.load`, with its `kind`: `Foreground`, `Detached` for a load a deadline left running, `Explicit` for `_refresh`) or background refresh (`herdcache.refresh`), with `function`, `outcome` (`value`, `error`, `none`, `fail_safe`, `…, cached`), `duration_us`, `waiters`; an event when each ends (`herdcache: load ended`, `herdcache: refresh ended`), so a subscriber that does not report span closes sees it too; a failed load about to be retried (`retry`), with `failed` and `wait_us` |
//! | `error` | (feature `http`) a cached value serde_json cannot write (`Cached` answers `500`) |
//! | `info` | fail-safe answered with the last good value; the origin's circuit breaker moved to half-open or closed |
//! | `warn` | a background refresh failed; the origin's circuit breaker opened; a `distributed` function runs without a Redis tier (once per function); `HERDCACHE_REDIS_URL` does not parse (the process runs memory-only); the Redis tier is unreachable, keeps invalidations for replay, or overflowed; an `#[idempotent]` function keeps its records per process for want of a Redis tier, or refuses for want of one (`fleet = true`), once per function; an idempotent run whose lease was taken over could not store its outcome (fenced), or Redis never took it |
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
//!   they take `self` or mention `Self`. An associated function with
//!   neither cannot see its impl and shares one cache across
//!   instantiations: give it a `&self`, or key on the type.
//! - Only `async fn`s are cached.
//! - In a trait impl, `#[cached]` needs [`cached_impl`] on the impl.
//!   Without it you get one error at the method naming it (for a native
//!   trait impl the attribute reads the impl's header from the source
//!   file). Where it cannot tell for sure (no file to read, an impl inside
//!   a macro's body, two `fn` of that name on one line), rustc instead
//!   reports each helper as "not a member of trait".
//! - Two trait impls on one type that both cache a method of the same name
//!   write helpers of the same name: rename one, or cache an inherent
//!   method.
#![warn(missing_docs)]
#![forbid(unsafe_code)]

pub use herdcache_macros::{cached, cached_impl, idempotent, invalidate};
pub use herdcache_runtime::requirements;
pub use herdcache_runtime::{
    expire_tag, expire_tags, flush_fleet, flush_fleet_on_drop, idempotency_stats, invalidate_all,
    invalidate_tag, invalidate_tags, previous, stats, stats_table, testing, BreakerState,
    CacheHandle, CircuitBreaker, Entry, Error, FlushOnDrop, IdempotencyError, IdempotencyStats,
    Idempotent, Memory, Previous, Retry, Served, SharedError, Stats, TagSource,
};

#[cfg(feature = "http")]
pub use herdcache_runtime::http;
#[cfg(feature = "redis")]
pub use herdcache_runtime::{fleet, InstallError, RedisTier, Runtime, RuntimeBuilder};

/// What generated code calls. Not a public API: it may change in any release.
#[doc(hidden)]
pub mod __private {
    pub use core::time::Duration;
    pub use herdcache_runtime::__private::*;
}
