//! A tag's version in Redis expires, so a tag never touched again leaves
//! Redis, but never before a copy stamped with it: each write-back keeps it
//! for its copy's life plus `longest_load`, whichever instance writes. And
//! a version gone (expired or evicted) is made again from the clock, so no
//! copy it ended can match it again. Against a real `redis-server`, in real
//! time (Redis expires keys on its own clock). Its own binary: it installs
//! a runtime. Run with `--features redis`.
#![cfg(feature = "redis")]

use std::sync::Arc;
use std::time::{Duration, Instant};

use herdcache_runtime::{
    CacheConfig, Clock, Codec, FnCache, ManualClock, RedisTier, Runtime, Tags,
};
use herdcache_test_support::RedisServer;

mod common;
use common::*;

const LONGEST_LOAD: Duration = Duration::from_millis(500);

fn tier(server: &RedisServer) -> Arc<RedisTier> {
    Runtime::builder()
        .redis(server.url())
        .namespace("tagexp")
        .timeout(Duration::from_secs(5))
        .longest_load(LONGEST_LOAD)
        .build()
        .unwrap()
}

fn instance(
    name: &str,
    ttl: Duration,
    tier: Arc<RedisTier>,
    clock: &Arc<ManualClock>,
) -> &'static FnCache<u64, String> {
    let config = CacheConfig::new(name, ttl)
        .distributed()
        .clock(Clock::Manual(clock.clone()));
    Box::leak(Box::new(
        FnCache::new(config).with_redis(tier, Codec::of(1)),
    ))
}

fn tagged() -> herdcache_runtime::LoadHooks<String, String> {
    tagged_with("exp:t")
}

fn tagged_with(tag: &str) -> herdcache_runtime::LoadHooks<String, String> {
    let mut tags = Tags::new();
    tags.push(tag);
    hooks().tags(tags)
}

async fn query<T: redis::FromRedisValue>(
    redis: &mut redis::aio::MultiplexedConnection,
    command: &mut redis::Cmd,
) -> T {
    command.query_async(redis).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tag_version_outlives_every_copy_stamped_with_it_then_leaves_and_never_brings_one_back() {
    let server = RedisServer::start().unwrap();
    let clock = ManualClock::new();
    let mut redis = redis::Client::open(server.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    // Instance A, which invalidates, has a short-lived function; instance
    // B's function gives its copies 4 s in Redis.
    let tier_a = tier(&server);
    Runtime::install(tier_a.clone()).unwrap();
    let short = instance("short", Duration::from_millis(300), tier_a, &clock);
    let long_b = instance("long", Duration::from_secs(4), tier(&server), &clock);
    let origin = Origin::new(|n| Ok(format!("v{n}")));
    assert_eq!(call(short, 1, &origin, tagged()).await.unwrap(), "v0");
    assert_eq!(call(long_b, 1, &origin, tagged()).await.unwrap(), "v1");
    let copy = long_b.redis_key(&1).await.unwrap();
    let copy_left: i64 = query(&mut redis, redis::cmd("PTTL").arg(&copy)).await;
    assert!(copy_left > 3_000, "B's copy lives ~4 s: {copy_left} ms");
    // The first read made the tag's version, from the clock; B's write
    // kept it for B's copy and the longest load (not A's 300 ms + 500 ms).
    let tag_keys: Vec<String> = query(&mut redis, redis::cmd("KEYS").arg("tagexp:tag:*")).await;
    let [tag_key] = tag_keys.as_slice() else {
        panic!("one version key: {tag_keys:?}");
    };
    let first: u64 = query(&mut redis, redis::cmd("GET").arg(tag_key)).await;
    assert!(first > 1_000_000_000_000, "from the clock: {first}");
    let left: i64 = query(&mut redis, redis::cmd("PTTL").arg(tag_key)).await;
    assert!(
        (4_000..=4_500).contains(&left),
        "the version lives 4 s + 500 ms: {left} ms"
    );

    herdcache_runtime::invalidate_tag("exp:t").await;
    let bumped: u64 = query(&mut redis, redis::cmd("GET").arg(tag_key)).await;
    assert_eq!(bumped, first + 1);
    let left_after: i64 = query(&mut redis, redis::cmd("PTTL").arg(tag_key)).await;
    assert!(
        left_after > 3_500,
        "a bump never shortens it: {left_after} ms"
    );
    let copy_left: i64 = query(&mut redis, redis::cmd("PTTL").arg(&copy)).await;
    assert!(
        copy_left > 0 && copy_left < left_after,
        "B's old copy dies first"
    );

    // The version key leaves Redis on its own...
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let exists: i64 = query(&mut redis, redis::cmd("EXISTS").arg(tag_key)).await;
        let copy_exists: i64 = query(&mut redis, redis::cmd("EXISTS").arg(&copy)).await;
        if exists == 0 {
            // ...never while a copy stamped with it is still there.
            assert_eq!(copy_exists, 0, "the copy outlived its tag's version");
            break;
        }
        assert!(Instant::now() < deadline, "the version key never expired");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Gone, it is made again from the clock by the next read, past every
    // version it had.
    let loads = origin.loads();
    let fresh_b = instance("long", Duration::from_secs(4), tier(&server), &clock);
    assert_eq!(call(fresh_b, 1, &origin, tagged()).await.unwrap(), "v2");
    assert_eq!(origin.loads(), loads + 1);
    let again: u64 = query(&mut redis, redis::cmd("GET").arg(tag_key)).await;
    assert!(again > bumped, "{again} after {bumped}");

    // Evicted (a `maxmemory` policy may take any key with an expiry) right
    // after an invalidation: the copy it ended is still in Redis, and is
    // never served, because the version is made again, not read as absent
    // (a copy made before the tag's first bump carries no "absent" stamp).
    let first_load = instance("long", Duration::from_secs(4), tier(&server), &clock);
    assert_eq!(
        call(first_load, 2, &origin, tagged_with("exp:evict"))
            .await
            .unwrap(),
        "v3"
    );
    herdcache_runtime::invalidate_tag("exp:evict").await;
    let copy = first_load.redis_key(&2).await.unwrap();
    let copy_exists: i64 = query(&mut redis, redis::cmd("EXISTS").arg(&copy)).await;
    assert_eq!(copy_exists, 1, "the ended copy is still there");
    let evicted = format!(
        "tagexp:tag:{:032x}",
        xxhash_rust::xxh3::xxh3_128(b"exp:evict")
    );
    let _: i64 = query(&mut redis, redis::cmd("DEL").arg(&evicted)).await;
    let newcomer = instance("long", Duration::from_secs(4), tier(&server), &clock);
    let loads = origin.loads();
    assert_eq!(
        call(newcomer, 2, &origin, tagged_with("exp:evict"))
            .await
            .unwrap(),
        "v4"
    );
    assert_eq!(origin.loads(), loads + 1, "the ended copy was not served");

    // A load whose tag moved (or whose tag's version went) while it ran
    // does not write a copy nobody could read.
    let gated = Origin {
        gate: Gate::closed(),
        ..Origin::new(|n| Ok(format!("gated {n}")))
    };
    let writer = instance("long", Duration::from_secs(4), tier(&server), &clock);
    let load = tokio::spawn({
        let gated = gated.clone();
        async move { call(writer, 3, &gated, tagged_with("exp:moving")).await }
    });
    wait_until("the load runs its body", || gated.loads() == 1).await;
    let moving = format!(
        "tagexp:tag:{:032x}",
        xxhash_rust::xxh3::xxh3_128(b"exp:moving")
    );
    let _: i64 = query(&mut redis, redis::cmd("DEL").arg(&moving)).await;
    gated.gate.release();
    assert_eq!(load.await.unwrap().unwrap(), "gated 0");
    let copy = writer.redis_key(&3).await.unwrap();
    let copy_exists: i64 = query(&mut redis, redis::cmd("EXISTS").arg(&copy)).await;
    assert_eq!(copy_exists, 0, "a dead copy was written");
    let gone: i64 = query(&mut redis, redis::cmd("EXISTS").arg(&moving)).await;
    assert_eq!(gone, 0, "keeping a version never makes one");

    // A version key an older release left without an expiry gets one at
    // its next bump, and goes on from where it was.
    let legacy = format!(
        "tagexp:tag:{:032x}",
        xxhash_rust::xxh3::xxh3_128(b"exp:legacy")
    );
    let _: () = query(&mut redis, redis::cmd("SET").arg(&legacy).arg(7)).await;
    herdcache_runtime::invalidate_tag("exp:legacy").await;
    let left: i64 = query(&mut redis, redis::cmd("PTTL").arg(&legacy)).await;
    assert!(left > 0, "an expiry now: {left}");
    let version: u64 = query(&mut redis, redis::cmd("GET").arg(&legacy)).await;
    assert_eq!(version, 8);
}
