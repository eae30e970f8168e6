//! How long a freshly loaded value stays fresh: the ttl, spread by jitter so
//! that keys written together do not all expire together.

use std::cell::Cell;
use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::time::Duration;

/// The freshness budget of one cached function.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ExpiryPolicy {
    ttl: Duration,
    jitter: f64,
}

impl ExpiryPolicy {
    /// A policy of `ttl` spread by `jitter` (a fraction in `0.0..=1.0`).
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
        ExpiryPolicy { ttl, jitter }
    }

    /// The configured ttl, before jitter.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// The configured jitter fraction.
    pub fn jitter(&self) -> f64 {
        self.jitter
    }

    /// The ttl for a draw `unit` in `[0, 1)`: `unit = 0` gives the shortest,
    /// `ttl * (1 - jitter)`, and the spread is uniform up to `ttl * (1 + jitter)`.
    pub fn ttl_for_draw(&self, unit: f64) -> Duration {
        let factor = 1.0 - self.jitter + 2.0 * self.jitter * unit.clamp(0.0, 1.0);
        // A jitter of 1.0 may draw zero; an entry must live at least a moment.
        self.ttl.mul_f64(factor).max(Duration::from_nanos(1))
    }

    /// Draws the ttl of one entry.
    pub fn draw_ttl(&self) -> Duration {
        if self.jitter == 0.0 {
            self.ttl
        } else {
            self.ttl_for_draw(random_unit())
        }
    }
}

/// A uniform draw in `[0, 1)` from a per-thread splitmix64 stream, seeded
/// from std's randomly keyed hasher: good enough to spread expiries, with no
/// dependency and no lock.
fn random_unit() -> f64 {
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
