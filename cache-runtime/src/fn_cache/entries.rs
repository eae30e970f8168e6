//! `<fn>_entry`: a call answered with what the cache knows of its value
//! (how it was served, age, freshness, windows), and `HERDCACHE_DISABLED`.

use std::future::Future;
use std::hash::Hash;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use super::{FnCache, Found};
use crate::background::BackgroundLoad;
use crate::clock::Nanos;
use crate::config::LoadHooks;
use crate::entry::{EntryMeta, Served};
use crate::outcome::Outcome;
use crate::stats::Counter;
use crate::tags::TagState;
use crate::tier::{Payload, UNKNOWN_LOAD};

/// `HERDCACHE_DISABLED` (`1` or `true`): every cache of the process calls
/// its body on every call. Read once, by the first cache made.
pub(super) fn disabled_by_env() -> bool {
    static DISABLED: OnceLock<bool> = OnceLock::new();
    *DISABLED.get_or_init(|| {
        let disabled = std::env::var("HERDCACHE_DISABLED")
            .is_ok_and(|value| matches!(value.trim(), "1" | "true" | "yes"));
        if disabled {
            tracing::warn!(
                target: "herdcache",
                "HERDCACHE_DISABLED is set: every cached function calls its body on every call"
            );
        }
        disabled
    })
}

impl<K, V> FnCache<K, V>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// A call with caching off (`HERDCACHE_DISABLED`): the body, counted as
    /// a miss and a load. Nothing is stored, so hits never happen and cost
    /// nothing extra.
    #[cold]
    pub(super) async fn run_disabled<R, F>(&self, loader: F) -> R
    where
        R: Outcome<Value = V>,
        F: Future<Output = R>,
    {
        self.counters.incr(Counter::Misses);
        self.counters.incr(Counter::Loads);
        let started = Instant::now();
        let outcome = loader.await;
        let took = started.elapsed();
        self.latency.record(took);
        #[cfg(feature = "metrics")]
        {
            self.counters.exported.load_started();
            self.counters.exported.load_finished(took);
        }
        outcome
    }

    /// How a read of `key` would be answered from memory now: `Hit` (a
    /// fresh value or a cached failure), `Stale`, or `None` for a miss.
    /// For `<fn>_entry`, before its hit.
    pub fn peek_served(&self, key: &K) -> Option<Served> {
        match self.find(key) {
            Found::Fresh { .. } | Found::Negative(_) => Some(Served::Hit),
            Found::Stale { .. } => Some(Served::Stale),
            Found::Miss => None,
        }
    }

    /// `<fn>_entry`'s slow path: [`load`](Self::load), answering how the
    /// caller was served and the entry's horizons.
    pub async fn load_entry<R, F>(
        &self,
        key: K,
        hooks: LoadHooks<V, R::Failure>,
        loader: F,
    ) -> (R, EntryMeta)
    where
        R: Outcome<Value = V>,
        F: Future<Output = R>,
    {
        let look = key.clone();
        let (outcome, served) = self.load_how(key, hooks, loader).await;
        (outcome, self.entry_meta(&look, served))
    }

    /// [`load_entry`](Self::load_entry) for a function with `timeout` or
    /// `hard_timeout` (see [`load_or_detach`](Self::load_or_detach)).
    pub async fn load_entry_or_detach<R, F>(
        &'static self,
        key: K,
        hooks: LoadHooks<V, R::Failure>,
        loader: F,
        detached: Option<BackgroundLoad<R>>,
    ) -> (R, EntryMeta)
    where
        R: Outcome<Value = V> + Send + 'static,
        F: Future<Output = R>,
    {
        let look = key.clone();
        let (outcome, served) = match detached {
            Some(detached) if self.deadlines.any() && !self.disabled => {
                self.load_within_deadlines(key, hooks, loader, detached)
                    .await
            }
            _ => self.load_how(key, hooks, loader).await,
        };
        (outcome, self.entry_meta(&look, served))
    }

    /// What the memory tier knows of `key`'s value, for a caller served as
    /// `served`: its age, how long it stays fresh, the function's windows.
    /// Without an entry (caching off, or invalidated since), no age and no
    /// freshness.
    pub fn entry_meta(&self, key: &K, served: Served) -> EntryMeta {
        let mut meta = EntryMeta {
            served,
            age: Duration::ZERO,
            fresh_for: Duration::ZERO,
            stale_window: self.expiry.swr_window(),
            fail_safe_window: self.expiry.fail_safe_window(),
        };
        if self.disabled {
            return meta;
        }
        let Some(entry) = self.memory.get(key) else {
            return meta;
        };
        if !matches!(entry.payload, Payload::Value(_)) {
            return meta;
        }
        let now = self.clock.coarse_now_nanos();
        // A plain entry keeps only `fresh_until`: its ttl after the load
        // (exact without jitter).
        let loaded_at: Nanos = if entry.loaded_at == UNKNOWN_LOAD {
            entry
                .fresh_until
                .saturating_sub(crate::clock::nanos(self.expiry.ttl()))
        } else {
            entry.loaded_at
        };
        meta.age = Duration::from_nanos(now.saturating_sub(loaded_at));
        // A caller answered from memory after its miss (a load landed
        // meanwhile, or a copy stored already stale) is a stale one when
        // the value is past its freshness.
        if served == Served::Hit && now >= entry.fresh_until {
            meta.served = Served::Stale;
        }
        let fresh = entry.tags.state() == TagState::Current
            && !matches!(served, Served::Stale | Served::FailSafe);
        if fresh {
            meta.fresh_for = Duration::from_nanos(entry.fresh_until.saturating_sub(now));
        }
        meta
    }
}
