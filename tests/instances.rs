//! Instances are never merged by surprise: a key may read `self`, and tests
//! can isolate their caches from each other's.

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;

use herdcache::{cached, testing};

/// A repository per tenant: the tenant is part of every key.
struct TenantRepo {
    tenant: u64,
    db: Db,
    loads: AtomicUsize,
}

struct Db {
    name: String,
}

impl Db {
    fn name(&self) -> &str {
        &self.name
    }
}

impl TenantRepo {
    fn new(tenant: u64, db: &str) -> Self {
        TenantRepo {
            tenant,
            db: Db { name: db.into() },
            loads: AtomicUsize::new(0),
        }
    }

    #[cached(ttl = "5m", key = (self.tenant, id))]
    async fn user(&self, id: u64) -> String {
        self.loads.fetch_add(1, SeqCst);
        format!("user {id} of tenant {}", self.tenant)
    }

    #[cached(ttl = "5m", key = (self.db.name().to_owned(), id))]
    async fn row(&self, id: u64) -> String {
        self.loads.fetch_add(1, SeqCst);
        format!("row {id} in {}", self.db.name())
    }
}

#[tokio::test]
async fn a_key_that_reads_self_keeps_instances_apart() {
    let acme = TenantRepo::new(1, "acme-db");
    let globex = TenantRepo::new(2, "globex-db");
    assert_eq!(acme.user(7).await, "user 7 of tenant 1");
    assert_eq!(globex.user(7).await, "user 7 of tenant 2");
    assert_eq!(acme.user(7).await, "user 7 of tenant 1");
    assert_eq!((acme.loads.load(SeqCst), globex.loads.load(SeqCst)), (1, 1));

    // Another instance of the same tenant shares the tenant's values.
    let acme_too = TenantRepo::new(1, "acme-db");
    assert_eq!(acme_too.user(7).await, "user 7 of tenant 1");
    assert_eq!(acme_too.loads.load(SeqCst), 0);

    // `_invalidate` needs the key, so it takes `&self`: only acme's goes.
    acme.user_invalidate(7).await;
    assert_eq!(acme.user(7).await, "user 7 of tenant 1");
    assert_eq!(globex.user(7).await, "user 7 of tenant 2");
    assert_eq!((acme.loads.load(SeqCst), globex.loads.load(SeqCst)), (2, 1));
    // The handle is still the function's, an associated function.
    assert_eq!(TenantRepo::user_cache().len(), 2);
}

#[tokio::test]
async fn a_key_may_call_methods_on_self() {
    let primary = TenantRepo::new(1, "primary");
    let replica = TenantRepo::new(1, "replica");
    assert_eq!(primary.row(3).await, "row 3 in primary");
    assert_eq!(replica.row(3).await, "row 3 in replica");
    assert_eq!(primary.row(3).await, "row 3 in primary");
    replica.row_invalidate(3).await;
    assert_eq!(replica.row(3).await, "row 3 in replica");
    assert_eq!(
        (primary.loads.load(SeqCst), replica.loads.load(SeqCst)),
        (1, 2)
    );
}

#[derive(Clone)]
struct Request {
    id: String,
    verbose: bool,
}

static REQUEST_LOADS: AtomicUsize = AtomicUsize::new(0);

/// `key = req.id` copies the field, as arguments are copied: the body still
/// owns `req`.
#[cached(ttl = "60s", key = req.id)]
async fn handle(req: Request) -> String {
    REQUEST_LOADS.fetch_add(1, SeqCst);
    format!("{} verbose={}", req.id, req.verbose)
}

#[tokio::test]
async fn a_field_in_the_key_is_copied_not_moved() {
    let req = Request {
        id: "r-1".into(),
        verbose: true,
    };
    assert_eq!(handle(req.clone()).await, "r-1 verbose=true");
    let quiet = Request {
        verbose: false,
        ..req.clone()
    };
    assert_eq!(handle(quiet).await, "r-1 verbose=true");
    assert_eq!(REQUEST_LOADS.load(SeqCst), 1);
    handle_invalidate(req.clone()).await;
    assert_eq!(handle(req).await, "r-1 verbose=true");
    assert_eq!(REQUEST_LOADS.load(SeqCst), 2);
}

/// A repository over an in-memory "database": the shape of the test a user
/// wrote, where one test's rows leaked into the other's.
struct UserRepo {
    rows: Vec<(u64, &'static str)>,
    queries: Arc<AtomicUsize>,
}

impl UserRepo {
    #[cached(ttl = "5m", key = id)]
    async fn find(&self, id: u64) -> Option<String> {
        self.queries.fetch_add(1, SeqCst);
        self.rows
            .iter()
            .find(|(row, _)| *row == id)
            .map(|(_, name)| name.to_string())
    }
}

#[tokio::test]
async fn isolated_tests_do_not_see_each_others_values_or_stats() {
    let seeded = || UserRepo {
        rows: vec![(1, "ada")],
        queries: Arc::default(),
    };
    let empty = || UserRepo {
        rows: vec![],
        queries: Arc::default(),
    };

    // Two "tests", one after the other on this thread, each isolated.
    testing::isolate(async {
        let repo = seeded();
        assert_eq!(repo.find(1).await.as_deref(), Some("ada"));
        assert_eq!(repo.find(1).await.as_deref(), Some("ada"));
        assert_eq!(repo.queries.load(SeqCst), 1);
        assert_eq!(UserRepo::find_cache().stats().hits, 1);
    })
    .await;
    testing::isolate(async {
        let repo = empty();
        // Without isolation this would be "ada", with zero queries.
        assert_eq!(repo.find(1).await, None);
        assert_eq!(repo.queries.load(SeqCst), 1);
        let stats = UserRepo::find_cache().stats();
        assert_eq!((stats.hits, stats.misses), (0, 1));
        assert!(herdcache::stats()
            .iter()
            .all(|(name, _)| name.ends_with("UserRepo::find")));
    })
    .await;

    // Two isolated futures interleaved on one thread stay apart too.
    let (a, b) = tokio::join!(
        testing::isolate(async {
            let repo = seeded();
            tokio::task::yield_now().await;
            repo.find(1).await
        }),
        testing::isolate(async {
            let repo = empty();
            tokio::task::yield_now().await;
            repo.find(1).await
        }),
    );
    assert_eq!((a.as_deref(), b), (Some("ada"), None));

    // Outside any isolation, the process-wide cache saw none of it.
    assert_eq!(UserRepo::find_cache().stats().misses, 0);
    // The handle shows which function it belongs to.
    assert_eq!(
        format!("{:?}", UserRepo::find_cache()),
        "CacheHandle { name: \"instances::UserRepo::find\" }"
    );
}

static EVERYTHING_LOADS: AtomicUsize = AtomicUsize::new(0);

#[cached(ttl = "60s")]
async fn everything(id: u64) -> u64 {
    EVERYTHING_LOADS.fetch_add(1, SeqCst);
    id
}

#[tokio::test]
async fn invalidate_all_drops_every_function() {
    testing::isolate(async {
        let repo = UserRepo {
            rows: vec![(2, "grace")],
            queries: Arc::default(),
        };
        repo.find(2).await;
        everything(2).await;
        herdcache::invalidate_all().await;
        repo.find(2).await;
        everything(2).await;
        assert_eq!(repo.queries.load(SeqCst), 2);
        assert_eq!(EVERYTHING_LOADS.load(SeqCst), 2);
    })
    .await;
}

const SCHEMA_VERSION: u32 = 3;
static VERSIONED_LOADS: AtomicUsize = AtomicUsize::new(0);

/// A constant beside the arguments in a key tuple.
#[cached(ttl = "60s", key = (id, SCHEMA_VERSION))]
async fn versioned(id: u64) -> u64 {
    VERSIONED_LOADS.fetch_add(1, SeqCst);
    id + u64::from(SCHEMA_VERSION)
}

#[tokio::test]
async fn a_key_may_hold_a_constant() {
    testing::isolate(async {
        assert_eq!(versioned(1).await, 4);
        assert_eq!(versioned(1).await, 4);
        assert_eq!(VERSIONED_LOADS.load(SeqCst), 1);
        versioned_invalidate(1).await;
        assert_eq!(versioned(1).await, 4);
        assert_eq!(VERSIONED_LOADS.load(SeqCst), 2);
    })
    .await;
}

static WRAPPED_LOADS: AtomicUsize = AtomicUsize::new(0);

/// A field passed by value inside a key expression is cloned too: the body
/// still owns `req`.
#[cached(ttl = "60s", key = (Some(req.id), req.verbose))]
async fn wrapped(req: Request) -> String {
    WRAPPED_LOADS.fetch_add(1, SeqCst);
    req.id
}

#[tokio::test]
async fn a_field_passed_by_value_in_a_key_expression_is_cloned() {
    testing::isolate(async {
        let req = Request {
            id: "r-9".into(),
            verbose: false,
        };
        assert_eq!(wrapped(req.clone()).await, "r-9");
        assert_eq!(wrapped(req.clone()).await, "r-9");
        assert_eq!(WRAPPED_LOADS.load(SeqCst), 1);
        wrapped_invalidate(req.clone()).await;
        assert_eq!(wrapped(req).await, "r-9");
        assert_eq!(WRAPPED_LOADS.load(SeqCst), 2);
    })
    .await;
}
