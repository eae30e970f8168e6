//! `<fn>_entry`: the value with how it was served, its age, freshness and
//! windows, on a manual clock; and the digest that names it.

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::time::Duration;

use common::{join_all, wait_until};
use herdcache::testing::{self, ManualClock};
use herdcache::{cached, Served};

static PROFILE_LOADS: AtomicUsize = AtomicUsize::new(0);

#[cached(ttl = "60s", swr = "30s", fail_safe = "10m", key = id)]
async fn profile(id: u64) -> Result<String, std::io::Error> {
    let n = PROFILE_LOADS.fetch_add(1, SeqCst);
    Ok(format!("profile {id} (load {n})"))
}

#[tokio::test]
async fn an_entry_says_how_it_was_served_its_age_and_freshness() {
    let clock = ManualClock::new();
    testing::isolate_with_clock(clock.clone(), async {
        let first = profile_entry(1).await.unwrap();
        assert_eq!(first.value(), "profile 1 (load 0)");
        assert_eq!(first.served(), Served::Loaded);
        assert_eq!(first.age(), Duration::ZERO);
        assert_eq!(first.fresh_for(), Duration::from_secs(60));
        assert_eq!(first.stale_window(), Duration::from_secs(30));
        assert_eq!(first.fail_safe_window(), Duration::from_secs(600));

        clock.advance(Duration::from_secs(20));
        let hit = profile_entry(1).await.unwrap();
        assert_eq!(hit.served(), Served::Hit);
        assert_eq!(hit.value(), first.value());
        assert_eq!(hit.age(), Duration::from_secs(20));
        assert_eq!(hit.fresh_for(), Duration::from_secs(40));
        // The plain function and `_entry` share one cache.
        assert_eq!(profile(1).await.unwrap(), "profile 1 (load 0)");

        clock.advance(Duration::from_secs(50));
        let stale = profile_entry(1).await.unwrap();
        assert_eq!(stale.served(), Served::Stale);
        assert_eq!(stale.value(), "profile 1 (load 0)");
        assert_eq!(stale.fresh_for(), Duration::ZERO);
        assert_eq!(stale.age(), Duration::from_secs(70));
        wait_until("the swr refresh landed", || {
            profile_cache().stats().refreshes == 1 && PROFILE_LOADS.load(SeqCst) == 2
        })
        .await;
        let refreshed = profile_entry(1).await.unwrap();
        assert_eq!(refreshed.served(), Served::Hit);
        assert_eq!(refreshed.value(), "profile 1 (load 1)");
        assert_eq!(refreshed.age(), Duration::ZERO);
    })
    .await;
}

static ORIGIN_DOWN: AtomicBool = AtomicBool::new(false);

#[allow(dead_code)] // called through `_entry` only, which rustc does not count
#[cached(ttl = "60s", swr = "30s", fail_safe = "10m", key = id)]
async fn flaky(id: u64) -> Result<String, std::io::Error> {
    if ORIGIN_DOWN.load(SeqCst) {
        return Err(std::io::Error::other("origin down"));
    }
    Ok(format!("flaky {id}"))
}

#[tokio::test]
async fn a_fail_safe_answer_is_told_apart() {
    let clock = ManualClock::new();
    testing::isolate_with_clock(clock.clone(), async {
        let loaded = flaky_entry(2).await.unwrap();
        assert_eq!(loaded.served(), Served::Loaded);
        // Past freshness and the stale window, the origin down: fail-safe
        // answers with the old value, which is not fresh.
        clock.advance(Duration::from_secs(120));
        ORIGIN_DOWN.store(true, SeqCst);
        let fallback = flaky_entry(2).await.unwrap();
        assert_eq!(fallback.served(), Served::FailSafe);
        assert_eq!(fallback.value(), loaded.value());
        assert_eq!(fallback.fresh_for(), Duration::ZERO);
        assert_eq!(fallback.age(), Duration::from_secs(120));
    })
    .await;
}

static SLOW_LOADS: AtomicUsize = AtomicUsize::new(0);

#[allow(dead_code)] // called through `_entry` only
#[cached(ttl = "60s", key = id)]
async fn slow(id: u64, gate: &tokio::sync::Semaphore) -> Option<u64> {
    SLOW_LOADS.fetch_add(1, SeqCst);
    let _permit = gate.acquire().await.ok()?;
    Some(id * 10)
}

#[tokio::test]
async fn callers_that_join_a_load_are_coalesced_and_its_leader_loaded() {
    testing::isolate(async {
        let gate = tokio::sync::Semaphore::new(0);
        let callers = join_all((0..8).map(|_| slow_entry(7, &gate)).collect());
        let open = async {
            wait_until("every caller arrived", || {
                slow_cache().stats().coalesced == 7
            })
            .await;
            gate.add_permits(1);
        };
        let (entries, ()) = tokio::join!(callers, open);
        let served: Vec<Served> = entries
            .iter()
            .map(|e| e.as_ref().unwrap().served())
            .collect();
        assert_eq!(served.iter().filter(|s| **s == Served::Loaded).count(), 1);
        assert_eq!(
            served.iter().filter(|s| **s == Served::Coalesced).count(),
            7
        );
        assert!(entries.iter().all(|e| *e.as_ref().unwrap().value() == 70));
        assert_eq!(SLOW_LOADS.load(SeqCst), 1);
    })
    .await;
}

static GATED_DOWN: AtomicBool = AtomicBool::new(false);

#[allow(dead_code)] // called through `_entry` only
#[cached(ttl = "60s", fail_safe = "10m", key = id)]
async fn gated(id: u64, gate: &tokio::sync::Semaphore) -> Result<u64, std::io::Error> {
    let _permit = gate.acquire().await.map_err(std::io::Error::other)?;
    if GATED_DOWN.load(SeqCst) {
        return Err(std::io::Error::other("origin down"));
    }
    Ok(id)
}

#[tokio::test]
async fn callers_that_join_a_failed_load_are_told_fail_safe_answered() {
    let clock = ManualClock::new();
    testing::isolate_with_clock(clock.clone(), async {
        let gate = tokio::sync::Semaphore::new(1);
        assert_eq!(
            gated_entry(3, &gate).await.unwrap().served(),
            Served::Loaded
        );
        gate.forget_permits(1);
        clock.advance(Duration::from_secs(120));
        GATED_DOWN.store(true, SeqCst);
        let coalesced_before = gated_cache().stats().coalesced;
        let callers = join_all((0..4).map(|_| gated_entry(3, &gate)).collect());
        let open = async {
            wait_until("every caller arrived", || {
                gated_cache().stats().coalesced == coalesced_before + 3
            })
            .await;
            gate.add_permits(1);
        };
        let (entries, ()) = tokio::join!(callers, open);
        for entry in &entries {
            let entry = entry.as_ref().unwrap();
            assert_eq!(*entry.value(), 3);
            assert_eq!(entry.served(), Served::FailSafe, "not coalesced");
        }
    })
    .await;
}

static SLUGGISH_GATE: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(1);

#[allow(dead_code)] // called through `_entry` only
#[cached(ttl = "60s", fail_safe = "10m", timeout = "50ms", key = id)]
async fn sluggish(id: u64) -> Result<u64, std::io::Error> {
    let _permit = SLUGGISH_GATE
        .acquire()
        .await
        .map_err(std::io::Error::other)?;
    Ok(id)
}

#[tokio::test(start_paused = true)]
async fn a_soft_timeouts_answer_is_stale_not_fail_safe() {
    let clock = ManualClock::new();
    testing::isolate_with_clock(clock.clone(), async {
        assert_eq!(sluggish_entry(4).await.unwrap().served(), Served::Loaded);
        SLUGGISH_GATE.forget_permits(1);
        clock.advance(Duration::from_secs(120));
        // The load hangs past the timeout: the old value, stale.
        let answered = sluggish_entry(4).await.unwrap();
        assert_eq!(answered.served(), Served::Stale);
        assert_eq!(*answered.value(), 4);
        assert_eq!(sluggish_cache().stats().fail_safe_hits, 0, "not a failure");
        // Let the detached load finish, so no task outlives the test.
        SLUGGISH_GATE.add_permits(1);
        // Until the detached load landed: then a call is a fresh hit.
        while sluggish_entry(4).await.unwrap().served() != Served::Hit {}
    })
    .await;
}

#[cfg(feature = "serde")]
#[allow(dead_code)] // called through `_entry` only
#[cached(ttl = "60s")]
async fn plain_greeting(name: String) -> String {
    format!("hello {name}")
}

#[cfg(feature = "serde")]
#[tokio::test]
async fn a_plain_value_comes_in_an_entry_and_digests_the_same_for_the_same_value() {
    testing::isolate(async {
        let loaded = plain_greeting_entry("ada".into()).await;
        let hit = plain_greeting_entry("ada".into()).await;
        assert_eq!(loaded.served(), Served::Loaded);
        assert_eq!(hit.served(), Served::Hit);
        assert_eq!(hit.value(), "hello ada");
        assert_eq!(loaded.etag(), hit.etag(), "the digest is the value's");
        assert_ne!(
            loaded.etag(),
            plain_greeting_entry("bob".into()).await.etag()
        );
    })
    .await;
}
