//! Instructions per hit, for a deterministic cross-check of the wall-clock
//! `hit_path` bench on noisy machines. Runs `N` hits of one variant; run it
//! twice under callgrind with different `N` and divide the difference:
//!
//! ```text
//! cargo bench --bench hit_instructions --no-run
//! valgrind --tool=callgrind target/release/deps/hit_instructions-* herdcache 200000
//! ```
//! `scripts/hit-instructions.sh` does exactly that for every variant.

mod common;

use common::{
    cached_crate_timed_lookup, herdcache_lookup, herdcache_policies_lookup, herdcache_quick_lookup,
    herdcache_tagged_lookup, herdcache_three_tags_lookup, ready, KEYS,
};

fn main() {
    let mut args = std::env::args().skip(1);
    let variant = args.next().unwrap_or_default();
    let hits: u64 = args.next().and_then(|n| n.parse().ok()).unwrap_or(0);
    let mut sum = 0u64;
    match variant.as_str() {
        "herdcache" => {
            for key in 0..KEYS {
                ready(herdcache_lookup(key));
            }
            for i in 0..hits {
                sum = sum.wrapping_add(ready(herdcache_lookup(std::hint::black_box(i % KEYS))));
            }
        }
        "herdcache_policies" => {
            for key in 0..KEYS {
                ready(herdcache_policies_lookup(key)).unwrap();
            }
            for i in 0..hits {
                let hit = ready(herdcache_policies_lookup(std::hint::black_box(i % KEYS)));
                sum = sum.wrapping_add(hit.unwrap_or(0));
            }
        }
        "herdcache_tags" => {
            for key in 0..KEYS {
                ready(herdcache_tagged_lookup(key));
            }
            for i in 0..hits {
                sum = sum.wrapping_add(ready(herdcache_tagged_lookup(std::hint::black_box(i % KEYS))));
            }
        }
        "herdcache_three_tags" => {
            for key in 0..KEYS {
                ready(herdcache_three_tags_lookup(key));
            }
            for i in 0..hits {
                sum = sum.wrapping_add(ready(herdcache_three_tags_lookup(std::hint::black_box(i % KEYS))));
            }
        }
        "herdcache_quick" => {
            for key in 0..KEYS {
                ready(herdcache_quick_lookup(key));
            }
            for i in 0..hits {
                sum = sum.wrapping_add(ready(herdcache_quick_lookup(std::hint::black_box(i % KEYS))));
            }
        }
        "engine_quick" => {
            // The engine alone: `FnCache::get_fresh`, no future, no registry.
            let cache = herdcache::__private::FnCache::<u64, u64>::new(
                herdcache::__private::CacheConfig::new("engine", std::time::Duration::from_secs(3600))
                    .memory(herdcache::Memory::Quick),
            );
            for key in 0..KEYS {
                let _: Option<u64> = ready(cache.get_or_load(
                    key,
                    herdcache::__private::FailureShare::unit(),
                    async move { Some(key) },
                ));
            }
            for i in 0..hits {
                sum = sum.wrapping_add(cache.get_fresh(&std::hint::black_box(i % KEYS)).unwrap_or(0));
            }
        }
        "quick" => {
            let cache = quick_cache::sync::Cache::new(10_000);
            for key in 0..KEYS {
                cache.insert(key, key);
            }
            for i in 0..hits {
                sum = sum.wrapping_add(cache.get(&std::hint::black_box(i % KEYS)).unwrap_or(0));
            }
        }
        "hashmap" => {
            let map: std::collections::HashMap<u64, u64> = (0..KEYS).map(|key| (key, key)).collect();
            for i in 0..hits {
                sum = sum.wrapping_add(map.get(&std::hint::black_box(i % KEYS)).copied().unwrap_or(0));
            }
        }
        "moka" => {
            let cache = moka::sync::Cache::new(10_000);
            for key in 0..KEYS {
                cache.insert(key, key);
            }
            for i in 0..hits {
                sum = sum.wrapping_add(cache.get(&std::hint::black_box(i % KEYS)).unwrap_or(0));
            }
        }
        "moka_ttl" => {
            // moka as herdcache configures it: a global ttl and a value that
            // carries its horizon (40 bytes, like herdcache's entry).
            #[derive(Clone)]
            #[allow(dead_code)] // the horizon fields are there for their size
            struct Entry(u64, std::time::Instant, std::time::Duration);
            let cache = moka::sync::Cache::builder()
                .max_capacity(10_000)
                .time_to_live(std::time::Duration::from_secs(3600))
                .build();
            for key in 0..KEYS {
                cache.insert(
                    key,
                    Entry(key, std::time::Instant::now(), std::time::Duration::ZERO),
                );
            }
            for i in 0..hits {
                let hit = cache.get(&std::hint::black_box(i % KEYS));
                sum = sum.wrapping_add(hit.map_or(0, |entry| entry.0));
            }
        }
        "cached" => {
            for key in 0..KEYS {
                cached_crate_timed_lookup(key);
            }
            for i in 0..hits {
                sum = sum.wrapping_add(cached_crate_timed_lookup(std::hint::black_box(i % KEYS)));
            }
        }
        other => panic!(
            "unknown variant {other:?}: herdcache, herdcache_policies, herdcache_tags, herdcache_three_tags, moka, moka_ttl or cached"
        ),
    }
    std::hint::black_box(sum);
}
