//! Values expire after their ttl, spread by jitter, on a manual clock
//! (`testing::isolate_with_clock`): exact bounds, no sleeping.

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::time::Duration;

use herdcache::cached;
use herdcache::testing::{self, ManualClock};

static LOADS: AtomicUsize = AtomicUsize::new(0);

#[cached(ttl = "300ms")]
async fn short_lived(key: u64) -> u64 {
    LOADS.fetch_add(1, SeqCst);
    key
}

#[tokio::test]
async fn a_value_expires_after_its_ttl() {
    let clock = ManualClock::new();
    testing::isolate_with_clock(clock.clone(), async {
        short_lived(1).await;
        clock.advance(Duration::from_millis(299));
        short_lived(1).await;
        assert_eq!(LOADS.load(SeqCst), 1, "a call within the ttl hits");
        clock.advance(Duration::from_millis(1));
        short_lived(1).await;
        assert_eq!(LOADS.load(SeqCst), 2, "at its ttl the value has expired");
    })
    .await;
}

static JITTER_LOADS: AtomicUsize = AtomicUsize::new(0);

#[cached(ttl = "400ms", jitter = 0.5)]
async fn jittered(key: u64) -> u64 {
    JITTER_LOADS.fetch_add(1, SeqCst);
    key
}

#[tokio::test]
async fn jittered_entries_expire_within_ttl_times_one_plus_or_minus_jitter() {
    let clock = ManualClock::new();
    testing::isolate_with_clock(clock.clone(), async {
        let read_all = || async {
            for key in 0..50 {
                jittered(key).await;
            }
        };
        read_all().await;
        // Drawn ttls lie in 200..=600 ms: none has expired before 200 ms…
        clock.advance(Duration::from_millis(199));
        read_all().await;
        assert_eq!(JITTER_LOADS.load(SeqCst), 50, "none expired before 200 ms");
        // …some have by 400 ms (50 uniform draws: all above 400 has odds of
        // 2^-50), and every one has after 600.
        clock.advance(Duration::from_millis(201));
        read_all().await;
        let reloaded = JITTER_LOADS.load(SeqCst) - 50;
        assert!((1..50).contains(&reloaded), "{reloaded} expired by 400 ms");
        clock.advance(Duration::from_millis(601));
        read_all().await;
        assert_eq!(
            JITTER_LOADS.load(SeqCst),
            100 + reloaded,
            "every one expired 600 ms after its load"
        );
    })
    .await;
}
