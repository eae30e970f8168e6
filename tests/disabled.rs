//! `HERDCACHE_DISABLED=1`: every call runs the body (no hit, no single
//! flight), for measuring a service with its caching off. The variable is
//! read once per process, so this file holds one test.

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};

use herdcache::{cached, Served};

static LOADS: AtomicUsize = AtomicUsize::new(0);

#[cached(ttl = "1h", swr = "1h", fail_safe = "1h", key = id)]
async fn user(id: u64) -> Result<String, std::io::Error> {
    LOADS.fetch_add(1, SeqCst);
    Ok(format!("user {id}"))
}

#[tokio::test]
async fn with_caching_disabled_every_call_runs_the_body() {
    // Before any cache is made: the variable is read by the first.
    std::env::set_var("HERDCACHE_DISABLED", "1");
    for round in 1..=5 {
        assert_eq!(user(1).await.unwrap(), "user 1");
        assert_eq!(LOADS.load(SeqCst), round);
    }
    let entry = user_entry(1).await.unwrap();
    assert_eq!(entry.served(), Served::Loaded);
    assert_eq!(LOADS.load(SeqCst), 6);
    let stats = user_cache().stats();
    assert_eq!((stats.hits, stats.misses, stats.loads), (0, 6, 6));
    assert_eq!(user_cache().len(), 0, "nothing is stored");
    // Callers at once each run it too: no single flight.
    let calls: Vec<_> = (0..4).map(|_| tokio::spawn(user(2))).collect();
    for call in calls {
        call.await.unwrap().unwrap();
    }
    assert_eq!(LOADS.load(SeqCst), 10);
}
