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

pub use crate::isolation::{isolate, Isolated};
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
