//! A stampede: 1 000 callers ask for one cold key at once, and the origin is
//! a database with a pool of 10 connections where each query holds a
//! connection for 1 ms. With herdcache one query answers all 1 000; without
//! de-duplication every caller queries and they queue on the pool.
//!
//! Run: `cargo bench --bench stampede`

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

use divan::Bencher;
use tokio::runtime::Runtime;
use tokio::sync::Semaphore;

const CALLERS: u64 = 1_000;

fn main() {
    divan::main();
    println!(
        "origin queries per stampede: herdcache {:.1}, no de-duplication {:.1}",
        QUERIES_CACHED.load(Ordering::Relaxed) as f64
            / STAMPEDES_CACHED.load(Ordering::Relaxed).max(1) as f64,
        QUERIES_PLAIN.load(Ordering::Relaxed) as f64
            / STAMPEDES_PLAIN.load(Ordering::Relaxed).max(1) as f64,
    );
}

fn runtime() -> &'static Runtime {
    static RUNTIME: OnceLock<Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_time()
            .build()
            .expect("a runtime")
    })
}

static POOL: Semaphore = Semaphore::const_new(10);
static QUERIES_CACHED: AtomicU64 = AtomicU64::new(0);
static QUERIES_PLAIN: AtomicU64 = AtomicU64::new(0);
static STAMPEDES_CACHED: AtomicU64 = AtomicU64::new(0);
static STAMPEDES_PLAIN: AtomicU64 = AtomicU64::new(0);
/// Every stampede is on a key nobody asked for before.
static NEXT_KEY: AtomicU64 = AtomicU64::new(0);

async fn query(id: u64, queries: &AtomicU64) -> u64 {
    let _connection = POOL.acquire().await.expect("the pool is open");
    queries.fetch_add(1, Ordering::Relaxed);
    tokio::time::sleep(Duration::from_millis(1)).await;
    id * 2
}

#[herdcache::cached(ttl = "1h")]
async fn cached_user(id: u64) -> u64 {
    query(id, &QUERIES_CACHED).await
}

async fn plain_user(id: u64) -> u64 {
    query(id, &QUERIES_PLAIN).await
}

fn stampede<F, Fut>(call: F)
where
    F: Fn(u64) -> Fut,
    Fut: std::future::Future<Output = u64> + Send + 'static,
{
    let key = NEXT_KEY.fetch_add(1, Ordering::Relaxed);
    runtime().block_on(async {
        let callers: Vec<_> = (0..CALLERS).map(|_| tokio::spawn(call(key))).collect();
        for caller in callers {
            assert_eq!(caller.await.expect("no caller panics"), key * 2);
        }
    });
}

#[divan::bench(sample_count = 30, sample_size = 1)]
fn herdcache(bencher: Bencher) {
    bencher.bench_local(|| {
        STAMPEDES_CACHED.fetch_add(1, Ordering::Relaxed);
        stampede(cached_user)
    });
}

#[divan::bench(sample_count = 30, sample_size = 1)]
fn no_deduplication(bencher: Bencher) {
    bencher.bench_local(|| {
        STAMPEDES_PLAIN.fetch_add(1, Ordering::Relaxed);
        stampede(plain_user)
    });
}
