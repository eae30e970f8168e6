//! Isolation scopes: which caches a call sees. A scope follows a future
//! ([`isolate`]), not a thread; the registry and the tag registry read the
//! caller's scope, and the registry forgets a scope's caches once its
//! future is dropped. Public as `testing::isolate`.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use crate::clock::ManualClock;

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

/// Runs `future` with caches of its own: see the [`testing`](crate::testing)
/// module.
pub fn isolate<F: Future>(future: F) -> Isolated<F> {
    USED.0.store(true, Ordering::Relaxed);
    Isolated {
        isolation: NEXT_ISOLATION.fetch_add(1, Ordering::Relaxed),
        future: Box::pin(future),
    }
}

/// [`isolate`], with every cache the future makes reading `clock` instead
/// of the system's: see [`testing`](crate::testing#time-travel).
pub fn isolate_with_clock<F: Future>(clock: Arc<ManualClock>, future: F) -> Isolated<F> {
    let isolated = isolate(future);
    CLOCKS
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .insert(isolated.isolation, clock);
    isolated
}

/// The clocks of the isolations [`isolate_with_clock`] made, until they end.
static CLOCKS: Mutex<BTreeMap<u64, Arc<ManualClock>>> = Mutex::new(BTreeMap::new());

/// The clock of `isolation`, if it was given one; read when a cache is made.
pub(crate) fn clock_of(isolation: u64) -> Option<Arc<ManualClock>> {
    if isolation == 0 {
        return None;
    }
    CLOCKS
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .get(&isolation)
        .cloned()
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
        // The registry empties its caches at its next use (it depends on
        // this module; this one does not call it).
        CLOCKS
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&self.isolation);
        ENDED
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(self.isolation);
        ANY_ENDED.store(true, Ordering::Release);
    }
}

/// Isolations that ended, for the registry to forget.
static ENDED: Mutex<Vec<u64>> = Mutex::new(Vec::new());
static ANY_ENDED: AtomicBool = AtomicBool::new(false);

/// The isolations that ended since the last call.
pub(crate) fn take_ended() -> Vec<u64> {
    if !ANY_ENDED.swap(false, Ordering::AcqRel) {
        return Vec::new();
    }
    std::mem::take(&mut *ENDED.lock().unwrap_or_else(PoisonError::into_inner))
}
