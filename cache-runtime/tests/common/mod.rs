//! What the engine's tests share: caches that live as long as the test
//! binary, an origin that counts its loads and waits at a gate the test
//! opens, and the calls a generated function makes.

#![allow(dead_code)]

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::time::{Duration, Instant};

use herdcache_runtime::{
    BackgroundLoad, CacheConfig, Clock, FailureShare, FnCache, LoadHooks, ManualClock, Tags,
};
use tokio::sync::Semaphore;

pub const TTL: Duration = Duration::from_secs(60);

/// A cache that lives as long as the test binary, as generated ones do.
pub fn leak(config: CacheConfig, clock: &Arc<ManualClock>) -> &'static FnCache<u64, String> {
    Box::leak(Box::new(FnCache::new(
        config.clock(Clock::Manual(clock.clone())),
    )))
}

/// A gate background loads wait at until the test opens it.
#[derive(Clone)]
pub struct Gate(Arc<Semaphore>);

impl Gate {
    pub fn closed() -> Self {
        Gate(Arc::new(Semaphore::new(0)))
    }
    pub fn open() -> Self {
        let gate = Gate::closed();
        gate.release();
        gate
    }
    pub fn release(&self) {
        self.0.add_permits(Semaphore::MAX_PERMITS / 2);
    }
    pub async fn pass(&self) {
        self.0.acquire().await.unwrap().forget();
    }
}

/// The origin: counts its loads, answers what `answer` says for each.
#[derive(Clone)]
pub struct Origin {
    pub loads: Arc<AtomicUsize>,
    /// Loads that got past the gate and answered.
    pub answered: Arc<AtomicUsize>,
    pub gate: Gate,
    pub answer: Arc<dyn Fn(usize) -> Result<String, String> + Send + Sync>,
}

impl Origin {
    pub fn new(answer: impl Fn(usize) -> Result<String, String> + Send + Sync + 'static) -> Self {
        Origin {
            loads: Arc::default(),
            answered: Arc::default(),
            gate: Gate::open(),
            answer: Arc::new(answer),
        }
    }

    pub fn loads(&self) -> usize {
        self.loads.load(SeqCst)
    }

    pub fn load(&self) -> impl Future<Output = Result<String, String>> + Send + 'static {
        let origin = self.clone();
        async move {
            let n = origin.loads.fetch_add(1, SeqCst);
            origin.gate.pass().await;
            let answer = (origin.answer)(n);
            origin.answered.fetch_add(1, SeqCst);
            answer
        }
    }
}

pub fn hooks() -> LoadHooks<String, String> {
    LoadHooks::new(FailureShare::by_clone())
}

/// What a generated call does: the hit path, then the load.
pub async fn call(
    cache: &'static FnCache<u64, String>,
    key: u64,
    origin: &Origin,
    hooks: LoadHooks<String, String>,
) -> Result<String, String> {
    let background =
        || -> Option<BackgroundLoad<Result<String, String>>> { Some(Box::pin(origin.load())) };
    if let Some(hit) = cache.hit_or_refresh(&key, || hooks.clone(), Tags::new, background) {
        return hit;
    }
    let detached = cache.detachable(background);
    cache
        .load_or_detach(key, hooks, origin.load(), detached)
        .await
}

pub async fn wait_until(what: &str, condition: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// `per_instance` callers of `key` on every cache of `fleet` at once, each
/// a task; their answers in the order of the caches.
pub fn callers_on(
    fleet: &[&'static FnCache<u64, String>],
    key: u64,
    per_instance: usize,
    origin: &Origin,
) -> Vec<tokio::task::JoinHandle<Result<String, String>>> {
    fleet
        .iter()
        .flat_map(|&cache| {
            (0..per_instance).map(move |_| {
                let origin = origin.clone();
                tokio::spawn(async move { call(cache, key, &origin, hooks()).await })
            })
        })
        .collect()
}
