//! [`Retry`]: how often a failed load is tried again, and how long it waits
//! in between (exponential backoff with full jitter).
//!
//! Written here rather than taken from a crate: the retries run inside the
//! load's single flight (only the leader retries, so callers that joined it
//! never multiply the attempts), they stop before the function's
//! `hard_timeout` would pass, and they are counted in the cache's stats;
//! the retry crates available each own the loop, and disagree on jitter.

use std::time::Duration;

/// The default wait before the first retry, before jitter.
const DEFAULT_BASE: Duration = Duration::from_millis(100);

/// The default longest wait between two attempts, before jitter.
const DEFAULT_CAP: Duration = Duration::from_secs(2);

/// How a failed load is retried: up to `attempts` calls in all, the
/// `n`th retry after a wait drawn uniformly from
/// `[0, min(cap, base · 2ⁿ⁻¹))` ("full jitter": retries of many keys or
/// many instances spread out instead of arriving in lockstep).
///
/// ```
/// use std::time::Duration;
/// use herdcache_runtime::Retry;
///
/// let retry = Retry::attempts(4).base(Duration::from_millis(50)).cap(Duration::from_secs(1));
/// assert_eq!(retry.ceiling(1), Duration::from_millis(50));
/// assert_eq!(retry.ceiling(3), Duration::from_millis(200));
/// assert!(retry.backoff(3) < Duration::from_millis(200));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Retry {
    attempts: u32,
    base: Duration,
    cap: Duration,
}

impl Retry {
    /// Up to `attempts` calls of the loader in all (the first one
    /// included; at least 1), with the default waits: base 100 ms, cap 2 s.
    pub fn attempts(attempts: u32) -> Self {
        Retry {
            attempts: attempts.max(1),
            base: DEFAULT_BASE,
            cap: DEFAULT_CAP,
        }
    }

    /// Sets the wait before the first retry, before jitter.
    pub fn base(mut self, base: Duration) -> Self {
        self.base = base;
        self
    }

    /// Sets the longest wait between two attempts, before jitter.
    pub fn cap(mut self, cap: Duration) -> Self {
        self.cap = cap;
        self
    }

    /// The calls of the loader a load makes at most.
    pub fn max_attempts(&self) -> u32 {
        self.attempts
    }

    /// The bound of the wait before retry `n` (1 for the first retry):
    /// `min(cap, base · 2ⁿ⁻¹)`, the cap never below the base.
    pub fn ceiling(&self, n: u32) -> Duration {
        // A base above the default cap raises the cap: the first window
        // is the base as written.
        let cap = self.cap.max(self.base);
        let doublings = n.saturating_sub(1).min(31);
        self.base
            .checked_mul(1u32 << doublings)
            .map_or(cap, |ceiling| ceiling.min(cap))
    }

    /// The wait before retry `n`, drawn uniformly below
    /// [`ceiling(n)`](Self::ceiling).
    pub fn backoff(&self, n: u32) -> Duration {
        self.ceiling(n).mul_f64(crate::expiry::random_unit())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ceilings_double_up_to_the_cap() {
        let retry = Retry::attempts(10);
        let ceilings: Vec<u64> = (1..=7)
            .map(|n| retry.ceiling(n).as_millis() as u64)
            .collect();
        assert_eq!(ceilings, [100, 200, 400, 800, 1600, 2000, 2000]);
        // No overflow however far it goes.
        assert_eq!(retry.ceiling(u32::MAX), Duration::from_secs(2));
    }

    #[test]
    fn draws_spread_over_the_whole_window() {
        let retry = Retry::attempts(3);
        let draws: Vec<Duration> = (0..1_000).map(|_| retry.backoff(2)).collect();
        assert!(draws.iter().all(|draw| *draw < Duration::from_millis(200)));
        // Full jitter: draws land in the bottom and the top tenth alike.
        assert!(draws.iter().any(|draw| *draw < Duration::from_millis(20)));
        assert!(draws.iter().any(|draw| *draw > Duration::from_millis(180)));
    }

    #[test]
    fn a_base_above_the_default_cap_is_the_first_window() {
        let retry = Retry::attempts(3).base(Duration::from_secs(5));
        assert_eq!(retry.ceiling(1), Duration::from_secs(5));
        assert_eq!(retry.ceiling(2), Duration::from_secs(5));
    }

    #[test]
    fn at_least_one_attempt() {
        assert_eq!(Retry::attempts(0).max_attempts(), 1);
    }
}
