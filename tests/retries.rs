//! Loader retries (`retry`, `retry_if`, `retry_base`, `retry_cap`) and the
//! origin's circuit breaker (`circuit_breaker`) through `#[cached]`. Waits
//! between retries run on tokio's paused clock, and the breaker reads the
//! cache's manual clock: no test sleeps in real time or judges by it.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Mutex;
use std::time::Duration;

use common::{join_all, wait_until, Gate};
use herdcache::testing::{self, ManualClock};
use herdcache::{cached, BreakerState, CircuitBreaker};

#[derive(Clone, Debug, PartialEq)]
enum ApiError {
    /// The origin is down: worth a retry.
    Down,
    /// The origin answered that there is nothing: not worth one.
    NotFound,
    Cache(herdcache::Error),
}

impl From<herdcache::Error> for ApiError {
    fn from(error: herdcache::Error) -> Self {
        ApiError::Cache(error)
    }
}

fn is_transient(error: &ApiError) -> bool {
    *error == ApiError::Down
}

const UNAVAILABLE: ApiError = ApiError::Cache(herdcache::Error::OriginUnavailable);

static FLAKY_CALLS: AtomicUsize = AtomicUsize::new(0);

#[cached(ttl = "60s", retry = 3)]
async fn flaky(id: u64) -> Result<String, ApiError> {
    tokio::time::sleep(Duration::from_millis(10)).await;
    match FLAKY_CALLS.fetch_add(1, SeqCst) {
        0 | 1 => Err(ApiError::Down),
        n => Ok(format!("item {id} on call {n}")),
    }
}

#[tokio::test(start_paused = true)]
async fn a_loader_failing_twice_is_called_three_times_by_the_leader_alone() {
    let callers = (0..1_000).map(|_| flaky(7)).collect();
    let answers = join_all(callers).await;
    assert_eq!(FLAKY_CALLS.load(SeqCst), 3, "only the leader retries");
    assert!(answers
        .iter()
        .all(|answer| answer.as_deref() == Ok("item 7 on call 2")));
    let stats = flaky_cache().stats();
    assert_eq!(
        (
            stats.loads,
            stats.retries,
            stats.coalesced,
            stats.load_errors
        ),
        (1, 2, 999, 0)
    );
}

static PICKY_CALLS: AtomicUsize = AtomicUsize::new(0);

#[cached(ttl = "60s", retry = 5, retry_if = is_transient)]
async fn picky(id: u64) -> Result<u64, ApiError> {
    match PICKY_CALLS.fetch_add(1, SeqCst) {
        0 => Err(ApiError::Down),
        _ => Err(ApiError::NotFound),
    }
    .map(|()| id)
}

#[tokio::test(start_paused = true)]
async fn retry_if_retries_transient_errors_only() {
    assert_eq!(picky(1).await, Err(ApiError::NotFound));
    assert_eq!(PICKY_CALLS.load(SeqCst), 2, "NotFound is not retried");
    assert_eq!(picky_cache().stats().retries, 1);
}

static DOWN_CALLS: Mutex<Vec<tokio::time::Instant>> = Mutex::new(Vec::new());

#[cached(
    ttl = "60s",
    retry = 20,
    retry_base = "1s",
    retry_cap = "1s",
    hard_timeout = "2500ms"
)]
async fn always_down(id: u64) -> Result<u64, ApiError> {
    DOWN_CALLS.lock().unwrap().push(tokio::time::Instant::now());
    Err::<u64, _>(ApiError::Down).map(|_| id)
}

#[tokio::test(start_paused = true)]
async fn retries_stop_before_the_hard_timeout() {
    let started = tokio::time::Instant::now();
    let answer = always_down(1).await;
    // The caller gets the last failure, or the timeout if that came first.
    assert!(
        matches!(
            answer,
            Err(ApiError::Down | ApiError::Cache(herdcache::Error::Timeout))
        ),
        "{answer:?}"
    );
    // Nineteen retries with waits up to a second would take ~9.5 s; none
    // is made whose wait ends past the 2.5 s deadline.
    wait_until("the load ended", || {
        always_down_cache().stats().load_errors == 1
    })
    .await;
    let calls = DOWN_CALLS.lock().unwrap().clone();
    assert!(calls.len() < 20, "{} calls", calls.len());
    assert!(calls.len() >= 2, "it retried at all");
    for call in &calls {
        assert!(
            *call - started < Duration::from_millis(2_500),
            "a call after the deadline"
        );
    }
}

static TIMES: Mutex<Vec<(u64, tokio::time::Instant)>> = Mutex::new(Vec::new());

#[cached(ttl = "60s", retry = 6, retry_base = "100ms", retry_cap = "400ms")]
async fn timed(id: u64) -> Result<u64, ApiError> {
    TIMES
        .lock()
        .unwrap()
        .push((id, tokio::time::Instant::now()));
    Err::<u64, _>(ApiError::Down).map(|_| id)
}

#[tokio::test(start_paused = true)]
async fn backoff_delays_lie_within_the_full_jitter_bounds() {
    let ceilings = [100, 200, 400, 400, 400];
    let mut below_half = [0; 5];
    for id in 0..40 {
        assert_eq!(timed(id).await, Err(ApiError::Down));
        let times: Vec<_> = TIMES
            .lock()
            .unwrap()
            .iter()
            .filter(|(of, _)| *of == id)
            .map(|(_, at)| *at)
            .collect();
        assert_eq!(times.len(), 6);
        for (retry, pair) in times.windows(2).enumerate() {
            let gap = pair[1] - pair[0];
            let ceiling = Duration::from_millis(ceilings[retry]);
            assert!(gap <= ceiling, "retry {} waited {gap:?}", retry + 1);
            if gap < ceiling / 2 {
                below_half[retry] += 1;
            }
        }
    }
    // Full jitter, not a fixed or "equal jitter" wait: in 40 draws each
    // retry's wait fell in the bottom half of its window several times.
    for (retry, count) in below_half.iter().enumerate() {
        assert!(
            (5..=35).contains(count),
            "retry {}: {count} of 40 draws in the bottom half",
            retry + 1
        );
    }
}

static ORIGIN_CALLS: AtomicUsize = AtomicUsize::new(0);
static ORIGIN_UP: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

#[cached(
    ttl = "60s",
    circuit_breaker = CircuitBreaker::new()
        .min_calls(4)
        .failure_ratio(0.5)
        .break_for(Duration::from_secs(1))
        .probes(2)
)]
async fn guarded(id: u64) -> Result<u64, ApiError> {
    ORIGIN_CALLS.fetch_add(1, SeqCst);
    if ORIGIN_UP.load(SeqCst) {
        Ok(id)
    } else {
        Err(ApiError::Down)
    }
}

#[tokio::test]
async fn the_breaker_opens_sends_nothing_while_open_and_closes_after_its_probes() {
    let clock = ManualClock::new();
    testing::isolate_with_clock(clock.clone(), async {
        for id in 0..4 {
            assert_eq!(guarded(id).await, Err(ApiError::Down));
        }
        assert_eq!(guarded_cache().stats().breaker, BreakerState::Open);
        for id in 0..10 {
            assert_eq!(guarded(id).await, Err(UNAVAILABLE));
        }
        assert_eq!(ORIGIN_CALLS.load(SeqCst), 4, "no call while open");
        let stats = guarded_cache().stats();
        assert_eq!((stats.breaker_rejected, stats.breaker_openings), (10, 1));

        ORIGIN_UP.store(true, SeqCst);
        clock.advance(Duration::from_secs(1));
        assert_eq!(guarded(100).await, Ok(100));
        assert_eq!(guarded_cache().stats().breaker, BreakerState::HalfOpen);
        assert_eq!(guarded(101).await, Ok(101));
        assert_eq!(guarded_cache().stats().breaker, BreakerState::Closed);
        assert_eq!(ORIGIN_CALLS.load(SeqCst), 6);
    })
    .await;
}

static PROBE_CALLS: AtomicUsize = AtomicUsize::new(0);
static PROBE_DOWN: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(true);
static PROBE_GATE: Gate = Gate::new();

#[cached(
    ttl = "60s",
    circuit_breaker = CircuitBreaker::new()
        .min_calls(2)
        .break_for(Duration::from_secs(5))
        .probes(2)
)]
async fn probed(id: u64) -> Result<u64, ApiError> {
    PROBE_CALLS.fetch_add(1, SeqCst);
    if PROBE_DOWN.load(SeqCst) {
        return Err(ApiError::Down);
    }
    PROBE_GATE.pass().await;
    Ok(id)
}

#[tokio::test]
async fn half_open_lets_exactly_one_probe_through_under_a_thousand_callers_on_a_hundred_keys() {
    let clock = ManualClock::new();
    testing::isolate_with_clock(clock.clone(), async {
        for id in 0..2 {
            assert_eq!(probed(10_000 + id).await, Err(ApiError::Down));
        }
        assert_eq!(probed_cache().stats().breaker, BreakerState::Open);
        PROBE_DOWN.store(false, SeqCst);
        clock.advance(Duration::from_secs(5));

        let callers = (0..1_000u64).map(|caller| probed(caller % 100)).collect();
        let (answers, ()) = tokio::join!(join_all(callers), async {
            wait_until("the probe is running", || PROBE_CALLS.load(SeqCst) == 3).await;
            PROBE_GATE.open();
        });
        assert_eq!(PROBE_CALLS.load(SeqCst), 3, "one probe went through");
        // The probe's key's ten callers share it; every other key is refused.
        let served = answers.iter().filter(|answer| answer.is_ok()).count();
        let refused = answers
            .iter()
            .filter(|answer| **answer == Err(UNAVAILABLE))
            .count();
        assert_eq!((served, refused), (10, 990));
        assert_eq!(probed_cache().stats().breaker, BreakerState::HalfOpen);
        // The second probe closes it.
        assert_eq!(probed(5_000).await, Ok(5_000));
        assert_eq!(probed_cache().stats().breaker, BreakerState::Closed);
    })
    .await;
}

static SAFE_CALLS: AtomicUsize = AtomicUsize::new(0);
static SAFE_UP: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(true);

#[cached(
    ttl = "1s",
    fail_safe = "1h",
    circuit_breaker = CircuitBreaker::new().min_calls(2)
)]
async fn price(id: u64) -> Result<String, ApiError> {
    let n = SAFE_CALLS.fetch_add(1, SeqCst);
    if SAFE_UP.load(SeqCst) {
        Ok(format!("price {id} (call {n})"))
    } else {
        Err(ApiError::Down)
    }
}

#[tokio::test]
async fn with_fail_safe_an_open_breaker_serves_the_last_good_value() {
    let clock = ManualClock::new();
    testing::isolate_with_clock(clock.clone(), async {
        assert_eq!(price(1).await.as_deref(), Ok("price 1 (call 0)"));
        clock.advance(Duration::from_secs(2));
        SAFE_UP.store(false, SeqCst);
        // One success and one failure in the window: half failed, and the
        // breaker opens.
        assert_eq!(price(2).await, Err(ApiError::Down));
        assert_eq!(price_cache().stats().breaker, BreakerState::Open);
        // A key with no fallback gets the breaker's error...
        assert_eq!(price(3).await, Err(UNAVAILABLE));
        // ... and key 1, past its ttl, its last good value from fail-safe.
        assert_eq!(price(1).await.as_deref(), Ok("price 1 (call 0)"));
        assert_eq!(SAFE_CALLS.load(SeqCst), 2, "the origin was not called");
        let stats = price_cache().stats();
        assert_eq!((stats.breaker_rejected, stats.fail_safe_hits), (2, 1));
    })
    .await;
}
