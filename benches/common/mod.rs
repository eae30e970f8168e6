//! Shared by the hit-path benchmarks.

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

/// The warm keys every hit-path benchmark reads.
pub const KEYS: u64 = 1_000;

/// Polls a call once: a hit finishes on its first poll, with no executor.
pub fn ready<F: Future>(future: F) -> F::Output {
    match pin!(future).poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(output) => output,
        Poll::Pending => unreachable!("a hit never waits"),
    }
}

#[herdcache::cached(ttl = "1h")]
pub async fn herdcache_lookup(key: u64) -> u64 {
    key
}

/// Every freshness policy on: a hit reads the clock and the entry's horizons.
#[herdcache::cached(ttl = "1h", swr = "30s", fail_safe = "10m", early_refresh = 1.0)]
pub async fn herdcache_policies_lookup(key: u64) -> Result<u64, std::io::Error> {
    Ok(key)
}

/// Two tags: a hit reads both versions.
#[herdcache::cached(ttl = "1h", tags = ["user:{key}", "all-users"])]
pub async fn herdcache_tagged_lookup(key: u64) -> u64 {
    key
}

/// Three tags: a hit reads the one version of the group they form.
#[herdcache::cached(ttl = "1h", tags = ["user:{key}", "org:7", "all-users"])]
pub async fn herdcache_three_tags_lookup(key: u64) -> u64 {
    key
}

#[cached::proc_macro::cached(ttl_secs = 3600)]
pub fn cached_crate_timed_lookup(key: u64) -> u64 {
    key
}

/// The quick memory tier: the same plain function.
#[herdcache::cached(ttl = "1h", memory = "quick")]
pub async fn herdcache_quick_lookup(key: u64) -> u64 {
    key
}
