//! After `<fn>_invalidate(..)` or `invalidate_all()` returns, no call sees a
//! value whose load began before it; a load in flight across the
//! invalidation answers its own callers but is never stored.

mod common;

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::SeqCst};

use common::{finishes, wait_until, Gate};
use herdcache::cached;

/// The origin's current version of every record.
static VERSION: AtomicU64 = AtomicU64::new(0);
static CALLS: AtomicUsize = AtomicUsize::new(0);
static FIRST_LOAD_GATE: Gate = Gate::new();

/// Reads the version when its load begins; the first load then stalls.
#[cached(ttl = "60s")]
async fn record(id: u64) -> (u64, u64) {
    let version = VERSION.load(SeqCst);
    if CALLS.fetch_add(1, SeqCst) == 0 {
        FIRST_LOAD_GATE.pass().await;
    }
    (id, version)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_after_invalidate_never_sees_a_load_that_began_before_it() {
    // A load of version 0 is in flight, with a caller waiting on it.
    let stale_leader = tokio::spawn(record(1));
    wait_until("the first load began", || CALLS.load(SeqCst) == 1).await;
    let stale_waiter = tokio::spawn(record(1));
    wait_until("a caller joined it", || {
        record_cache().stats().coalesced == 1
    })
    .await;

    // The origin changes and the key is invalidated.
    VERSION.store(1, SeqCst);
    record_invalidate(1).await;

    // A call that starts now does not join the old load: it loads anew.
    assert_eq!(finishes("a call after invalidate", record(1)).await, (1, 1));

    // The old load answers its own callers with what it read...
    FIRST_LOAD_GATE.open();
    assert_eq!(stale_leader.await.unwrap(), (1, 0));
    assert_eq!(stale_waiter.await.unwrap(), (1, 0));
    // ...but did not overwrite the newer value.
    assert_eq!(record(1).await, (1, 1));
    assert_eq!(CALLS.load(SeqCst), 2);
    assert_eq!(record_cache().stats().invalidations, 1);
}

static ALL_VERSION: AtomicU64 = AtomicU64::new(0);
static ALL_A_LOADS: AtomicUsize = AtomicUsize::new(0);
static ALL_GATE: Gate = Gate::new();

/// The first load of "a" stalls; everything else loads at once.
#[cached(ttl = "60s")]
async fn setting(name: &str) -> String {
    let version = ALL_VERSION.load(SeqCst);
    if name == "a" && ALL_A_LOADS.fetch_add(1, SeqCst) == 0 {
        ALL_GATE.pass().await;
    }
    format!("{name}@{version}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalidate_all_is_linearizable_too() {
    assert_eq!(setting("b").await, "b@0");
    let stale = tokio::spawn(setting("a"));
    wait_until("the load of a began", || ALL_A_LOADS.load(SeqCst) == 1).await;

    ALL_VERSION.store(1, SeqCst);
    setting_cache().invalidate_all().await;

    assert_eq!(setting("b").await, "b@1", "the stored value is gone");
    assert_eq!(
        finishes("a call after invalidate_all", setting("a")).await,
        "a@1",
        "the load in flight was not joined"
    );
    ALL_GATE.open();
    assert_eq!(stale.await.unwrap(), "a@0");
    assert_eq!(setting("a").await, "a@1", "the stale load was not stored");
    assert_eq!(setting_cache().len(), 2);
}

static REFRESH_VERSION: AtomicU64 = AtomicU64::new(0);
static REFRESH_LOADS: AtomicUsize = AtomicUsize::new(0);

#[cached(ttl = "60s")]
async fn price(sku: &str) -> String {
    REFRESH_LOADS.fetch_add(1, SeqCst);
    format!("{sku}: v{}", REFRESH_VERSION.load(SeqCst))
}

#[tokio::test]
async fn refresh_recomputes_a_fresh_value_and_stores_it() {
    assert_eq!(price("apple").await, "apple: v0");
    REFRESH_VERSION.store(1, SeqCst);
    assert_eq!(price("apple").await, "apple: v0", "still fresh");
    assert_eq!(price_refresh("apple").await, "apple: v1");
    assert_eq!(price("apple").await, "apple: v1", "the refresh was stored");
    assert_eq!(REFRESH_LOADS.load(SeqCst), 2);
}

static UNCACHED_LOADS: AtomicUsize = AtomicUsize::new(0);

#[cached(ttl = "60s")]
async fn expensive(n: u64) -> u64 {
    UNCACHED_LOADS.fetch_add(1, SeqCst);
    n * n
}

#[tokio::test]
async fn uncached_runs_the_body_and_leaves_the_cache_alone() {
    assert_eq!(expensive_uncached(3).await, 9);
    assert_eq!(expensive_uncached(3).await, 9);
    assert_eq!(UNCACHED_LOADS.load(SeqCst), 2);
    assert_eq!(expensive_cache().stats().loads, 0);
    assert_eq!(expensive(3).await, 9);
    assert_eq!(UNCACHED_LOADS.load(SeqCst), 3, "the cache was still cold");
}
