//! Isolating tests from each other's cached values.
//!
//! Cached functions keep one cache per process, which is what a service
//! wants and what tests do not: `cargo test` runs the tests of a crate as
//! threads of one process, so two `#[tokio::test]`s that each build their
//! own repository would see each other's values, loads and stats.
//!
//! [`isolate`] runs a future in a scope of its own: every cached function it
//! calls (while it is polled) uses caches made for that scope, fresh, with
//! their own stats; [`crate::stats()`], `<fn>_cache()` and
//! [`crate::invalidate_all()`] see only the scope's caches. When the future
//! is dropped, its caches are emptied and their storage freed.
//!
//! ```
//! # use herdcache_runtime::testing;
//! # let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
//! # rt.block_on(async {
//! // #[tokio::test]
//! // async fn lists_the_users_of_an_empty_database() {
//! testing::isolate(async {
//!     // build the repo, call its cached methods, assert on stats…
//! })
//! .await;
//! // }
//! # });
//! ```
//!
//! The scope follows the future, not the thread: a task it spawns with
//! `tokio::spawn` is outside it unless wrapped in `isolate` too. Code that
//! never calls `isolate` pays one relaxed atomic load per call for this.
//!
//! # Time travel
//!
//! [`isolate_with_clock`] is [`isolate`] with a [`ManualClock`]: every cache
//! made in the scope reads it instead of the system clock, so a test of ttl,
//! swr or fail-safe moves time with [`ManualClock::advance`] instead of
//! sleeping. The clock decides every horizon herdcache sets: ttl and its
//! jitter, a value's own ttl, `swr`, `fail_safe` and its throttle,
//! `negative_ttl`, `early_refresh`.
//!
//! ```
//! # use std::time::Duration;
//! # use herdcache_runtime::testing::{self, ManualClock};
//! # let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
//! # rt.block_on(async {
//! let clock = ManualClock::new();
//! testing::isolate_with_clock(clock.clone(), async {
//!     // get_user(1).await;                 a load
//!     clock.advance(Duration::from_secs(61));
//!     // get_user(1).await;                 past a 60 s ttl: a load again
//! })
//! .await;
//! # });
//! ```
//!
//! What the clock does not move: `timeout` and `hard_timeout`, which wait
//! on tokio's timer (pause it with `#[tokio::test(start_paused = true)]`);
//! the memory tier's own clean-up (moka frees an entry on real time; until
//! it does, the manual clock alone decides whether the entry is served);
//! expiry inside Redis; and a cached function that a background refresh
//! or a detached load calls from its body (that task is outside the scope,
//! as any task the test spawns: the refreshed function's own cache keeps
//! the clock). A background refresh still runs on a task: after
//! the call that started it, wait for it to finish by polling
//! `stats().loads` or the value. (`stats().refreshes` counts refreshes
//! started, so it does not tell you one finished.)

pub use crate::clock::ManualClock;
pub use crate::isolation::{isolate, isolate_with_clock, Isolated};
pub use crate::tags::remembered_tags;

/// Reads the engine's coarse clock, as a quick-tier hit and a hit with
/// policies do to know "now": one relaxed load of a value a ticker thread
/// stores every millisecond (started by the first call). For benchmarks
/// that compare its cost with `Instant::now`.
#[inline]
pub fn coarse_clock_nanos() -> u64 {
    crate::clock::start_coarse_clock();
    crate::clock::Clock::System.coarse_now_nanos()
}
