//! What `#[idempotent]` adds to a write that takes 1 ms, side by side in
//! one run: the raw operation; `#[idempotent]` with its records in memory;
//! the same engine with its records in Redis (a `redis-server` this bench
//! starts on a free loopback port); and the hand-written guard most
//! services start with, `SET key running NX PX` then `SET key outcome PX`
//! around the operation, on a raw `redis` connection. Each call uses a new
//! key (the cost of a first run); a replay of a completed key is measured
//! too.
//!
//! Run: `cargo bench --features redis --bench idempotent` (needs
//! `redis-server` on `PATH`).

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::OnceLock;
use std::time::Duration;

use divan::Bencher;
use herdcache::__private::{IdemConfig, Idempotency, IdempotencyError};
use herdcache_test_support::RedisServer;
use redis::AsyncCommands;

fn main() {
    divan::main();
    if let Some(setup) = SETUP.get() {
        setup.server.stop();
    }
}

struct Setup {
    server: RedisServer,
    tokio: tokio::runtime::Runtime,
    raw: redis::aio::MultiplexedConnection,
    in_redis: &'static Idempotency<u64, Failed>,
}

#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
struct Failed;

impl From<IdempotencyError> for Failed {
    fn from(_: IdempotencyError) -> Self {
        Failed
    }
}

static SETUP: OnceLock<Setup> = OnceLock::new();

fn setup() -> &'static Setup {
    SETUP.get_or_init(|| {
        let server = RedisServer::start().expect("redis-server on PATH");
        let tokio = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let tier = herdcache::Runtime::builder()
            .redis(server.url())
            .namespace("bench")
            .timeout(Duration::from_secs(5))
            .build()
            .unwrap();
        // Not installed: the `#[idempotent]` function keeps its records in
        // memory, and this engine alone uses the tier.
        let in_redis: &'static Idempotency<u64, Failed> = Box::leak(Box::new(
            Idempotency::new(IdemConfig::new("bench.redis")).with_tier(tier),
        ));
        let raw = tokio.block_on(async {
            redis::Client::open(server.url())
                .unwrap()
                .get_multiplexed_async_connection()
                .await
                .unwrap()
        });
        Setup {
            server,
            tokio,
            raw,
            in_redis,
        }
    })
}

/// The write: 1 ms of work.
async fn operation(amount: u64) -> Result<u64, Failed> {
    tokio::time::sleep(Duration::from_millis(1)).await;
    Ok(amount)
}

#[herdcache::idempotent(key = key, name = "bench.memory")]
async fn charge(key: String, amount: u64) -> Result<u64, Failed> {
    operation(amount).await
}

static NEXT: AtomicU64 = AtomicU64::new(0);

fn next_key() -> String {
    format!("order-{}", NEXT.fetch_add(1, Relaxed))
}

#[divan::bench(sample_count = 100, sample_size = 5)]
fn raw_operation(bencher: Bencher) {
    let setup = setup();
    bencher.bench_local(|| setup.tokio.block_on(operation(5)));
}

#[divan::bench(sample_count = 100, sample_size = 5)]
fn idempotent_memory(bencher: Bencher) {
    let setup = setup();
    bencher.bench_local(|| setup.tokio.block_on(charge(next_key(), 5)));
}

#[divan::bench(sample_count = 100, sample_size = 5)]
fn idempotent_redis(bencher: Bencher) {
    let setup = setup();
    bencher.bench_local(|| {
        setup.tokio.block_on(
            setup
                .in_redis
                .run(Ok(next_key()), 0, 0, Failed::from, || operation(5)),
        )
    });
}

#[divan::bench(sample_count = 100, sample_size = 5)]
fn hand_written_set_nx(bencher: Bencher) {
    let setup = setup();
    bencher.bench_local(|| {
        setup.tokio.block_on(async {
            let mut redis = setup.raw.clone();
            let key = format!("hand:{}", next_key());
            let claimed: Option<String> = redis::cmd("SET")
                .arg(&key)
                .arg("running")
                .arg("NX")
                .arg("PX")
                .arg(30_000)
                .query_async(&mut redis)
                .await
                .unwrap();
            assert!(claimed.is_some());
            let outcome = operation(5).await.unwrap();
            let _: () = redis
                .pset_ex(&key, outcome.to_string(), 86_400_000)
                .await
                .unwrap();
            outcome
        })
    });
}

#[divan::bench(sample_count = 100, sample_size = 20)]
fn replay_memory(bencher: Bencher) {
    let setup = setup();
    setup
        .tokio
        .block_on(charge("replayed".to_owned(), 5))
        .unwrap();
    bencher.bench_local(|| setup.tokio.block_on(charge("replayed".to_owned(), 5)));
}

#[divan::bench(sample_count = 100, sample_size = 20)]
fn replay_redis(bencher: Bencher) {
    let setup = setup();
    let run = || {
        setup.tokio.block_on(setup.in_redis.run(
            Ok("replayed".to_owned()),
            0,
            0,
            Failed::from,
            || operation(5),
        ))
    };
    run();
    bencher.bench_local(run);
}
