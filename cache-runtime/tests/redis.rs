//! The Redis tier against a real `redis-server` of the test's own: values
//! shared between instances (each an `FnCache` with its own connection),
//! horizons carried over, corrupt payloads, an unreachable Redis, deletes
//! on invalidation. Run with `--features redis`.
#![cfg(feature = "redis")]

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use herdcache_runtime::{CacheConfig, Clock, Codec, FnCache, ManualClock, RedisTier, Runtime};
use herdcache_test_support::RedisServer;
use redis::AsyncCommands;

mod common;
use common::*;

fn tier(server: &RedisServer, namespace: &str) -> Arc<RedisTier> {
    Runtime::builder()
        .redis(server.url())
        .namespace(namespace)
        // Generous: a loaded 2-core machine must not time calls out.
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap()
}

/// One instance of the fleet: its own cache, its own connection.
fn instance(
    config: CacheConfig,
    tier: Arc<RedisTier>,
    clock: &Arc<ManualClock>,
) -> &'static FnCache<u64, String> {
    let cache = FnCache::new(config.distributed().clock(Clock::Manual(clock.clone())))
        .with_redis(tier, Codec::of(1));
    Box::leak(Box::new(cache))
}

/// Takes the fleet lock of `key` as another instance would, for `px` ms:
/// the lock's name, and the raw connection that took it.
async fn hold_lock(
    server: &RedisServer,
    cache: &FnCache<u64, String>,
    key: u64,
    holder: &str,
    px: u64,
) -> (String, redis::aio::MultiplexedConnection) {
    let lock = format!("{}:lock", cache.redis_key(&key).await.unwrap());
    let mut redis = raw(server).await;
    let _: () = redis::cmd("SET")
        .arg(&lock)
        .arg(holder)
        .arg("PX")
        .arg(px)
        .query_async(&mut redis)
        .await
        .unwrap();
    (lock, redis)
}

async fn raw(server: &RedisServer) -> redis::aio::MultiplexedConnection {
    redis::Client::open(server.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_value_one_instance_loaded_is_served_to_another_without_a_load() {
    let server = RedisServer::start().unwrap();
    let clock = ManualClock::new();
    let a = instance(
        CacheConfig::new("users", TTL),
        tier(&server, "share"),
        &clock,
    );
    let b = instance(
        CacheConfig::new("users", TTL),
        tier(&server, "share"),
        &clock,
    );
    let origin = Origin::new(|n| Ok(format!("v{n}")));

    assert_eq!(call(a, 1, &origin, hooks()).await.unwrap(), "v0");
    assert_eq!(call(b, 1, &origin, hooks()).await.unwrap(), "v0");
    assert_eq!(origin.loads(), 1, "one origin call for the fleet");
    assert_eq!((b.stats().l2_hits, b.stats().loads), (1, 0));
    // Filled into b's memory: the next call does not ask Redis.
    assert_eq!(call(b, 1, &origin, hooks()).await.unwrap(), "v0");
    assert_eq!(b.stats().l2_hits + b.stats().l2_misses, 1);

    // Another namespace is another key space.
    let other = instance(
        CacheConfig::new("users", TTL),
        tier(&server, "other"),
        &clock,
    );
    assert_eq!(call(other, 1, &origin, hooks()).await.unwrap(), "v1");
}

#[tokio::test]
async fn a_value_from_redis_keeps_only_the_rest_of_its_life() {
    let server = RedisServer::start().unwrap();
    let clock = ManualClock::new();
    let b = instance(CacheConfig::new("life", TTL), tier(&server, "life"), &clock);
    let origin = Origin::new(|n| Ok(format!("v{n}")));
    // Another instance stored it with 2 s of freshness left.
    let key = b.redis_key(&1).await.unwrap();
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    // Format 2: horizons, load time, the payload's digest, the tags.
    let payload = postcard_string("shared");
    let mut envelope = vec![2u8];
    for horizon in [now_ms + 2_000, now_ms + 2_000, now_ms + 2_000] {
        envelope.extend_from_slice(&horizon.to_le_bytes());
    }
    envelope.extend_from_slice(&0u32.to_le_bytes());
    envelope.extend_from_slice(&xxhash_rust::xxh3::xxh3_128(&payload).to_le_bytes());
    // One version: the key's own (digest 0), as Redis holds it (its
    // version key, `{prefix}:{digest}:ver` with both epochs 0).
    let mut redis = raw(&server).await;
    let version_key = format!("{}:ver", key.replace(":e0.0:", ":"));
    let _: () = redis.set(&version_key, 7u64).await.unwrap();
    envelope.push(1);
    envelope.extend_from_slice(&0u128.to_le_bytes());
    envelope.extend_from_slice(&7u64.to_le_bytes());
    envelope.extend_from_slice(&payload);
    let _: () = redis.set(&key, envelope).await.unwrap();

    assert_eq!(call(b, 1, &origin, hooks()).await.unwrap(), "shared");
    let _: () = redis.del(&key).await.unwrap();
    clock.advance(Duration::from_secs(1));
    assert_eq!(call(b, 1, &origin, hooks()).await.unwrap(), "shared");
    // Past its 2 s (not the function's 60 s ttl): loaded.
    clock.advance(Duration::from_secs(2));
    assert_eq!(call(b, 1, &origin, hooks()).await.unwrap(), "v0");
    assert_eq!(origin.loads(), 1);
}

/// A `String` as postcard writes it: its length, then its bytes.
fn postcard_string(text: &str) -> Vec<u8> {
    let mut bytes = vec![u8::try_from(text.len()).unwrap()];
    bytes.extend_from_slice(text.as_bytes());
    bytes
}

#[tokio::test]
async fn a_stale_value_in_redis_is_the_fail_safe_fallback_of_an_instance_that_never_had_it() {
    let server = RedisServer::start().unwrap();
    let clock = ManualClock::new();
    let config = || CacheConfig::new("fallback", TTL).fail_safe(Duration::from_secs(600));
    let a = instance(config(), tier(&server, "fallback"), &clock);
    let b = instance(config(), tier(&server, "fallback"), &clock);
    let origin = Origin::new(|n| {
        if n == 0 {
            Ok("v0".into())
        } else {
            Err("down".into())
        }
    });
    call(a, 1, &origin, hooks()).await.unwrap();
    // b's clock runs ahead of the value's freshness; the origin is down.
    clock.advance(TTL + Duration::from_secs(1));
    let key = b.redis_key(&1).await.unwrap();
    let mut redis = raw(&server).await;
    let bytes: Vec<u8> = redis.get(&key).await.unwrap();
    // Rewrite its horizons as wall-clock times past freshness but within
    // the fail-safe window, as they will be a minute from now.
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let mut stale = bytes.clone();
    stale[1..9].copy_from_slice(&(now_ms - 1_000).to_le_bytes());
    stale[9..17].copy_from_slice(&(now_ms - 1_000).to_le_bytes());
    stale[17..25].copy_from_slice(&(now_ms + 600_000).to_le_bytes());
    let _: () = redis.set(&key, stale).await.unwrap();

    assert_eq!(call(b, 1, &origin, hooks()).await.unwrap(), "v0");
    assert_eq!((b.stats().loads, b.stats().fail_safe_hits), (1, 1));
}

#[tokio::test]
async fn a_corrupt_payload_is_a_miss_and_is_overwritten() {
    let server = RedisServer::start().unwrap();
    let clock = ManualClock::new();
    let a = instance(
        CacheConfig::new("corrupt", TTL),
        tier(&server, "corrupt"),
        &clock,
    );
    let b = instance(
        CacheConfig::new("corrupt", TTL),
        tier(&server, "corrupt"),
        &clock,
    );
    let origin = Origin::new(|n| Ok(format!("v{n}")));
    let key = a.redis_key(&1).await.unwrap();
    let mut redis = raw(&server).await;
    // A first load: the key has a version in Redis (until then, whatever
    // sits at its name is a miss unread).
    assert_eq!(call(a, 1, &origin, hooks()).await.unwrap(), "v0");
    for garbage in [&b"{\"json\": true}"[..], &[1u8, 2, 3][..], &[1u8; 40][..]] {
        let _: () = redis.set(&key, garbage).await.unwrap();
        a.invalidate_here(&1);
        let loads = origin.loads();
        assert!(call(a, 1, &origin, hooks()).await.is_ok());
        assert_eq!(origin.loads(), loads + 1, "a miss: loaded");
    }
    // And garbage written by hand, with redis-cli, as an operator would.
    let written = std::process::Command::new("redis-cli")
        .args([
            "-p",
            &server.port().to_string(),
            "SET",
            &key,
            "not an envelope",
        ])
        .output()
        .expect("redis-cli is on PATH (.ci/run installs redis-tools)");
    assert_eq!(String::from_utf8_lossy(&written.stdout).trim(), "OK");
    a.invalidate_here(&1);
    assert_eq!(
        call(a, 1, &origin, hooks()).await.unwrap(),
        "v4",
        "a miss: loaded"
    );
    assert_eq!(a.stats().l2_corrupt, 4);
    // Overwritten with a good entry, which another instance reads.
    assert_eq!(call(b, 1, &origin, hooks()).await.unwrap(), "v4");
    assert_eq!(b.stats().l2_hits, 1);
}

#[tokio::test]
async fn an_unreachable_redis_degrades_to_memory_and_opens_the_breaker() {
    // A port nothing listens on: the server was started and stopped.
    let url = {
        let server = RedisServer::start().unwrap();
        server.url()
    };
    let tier = Runtime::builder()
        .redis(url)
        .timeout(Duration::from_millis(500))
        .breaker(3, Duration::from_secs(60))
        .build()
        .unwrap();
    let clock = ManualClock::new();
    let cache = instance(CacheConfig::new("down", TTL), tier.clone(), &clock);
    let origin = Origin::new(|n| Ok(format!("v{n}")));
    for key in 0..10 {
        assert_eq!(
            call(cache, key, &origin, hooks()).await.unwrap(),
            format!("v{key}")
        );
        assert_eq!(
            call(cache, key, &origin, hooks()).await.unwrap(),
            format!("v{key}")
        );
    }
    assert!(tier.breaker_open());
    let stats = cache.stats();
    assert_eq!((stats.loads, stats.hits), (10, 10), "memory still works");
    assert!(stats.l2_errors >= 3, "{stats:?}");
    assert!(stats.l2_breaker_open);
    assert!(stats.to_string().contains("Redis breaker open"));
}

#[tokio::test]
async fn the_breaker_closes_again_once_redis_answers() {
    let server = RedisServer::start().unwrap();
    let port = server.port();
    let tier = Runtime::builder()
        .redis(server.url())
        .namespace("recover")
        .timeout(Duration::from_millis(500))
        .breaker(2, Duration::from_millis(300))
        .build()
        .unwrap();
    let clock = ManualClock::new();
    let cache = instance(CacheConfig::new("recover", TTL), tier.clone(), &clock);
    let origin = Origin::new(|n| Ok(format!("v{n}")));
    call(cache, 1, &origin, hooks()).await.unwrap();
    drop(server);
    for key in 2..6 {
        call(cache, key, &origin, hooks()).await.unwrap();
    }
    assert!(tier.breaker_open());
    // Redis comes back where it was; once the breaker's time is over, the
    // next call probes, succeeds, and closes it.
    let _server = RedisServer::start_on(port).unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    let mut closed = false;
    for key in 10..60 {
        call(cache, key, &origin, hooks()).await.unwrap();
        if !tier.breaker_open() && cache.stats().l2_misses > 1 {
            closed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(closed, "{:?}", cache.stats());
}

/// Two instances under steady calls; `redis-server` is killed mid-run and
/// started again on its port: no call fails (memory or the loader answer
/// while it is down), and the same processes share values through it
/// again afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_redis_mid_run_fails_no_caller_and_a_restart_brings_it_back() {
    let server = RedisServer::start().unwrap();
    let port = server.port();
    let tier = |_| {
        Runtime::builder()
            .redis(server.url())
            .namespace("killed")
            .timeout(Duration::from_millis(200))
            .breaker(2, Duration::from_millis(200))
            .build()
            .unwrap()
    };
    let clock = ManualClock::new();
    let a = instance(CacheConfig::new("killed", TTL), tier(0), &clock);
    let b = instance(CacheConfig::new("killed", TTL), tier(1), &clock);
    let origin = Origin::new(|n| Ok(format!("v{n}")));
    let running = Arc::new(AtomicBool::new(true));
    let answered = Arc::new(AtomicU64::new(0));
    // Callers on both instances: a few hot keys (memory answers) and a new
    // key now and then (Redis, or the loader while it is down).
    let callers: Vec<_> = [a, b]
        .into_iter()
        .enumerate()
        .flat_map(|(side, cache)| {
            let (origin, running, answered) = (origin.clone(), running.clone(), answered.clone());
            (0..4u64).map(move |task| {
                let (origin, running, answered) =
                    (origin.clone(), running.clone(), answered.clone());
                tokio::spawn(async move {
                    let mut n = 0u64;
                    while running.load(Ordering::Relaxed) {
                        let key = if n.is_multiple_of(4) {
                            1_000_000 * (side as u64 + 1) + task * 10_000 + n
                        } else {
                            n % 5
                        };
                        call(cache, key, &origin, hooks())
                            .await
                            .unwrap_or_else(|error| panic!("a caller failed: {error}"));
                        answered.fetch_add(1, Ordering::Relaxed);
                        n += 1;
                        tokio::time::sleep(Duration::from_millis(2)).await;
                    }
                })
            })
        })
        .collect();
    let answered_by = |count: u64| {
        let answered = answered.clone();
        move || answered.load(Ordering::Relaxed) >= count
    };
    wait_until("calls before the kill", answered_by(200)).await;
    server.stop();
    let at_kill = answered.load(Ordering::Relaxed);
    wait_until("calls while Redis is down", answered_by(at_kill + 400)).await;
    assert!(
        a.stats().l2_errors + b.stats().l2_errors > 0,
        "Redis was down"
    );
    let _server = RedisServer::start_on(port).unwrap();
    let at_restart = answered.load(Ordering::Relaxed);
    wait_until("calls after the restart", answered_by(at_restart + 200)).await;
    running.store(false, Ordering::Relaxed);
    for caller in callers {
        caller.await.expect("no caller failed or panicked");
    }
    // The same processes share through Redis again: b is served what a
    // loaded, without its loader (retried until the breakers have closed).
    let mut shared = false;
    for key in 0..200u64 {
        let key = 5_000_000 + key;
        call(a, key, &origin, hooks()).await.unwrap();
        let (loads, l2_hits) = (b.stats().loads, b.stats().l2_hits);
        call(b, key, &origin, hooks()).await.unwrap();
        if b.stats().loads == loads && b.stats().l2_hits == l2_hits + 1 {
            shared = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(shared, "{:?}", b.stats());
}

#[tokio::test]
async fn an_invalidation_deletes_the_shared_copy() {
    let server = RedisServer::start().unwrap();
    let clock = ManualClock::new();
    let a = instance(CacheConfig::new("bust", TTL), tier(&server, "bust"), &clock);
    let b = instance(CacheConfig::new("bust", TTL), tier(&server, "bust"), &clock);
    let origin = Origin::new(|n| Ok(format!("v{n}")));
    call(a, 1, &origin, hooks()).await.unwrap();
    a.invalidate(&1).await;
    assert_eq!(call(b, 1, &origin, hooks()).await.unwrap(), "v1");
    assert_eq!(
        call(a, 1, &origin, hooks()).await.unwrap(),
        "v1",
        "from Redis"
    );
    assert_eq!(origin.loads(), 2);
}

#[tokio::test]
async fn a_payload_over_the_limit_stays_in_memory() {
    let server = RedisServer::start().unwrap();
    let tier = Runtime::builder()
        .redis(server.url())
        .namespace("big")
        .timeout(Duration::from_secs(5))
        .max_payload(16)
        .build()
        .unwrap();
    let clock = ManualClock::new();
    let cache = instance(CacheConfig::new("big", TTL), tier, &clock);
    let origin = Origin::new(|n| Ok(format!("a value longer than sixteen bytes {n}")));
    call(cache, 1, &origin, hooks()).await.unwrap();
    let mut redis = raw(&server).await;
    let stored: Option<Vec<u8>> = redis.get(cache.redis_key(&1).await.unwrap()).await.unwrap();
    assert_eq!(stored, None);
    assert!(cache.get_fresh(&1).is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_asking_for_one_cold_key_at_once_make_one_origin_call() {
    let server = RedisServer::start().unwrap();
    let clock = ManualClock::new();
    let fleet: Vec<_> = (0..3)
        .map(|_| instance(CacheConfig::new("herd", TTL), tier(&server, "herd"), &clock))
        .collect();
    let mut origin = Origin::new(|n| Ok(format!("v{n}")));
    origin.gate = Gate::closed();
    // 3 instances × 20 callers on one cold key.
    let callers = callers_on(&fleet, 1, 20, &origin);
    wait_until("one instance is loading", || origin.loads() == 1).await;
    // Give the others time to (wrongly) start loads of their own.
    tokio::time::sleep(Duration::from_millis(200)).await;
    origin.gate.release();
    for caller in callers {
        assert_eq!(caller.await.unwrap().unwrap(), "v0");
    }
    assert_eq!(origin.loads(), 1, "one origin call for the fleet");
    let from_redis: u64 = fleet.iter().map(|cache| cache.stats().l2_hits).sum();
    assert_eq!(from_redis, 2, "the two other instances read it from Redis");
    let filled: u64 = fleet.iter().map(|cache| cache.stats().remote_fills).sum();
    assert_eq!(
        filled, 2,
        "both waited for the loader's value: two loads avoided"
    );
}

#[tokio::test]
async fn a_lock_whose_holder_died_expires_and_another_instance_loads() {
    let server = RedisServer::start().unwrap();
    let clock = ManualClock::new();
    let cache = instance(
        CacheConfig::new("orphan", TTL),
        tier(&server, "orphan"),
        &clock,
    );
    let origin = Origin::new(|n| Ok(format!("v{n}")));
    // An instance took the lock and crashed: it expires in 300 ms.
    let (lock, mut redis) = hold_lock(&server, cache, 1, "crashed", 300).await;
    let started = std::time::Instant::now();
    assert_eq!(call(cache, 1, &origin, hooks()).await.unwrap(), "v0");
    assert!(
        started.elapsed() >= Duration::from_millis(250),
        "it waited for the lock"
    );
    assert_eq!(origin.loads(), 1);
    // Released after the write-back.
    let held: Option<String> = redis.get(&lock).await.unwrap();
    assert_eq!(held, None);
}

/// An instance that hears the bus.
fn listening(
    config: CacheConfig,
    tier: Arc<RedisTier>,
    clock: &Arc<ManualClock>,
) -> &'static FnCache<u64, String> {
    let cache = instance(config, tier, clock);
    cache.listen_bus();
    cache
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalidation_reaches_the_memory_of_every_other_instance() {
    let server = RedisServer::start().unwrap();
    let clock = ManualClock::new();
    let (tier_a, tier_b) = (tier(&server, "bus"), tier(&server, "bus"));
    let a = listening(CacheConfig::new("bus", TTL), tier_a.clone(), &clock);
    let b = listening(CacheConfig::new("bus", TTL), tier_b.clone(), &clock);
    wait_until("both hear the bus", || {
        tier_a.bus_connected() && tier_b.bus_connected()
    })
    .await;
    let origin = Origin::new(|n| Ok(format!("v{n}")));
    call(a, 1, &origin, hooks()).await.unwrap();
    call(b, 1, &origin, hooks()).await.unwrap();
    call(b, 2, &origin, hooks()).await.unwrap();
    assert_eq!(b.get_fresh(&1).as_deref(), Some("v0"));
    assert_eq!(
        b.stats().remote_fills,
        0,
        "read from Redis at once: no wait"
    );
    let heard = b.stats().bus_messages;

    a.invalidate(&1).await;
    wait_until("b dropped its copy", || b.get_fresh(&1).is_none()).await;
    assert!(
        b.stats().bus_messages > heard,
        "b counts the message it applied"
    );
    assert_eq!(b.get_fresh(&2).as_deref(), Some("v1"), "other keys stay");
    assert_eq!(call(b, 1, &origin, hooks()).await.unwrap(), "v2");
    // a ignored its own message: one invalidation, not two.
    assert_eq!(a.stats().invalidations, 1);

    // An expiry travels as an expiry: without swr or fail-safe, a miss.
    b.expire(&2).await;
    wait_until("a heard the expiry", || a.stats().invalidations == 2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_the_bus_reconnects_every_distributed_copy_in_memory_is_dropped() {
    let server = RedisServer::start().unwrap();
    let clock = ManualClock::new();
    let tier = tier(&server, "reconnect");
    let cache = listening(CacheConfig::new("reconnect", TTL), tier.clone(), &clock);
    wait_until("it hears the bus", || tier.bus_connected()).await;
    let origin = Origin::new(|n| Ok(format!("v{n}")));
    call(cache, 1, &origin, hooks()).await.unwrap();
    assert!(cache.get_fresh(&1).is_some());
    // Messages may be lost while the subscription is down.
    let mut redis = raw(&server).await;
    let _: () = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("TYPE")
        .arg("pubsub")
        .query_async(&mut redis)
        .await
        .unwrap();
    wait_until("the copy was dropped on reconnect", || {
        cache.get_fresh(&1).is_none()
    })
    .await;
    wait_until("it hears the bus again", || tier.bus_connected()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tag_invalidated_by_another_instance_reaches_memory_only_functions_too() {
    let server = RedisServer::start().unwrap();
    let tier = tier(&server, "tags");
    Runtime::install(tier.clone()).unwrap();
    let clock = ManualClock::new();
    // The bus starts with the first distributed cache.
    listening(CacheConfig::new("tags-bus", TTL), tier.clone(), &clock);
    wait_until("the bus is up", || tier.bus_connected()).await;
    let memory_only = leak(CacheConfig::new("tags-memory", TTL), &clock);
    let origin = Origin::new(|n| Ok(format!("v{n}")));
    let tagged = || {
        let mut tags = herdcache_runtime::Tags::new();
        tags.push("bus-tag:user:1");
        hooks().tags(tags)
    };
    call(memory_only, 1, &origin, tagged()).await.unwrap();
    assert!(memory_only.get_fresh(&1).is_some());

    // Another instance (node 7) invalidated the tag: the message as it
    // publishes it, postcard: variant 1 (Tags), node, the tags, gone.
    let mut message = vec![1u8, 7, 1, 14];
    message.extend_from_slice(b"bus-tag:user:1");
    message.push(1);
    let mut redis = raw(&server).await;
    let _: i64 = redis::cmd("PUBLISH")
        .arg("tags:bus")
        .arg(message)
        .query_async(&mut redis)
        .await
        .unwrap();
    wait_until("the tag's entries are gone", || {
        memory_only.get_fresh(&1).is_none()
    })
    .await;
    assert_eq!(call(memory_only, 1, &origin, tagged()).await.unwrap(), "v1");

    // And this process's own invalidate_tag is published for the others.
    let mut subscriber = redis::Client::open(server.url())
        .unwrap()
        .get_async_pubsub()
        .await
        .unwrap();
    subscriber.subscribe("tags:bus").await.unwrap();
    herdcache_runtime::invalidate_tag("bus-tag:user:1").await;
    use futures_util::StreamExt;
    let heard = subscriber.on_message().next().await.unwrap();
    let bytes = heard.get_payload_bytes();
    assert_eq!(bytes[0], 1, "a Tags message");
    assert!(bytes.ends_with(b"bus-tag:user:1\x01"));
    assert!(memory_only.get_fresh(&1).is_none());

    // A tagged distributed function: the copy in Redis carries the tags'
    // versions in Redis, which invalidate_tag bumps, so another instance
    // that drops its memory copy (over the bus) cannot get the old value
    // back from Redis.
    let sku = || {
        let mut tags = herdcache_runtime::Tags::new();
        tags.push("bus-tag:sku:1");
        hooks().tags(tags)
    };
    let a = listening(CacheConfig::new("tagged", TTL), tier.clone(), &clock);
    let tier_b = Runtime::builder()
        .redis(server.url())
        .namespace("tags")
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let b = listening(CacheConfig::new("tagged", TTL), tier_b.clone(), &clock);
    wait_until("b hears the bus", || tier_b.bus_connected()).await;
    let prices = Origin::new(|n| Ok(format!("price {n}")));
    assert_eq!(call(a, 1, &prices, sku()).await.unwrap(), "price 0");
    assert_eq!(call(b, 1, &prices, sku()).await.unwrap(), "price 0");
    assert_eq!((prices.loads(), b.stats().l2_hits), (1, 1));
    let heard = tier_b.bus_messages_heard();
    herdcache_runtime::invalidate_tag("bus-tag:sku:1").await;
    // (Both instances share this process's tags: b's copy is gone at once,
    // and b's tier bumps the tag once more when the message arrives.)
    wait_until("b heard the tag", || tier_b.bus_messages_heard() > heard).await;
    assert!(b.get_fresh(&1).is_none());
    assert!(a.get_fresh(&1).is_none());
    assert_eq!(call(b, 1, &prices, sku()).await.unwrap(), "price 1");
    assert_eq!(prices.loads(), 2, "the copy in Redis was not served");
    // And the new copy, stamped with the new version, is.
    assert_eq!(call(a, 1, &prices, sku()).await.unwrap(), "price 1");
    assert_eq!(prices.loads(), 2);
}

#[tokio::test]
async fn acl_users_and_passwords_go_through_the_url_and_never_into_debug_output() {
    let server = RedisServer::start_with(&[
        "--requirepass",
        "default-secret",
        "--user",
        "app",
        "on",
        ">app-secret",
        "~*",
        "&*",
        "+@all",
    ])
    .unwrap();
    let url = |credentials: &str| format!("redis://{credentials}@127.0.0.1:{}", server.port());
    let clock = ManualClock::new();
    let origin = Origin::new(|n| Ok(format!("v{n}")));
    let with = |credentials: &str, namespace: &str| {
        Runtime::builder()
            .redis(url(credentials))
            .namespace(namespace)
            .timeout(Duration::from_secs(5))
            .build()
            .unwrap()
    };
    // An ACL user, then the default user's password: both share.
    let a = instance(
        CacheConfig::new("acl", TTL),
        with("app:app-secret", "acl"),
        &clock,
    );
    let b = instance(
        CacheConfig::new("acl", TTL),
        with(":default-secret", "acl"),
        &clock,
    );
    call(a, 1, &origin, hooks()).await.unwrap();
    assert_eq!(call(b, 1, &origin, hooks()).await.unwrap(), "v0");
    assert_eq!((b.stats().l2_hits, origin.loads()), (1, 1));
    // A wrong password: errors counted, the function works from memory.
    let wrong = Runtime::builder()
        .redis(url("app:not-the-secret"))
        .namespace("acl")
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    assert!(!format!("{wrong:?}").contains("not-the-secret"));
    let c = instance(CacheConfig::new("acl", TTL), wrong, &clock);
    assert_eq!(call(c, 1, &origin, hooks()).await.unwrap(), "v1");
    assert!(c.stats().l2_errors >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lock_is_extended_while_a_load_outlives_it() {
    let server = RedisServer::start().unwrap();
    let clock = ManualClock::new();
    let short_lock = || {
        Runtime::builder()
            .redis(server.url())
            .namespace("long")
            .timeout(Duration::from_secs(5))
            .lock_ttl(Duration::from_millis(300))
            .build()
            .unwrap()
    };
    let a = instance(CacheConfig::new("long", TTL), short_lock(), &clock);
    let b = instance(CacheConfig::new("long", TTL), short_lock(), &clock);
    let mut origin = Origin::new(|n| Ok(format!("v{n}")));
    origin.gate = Gate::closed();
    let first = {
        let origin = origin.clone();
        tokio::spawn(async move { call(a, 1, &origin, hooks()).await })
    };
    wait_until("a is loading", || origin.loads() == 1).await;
    let second = {
        let origin = origin.clone();
        tokio::spawn(async move { call(b, 1, &origin, hooks()).await })
    };
    // Four lock lives: without the extension b would take the lock and load.
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    assert_eq!(origin.loads(), 1, "b waited for a's load");
    origin.gate.release();
    assert_eq!(first.await.unwrap().unwrap(), "v0");
    assert_eq!(second.await.unwrap().unwrap(), "v0");
    assert_eq!(origin.loads(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_back_that_lands_after_another_instances_invalidation_is_never_served() {
    let server = RedisServer::start().unwrap();
    let clock = ManualClock::new();
    let a = instance(CacheConfig::new("late", TTL), tier(&server, "late"), &clock);
    let b = instance(CacheConfig::new("late", TTL), tier(&server, "late"), &clock);
    let mut origin = Origin::new(|n| Ok(format!("v{n}")));
    origin.gate = Gate::closed();
    // a's load begins, and is slow.
    let early = {
        let origin = origin.clone();
        tokio::spawn(async move { call(a, 1, &origin, hooks()).await })
    };
    wait_until("a is loading", || origin.loads() == 1).await;
    // b invalidates the key meanwhile (the data changed).
    b.invalidate(&1).await;
    // a's load lands after that and writes its value back.
    origin.gate.release();
    assert_eq!(early.await.unwrap().unwrap(), "v0");
    let mut redis = raw(&server).await;
    let stored: Option<Vec<u8>> = redis.get(a.redis_key(&1).await.unwrap()).await.unwrap();
    assert!(stored.is_some(), "the late write-back landed");
    // It carries the key's version from before the invalidation: b does
    // not serve it, and loads.
    assert_eq!(call(b, 1, &origin, hooks()).await.unwrap(), "v1");
    assert_eq!(origin.loads(), 2);
}

/// A CA, and a server certificate it signed, made with `openssl`.
#[cfg(feature = "redis-tls")]
fn certificates(dir: &std::path::Path) {
    let run = |args: &[&str]| {
        let status = std::process::Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "openssl {args:?}");
    };
    run(&["genrsa", "-out", "ca.key", "2048"]);
    run(&[
        "req",
        "-x509",
        "-new",
        "-key",
        "ca.key",
        "-days",
        "1",
        "-subj",
        "/CN=test-ca",
        "-out",
        "ca.crt",
    ]);
    run(&["genrsa", "-out", "server.key", "2048"]);
    run(&[
        "req",
        "-new",
        "-key",
        "server.key",
        "-subj",
        "/CN=127.0.0.1",
        "-out",
        "server.csr",
    ]);
    run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "1",
        "-out",
        "server.crt",
    ]);
}

#[cfg(feature = "redis-tls")]
#[tokio::test]
async fn rediss_urls_speak_tls() {
    let dir = std::env::temp_dir().join(format!("herdcache-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // Removed however the test ends.
    struct Remove(std::path::PathBuf);
    impl Drop for Remove {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
    let _remove = Remove(dir.clone());
    certificates(&dir);
    let file = |name: &str| dir.join(name).to_string_lossy().into_owned();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    // Stopped however the test ends.
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _server = Kill(
        std::process::Command::new("redis-server")
            .args([
                "--port",
                "0",
                "--tls-port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
            ])
            .args([
                "--tls-cert-file",
                &file("server.crt"),
                "--tls-key-file",
                &file("server.key"),
            ])
            .args([
                "--tls-ca-cert-file",
                &file("ca.crt"),
                "--tls-auth-clients",
                "no",
            ])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_until("the TLS server listens", || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    })
    .await;
    // `#insecure`: the test's CA is not one the system trusts.
    let url = format!("rediss://127.0.0.1:{port}/#insecure");
    let tls = || {
        Runtime::builder()
            .redis(url.clone())
            .namespace("tls")
            .timeout(Duration::from_secs(5))
            .build()
            .unwrap()
    };
    let clock = ManualClock::new();
    let a = instance(CacheConfig::new("tls", TTL), tls(), &clock);
    let b = instance(CacheConfig::new("tls", TTL), tls(), &clock);
    let origin = Origin::new(|n| Ok(format!("v{n}")));
    call(a, 1, &origin, hooks()).await.unwrap();
    assert_eq!(call(b, 1, &origin, hooks()).await.unwrap(), "v0");
    assert_eq!(
        (b.stats().l2_hits, origin.loads()),
        (1, 1),
        "shared over TLS"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slowed_redis_costs_a_caller_at_most_the_timeout() {
    let server = RedisServer::start_with(&["--enable-debug-command", "yes"]).unwrap();
    let tier = Runtime::builder()
        .redis(server.url())
        .namespace("slow")
        .timeout(Duration::from_millis(200))
        .build()
        .unwrap();
    let clock = ManualClock::new();
    let cache = instance(CacheConfig::new("slow", TTL), tier, &clock);
    let origin = Origin::new(|n| Ok(format!("v{n}")));
    call(cache, 1, &origin, hooks()).await.unwrap();
    // Redis stops answering for 2 s.
    let sleeper = {
        let url = server.url();
        tokio::spawn(async move {
            let mut redis = redis::Client::open(url)
                .unwrap()
                .get_multiplexed_async_connection()
                .await
                .unwrap();
            let _: redis::RedisResult<()> = redis::cmd("DEBUG")
                .arg("SLEEP")
                .arg(2)
                .query_async(&mut redis)
                .await;
        })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = std::time::Instant::now();
    // A miss: its Redis read times out, the body answers.
    assert_eq!(call(cache, 2, &origin, hooks()).await.unwrap(), "v1");
    let took = started.elapsed();
    // One Redis call waits out the timeout; the load then leaves Redis
    // alone (no read, lock or write-back after it). Under two timeouts.
    assert!(took < Duration::from_millis(400), "{took:?}");
    assert!(cache.stats().l2_errors >= 1);
    sleeper.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_leader_releases_the_fleet_lock_at_once() {
    let server = RedisServer::start().unwrap();
    let clock = ManualClock::new();
    // The default lock life, 10 s: waiting it out would be seen.
    let a = instance(
        CacheConfig::new("cancel", TTL),
        tier(&server, "cancel"),
        &clock,
    );
    let mut origin = Origin::new(|n| Ok(format!("v{n}")));
    origin.gate = Gate::closed();
    let leader = {
        let origin = origin.clone();
        tokio::spawn(async move { call(a, 1, &origin, hooks()).await })
    };
    wait_until("a holds the lock and loads", || origin.loads() == 1).await;
    let lock = format!("{}:lock", a.redis_key(&1).await.unwrap());
    let mut redis = raw(&server).await;
    let held: Option<String> = redis.get(&lock).await.unwrap();
    assert!(held.is_some());
    // The client disconnects: the leader's future is dropped.
    leader.abort();
    let _ = leader.await;
    let started = std::time::Instant::now();
    loop {
        let held: Option<String> = redis.get(&lock).await.unwrap();
        if held.is_none() {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the lock stayed"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn tags_in_any_order_share_one_copy() {
    let server = RedisServer::start().unwrap();
    let clock = ManualClock::new();
    let a = instance(
        CacheConfig::new("order", TTL),
        tier(&server, "order"),
        &clock,
    );
    let b = instance(
        CacheConfig::new("order", TTL),
        tier(&server, "order"),
        &clock,
    );
    let origin = Origin::new(|n| Ok(format!("v{n}")));
    let tagged = |names: [&str; 3]| {
        let mut tags = herdcache_runtime::Tags::new();
        for name in names {
            tags.push(name);
        }
        hooks().tags(tags)
    };
    call(a, 1, &origin, tagged(["order:x", "order:y", "order:x"]))
        .await
        .unwrap();
    // The same tags in another order (from a set, say): the same copy.
    assert_eq!(
        call(b, 1, &origin, tagged(["order:y", "order:x", "order:y"]))
            .await
            .unwrap(),
        "v0"
    );
    assert_eq!((origin.loads(), b.stats().l2_hits), (1, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalidation_is_sent_even_while_the_breaker_is_open() {
    let server = RedisServer::start_with(&["--enable-debug-command", "yes"]).unwrap();
    let tier = Runtime::builder()
        .redis(server.url())
        .namespace("open")
        .timeout(Duration::from_millis(100))
        .breaker(1, Duration::from_secs(60))
        .build()
        .unwrap();
    let clock = ManualClock::new();
    let cache = instance(CacheConfig::new("open", TTL), tier.clone(), &clock);
    let origin = Origin::new(|n| Ok(format!("v{n}")));
    call(cache, 1, &origin, hooks()).await.unwrap();
    let key = cache.redis_key(&1).await.unwrap();
    // Redis stalls for a moment: one timeout opens the breaker for a minute.
    let mut redis = raw(&server).await;
    let stall = {
        let mut redis = redis.clone();
        tokio::spawn(async move {
            let _: redis::RedisResult<()> = redis::cmd("DEBUG")
                .arg("SLEEP")
                .arg(0.5)
                .query_async(&mut redis)
                .await;
        })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    call(cache, 2, &origin, hooks()).await.unwrap();
    assert!(tier.breaker_open());
    stall.await.unwrap();
    // Redis answers again, the breaker is still open: reads skip Redis, but
    // the invalidation reaches it.
    cache.invalidate(&1).await;
    let stored: Option<Vec<u8>> = redis.get(&key).await.unwrap();
    assert_eq!(stored, None, "deleted in Redis");
    // The version is not under the epochs (both 0 here): `{prefix}:{digest}:ver`.
    let version_key = format!("{}:ver", key.replace(":e0.0:", ":"));
    let version: Option<u64> = redis.get(version_key).await.unwrap();
    // Created from the clock (µs) by the first load, bumped once since.
    assert!(
        version.is_some_and(|version| version > 1_000_000_000_000),
        "{version:?}"
    );
}

/// The tier's connection and bus live on a thread of their own: a runtime
/// that made the first calls (one `#[tokio::test]`'s) can end, and the
/// next runtime's calls still reach Redis and hear the bus.
#[test]
fn the_tier_outlives_the_runtime_of_its_first_call() {
    let server = RedisServer::start().unwrap();
    let clock = ManualClock::new();
    let (tier_a, tier_b) = (tier(&server, "runtimes"), tier(&server, "runtimes"));
    let a = instance(CacheConfig::new("runtimes", TTL), tier_a.clone(), &clock);
    let b = instance(CacheConfig::new("runtimes", TTL), tier_b.clone(), &clock);
    let origin = Origin::new(|n| Ok(format!("v{n}")));
    let runtime = || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    };
    let first = runtime();
    first.block_on(async {
        b.listen_bus();
        call(a, 1, &origin, hooks()).await.unwrap();
        wait_until("b hears the bus", || tier_b.bus_connected()).await;
    });
    drop(first);
    runtime().block_on(async {
        // Redis is still reached (b reads a's value)...
        assert_eq!(call(b, 1, &origin, hooks()).await.unwrap(), "v0");
        assert_eq!((origin.loads(), b.stats().l2_hits), (1, 1));
        // ...and the bus still heard (a's invalidation drops b's copy).
        a.invalidate(&1).await;
        wait_until("b dropped its copy", || b.get_fresh(&1).is_none()).await;
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_key_is_refreshed_once_for_the_fleet() {
    // Real time: the copies in Redis carry wall-clock horizons, which a
    // manual clock would not move.
    let server = RedisServer::start().unwrap();
    let instance = || {
        let config = CacheConfig::new("refresh", Duration::from_secs(2))
            .swr(Duration::from_secs(30))
            .distributed();
        let cache = FnCache::new(config).with_redis(tier(&server, "refresh"), Codec::of(1));
        &*Box::leak(Box::new(cache))
    };
    let (a, b): (&'static FnCache<u64, String>, &'static FnCache<u64, String>) =
        (instance(), instance());
    let origin = Origin::new(|n| Ok(format!("v{n}")));
    call(a, 1, &origin, hooks()).await.unwrap();
    assert_eq!(call(b, 1, &origin, hooks()).await.unwrap(), "v0");
    // Until both copies are past the ttl, as each instance judges it: the
    // hits read the coarse clock, which lags by as long as its thread
    // waits for a core, and the horizons written to Redis carry that lag.
    // A fixed sleep one second past the ttl still flaked in CI (b's copy
    // was still fresh, so it never refreshed).
    wait_until("both copies are stale", || {
        a.get_fresh(&1).is_none() && b.get_fresh(&1).is_none()
    })
    .await;
    // a's stale hit refreshes it (and writes v1 back)...
    assert_eq!(call(a, 1, &origin, hooks()).await.unwrap(), "v0");
    wait_until("a refreshed", || a.get_fresh(&1).is_some()).await;
    // ...and b's stale hit refreshes from Redis, not from the origin.
    assert_eq!(call(b, 1, &origin, hooks()).await.unwrap(), "v0");
    wait_until("b refreshed", || b.get_fresh(&1).is_some()).await;
    assert_eq!(b.get_fresh(&1).as_deref(), Some("v1"));
    assert_eq!(origin.loads(), 2, "one initial load, one refresh for both");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_fleet_lock_each_instance_loads_once() {
    let server = RedisServer::start().unwrap();
    let clock = ManualClock::new();
    let unlocked = || {
        Runtime::builder()
            .redis(server.url())
            .namespace("unlocked")
            .timeout(Duration::from_secs(5))
            .fleet_lock(false)
            .build()
            .unwrap()
    };
    let fleet = [
        instance(CacheConfig::new("unlocked", TTL), unlocked(), &clock),
        instance(CacheConfig::new("unlocked", TTL), unlocked(), &clock),
    ];
    let mut origin = Origin::new(|n| Ok(format!("v{n}")));
    origin.gate = Gate::closed();
    let callers = callers_on(&fleet, 1, 10, &origin);
    wait_until("both instances load", || origin.loads() == 2).await;
    origin.gate.release();
    for caller in callers {
        caller.await.unwrap().unwrap();
    }
    assert_eq!(origin.loads(), 2, "one load per instance, not per caller");
}

#[tokio::test]
async fn an_instance_stops_waiting_for_a_stuck_holder_after_max_wait() {
    let server = RedisServer::start().unwrap();
    let tier = Runtime::builder()
        .redis(server.url())
        .namespace("stuck")
        .timeout(Duration::from_secs(5))
        .max_wait(Duration::from_millis(300))
        .build()
        .unwrap();
    let clock = ManualClock::new();
    let cache = instance(CacheConfig::new("stuck", TTL), tier, &clock);
    let origin = Origin::new(|n| Ok(format!("v{n}")));
    // Another instance holds the lock for a minute (its load is stuck and
    // it keeps extending it).
    let (_lock, _redis) = hold_lock(&server, cache, 1, "stuck", 60_000).await;
    let started = std::time::Instant::now();
    assert_eq!(call(cache, 1, &origin, hooks()).await.unwrap(), "v0");
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(250),
        "it waited: {waited:?}"
    );
    assert!(
        waited < Duration::from_secs(10),
        "not for the lock's minute: {waited:?}"
    );
}

/// Counts the warnings herdcache logs, with their messages.
#[derive(Clone, Default)]
struct Warnings(std::sync::Arc<std::sync::Mutex<Vec<String>>>);

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Warnings {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        struct Text(String);
        impl tracing::field::Visit for Text {
            fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
                self.0.push_str(&format!("{}={value:?} ", field.name()));
            }
        }
        if *event.metadata().level() == tracing::Level::WARN
            && event.metadata().target() == "herdcache"
        {
            let mut text = Text(String::new());
            event.record(&mut text);
            self.0.lock().unwrap().push(text.0);
        }
    }
}

#[tokio::test]
async fn a_wrong_password_degrades_to_memory_with_one_clear_log_line() {
    use tracing_subscriber::layer::SubscriberExt;
    let server = RedisServer::start_with(&["--requirepass", "the-secret"]).unwrap();
    let warnings = Warnings::default();
    let _logging =
        tracing::subscriber::set_default(tracing_subscriber::registry().with(warnings.clone()));
    let wrong = Runtime::builder()
        .redis(format!(
            "redis://:not-the-secret@127.0.0.1:{}",
            server.port()
        ))
        .namespace("wrongpass")
        .timeout(Duration::from_secs(2))
        .breaker(3, Duration::from_millis(1))
        .build()
        .unwrap();
    let clock = ManualClock::new();
    let cache = instance(CacheConfig::new("wrongpass", TTL), wrong, &clock);
    let origin = Origin::new(|n| Ok(format!("v{n}")));
    // Many calls, each a miss (the key changes), each trying Redis: the
    // breaker opens and reopens (1 ms), and every call is answered.
    for key in 0..20 {
        assert_eq!(
            call(cache, key, &origin, hooks()).await.unwrap(),
            format!("v{key}")
        );
    }
    assert!(cache.stats().l2_errors >= 3, "{:?}", cache.stats());
    let warnings = warnings.0.lock().unwrap().clone();
    assert_eq!(warnings.len(), 1, "one line: {warnings:#?}");
    assert!(
        warnings[0].contains("refused the user or password")
            && !warnings[0].contains("not-the-secret"),
        "{}",
        warnings[0]
    );
}
