//! Background refreshes: a stale hit, or a fresh one early refresh drew,
//! starts one refresh of the key on the caller's runtime, leading an
//! attached flight so that later callers join it and an invalidation
//! detaches it.

use std::hash::Hash;

use super::{FnCache, Found, LoadKind};
use crate::background::BackgroundLoad;
use crate::config::LoadHooks;
use crate::flight::Landing;
use crate::outcome::Outcome;
use crate::stats::Counter;
use crate::tags::Tags;

impl<K, V> FnCache<K, V>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// [`hit`](Self::hit) for a function with `swr` or early refresh: a
    /// stale value, or a fresh one early refresh drew, also starts a
    /// background refresh (`background` makes its load). Separate from `hit`
    /// so that functions without these policies do not compile the
    /// spawning machinery.
    ///
    /// `tags` names the refresh's tags (only a refresh builds them).
    #[inline]
    pub fn hit_or_refresh<R, H, T, B>(
        &'static self,
        key: &K,
        hooks: H,
        tags: T,
        background: B,
    ) -> Option<R>
    where
        R: Outcome<Value = V> + Send + 'static,
        H: Fn() -> LoadHooks<V, R::Failure>,
        T: FnOnce() -> Tags,
        B: FnOnce() -> Option<BackgroundLoad<R>>,
    {
        let found = self.find(key);
        if let Found::Fresh { refresh: true, .. } | Found::Stale { refresh: true, .. } = found {
            self.refresh_in_background(key, hooks().tags(tags()), background);
        }
        self.served(found, true, || hooks().share)
    }

    /// Starts one background refresh of `key`, unless a load of it is
    /// already in flight. It leads an attached flight, so callers that find
    /// nothing servable meanwhile join it, and an invalidation detaches it
    /// as it would any load.
    #[cold]
    pub(super) fn refresh_in_background<R, B>(
        &'static self,
        key: &K,
        hooks: LoadHooks<V, R::Failure>,
        background: B,
    ) where
        R: Outcome<Value = V> + Send + 'static,
        B: FnOnce() -> Option<BackgroundLoad<R>>,
    {
        // Copying the arguments is user code: not under the lock, and not
        // while a refresh already runs.
        if self.flights.lock(key).is_attached(key) {
            return;
        }
        let Some(load) = background() else { return };
        self.start_refresh(key, hooks, load);
    }

    /// The rest of [`refresh_in_background`](Self::refresh_in_background),
    /// generic over the outcome only: the spawned task's type does not
    /// depend on the function's closures, so it is compiled once per
    /// outcome type, not once per cached function.
    pub(super) fn start_refresh<R>(
        &'static self,
        key: &K,
        hooks: LoadHooks<V, R::Failure>,
        load: BackgroundLoad<R>,
    ) where
        R: Outcome<Value = V> + Send + 'static,
    {
        let flight = {
            let mut shard = self.flights.lock(key);
            // Another refresh may have started, or landed, since the hit.
            let due = match self.find(key) {
                Found::Fresh { refresh, .. } | Found::Stale { refresh, .. } => refresh,
                Found::Negative(_) | Found::Miss => false,
            };
            if !due || shard.is_attached(key) {
                return;
            }
            // Mark the entry, so that stale hits stop looking for a refresh.
            // Under the lock: an invalidation must not be undone by it.
            self.mark_refreshing(key, true);
            shard.lead_anew(key)
        };
        self.counters.incr(Counter::Refreshes);
        let key = key.clone();
        let (work_key, work_flight) = (key.clone(), flight.clone());
        let work = async move {
            // The outcome went to the waiters, if any; nobody else wants it.
            let _ = self
                .lead(work_key, work_flight, hooks, load, LoadKind::Background)
                .await;
        };
        if !crate::background::spawn(work) {
            self.detach(&key, &flight);
            flight.land(Landing::Abandoned);
        }
    }
}
