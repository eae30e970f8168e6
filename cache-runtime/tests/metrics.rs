//! The `metrics` feature: every counter, the load-latency histogram and the
//! loads-in-flight gauge, read back through `metrics-util`'s debugging
//! recorder. Run with `cargo test -p herdcache-runtime --features metrics`.
#![cfg(feature = "metrics")]

use std::time::Duration;

use herdcache_runtime::{CacheConfig, FailureShare, FnCache, LoadHooks, Memory};
use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use metrics_util::MetricKind;

#[test]
fn a_caches_stats_are_exported_with_its_name() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    // Handles are registered when the cache is made: with this recorder.
    let cache: FnCache<u64, u64> = metrics::with_local_recorder(&recorder, || {
        FnCache::new(CacheConfig::new("users.get", Duration::from_secs(60)))
    });
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    runtime.block_on(async {
        let hooks = || LoadHooks::new(FailureShare::<std::io::Error>::by_shared_error());
        for _ in 0..3 {
            let value: Result<u64, std::io::Error> = match cache.hit(&7, hooks) {
                Some(hit) => hit,
                None => cache.load(7, hooks(), async { Ok(49) }).await,
            };
            assert_eq!(value.unwrap(), 49);
        }
        let failed: Result<u64, std::io::Error> = cache
            .load(8, hooks(), async { Err(std::io::Error::other("down")) })
            .await;
        assert!(failed.is_err());
    });

    let snapshot = snapshotter.snapshot().into_vec();
    let value = |kind: MetricKind, metric: &str| {
        snapshot
            .iter()
            .find(|(key, ..)| {
                key.kind() == kind
                    && key.key().name() == metric
                    && key
                        .key()
                        .labels()
                        .any(|label| label.key() == "name" && label.value() == "users.get")
            })
            .map(|(.., value)| value)
            .unwrap_or_else(|| panic!("no {metric} in {snapshot:?}"))
    };
    let counter = |metric| match value(MetricKind::Counter, metric) {
        DebugValue::Counter(n) => *n,
        other => panic!("{metric} is {other:?}"),
    };
    assert_eq!(counter("herdcache_hits_total"), 2);
    assert_eq!(counter("herdcache_misses_total"), 2);
    assert_eq!(counter("herdcache_loads_total"), 2);
    assert_eq!(counter("herdcache_load_errors_total"), 1);
    assert_eq!(counter("herdcache_stale_hits_total"), 0);
    match value(MetricKind::Histogram, "herdcache_load_duration_seconds") {
        DebugValue::Histogram(samples) => assert_eq!(samples.len(), 2),
        other => panic!("the load histogram is {other:?}"),
    }
    match value(MetricKind::Gauge, "herdcache_loads_in_flight") {
        DebugValue::Gauge(in_flight) => assert_eq!((*in_flight).into_inner(), 0.0),
        other => panic!("the in-flight gauge is {other:?}"),
    }
}

/// `herdcache_evictions_total` counts what the memory tier really dropped:
/// the same figure as `Stats::evictions`, and `admitted - len()`, on both
/// tiers. Before, moka's tier exported an estimate from `entry_count()`,
/// which lags moka's inserts: 1 000 keys into a 10 000-entry cache with a
/// 1 h ttl reported a few dozen evictions that never happened.
#[test]
fn the_evictions_metric_counts_only_real_evictions() {
    for memory in [Memory::Moka, Memory::Quick] {
        for (capacity, keys) in [(10_000, 1_000), (100, 1_000)] {
            let recorder = DebuggingRecorder::new();
            let snapshotter = recorder.snapshotter();
            let name = format!("evictions.{memory:?}.{capacity}");
            let cache: FnCache<u64, u64> = metrics::with_local_recorder(&recorder, || {
                FnCache::new(
                    CacheConfig::new(name.as_str(), Duration::from_secs(3600))
                        .max_capacity(capacity)
                        .memory(memory),
                )
            });
            let runtime = tokio::runtime::Builder::new_current_thread()
                .build()
                .unwrap();
            runtime.block_on(async {
                let hooks = || LoadHooks::new(FailureShare::<std::io::Error>::by_shared_error());
                for key in 0..keys {
                    let value: Result<u64, std::io::Error> =
                        cache.load(key, hooks(), async move { Ok(key) }).await;
                    assert_eq!(value.unwrap(), key);
                }
            });
            let exported = || {
                snapshotter
                    .snapshot()
                    .into_vec()
                    .into_iter()
                    .find(|(key, ..)| key.key().name() == "herdcache_evictions_total")
                    .map_or(0, |(.., value)| match value {
                        DebugValue::Counter(n) => n,
                        other => panic!("evictions are {other:?}"),
                    })
            };
            // What the load path exported, before anything settles the tier.
            let during_loads = exported();
            let stats = cache.stats();
            let len = cache.len();
            let context = format!("{memory:?}, {keys} keys into {capacity} entries");
            assert_eq!(
                stats.evictions,
                keys - len,
                "{context}: Stats::evictions is what was admitted and is not held"
            );
            assert_eq!(
                exported(),
                stats.evictions,
                "{context}: Prometheus and Stats"
            );
            assert!(
                during_loads <= stats.evictions,
                "{context}: the load path exported {during_loads} evictions, {} happened",
                stats.evictions
            );
            if capacity >= keys {
                assert_eq!(len, keys, "{context}: nothing to evict");
                assert_eq!(stats.evictions, 0, "{context}");
            } else {
                assert!(len <= capacity + capacity / 10, "{context}: {len} held");
                assert!(stats.evictions > 0, "{context}");
            }
        }
    }
}

/// The Redis tier's series exist from the moment it is installed, at 0: a
/// dashboard shows a healthy tier, not a missing series, until something
/// happens.
#[cfg(feature = "redis")]
#[test]
fn the_redis_tier_s_series_start_at_zero() {
    let server = herdcache_test_support::RedisServer::start().expect("redis-server on PATH");
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    // Installed (this binary's only tier): the series start then, not at
    // `build`, so that a failed second install cannot zero a live tier's.
    metrics::with_local_recorder(&recorder, || {
        herdcache_runtime::Runtime::builder()
            .redis(server.url())
            .namespace("series-at-zero")
            .install()
            .unwrap()
    });
    let snapshot = snapshotter.snapshot().into_vec();
    for (metric, kind) in [
        ("herdcache_l2_breaker_open", MetricKind::Gauge),
        ("herdcache_fleet_pending", MetricKind::Gauge),
        ("herdcache_fleet_failures_total", MetricKind::Counter),
    ] {
        let (.., value) = snapshot
            .iter()
            .find(|(key, ..)| {
                key.kind() == kind
                    && key.key().name() == metric
                    && key.key().labels().any(|label| {
                        label.key() == "namespace" && label.value() == "series-at-zero"
                    })
            })
            .unwrap_or_else(|| panic!("no {metric} in {snapshot:?}"));
        match value {
            DebugValue::Gauge(value) => assert_eq!(value.into_inner(), 0.0, "{metric}"),
            DebugValue::Counter(value) => assert_eq!(*value, 0, "{metric}"),
            other => panic!("{metric} is {other:?}"),
        }
    }
}

#[test]
fn an_idempotent_functions_counts_are_exported_with_its_name() {
    use herdcache_runtime::__private::{IdemConfig, Idempotency};
    use herdcache_runtime::IdempotencyError;

    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    // Handles are registered when the records are made: with this recorder.
    let records = metrics::with_local_recorder(&recorder, || {
        Idempotency::<u64, String>::new(IdemConfig::new("orders.pay"))
    });
    // With the Redis feature, records in a tier of their own: looking for
    // the installed one would decide that this binary has none, and the
    // test that installs one would fail.
    #[cfg(feature = "redis")]
    let server = herdcache_test_support::RedisServer::start().expect("redis-server on PATH");
    #[cfg(feature = "redis")]
    let records = records.with_tier(
        herdcache_runtime::Runtime::builder()
            .redis(server.url())
            .namespace("idem-metrics")
            .build()
            .unwrap(),
    );
    let idem: &'static Idempotency<u64, String> = Box::leak(Box::new(records));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let to_error = |error: IdempotencyError| error.to_string();
        for (key, fingerprint) in [("k", 1), ("k", 1), ("k", 2)] {
            idem.run(Ok(key.to_owned()), 0, fingerprint, to_error, || async {
                Ok(7)
            })
            .await;
        }
    });
    let snapshot = snapshotter.snapshot().into_vec();
    let counter = |metric: &str| {
        snapshot
            .iter()
            .find(|(key, ..)| {
                key.kind() == MetricKind::Counter
                    && key.key().name() == metric
                    && key
                        .key()
                        .labels()
                        .any(|label| label.key() == "name" && label.value() == "orders.pay")
            })
            .map(|(.., value)| match value {
                DebugValue::Counter(n) => *n,
                other => panic!("{metric} is {other:?}"),
            })
            .unwrap_or_else(|| panic!("no {metric} in {snapshot:?}"))
    };
    assert_eq!(counter("herdcache_idempotent_runs_total"), 1);
    assert_eq!(counter("herdcache_idempotent_replays_total"), 1);
    assert_eq!(counter("herdcache_idempotent_mismatches_total"), 1);
    assert_eq!(counter("herdcache_idempotent_fenced_total"), 0);
}
