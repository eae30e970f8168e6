//! `distributed = true` end to end, against a `redis-server` of the test's
//! own: a value loaded once is shared (an isolated test scope plays a second
//! instance: caches of its own, the same Redis), `_invalidate` deletes the
//! shared copy, `version` moves the key space. Run with `--features redis`.
#![cfg(feature = "redis")]

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};

use herdcache::cached;
use redis::AsyncCommands;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Price {
    sku: u64,
    cents: u64,
}

static LOADS: AtomicUsize = AtomicUsize::new(0);

#[cached(ttl = "60s", distributed = true)]
async fn price(sku: u64) -> Result<Price, std::io::Error> {
    LOADS.fetch_add(1, SeqCst);
    Ok(Price { sku, cents: 999 })
}

#[cached(ttl = "60s", distributed = true, version = 2, name = "prices.v2")]
async fn price_v2(sku: u64) -> Option<Price> {
    LOADS.fetch_add(1, SeqCst);
    Some(Price { sku, cents: 1_099 })
}

async fn keys(redis: &mut redis::aio::MultiplexedConnection) -> Vec<String> {
    let mut keys: Vec<String> = redis.keys("it:*").await.unwrap();
    keys.sort();
    keys
}

#[tokio::test]
async fn a_fleet_shares_values_and_invalidations_through_redis() {
    let server = herdcache_test_support::RedisServer::start().unwrap();
    herdcache::Runtime::builder()
        .redis(server.url())
        .namespace("it")
        .timeout(std::time::Duration::from_secs(5))
        .install()
        .unwrap();
    let mut redis = redis::Client::open(server.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();

    assert_eq!(price(7).await.unwrap().cents, 999);
    assert_eq!(LOADS.load(SeqCst), 1);
    let stored = keys(&mut redis).await;
    // The value, and its key's version (made by the load, on its slot).
    assert_eq!(stored.len(), 2, "{stored:?}");
    assert!(stored[1].ends_with("}:ver"), "{stored:?}");
    let name = &stored[0];
    // The function's key space, its epochs (namespace, function), then a
    // digest, not the key: fixed length, no user text.
    assert!(
        name.starts_with("it:distributed::price:v1:e0.0:{"),
        "{name}"
    );
    assert_eq!(
        name.len(),
        "it:distributed::price:v1:e0.0:{}".len() + 32,
        "{name}"
    );

    // Another instance: caches of its own, the same Redis. No load.
    herdcache::testing::isolate(async {
        assert_eq!(price(7).await.unwrap().cents, 999);
        assert_eq!(price_cache().stats().l2_hits, 1);
    })
    .await;
    assert_eq!(LOADS.load(SeqCst), 1);

    // `version` is another key space.
    assert_eq!(price_v2(7).await.unwrap().cents, 1_099);
    assert!(keys(&mut redis)
        .await
        .iter()
        .any(|key| key.starts_with("it:prices.v2:v2:e0.0:{")));

    // `_invalidate` deletes the shared copy: the other instance loads.
    price_invalidate(7).await;
    let left = keys(&mut redis).await;
    let values: Vec<_> = left.iter().filter(|key| key.ends_with('}')).collect();
    assert_eq!(values.len(), 1, "only price_v2's value is left: {left:?}");
    // And the key's version moved, so a late write-back is never served.
    assert!(left.iter().any(|key| key.ends_with("}:ver")), "{left:?}");
    herdcache::testing::isolate(async {
        price(7).await.unwrap();
    })
    .await;
    assert_eq!(LOADS.load(SeqCst), 3);

    // `invalidate_all` ends the shared copies too: neither this instance
    // nor another is served the old value from Redis.
    herdcache::invalidate_all().await;
    assert_eq!(price(7).await.unwrap().cents, 999);
    assert_eq!(LOADS.load(SeqCst), 4, "loaded: not read back from Redis");
    herdcache::testing::isolate(async {
        price(7).await.unwrap();
        assert_eq!(price_cache().stats().l2_hits, 1, "the new value");
    })
    .await;
    assert_eq!(LOADS.load(SeqCst), 4);
    // The same through the function's handle.
    price_cache().invalidate_all().await;
    herdcache::testing::isolate(async {
        price(7).await.unwrap();
        assert_eq!(price_cache().stats().l2_hits, 0, "nothing in Redis");
    })
    .await;
    assert_eq!(LOADS.load(SeqCst), 5);
    price(7).await.unwrap();
    assert_eq!(
        LOADS.load(SeqCst),
        5,
        "the other instance's load, from Redis"
    );
    let mut epochs: Vec<String> = redis.keys("it:*:epoch").await.unwrap();
    epochs.sort();
    assert_eq!(
        epochs,
        ["it:distributed::price:v1:epoch", "it:prices.v2:v2:epoch"],
        "one epoch key a distributed function, bumped by invalidate_all"
    );
}
