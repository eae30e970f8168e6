//! A load's calls of the origin: retried with full-jitter backoff
//! (`retry`), each sent through the origin's circuit breaker
//! (`circuit_breaker`). They run inside the load, so only the caller
//! leading it retries, and callers that joined it wait for the last
//! attempt's outcome.

use std::future::Future;
use std::hash::Hash;

use super::{trace, FnCache};
use crate::breaker::{Admit, BreakerState, OriginBreaker, Verdict};
use crate::outcome::Outcome;
use crate::retry::Retry;
use crate::stats::Counter;

/// What a function does when its origin fails: retries, a breaker.
#[derive(Default)]
pub(super) struct Origin {
    pub(super) retry: Option<Retry>,
    pub(super) breaker: Option<OriginBreaker>,
}

impl<K, V> FnCache<K, V>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// Calls `attempt` until it succeeds, as the function's `retry` and
    /// `circuit_breaker` say; what a `#[cached]` load with either runs
    /// inside the cache (so only the leader retries).
    ///
    /// A failure is retried when `transient` says so (every failure
    /// without it), after a wait drawn from the retry's full-jitter window,
    /// and never past the function's `hard_timeout`: a retry whose wait
    /// would end after it is not made. Each call goes through the breaker:
    /// while it refuses, no call is made, and the load fails with the last
    /// failure, or `unavailable()` (`Error::OriginUnavailable` in the
    /// function's error type) if there was none. With `transient`, the
    /// breaker counts only transient failures: an error the origin
    /// answered on purpose (not found, say) shows it is up.
    ///
    /// Retries wait on tokio's clock; outside a tokio runtime a failure is
    /// not retried.
    pub async fn attempts<R, A, Fut>(
        &self,
        transient: Option<fn(&R::Failure) -> bool>,
        unavailable: fn() -> R::Failure,
        mut attempt: A,
    ) -> R
    where
        R: Outcome,
        A: FnMut() -> Fut,
        Fut: Future<Output = R>,
    {
        let most = self.origin.retry.map_or(1, |retry| retry.max_attempts());
        let started = tokio::time::Instant::now();
        let mut failed: Option<R::Failure> = None;
        for made in 1.. {
            let Some(mut turn) = self.turn() else {
                self.counters.incr(Counter::BreakerRejected);
                return R::from_failure(failed.unwrap_or_else(unavailable));
            };
            if made > 1 {
                // Counted once it is made: one the breaker refused is not.
                self.counters.incr(Counter::Retries);
            }
            let failure = match attempt().await.into_parts() {
                Ok(value) => {
                    turn.end(Verdict::Success);
                    return R::from_value(value);
                }
                Err(failure) => failure,
            };
            let retryable = transient.is_none_or(|transient| transient(&failure));
            turn.end(if retryable {
                Verdict::Failure
            } else {
                Verdict::Success
            });
            let wait = match self.origin.retry {
                Some(retry) if retryable && made < most => retry.backoff(made),
                _ => return R::from_failure(failure),
            };
            let past_deadline = self
                .deadlines
                .hard
                .is_some_and(|hard| started.elapsed() + wait >= hard);
            if past_deadline || tokio::runtime::Handle::try_current().is_err() {
                return R::from_failure(failure);
            }
            trace::retrying(&self.name, made, wait);
            tokio::time::sleep(wait).await;
            failed = Some(failure);
        }
        unreachable!("the attempts end by returning")
    }

    /// [`attempts`](Self::attempts) for a function with a breaker and no
    /// retries: one call, made from the arguments themselves (no copy).
    pub async fn attempt_once<R, A, Fut>(
        &self,
        transient: Option<fn(&R::Failure) -> bool>,
        unavailable: fn() -> R::Failure,
        attempt: A,
    ) -> R
    where
        R: Outcome,
        A: FnOnce() -> Fut,
        Fut: Future<Output = R>,
    {
        debug_assert!(
            self.origin.retry.is_none(),
            "a function with retries copies its arguments"
        );
        let mut attempt = Some(attempt);
        self.attempts(transient, unavailable, move || {
            let attempt = attempt.take().expect("without retries, one attempt");
            attempt()
        })
        .await
    }

    /// A call's turn through the breaker; `None` when it refuses.
    fn turn(&self) -> Option<Turn<'_, K, V>> {
        let admit = match &self.origin.breaker {
            None => Admit::Call,
            Some(breaker) => {
                let (admit, moved) = breaker.admit(self.clock.now_nanos());
                if let Some(state) = moved {
                    self.breaker_moved(state);
                }
                if admit == Admit::Refuse {
                    return None;
                }
                admit
            }
        };
        Some(Turn {
            cache: self,
            admit,
            ended: false,
        })
    }

    /// Counts, traces and exports a move of the breaker.
    fn breaker_moved(&self, state: BreakerState) {
        if state == BreakerState::Open {
            self.counters.incr(Counter::BreakerOpenings);
        }
        trace::breaker_moved(&self.name, state);
        #[cfg(feature = "metrics")]
        self.counters.exported.breaker(state);
    }

    /// Where the breaker stands (`Off` without one).
    pub(super) fn breaker_state(&self) -> BreakerState {
        self.origin
            .breaker
            .as_ref()
            .map_or(BreakerState::Off, OriginBreaker::state)
    }
}

/// One call the breaker admitted. Dropped without a verdict, it gives
/// one: a panic is a failure, and a call dropped mid-way (its load's
/// callers went away) frees a probe's place without judging the origin.
struct Turn<'a, K, V>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    cache: &'a FnCache<K, V>,
    admit: Admit,
    ended: bool,
}

impl<K, V> Turn<'_, K, V>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    fn end(&mut self, verdict: Verdict) {
        self.ended = true;
        let cache = self.cache;
        if let Some(breaker) = &cache.origin.breaker {
            if let Some(state) = breaker.ended(self.admit, cache.clock.now_nanos(), verdict) {
                cache.breaker_moved(state);
            }
        }
    }
}

impl<K, V> Drop for Turn<'_, K, V>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    fn drop(&mut self) {
        if !self.ended {
            self.end(if std::thread::panicking() {
                Verdict::Failure
            } else {
                Verdict::Cancelled
            });
        }
    }
}
