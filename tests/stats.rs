//! Stats count what happened, per function and across functions.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};

use herdcache::cached;

#[cached(ttl = "60s", name = "tests.square")]
async fn square(n: u64) -> u64 {
    n * n
}

#[tokio::test]
async fn stats_count_hits_misses_and_loads() {
    assert_eq!(square_cache().stats(), herdcache::Stats::default());
    for n in [1, 2, 1, 1, 3, 2] {
        square(n).await;
    }
    let stats = square_cache().stats();
    assert_eq!((stats.hits, stats.misses, stats.loads), (3, 3, 3));
    assert_eq!(
        (stats.coalesced, stats.load_errors, stats.invalidations),
        (0, 0, 0)
    );
    assert!(stats.load_p50 <= stats.load_p95 && stats.load_p95 <= stats.load_p99);
    assert!((stats.hit_ratio() - 0.5).abs() < 1e-9);
    assert_eq!(square_cache().len(), 3);

    square_invalidate(1).await;
    square_cache().invalidate_all().await;
    assert_eq!(square_cache().stats().invalidations, 2);
    assert_eq!(square_cache().len(), 0);

    let all = herdcache::stats();
    let (_, listed) = all
        .iter()
        .find(|(name, _)| name == "tests.square")
        .expect("listed by its name");
    assert_eq!(listed.loads, 3);
}

#[cached(ttl = "60s")]
async fn default_named(n: u64) -> u64 {
    n
}

#[tokio::test]
async fn the_default_name_is_the_module_path_and_function() {
    default_named(1).await;
    let names: Vec<String> = herdcache::stats().into_iter().map(|(n, _)| n).collect();
    assert!(
        names.contains(&"stats::default_named".to_owned()),
        "{names:?}"
    );
}

static LOAD_TIME_CALLS: AtomicUsize = AtomicUsize::new(0);

#[cached(ttl = "60s")]
async fn timed(n: u64) -> u64 {
    LOAD_TIME_CALLS.fetch_add(1, SeqCst);
    tokio::time::sleep(std::time::Duration::from_millis(20 + n)).await;
    n
}

#[tokio::test]
async fn load_latency_percentiles_reflect_the_loader() {
    for n in 0..20 {
        timed(n).await;
    }
    let stats = timed_cache().stats();
    // Loads took 20-40 ms (more on a loaded machine); buckets are within 12.5%.
    assert!(
        stats.load_p50 >= std::time::Duration::from_millis(17),
        "{stats:?}"
    );
    assert!(stats.load_p99 >= stats.load_p50, "{stats:?}");
}

#[cached(ttl = "60s", max_capacity = 10)]
async fn bounded(n: u64) -> u64 {
    n
}

#[tokio::test]
async fn evictions_keep_the_cache_within_max_capacity() {
    for n in 0..200 {
        bounded(n).await;
    }
    let len = bounded_cache().len();
    assert!(len <= 10, "{len} entries held");
    let stats = bounded_cache().stats();
    assert_eq!(stats.evictions, 200 - len, "{stats:?}");
}

#[cached(ttl = "200ms")]
async fn ephemeral(n: u64) -> u64 {
    n
}

#[tokio::test]
async fn expired_entries_count_as_evictions_and_invalidated_ones_do_not() {
    for n in 0..20 {
        ephemeral(n).await;
    }
    ephemeral_invalidate(0).await;
    ephemeral_invalidate(1).await;
    // moka drops expired entries on its own, on real time (its clean-up
    // does not follow a manual clock): wait until it has, not for a guess.
    common::wait_until("moka dropped the expired entries", || {
        ephemeral_cache().is_empty()
    })
    .await;
    let stats = ephemeral_cache().stats();
    assert_eq!((stats.evictions, stats.invalidations), (18, 2), "{stats:?}");
}

#[herdcache::cached(ttl = "60s", swr = "30s")]
async fn readable(id: u64) -> u64 {
    id
}

#[tokio::test]
async fn stats_read_as_one_line_and_as_a_table() {
    herdcache::testing::isolate(async {
        for _ in 0..3 {
            readable(7).await;
        }
        let stats = readable_cache().stats();
        let line = stats.to_string();
        assert!(
            line.starts_with(
                "hit ratio 66.7% (2 hits, 1 misses, 0 coalesced), 1 loads, 0 errors, load p50 "
            ),
            "{line}"
        );
        // Zero policy counts are left out.
        assert!(!line.contains("stale"), "{line}");

        let table = herdcache::stats_table();
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 2, "a header and one function:\n{table}");
        assert!(lines[0].starts_with("function"), "{table}");
        assert!(lines[0].ends_with("p95"), "{table}");
        let row: Vec<&str> = lines[1].split_whitespace().collect();
        assert_eq!(
            row[..9],
            [
                "stats::readable",
                herdcache::Memory::process_default().name(),
                "66.7",
                "2",
                "1",
                "1",
                "0",
                "0",
                "0"
            ]
        );
        // Columns line up: every line is as wide as the header.
        assert_eq!(
            lines[0].chars().count(),
            lines[1].chars().count(),
            "{table}"
        );
    })
    .await;
}
