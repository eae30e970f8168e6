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
//! is dropped, its caches are emptied.
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

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};

/// Whether any future was ever isolated: until then no call looks further.
/// Read on every call: alone on its cache line, so no write nearby makes
/// the cores that read it miss.
static USED: Aligned = Aligned(AtomicBool::new(false));

#[repr(align(128))]
struct Aligned(AtomicBool);
static NEXT_ISOLATION: AtomicU64 = AtomicU64::new(1);

thread_local! {
    /// The scope of the isolated future being polled on this thread; 0: none.
    static CURRENT: Cell<u64> = const { Cell::new(0) };
}

/// The isolation of the calling code: 0 outside [`isolate`].
#[inline]
pub(crate) fn current_isolation() -> u64 {
    if USED.0.load(Ordering::Relaxed) {
        CURRENT.with(Cell::get)
    } else {
        0
    }
}

/// Runs `future` with caches of its own: see the [module docs](self).
pub fn isolate<F: Future>(future: F) -> Isolated<F> {
    USED.0.store(true, Ordering::Relaxed);
    Isolated {
        isolation: NEXT_ISOLATION.fetch_add(1, Ordering::Relaxed),
        future: Box::pin(future),
    }
}

/// The future [`isolate`] returns.
#[must_use = "futures do nothing unless awaited"]
pub struct Isolated<F> {
    isolation: u64,
    future: Pin<Box<F>>,
}

impl<F: Future> Future for Isolated<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        // Restored by a guard, so that a panic in the future does not leave
        // the thread inside the scope.
        struct Restore(u64);
        impl Drop for Restore {
            fn drop(&mut self) {
                CURRENT.with(|current| current.set(self.0));
            }
        }
        let _restore = Restore(CURRENT.with(|current| current.replace(self.isolation)));
        self.future.as_mut().poll(cx)
    }
}

impl<F> Drop for Isolated<F> {
    fn drop(&mut self) {
        crate::registry::drop_isolation(self.isolation);
    }
}

/// Reads the engine's coarse clock, as a quick-tier hit and a hit with
/// policies do to know "now": one relaxed load of a value a ticker thread
/// stores every millisecond (started by the first call). For benchmarks
/// that compare its cost with `Instant::now`.
#[inline]
pub fn coarse_clock_nanos() -> u64 {
    crate::clock::start_coarse_clock();
    crate::clock::Clock::System.coarse_now_nanos()
}
