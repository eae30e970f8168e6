//! The fleet's stampede: 4 instances (each its own cache and connection)
//! × 50 callers ask for one cold key at once; the origin takes 20 ms. With
//! the fleet lock one instance loads and the others wait for its value;
//! without it each instance loads once. Prints origin calls per stampede
//! and the callers' latency (p50, p99, max over every caller of every
//! stampede), after divan's table of whole stampedes.
//!
//! Run: `cargo bench -p herdcache-runtime --features redis --bench fleet_stampede`

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use divan::Bencher;
use herdcache_runtime::{CacheConfig, Codec, FailureShare, FnCache, LoadHooks, Runtime};
use herdcache_test_support::RedisServer;
use tokio::runtime::Runtime as Tokio;

const INSTANCES: usize = 4;
const CALLERS: usize = 50;

static CALLS: [AtomicU64; 2] = [AtomicU64::new(0), AtomicU64::new(0)];
static STAMPEDES: [AtomicU64; 2] = [AtomicU64::new(0), AtomicU64::new(0)];
static NEXT_KEY: AtomicU64 = AtomicU64::new(0);
/// Each caller's time from its spawn to its value.
static LATENCIES: [Mutex<Vec<Duration>>; 2] = [Mutex::new(Vec::new()), Mutex::new(Vec::new())];

fn main() {
    divan::main();
    // The fleet lives in a static, which is never dropped.
    if let Some(fleet) = FLEET.get() {
        fleet._server.stop();
    }
    println!("| {INSTANCES} instances × {CALLERS} callers, one cold key | origin calls per stampede | caller p50 | caller p99 | caller max |");
    println!("|---|---|---|---|---|");
    for (variant, name) in ["with the fleet lock", "without it"].iter().enumerate() {
        let mut latencies = LATENCIES[variant].lock().unwrap().clone();
        latencies.sort();
        let at = |q: f64| {
            latencies
                .get(((latencies.len() as f64 * q) as usize).min(latencies.len().saturating_sub(1)))
                .copied()
                .unwrap_or_default()
        };
        println!(
            "| {name} | {:.2} | {:.1?} | {:.1?} | {:.1?} |",
            CALLS[variant].load(Ordering::Relaxed) as f64
                / STAMPEDES[variant].load(Ordering::Relaxed).max(1) as f64,
            at(0.50),
            at(0.99),
            latencies.last().copied().unwrap_or_default(),
        );
    }
}

struct Fleet {
    tokio: Tokio,
    with_lock: Vec<&'static FnCache<u64, u64>>,
    without_lock: Vec<&'static FnCache<u64, u64>>,
    _server: RedisServer,
}

static FLEET: OnceLock<Fleet> = OnceLock::new();

fn fleet() -> &'static Fleet {
    FLEET.get_or_init(|| {
        let server = RedisServer::start().expect("redis-server on PATH");
        let tokio = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let instances = |lock: bool, namespace: &str| -> Vec<&'static FnCache<u64, u64>> {
            (0..INSTANCES)
                .map(|_| {
                    let tier = Runtime::builder()
                        .redis(server.url())
                        .namespace(namespace)
                        .timeout(Duration::from_secs(5))
                        .fleet_lock(lock)
                        .build()
                        .unwrap();
                    let cache = FnCache::new(
                        CacheConfig::new("stampede", Duration::from_secs(3600)).distributed(),
                    )
                    .with_redis(tier, Codec::of(1));
                    let cache: &'static FnCache<u64, u64> = Box::leak(Box::new(cache));
                    cache
                })
                .collect()
        };
        let with_lock = instances(true, "locked");
        let without_lock = instances(false, "unlocked");
        Fleet {
            tokio,
            with_lock,
            without_lock,
            _server: server,
        }
    })
}

fn stampede(bencher: Bencher, variant: usize) {
    let fleet = fleet();
    let instances = if variant == 0 {
        &fleet.with_lock
    } else {
        &fleet.without_lock
    };
    bencher.bench_local(|| {
        let key = NEXT_KEY.fetch_add(1, Ordering::Relaxed);
        STAMPEDES[variant].fetch_add(1, Ordering::Relaxed);
        fleet.tokio.block_on(async {
            let callers: Vec<_> = instances
                .iter()
                .flat_map(|&cache| {
                    (0..CALLERS).map(move |_| {
                        let spawned = Instant::now();
                        tokio::spawn(async move {
                            let value: Option<u64> = cache
                                .load(key, LoadHooks::new(FailureShare::unit()), async move {
                                    CALLS[variant].fetch_add(1, Ordering::Relaxed);
                                    tokio::time::sleep(Duration::from_millis(20)).await;
                                    Some(key)
                                })
                                .await;
                            LATENCIES[variant].lock().unwrap().push(spawned.elapsed());
                            value.unwrap()
                        })
                    })
                })
                .collect();
            for caller in callers {
                caller.await.unwrap();
            }
        });
    });
}

#[divan::bench(sample_count = 30, sample_size = 1)]
fn with_the_fleet_lock(bencher: Bencher) {
    stampede(bencher, 0);
}

#[divan::bench(sample_count = 30, sample_size = 1)]
fn without_it(bencher: Bencher) {
    stampede(bencher, 1);
}
