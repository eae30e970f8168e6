//! Freshness policies driven by a manual clock: swr, early refresh,
//! fail-safe, negative caching, ttl_for, and invalidation across them.
//! Background refreshes are held at a gate the test opens, so "in flight"
//! is a state the test controls, never a race it hopes to win.

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::time::Duration;

use herdcache_runtime::{CacheConfig, FailureShare, FnCache, LoadHooks, ManualClock, Negative};

mod common;
use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swr_serves_1000_stale_callers_at_once_while_one_refresh_runs() {
    let clock = ManualClock::new();
    let cache = leak(
        CacheConfig::new("swr", TTL).swr(Duration::from_secs(30)),
        &clock,
    );
    let mut origin = Origin::new(|n| Ok(format!("v{n}")));
    assert_eq!(call(cache, 1, &origin, hooks()).await.unwrap(), "v0");

    clock.advance(TTL + Duration::from_secs(1));
    origin.gate = Gate::closed();
    let callers: Vec<_> = (0..1000)
        .map(|_| {
            let origin = origin.clone();
            tokio::spawn(async move { call(cache, 1, &origin, hooks()).await })
        })
        .collect();
    // Every caller returns while the refresh is still held at the gate.
    for caller in callers {
        assert_eq!(caller.await.unwrap().unwrap(), "v0");
    }
    let stats = cache.stats();
    assert_eq!((stats.stale_hits, stats.refreshes), (1000, 1));
    assert_eq!(origin.loads(), 2, "one initial load, one refresh");

    origin.gate.release();
    wait_until("the refresh landed", || cache.get_fresh(&1).is_some()).await;
    assert_eq!(cache.get_fresh(&1).as_deref(), Some("v1"));
}

/// `<fn>_entry`'s account of a caller answered from memory after its
/// miss: a value past its freshness is stale, not a hit.
#[tokio::test]
async fn an_answer_from_memory_past_freshness_is_told_stale() {
    let clock = ManualClock::new();
    let cache = leak(
        CacheConfig::new("meta-stale", TTL).swr(Duration::from_secs(30)),
        &clock,
    );
    let origin = Origin::new(|n| Ok(format!("v{n}")));
    call(cache, 1, &origin, hooks()).await.unwrap();
    let fresh = cache.entry_meta(&1, herdcache_runtime::Served::Hit);
    assert_eq!(fresh.served(), herdcache_runtime::Served::Hit);
    assert_eq!(fresh.entry(()).fresh_for(), TTL);
    clock.advance(TTL + Duration::from_secs(1));
    let stale = cache.entry_meta(&1, herdcache_runtime::Served::Hit);
    assert_eq!(stale.served(), herdcache_runtime::Served::Stale);
    assert_eq!(stale.entry(()).fresh_for(), Duration::ZERO);
}

#[tokio::test]
async fn a_failing_refresh_keeps_the_stale_value_until_its_window_ends() {
    let clock = ManualClock::new();
    let cache = leak(
        CacheConfig::new("swr-fail", TTL).swr(Duration::from_secs(30)),
        &clock,
    );
    let origin = Origin::new(|n| {
        if n == 0 {
            Ok("v0".into())
        } else {
            Err(format!("down {n}"))
        }
    });
    call(cache, 1, &origin, hooks()).await.unwrap();

    clock.advance(TTL + Duration::from_secs(1));
    assert_eq!(call(cache, 1, &origin, hooks()).await.unwrap(), "v0");
    wait_until("the refresh failed", || cache.stats().refresh_errors == 1).await;
    // Still stale, still served; the next stale hit tries once more.
    clock.advance(Duration::from_secs(28));
    assert_eq!(call(cache, 1, &origin, hooks()).await.unwrap(), "v0");
    wait_until("the second refresh failed", || {
        cache.stats().refresh_errors == 2
    })
    .await;
    assert_eq!(cache.stats().load_errors, 0, "no caller saw a failure");

    // Past the stale window, callers wait for a load and get its error.
    clock.advance(Duration::from_secs(2));
    assert_eq!(
        call(cache, 1, &origin, hooks()).await.unwrap_err(),
        "down 3"
    );
}

#[tokio::test]
async fn early_refresh_fires_before_expiry_for_a_hot_key_and_never_twice_at_once() {
    let clock = ManualClock::new();
    let cache = leak(CacheConfig::new("xfetch", TTL).early_refresh(1.0), &clock);
    // A load that takes 50 ms of real time: XFetch's delta.
    let mut origin = Origin::new(|n| Ok(format!("v{n}")));
    let slow = origin.clone();
    let first = cache
        .load(1, hooks(), async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            slow.load().await
        })
        .await;
    assert_eq!(first.unwrap(), "v0");

    // Far from expiry (a minute ahead of a 50 ms load), no draw fires.
    for _ in 0..1000 {
        call(cache, 1, &origin, hooks()).await.unwrap();
    }
    assert_eq!(cache.stats().refreshes, 0);

    // 10 ms before expiry each hit fires with probability e^-0.2 or more:
    // a hot key refreshes before it expires, and only once at a time.
    clock.advance(TTL - Duration::from_millis(10));
    origin.gate = Gate::closed();
    for _ in 0..200 {
        assert_eq!(call(cache, 1, &origin, hooks()).await.unwrap(), "v0");
    }
    assert_eq!(cache.stats().refreshes, 1);
    assert_eq!(cache.stats().misses, 1, "no caller waited but the first");
    origin.gate.release();
    wait_until("the early refresh landed", || {
        cache.get_fresh(&1).as_deref() == Some("v1")
    })
    .await;
}

#[tokio::test]
async fn fail_safe_answers_throttles_and_stops_at_its_window() {
    let clock = ManualClock::new();
    let cache = leak(
        CacheConfig::new("fail-safe", TTL)
            .fail_safe(Duration::from_secs(600))
            .fail_safe_throttle(Duration::from_secs(5)),
        &clock,
    );
    let origin = Origin::new(|n| {
        if n == 0 {
            Ok("v0".into())
        } else {
            Err(format!("down {n}"))
        }
    });
    call(cache, 1, &origin, hooks()).await.unwrap();

    // Expired, the origin fails: the old value answers instead.
    clock.advance(TTL + Duration::from_secs(1));
    assert_eq!(call(cache, 1, &origin, hooks()).await.unwrap(), "v0");
    assert_eq!((origin.loads(), cache.stats().fail_safe_hits), (2, 1));
    // Throttled: the origin is not asked again for 5 s.
    clock.advance(Duration::from_secs(4));
    assert_eq!(call(cache, 1, &origin, hooks()).await.unwrap(), "v0");
    assert_eq!(origin.loads(), 2);
    clock.advance(Duration::from_secs(2));
    assert_eq!(call(cache, 1, &origin, hooks()).await.unwrap(), "v0");
    assert_eq!((origin.loads(), cache.stats().fail_safe_hits), (3, 2));

    // Throttling never extends the window: past it, the error.
    clock.advance(Duration::from_secs(600));
    assert_eq!(
        call(cache, 1, &origin, hooks()).await.unwrap_err(),
        "down 3"
    );
}

#[tokio::test]
async fn none_is_an_answer_fail_safe_never_covers_it() {
    let clock = ManualClock::new();
    let cache = leak(
        CacheConfig::new("fail-safe-none", TTL).fail_safe(Duration::from_secs(600)),
        &clock,
    );
    let loads = AtomicUsize::new(0);
    let load = |answer: Option<&'static str>| {
        loads.fetch_add(1, SeqCst);
        std::future::ready(answer.map(String::from))
    };
    let hooks = LoadHooks::new(FailureShare::unit());
    let first = cache.load(1, hooks.clone(), load(Some("ada"))).await;
    assert_eq!(first.as_deref(), Some("ada"));
    clock.advance(TTL + Duration::from_secs(1));
    // The user was deleted: `None`, not the old value.
    assert_eq!(cache.load(1, hooks.clone(), load(None)).await, None);
    assert_eq!(cache.stats().fail_safe_hits, 0);
    // And the old value is gone, not kept as a fallback.
    assert_eq!(cache.load(1, hooks.clone(), load(None)).await, None);
    assert_eq!(loads.load(SeqCst), 3);
}

#[tokio::test]
async fn negative_caching_holds_a_failure_for_its_ttl_only() {
    let clock = ManualClock::new();
    let cache = leak(CacheConfig::new("negative", TTL).varied_lifetimes(), &clock);
    let origin = Origin::new(|n| Err(format!("not found {n}")));
    let negative = hooks().negative(Negative::Always(Duration::from_secs(5)));
    assert_eq!(
        call(cache, 1, &origin, negative.clone()).await.unwrap_err(),
        "not found 0"
    );
    assert_eq!(
        call(cache, 1, &origin, negative.clone()).await.unwrap_err(),
        "not found 0"
    );
    assert_eq!((origin.loads(), cache.stats().negative_hits), (1, 1));
    clock.advance(Duration::from_secs(5));
    assert_eq!(
        call(cache, 1, &origin, negative.clone()).await.unwrap_err(),
        "not found 1"
    );
    // Without a rule, failures are never cached.
    assert_eq!(
        call(cache, 2, &origin, hooks()).await.unwrap_err(),
        "not found 2"
    );
    assert_eq!(
        call(cache, 2, &origin, hooks()).await.unwrap_err(),
        "not found 3"
    );
}

/// Cache a "not found" for a minute, never a timeout. (The signature is
/// the rule's: a `fn(&E)` for the error type `E = String`.)
#[allow(clippy::ptr_arg)]
fn rule(error: &String) -> Option<Duration> {
    error
        .starts_with("not found")
        .then_some(Duration::from_secs(60))
}

#[tokio::test]
async fn a_negative_rule_caches_only_what_it_says() {
    let clock = ManualClock::new();
    let cache = leak(CacheConfig::new("rule", TTL).varied_lifetimes(), &clock);
    let origin = Origin::new(|n| {
        Err(if n % 2 == 0 {
            format!("timeout {n}")
        } else {
            format!("not found {n}")
        })
    });
    let ruled = hooks().negative(Negative::Rule(rule));
    assert_eq!(
        call(cache, 1, &origin, ruled.clone()).await.unwrap_err(),
        "timeout 0"
    );
    assert_eq!(
        call(cache, 1, &origin, ruled.clone()).await.unwrap_err(),
        "not found 1"
    );
    assert_eq!(
        call(cache, 1, &origin, ruled.clone()).await.unwrap_err(),
        "not found 1"
    );
    assert_eq!(origin.loads(), 2);
    clock.advance(Duration::from_secs(60));
    assert_eq!(
        call(cache, 1, &origin, ruled.clone()).await.unwrap_err(),
        "timeout 2"
    );
}

#[tokio::test]
async fn ttl_for_gives_a_value_its_own_shorter_life() {
    let clock = ManualClock::new();
    let cache = leak(CacheConfig::new("ttl-for", TTL).varied_lifetimes(), &clock);
    let origin = Origin::new(|n| Ok(format!("token-{n}")));
    // A token that says it lives 10 s; another that claims a day (capped).
    let own_ttl = hooks().ttl_for(|token: &String| {
        if token == "token-0" {
            Duration::from_secs(10)
        } else {
            Duration::from_secs(86_400)
        }
    });
    assert_eq!(
        call(cache, 1, &origin, own_ttl.clone()).await.unwrap(),
        "token-0"
    );
    clock.advance(Duration::from_secs(9));
    assert_eq!(
        call(cache, 1, &origin, own_ttl.clone()).await.unwrap(),
        "token-0"
    );
    clock.advance(Duration::from_secs(1));
    assert_eq!(
        call(cache, 1, &origin, own_ttl.clone()).await.unwrap(),
        "token-1"
    );
    clock.advance(TTL - Duration::from_secs(1));
    assert_eq!(
        call(cache, 1, &origin, own_ttl.clone()).await.unwrap(),
        "token-1"
    );
    clock.advance(Duration::from_secs(1));
    assert_eq!(
        call(cache, 1, &origin, own_ttl.clone()).await.unwrap(),
        "token-2"
    );
}

#[tokio::test]
async fn an_invalidation_during_a_background_refresh_is_never_undone() {
    let clock = ManualClock::new();
    let cache = leak(
        CacheConfig::new("swr-invalidate", TTL)
            .swr(Duration::from_secs(30))
            .fail_safe(Duration::from_secs(600)),
        &clock,
    );
    let mut origin = Origin::new(|n| Ok(format!("v{n}")));
    call(cache, 1, &origin, hooks()).await.unwrap();
    clock.advance(TTL + Duration::from_secs(1));
    origin.gate = Gate::closed();
    assert_eq!(call(cache, 1, &origin, hooks()).await.unwrap(), "v0");
    wait_until("the refresh started", || origin.loads() == 2).await;

    cache.invalidate(&1).await;
    // Gone: not stale, not a fallback.
    origin.gate.release();
    let after = call(cache, 1, &origin, hooks()).await.unwrap();
    assert_eq!(after, "v2", "a load that began after the invalidation");
    // The refresh that began before it lands, and is not stored.
    wait_until("the old refresh finished", || origin.loads() == 3).await;
    tokio::task::yield_now().await;
    assert_eq!(cache.get_fresh(&1).as_deref(), Some("v2"));
}

#[tokio::test]
async fn an_invalidation_leaves_no_fail_safe_fallback() {
    let clock = ManualClock::new();
    let cache = leak(
        CacheConfig::new("fail-safe-invalidate", TTL).fail_safe(Duration::from_secs(600)),
        &clock,
    );
    let origin = Origin::new(|n| {
        if n == 0 {
            Ok("v0".into())
        } else {
            Err("down".into())
        }
    });
    call(cache, 1, &origin, hooks()).await.unwrap();
    cache.invalidate(&1).await;
    clock.advance(TTL + Duration::from_secs(1));
    assert_eq!(call(cache, 1, &origin, hooks()).await.unwrap_err(), "down");
}

#[tokio::test]
async fn a_refresh_outlives_the_caller_that_started_it() {
    let clock = ManualClock::new();
    let cache = leak(
        CacheConfig::new("swr-detached", TTL).swr(Duration::from_secs(30)),
        &clock,
    );
    let mut origin = Origin::new(|n| Ok(format!("v{n}")));
    call(cache, 1, &origin, hooks()).await.unwrap();
    clock.advance(TTL + Duration::from_secs(1));
    origin.gate = Gate::closed();
    {
        // The caller's task ends (here: its future is dropped once done).
        let caller = call(cache, 1, &origin, hooks());
        assert_eq!(caller.await.unwrap(), "v0");
    }
    wait_until("the refresh started", || origin.loads() == 2).await;
    origin.gate.release();
    wait_until("the refresh landed on its own", || {
        cache.get_fresh(&1).as_deref() == Some("v1")
    })
    .await;
}

#[tokio::test]
async fn an_explicit_refresh_that_fails_leaves_the_value_alone() {
    let clock = ManualClock::new();
    let cache = leak(
        CacheConfig::new("explicit", TTL).fail_safe(Duration::from_secs(600)),
        &clock,
    );
    let origin = Origin::new(|n| {
        if n == 0 {
            Ok("v0".into())
        } else {
            Err("down".into())
        }
    });
    call(cache, 1, &origin, hooks()).await.unwrap();
    assert_eq!(
        cache.refresh(1, hooks(), origin.load()).await.unwrap_err(),
        "down",
        "the error, not a fallback"
    );
    assert_eq!(cache.get_fresh(&1).as_deref(), Some("v0"));
}

fn timeout_hooks() -> LoadHooks<String, String> {
    hooks().timeout_error(|| "timed out".to_owned())
}

// Deadlines are tokio timers: paused time advances on its own once every
// task waits, so "the load is slower than the timeout" is exact.

#[tokio::test(start_paused = true)]
async fn a_soft_timeout_serves_the_fallback_and_the_load_fills_the_cache_later() {
    let clock = ManualClock::new();
    let cache = leak(
        CacheConfig::new("soft-timeout", TTL)
            .fail_safe(Duration::from_secs(600))
            .timeout(Duration::from_millis(300)),
        &clock,
    );
    let mut origin = Origin::new(|n| Ok(format!("v{n}")));
    call(cache, 1, &origin, hooks()).await.unwrap();
    clock.advance(TTL + Duration::from_secs(1));

    origin.gate = Gate::closed();
    let started = tokio::time::Instant::now();
    assert_eq!(call(cache, 1, &origin, hooks()).await.unwrap(), "v0");
    assert_eq!(started.elapsed(), Duration::from_millis(300));
    let stats = cache.stats();
    assert_eq!(
        (stats.timeouts, stats.fail_safe_hits),
        (1, 0),
        "not a failure"
    );

    // The load goes on without any caller and stores its value.
    origin.gate.release();
    wait_until("the late load landed", || cache.get_fresh(&1).is_some()).await;
    assert_eq!(cache.get_fresh(&1).as_deref(), Some("v1"));
    assert_eq!(origin.loads(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_hard_timeout_answers_in_time_and_the_late_value_is_stored_once() {
    let clock = ManualClock::new();
    let cache = leak(
        CacheConfig::new("hard-timeout", TTL).hard_timeout(Duration::from_secs(5)),
        &clock,
    );
    let mut origin = Origin::new(|n| Ok(format!("v{n}")));
    origin.gate = Gate::closed();
    let started = tokio::time::Instant::now();
    assert_eq!(
        call(cache, 1, &origin, timeout_hooks()).await.unwrap_err(),
        "timed out"
    );
    assert_eq!(started.elapsed(), Duration::from_secs(5));
    // A caller arriving meanwhile joins the same load and waits its own 5 s.
    assert_eq!(
        call(cache, 1, &origin, timeout_hooks()).await.unwrap_err(),
        "timed out"
    );
    assert_eq!(origin.loads(), 1, "no second load beside the first");
    assert_eq!(cache.stats().timeouts, 2);

    origin.gate.release();
    wait_until("the late value landed", || cache.get_fresh(&1).is_some()).await;
    assert_eq!(
        call(cache, 1, &origin, timeout_hooks()).await.unwrap(),
        "v0"
    );
    assert_eq!(origin.loads(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_hard_timeout_answers_with_the_fail_safe_fallback_when_there_is_one() {
    let clock = ManualClock::new();
    let cache = leak(
        CacheConfig::new("hard-timeout-fallback", TTL)
            .fail_safe(Duration::from_secs(600))
            .hard_timeout(Duration::from_secs(5)),
        &clock,
    );
    let mut origin = Origin::new(|n| Ok(format!("v{n}")));
    call(cache, 1, &origin, timeout_hooks()).await.unwrap();
    clock.advance(TTL + Duration::from_secs(1));
    origin.gate = Gate::closed();
    assert_eq!(
        call(cache, 1, &origin, timeout_hooks()).await.unwrap(),
        "v0"
    );
    assert_eq!(cache.stats().fail_safe_hits, 1);
    origin.gate.release();
}

#[tokio::test(start_paused = true)]
async fn an_invalidation_during_a_timed_out_load_is_never_undone() {
    let clock = ManualClock::new();
    let cache = leak(
        CacheConfig::new("timeout-invalidate", TTL).hard_timeout(Duration::from_secs(5)),
        &clock,
    );
    let mut origin = Origin::new(|n| Ok(format!("v{n}")));
    origin.gate = Gate::closed();
    assert!(call(cache, 1, &origin, timeout_hooks()).await.is_err());
    cache.invalidate(&1).await;
    origin.gate.release();
    wait_until("the old load answered", || {
        origin.answered.load(SeqCst) == 1
    })
    .await;
    // It stores (or not) in the same poll as it answers; let that poll end.
    tokio::task::yield_now().await;
    assert!(
        cache.get_fresh(&1).is_none(),
        "the load began before the invalidation"
    );
    assert_eq!(
        call(cache, 1, &origin, timeout_hooks()).await.unwrap(),
        "v1"
    );
}

#[tokio::test]
async fn a_panicking_load_is_answered_by_fail_safe() {
    let clock = ManualClock::new();
    let cache = leak(
        CacheConfig::new("fail-safe-panic", TTL).fail_safe(Duration::from_secs(600)),
        &clock,
    );
    let origin = Origin::new(|n| match n {
        0 => Ok("v0".into()),
        _ => panic!("the origin's client panicked"),
    });
    call(cache, 1, &origin, hooks()).await.unwrap();
    clock.advance(TTL + Duration::from_secs(1));
    assert_eq!(call(cache, 1, &origin, hooks()).await.unwrap(), "v0");
    let stats = cache.stats();
    assert_eq!((stats.fail_safe_hits, stats.load_errors), (1, 1));

    // Without a fallback the panic goes on up to the caller, as before.
    let cold = tokio::spawn(async move { call(cache, 2, &origin, hooks()).await });
    assert!(cold.await.unwrap_err().is_panic());
}

#[tokio::test]
async fn a_caller_past_the_stale_window_joins_the_refresh_in_flight() {
    let clock = ManualClock::new();
    let cache = leak(
        CacheConfig::new("swr-join", TTL).swr(Duration::from_secs(30)),
        &clock,
    );
    let mut origin = Origin::new(|n| Ok(format!("v{n}")));
    call(cache, 1, &origin, hooks()).await.unwrap();
    clock.advance(TTL + Duration::from_secs(1));
    origin.gate = Gate::closed();
    assert_eq!(call(cache, 1, &origin, hooks()).await.unwrap(), "v0");
    wait_until("the refresh started", || origin.loads() == 2).await;

    // Past the stale window: no value to serve, so wait, on the refresh.
    clock.advance(Duration::from_secs(30));
    let late = {
        let origin = origin.clone();
        tokio::spawn(async move { call(cache, 1, &origin, hooks()).await })
    };
    wait_until("the late caller joined", || cache.stats().coalesced == 1).await;
    origin.gate.release();
    assert_eq!(late.await.unwrap().unwrap(), "v1");
    assert_eq!(origin.loads(), 2, "no load beside the refresh");
}

#[tokio::test(start_paused = true)]
async fn an_invalidation_during_a_soft_timed_out_load_is_never_undone() {
    let clock = ManualClock::new();
    let cache = leak(
        CacheConfig::new("soft-timeout-invalidate", TTL)
            .fail_safe(Duration::from_secs(600))
            .timeout(Duration::from_millis(300)),
        &clock,
    );
    let mut origin = Origin::new(|n| Ok(format!("v{n}")));
    call(cache, 1, &origin, hooks()).await.unwrap();
    clock.advance(TTL + Duration::from_secs(1));
    origin.gate = Gate::closed();
    assert_eq!(
        call(cache, 1, &origin, hooks()).await.unwrap(),
        "v0",
        "the fallback"
    );
    cache.invalidate(&1).await;
    origin.gate.release();
    wait_until("the timed-out load answered", || {
        origin.answered.load(SeqCst) == 2
    })
    .await;
    tokio::task::yield_now().await;
    assert!(cache.get_fresh(&1).is_none());
    assert_eq!(call(cache, 1, &origin, hooks()).await.unwrap(), "v2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refresh_that_panicked_does_not_stop_the_next_one() {
    let clock = ManualClock::new();
    let cache = leak(
        CacheConfig::new("swr-panic", TTL).swr(Duration::from_secs(30)),
        &clock,
    );
    let origin = Origin::new(|n| match n {
        1 => panic!("the refresh's client panicked"),
        n => Ok(format!("v{n}")),
    });
    call(cache, 1, &origin, hooks()).await.unwrap();
    clock.advance(TTL + Duration::from_secs(1));
    assert_eq!(call(cache, 1, &origin, hooks()).await.unwrap(), "v0");
    wait_until("the refresh panicked", || cache.stats().refresh_errors == 1).await;
    // The entry is not left marked as being refreshed: the next stale hit
    // starts another refresh, which succeeds.
    assert_eq!(call(cache, 1, &origin, hooks()).await.unwrap(), "v0");
    wait_until("the second refresh landed", || {
        cache.get_fresh(&1).as_deref() == Some("v2")
    })
    .await;
    assert_eq!(cache.stats().refreshes, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_refresh_nobody_joined_leaves_the_stale_window_alone() {
    let clock = ManualClock::new();
    let cache = leak(
        CacheConfig::new("swr-panic-fail-safe", TTL)
            .swr(Duration::from_secs(60))
            .fail_safe(Duration::from_secs(600)),
        &clock,
    );
    let origin = Origin::new(|n| match n {
        0 => Ok("v0".into()),
        _ => panic!("the refresh's client panicked"),
    });
    call(cache, 1, &origin, hooks()).await.unwrap();
    clock.advance(TTL + Duration::from_secs(1));
    assert_eq!(call(cache, 1, &origin, hooks()).await.unwrap(), "v0");
    wait_until("the refresh panicked", || cache.stats().refresh_errors == 1).await;
    assert_eq!(
        cache.stats().fail_safe_hits,
        0,
        "nobody asked for a fallback"
    );
    // Past the 5 s throttle, still inside the 60 s stale window: stale, not a miss.
    clock.advance(Duration::from_secs(10));
    let misses = cache.stats().misses;
    assert_eq!(call(cache, 1, &origin, hooks()).await.unwrap(), "v0");
    assert_eq!(cache.stats().misses, misses);
}

#[tokio::test(start_paused = true)]
async fn a_hard_timeout_fallback_is_throttled_so_the_next_callers_do_not_wait() {
    let clock = ManualClock::new();
    let cache = leak(
        CacheConfig::new("hard-timeout-throttle", TTL)
            .fail_safe(Duration::from_secs(600))
            .hard_timeout(Duration::from_secs(5)),
        &clock,
    );
    let mut origin = Origin::new(|n| {
        if n == 0 {
            Ok("v0".into())
        } else {
            Err("down".into())
        }
    });
    call(cache, 1, &origin, timeout_hooks()).await.unwrap();
    clock.advance(TTL + Duration::from_secs(1));
    origin.gate = Gate::closed();
    assert_eq!(
        call(cache, 1, &origin, timeout_hooks()).await.unwrap(),
        "v0"
    );
    let started = tokio::time::Instant::now();
    assert_eq!(
        call(cache, 1, &origin, timeout_hooks()).await.unwrap(),
        "v0"
    );
    assert_eq!(
        started.elapsed(),
        Duration::ZERO,
        "served fresh for the throttle"
    );
    assert_eq!(cache.stats().fail_safe_hits, 1);

    // The load then fails: its own fail-safe answer counts nobody twice.
    origin.gate.release();
    wait_until("the load failed", || cache.stats().load_errors == 1).await;
    assert_eq!(cache.stats().fail_safe_hits, 1);
    assert_eq!(origin.loads(), 2);
}

#[test]
fn forever_windows_do_not_panic() {
    let cache: FnCache<u64, u64> = FnCache::new(
        CacheConfig::new("forever", Duration::MAX)
            .jitter(0.5)
            .swr(Duration::MAX)
            .fail_safe(Duration::MAX),
    );
    assert!(cache.get_fresh(&1).is_none());
}

#[tokio::test]
async fn expire_makes_a_value_stale_at_once_and_keeps_it_as_a_fallback() {
    let clock = ManualClock::new();
    let cache = leak(
        CacheConfig::new("expire", TTL)
            .swr(Duration::from_secs(30))
            .fail_safe(Duration::from_secs(600)),
        &clock,
    );
    let mut origin = Origin::new(|n| match n {
        0 | 1 => Ok(format!("v{n}")),
        _ => Err("down".into()),
    });
    call(cache, 1, &origin, hooks()).await.unwrap();
    // Fresh for another minute, but a webhook says it changed.
    cache.expire(&1).await;
    origin.gate = Gate::closed();
    assert_eq!(
        call(cache, 1, &origin, hooks()).await.unwrap(),
        "v0",
        "stale, at once"
    );
    assert_eq!(cache.stats().refreshes, 1);
    origin.gate.release();
    wait_until("refreshed", || cache.get_fresh(&1).as_deref() == Some("v1")).await;

    // Expired past its stale window, the origin down: still a fallback.
    cache.expire(&1).await;
    clock.advance(Duration::from_secs(31));
    assert_eq!(call(cache, 1, &origin, hooks()).await.unwrap(), "v1");
    assert_eq!(cache.stats().fail_safe_hits, 1);

    // Invalidated, by contrast: gone, no fallback.
    cache.invalidate(&1).await;
    assert_eq!(call(cache, 1, &origin, hooks()).await.unwrap_err(), "down");
}

#[tokio::test]
async fn expire_without_swr_or_fail_safe_is_invalidate() {
    let clock = ManualClock::new();
    let cache = leak(CacheConfig::new("expire-plain", TTL), &clock);
    let origin = Origin::new(|n| Ok(format!("v{n}")));
    call(cache, 1, &origin, hooks()).await.unwrap();
    cache.expire(&1).await;
    assert_eq!(call(cache, 1, &origin, hooks()).await.unwrap(), "v1");
}

/// `_expire` then an immediate call, while the coarse clock hits read lags
/// the precise one: the call sees the value stale (fail-safe, no swr: it
/// loads), never fresh for the lag.
#[tokio::test]
async fn an_expired_value_is_stale_for_the_next_hit_whatever_the_coarse_clock_s_lag() {
    let clock = ManualClock::new();
    clock.lag_coarse(Duration::from_millis(5));
    let cache = leak(
        CacheConfig::new("expire-lag", TTL).fail_safe(Duration::from_secs(600)),
        &clock,
    );
    let origin = Origin::new(|n| Ok(format!("v{n}")));
    assert_eq!(call(cache, 1, &origin, hooks()).await.unwrap(), "v0");
    clock.advance(Duration::from_millis(1));
    cache.expire(&1).await;
    assert_eq!(
        call(cache, 1, &origin, hooks()).await.unwrap(),
        "v1",
        "loaded: not served as fresh for the coarse clock's lag"
    );
    assert_eq!(origin.loads(), 2);
}
