//! Where each `#[cached]` function finds its cache, and how
//! [`stats()`](crate::stats) finds them all.
//!
//! A function is identified by its *site* (its name and where it is written)
//! and, for a method, its *scope*: `type_name::<Self>()`, so that each
//! instantiation of a generic impl gets its own cache even when its key and
//! value types do not mention the impl's parameters. The function and each
//! generated helper keep a [`Slot`] that resolves to the `&'static FnCache`
//! once and then reads it lock-free.
//!
//! Inside [`testing::isolate`](crate::testing::isolate) each function gets
//! other caches, registered under the isolation's number; those resolve
//! through the registry's lock on every call (tests only), and every listing
//! shows the caller's own isolation (0 outside `isolate`).

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::pin::Pin;
use std::sync::{Mutex, OnceLock, PoisonError};

use crate::config::CacheConfig;
use crate::fn_cache::FnCache;
use crate::isolation::current_isolation;
use crate::redis::Codec;
use crate::stats::Stats;
use crate::tier::Memory;

/// What the registry needs of a cache without knowing its types.
trait ErasedCache: Send + Sync {
    fn name(&self) -> &str;
    fn stats(&self) -> Stats;
    fn len(&self) -> u64;
    /// Every entry, in memory and (a distributed function) in Redis.
    fn invalidate_all(&self) -> Pin<Box<dyn Future<Output = ()> + Send + '_>>;
    /// Every entry in this instance's memory.
    fn invalidate_all_here(&self);
    /// Frees the memory tier (of a cache whose isolation ended).
    fn release(&self);
    fn memory(&self) -> Memory;
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
    fn invalidate_all(&self) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        Box::pin(FnCache::invalidate_all(self))
    }
    fn invalidate_all_here(&self) {
        FnCache::invalidate_all_here(self)
    }
    fn release(&self) {
        FnCache::release(self)
    }
    fn memory(&self) -> Memory {
        FnCache::memory(self)
    }
}

#[derive(Clone, Copy)]
struct Registered {
    typed: &'static (dyn Any + Send + Sync),
    erased: &'static dyn ErasedCache,
}

/// Where a cache is written, and for a method, the type it belongs to.
type Place = (&'static str, &'static str);

/// Which caches a call sees: 0 outside `testing::isolate`.
type Isolation = u64;

#[derive(Default)]
struct Registry {
    by_place: HashMap<(Place, Isolation, TypeId), Registered>,
    in_order: Vec<(Place, Isolation, Registered)>,
    handles: HashMap<Place, &'static CacheHandle>,
}

impl Registry {
    /// Forgets the caches of an isolation that ended, emptying them and
    /// freeing their memory tiers. (The rest of each cache stays allocated,
    /// as it was handed out as `&'static`: a few hundred bytes, tests only.)
    fn forget(&mut self, isolation: Isolation) {
        self.by_place.retain(|(_, of, _), _| *of != isolation);
        self.in_order.retain(|(_, of, registered)| {
            let keep = *of != isolation;
            if !keep {
                registered.erased.invalidate_all_here();
                registered.erased.release();
            }
            keep
        });
    }

    /// The caches of `isolation`, in registration order.
    fn caches_of(&self, isolation: Isolation) -> impl Iterator<Item = (Place, Registered)> + '_ {
        self.in_order
            .iter()
            .filter(move |(_, of, _)| *of == isolation)
            .map(|(place, _, registered)| (*place, *registered))
    }
}

fn registry() -> std::sync::MutexGuard<'static, Registry> {
    static REGISTRY: OnceLock<Mutex<Registry>> = OnceLock::new();
    let mut registry = REGISTRY
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    for isolation in crate::isolation::take_ended() {
        registry.forget(isolation);
    }
    registry
}

/// The cache of `site` for key `K` and value `V`, made from `config` the
/// first time. Caches live for the whole program, like the functions.
fn get_or_register<K, V>(
    place: Place,
    isolation: Isolation,
    config: fn() -> CacheConfig,
    codec: Option<Codec<K, V>>,
) -> &'static FnCache<K, V>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    let mut registry = registry();
    let id = (place, isolation, TypeId::of::<FnCache<K, V>>());
    if let Some(registered) = registry.by_place.get(&id) {
        return registered
            .typed
            .downcast_ref()
            .expect("the registry is keyed by type");
    }
    let mut config = config();
    if let Some(clock) = crate::isolation::clock_of(isolation) {
        config.clock = crate::Clock::Manual(clock);
    }
    let cache = FnCache::new_in(config, isolation);
    let cache = match codec {
        Some(codec) => cache.with_installed_redis(codec),
        None => cache,
    };
    let cache: &'static FnCache<K, V> = Box::leak(Box::new(cache));
    // A distributed cache hears the other instances' invalidations.
    cache.listen_bus();
    let registered = Registered {
        typed: cache,
        erased: cache,
    };
    registry.by_place.insert(id, registered);
    registry.in_order.push((place, isolation, registered));
    cache
}

/// How many instantiations (of a method of a generic impl) a slot resolves
/// lock-free; more resolve through the registry's lock on every call.
const FAST_SCOPES: usize = 4;

/// A resolved cache: its scope, and the cache behind `Any`.
type Resolved = (&'static str, &'static (dyn Any + Send + Sync));

/// A function's way to its cache: one `static` per generated item.
pub struct Slot {
    site: &'static str,
    caches: [OnceLock<Resolved>; FAST_SCOPES],
}

impl Slot {
    /// A slot for the function written at `site`.
    pub const fn new(site: &'static str) -> Self {
        Slot {
            site,
            caches: [const { OnceLock::new() }; FAST_SCOPES],
        }
    }

    /// The function's cache in `scope` (`""` for a free function,
    /// `type_name::<Self>()` for a method), made from `config` on first use.
    ///
    /// `config` is a plain function, not a closure type: each cached
    /// function calls this from several items, and a closure type each
    /// would compile the whole cache construction once per item.
    /// Always inlined: a call's prologue and epilogue cost a fifth of it.
    #[inline(always)]
    pub fn cache<K, V>(
        &'static self,
        scope: &'static str,
        config: fn() -> CacheConfig,
        codec: Option<Codec<K, V>>,
    ) -> &'static FnCache<K, V>
    where
        K: Hash + Eq + Clone + Send + Sync + 'static,
        V: Clone + Send + Sync + 'static,
    {
        let isolation = current_isolation();
        if isolation == 0 {
            for place in &self.caches {
                let Some(resolved) = place.get() else {
                    break;
                };
                if let Some(cache) = cache_in(resolved, scope) {
                    return cache;
                }
            }
        }
        self.resolve(scope, isolation, config, codec)
    }

    #[cold]
    fn resolve<K, V>(
        &'static self,
        scope: &'static str,
        isolation: Isolation,
        config: fn() -> CacheConfig,
        codec: Option<Codec<K, V>>,
    ) -> &'static FnCache<K, V>
    where
        K: Hash + Eq + Clone + Send + Sync + 'static,
        V: Clone + Send + Sync + 'static,
    {
        let cache = get_or_register::<K, V>((self.site, scope), isolation, config, codec);
        if isolation != 0 {
            return cache;
        }
        // The first instantiations seen (methods of generic impls have one
        // per `Self` type) each take one fast-path place. Threads racing to
        // resolve the same scope agree on one place instead of filling all.
        for place in &self.caches {
            if cache_in::<K, V>(place.get_or_init(|| (scope, cache)), scope).is_some() {
                break;
            }
        }
        cache
    }
}

/// The cache a fast-path place holds, if it is the one for `scope` and types.
#[inline]
fn cache_in<K: 'static, V: 'static>(
    (place_scope, any): &Resolved,
    scope: &'static str,
) -> Option<&'static FnCache<K, V>> {
    // `type_name` of one type is one constant: the pointers match.
    let same_scope = std::ptr::eq(*place_scope, scope) || *place_scope == scope;
    if same_scope {
        any.downcast_ref()
    } else {
        None
    }
}

/// The handle `<fn>_cache()` returns: the stats and controls of one cached
/// function (of one instantiation, for a method of a generic impl).
///
/// Before the function's first call there is no cache yet: stats are zero
/// and there is nothing to invalidate.
pub struct CacheHandle {
    place: Place,
    name: String,
}

impl std::fmt::Debug for CacheHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CacheHandle")
            .field("name", &self.name)
            .finish()
    }
}

impl CacheHandle {
    #[doc(hidden)]
    pub fn of(
        site: &'static str,
        scope: &'static str,
        name: impl FnOnce() -> String,
    ) -> &'static CacheHandle {
        let place = (site, scope);
        let mut registry = registry();
        let handle: &mut &'static CacheHandle =
            registry.handles.entry(place).or_insert_with(|| {
                Box::leak(Box::new(CacheHandle {
                    place,
                    name: name(),
                }))
            });
        handle
    }

    /// The function's name, as [`stats()`] lists it.
    pub fn name(&self) -> &str {
        &self.name
    }

    fn caches(&self) -> Vec<&'static dyn ErasedCache> {
        visible_caches(Some(self.place))
    }

    /// A snapshot of the function's counters.
    pub fn stats(&self) -> Stats {
        let mut caches = self.caches().into_iter();
        let Some(first) = caches.next() else {
            return Stats::default();
        };
        let mut total = first.stats();
        for cache in caches {
            total.merge(&cache.stats());
        }
        total
    }

    /// The memory tier the function's values are kept in; `None` before
    /// its first call (its cache is made then, and the process default
    /// fixed).
    pub fn memory(&self) -> Option<Memory> {
        self.caches().first().map(|cache| cache.memory())
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
    /// sees a value whose load began before it. A `distributed` function's
    /// copies in Redis end too, and the other instances drop theirs (see
    /// [`FnCache::invalidate_all`]).
    pub async fn invalidate_all(&self) {
        for cache in self.caches() {
            cache.invalidate_all().await;
        }
    }
}

/// The caches the caller sees (its isolation's), of the function written
/// at `place` or of every function, collected so that the registry's lock
/// is not held while they are used.
fn visible_caches(place: Option<Place>) -> Vec<&'static dyn ErasedCache> {
    registry()
        .caches_of(current_isolation())
        .filter(|(at, _)| place.is_none_or(|place| *at == place))
        .map(|(_, registered)| registered.erased)
        .collect()
}

/// Every cached function's stats, by name, sorted by name.
///
/// A function appears once it has been called. Its name is the `name = ".."`
/// attribute if it has one, else its path: `crate::module::function`, or
/// `crate::module::Type::method` for a method (`Type<Args>` for each
/// instantiation of a generic impl, which is listed apart). Inside
/// [`testing::isolate`](crate::testing::isolate) it lists the isolated
/// caches only.
pub fn stats() -> Vec<(String, Stats)> {
    let mut all: Vec<(String, Stats)> = visible_caches(None)
        .into_iter()
        .map(|cache| (cache.name().to_owned(), cache.stats()))
        .collect();
    all.sort_by(|a, b| a.0.cmp(&b.0));
    all
}

/// Every cached function's stats as a plain-text table, one row a function,
/// sorted by name: what an operator pastes into a ticket.
///
/// ```text
/// function                 hit %  hits  misses  loads  errors  stale  fail-safe        p95
/// app::users::get_user      98.0   980      20     12       1      3          0  103.2ms
/// ```
pub fn stats_table() -> String {
    crate::stats::table(&stats())
}

/// Drops every entry of every cached function (inside
/// [`testing::isolate`](crate::testing::isolate): of the isolated caches).
/// When this returns, no later call sees a value whose load began before it.
/// The copies of `distributed` functions in Redis end too, and the other
/// instances drop theirs (see [`FnCache::invalidate_all`]).
pub async fn invalidate_all() {
    for cache in visible_caches(None) {
        cache.invalidate_all().await;
    }
}
