//! The Redis tier against a 3-master Redis Cluster of the test's own: the
//! same behaviour as against one server (shared values, one origin call
//! for the fleet, invalidations and tags that reach every instance), with a
//! value, its lock and its version on one slot. Run with `--features redis`.
#![cfg(feature = "redis")]

use std::sync::Arc;
use std::time::Duration;

use herdcache_runtime::{
    CacheConfig, Clock, Codec, FnCache, ManualClock, RedisTier, Runtime, Tags,
};
use herdcache_test_support::RedisCluster;

mod common;
use common::*;

fn tier(cluster: &RedisCluster) -> Arc<RedisTier> {
    Runtime::builder()
        .redis_cluster(cluster.urls())
        .namespace("cluster")
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap()
}

fn instance(tier: Arc<RedisTier>, clock: &Arc<ManualClock>) -> &'static FnCache<u64, String> {
    let cache = FnCache::new(
        CacheConfig::new("prices", TTL)
            .distributed()
            .clock(Clock::Manual(clock.clone())),
    )
    .with_redis(tier, Codec::of(1));
    let cache: &'static FnCache<u64, String> = Box::leak(Box::new(cache));
    cache.listen_bus();
    cache
}

async fn slot(cluster: &RedisCluster, key: &str) -> i64 {
    let mut node = redis::Client::open(cluster.urls()[0].as_str())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    redis::cmd("CLUSTER")
        .arg("KEYSLOT")
        .arg(key)
        .query_async(&mut node)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fleet_on_a_redis_cluster_behaves_as_on_one_server() {
    let cluster = RedisCluster::start().unwrap();
    let clock = ManualClock::new();
    let tiers = [tier(&cluster), tier(&cluster), tier(&cluster)];
    Runtime::install(tiers[0].clone()).unwrap();
    let [a, b, c] = tiers.clone().map(|tier| instance(tier, &clock));
    let fleet = [a, b, c];
    wait_until("the bus is up on every instance", || {
        tiers.iter().all(|tier| tier.bus_connected())
    })
    .await;

    // A value, its lock and its version share a slot.
    let key = a.redis_key(&1).await.unwrap();
    let slots = (
        slot(&cluster, &key).await,
        slot(&cluster, &format!("{key}:lock")).await,
        // Not under the epochs (both 0 here): `{prefix}:{digest}:ver`.
        slot(&cluster, &format!("{}:ver", key.replace(":e0.0:", ":"))).await,
    );
    assert_eq!((slots.0, slots.0), (slots.1, slots.2));

    // One origin call for 3 instances × 10 callers on a cold key.
    let mut origin = Origin::new(|n| Ok(format!("v{n}")));
    origin.gate = Gate::closed();
    let callers = callers_on(&fleet, 1, 10, &origin);
    wait_until("one instance is loading", || origin.loads() == 1).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    origin.gate.release();
    for caller in callers {
        assert_eq!(caller.await.unwrap().unwrap(), "v0");
    }
    assert_eq!(origin.loads(), 1);

    // An invalidation reaches every instance's memory (the bus, through
    // one node: PUBLISH reaches the whole cluster), and the copy in Redis.
    tokio::time::sleep(Duration::from_millis(200)).await;
    a.invalidate(&1).await;
    wait_until("b and c dropped their copies", || {
        b.get_fresh(&1).is_none() && c.get_fresh(&1).is_none()
    })
    .await;
    assert_eq!(call(c, 1, &origin, hooks()).await.unwrap(), "v1");
    assert_eq!(
        call(b, 1, &origin, hooks()).await.unwrap(),
        "v1",
        "from Redis"
    );
    assert_eq!(origin.loads(), 2);

    // Tags: versions on their own slots, bumped by invalidate_tag.
    let tagged = || {
        let mut tags = Tags::new();
        tags.push("cluster:sku:9");
        tags.push("cluster:all");
        hooks().tags(tags)
    };
    assert_eq!(call(a, 9, &origin, tagged()).await.unwrap(), "v2");
    assert_eq!(call(b, 9, &origin, tagged()).await.unwrap(), "v2");
    assert_eq!(origin.loads(), 3);
    herdcache_runtime::invalidate_tag("cluster:all").await;
    wait_until("b heard the tag", || b.get_fresh(&9).is_none()).await;
    assert_eq!(call(b, 9, &origin, tagged()).await.unwrap(), "v3");
    assert_eq!(origin.loads(), 4, "the copy in Redis was not served");
}
