//! A hot key expiring under steady load: 64 tasks each call one key every
//! millisecond for 10 s; the value lives 1 s and the origin takes 50 ms.
//! Without a policy, every expiry makes the callers of that moment wait for
//! the origin; with `swr` or `early_refresh` nobody should, and the origin
//! is still called about once per ttl.
//!
//! Run: `cargo bench --bench expiry_under_load` (set
//! `HERDCACHE_BENCH_SECS` for a shorter or longer run).
//!
//! Not a divan bench: what matters here is the latency distribution of a
//! sustained workload, which it prints as a table.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use herdcache::cached;

const TASKS: usize = 64;
const ORIGIN: Duration = Duration::from_millis(50);

static PLAIN_CALLS: AtomicUsize = AtomicUsize::new(0);
static SWR_CALLS: AtomicUsize = AtomicUsize::new(0);
static EARLY_CALLS: AtomicUsize = AtomicUsize::new(0);

#[cached(ttl = "1s")]
async fn no_policy(key: u64) -> Result<u64, std::io::Error> {
    PLAIN_CALLS.fetch_add(1, Ordering::Relaxed);
    tokio::time::sleep(ORIGIN).await;
    Ok(key)
}

#[cached(ttl = "1s", swr = "1s")]
async fn with_swr(key: u64) -> Result<u64, std::io::Error> {
    SWR_CALLS.fetch_add(1, Ordering::Relaxed);
    tokio::time::sleep(ORIGIN).await;
    Ok(key)
}

#[cached(ttl = "1s", early_refresh = 1.0)]
async fn with_early_refresh(key: u64) -> Result<u64, std::io::Error> {
    EARLY_CALLS.fetch_add(1, Ordering::Relaxed);
    tokio::time::sleep(ORIGIN).await;
    Ok(key)
}

/// Runs the workload against `call` and returns every call's latency.
async fn workload<F, Fut>(seconds: u64, call: F) -> Vec<Duration>
where
    F: Fn() -> Fut + Copy + Send + 'static,
    Fut: std::future::Future<Output = Result<u64, std::io::Error>> + Send,
{
    call().await.expect("warm-up");
    let end = Instant::now() + Duration::from_secs(seconds);
    let tasks: Vec<_> = (0..TASKS)
        .map(|_| {
            tokio::spawn(async move {
                let mut latencies = Vec::with_capacity(seconds as usize * 1_000);
                let mut tick = tokio::time::interval(Duration::from_millis(1));
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                while Instant::now() < end {
                    tick.tick().await;
                    let started = Instant::now();
                    call().await.expect("the origin never fails here");
                    latencies.push(started.elapsed());
                }
                latencies
            })
        })
        .collect();
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.expect("a task"));
    }
    all.sort_unstable();
    all
}

fn quantile(sorted: &[Duration], q: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * q) as usize]
}

fn main() {
    let seconds: u64 = std::env::var("HERDCACHE_BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    println!(
        "{TASKS} tasks, one call each per ms for {seconds} s; ttl 1 s; origin {} ms\n",
        ORIGIN.as_millis()
    );
    println!(
        "| variant | calls | p50 | p99 | p99.9 | max | callers waiting > 10 ms | origin calls |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    let report = |name: &str, latencies: Vec<Duration>, origin: &AtomicUsize| {
        let slow = latencies
            .iter()
            .filter(|latency| **latency > Duration::from_millis(10))
            .count();
        println!(
            "| {name} | {} | {:?} | {:?} | {:?} | {:?} | {slow} | {} |",
            latencies.len(),
            quantile(&latencies, 0.50),
            quantile(&latencies, 0.99),
            quantile(&latencies, 0.999),
            latencies.last().copied().unwrap_or_default(),
            // The warm-up load is not part of the run.
            origin.load(Ordering::Relaxed) - 1,
        );
    };
    let plain = runtime.block_on(workload(seconds, || no_policy(1)));
    report("no policy", plain, &PLAIN_CALLS);
    let swr = runtime.block_on(workload(seconds, || with_swr(1)));
    report("`swr = \"1s\"`", swr, &SWR_CALLS);
    let early = runtime.block_on(workload(seconds, || with_early_refresh(1)));
    report("`early_refresh = 1.0`", early, &EARLY_CALLS);
    println!("\n(origin calls ≈ {seconds} s / 1 s ttl = {seconds} expected)");
}
