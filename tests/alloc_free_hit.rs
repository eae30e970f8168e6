//! A hit allocates nothing, with or without policies, fresh or negative,
//! on either memory tier:
//! counted by a global allocator that tallies the
//! allocations of the calling thread (moka's upkeep runs on the caller's
//! thread, so it is counted too).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use herdcache::cached;

struct CountingAllocator;

thread_local! {
    // Const-initialised with no destructor: touching it never allocates.
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

// SAFETY: every call is forwarded unchanged to the system allocator; the
// only addition is bumping a thread-local counter, which does not allocate.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.with(|n| n.set(n.get() + 1));
        // SAFETY: the caller upholds `alloc`'s contract; we pass it on.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System.alloc` above with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.with(|n| n.set(n.get() + 1));
        // SAFETY: as for `alloc` and `dealloc`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

fn allocations() -> u64 {
    ALLOCATIONS.with(Cell::get)
}

/// Polls a future that must finish on its first poll (a hit, or a loader
/// that never waits).
fn ready<F: Future>(future: F) -> F::Output {
    match pin!(future).poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(output) => output,
        Poll::Pending => panic!("expected the call to finish at once"),
    }
}

#[cached(ttl = "1h")]
async fn plain_value(key: u64) -> u64 {
    key * 3
}

#[cached(ttl = "1h", jitter = 0.2)]
async fn shared_value(key: u64) -> Result<Arc<str>, std::io::Error> {
    Ok(Arc::from(format!("user {key}")))
}

#[cached(ttl = "1h")]
async fn maybe_value(key: u64) -> Option<u64> {
    Some(key)
}

/// Every freshness policy: the hit reads the clock and the horizons.
#[cached(ttl = "1h", swr = "30s", fail_safe = "10m", early_refresh = 1.0)]
async fn policy_value(key: u64) -> Result<u64, std::io::Error> {
    Ok(key + 1)
}

/// Two tags (three or more read one group version): a hit reads their versions.
#[cached(ttl = "1h", tags = ["user:{key}", "all-users"])]
async fn tagged_value(key: u64) -> u64 {
    key + 2
}

#[cached(ttl = "1h", swr = "30s", tags = ["a:{key}", "b:{key}", "c:{key}"])]
async fn many_tags_value(key: u64) -> u64 {
    key + 4
}

/// The quick tier, whatever the process default: a plain hit, and one that
/// reads the clock, the horizons and two tags.
#[cached(ttl = "1h", memory = "quick")]
async fn quick_value(key: u64) -> u64 {
    key + 5
}

#[cached(
    ttl = "1h",
    swr = "30s",
    fail_safe = "10m",
    early_refresh = 1.0,
    tags = ["q:{key}", "quick"],
    memory = "quick"
)]
async fn quick_policy_value(key: u64) -> Result<u64, std::io::Error> {
    Ok(key + 6)
}

/// And moka, whatever the process default (`HERDCACHE_MEMORY=quick` runs
/// the rest of this test on the quick tier).
#[cached(ttl = "1h", memory = "moka")]
async fn moka_value(key: u64) -> u64 {
    key + 7
}

/// A cached failure: a negative hit hands out a clone of the error.
#[derive(Clone, Debug, PartialEq)]
struct Missing;

#[cached(ttl = "1h", negative_ttl = "1h", tags = ["missing:{key}"])]
async fn negative_value(key: u64) -> Result<u64, Missing> {
    if key < u64::MAX {
        Err(Missing)
    } else {
        Ok(key)
    }
}

#[test]
fn a_hit_allocates_nothing() {
    const KEYS: u64 = 1_000;
    // Misses allocate (moka nodes, the registry): warm every key first.
    for key in 0..KEYS {
        ready(plain_value(key));
        ready(shared_value(key)).unwrap();
        ready(maybe_value(key));
        ready(policy_value(key)).unwrap();
        ready(negative_value(key)).unwrap_err();
        ready(tagged_value(key));
        ready(many_tags_value(key));
        ready(quick_value(key));
        ready(quick_policy_value(key)).unwrap();
        ready(moka_value(key));
    }
    // moka defers the bookkeeping of inserts (its LRU and timer nodes) to
    // whichever call comes next; settle it so the insert's cost is not
    // billed to the hits.
    plain_value_cache().len();
    shared_value_cache().len();
    maybe_value_cache().len();
    policy_value_cache().len();
    negative_value_cache().len();
    tagged_value_cache().len();
    many_tags_value_cache().len();
    moka_value_cache().len();
    let before = allocations();
    for _ in 0..100 {
        for key in 0..KEYS {
            assert_eq!(ready(plain_value(key)), key * 3);
            assert!(ready(shared_value(key)).is_ok());
            assert_eq!(ready(maybe_value(key)), Some(key));
            assert_eq!(ready(policy_value(key)).unwrap(), key + 1);
            assert_eq!(ready(negative_value(key)), Err(Missing));
            assert_eq!(ready(tagged_value(key)), key + 2);
            assert_eq!(ready(many_tags_value(key)), key + 4);
            assert_eq!(ready(quick_value(key)), key + 5);
            assert_eq!(ready(quick_policy_value(key)).unwrap(), key + 6);
            assert_eq!(ready(moka_value(key)), key + 7);
        }
    }
    let during = allocations() - before;
    assert_eq!(during, 0, "1 000 000 hits made {during} allocations");
    assert_eq!(quick_value_cache().memory(), Some(herdcache::Memory::Quick));
    assert_eq!(moka_value_cache().memory(), Some(herdcache::Memory::Moka));
    assert_eq!(quick_value_cache().stats().hits, 100 * KEYS);
    assert_eq!(quick_policy_value_cache().stats().hits, 100 * KEYS);
    assert_eq!(negative_value_cache().stats().negative_hits, 100 * KEYS);
    assert_eq!(plain_value_cache().stats().hits, 100 * KEYS);
    assert_eq!(tagged_value_cache().stats().hits, 100 * KEYS);
    assert_eq!(many_tags_value_cache().stats().hits, 100 * KEYS);
    assert_eq!(shared_value_cache().stats().hits, 100 * KEYS);
}

#[test]
fn the_counter_sees_allocations() {
    // The check above cannot pass vacuously: a miss is counted.
    let before = allocations();
    let boxed = Box::new([0u8; 64]);
    assert!(allocations() > before);
    drop(boxed);
}
