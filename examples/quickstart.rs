//! herdcache in 30 seconds. Run it with:
//!
//! ```text
//! cargo run --example quickstart
//! ```
//!
//! A pretend database takes 100 ms per query. One attribute caches it, and
//! the output shows what the cache did: one query for a burst of 1 000
//! callers, a hit in microseconds, an expiry, and an invalidation.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use herdcache::cached;

/// How many times the database was really asked.
static QUERIES: AtomicUsize = AtomicUsize::new(0);

#[derive(Clone, Debug)]
#[allow(dead_code)] // the fields are shown with {:?}
struct User {
    id: u64,
    name: String,
}

/// Fresh for 2 s (± 10%, so keys written together do not expire together).
/// `db` is not part of the key: only `user_id` identifies the user.
#[cached(ttl = "2s", jitter = 0.1, key = user_id)]
async fn get_user(user_id: u64, db: &str) -> Result<User, std::io::Error> {
    QUERIES.fetch_add(1, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(100)).await; // the slow query
    Ok(User {
        id: user_id,
        name: format!("user-{user_id} (from {db})"),
    })
}

fn queries() -> usize {
    QUERIES.load(Ordering::SeqCst)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("1. A burst: 1 000 concurrent requests for user 42, cache cold");
    let started = Instant::now();
    let callers: Vec<_> = (0..1_000)
        .map(|_| tokio::spawn(get_user(42, "primary")))
        .collect();
    for caller in callers {
        caller.await??;
    }
    println!(
        "   {} database query served all 1 000 callers in {:.0?} (without the cache: 1 000 queries)",
        queries(),
        started.elapsed()
    );

    println!("2. A hit");
    let started = Instant::now();
    let user = get_user(42, "primary").await?;
    println!(
        "   {user:?} in {:.1?}; database queries still {}",
        started.elapsed(),
        queries()
    );

    println!("3. Expiry: wait past the ttl (2 s + 10% jitter)");
    tokio::time::sleep(Duration::from_millis(2_300)).await;
    get_user(42, "primary").await?;
    println!(
        "   the value had expired: database queries now {}",
        queries()
    );

    println!("4. Invalidation: the user was renamed, drop the cached copy");
    get_user_invalidate(42).await;
    get_user(42, "primary").await?;
    println!(
        "   reloaded after invalidation: database queries now {}",
        queries()
    );

    let stats = get_user_cache().stats();
    println!(
        "\nstats: hits {}, misses {} ({} of them joined a load in flight), loads {}, invalidations {}, load p50 {:.0?}",
        stats.hits, stats.misses, stats.coalesced, stats.loads, stats.invalidations, stats.load_p50
    );
    Ok(())
}
