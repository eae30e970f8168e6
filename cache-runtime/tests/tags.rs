//! Tags: an invalidation reaches every function's entries carrying the tag,
//! is never undone by a load that was in flight across it (a foreground
//! load, a swr refresh, a soft-timed-out load), leaves no fail-safe
//! fallback, and `expire_tag` keeps the value stale instead. Each test uses
//! tags of its own: the tag space is shared by the whole test binary.

use std::sync::atomic::Ordering::SeqCst;
use std::time::Duration;

use herdcache_runtime::{
    expire_tag, invalidate_tag, invalidate_tags, CacheConfig, LoadHooks, ManualClock, Tags,
};

mod common;
use common::*;

fn tagged(names: &[&str]) -> LoadHooks<String, String> {
    let mut tags = Tags::new();
    for name in names {
        tags.push(*name);
    }
    hooks().tags(tags)
}

#[tokio::test]
async fn a_tag_drops_the_entries_of_every_function_carrying_it_and_no_other() {
    let clock = ManualClock::new();
    let users = leak(CacheConfig::new("tags-users", TTL), &clock);
    let posts = leak(CacheConfig::new("tags-posts", TTL), &clock);
    let origin = Origin::new(|n| Ok(format!("v{n}")));
    let user_1 = || tagged(&["t1:user:1", "t1:all"]);
    let user_2 = || tagged(&["t1:user:2", "t1:all"]);
    call(users, 1, &origin, user_1()).await.unwrap();
    call(users, 2, &origin, user_2()).await.unwrap();
    call(posts, 1, &origin, user_1()).await.unwrap();
    call(posts, 3, &origin, hooks()).await.unwrap();
    assert_eq!(origin.loads(), 4);

    invalidate_tag("t1:user:1").await;
    // Both functions' entries tagged `t1:user:1` are gone; the rest stay.
    assert!(users.get_fresh(&1).is_none());
    assert!(posts.get_fresh(&1).is_none());
    assert_eq!(users.get_fresh(&2).as_deref(), Some("v1"));
    assert_eq!(posts.get_fresh(&3).as_deref(), Some("v3"));
    // Loaded again, with the tag's new version: fresh.
    assert_eq!(call(users, 1, &origin, user_1()).await.unwrap(), "v4");
    assert_eq!(users.get_fresh(&1).as_deref(), Some("v4"));

    // A tag shared by several entries, several tags at once.
    invalidate_tags(["t1:all", "t1:never-used"]).await;
    assert!(users.get_fresh(&1).is_none());
    assert!(users.get_fresh(&2).is_none());
    assert_eq!(posts.get_fresh(&3).as_deref(), Some("v3"), "untagged");
}

#[tokio::test]
async fn an_invalidation_during_an_in_flight_load_is_never_undone() {
    let clock = ManualClock::new();
    let cache = leak(CacheConfig::new("tags-in-flight", TTL), &clock);
    let mut origin = Origin::new(|n| Ok(format!("v{n}")));
    origin.gate = Gate::closed();
    let early = {
        let origin = origin.clone();
        tokio::spawn(async move { call(cache, 1, &origin, tagged(&["t2:user:1"])).await })
    };
    wait_until("the load began", || origin.loads() == 1).await;

    invalidate_tag("t2:user:1").await;
    // A caller after the invalidation does not join the load that began
    // before it: it leads its own.
    let late = {
        let origin = origin.clone();
        tokio::spawn(async move { call(cache, 1, &origin, tagged(&["t2:user:1"])).await })
    };
    wait_until("the second load began", || origin.loads() == 2).await;
    origin.gate.release();
    assert_eq!(early.await.unwrap().unwrap(), "v0", "its own callers");
    assert_eq!(late.await.unwrap().unwrap(), "v1");
    assert_eq!(cache.get_fresh(&1).as_deref(), Some("v1"));
}

#[tokio::test]
async fn a_load_that_lands_after_the_invalidation_is_not_served() {
    let clock = ManualClock::new();
    let cache = leak(CacheConfig::new("tags-lands-late", TTL), &clock);
    let mut origin = Origin::new(|n| Ok(format!("v{n}")));
    origin.gate = Gate::closed();
    let early = {
        let origin = origin.clone();
        tokio::spawn(async move { call(cache, 1, &origin, tagged(&["t3:user:1"])).await })
    };
    wait_until("the load began", || origin.loads() == 1).await;
    invalidate_tag("t3:user:1").await;
    // Nobody asked meanwhile: the old load lands and stores, but what it
    // stored is dead on read.
    origin.gate.release();
    assert_eq!(early.await.unwrap().unwrap(), "v0");
    assert!(cache.get_fresh(&1).is_none());
    assert_eq!(
        call(cache, 1, &origin, tagged(&["t3:user:1"]))
            .await
            .unwrap(),
        "v1"
    );
}

#[tokio::test]
async fn an_invalidation_during_a_swr_refresh_is_never_undone() {
    let clock = ManualClock::new();
    let cache = leak(
        CacheConfig::new("tags-swr", TTL)
            .swr(Duration::from_secs(30))
            .fail_safe(Duration::from_secs(600)),
        &clock,
    );
    let tags = || tagged(&["t4:user:1"]);
    let mut origin = Origin::new(|n| Ok(format!("v{n}")));
    call(cache, 1, &origin, tags()).await.unwrap();
    clock.advance(TTL + Duration::from_secs(1));
    origin.gate = Gate::closed();
    assert_eq!(call(cache, 1, &origin, tags()).await.unwrap(), "v0");
    wait_until("the refresh started", || origin.loads() == 2).await;

    invalidate_tag("t4:user:1").await;
    // Gone: not stale, not a fallback; the next caller loads anew.
    origin.gate.release();
    assert_eq!(call(cache, 1, &origin, tags()).await.unwrap(), "v2");
    wait_until("the old refresh finished", || {
        origin.answered.load(SeqCst) == 3
    })
    .await;
    tokio::task::yield_now().await;
    assert_eq!(cache.get_fresh(&1).as_deref(), Some("v2"));
}

#[tokio::test(start_paused = true)]
async fn an_invalidation_during_a_soft_timed_out_load_is_never_undone() {
    let clock = ManualClock::new();
    let cache = leak(
        CacheConfig::new("tags-soft-timeout", TTL)
            .fail_safe(Duration::from_secs(600))
            .timeout(Duration::from_millis(300)),
        &clock,
    );
    let tags = || tagged(&["t5:user:1"]);
    let mut origin = Origin::new(|n| Ok(format!("v{n}")));
    call(cache, 1, &origin, tags()).await.unwrap();
    clock.advance(TTL + Duration::from_secs(1));
    origin.gate = Gate::closed();
    assert_eq!(
        call(cache, 1, &origin, tags()).await.unwrap(),
        "v0",
        "the fallback"
    );
    invalidate_tag("t5:user:1").await;
    origin.gate.release();
    wait_until("the timed-out load answered", || {
        origin.answered.load(SeqCst) == 2
    })
    .await;
    tokio::task::yield_now().await;
    assert!(cache.get_fresh(&1).is_none());
    assert_eq!(call(cache, 1, &origin, tags()).await.unwrap(), "v2");
}

#[tokio::test]
async fn an_invalidated_tag_leaves_no_stale_value_and_no_fail_safe_fallback() {
    let clock = ManualClock::new();
    let cache = leak(
        CacheConfig::new("tags-no-fallback", TTL)
            .swr(Duration::from_secs(30))
            .fail_safe(Duration::from_secs(600)),
        &clock,
    );
    let tags = || tagged(&["t6:user:1"]);
    let origin = Origin::new(|n| {
        if n == 0 {
            Ok("v0".into())
        } else {
            Err("down".into())
        }
    });
    call(cache, 1, &origin, tags()).await.unwrap();
    clock.advance(TTL + Duration::from_secs(1));
    invalidate_tag("t6:user:1").await;
    // Within the stale and fail-safe windows, and still: the error.
    assert_eq!(call(cache, 1, &origin, tags()).await.unwrap_err(), "down");
    assert_eq!(cache.stats().stale_hits, 0);
    assert_eq!(cache.stats().fail_safe_hits, 0);
}

#[tokio::test]
async fn an_expired_tag_serves_stale_while_one_refresh_runs() {
    let clock = ManualClock::new();
    let cache = leak(
        CacheConfig::new("tags-expire-swr", TTL).swr(Duration::from_secs(30)),
        &clock,
    );
    let tags = || tagged(&["t7:user:1"]);
    let mut origin = Origin::new(|n| Ok(format!("v{n}")));
    call(cache, 1, &origin, tags()).await.unwrap();

    // Fresh for another minute, but a webhook said it may have changed.
    expire_tag("t7:user:1").await;
    assert!(cache.get_fresh(&1).is_none(), "not fresh any more");
    origin.gate = Gate::closed();
    for _ in 0..10 {
        assert_eq!(call(cache, 1, &origin, tags()).await.unwrap(), "v0");
    }
    let stats = cache.stats();
    assert_eq!((stats.stale_hits, stats.refreshes), (10, 1));
    origin.gate.release();
    wait_until("the refresh landed", || cache.get_fresh(&1).is_some()).await;
    assert_eq!(cache.get_fresh(&1).as_deref(), Some("v1"));
    assert_eq!(origin.loads(), 2);
}

#[tokio::test]
async fn an_expired_tag_keeps_the_value_as_a_fail_safe_fallback() {
    let clock = ManualClock::new();
    let cache = leak(
        CacheConfig::new("tags-expire-fail-safe", TTL).fail_safe(Duration::from_secs(600)),
        &clock,
    );
    let tags = || tagged(&["t8:user:1"]);
    let origin = Origin::new(|n| {
        if n == 0 {
            Ok("v0".into())
        } else {
            Err("down".into())
        }
    });
    call(cache, 1, &origin, tags()).await.unwrap();
    expire_tag("t8:user:1").await;
    // Not fresh: a load runs, fails, and the old value answers.
    assert_eq!(call(cache, 1, &origin, tags()).await.unwrap(), "v0");
    assert_eq!((origin.loads(), cache.stats().fail_safe_hits), (2, 1));
}

#[tokio::test]
async fn an_expired_tag_without_swr_or_fail_safe_is_a_miss() {
    let clock = ManualClock::new();
    let cache = leak(CacheConfig::new("tags-expire-plain", TTL), &clock);
    let tags = || tagged(&["t9:user:1"]);
    let origin = Origin::new(|n| Ok(format!("v{n}")));
    call(cache, 1, &origin, tags()).await.unwrap();
    expire_tag("t9:user:1").await;
    assert_eq!(call(cache, 1, &origin, tags()).await.unwrap(), "v1");
}

#[tokio::test]
async fn an_entry_with_many_tags_is_dropped_by_any_of_them() {
    let clock = ManualClock::new();
    let cache = leak(CacheConfig::new("tags-many", TTL), &clock);
    let names: Vec<String> = (0..5).map(|n| format!("t10:{n}")).collect();
    let tags = || {
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        tagged(&names)
    };
    let origin = Origin::new(|n| Ok(format!("v{n}")));
    for (n, name) in names.iter().enumerate() {
        assert_eq!(
            call(cache, 1, &origin, tags()).await.unwrap(),
            format!("v{n}")
        );
        invalidate_tag(name).await;
        assert!(cache.get_fresh(&1).is_none(), "dropped by {name}");
    }
}

#[tokio::test]
async fn tags_of_an_isolated_test_are_its_own() {
    let clock = ManualClock::new();
    let outside = leak(CacheConfig::new("tags-outside", TTL), &clock);
    let origin = Origin::new(|n| Ok(format!("v{n}")));
    call(outside, 1, &origin, tagged(&["t11:user:1"]))
        .await
        .unwrap();
    herdcache_runtime::testing::isolate(async {
        invalidate_tag("t11:user:1").await;
    })
    .await;
    assert_eq!(outside.get_fresh(&1).as_deref(), Some("v0"));
}

#[tokio::test]
async fn after_an_expired_tag_the_fail_safe_throttle_still_holds() {
    let clock = ManualClock::new();
    let cache = leak(
        CacheConfig::new("tags-expire-throttle", TTL)
            .fail_safe(Duration::from_secs(600))
            .fail_safe_throttle(Duration::from_secs(5)),
        &clock,
    );
    let tags = || tagged(&["t12:user:1"]);
    let origin = Origin::new(|n| {
        if n == 0 {
            Ok("v0".into())
        } else {
            Err("down".into())
        }
    });
    call(cache, 1, &origin, tags()).await.unwrap();
    expire_tag("t12:user:1").await;
    assert_eq!(call(cache, 1, &origin, tags()).await.unwrap(), "v0");
    // Served as fresh for the throttle: the origin is not asked again.
    for _ in 0..5 {
        assert_eq!(call(cache, 1, &origin, tags()).await.unwrap(), "v0");
    }
    assert_eq!(origin.loads(), 2);
    // And a later invalidation still ends it.
    invalidate_tag("t12:user:1").await;
    assert_eq!(call(cache, 1, &origin, tags()).await.unwrap_err(), "down");
}

#[tokio::test(start_paused = true)]
async fn a_soft_timeout_never_answers_with_a_value_whose_tag_was_invalidated() {
    let clock = ManualClock::new();
    let cache = leak(
        CacheConfig::new("tags-soft-timeout-fallback", TTL)
            .fail_safe(Duration::from_secs(600))
            .timeout(Duration::from_millis(300)),
        &clock,
    );
    let tags = || tagged(&["t13:user:1"]);
    let mut origin = Origin::new(|n| Ok(format!("v{n}")));
    call(cache, 1, &origin, tags()).await.unwrap();
    clock.advance(TTL + Duration::from_secs(1));
    invalidate_tag("t13:user:1").await;
    origin.gate = Gate::closed();
    let caller = {
        let origin = origin.clone();
        tokio::spawn(async move { call(cache, 1, &origin, tags()).await })
    };
    // Well past the soft timeout: no fallback, so the caller still waits.
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(!caller.is_finished());
    origin.gate.release();
    assert_eq!(caller.await.unwrap().unwrap(), "v1");
}

#[tokio::test]
async fn a_cached_failure_carries_its_tags() {
    let clock = ManualClock::new();
    let cache = leak(CacheConfig::new("tags-negative", TTL), &clock);
    let tags = || {
        tagged(&["t14:user:1"])
            .negative(herdcache_runtime::Negative::Always(Duration::from_secs(60)))
    };
    let origin = Origin::new(|n| Err(format!("missing {n}")));
    assert_eq!(
        call(cache, 1, &origin, tags()).await.unwrap_err(),
        "missing 0"
    );
    assert_eq!(
        call(cache, 1, &origin, tags()).await.unwrap_err(),
        "missing 0"
    );
    invalidate_tag("t14:user:1").await;
    assert_eq!(
        call(cache, 1, &origin, tags()).await.unwrap_err(),
        "missing 1"
    );
}

#[tokio::test]
async fn a_cache_made_by_hand_inside_an_isolated_test_keeps_the_process_tags() {
    let clock = ManualClock::new();
    let origin = Origin::new(|n| Ok(format!("v{n}")));
    let origin_inside = origin.clone();
    let cache = herdcache_runtime::testing::isolate(async move {
        let cache = leak(CacheConfig::new("tags-by-hand-isolated", TTL), &clock);
        call(cache, 1, &origin_inside, tagged(&["t15:user:1"]))
            .await
            .unwrap();
        cache
    })
    .await;
    // Made by hand, not through a `#[cached]` slot: its tags are the
    // process's, which an invalidation outside any isolation reaches.
    invalidate_tag("t15:user:1").await;
    assert!(cache.get_fresh(&1).is_none());
}
