//! The memory tier: chosen per function by `memory = ".."`, else by the
//! process default (`HERDCACHE_MEMORY`, which `.ci/run` sets to run the whole
//! suite on the quick tier too), and the same behaviour on both.

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::time::Duration;

use herdcache::{cached, Memory};

/// What this run's environment asks for: the test matrix is real only if
/// the default follows it.
fn expected_default() -> Memory {
    match std::env::var("HERDCACHE_MEMORY").as_deref() {
        Ok("quick") => Memory::Quick,
        _ => Memory::Moka,
    }
}

#[cached(ttl = "60s")]
async fn on_the_default(id: u64) -> u64 {
    id
}

#[cached(ttl = "60s", memory = "quick")]
async fn on_quick(id: u64) -> u64 {
    id * 2
}

static QUICK_LOADS: AtomicUsize = AtomicUsize::new(0);

#[cached(ttl = "60s", memory = "quick", max_capacity = 100)]
async fn bounded(id: u64) -> u64 {
    QUICK_LOADS.fetch_add(1, SeqCst);
    id * 2
}

#[cached(ttl = "60s", memory = "moka")]
async fn on_moka(id: u64) -> u64 {
    id * 3
}

#[tokio::test]
async fn the_default_follows_herdcache_memory() {
    assert_eq!(
        on_the_default_cache().memory(),
        None,
        "no cache before a call"
    );
    on_the_default(1).await;
    assert_eq!(on_the_default_cache().memory(), Some(expected_default()));
    assert_eq!(Memory::process_default(), expected_default());
}

#[tokio::test]
async fn the_attribute_chooses_the_tier_whatever_the_default() {
    on_quick(1).await;
    on_moka(1).await;
    assert_eq!(on_quick_cache().memory(), Some(Memory::Quick));
    assert_eq!(on_moka_cache().memory(), Some(Memory::Moka));
    // Stats say it too, and so does the operator's table.
    assert_eq!(on_quick_cache().stats().memory, Memory::Quick);
    assert_eq!(on_moka_cache().stats().memory, Memory::Moka);
    let table = herdcache::stats_table();
    let row = |function: &str| {
        table
            .lines()
            .find(|line| line.split_whitespace().next() == Some(function))
            .unwrap_or_else(|| panic!("no {function} in\n{table}"))
            .split_whitespace()
            .nth(1)
            .map(str::to_owned)
    };
    assert_eq!(row("memory_tier::on_quick").as_deref(), Some("quick"));
    assert_eq!(row("memory_tier::on_moka").as_deref(), Some("moka"));
}

#[tokio::test]
async fn the_quick_tier_serves_hits_keeps_its_capacity_and_invalidates() {
    for round in 0..3 {
        for id in 10..20 {
            assert_eq!(bounded(id).await, id * 2, "round {round}");
        }
    }
    let stats = bounded_cache().stats();
    assert_eq!((stats.misses, stats.loads), (10, 10), "{stats:?}");
    assert!(stats.hits >= 20, "{stats:?}");
    // Over its capacity, it evicts and counts it.
    for id in 1_000..1_500 {
        bounded(id).await;
    }
    let (len, evictions) = (bounded_cache().len(), bounded_cache().stats().evictions);
    assert!(len <= 100, "{len} entries held over a capacity of 100");
    assert!(evictions >= 400, "{evictions} evictions");
    let loads = QUICK_LOADS.load(SeqCst);
    bounded(1_499).await;
    bounded_invalidate(1_499).await;
    bounded(1_499).await;
    assert_eq!(
        QUICK_LOADS.load(SeqCst),
        loads + 1,
        "reloaded once, after the invalidation"
    );
}

#[cached(ttl = "150ms", memory = "quick")]
async fn short_lived(id: u64) -> u64 {
    id
}

/// The quick tier's expiry is lazy, judged by the engine's clock: a manual
/// one here.
#[tokio::test]
async fn an_expired_quick_entry_is_a_miss_and_counts_as_evicted() {
    let clock = herdcache::testing::ManualClock::new();
    herdcache::testing::isolate_with_clock(clock.clone(), async {
        for id in 0..10 {
            short_lived(id).await;
        }
        short_lived_invalidate(0).await;
        clock.advance(Duration::from_millis(150));
        assert_eq!(
            short_lived_cache().len(),
            0,
            "expired entries are not counted as held"
        );
        let stats = short_lived_cache().stats();
        assert_eq!((stats.evictions, stats.invalidations), (9, 1), "{stats:?}");
        short_lived(1).await;
        assert_eq!(
            short_lived_cache().stats().loads,
            11,
            "an expired entry is loaded again"
        );
    })
    .await;
}

/// A tier named through `macro_rules!` arrives in an invisible group: the
/// attribute still reads it.
macro_rules! cached_on {
    ($name:ident, $memory:literal) => {
        #[cached(ttl = "60s", memory = $memory)]
        async fn $name(id: u64) -> u64 {
            id
        }
    };
}

cached_on!(through_a_macro, "quick");

#[tokio::test]
async fn a_tier_passed_through_macro_rules_is_read() {
    through_a_macro(1).await;
    assert_eq!(through_a_macro_cache().memory(), Some(Memory::Quick));
}
