//! The one clock the engine reads. Tests drive a [`ManualClock`] instead of
//! sleeping, so ttl and jitter behaviour is checked without timing races.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
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
pub(crate) fn nanos_since_epoch(instant: Instant) -> Nanos {
    u64::try_from(instant.saturating_duration_since(epoch()).as_nanos()).unwrap_or(u64::MAX)
}

/// A duration as [`Nanos`], saturating.
pub(crate) fn nanos(duration: Duration) -> Nanos {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

/// How often the coarse clock ticks.
const TICK: Duration = Duration::from_millis(1);

/// How long the coarse clock ticks before it parks, unless a read wakes it.
const QUIET: Duration = Duration::from_secs(1);

/// The coarse clock: [`Nanos`] stored by a ticker thread every [`TICK`].
/// Reading it is one relaxed load (a few instructions) where `Instant::now`
/// costs ~25 ns on these VMs, and a hit with swr, fail-safe or early refresh
/// must know "now" on every call. Horizons are seconds to minutes long; a
/// millisecond (more when the ticker is descheduled) of lag does not matter
/// to them, and verbs that end a value now do not depend on it (they set
/// its horizons to the start of time).
///
/// [`PARKED`] (0) while the ticker sleeps: a process that stopped reading
/// it wakes no thread 1 000 times a second. Every [`QUIET`] second the
/// ticker parks; the first read that finds it parked reads `Instant::now()`
/// (never a stale value) and wakes it, and reads go on through
/// `Instant::now()` until its first tick (tens of microseconds). So a busy
/// process pays one wake-up a second, an idle one none, and no hit ever
/// starts a thread.
static COARSE_NOW: AtomicU64 = AtomicU64::new(PARKED);

/// [`COARSE_NOW`] while the ticker is parked.
const PARKED: Nanos = 0;

/// The ticker's thread, to wake it; set once it started.
static TICKER: OnceLock<std::thread::Thread> = OnceLock::new();

/// Whether a read asked the parked ticker to wake (one unpark per park).
static WAKING: AtomicBool = AtomicBool::new(false);

#[inline]
fn coarse_now() -> Nanos {
    match COARSE_NOW.load(Ordering::Relaxed) {
        PARKED => wake_coarse_clock(),
        now => now,
    }
}

/// A read found the ticker parked: "now" from the precise clock, and the
/// ticker woken (once) so that the next reads are cheap again.
#[cold]
#[inline(never)]
fn wake_coarse_clock() -> Nanos {
    if let Some(ticker) = TICKER.get() {
        if !WAKING.swap(true, Ordering::AcqRel) {
            ticker.unpark();
        }
    }
    // Never 0 (PARKED) itself.
    nanos_since_epoch(Instant::now()).max(1)
}

/// Starts the coarse clock's ticker, once. Called when a cache that reads
/// the coarse clock is made, so that no hit ever pays for (or allocates in)
/// starting a thread.
pub(crate) fn start_coarse_clock() {
    static STARTED: OnceLock<()> = OnceLock::new();
    STARTED.get_or_init(|| {
        let spawned = std::thread::Builder::new()
            .name("herdcache-clock".into())
            .spawn(tick_forever);
        // Without a thread of its own the clock would stop: fail loudly.
        let handle = spawned.expect("herdcache: spawning the coarse clock's thread");
        let _ = TICKER.set(handle.thread().clone());
    });
}

/// The ticker: ticks for [`QUIET`], parks until a read wakes it, again.
fn tick_forever() {
    let ticks_before_parking = (QUIET.as_nanos() / TICK.as_nanos()).max(1);
    loop {
        COARSE_NOW.store(nanos_since_epoch(Instant::now()).max(1), Ordering::Relaxed);
        for _ in 0..ticks_before_parking {
            std::thread::sleep(TICK);
            COARSE_NOW.store(nanos_since_epoch(Instant::now()).max(1), Ordering::Relaxed);
        }
        WAKING.store(false, Ordering::Release);
        COARSE_NOW.store(PARKED, Ordering::Release);
        // A read that found it parked before the flag fell set the flag
        // and unparked: the token makes this park return at once.
        std::thread::park();
    }
}

/// Where the engine gets "now" from.
///
/// `System` reads [`Instant::now`] (the engine's horizons use a coarse,
/// millisecond copy of it). `Manual` reads a clock that only moves when a
/// test calls [`ManualClock::advance`].
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

    /// The current instant as [`Nanos`], to the coarse clock's tick on the
    /// system clock (it lags by about a tick: a value looks fresh that much
    /// longer). For the hit path of functions with policies, whose caches
    /// start the ticker thread when they are made.
    #[inline]
    pub(crate) fn coarse_now_nanos(&self) -> Nanos {
        match self {
            Clock::System => coarse_now(),
            Clock::Manual(clock) => nanos_since_epoch(clock.now())
                .saturating_sub(clock.coarse_lag.load(Ordering::SeqCst)),
        }
    }
}

/// A clock that starts at the moment it is made and moves only when told.
#[derive(Debug)]
pub struct ManualClock {
    origin: Instant,
    elapsed_nanos: AtomicU64,
    /// How far the coarse reading (hits with policies) lags the precise one.
    coarse_lag: AtomicU64,
}

impl ManualClock {
    /// A clock standing at the current instant.
    pub fn new() -> Arc<Self> {
        // The epoch first, so that the clock's instants are never before it.
        epoch();
        Arc::new(ManualClock {
            origin: Instant::now(),
            elapsed_nanos: AtomicU64::new(0),
            coarse_lag: AtomicU64::new(0),
        })
    }

    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: Duration) {
        let nanos = u64::try_from(by.as_nanos()).unwrap_or(u64::MAX);
        self.elapsed_nanos.fetch_add(nanos, Ordering::SeqCst);
    }

    /// Makes the clock's coarse reading lag its precise one by `by`, as the
    /// system's coarse clock does (by up to a tick, more when its thread is
    /// descheduled): for testing that a verb is seen by the next hit
    /// whatever that lag.
    pub fn lag_coarse(&self, by: Duration) {
        self.coarse_lag.store(nanos(by), Ordering::SeqCst);
    }

    /// The instant the clock shows.
    pub fn now(&self) -> Instant {
        self.origin + Duration::from_nanos(self.elapsed_nanos.load(Ordering::SeqCst))
    }
}
