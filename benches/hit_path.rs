//! The hit path, side by side in one run: a `#[herdcache::cached]` call
//! (creating and polling its future, as a caller pays it) against raw
//! `moka::sync::Cache::get` (without expiry, and with the same 1 h
//! `time_to_live`, which makes moka read the clock on every get) and
//! against the `cached` crate's `#[cached]`, on
//! the same 1 000 warm `u64` keys, with 1 and 2 threads.
//!
//! Run: `cargo bench --bench hit_path`

use std::cell::Cell;
use std::sync::OnceLock;

mod common;

use common::{
    cached_crate_timed_lookup, herdcache_lookup, herdcache_policies_lookup, herdcache_quick_lookup,
    herdcache_tagged_lookup, herdcache_three_tags_lookup, ready, KEYS,
};
use divan::{black_box, Bencher};

fn main() {
    divan::main();
}

/// Each thread walks the keys in order, from its own position.
fn next_key() -> u64 {
    thread_local! {
        static KEY: Cell<u64> = const { Cell::new(0) };
    }
    KEY.with(|key| {
        let next = (key.get() + 1) % KEYS;
        key.set(next);
        next
    })
}

#[cached::proc_macro::cached]
fn cached_crate_unbound_lookup(key: u64) -> u64 {
    key
}

fn raw_moka() -> &'static moka::sync::Cache<u64, u64> {
    static CACHE: OnceLock<moka::sync::Cache<u64, u64>> = OnceLock::new();
    CACHE.get_or_init(|| {
        let cache = moka::sync::Cache::new(10_000);
        for key in 0..KEYS {
            cache.insert(key, key);
        }
        cache
    })
}

#[divan::bench(threads = [1, 2])]
fn herdcache(bencher: Bencher) {
    for key in 0..KEYS {
        ready(herdcache_lookup(key));
    }
    bencher.bench(|| ready(herdcache_lookup(black_box(next_key()))));
}

/// The same function on the quick memory tier.
#[divan::bench(threads = [1, 2])]
fn herdcache_quick(bencher: Bencher) {
    for key in 0..KEYS {
        ready(herdcache_quick_lookup(key));
    }
    bencher.bench(|| ready(herdcache_quick_lookup(black_box(next_key()))));
}

/// A function with swr, fail-safe and early refresh: the hit reads the clock.
#[divan::bench(threads = [1, 2])]
fn herdcache_policies(bencher: Bencher) {
    for key in 0..KEYS {
        ready(herdcache_policies_lookup(key)).unwrap();
    }
    bencher.bench(|| ready(herdcache_policies_lookup(black_box(next_key()))));
}

/// A function with two tags: the hit reads their two versions.
#[divan::bench(threads = [1, 2])]
fn herdcache_tags(bencher: Bencher) {
    for key in 0..KEYS {
        ready(herdcache_tagged_lookup(key));
    }
    bencher.bench(|| ready(herdcache_tagged_lookup(black_box(next_key()))));
}

/// A function with three tags: the hit reads the version of their group.
#[divan::bench(threads = [1, 2])]
fn herdcache_three_tags(bencher: Bencher) {
    for key in 0..KEYS {
        ready(herdcache_three_tags_lookup(key));
    }
    bencher.bench(|| ready(herdcache_three_tags_lookup(black_box(next_key()))));
}

/// moka with herdcache's set-up for this function: a global `time_to_live`.
fn raw_moka_ttl() -> &'static moka::sync::Cache<u64, u64> {
    static CACHE: OnceLock<moka::sync::Cache<u64, u64>> = OnceLock::new();
    CACHE.get_or_init(|| {
        let cache = moka::sync::Cache::builder()
            .max_capacity(10_000)
            .time_to_live(std::time::Duration::from_secs(3600))
            .build();
        for key in 0..KEYS {
            cache.insert(key, key);
        }
        cache
    })
}

#[divan::bench(threads = [1, 2])]
fn moka_get(bencher: Bencher) {
    let cache = raw_moka();
    bencher.bench(|| cache.get(&black_box(next_key())));
}

#[divan::bench(threads = [1, 2])]
fn moka_ttl_get(bencher: Bencher) {
    let cache = raw_moka_ttl();
    bencher.bench(|| cache.get(&black_box(next_key())));
}

#[divan::bench(threads = [1, 2])]
fn cached_crate_timed(bencher: Bencher) {
    for key in 0..KEYS {
        cached_crate_timed_lookup(key);
    }
    bencher.bench(|| cached_crate_timed_lookup(black_box(next_key())));
}

#[divan::bench(threads = [1, 2])]
fn cached_crate_unbound(bencher: Bencher) {
    for key in 0..KEYS {
        cached_crate_unbound_lookup(key);
    }
    bencher.bench(|| cached_crate_unbound_lookup(black_box(next_key())));
}
