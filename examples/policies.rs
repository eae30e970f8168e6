//! Freshness policies in one minute. Run it with:
//!
//! ```text
//! cargo run --example policies
//! ```
//!
//! A pretend exchange-rate API takes 200 ms per call and then goes down.
//! `swr` absorbs each expiry (callers get the last rate at once while one
//! refresh runs) and `fail_safe` serves the last good rate through the
//! outage instead of an error.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use herdcache::cached;

static CALLS: AtomicUsize = AtomicUsize::new(0);
static DOWN: AtomicBool = AtomicBool::new(false);

/// Fresh for 1 s; then served stale for up to 5 s while one refresh runs;
/// kept 1 min more as a fallback if the API fails.
#[cached(ttl = "1s", swr = "5s", fail_safe = "1m", fail_safe_throttle = "2s")]
async fn rate(pair: &str) -> Result<f64, std::io::Error> {
    let call = CALLS.fetch_add(1, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(200)).await;
    if DOWN.load(Ordering::SeqCst) {
        return Err(std::io::Error::other(format!("{pair}: 503 from the API")));
    }
    Ok(1.08 + call as f64 / 1000.0)
}

async fn ask(label: &str) -> Result<(), std::io::Error> {
    let started = Instant::now();
    let rate = rate("EUR/USD").await?;
    println!(
        "   {label:<34} {rate:.3} in {:>9.1?}   (API calls so far: {})",
        started.elapsed(),
        CALLS.load(Ordering::SeqCst)
    );
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), std::io::Error> {
    println!("1. Cold: the first caller waits for the API");
    ask("first call").await?;
    ask("a hit").await?;

    println!("2. Expiry absorbed by swr: past the ttl, the stale rate at once");
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    ask("stale, refresh started").await?;
    tokio::time::sleep(Duration::from_millis(400)).await;
    ask("the refreshed rate").await?;

    println!("3. The API goes down: fail-safe serves the last good rate");
    DOWN.store(true, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(6_500)).await; // past ttl + swr
    ask("API down, fallback").await?;
    ask("throttled: API not asked").await?;

    let stats = rate_cache().stats();
    println!(
        "\nstats: hits {}, stale hits {}, refreshes {}, fail-safe answers {}, loads {}, load errors {}",
        stats.hits,
        stats.stale_hits,
        stats.refreshes,
        stats.fail_safe_hits,
        stats.loads,
        stats.load_errors
    );
    Ok(())
}
