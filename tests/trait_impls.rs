//! `#[cached]` on the methods of trait impls, with `#[async_trait]` and with
//! native `async fn` in traits, through `#[herdcache::cached_impl]`.

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;

use herdcache::{cached, cached_impl, testing};

#[derive(Clone, Debug, PartialEq)]
struct User {
    id: u64,
    name: String,
}

/// A store as an application declares it, used as `&dyn UserStore`.
#[async_trait::async_trait]
trait UserStore: Send + Sync {
    async fn get(&self, id: u64) -> Option<User>;
    async fn count(&self) -> Result<u64, std::io::Error>;
}

struct PgRepo {
    queries: Arc<AtomicUsize>,
}

#[cached_impl]
#[async_trait::async_trait]
impl UserStore for PgRepo {
    #[cached(ttl = "60s", key = id)]
    async fn get(&self, id: u64) -> Option<User> {
        self.queries.fetch_add(1, SeqCst);
        Some(User {
            id,
            name: format!("user {id}"),
        })
    }

    /// Not cached: stays as written.
    async fn count(&self) -> Result<u64, std::io::Error> {
        self.queries.fetch_add(1, SeqCst);
        Ok(42)
    }
}

#[tokio::test]
async fn an_async_trait_impl_is_cached_through_dyn() {
    testing::isolate(async {
        let repo = PgRepo {
            queries: Arc::default(),
        };
        let store: &dyn UserStore = &repo;
        assert_eq!(store.get(7).await.unwrap().name, "user 7");
        assert_eq!(store.get(7).await.unwrap().name, "user 7");
        assert_eq!(repo.queries.load(SeqCst), 1);
        assert_eq!(store.count().await.unwrap(), 42);
        assert_eq!(store.count().await.unwrap(), 42);
        assert_eq!(repo.queries.load(SeqCst), 3);

        // The helpers live in an inherent impl of the type.
        PgRepo::get_invalidate(7).await;
        assert_eq!(store.get(7).await.unwrap().id, 7);
        assert_eq!(repo.queries.load(SeqCst), 4);
        assert_eq!(repo.get_uncached(7).await.unwrap().id, 7);
        assert_eq!(repo.queries.load(SeqCst), 5);
        let stats = PgRepo::get_cache().stats();
        assert_eq!((stats.hits, stats.loads), (1, 2));

        // Futures from the trait object are `Send`: they run on spawned tasks.
        let shared: Arc<dyn UserStore> = Arc::new(PgRepo {
            queries: repo.queries.clone(),
        });
        let spawned = tokio::spawn(async move { shared.get(7).await });
        assert_eq!(spawned.await.unwrap().unwrap().id, 7);
    })
    .await;
}

/// The same store with native `async fn` in the trait, used through generics.
trait NativeStore {
    fn get(&self, id: u64) -> impl std::future::Future<Output = Option<User>> + Send;
    async fn tenant(&self) -> String;
}

struct NativeRepo {
    tenant: String,
    queries: AtomicUsize,
}

#[cached_impl]
impl NativeStore for NativeRepo {
    #[cached(ttl = "60s", key = (self.tenant.clone(), id))]
    async fn get(&self, id: u64) -> Option<User> {
        self.queries.fetch_add(1, SeqCst);
        (id != 0).then(|| User {
            id,
            name: format!("{} user {id}", self.tenant),
        })
    }

    #[cached(ttl = "60s")]
    async fn tenant(&self) -> String {
        self.queries.fetch_add(1, SeqCst);
        self.tenant.clone()
    }
}

async fn name_of<S: NativeStore>(store: &S, id: u64) -> Option<String> {
    store.get(id).await.map(|user| user.name)
}

#[tokio::test]
async fn a_native_trait_impl_is_cached_through_generics() {
    testing::isolate(async {
        let acme = NativeRepo {
            tenant: "acme".into(),
            queries: AtomicUsize::new(0),
        };
        let globex = NativeRepo {
            tenant: "globex".into(),
            queries: AtomicUsize::new(0),
        };
        assert_eq!(name_of(&acme, 1).await.as_deref(), Some("acme user 1"));
        assert_eq!(name_of(&acme, 1).await.as_deref(), Some("acme user 1"));
        assert_eq!(name_of(&globex, 1).await.as_deref(), Some("globex user 1"));
        assert_eq!(name_of(&acme, 0).await, None);
        assert_eq!(acme.queries.load(SeqCst), 2);

        // The key reads `self`, so `_invalidate` takes `&self`.
        acme.get_invalidate(1).await;
        assert_eq!(name_of(&acme, 1).await.as_deref(), Some("acme user 1"));
        assert_eq!(acme.queries.load(SeqCst), 3);
        assert_eq!(globex.queries.load(SeqCst), 1);

        assert_eq!(acme.tenant().await, "acme");
        assert_eq!(acme.tenant().await, "acme");
        assert_eq!(acme.queries.load(SeqCst), 4);
        NativeRepo::tenant_invalidate().await;
        assert_eq!(acme.tenant_refresh().await, "acme");
        assert_eq!(acme.queries.load(SeqCst), 5);
    })
    .await;
}

/// A trait with an associated error type, as many stores have.
trait Catalog {
    type Error;
    async fn item(&self, id: u64) -> Result<String, Self::Error>;
}

#[derive(Clone)]
struct Shop;

#[derive(Clone, Debug, PartialEq)]
struct ShopError;

#[cached_impl]
impl Catalog for Shop {
    type Error = ShopError;

    // `Self::Error` stays valid in the helpers' inherent impl.
    #[cached(ttl = "60s", swr = "30s")]
    async fn item(&self, id: u64) -> Result<String, Self::Error> {
        if id == 0 {
            Err(ShopError)
        } else {
            Ok(format!("item {id}"))
        }
    }
}

static MAKE_LOADS: AtomicUsize = AtomicUsize::new(0);

#[cached_impl]
impl Shop {
    /// No `self`, no `Self`: `cached_impl` tells the macro it is in an impl,
    /// so the background refresh can name `Self::make_uncached`.
    #[cached(ttl = "60s", swr = "30s")]
    async fn make(id: u64) -> u64 {
        MAKE_LOADS.fetch_add(1, SeqCst);
        id
    }
}

#[tokio::test]
async fn associated_types_and_receiverless_functions_under_cached_impl() {
    testing::isolate(async {
        assert_eq!(Shop.item(3).await.unwrap(), "item 3");
        assert_eq!(Shop.item(0).await, Err(ShopError));
        Shop::item_invalidate(3).await;
        assert_eq!(Shop::make(5).await, 5);
        assert_eq!(Shop::make(5).await, 5);
        assert_eq!(MAKE_LOADS.load(SeqCst), 1);
    })
    .await;
}

/// A type compiled out, and its cached impl with it: the helpers'
/// inherent impl carries the impl's `cfg` (without it, this does not build).
#[cfg(any())]
struct CompiledOut;

#[cached_impl]
#[cfg(any())]
impl CompiledOut {
    #[cached(ttl = "60s")]
    async fn get(&self, id: u64) -> u64 {
        id
    }
}
