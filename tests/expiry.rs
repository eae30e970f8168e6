//! Values expire after their ttl. Real time with wide margins here; exact
//! ttl and jitter bounds are tested against a manual clock in the runtime.

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::time::{Duration, Instant};

use herdcache::cached;

static LOADS: AtomicUsize = AtomicUsize::new(0);

#[cached(ttl = "300ms")]
async fn short_lived(key: u64) -> u64 {
    LOADS.fetch_add(1, SeqCst);
    key
}

#[tokio::test]
async fn a_value_expires_after_its_ttl() {
    let loaded = Instant::now();
    short_lived(1).await;
    short_lived(1).await;
    let second_call = loaded.elapsed();
    if second_call < Duration::from_millis(300) {
        assert_eq!(LOADS.load(SeqCst), 1, "the second call within the ttl hit");
    }
    tokio::time::sleep(Duration::from_millis(600)).await;
    short_lived(1).await;
    assert_eq!(
        LOADS.load(SeqCst),
        if second_call < Duration::from_millis(300) {
            2
        } else {
            3
        },
        "after twice the ttl the value had expired"
    );
}

static JITTER_LOADS: AtomicUsize = AtomicUsize::new(0);

#[cached(ttl = "400ms", jitter = 0.5)]
async fn jittered(key: u64) -> u64 {
    JITTER_LOADS.fetch_add(1, SeqCst);
    key
}

#[tokio::test]
async fn jittered_entries_expire_within_ttl_times_one_plus_jitter() {
    for key in 0..50 {
        jittered(key).await;
    }
    // Drawn ttls lie in 200..600 ms: after 1.2 s every entry is gone.
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    for key in 0..50 {
        jittered(key).await;
    }
    assert_eq!(JITTER_LOADS.load(SeqCst), 100);
}
