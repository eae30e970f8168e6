//! What a finished load leaves behind: a stored value and the callers it
//! answers, or a failure: shared, cached by a negative rule, answered by a
//! fail-safe fallback, or ending the old value (`None`).

use std::hash::Hash;
use std::sync::Arc;
use std::time::Duration;

use super::{trace, FnCache, LeaderGuard, LoadKind};
use crate::clock::{nanos, Nanos};
use crate::config::LoadHooks;
use crate::entry::Served;
use crate::expiry::Horizons;
use crate::flight::Landing;
use crate::outcome::Outcome;
use crate::stats::Counter;
use crate::tags::{Stamps, TagState};
use crate::tier::{Entry, Payload};

impl<K, V> FnCache<K, V>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// What a finished load does: store and hand out a value, or answer a
    /// failure or panic. Apart from `lead` so that it is compiled once per
    /// outcome type, not once per loader (that is, per cached function).
    pub(super) fn landed<R: Outcome<Value = V>>(
        &self,
        guard: &LeaderGuard<'_, K, V>,
        caught: std::thread::Result<R>,
        took: Duration,
        hooks: LoadHooks<V, R::Failure>,
        kind: LoadKind,
        span: &tracing::Span,
    ) -> (R, Served) {
        trace::record_duration(span, took);
        let mut answered_by_fail_safe = false;
        let outcome = match caught {
            Ok(outcome) => outcome,
            Err(panic) => {
                // A panic is a failure fail-safe covers; without a fallback
                // it goes on up, and the guard wakes the waiters.
                let answered = answered(guard.flight.waiters(), kind);
                // As for an `Err`: `_refresh` answers with its failure, and
                // a refresh nobody joined leaves the stale value alone.
                let unjoined_refresh = kind == LoadKind::Background && answered == 0;
                let fallback = match kind {
                    LoadKind::Explicit => None,
                    _ if unjoined_refresh => None,
                    _ => self.serve_fallback(guard),
                };
                let Some(fallback) = fallback else {
                    std::panic::resume_unwind(panic)
                };
                self.count_error(kind == LoadKind::Background);
                self.count_fail_safe_answer(answered, "panicked");
                answered_by_fail_safe = true;
                R::from_value(fallback)
            }
        };
        self.latency.record(took);
        #[cfg(feature = "metrics")]
        {
            self.counters.exported.load_finished(took);
            if let Some(evictions) = self.memory.evictions_estimate() {
                self.counters.exported.evictions(evictions);
            }
        }
        trace::record_waiters(span, guard.flight.waiters());
        match outcome.into_parts() {
            Ok(value) => {
                let what = if answered_by_fail_safe {
                    "fail_safe"
                } else {
                    "value"
                };
                trace::load_ended(span, &self.name, kind, what, took);
                self.store_value(guard, &value, hooks, took);
                if guard.flight.waiters() > 0 {
                    guard.flight.land(Landing::Value(value.clone()));
                }
                let served = if answered_by_fail_safe {
                    Served::FailSafe
                } else {
                    Served::Loaded
                };
                (R::from_value(value), served)
            }
            Err(failure) => {
                let (outcome, what) = self.failed::<R>(guard, hooks, failure, kind);
                trace::load_ended(span, &self.name, kind, what, took);
                let served = if what == "fail_safe" {
                    Served::FailSafe
                } else {
                    Served::Loaded
                };
                (outcome, served)
            }
        }
    }

    /// Counts a load that failed or panicked: a refresh's error when it ran
    /// in the background, else a load's.
    pub(super) fn count_error(&self, background: bool) {
        self.counters.incr(if background {
            Counter::RefreshErrors
        } else {
            Counter::LoadErrors
        });
    }

    /// Counts and traces fail-safe's answer to `answered` callers, after a
    /// load that `how` ("failed", "panicked").
    pub(super) fn count_fail_safe_answer(&self, answered: u64, how: &str) {
        self.counters.add(Counter::FailSafeHits, answered);
        trace::fail_safe_answered(&self.name, answered, how);
    }

    /// What a failed load answers, to its leader and to the callers that
    /// joined it, and what it leaves in the cache.
    pub(super) fn failed<R: Outcome<Value = V>>(
        &self,
        guard: &LeaderGuard<'_, K, V>,
        hooks: LoadHooks<V, R::Failure>,
        failure: R::Failure,
        kind: LoadKind,
    ) -> (R, &'static str) {
        let (key, flight) = (&guard.key, &guard.flight);
        if R::FAILURE_IS_ERROR {
            self.count_error(kind == LoadKind::Background);
        }
        // Callers may still join until the flight is detached below; one
        // that joins after this count wakes to the guard's `Abandoned` and
        // tries again, finding what this load left.
        let waiters = flight.waiters();
        // A refresh nobody joined: the stale value stays until its window
        // ends, and the next stale hit may try again.
        if kind == LoadKind::Background && waiters == 0 && R::FAILURE_IS_ERROR {
            self.detach(key, flight);
            trace::refresh_failed(&self.name);
            return (R::from_failure(failure), "error");
        }
        if R::FAILURE_IS_ERROR && kind != LoadKind::Explicit {
            if let Some(fallback) = self.serve_fallback(guard) {
                self.count_fail_safe_answer(answered(waiters, kind), "failed");
                if waiters > 0 {
                    flight.land(Landing::Value(fallback.clone()));
                }
                return (R::from_value(fallback), "fail_safe");
            }
        }
        let negative = match kind {
            LoadKind::Explicit if R::FAILURE_IS_ERROR => None,
            _ => hooks.negative.ttl(&failure),
        };
        let (shared, own) = if waiters > 0 || negative.is_some() {
            let (shared, own) = hooks.share.share(failure);
            (Some(shared), own)
        } else {
            (None, failure)
        };
        {
            let mut shard = self.flights.lock(key);
            if shard.detach_if(key, flight) {
                match (&negative, &shared) {
                    (Some(ttl), Some(shared)) => {
                        let now = self.clock.now_nanos();
                        let horizons = self.expiry.negative_horizons(now, *ttl);
                        self.memory.insert(
                            key.clone(),
                            entry(
                                Payload::Failure(Arc::new(shared.clone())),
                                horizons,
                                0,
                                *guard.stamps.stamps(),
                            ),
                        );
                    }
                    // `None` is an answer: the old value, stale or
                    // fallback, is gone with it.
                    _ if !R::FAILURE_IS_ERROR => self.memory.invalidate(key),
                    _ => self.mark_refreshing(key, false),
                }
            }
        }
        if let Some(shared) = shared.filter(|_| waiters > 0) {
            flight.land(Landing::Failure(shared));
        }
        let what = match (R::FAILURE_IS_ERROR, negative.is_some()) {
            (true, true) => "error, cached",
            (true, false) => "error",
            (false, true) => "none, cached",
            (false, false) => "none",
        };
        (R::from_failure(own), what)
    }

    /// For a failed load still attached: the fail-safe fallback of `key`, if
    /// its window is open, stored again as fresh for the throttle (never past
    /// the window); the flight is detached either way.
    pub(super) fn serve_fallback(&self, guard: &LeaderGuard<'_, K, V>) -> Option<V> {
        let (key, flight) = (&guard.key, &guard.flight);
        if self.expiry.fail_safe_window().is_zero() {
            return None;
        }
        let entry = self.memory.get(key)?;
        // Invalidated by a tag: gone, not even a fallback. Expired by one:
        // served as fresh for the throttle under the failed load's stamps
        // (read after the expiry), else every next call would load again.
        let tags = match entry.tags.state() {
            TagState::Gone => return None,
            TagState::Expired => *guard.stamps.stamps(),
            TagState::Current => entry.tags,
        };
        let Payload::Value(value) = entry.payload else {
            return None;
        };
        let now = self.clock.now_nanos();
        if now >= entry.fail_safe_until {
            return None;
        }
        let horizons = self
            .expiry
            .throttled_horizons(now, entry.fail_safe_until, entry.loaded_at);
        let stored = value.clone();
        let mut shard = self.flights.lock(key);
        // Invalidated meanwhile, by key or by tag: gone, not even a fallback.
        let still_there = self
            .memory
            .get(key)
            .is_some_and(|entry| entry.tags.state() != TagState::Gone);
        if !still_there || !shard.detach_if(key, flight) {
            return None;
        }
        flight.mark_answered_by(crate::flight::Answered::FailSafe);
        self.memory.insert(
            key.clone(),
            entry_of(stored, horizons, entry.load_nanos, tags),
        );
        Some(value)
    }

    /// Detaches the finished `flight` and, if it was still attached (no
    /// invalidation or refresh superseded it), stores `value`: both in one
    /// critical section, so that no caller or invalidation of the key can
    /// see the flight gone and the value not yet stored.
    pub(super) fn store_value<F>(
        &self,
        guard: &LeaderGuard<'_, K, V>,
        value: &V,
        hooks: LoadHooks<V, F>,
        took: Duration,
    ) {
        // The value's `Clone` and `ttl_for` are user code: keep them out of
        // the lock (the key's `Hash`, `Eq` and `Clone` still run inside).
        let (key, flight) = (&guard.key, &guard.flight);
        let stored = value.clone();
        let mut ttl = self.expiry.draw_ttl();
        if let Some(ttl_for) = hooks.ttl_for {
            ttl = ttl.min(ttl_for(value));
        }
        // A load whose tags moved since it began stores nothing it could
        // serve: leave the entry there (invalidated or a fallback) alone.
        let dead = guard.stamps.stamps().state() == TagState::Gone;
        // What goes to Redis, serialized before the lock (user code).
        let payload = if dead {
            None
        } else {
            self.l2_payload(guard, value)
        };
        let mut shard = self.flights.lock(key);
        if shard.detach_if(key, flight) && !dead {
            let horizons = self.expiry.horizons(self.clock.now_nanos(), ttl);
            let tags = *guard.stamps.stamps();
            self.memory
                .insert(key.clone(), entry_of(stored, horizons, nanos(took), tags));
            // Only a value this load stored goes to Redis (not one a newer
            // load or an invalidation superseded); the leader sends it.
            self.prepare_l2_write(guard, payload, horizons, took);
        }
    }

    /// Marks the entry of `key` as being refreshed, or not. The caller holds
    /// the key's shard lock. (This clones the value: user code, under it.)
    pub(super) fn mark_refreshing(&self, key: &K, refreshing: bool) {
        if let Some(mut entry) = self.memory.get(key) {
            if entry.refreshing != refreshing {
                entry.refreshing = refreshing;
                self.memory.insert(key.clone(), entry);
            }
        }
    }
}

/// An entry holding `value`.
pub(super) fn entry_of<V>(
    value: V,
    horizons: Horizons,
    load_nanos: Nanos,
    tags: Stamps,
) -> Entry<V> {
    entry(Payload::Value(value), horizons, load_nanos, tags)
}

fn entry<V>(payload: Payload<V>, horizons: Horizons, load_nanos: Nanos, tags: Stamps) -> Entry<V> {
    Entry {
        payload,
        fresh_until: horizons.fresh_until,
        stale_until: horizons.stale_until,
        fail_safe_until: horizons.fail_safe_until,
        load_nanos,
        lifetime: nanos(horizons.lifetime),
        loaded_at: horizons.loaded_at,
        refreshing: false,
        tags,
    }
}

/// The callers a load's outcome answers: those that joined it, and its
/// leader when that is a caller (not a refresh or a detached load).
fn answered(waiters: usize, kind: LoadKind) -> u64 {
    waiters as u64 + u64::from(kind == LoadKind::Foreground)
}
