//! Where each `#[cached]` function finds its cache, and how
//! [`stats()`](crate::stats) finds them all.
//!
//! A function is identified by its *site*: its name and where it is written.
//! The function and each generated helper keep a [`Slot`] that resolves the
//! site to the `&'static FnCache` once and then reads it lock-free. Methods
//! of generic impls get one cache per instantiation: the registry is keyed
//! by site and the cache's type.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Mutex, OnceLock, PoisonError};

use crate::fn_cache::{CacheConfig, FnCache};
use crate::stats::Stats;

/// What the registry needs of a cache without knowing its types.
trait ErasedCache: Send + Sync {
    fn name(&self) -> &str;
    fn stats(&self) -> Stats;
    fn len(&self) -> u64;
    fn invalidate_all(&self);
}

impl<K, V> ErasedCache for FnCache<K, V>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    fn name(&self) -> &str {
        FnCache::name(self)
    }
    fn stats(&self) -> Stats {
        FnCache::stats(self)
    }
    fn len(&self) -> u64 {
        FnCache::len(self)
    }
    fn invalidate_all(&self) {
        FnCache::invalidate_all(self)
    }
}

#[derive(Clone, Copy)]
struct Registered {
    typed: &'static (dyn Any + Send + Sync),
    erased: &'static dyn ErasedCache,
}

#[derive(Default)]
struct Registry {
    by_site: HashMap<(&'static str, TypeId), Registered>,
    in_order: Vec<(&'static str, Registered)>,
}

fn registry() -> std::sync::MutexGuard<'static, Registry> {
    static REGISTRY: OnceLock<Mutex<Registry>> = OnceLock::new();
    REGISTRY
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
}

/// The cache of `site` for key `K` and value `V`, made from `config` the
/// first time. Caches live for the whole program, like the functions.
fn get_or_register<K, V>(
    site: &'static str,
    config: impl FnOnce() -> CacheConfig,
) -> &'static FnCache<K, V>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    let mut registry = registry();
    let id = (site, TypeId::of::<FnCache<K, V>>());
    if let Some(registered) = registry.by_site.get(&id) {
        return registered
            .typed
            .downcast_ref()
            .expect("the registry is keyed by type");
    }
    let cache: &'static FnCache<K, V> = Box::leak(Box::new(FnCache::new(config())));
    let registered = Registered {
        typed: cache,
        erased: cache,
    };
    registry.by_site.insert(id, registered);
    registry.in_order.push((site, registered));
    cache
}

/// A function's way to its cache: one `static` per generated item.
pub struct Slot {
    site: &'static str,
    cache: OnceLock<&'static (dyn Any + Send + Sync)>,
}

impl Slot {
    /// A slot for the function written at `site`.
    pub const fn new(site: &'static str) -> Self {
        Slot {
            site,
            cache: OnceLock::new(),
        }
    }

    /// The function's cache, made from `config` on first use.
    #[inline]
    pub fn cache<K, V>(
        &'static self,
        config: impl FnOnce() -> CacheConfig,
    ) -> &'static FnCache<K, V>
    where
        K: Hash + Eq + Clone + Send + Sync + 'static,
        V: Clone + Send + Sync + 'static,
    {
        if let Some(cache) = self.cache.get().and_then(|any| any.downcast_ref()) {
            return cache;
        }
        self.resolve(config)
    }

    #[cold]
    fn resolve<K, V>(&'static self, config: impl FnOnce() -> CacheConfig) -> &'static FnCache<K, V>
    where
        K: Hash + Eq + Clone + Send + Sync + 'static,
        V: Clone + Send + Sync + 'static,
    {
        let cache = get_or_register::<K, V>(self.site, config);
        // The first instantiation seen keeps the fast path; others (methods
        // of generic impls) resolve through the registry each call.
        let _ = self.cache.set(cache);
        cache
    }
}

/// The handle `<fn>_cache()` returns: the stats and controls of one cached
/// function (summed over instantiations, for a method of a generic impl).
///
/// Before the function's first call there is no cache yet: stats are zero
/// and there is nothing to invalidate.
#[derive(Debug)]
pub struct CacheHandle {
    site: &'static str,
}

impl CacheHandle {
    #[doc(hidden)]
    pub const fn new(site: &'static str) -> Self {
        CacheHandle { site }
    }

    fn caches(&self) -> Vec<&'static dyn ErasedCache> {
        registry()
            .in_order
            .iter()
            .filter(|(site, _)| *site == self.site)
            .map(|(_, registered)| registered.erased)
            .collect()
    }

    /// A snapshot of the function's counters.
    pub fn stats(&self) -> Stats {
        let mut total = Stats::default();
        for cache in self.caches() {
            total.merge(&cache.stats());
        }
        total
    }

    /// Entries held in memory.
    pub fn len(&self) -> u64 {
        self.caches().iter().map(|cache| cache.len()).sum()
    }

    /// True when no entry is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Drops every entry of the function. When this returns, no later call
    /// sees a value whose load began before it.
    pub async fn invalidate_all(&self) {
        for cache in self.caches() {
            cache.invalidate_all();
        }
    }
}

/// Every cached function's stats, by name.
pub fn stats() -> Vec<(String, Stats)> {
    let caches: Vec<&'static dyn ErasedCache> = registry()
        .in_order
        .iter()
        .map(|(_, registered)| registered.erased)
        .collect();
    let mut all: Vec<(String, Stats)> = caches
        .into_iter()
        .map(|cache| (cache.name().to_owned(), cache.stats()))
        .collect();
    all.sort_by(|a, b| a.0.cmp(&b.0));
    all
}
