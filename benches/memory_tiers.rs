//! The two memory tiers side by side in one run, with raw moka, raw
//! quick_cache and a raw `HashMap` as baselines:
//!
//! - before the timings, printed: bytes per entry at 1 M `u64 -> u64`
//!   entries (net bytes allocated, counted by a global allocator), and the
//!   hit ratio of each tier on a Zipf(0.99) trace and on a trace with a
//!   one-off scan, at equal capacity;
//! - then divan: a hit on 1 000 warm keys with 1 and 2 threads, and on
//!   100 000 warm keys.
//!
//! Run: `cargo bench --bench memory_tiers`

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicIsize, AtomicU64, Ordering};
use std::sync::OnceLock;

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use divan::{black_box, Bencher};

/// Polls a call once: a hit, or a load that never waits, finishes at once.
fn ready<F: Future>(future: F) -> F::Output {
    match pin!(future).poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(output) => output,
        Poll::Pending => unreachable!("nothing here waits"),
    }
}

/// Net bytes allocated by the whole process.
struct CountingAllocator;

static NET_BYTES: AtomicIsize = AtomicIsize::new(0);

// SAFETY: every call is forwarded unchanged to the system allocator; the
// only addition is an atomic counter, which does not allocate.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        NET_BYTES.fetch_add(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: the caller upholds `alloc`'s contract; we pass it on.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        NET_BYTES.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: `ptr` came from `System.alloc` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        NET_BYTES.fetch_add(
            new_size as isize - layout.size() as isize,
            Ordering::Relaxed,
        );
        // SAFETY: as for `alloc` and `dealloc`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

fn main() {
    bytes_per_entry();
    hit_ratios();
    divan::main();
}

// ---------------------------------------------------------------- memory

const MILLION: u64 = 1_000_000;

#[herdcache::cached(ttl = "1h", max_capacity = 1_000_000, memory = "moka")]
async fn moka_tier_1m(key: u64) -> u64 {
    key
}

#[herdcache::cached(ttl = "1h", max_capacity = 1_000_000, memory = "quick")]
async fn quick_tier_1m(key: u64) -> u64 {
    key
}

/// Net bytes `fill` leaves allocated, per entry.
fn per_entry(fill: impl FnOnce()) -> f64 {
    let before = NET_BYTES.load(Ordering::SeqCst);
    fill();
    let after = NET_BYTES.load(Ordering::SeqCst);
    (after - before) as f64 / MILLION as f64
}

fn bytes_per_entry() {
    println!("bytes per entry, 1 000 000 u64 -> u64 entries (net bytes allocated / entries)");
    let raw_moka = per_entry(|| {
        let cache = moka::sync::Cache::<u64, u64>::new(MILLION);
        for key in 0..MILLION {
            cache.insert(key, key);
        }
        cache.run_pending_tasks();
        assert_eq!(cache.entry_count(), MILLION);
        std::mem::forget(cache);
    });
    let raw_quick = per_entry(|| {
        let cache = quick_cache::sync::Cache::<u64, u64>::new(MILLION as usize);
        for key in 0..MILLION {
            cache.insert(key, key);
        }
        assert!(cache.len() as u64 >= MILLION * 99 / 100, "{}", cache.len());
        std::mem::forget(cache);
    });
    let moka_tier = per_entry(|| {
        for key in 0..MILLION {
            ready(moka_tier_1m(key));
        }
        assert_eq!(moka_tier_1m_cache().len(), MILLION);
    });
    let quick_tier = per_entry(|| {
        for key in 0..MILLION {
            ready(quick_tier_1m(key));
        }
        let held = quick_tier_1m_cache().len();
        assert!(held >= MILLION * 99 / 100, "{held}");
    });
    let hash_map = per_entry(|| {
        let map: HashMap<u64, u64> = (0..MILLION).map(|key| (key, key)).collect();
        std::mem::forget(map);
    });
    println!("| what | bytes per entry |");
    println!("|---|---|");
    println!("| raw `HashMap` | {hash_map:.1} |");
    println!("| raw moka | {raw_moka:.1} |");
    println!("| raw quick_cache | {raw_quick:.1} |");
    println!("| herdcache, moka tier | {moka_tier:.1} |");
    println!("| herdcache, quick tier | {quick_tier:.1} |");
    println!();
}

// ------------------------------------------------------------- hit ratio

/// Distinct keys in the traces, and the capacity every cache gets.
const KEY_SPACE: usize = 100_000;
const CAPACITY: u64 = 10_000;

/// A xorshift generator: the same trace every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// `len` requests over `KEY_SPACE` keys, Zipf(0.99) by rank; a rank's key
/// is scrambled so that hot keys are not neighbours.
fn zipf_trace(len: usize, seed: u64) -> Vec<u64> {
    let mut cdf = Vec::with_capacity(KEY_SPACE);
    let mut total = 0.0;
    for rank in 1..=KEY_SPACE {
        total += 1.0 / (rank as f64).powf(0.99);
        cdf.push(total);
    }
    let mut rng = Rng(seed);
    (0..len)
        .map(|_| {
            let draw = rng.unit() * total;
            let rank = cdf.partition_point(|&c| c < draw) as u64;
            rank.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 16
        })
        .collect()
}

/// Zipf, then a one-off scan of keys never seen again, then Zipf: the
/// scan must not flush the hot set. Returns the trace and where the scan
/// ends.
fn scan_trace() -> (Vec<u64>, usize) {
    let mut trace = zipf_trace(400_000, 7);
    trace.extend((0..CAPACITY * 5).map(|n| u64::MAX - n));
    let scan_end = trace.len();
    trace.extend(zipf_trace(400_000, 11));
    (trace, scan_end)
}

/// Replays `trace` on a cache `get`-or-insert: the hits of the whole trace
/// and of the part after `from`.
fn replay(trace: &[u64], from: usize, mut get_or_insert: impl FnMut(u64) -> bool) -> (f64, f64) {
    let (mut hits, mut hits_after) = (0usize, 0usize);
    for (at, &key) in trace.iter().enumerate() {
        let hit = get_or_insert(key);
        hits += usize::from(hit);
        hits_after += usize::from(hit && at >= from);
    }
    (
        hits as f64 / trace.len() as f64,
        hits_after as f64 / (trace.len() - from).max(1) as f64,
    )
}

/// Loads of the hit-ratio functions: a call that loaded was a miss.
static LOADS: AtomicU64 = AtomicU64::new(0);

macro_rules! ratio_fns {
    ($($name:ident = $memory:literal),*) => {$(
        #[herdcache::cached(ttl = "1h", max_capacity = 10_000, memory = $memory)]
        async fn $name(key: u64) -> u64 {
            LOADS.fetch_add(1, Ordering::Relaxed);
            key
        }
    )*};
}

ratio_fns!(
    moka_zipf = "moka",
    quick_zipf = "quick",
    moka_scan = "moka",
    quick_scan = "quick"
);

fn hit_ratios() {
    let zipf = zipf_trace(1_000_000, 3);
    let (scan, scan_end) = scan_trace();
    type Run<'a> = Box<dyn FnMut(u64) -> bool + 'a>;
    let raw_moka = || -> Run<'static> {
        let cache = moka::sync::Cache::<u64, u64>::new(CAPACITY);
        Box::new(move |key| {
            let hit = cache.get(&key).is_some();
            if !hit {
                cache.insert(key, key);
            }
            hit
        })
    };
    let raw_quick = || -> Run<'static> {
        let cache = quick_cache::sync::Cache::<u64, u64>::new(CAPACITY as usize);
        Box::new(move |key| {
            let hit = cache.get(&key).is_some();
            if !hit {
                cache.insert(key, key);
            }
            hit
        })
    };
    /// A herdcache function: a hit is a call that did not load.
    fn tier(call: fn(u64) -> u64) -> Run<'static> {
        Box::new(move |key| {
            let before = LOADS.load(Ordering::Relaxed);
            call(key);
            LOADS.load(Ordering::Relaxed) == before
        })
    }
    /// A cache's name, its Zipf ratios and its scan-trace ratios.
    type Row = (&'static str, (f64, f64), (f64, f64));
    let rows: Vec<Row> = vec![
        (
            "raw moka",
            replay(&zipf, 0, raw_moka()),
            replay(&scan, scan_end, raw_moka()),
        ),
        (
            "raw quick_cache",
            replay(&zipf, 0, raw_quick()),
            replay(&scan, scan_end, raw_quick()),
        ),
        (
            "herdcache, moka tier",
            replay(&zipf, 0, tier(|k| ready(moka_zipf(k)))),
            replay(&scan, scan_end, tier(|k| ready(moka_scan(k)))),
        ),
        (
            "herdcache, quick tier",
            replay(&zipf, 0, tier(|k| ready(quick_zipf(k)))),
            replay(&scan, scan_end, tier(|k| ready(quick_scan(k)))),
        ),
    ];
    println!(
        "hit ratio, capacity {CAPACITY}, {KEY_SPACE} keys: Zipf(0.99) x 1 000 000; \
         Zipf x 400 000, a scan of {} one-off keys, Zipf x 400 000",
        CAPACITY * 5
    );
    println!("| cache | Zipf | scan trace, whole | scan trace, after the scan |");
    println!("|---|---|---|---|");
    for (name, (zipf, _), (scan_whole, scan_after)) in rows {
        println!(
            "| {name} | {:.1} % | {:.1} % | {:.1} % |",
            zipf * 100.0,
            scan_whole * 100.0,
            scan_after * 100.0
        );
    }
    println!();
}

// ------------------------------------------------------------------ hits

const WARM: u64 = 1_000;
const WIDE: u64 = 100_000;

/// Each thread walks the keys in order, from its own position.
fn next_key(keys: u64) -> u64 {
    thread_local! {
        static KEY: Cell<u64> = const { Cell::new(0) };
    }
    KEY.with(|key| {
        let next = (key.get() + 1) % keys;
        key.set(next);
        next
    })
}

#[herdcache::cached(ttl = "1h", memory = "moka")]
async fn moka_tier(key: u64) -> u64 {
    key
}

#[herdcache::cached(ttl = "1h", memory = "quick")]
async fn quick_tier(key: u64) -> u64 {
    key
}

#[herdcache::cached(ttl = "1h", max_capacity = 200_000, memory = "moka")]
async fn moka_tier_wide(key: u64) -> u64 {
    key
}

#[herdcache::cached(ttl = "1h", max_capacity = 200_000, memory = "quick")]
async fn quick_tier_wide(key: u64) -> u64 {
    key
}

fn raw_map(keys: u64) -> &'static HashMap<u64, u64> {
    static WARM_MAP: OnceLock<HashMap<u64, u64>> = OnceLock::new();
    static WIDE_MAP: OnceLock<HashMap<u64, u64>> = OnceLock::new();
    let map = if keys == WARM { &WARM_MAP } else { &WIDE_MAP };
    map.get_or_init(|| (0..keys).map(|key| (key, key)).collect())
}

fn raw_moka(keys: u64) -> &'static moka::sync::Cache<u64, u64> {
    static WARM_CACHE: OnceLock<moka::sync::Cache<u64, u64>> = OnceLock::new();
    static WIDE_CACHE: OnceLock<moka::sync::Cache<u64, u64>> = OnceLock::new();
    let cache = if keys == WARM {
        &WARM_CACHE
    } else {
        &WIDE_CACHE
    };
    cache.get_or_init(|| {
        let cache = moka::sync::Cache::new(keys * 2);
        for key in 0..keys {
            cache.insert(key, key);
        }
        cache
    })
}

fn raw_quick(keys: u64) -> &'static quick_cache::sync::Cache<u64, u64> {
    static WARM_CACHE: OnceLock<quick_cache::sync::Cache<u64, u64>> = OnceLock::new();
    static WIDE_CACHE: OnceLock<quick_cache::sync::Cache<u64, u64>> = OnceLock::new();
    let cache = if keys == WARM {
        &WARM_CACHE
    } else {
        &WIDE_CACHE
    };
    cache.get_or_init(|| {
        let cache = quick_cache::sync::Cache::new(keys as usize * 2);
        for key in 0..keys {
            cache.insert(key, key);
        }
        cache
    })
}

/// Warms `call` on `keys` keys, then times one call at a time, each
/// future built here and moved into the poller. (`call` is a function
/// item, statically dispatched: a `fn` pointer would stop inlining.)
fn one_off<F: Future<Output = u64>>(bencher: Bencher, keys: u64, call: impl Fn(u64) -> F + Sync) {
    for key in 0..keys {
        ready(call(key));
    }
    bencher.bench(|| ready(call(black_box(next_key(keys)))));
}

/// [`one_off`], each call awaited inside an `async` block.
fn awaited<F: Future<Output = u64>>(bencher: Bencher, call: impl Fn(u64) -> F + Copy + Sync) {
    for key in 0..WARM {
        ready(call(key));
    }
    bencher.bench(|| {
        let key = black_box(next_key(WARM));
        ready(async move { call(key).await })
    });
}

/// Calls awaited in one task, [`in_a_task_hit_1000_keys::CALLS`] in a row.
fn in_a_task<F: Future<Output = u64>>(bencher: Bencher, call: impl Fn(u64) -> F + Sync) {
    for key in 0..WARM {
        ready(call(key));
    }
    bencher.bench(|| {
        ready(async {
            let mut sum = 0u64;
            for _ in 0..in_a_task_hit_1000_keys::CALLS {
                sum = sum.wrapping_add(call(black_box(next_key(WARM))).await);
            }
            sum
        })
    });
}

mod hit_1000_keys {
    use super::*;

    #[divan::bench(threads = [1, 2], sample_size = 2_000, sample_count = 200)]
    fn hash_map(bencher: Bencher) {
        let map = raw_map(WARM);
        bencher.bench(|| map.get(&black_box(next_key(WARM))).copied());
    }

    #[divan::bench(threads = [1, 2], sample_size = 2_000, sample_count = 200)]
    fn raw_moka_get(bencher: Bencher) {
        let cache = raw_moka(WARM);
        bencher.bench(|| cache.get(&black_box(next_key(WARM))));
    }

    #[divan::bench(threads = [1, 2], sample_size = 2_000, sample_count = 200)]
    fn raw_quick_get(bencher: Bencher) {
        let cache = raw_quick(WARM);
        bencher.bench(|| cache.get(&black_box(next_key(WARM))));
    }

    #[divan::bench(threads = [1, 2], sample_size = 2_000, sample_count = 200)]
    fn herdcache_moka(bencher: Bencher) {
        one_off(bencher, WARM, moka_tier);
    }

    #[divan::bench(threads = [1, 2], sample_size = 2_000, sample_count = 200)]
    fn herdcache_quick(bencher: Bencher) {
        one_off(bencher, WARM, quick_tier);
    }
}

/// The engine alone (`FnCache::get_fresh`, no future, no registry): where a
/// `#[cached]` call's time goes.
fn engine(memory: herdcache::Memory) -> &'static herdcache::__private::FnCache<u64, u64> {
    let cache = Box::leak(Box::new(herdcache::__private::FnCache::new(
        herdcache::__private::CacheConfig::new("engine", std::time::Duration::from_secs(3600))
            .memory(memory),
    )));
    for key in 0..WARM {
        let _: Option<u64> = ready(cache.get_or_load(
            key,
            herdcache::__private::FailureShare::unit(),
            async move { Some(key) },
        ));
    }
    cache
}

mod engine_hit_1000_keys {
    use super::*;

    #[divan::bench(sample_size = 2_000, sample_count = 200)]
    fn quick(bencher: Bencher) {
        let cache = engine(herdcache::Memory::Quick);
        bencher.bench(|| cache.get_fresh(&black_box(next_key(WARM))));
    }

    #[divan::bench(sample_size = 2_000, sample_count = 200)]
    fn moka(bencher: Bencher) {
        let cache = engine(herdcache::Memory::Moka);
        bencher.bench(|| cache.get_fresh(&black_box(next_key(WARM))));
    }
}

/// As a caller's async code pays for a hit: an `async` block awaiting the
/// call, polled once (the call's future is built and polled inside it).
mod awaited_hit_1000_keys {
    use super::*;

    #[divan::bench(threads = [1, 2], sample_size = 2_000, sample_count = 200)]
    fn herdcache_quick(bencher: Bencher) {
        awaited(bencher, quick_tier);
    }

    #[divan::bench(threads = [1, 2], sample_size = 2_000, sample_count = 200)]
    fn herdcache_moka(bencher: Bencher) {
        awaited(bencher, moka_tier);
    }
}

/// As a long-lived task pays for hits: one `async` block awaiting 100
/// calls in a row, polled once; the time is per call. (The call's future is
/// built and polled in the task's own state: nothing moves it.)
mod in_a_task_hit_1000_keys {
    use super::*;

    pub(super) const CALLS: usize = 100;

    #[divan::bench(threads = [1, 2], sample_size = 20, sample_count = 200, counters = [divan::counter::ItemsCount::new(CALLS)])]
    fn herdcache_quick(bencher: Bencher) {
        in_a_task(bencher, quick_tier);
    }

    #[divan::bench(threads = [1, 2], sample_size = 20, sample_count = 200, counters = [divan::counter::ItemsCount::new(CALLS)])]
    fn herdcache_moka(bencher: Bencher) {
        in_a_task(bencher, moka_tier);
    }

    #[divan::bench(threads = [1, 2], sample_size = 20, sample_count = 200, counters = [divan::counter::ItemsCount::new(CALLS)])]
    fn hash_map(bencher: Bencher) {
        // The plain `get` in the same loop, not through a future.
        let map = raw_map(WARM);
        bencher.bench(|| {
            let mut sum = 0u64;
            for _ in 0..CALLS {
                sum = sum.wrapping_add(map.get(&black_box(next_key(WARM))).copied().unwrap_or(0));
            }
            sum
        });
    }
}

mod hit_100000_keys {
    use super::*;

    #[divan::bench(sample_size = 2_000, sample_count = 200)]
    fn hash_map(bencher: Bencher) {
        let map = raw_map(WIDE);
        bencher.bench(|| map.get(&black_box(next_key(WIDE))).copied());
    }

    #[divan::bench(sample_size = 2_000, sample_count = 200)]
    fn raw_moka_get(bencher: Bencher) {
        let cache = raw_moka(WIDE);
        bencher.bench(|| cache.get(&black_box(next_key(WIDE))));
    }

    #[divan::bench(sample_size = 2_000, sample_count = 200)]
    fn raw_quick_get(bencher: Bencher) {
        let cache = raw_quick(WIDE);
        bencher.bench(|| cache.get(&black_box(next_key(WIDE))));
    }

    #[divan::bench(sample_size = 2_000, sample_count = 200)]
    fn herdcache_moka(bencher: Bencher) {
        one_off(bencher, WIDE, moka_tier_wide);
    }

    #[divan::bench(sample_size = 2_000, sample_count = 200)]
    fn herdcache_quick(bencher: Bencher) {
        one_off(bencher, WIDE, quick_tier_wide);
    }
}

/// What knowing "now" costs a hit: the quick tier reads the coarse clock.
mod clock_read {
    use super::*;

    #[divan::bench(sample_size = 2_000, sample_count = 200)]
    fn instant_now(bencher: Bencher) {
        bencher.bench(std::time::Instant::now);
    }

    #[divan::bench(sample_size = 2_000, sample_count = 200)]
    fn coarse_clock(bencher: Bencher) {
        bencher.bench(herdcache::testing::coarse_clock_nanos);
    }
}
