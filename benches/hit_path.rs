use herdcache_runtime::{CacheConfig, FnCache};
use std::time::Duration;
const KEYS: u64 = 1000;
fn main() {
    divan::main();
}
#[divan::bench(threads = [1, 2])]
fn raw_moka(b: divan::Bencher) {
    static C: std::sync::OnceLock<moka::sync::Cache<u64, u64>> = std::sync::OnceLock::new();
    let c = C.get_or_init(|| {
        let c = moka::sync::Cache::new(10_000);
        for k in 0..KEYS {
            c.insert(k, k)
        }
        c
    });
    let mut k = 0u64;
    b.bench_local(|| {
        k = (k + 1) % KEYS;
        divan::black_box(c.get(&divan::black_box(k)))
    });
}
#[divan::bench(threads = [1, 2])]
fn fn_cache(b: divan::Bencher) {
    static C: std::sync::OnceLock<FnCache<u64, u64>> = std::sync::OnceLock::new();
    let c = C.get_or_init(|| {
        let c = FnCache::new(CacheConfig::new("x", Duration::from_secs(3600)));
        for k in 0..KEYS {
            let _: Option<u64> = futures_lite_block(c.get_or_load(
                k,
                herdcache_runtime::FailureShare::unit(),
                async move { Some(k) },
            ));
        }
        c
    });
    let mut k = 0u64;
    b.bench_local(|| {
        k = (k + 1) % KEYS;
        divan::black_box(c.get_fresh(&divan::black_box(k)))
    });
}
#[divan::bench(threads = [1, 2])]
fn instant_now() -> std::time::Instant {
    std::time::Instant::now()
}
fn futures_lite_block<F: std::future::Future>(f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    loop {
        if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
    }
}
#[derive(Clone)]
struct E {
    v: u64,
    _t: std::time::Instant,
    _l: Duration,
}
struct Ex;
impl moka::Expiry<u64, E> for Ex {
    fn expire_after_create(&self, _: &u64, e: &E, _: std::time::Instant) -> Option<Duration> {
        Some(e._l)
    }
}
#[divan::bench(threads = [1, 2])]
fn moka_expire_after(b: divan::Bencher) {
    static C: std::sync::OnceLock<moka::sync::Cache<u64, E>> = std::sync::OnceLock::new();
    let c = C.get_or_init(|| {
        let c = moka::sync::Cache::builder()
            .max_capacity(10_000)
            .expire_after(Ex)
            .build();
        for k in 0..KEYS {
            c.insert(
                k,
                E {
                    v: k,
                    _t: std::time::Instant::now(),
                    _l: Duration::from_secs(3600),
                },
            )
        }
        c
    });
    let mut k = 0u64;
    b.bench_local(|| {
        k = (k + 1) % KEYS;
        divan::black_box(c.get(&divan::black_box(k)).map(|e| e.v))
    });
}
#[divan::bench(threads = [1, 2])]
fn moka_ttl(b: divan::Bencher) {
    static C: std::sync::OnceLock<moka::sync::Cache<u64, E>> = std::sync::OnceLock::new();
    let c = C.get_or_init(|| {
        let c = moka::sync::Cache::builder()
            .max_capacity(10_000)
            .time_to_live(Duration::from_secs(3600))
            .build();
        for k in 0..KEYS {
            c.insert(
                k,
                E {
                    v: k,
                    _t: std::time::Instant::now(),
                    _l: Duration::from_secs(3600),
                },
            )
        }
        c
    });
    let mut k = 0u64;
    b.bench_local(|| {
        k = (k + 1) % KEYS;
        divan::black_box(c.get(&divan::black_box(k)).map(|e| e.v))
    });
}
