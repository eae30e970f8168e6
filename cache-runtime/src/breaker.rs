//! The origin's circuit breaker: [`CircuitBreaker`] (its settings),
//! [`BreakerState`], and the state machine a function's loads go through.
//!
//! Written here rather than taken from a crate: it reads the cache's clock
//! (so tests drive it by hand), it sits inside the load's single flight and
//! its retries, and it admits exactly one probe at a time across every key
//! of the function when half-open, where the breaker crates available admit
//! every call that arrives once the break is over.

use std::sync::Mutex;
use std::time::Duration;

use crate::clock::{nanos, Nanos};

/// The settings of a function's origin circuit breaker
/// (`#[cached(circuit_breaker = true)]`, or an expression of this type).
///
/// Closed, it lets every load through and watches the share of failures
/// over a rolling `window`; once at least `min_calls` loads ended in it and
/// `failure_ratio` of them failed, it opens. Open, it sends no load to the
/// origin: a load fails at once with
/// [`Error::OriginUnavailable`](crate::Error::OriginUnavailable), which
/// fail-safe answers like any failure. After `break_for` it is half-open:
/// one load at a time (across all keys) goes through as a probe. A failed
/// probe, or one still running after `probe_timeout`, opens it again for
/// twice the last break, up to `max_break`; `probes` successful probes in
/// a row close it. A call that hangs while the breaker is closed is not
/// counted until it ends: bound the origin's calls with their own
/// timeouts.
///
/// ```
/// use std::time::Duration;
/// use herdcache_runtime::CircuitBreaker;
///
/// let breaker = CircuitBreaker::new()
///     .failure_ratio(0.25)
///     .min_calls(20)
///     .window(Duration::from_secs(10))
///     .break_for(Duration::from_secs(2));
/// # let _ = breaker;
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CircuitBreaker {
    failure_ratio: f64,
    min_calls: u32,
    window: Duration,
    break_for: Duration,
    max_break: Duration,
    probes: u32,
    probe_timeout: Duration,
}

impl Default for CircuitBreaker {
    fn default() -> Self {
        Self::new()
    }
}

impl CircuitBreaker {
    /// The defaults: opens when half of at least 10 loads in the last 30 s
    /// failed; breaks for 5 s, doubling up to 60 s; closes after 3
    /// successful probes.
    pub const fn new() -> Self {
        CircuitBreaker {
            failure_ratio: 0.5,
            min_calls: 10,
            window: Duration::from_secs(30),
            break_for: Duration::from_secs(5),
            max_break: Duration::from_secs(60),
            probes: 3,
            probe_timeout: Duration::from_secs(30),
        }
    }

    /// The share of failed loads (in `0.0..=1.0`) that opens the breaker.
    ///
    /// # Panics
    /// If `ratio` is outside `0.0..=1.0`.
    pub fn failure_ratio(mut self, ratio: f64) -> Self {
        assert!(
            (0.0..=1.0).contains(&ratio),
            "herdcache: a failure ratio is between 0.0 and 1.0, not {ratio}"
        );
        self.failure_ratio = ratio;
        self
    }

    /// The loads that must have ended within the window before the ratio
    /// counts (at least 1).
    pub fn min_calls(mut self, calls: u32) -> Self {
        self.min_calls = calls.max(1);
        self
    }

    /// How far back the failure ratio looks (kept in 10 buckets).
    pub fn window(mut self, window: Duration) -> Self {
        self.window = window.max(Duration::from_millis(10));
        self
    }

    /// How long the breaker stays open the first time.
    pub fn break_for(mut self, break_for: Duration) -> Self {
        self.break_for = break_for;
        self
    }

    /// The longest break, however many probes failed.
    pub fn max_break(mut self, max_break: Duration) -> Self {
        self.max_break = max_break;
        self
    }

    /// How long a probe may run before it counts as failed (default 30 s):
    /// a probe whose call hangs must not keep the breaker half-open, with
    /// every other load refused, for ever.
    pub fn probe_timeout(mut self, timeout: Duration) -> Self {
        self.probe_timeout = timeout;
        self
    }

    /// The successful probes in a row that close the breaker (at least 1).
    pub fn probes(mut self, probes: u32) -> Self {
        self.probes = probes.max(1);
        self
    }
}

/// Where a function's origin circuit breaker stands, in
/// [`Stats::breaker`](crate::Stats::breaker).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum BreakerState {
    /// The function has no circuit breaker.
    #[default]
    Off,
    /// Loads go to the origin.
    Closed,
    /// Loads fail at once with `Error::OriginUnavailable`.
    Open,
    /// One probe at a time goes to the origin.
    HalfOpen,
}

impl BreakerState {
    /// The state as a gauge reads it: 0 off or closed, 1 open, 2 half-open.
    pub fn as_gauge(self) -> f64 {
        match self {
            BreakerState::Off | BreakerState::Closed => 0.0,
            BreakerState::Open => 1.0,
            BreakerState::HalfOpen => 2.0,
        }
    }

    /// The state's name, as tracing and the stats table show it.
    pub fn name(self) -> &'static str {
        match self {
            BreakerState::Off => "off",
            BreakerState::Closed => "closed",
            BreakerState::Open => "open",
            BreakerState::HalfOpen => "half-open",
        }
    }
}

/// What the breaker lets a load do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Admit {
    /// Call the origin (closed).
    Call,
    /// Call the origin as the one probe (half-open): its number, so that
    /// a probe given up on cannot judge the one after it.
    Probe(u64),
    /// Do not call the origin (open, or a probe already runs).
    Refuse,
}

/// How a call the breaker admitted ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    Success,
    Failure,
    /// The call was dropped before it ended: says nothing of the origin.
    Cancelled,
}

/// The buckets of the rolling window.
const BUCKETS: u64 = 10;

#[derive(Clone, Copy, Debug, Default)]
struct Bucket {
    /// Which bucket-wide slice of time it counts (`now / width`).
    slice: u64,
    calls: u32,
    failures: u32,
}

#[derive(Debug)]
enum State {
    Closed {
        buckets: [Bucket; BUCKETS as usize],
    },
    Open {
        until: Nanos,
        last_break: Duration,
    },
    HalfOpen {
        /// The probe running, its number and when it began.
        probing: Option<(u64, Nanos)>,
        successes: u32,
        last_break: Duration,
    },
}

impl State {
    fn closed() -> Self {
        State::Closed {
            buckets: [Bucket::default(); BUCKETS as usize],
        }
    }

    fn public(&self) -> BreakerState {
        match self {
            State::Closed { .. } => BreakerState::Closed,
            State::Open { .. } => BreakerState::Open,
            State::HalfOpen { .. } => BreakerState::HalfOpen,
        }
    }
}

/// A function's breaker: its settings and its state, behind a lock taken
/// twice per call of the origin (never on a hit).
pub(crate) struct OriginBreaker {
    settings: CircuitBreaker,
    state: Mutex<(State, u64)>,
}

impl OriginBreaker {
    pub(crate) fn new(settings: CircuitBreaker) -> Self {
        OriginBreaker {
            settings,
            state: Mutex::new((State::closed(), 0)),
        }
    }

    /// The state, and the number of the last probe admitted.
    fn lock(&self) -> std::sync::MutexGuard<'_, (State, u64)> {
        // The state is consistent after every statement: a panic elsewhere
        // while it was held cannot leave it half-changed.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(crate) fn state(&self) -> BreakerState {
        self.lock().0.public()
    }

    /// Whether a call may go to the origin now; the state it moved to, if
    /// it moved (open → half-open).
    pub(crate) fn admit(&self, now: Nanos) -> (Admit, Option<BreakerState>) {
        let mut guard = self.lock();
        let (state, probes) = &mut *guard;
        match state {
            State::Closed { .. } => (Admit::Call, None),
            State::Open { until, .. } if now < *until => (Admit::Refuse, None),
            State::Open { last_break, .. } => {
                *probes += 1;
                *state = State::HalfOpen {
                    probing: Some((*probes, now)),
                    successes: 0,
                    last_break: *last_break,
                };
                (Admit::Probe(*probes), Some(BreakerState::HalfOpen))
            }
            // A probe that has not ended within `probe_timeout` (a hung
            // call) failed: the breaker opens again, and the probe's own
            // end, if it comes, judges nothing.
            State::HalfOpen {
                probing: Some((_, started)),
                last_break,
                ..
            } if now.saturating_sub(*started) >= nanos(self.settings.probe_timeout) => {
                let next = last_break.saturating_mul(2).min(self.settings.max_break);
                *state = State::Open {
                    until: now.saturating_add(nanos(next)),
                    last_break: next,
                };
                (Admit::Refuse, Some(BreakerState::Open))
            }
            State::HalfOpen {
                probing: Some(_), ..
            } => (Admit::Refuse, None),
            State::HalfOpen { probing, .. } => {
                *probes += 1;
                *probing = Some((*probes, now));
                (Admit::Probe(*probes), None)
            }
        }
    }

    /// Records how an admitted call ended; the state it moved to, if it moved.
    pub(crate) fn ended(&self, admit: Admit, now: Nanos, verdict: Verdict) -> Option<BreakerState> {
        let settings = &self.settings;
        let mut guard = self.lock();
        let state = &mut guard.0;
        match (admit, &mut *state) {
            (Admit::Call, State::Closed { buckets }) => {
                if verdict == Verdict::Cancelled {
                    return None;
                }
                let width = (nanos(settings.window) / BUCKETS).max(1);
                let slice = now / width;
                let bucket = &mut buckets[(slice % BUCKETS) as usize];
                if bucket.slice != slice {
                    *bucket = Bucket {
                        slice,
                        ..Bucket::default()
                    };
                }
                bucket.calls += 1;
                bucket.failures += u32::from(verdict == Verdict::Failure);
                let (calls, failures) = buckets
                    .iter()
                    .filter(|bucket| bucket.slice + BUCKETS > slice)
                    .fold((0u64, 0u64), |(calls, failures), bucket| {
                        (
                            calls + u64::from(bucket.calls),
                            failures + u64::from(bucket.failures),
                        )
                    });
                let ratio = failures as f64 / calls as f64;
                if verdict == Verdict::Failure
                    && calls >= u64::from(settings.min_calls)
                    && ratio >= settings.failure_ratio
                {
                    *state = State::Open {
                        until: now.saturating_add(nanos(settings.break_for)),
                        last_break: settings.break_for,
                    };
                    return Some(BreakerState::Open);
                }
                None
            }
            (
                Admit::Probe(number),
                State::HalfOpen {
                    probing,
                    successes,
                    last_break,
                },
            ) => {
                // Not the probe running now (one given up on): nothing to judge.
                if probing.map(|(running, _)| running) != Some(number) {
                    return None;
                }
                *probing = None;
                match verdict {
                    Verdict::Cancelled => None,
                    Verdict::Success => {
                        *successes += 1;
                        if *successes >= settings.probes {
                            *state = State::closed();
                            return Some(BreakerState::Closed);
                        }
                        None
                    }
                    Verdict::Failure => {
                        let next = last_break.saturating_mul(2).min(settings.max_break);
                        *state = State::Open {
                            until: now.saturating_add(nanos(next)),
                            last_break: next,
                        };
                        Some(BreakerState::Open)
                    }
                }
            }
            // A call admitted in a state the breaker has left since (a
            // load still running when it opened): its end says nothing new.
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Nanos = 1_000_000;

    fn breaker() -> OriginBreaker {
        OriginBreaker::new(
            CircuitBreaker::new()
                .min_calls(4)
                .failure_ratio(0.5)
                .window(Duration::from_secs(10))
                .break_for(Duration::from_secs(1))
                .max_break(Duration::from_secs(3))
                .probes(2),
        )
    }

    fn call(breaker: &OriginBreaker, now: Nanos, verdict: Verdict) -> Option<BreakerState> {
        let (admit, _) = breaker.admit(now);
        assert_eq!(admit, Admit::Call);
        breaker.ended(admit, now, verdict)
    }

    #[test]
    fn opens_at_the_ratio_once_enough_calls_ended() {
        let breaker = breaker();
        // Three failures: below min_calls.
        for _ in 0..3 {
            assert_eq!(call(&breaker, 0, Verdict::Failure), None);
        }
        assert_eq!(
            call(&breaker, 0, Verdict::Failure),
            Some(BreakerState::Open)
        );
        assert_eq!(breaker.admit(999 * MS).0, Admit::Refuse);
    }

    #[test]
    fn successes_keep_it_closed_and_old_failures_leave_the_window() {
        let breaker = breaker();
        for _ in 0..3 {
            call(&breaker, 0, Verdict::Failure);
        }
        for _ in 0..4 {
            call(&breaker, 0, Verdict::Success);
        }
        // A fourth failure now would make 4 of 8, at the ratio; 11 s later
        // the first seven have left the window, and one call is too few.
        assert_eq!(call(&breaker, 11_000 * MS, Verdict::Failure), None);
        assert_eq!(breaker.state(), BreakerState::Closed);
    }

    #[test]
    fn half_open_admits_one_probe_and_closes_after_its_successes() {
        let breaker = breaker();
        for _ in 0..4 {
            call(&breaker, 0, Verdict::Failure);
        }
        let now = 1_000 * MS;
        let (probe, change) = breaker.admit(now);
        assert!(matches!(probe, Admit::Probe(_)));
        assert_eq!(change, Some(BreakerState::HalfOpen));
        assert_eq!(breaker.admit(now).0, Admit::Refuse);
        assert_eq!(breaker.ended(probe, now, Verdict::Success), None);
        let (probe, _) = breaker.admit(now);
        assert!(matches!(probe, Admit::Probe(_)));
        assert_eq!(
            breaker.ended(probe, now, Verdict::Success),
            Some(BreakerState::Closed)
        );
        assert_eq!(breaker.admit(now).0, Admit::Call);
    }

    #[test]
    fn a_failed_probe_doubles_the_break_up_to_the_cap() {
        let breaker = breaker();
        for _ in 0..4 {
            call(&breaker, 0, Verdict::Failure);
        }
        let mut now = 1_000 * MS;
        for expected in [2_000, 3_000, 3_000] {
            let (probe, _) = breaker.admit(now);
            assert!(matches!(probe, Admit::Probe(_)));
            assert_eq!(
                breaker.ended(probe, now, Verdict::Failure),
                Some(BreakerState::Open)
            );
            assert_eq!(breaker.admit(now + (expected - 1) * MS).0, Admit::Refuse);
            now += expected * MS;
        }
        assert!(matches!(breaker.admit(now).0, Admit::Probe(_)));
    }

    #[test]
    fn a_cancelled_probe_frees_the_slot_without_a_verdict() {
        let breaker = breaker();
        for _ in 0..4 {
            call(&breaker, 0, Verdict::Failure);
        }
        let (probe, _) = breaker.admit(1_000 * MS);
        assert_eq!(breaker.ended(probe, 1_000 * MS, Verdict::Cancelled), None);
        assert_eq!(breaker.state(), BreakerState::HalfOpen);
        assert!(matches!(breaker.admit(1_000 * MS).0, Admit::Probe(_)));
    }

    #[test]
    fn a_hung_probe_fails_at_its_timeout_and_its_late_end_judges_nothing() {
        let breaker = OriginBreaker::new(
            CircuitBreaker::new()
                .min_calls(1)
                .break_for(Duration::from_secs(1))
                .probe_timeout(Duration::from_secs(10))
                .probes(1),
        );
        call(&breaker, 0, Verdict::Failure);
        let (hung, _) = breaker.admit(1_000 * MS);
        assert!(matches!(hung, Admit::Probe(_)));
        assert_eq!(breaker.admit(10_999 * MS).0, Admit::Refuse);
        // Ten seconds on: failed, open again for twice the break.
        assert_eq!(
            breaker.admit(11_000 * MS),
            (Admit::Refuse, Some(BreakerState::Open))
        );
        let (next, _) = breaker.admit(13_000 * MS);
        assert!(matches!(next, Admit::Probe(_)));
        // The hung call ends at last, in success: it is not the probe now.
        assert_eq!(breaker.ended(hung, 13_000 * MS, Verdict::Success), None);
        assert_eq!(breaker.state(), BreakerState::HalfOpen);
        assert_eq!(
            breaker.ended(next, 13_000 * MS, Verdict::Success),
            Some(BreakerState::Closed)
        );
    }
}
