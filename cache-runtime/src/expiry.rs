//! Entry life: how long a freshly loaded value stays fresh (the ttl, spread
//! by jitter so that keys written together do not all expire together), how
//! long it may then be served stale (`swr`) and kept as a fallback
//! (`fail_safe`), and the early-refresh draw.
//!
//! ```text
//!  written        fresh_until          stale_until         fail_safe_until
//!    |---- fresh ----|---- stale (swr) ----|---- fallback only ----|  gone
//! ```
//!
//! `stale_until = fresh_until + swr`; `fail_safe_until = stale_until +
//! fail_safe`. A fallback served for a failed load is fresh again for
//! `fail_safe_throttle`, never past `fail_safe_until`.

use std::cell::Cell;
use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::time::Duration;

use crate::clock::{nanos, Nanos};

/// The longest the memory tier keeps an entry: moka refuses more than 1 000
/// years, and "forever" settings (`fail_safe = "100000d"`) must not panic.
pub(crate) const MAX_LIFETIME: Duration = Duration::from_secs(100 * 365 * 86_400);

/// The freshness budget of one cached function.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ExpiryPolicy {
    ttl: Duration,
    jitter: f64,
    swr: Duration,
    fail_safe: Duration,
    fail_safe_throttle: Duration,
    early_refresh: f64,
}

/// The horizons of an entry written now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Horizons {
    pub(crate) fresh_until: Nanos,
    pub(crate) stale_until: Nanos,
    pub(crate) fail_safe_until: Nanos,
    /// From now to the last horizon: how long the memory tier keeps it.
    pub(crate) lifetime: Duration,
    /// When the value was loaded (an entry's age is read from it).
    pub(crate) loaded_at: Nanos,
}

impl ExpiryPolicy {
    /// A policy of `ttl` spread by `jitter` (a fraction in `0.0..=1.0`), with
    /// no swr, fail-safe or early refresh.
    ///
    /// # Panics
    /// If `ttl` is zero or `jitter` is outside `0.0..=1.0`; the `#[cached]`
    /// macro rejects both at compile time.
    pub fn new(ttl: Duration, jitter: f64) -> Self {
        assert!(!ttl.is_zero(), "ttl must be greater than zero");
        assert!(
            (0.0..=1.0).contains(&jitter),
            "jitter must be within 0.0..=1.0, got {jitter}"
        );
        ExpiryPolicy {
            ttl,
            jitter,
            swr: Duration::ZERO,
            fail_safe: Duration::ZERO,
            fail_safe_throttle: Duration::from_secs(5),
            early_refresh: 0.0,
        }
    }

    /// Serve a value stale for `swr` after its ttl while one refresh runs.
    pub fn swr(mut self, swr: Duration) -> Self {
        self.swr = swr;
        self
    }

    /// Keep a value `fail_safe` past its stale window as a fallback, and
    /// serve a fallback as fresh for `throttle` once it answered.
    pub fn fail_safe(mut self, fail_safe: Duration, throttle: Duration) -> Self {
        self.fail_safe = fail_safe;
        self.fail_safe_throttle = throttle;
        self
    }

    /// Probabilistic early refresh with XFetch's `beta` (0: off).
    ///
    /// # Panics
    /// If `beta` is negative or not finite.
    pub fn early_refresh(mut self, beta: f64) -> Self {
        assert!(
            beta.is_finite() && beta >= 0.0,
            "early_refresh must be >= 0"
        );
        self.early_refresh = beta;
        self
    }

    /// The configured ttl, before jitter.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// The configured jitter fraction.
    pub fn jitter(&self) -> f64 {
        self.jitter
    }

    /// The stale window.
    pub fn swr_window(&self) -> Duration {
        self.swr
    }

    /// The fail-safe window.
    pub fn fail_safe_window(&self) -> Duration {
        self.fail_safe
    }

    /// Whether a hit must read the clock: with swr, fail-safe or early
    /// refresh an entry outlives its freshness, or may be refreshed before.
    pub(crate) fn has_policies(&self) -> bool {
        !self.swr.is_zero() || !self.fail_safe.is_zero() || self.early_refresh > 0.0
    }

    /// The one lifetime the memory tier may give every entry (a global
    /// ttl, cheaper per read than per-entry expiry), if any.
    ///
    /// With policies the engine reads each entry's horizons on every hit, so
    /// the tier need only keep entries long enough: the longest life any
    /// entry can have. (Shorter lives, such as a throttled fallback's or a
    /// cached failure's, then linger unserved until that bound.) Without
    /// policies the tier's expiry *is* freshness, so every entry must live
    /// exactly its own ttl.
    pub(crate) fn same_lifetime(&self, varied: bool) -> Option<Duration> {
        if self.has_policies() {
            return Some(self.longest_lifetime());
        }
        (self.jitter == 0.0 && !varied).then_some(self.ttl.min(MAX_LIFETIME))
    }

    /// The longest life any entry can have: the longest ttl a draw gives,
    /// its stale window and its fail-safe window.
    pub(crate) fn longest_lifetime(&self) -> Duration {
        let longest_ttl = self
            .ttl
            .saturating_add(self.ttl.mul_f64(self.jitter.min(1.0)));
        longest_ttl
            .saturating_add(self.swr)
            .saturating_add(self.fail_safe)
            .min(MAX_LIFETIME)
    }

    /// The ttl for a draw `unit` in `[0, 1)`: `unit = 0` gives the shortest,
    /// `ttl * (1 - jitter)`, and the spread is uniform up to `ttl * (1 + jitter)`.
    pub fn ttl_for_draw(&self, unit: f64) -> Duration {
        let factor = 1.0 - self.jitter + 2.0 * self.jitter * unit.clamp(0.0, 1.0);
        // A jitter of 1.0 may draw zero; an entry must live at least a moment.
        Duration::try_from_secs_f64(self.ttl.as_secs_f64() * factor)
            .unwrap_or(Duration::MAX)
            .max(Duration::from_nanos(1))
    }

    /// Draws the ttl of one entry.
    pub fn draw_ttl(&self) -> Duration {
        if self.jitter == 0.0 {
            self.ttl
        } else {
            self.ttl_for_draw(random_unit())
        }
    }

    /// The horizons of a value written at `now`, fresh for `ttl` (the draw,
    /// or the value's own ttl capped by it).
    pub(crate) fn horizons(&self, now: Nanos, ttl: Duration) -> Horizons {
        let fresh_until = now.saturating_add(nanos(ttl));
        let stale_until = fresh_until.saturating_add(nanos(self.swr));
        let fail_safe_until = stale_until.saturating_add(nanos(self.fail_safe));
        Horizons {
            fresh_until,
            stale_until,
            fail_safe_until,
            lifetime: Duration::from_nanos(fail_safe_until - now),
            loaded_at: now,
        }
    }

    /// The horizons of a failure cached for `ttl`: no stale window, no
    /// fallback.
    pub(crate) fn negative_horizons(&self, now: Nanos, ttl: Duration) -> Horizons {
        let fresh_until = now.saturating_add(nanos(ttl).max(1));
        Horizons {
            fresh_until,
            stale_until: fresh_until,
            fail_safe_until: fresh_until,
            lifetime: Duration::from_nanos(fresh_until - now),
            loaded_at: now,
        }
    }

    /// The horizons of a fallback served at `now`: fresh for the throttle,
    /// never past its own fail-safe window, which does not move; loaded
    /// when it was (`loaded_at`).
    pub(crate) fn throttled_horizons(
        &self,
        now: Nanos,
        fail_safe_until: Nanos,
        loaded_at: Nanos,
    ) -> Horizons {
        let fresh_until = now
            .saturating_add(nanos(self.fail_safe_throttle))
            .min(fail_safe_until);
        Horizons {
            fresh_until,
            stale_until: fresh_until,
            fail_safe_until,
            lifetime: Duration::from_nanos(fail_safe_until.saturating_sub(now).max(1)),
            loaded_at,
        }
    }

    /// XFetch (Vattani, Chierichetti, Lowenstein, VLDB 2015): refresh a fresh
    /// value early when `now - load·β·ln(u) ≥ fresh_until`, `u` uniform in
    /// `(0, 1]`: likelier as expiry nears and the slower the load.
    #[inline]
    pub(crate) fn early_refresh_due(&self, now: Nanos, fresh_until: Nanos, load: Nanos) -> bool {
        if self.early_refresh <= 0.0 {
            return false;
        }
        let scale = load as f64 * self.early_refresh;
        let gap = fresh_until.saturating_sub(now) as f64;
        // -ln(u) exceeds 40 with probability e^-40: skip the draw far from
        // expiry, which is almost every hit.
        if gap > 40.0 * scale {
            return false;
        }
        scale * -(1.0 - random_unit()).ln() >= gap
    }
}

/// A uniform draw in `[0, 1)` from a per-thread splitmix64 stream, seeded
/// from std's randomly keyed hasher: good enough to spread expiries, with no
/// dependency and no lock.
pub(crate) fn random_unit() -> f64 {
    thread_local! {
        static STATE: Cell<u64> = Cell::new(RandomState::new().hash_one(std::thread::current().id()));
    }
    STATE.with(|state| {
        let next = state.get().wrapping_add(0x9E37_79B9_7F4A_7C15);
        state.set(next);
        let mut z = next;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        // The top 53 bits fill an f64 mantissa exactly.
        (z >> 11) as f64 / (1u64 << 53) as f64
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_jitter_every_draw_is_the_ttl() {
        let policy = ExpiryPolicy::new(Duration::from_secs(60), 0.0);
        for _ in 0..100 {
            assert_eq!(policy.draw_ttl(), Duration::from_secs(60));
        }
    }

    #[test]
    fn draw_bounds_are_ttl_times_one_plus_minus_jitter() {
        let policy = ExpiryPolicy::new(Duration::from_secs(100), 0.2);
        assert_eq!(policy.ttl_for_draw(0.0), Duration::from_secs(80));
        assert_eq!(policy.ttl_for_draw(0.5), Duration::from_secs(100));
        assert_eq!(policy.ttl_for_draw(1.0), Duration::from_secs(120));
    }

    #[test]
    fn jittered_draws_spread_uniformly_over_the_whole_range() {
        let policy = ExpiryPolicy::new(Duration::from_secs(100), 0.2);
        let draws: Vec<f64> = (0..20_000)
            .map(|_| policy.draw_ttl().as_secs_f64())
            .collect();
        assert!(draws.iter().all(|d| (80.0..=120.0).contains(d)));
        // Each fifth of the range holds about a fifth of the draws.
        for bucket in 0..5 {
            let low = 80.0 + 8.0 * bucket as f64;
            let count = draws
                .iter()
                .filter(|d| (low..low + 8.0).contains(*d))
                .count();
            assert!(
                (3_400..=4_600).contains(&count),
                "bucket {bucket} holds {count} of 20000 draws"
            );
        }
    }

    #[test]
    fn full_jitter_never_draws_zero() {
        let policy = ExpiryPolicy::new(Duration::from_secs(1), 1.0);
        assert!(policy.ttl_for_draw(0.0) > Duration::ZERO);
    }

    #[test]
    #[should_panic(expected = "jitter must be within")]
    fn jitter_outside_unit_range_is_rejected() {
        ExpiryPolicy::new(Duration::from_secs(1), 1.5);
    }
}
