//! The one clock the engine reads. Tests drive a [`ManualClock`] instead of
//! sleeping, so ttl and jitter behaviour is checked without timing races.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

/// Nanoseconds since the process's clock epoch: the engine's compact
/// timestamps (an entry carries several; `Instant` is 16 bytes, this is 8).
pub(crate) type Nanos = u64;

/// The epoch of [`Nanos`]: the first time anything asks.
fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

/// `instant` as [`Nanos`].
fn nanos_since_epoch(instant: Instant) -> Nanos {
    u64::try_from(instant.saturating_duration_since(epoch()).as_nanos()).unwrap_or(u64::MAX)
}

/// A duration as [`Nanos`], saturating.
pub(crate) fn nanos(duration: Duration) -> Nanos {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

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

    /// The current instant as [`Nanos`].
    #[inline]
    pub(crate) fn now_nanos(&self) -> Nanos {
        nanos_since_epoch(self.now())
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
        // The epoch first, so that the clock's instants are never before it.
        epoch();
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
