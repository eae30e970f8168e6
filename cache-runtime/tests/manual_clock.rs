//! Expiry and jitter decided by the engine's clock, driven by hand: exact
//! bounds, no sleeping.

use std::future::ready;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::time::Duration;

use herdcache_runtime::{CacheConfig, Clock, FailureShare, FnCache, LoadHooks, ManualClock};

fn cache(ttl: Duration, jitter: f64, clock: &std::sync::Arc<ManualClock>) -> FnCache<u64, u64> {
    FnCache::new(
        CacheConfig::new("manual", ttl)
            .jitter(jitter)
            .clock(Clock::Manual(clock.clone())),
    )
}

async fn get(cache: &FnCache<u64, u64>, key: u64, loads: &AtomicUsize) -> u64 {
    cache
        .get_or_load(key, FailureShare::unit(), async {
            loads.fetch_add(1, SeqCst);
            Some(key)
        })
        .await
        .expect("the loader returns Some")
}

#[tokio::test]
async fn a_value_is_fresh_for_exactly_its_ttl() {
    let clock = ManualClock::new();
    let cache = cache(Duration::from_secs(60), 0.0, &clock);
    let loads = AtomicUsize::new(0);
    get(&cache, 1, &loads).await;
    clock.advance(Duration::from_millis(59_999));
    get(&cache, 1, &loads).await;
    assert_eq!(loads.load(SeqCst), 1, "fresh just before the ttl");
    clock.advance(Duration::from_millis(1));
    get(&cache, 1, &loads).await;
    assert_eq!(loads.load(SeqCst), 2, "expired at the ttl");
}

#[tokio::test]
async fn jittered_ttls_spread_over_ttl_times_one_plus_minus_jitter() {
    let clock = ManualClock::new();
    let cache = cache(Duration::from_secs(100), 0.5, &clock);
    let loads = AtomicUsize::new(0);
    for key in 0..400 {
        get(&cache, key, &loads).await;
    }
    let fresh =
        |cache: &FnCache<u64, u64>| (0..400).filter(|k| cache.get_fresh(k).is_some()).count();

    clock.advance(Duration::from_millis(49_999));
    assert_eq!(fresh(&cache), 400, "no ttl is below ttl * (1 - jitter)");
    clock.advance(Duration::from_millis(50_001));
    let at_ttl = fresh(&cache);
    assert!(
        (120..=280).contains(&at_ttl),
        "about half are fresh at the nominal ttl, got {at_ttl}"
    );
    clock.advance(Duration::from_secs(50));
    assert_eq!(fresh(&cache), 0, "no ttl is above ttl * (1 + jitter)");
}

#[tokio::test]
async fn without_jitter_keys_written_together_expire_together() {
    let clock = ManualClock::new();
    let cache = cache(Duration::from_secs(10), 0.0, &clock);
    let loads = AtomicUsize::new(0);
    for key in 0..100 {
        get(&cache, key, &loads).await;
    }
    clock.advance(Duration::from_millis(9_999));
    assert!((0..100).all(|k| cache.get_fresh(&k).is_some()));
    clock.advance(Duration::from_millis(1));
    assert!((0..100).all(|k| cache.get_fresh(&k).is_none()));
}

#[tokio::test]
async fn a_refresh_supersedes_a_load_in_flight() {
    let cache: FnCache<u64, u64> =
        FnCache::new(CacheConfig::new("refresh", Duration::from_secs(60)));
    let (release, gate) = tokio::sync::oneshot::channel::<()>();
    // A slow load of an old value is in flight...
    let slow = cache.get_or_load(1, FailureShare::unit(), async {
        gate.await.ok();
        Some(1)
    });
    let refreshed = async {
        // ...when a refresh of a newer value runs and lands first.
        let fresh: Option<u64> = cache
            .refresh(1, LoadHooks::new(FailureShare::unit()), ready(Some(2)))
            .await;
        release.send(()).unwrap();
        fresh
    };
    let (slow, refreshed) = tokio::join!(slow, refreshed);
    assert_eq!((slow, refreshed), (Some(1), Some(2)));
    assert_eq!(
        cache.get_fresh(&1),
        Some(2),
        "the superseded load did not store"
    );
}
