//! Loads that callers stop waiting for: `timeout` (soft: with a fallback at
//! hand, serve it once the timeout elapses) and `hard_timeout` (callers stop
//! waiting: the fail-safe fallback if there is one, else
//! `herdcache::Error::Timeout` as the function's error).
//!
//! Either way the load goes on: it runs on its own task, from owned copies
//! of the arguments, and stores its value when it lands. Abandoning it
//! would send the next caller into the same slow load again and again.
//! Callers arriving meanwhile join it and wait at most their own deadline.

use std::future::Future;
use std::hash::Hash;

use super::{FnCache, LoadKind};
use crate::background::BackgroundLoad;
use crate::config::LoadHooks;
use std::sync::Arc;

use crate::entry::Served;
use crate::flight::{Flight, Landing, Role};
use crate::outcome::Outcome;
use crate::stats::Counter;
use crate::tags::TagState;
use crate::tier::Payload;

impl<K, V> FnCache<K, V>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    pub(super) async fn load_within_deadlines<R, F>(
        &'static self,
        key: K,
        hooks: LoadHooks<V, R::Failure>,
        loader: F,
        detached: BackgroundLoad<R>,
    ) -> (R, Served)
    where
        R: Outcome<Value = V> + Send + 'static,
        F: Future<Output = R>,
    {
        let mut detached = Some(detached);
        let mut first_try = true;
        loop {
            let role = match self.served_or_role(&key, first_try, &hooks) {
                Ok(outcome) => return (outcome, Served::Hit),
                Err(role) => role,
            };
            let led = matches!(role, Role::Lead(_));
            let flight = match role {
                Role::Join(flight) => flight,
                Role::Lead(flight) => {
                    // Wait as a joined caller would, for the load on its task.
                    flight.add_waiter();
                    let load = detached.take().expect("a caller leads at most once");
                    if !self.spawn_detached(&key, &flight, hooks.clone(), load) {
                        // No runtime to run it on: load here, with no
                        // deadline, as the leader rather than a waiter.
                        flight.remove_waiter();
                        return self
                            .lead(key, flight, hooks, loader, LoadKind::Foreground)
                            .await;
                    }
                    flight
                }
            };
            first_try = false;
            let waited = self.wait_within_deadlines(&key, &flight).await;
            if matches!(waited, Waited::Fallback(..) | Waited::TimedOut) {
                // Gone: the load's outcome is not this caller's any more.
                flight.remove_waiter();
            }
            match waited {
                Waited::Landed(landing) => {
                    if let Some(outcome) = super::answer(landing, &hooks) {
                        return (outcome, super::served_by(&flight, led));
                    }
                    // The leader died: lead again, detached if the copy is
                    // still ours, else here.
                    if detached.is_none() {
                        return self.load_how(key, hooks, loader).await;
                    }
                }
                Waited::Fallback(value, served) => return (R::from_value(value), served),
                Waited::TimedOut => {
                    if let Some(timeout_error) = hooks.timeout_error {
                        return (R::from_failure(timeout_error()), Served::Loaded);
                    }
                    // No error to give (the macro only sets `hard_timeout`
                    // on a `Result`): wait it out.
                    return match super::answer(flight.wait().await, &hooks) {
                        Some(outcome) => (outcome, super::served_by(&flight, led)),
                        None => self.load_how(key, hooks, loader).await,
                    };
                }
            }
        }
    }

    /// Runs `load` on its own task, leading `flight`; `false` outside a
    /// runtime. Generic over the outcome only, so that the task's type (and
    /// tokio's machinery for it) is compiled once per outcome type, not once
    /// per cached function.
    fn spawn_detached<R>(
        &'static self,
        key: &K,
        flight: &Arc<Flight<V>>,
        hooks: LoadHooks<V, R::Failure>,
        load: BackgroundLoad<R>,
    ) -> bool
    where
        R: Outcome<Value = V> + Send + 'static,
    {
        let (key, flight) = (key.clone(), flight.clone());
        crate::background::spawn(async move {
            let _ = self
                .lead(key, flight, hooks, load, LoadKind::Detached)
                .await;
        })
    }

    /// Waits for `landing` until the deadlines say stop.
    async fn wait_within_deadlines(&self, key: &K, flight: &Arc<Flight<V>>) -> Waited<V> {
        let landing = flight.wait();
        let soft = self.deadlines.soft.filter(|_| self.fallback(key).is_some());
        let first = match (soft, self.deadlines.hard) {
            (Some(soft), Some(hard)) => Some(soft.min(hard)),
            (soft, hard) => soft.or(hard),
        };
        let Some(first) = first else {
            return Waited::Landed(landing.await);
        };
        let mut landing = std::pin::pin!(landing);
        if let Ok(landed) = tokio::time::timeout(first, landing.as_mut()).await {
            return Waited::Landed(landed);
        }
        // Landed just as the timer fired: the value, not the fallback.
        if let Some(landed) = flight.landing() {
            return Waited::Landed(landed);
        }
        self.counters.incr(Counter::Timeouts);
        // A fallback still there (not invalidated meanwhile) answers. After
        // a soft timeout that is all; after a hard one it is fail-safe's.
        if let Some(value) = self.fallback(key) {
            if Some(first) == self.deadlines.hard {
                self.fail_safe_answered(key, flight);
                return Waited::Fallback(value, Served::FailSafe);
            }
            // Not a failure: the old value while the load goes on, as a
            // stale hit is while its refresh does.
            return Waited::Fallback(value, Served::Stale);
        }
        let Some(hard) = self.deadlines.hard else {
            return Waited::Landed(landing.await);
        };
        match hard.checked_sub(first).filter(|rest| !rest.is_zero()) {
            None => Waited::TimedOut,
            Some(rest) => match tokio::time::timeout(rest, landing).await {
                Ok(landed) => Waited::Landed(landed),
                Err(_) => match self.fallback(key) {
                    Some(value) => {
                        self.fail_safe_answered(key, flight);
                        Waited::Fallback(value, Served::FailSafe)
                    }
                    None => Waited::TimedOut,
                },
            },
        }
    }

    /// Fail-safe answered a hard timeout: count it, and serve the fallback
    /// as fresh for the throttle, so that the next callers do not each wait
    /// out the deadline again. The load in flight stays attached and stores
    /// its value when it lands; a value it already stored is left alone, and
    /// an invalidated key stays gone (both checked under the shard lock).
    fn fail_safe_answered(&self, key: &K, flight: &Flight<V>) {
        self.count_fail_safe_answer(1, "outlived its hard_timeout");
        // Without a fail-safe window there is no throttle to serve it for:
        // the value keeps its own horizons. (Stored again, a plain
        // function's entry would restart moka's global ttl and be served
        // past its own.)
        if self.expiry.fail_safe_window().is_zero() {
            return;
        }
        let _shard = self.flights.lock(key);
        let Some(mut entry) = self.memory.get(key) else {
            return;
        };
        let expired = match entry.tags.state() {
            TagState::Current => false,
            TagState::Expired => true,
            TagState::Gone => return,
        };
        let now = self.clock.now_nanos();
        if (now < entry.fresh_until && !expired) || now >= entry.fail_safe_until {
            return;
        }
        // A tag expired: fresh for the throttle under the load's own stamps
        // (read after the expiry), else it would stay expired.
        if expired {
            match flight.stamps() {
                Some(stamps) if stamps.state() == TagState::Current => {
                    entry.tags = *stamps;
                }
                _ => return,
            }
        }
        let horizons = self
            .expiry
            .throttled_horizons(now, entry.fail_safe_until, entry.loaded_at);
        entry.fresh_until = horizons.fresh_until;
        entry.stale_until = horizons.stale_until;
        entry.lifetime = crate::clock::nanos(horizons.lifetime);
        self.memory.insert(key.clone(), entry);
    }

    /// The value a caller may be given instead of waiting: an entry's value
    /// within its fail-safe window.
    fn fallback(&self, key: &K) -> Option<V> {
        let entry = self.memory.get(key)?;
        if entry.tags.state() == TagState::Gone {
            return None;
        }
        let now = self.clock.now_nanos();
        match entry.payload {
            Payload::Value(value) if now < entry.fail_safe_until => Some(value),
            _ => None,
        }
    }
}

/// How a wait within deadlines ended.
enum Waited<V> {
    Landed(Landing<V>),
    /// The old value, and how it counts: `Stale` after a soft timeout,
    /// `FailSafe` after a hard one.
    Fallback(V, Served),
    TimedOut,
}
