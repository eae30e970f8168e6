//! The Redis tier's read, side by side with a raw `GET` of the same bytes
//! through the `redis` crate, against a `redis-server` this bench starts on
//! a free loopback port. The herdcache variant is what an instance pays
//! when its memory misses and Redis has the value: the single flight, the
//! `GET`, decoding the envelope and the value, and filling memory.
//!
//! Run: `cargo bench --features redis --bench redis_tier` (needs
//! `redis-server` on `PATH`).

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use divan::Bencher;
use herdcache_runtime::{CacheConfig, Codec, FailureShare, FnCache, LoadHooks, Runtime};
use herdcache_test_support::RedisServer;
use tokio::runtime::Runtime as Tokio;

fn main() {
    interleaved();
    divan::main();
    // The setup lives in a static, which is never dropped.
    if let Some(setup) = SETUP.get() {
        setup._server.stop();
    }
}

struct Setup {
    _server: RedisServer,
    tokio: Tokio,
    cache: &'static FnCache<u64, String>,
    raw: redis::aio::MultiplexedConnection,
    /// The same kind of connection, driven on a runtime of its own on
    /// another thread, as the tier's is: what the hop between threads costs.
    raw_elsewhere: redis::aio::MultiplexedConnection,
    _elsewhere: Tokio,
    key: String,
}

static SETUP: OnceLock<Setup> = OnceLock::new();

fn setup() -> &'static Setup {
    SETUP.get_or_init(|| {
        let server = RedisServer::start().expect("redis-server on PATH");
        let tokio = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let tier = Runtime::builder()
            .redis(server.url())
            .namespace("bench")
            .timeout(Duration::from_secs(5))
            .build()
            .unwrap();
        let cache: &'static FnCache<u64, String> = Box::leak(Box::new(
            FnCache::new(CacheConfig::new("bench", Duration::from_secs(3600)).distributed())
                .with_redis(Arc::clone(&tier), Codec::of(1)),
        ));
        let value =
            "a user record of about a hundred bytes, as JSON would hold it: name, email, plan"
                .to_owned();
        let raw = tokio.block_on(async {
            let loaded: Option<String> = cache
                .load(7, LoadHooks::new(FailureShare::unit()), async {
                    Some(value)
                })
                .await;
            assert!(loaded.is_some());
            redis::Client::open(server.url())
                .unwrap()
                .get_multiplexed_async_connection()
                .await
                .unwrap()
        });
        let key = tokio.block_on(cache.redis_key(&7)).unwrap();
        let elsewhere = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let url = server.url();
        let raw_elsewhere = elsewhere
            .block_on(async move {
                tokio::spawn(async move {
                    redis::Client::open(url)
                        .unwrap()
                        .get_multiplexed_async_connection()
                        .await
                })
                .await
            })
            .unwrap()
            .unwrap();
        Setup {
            _server: server,
            tokio,
            cache,
            raw,
            raw_elsewhere,
            _elsewhere: elsewhere,
            key,
        }
    })
}

/// One read of each kind in turn, 10 000 times, each timed alone: the VM's
/// wake-up latency, which moves a median by 2× between runs, then falls
/// on both alike. Prints the median and the mean of each and their ratio.
fn interleaved() {
    let setup = setup();
    let herdcache = || herdcache_read(setup);
    let raw = || raw_read(setup, &setup.raw);
    let time = |read: &dyn Fn()| {
        let start = std::time::Instant::now();
        read();
        start.elapsed()
    };
    // Warm up: the tier's connection for this runtime is made meanwhile.
    for _ in 0..500 {
        herdcache();
        raw();
    }
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    for round in 0..10_000 {
        if round % 2 == 0 {
            ours.push(time(&|| drop(herdcache())));
            theirs.push(time(&|| drop(raw())));
        } else {
            theirs.push(time(&|| drop(raw())));
            ours.push(time(&|| drop(herdcache())));
        }
    }
    let summary = |times: &mut Vec<Duration>| {
        times.sort();
        let mean = times.iter().sum::<Duration>() / u32::try_from(times.len()).unwrap();
        (times[times.len() / 2], mean)
    };
    let (ours_median, ours_mean) = summary(&mut ours);
    let (raw_median, raw_mean) = summary(&mut theirs);
    println!("one read, interleaved with a raw GET, 10 000 of each (current-thread runtime)");
    println!("| read | median | mean |");
    println!("|---|---|---|");
    println!("| raw `GET` | {raw_median:.1?} | {raw_mean:.1?} |");
    println!("| herdcache, memory miss answered by Redis | {ours_median:.1?} | {ours_mean:.1?} |");
    println!(
        "| ratio | {:.2} | {:.2} |\n",
        ours_median.as_secs_f64() / raw_median.as_secs_f64(),
        ours_mean.as_secs_f64() / raw_mean.as_secs_f64()
    );
}

/// A memory miss answered by Redis: the value is dropped from this
/// instance's memory, then read back.
fn herdcache_read(setup: &'static Setup) -> String {
    setup.cache.invalidate_here(&7);
    setup.tokio.block_on(async {
        let value: Option<String> = setup
            .cache
            .load(7, LoadHooks::new(FailureShare::unit()), async {
                unreachable!("Redis has it")
            })
            .await;
        value.unwrap()
    })
}

/// A raw `GET` of the entry on `connection`, from the bench's own runtime.
fn raw_read(setup: &'static Setup, connection: &redis::aio::MultiplexedConnection) -> Vec<u8> {
    let mut raw = connection.clone();
    setup.tokio.block_on(async {
        redis::cmd("GET")
            .arg(&setup.key)
            .query_async(&mut raw)
            .await
            .unwrap()
    })
}

#[divan::bench]
fn herdcache_from_redis(bencher: Bencher) {
    let setup = setup();
    bencher.bench_local(|| herdcache_read(setup));
    assert!(setup.cache.stats().l2_hits > 0);
}

/// A raw `GET` of the same entry.
#[divan::bench]
fn raw_redis_get(bencher: Bencher) {
    let setup = setup();
    bencher.bench_local(|| raw_read(setup, &setup.raw));
}

/// A raw `GET` on a connection driven on another thread (as the tier's).
#[divan::bench]
fn raw_redis_get_driven_elsewhere(bencher: Bencher) {
    let setup = setup();
    bencher.bench_local(|| raw_read(setup, &setup.raw_elsewhere));
}

/// The two `GET`s the tier sends for a read, as one pipeline (the value
/// and its key's version), on a connection driven on another thread: the
/// protocol's own cost, without herdcache's.
#[divan::bench]
fn raw_redis_pipeline_driven_elsewhere(bencher: Bencher) {
    let setup = setup();
    let version = format!("{}:ver", setup.key);
    bencher.bench_local(|| {
        let mut raw = setup.raw_elsewhere.clone();
        setup.tokio.block_on(async {
            let (bytes, version): (Vec<u8>, Option<u64>) = redis::pipe()
                .cmd("GET")
                .arg(&setup.key)
                .cmd("GET")
                .arg(&version)
                .query_async(&mut raw)
                .await
                .unwrap();
            (bytes, version)
        })
    });
}

/// 64 tasks, each a memory miss answered by Redis, on their own keys, at
/// once: the tier's throughput against 64 raw `GET`s on one connection.
#[divan::bench]
fn herdcache_from_redis_64_tasks(bencher: Bencher) {
    let setup = setup();
    setup.tokio.block_on(fill_64(setup.cache));
    bencher.bench_local(|| {
        for key in 100..164 {
            setup.cache.invalidate_here(&key);
        }
        setup.tokio.block_on(async {
            let tasks: Vec<_> = (100..164u64)
                .map(|key| {
                    tokio::spawn(async move {
                        let value: Option<String> = setup
                            .cache
                            .load(key, LoadHooks::new(FailureShare::unit()), async {
                                unreachable!("Redis has it")
                            })
                            .await;
                        value.unwrap()
                    })
                })
                .collect();
            for task in tasks {
                task.await.unwrap();
            }
        });
    });
}

#[divan::bench]
fn raw_redis_get_64_tasks(bencher: Bencher) {
    let setup = setup();
    setup.tokio.block_on(fill_64(setup.cache));
    let keys: Vec<String> = (100..164u64)
        .map(|key| setup.tokio.block_on(setup.cache.redis_key(&key)).unwrap())
        .collect();
    bencher.bench_local(|| {
        setup.tokio.block_on(async {
            let tasks: Vec<_> = keys
                .iter()
                .cloned()
                .map(|key| {
                    let mut raw = setup.raw.clone();
                    tokio::spawn(async move {
                        let bytes: Vec<u8> = redis::cmd("GET")
                            .arg(&key)
                            .query_async(&mut raw)
                            .await
                            .unwrap();
                        bytes
                    })
                })
                .collect();
            for task in tasks {
                task.await.unwrap();
            }
        });
    });
}

async fn fill_64(cache: &'static FnCache<u64, String>) {
    for key in 100..164u64 {
        let _: Option<String> = cache
            .load(key, LoadHooks::new(FailureShare::unit()), async move {
                Some(format!("value {key}"))
            })
            .await;
    }
}
