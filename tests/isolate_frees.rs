//! Caches made inside `testing::isolate` give their storage back when the
//! isolation ends: a test suite of many isolated tests does not keep every
//! test's caches. Measured in bytes live on the heap (a global allocator
//! that tallies them), in a binary of its own.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicI64, Ordering};

use herdcache::{cached, testing};

struct Tally;

static LIVE_BYTES: AtomicI64 = AtomicI64::new(0);

// SAFETY: every call is forwarded unchanged to the system allocator; the
// only addition is an atomic add, which does not allocate.
unsafe impl GlobalAlloc for Tally {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE_BYTES.fetch_add(layout.size() as i64, Ordering::Relaxed);
        // SAFETY: the caller upholds `alloc`'s contract; we pass it on.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE_BYTES.fetch_sub(layout.size() as i64, Ordering::Relaxed);
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Tally = Tally;

/// The quick tier sizes its shards for the whole capacity up front.
#[cached(ttl = "1h", max_capacity = 100_000, memory = "quick", tags = ["iso:{key}"])]
async fn quick(key: u64) -> String {
    format!("{key:>64}")
}

#[cached(ttl = "1h", max_capacity = 100_000, tags = ["iso:{key}"])]
async fn moka(key: u64) -> String {
    format!("{key:>64}")
}

async fn one_test() {
    testing::isolate(async {
        for key in 0..2_000 {
            quick(key).await;
            moka(key).await;
        }
        assert_eq!(quick_cache().len(), 2_000);
    })
    .await;
    // The registry forgets ended isolations the next time it is used.
    let _ = herdcache::stats();
}

#[tokio::test]
async fn each_isolation_gives_its_caches_storage_back_when_it_ends() {
    // The first round makes what lives for the process (the functions'
    // handles, the registry, moka's and tokio's own set-up).
    one_test().await;
    one_test().await;
    let before = LIVE_BYTES.load(Ordering::Relaxed);
    let rounds = 10;
    for _ in 0..rounds {
        one_test().await;
    }
    let kept = (LIVE_BYTES.load(Ordering::Relaxed) - before) / rounds;
    // Each isolation's two caches held 4 000 values of ~90 bytes and a
    // quick tier sized for 100 000 entries: megabytes. What stays is the
    // cache shell handed out as `&'static` (its flight shards, its
    // counters), a few kilobytes.
    assert!(kept < 64 * 1024, "{kept} bytes kept per ended isolation");
}
