//! The one clock the engine reads. Tests drive a [`ManualClock`] instead of
//! sleeping, so ttl and jitter behaviour is checked without timing races.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Where the engine gets "now" from.
///
/// `System` reads [`Instant::now`]. `Manual` reads a clock that only moves
/// when a test calls [`ManualClock::advance`].
#[derive(Clone, Debug, Default)]
pub enum Clock {
    /// The monotonic system clock.
    #[default]
    System,
    /// A clock that tests move by hand.
    Manual(Arc<ManualClock>),
}

impl Clock {
    /// The current instant.
    #[inline]
    pub fn now(&self) -> Instant {
        match self {
            Clock::System => Instant::now(),
            Clock::Manual(clock) => clock.now(),
        }
    }
}

/// A clock that starts at the moment it is made and moves only when told.
#[derive(Debug)]
pub struct ManualClock {
    origin: Instant,
    elapsed_nanos: AtomicU64,
}

impl ManualClock {
    /// A clock standing at the current instant.
    pub fn new() -> Arc<Self> {
        Arc::new(ManualClock {
            origin: Instant::now(),
            elapsed_nanos: AtomicU64::new(0),
        })
    }

    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: Duration) {
        let nanos = u64::try_from(by.as_nanos()).unwrap_or(u64::MAX);
        self.elapsed_nanos.fetch_add(nanos, Ordering::SeqCst);
    }

    /// The instant the clock shows.
    pub fn now(&self) -> Instant {
        self.origin + Duration::from_nanos(self.elapsed_nanos.load(Ordering::SeqCst))
    }
}
