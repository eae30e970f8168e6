//! The freshness policies through `#[cached]`, as users write them, on a
//! manual clock (`testing::isolate_with_clock`): time moves when a test
//! says, so no test sleeps for a horizon and every outcome is exact.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::time::Duration;

use common::wait_until;
use herdcache::cached;
use herdcache::testing::{self, ManualClock};

const PAST_TTL: Duration = Duration::from_millis(300);

static PROFILE_LOADS: AtomicUsize = AtomicUsize::new(0);

/// A display name may be a minute stale: served at once while one refresh runs.
#[cached(ttl = "100ms", swr = "60s", key = user_id)]
async fn display_name(user_id: u64, region: &str) -> String {
    let n = PROFILE_LOADS.fetch_add(1, SeqCst);
    format!("user {user_id} in {region} (load {n})")
}

#[tokio::test]
async fn swr_serves_the_stale_value_and_refreshes_from_copies_of_the_arguments() {
    let clock = ManualClock::new();
    testing::isolate_with_clock(clock.clone(), async {
        assert_eq!(display_name(1, "eu").await, "user 1 in eu (load 0)");
        clock.advance(PAST_TTL);
        // Stale: served at once; the refresh runs with its own `String` copy
        // of the borrowed `region`.
        let region = String::from("eu");
        assert_eq!(display_name(1, &region).await, "user 1 in eu (load 0)");
        drop(region);
        wait_until("the refresh landed", || {
            display_name_cache().stats().refreshes == 1 && PROFILE_LOADS.load(SeqCst) == 2
        })
        .await;
        wait_until("the refreshed value is served", || {
            futures_now(display_name(1, "eu")) == "user 1 in eu (load 1)"
        })
        .await;
        // The loader counts as it starts: polls before its value lands may
        // be stale hits too.
        assert!(display_name_cache().stats().stale_hits >= 1);
    })
    .await;
}

/// Polls a future that must finish on its first poll (a hit).
fn futures_now<F: std::future::Future>(future: F) -> F::Output {
    let waker = std::task::Waker::noop();
    let mut cx = std::task::Context::from_waker(waker);
    let mut future = std::pin::pin!(future);
    match future.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(output) => output,
        std::task::Poll::Pending => panic!("expected a hit"),
    }
}

/// A repository that is `Clone` (it holds a pool): `&self` methods can
/// refresh in the background.
#[derive(Clone)]
struct Repo {
    pool: Arc<AtomicUsize>,
}

impl Repo {
    #[cached(ttl = "100ms", early_refresh = 1.0, swr = "60s", key = id)]
    async fn balance(&self, id: u64) -> Result<u64, std::io::Error> {
        Ok(id * 100 + self.pool.fetch_add(1, SeqCst) as u64)
    }
}

#[tokio::test]
async fn a_method_refreshes_from_a_clone_of_self() {
    let clock = ManualClock::new();
    testing::isolate_with_clock(clock.clone(), async {
        let repo = Repo {
            pool: Arc::default(),
        };
        assert_eq!(repo.balance(1).await.unwrap(), 100);
        clock.advance(PAST_TTL);
        assert_eq!(repo.balance(1).await.unwrap(), 100, "stale");
        wait_until("the clone of self loaded", || repo.pool.load(SeqCst) == 2).await;
        wait_until("served fresh", || {
            futures_now(repo.balance(1)).unwrap() == 101
        })
        .await;
    })
    .await;
}

static QUOTE_LOADS: AtomicUsize = AtomicUsize::new(0);

/// A paid API that goes down: the last good quote answers for 10 minutes.
#[cached(ttl = "100ms", fail_safe = "10m", fail_safe_throttle = "60s")]
async fn quote(symbol: &str) -> Result<f64, std::io::Error> {
    match QUOTE_LOADS.fetch_add(1, SeqCst) {
        0 => Ok(symbol.len() as f64),
        _ => Err(std::io::Error::other("upstream down")),
    }
}

#[tokio::test]
async fn fail_safe_answers_an_outage_with_the_last_good_value() {
    let clock = ManualClock::new();
    testing::isolate_with_clock(clock.clone(), async {
        assert_eq!(quote("ACME").await.unwrap(), 4.0);
        clock.advance(PAST_TTL);
        assert_eq!(quote("ACME").await.unwrap(), 4.0, "fallback, not the error");
        assert_eq!(quote("ACME").await.unwrap(), 4.0, "throttled: no new call");
        assert_eq!(QUOTE_LOADS.load(SeqCst), 2);
        assert_eq!(quote_cache().stats().fail_safe_hits, 1);
        // A key never loaded has no fallback.
        assert!(quote("NONE").await.is_err());
    })
    .await;
}

#[derive(Clone, Debug, PartialEq)]
enum LookupError {
    NotFound,
    Timeout,
}

/// "Not found" is worth remembering for a while; a timeout never is.
fn not_found_only(error: &LookupError) -> Option<Duration> {
    (*error == LookupError::NotFound).then_some(Duration::from_secs(60))
}

static LOOKUP_LOADS: AtomicUsize = AtomicUsize::new(0);

#[cached(ttl = "60s", negative = not_found_only)]
async fn lookup(id: u64) -> Result<String, LookupError> {
    LOOKUP_LOADS.fetch_add(1, SeqCst);
    match id {
        0 => Err(LookupError::Timeout),
        _ => Err(LookupError::NotFound),
    }
}

static FIND_LOADS: AtomicUsize = AtomicUsize::new(0);

#[cached(ttl = "60s", negative_ttl = "60s")]
async fn find(id: u64) -> Option<u64> {
    FIND_LOADS.fetch_add(1, SeqCst);
    (id > 100).then_some(id)
}

#[tokio::test]
async fn negative_rules_cache_what_they_say() {
    testing::isolate(async {
        assert_eq!(lookup(1).await, Err(LookupError::NotFound));
        assert_eq!(lookup(1).await, Err(LookupError::NotFound));
        assert_eq!(lookup(0).await, Err(LookupError::Timeout));
        assert_eq!(lookup(0).await, Err(LookupError::Timeout));
        assert_eq!(LOOKUP_LOADS.load(SeqCst), 3, "the timeout ran twice");
        assert_eq!(lookup_cache().stats().negative_hits, 1);

        assert_eq!(find(1).await, None);
        assert_eq!(find(1).await, None);
        assert_eq!(FIND_LOADS.load(SeqCst), 1, "None cached by negative_ttl");
    })
    .await;
}

#[derive(Clone, Debug)]
struct Token {
    expires_in: Duration,
}

impl Token {
    /// An access token is good until shortly before it expires.
    fn lifetime(&self) -> Duration {
        self.expires_in.saturating_sub(Duration::from_millis(50))
    }
}

static TOKEN_LOADS: AtomicUsize = AtomicUsize::new(0);

#[cached(ttl = "1h", ttl_for = Token::lifetime)]
async fn token(scope: &str) -> Result<Token, std::io::Error> {
    TOKEN_LOADS.fetch_add(1, SeqCst);
    let _ = scope;
    Ok(Token {
        expires_in: Duration::from_millis(150),
    })
}

#[tokio::test]
async fn ttl_for_gives_a_token_its_own_life() {
    let clock = ManualClock::new();
    testing::isolate_with_clock(clock.clone(), async {
        token("read").await.unwrap();
        token("read").await.unwrap();
        assert_eq!(TOKEN_LOADS.load(SeqCst), 1);
        clock.advance(PAST_TTL);
        token("read").await.unwrap();
        assert_eq!(TOKEN_LOADS.load(SeqCst), 2, "expired after its own 100 ms");
    })
    .await;
}

static SLOW_GATE: common::Gate = common::Gate::new();
static SLOW_LOADS: AtomicUsize = AtomicUsize::new(0);

/// A caller waits at most 100 ms; the load goes on and fills the cache.
#[cached(ttl = "60s", hard_timeout = "100ms")]
async fn slow_report(id: u64) -> Result<u64, std::io::Error> {
    SLOW_LOADS.fetch_add(1, SeqCst);
    SLOW_GATE.pass().await;
    Ok(id * 2)
}

#[tokio::test]
async fn a_hard_timeout_converts_into_the_error_type_and_the_load_goes_on() {
    testing::isolate(async {
        let error = slow_report(21).await.unwrap_err();
        assert_eq!(error.kind(), std::io::ErrorKind::TimedOut);
        assert_eq!(slow_report_cache().stats().timeouts, 1);
        SLOW_GATE.open();
        wait_until("the late value is stored", || {
            slow_report_cache().len() == 1
        })
        .await;
        assert_eq!(slow_report(21).await.unwrap(), 42);
        assert_eq!(
            SLOW_LOADS.load(SeqCst),
            1,
            "one load, finished in the background"
        );
    })
    .await;
}

static EXPIRING_LOADS: AtomicUsize = AtomicUsize::new(0);
static EXPIRING_FAILS: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// A hard timeout without fail-safe, on a tagged function: after
/// `expire_tag`, a caller whose load outlives the deadline may be given the
/// expired value, but the value is never kept past its own ttl.
#[cached(ttl = "2s", hard_timeout = "100ms", tags = ["report:{id}"])]
async fn expiring_report(id: u64) -> Result<u64, std::io::Error> {
    let n = EXPIRING_LOADS.fetch_add(1, SeqCst) as u64;
    if EXPIRING_FAILS.load(SeqCst) {
        tokio::time::sleep(Duration::from_millis(300)).await;
        return Err(std::io::Error::other("the origin is down"));
    }
    Ok(id * 10 + n)
}

#[tokio::test]
async fn a_value_served_at_a_hard_timeout_is_not_kept_past_its_ttl() {
    let clock = ManualClock::new();
    testing::isolate_with_clock(clock.clone(), async {
        assert_eq!(expiring_report(1).await.unwrap(), 10);
        clock.advance(Duration::from_millis(1_200));
        herdcache::expire_tag("report:1").await;
        EXPIRING_FAILS.store(true, SeqCst);
        // The load fails after the deadline, and nothing is stored. On a
        // clock that stands still, the expired value is still within its
        // own ttl: the caller gets it at the deadline.
        assert_eq!(expiring_report(1).await.unwrap(), 10);
        // The load goes on after the deadline, and fails (real time: the
        // origin's latency, not a horizon).
        wait_until("the late load failed", || {
            expiring_report_cache().stats().load_errors == 1
        })
        .await;
        EXPIRING_FAILS.store(false, SeqCst);
        // Past the value's own ttl (2 s after it was loaded): loaded again,
        // not served from memory.
        clock.advance(Duration::from_millis(1_400));
        let loads = EXPIRING_LOADS.load(SeqCst);
        assert_ne!(expiring_report(1).await.unwrap(), 10, "served past its ttl");
        assert_eq!(EXPIRING_LOADS.load(SeqCst), loads + 1);
    })
    .await;
}

static SAME_LOADS: AtomicUsize = AtomicUsize::new(0);

/// `swr = true`: the stale window is as long as the ttl.
#[cached(ttl = "200ms", swr = true)]
async fn same_window(id: u64) -> u64 {
    SAME_LOADS.fetch_add(1, SeqCst);
    id
}

#[tokio::test]
async fn swr_true_makes_the_stale_window_as_long_as_the_ttl() {
    let clock = ManualClock::new();
    testing::isolate_with_clock(clock.clone(), async {
        same_window(1).await;
        // Past the 200 ms ttl, inside the 200 ms stale window after it.
        clock.advance(Duration::from_millis(250));
        same_window(1).await;
        assert_eq!(same_window_cache().stats().stale_hits, 1);
    })
    .await;
}

static GREET_LOADS: AtomicUsize = AtomicUsize::new(0);

/// A deadline with an owned, non-`Copy` argument the body uses: the copy for
/// the detached load is made before the body takes `name`.
#[cached(ttl = "60s", fail_safe = "1m", timeout = "1s", hard_timeout = "2s")]
async fn greet(name: String, excited: bool) -> Result<String, std::io::Error> {
    GREET_LOADS.fetch_add(1, SeqCst);
    Ok(if excited {
        format!("hello, {name}!")
    } else {
        format!("hello, {name}")
    })
}

/// A method whose receiver is `self: &Arc<Self>`, refreshed from a clone of
/// the `Arc`.
struct Shared {
    greeting: &'static str,
}

impl Shared {
    #[cached(ttl = "100ms", swr = "60s", key = id)]
    async fn shout(self: &Arc<Self>, id: u64) -> String {
        format!("{} {id}", self.greeting)
    }
}

#[tokio::test]
async fn background_copies_of_owned_arguments_and_arc_receivers() {
    let clock = ManualClock::new();
    testing::isolate_with_clock(clock.clone(), async {
        assert_eq!(greet("ada".into(), true).await.unwrap(), "hello, ada!");
        assert_eq!(greet("ada".into(), true).await.unwrap(), "hello, ada!");
        assert_eq!(GREET_LOADS.load(SeqCst), 1);

        let shared = Arc::new(Shared { greeting: "hi" });
        assert_eq!(shared.shout(1).await, "hi 1");
        clock.advance(PAST_TTL);
        assert_eq!(shared.shout(1).await, "hi 1");
        wait_until("refreshed from the Arc's clone", || {
            Shared::shout_cache().stats().loads == 2
        })
        .await;
    })
    .await;
}

static PRICE_LOADS: AtomicUsize = AtomicUsize::new(0);

#[cached(ttl = "1h", swr = "1m", key = sku)]
async fn price(sku: &str, currency: &str) -> Result<u64, std::io::Error> {
    let n = PRICE_LOADS.fetch_add(1, SeqCst);
    let _ = (sku, currency);
    Ok(100 + n as u64)
}

#[tokio::test]
async fn expire_serves_the_old_price_once_while_it_refreshes() {
    testing::isolate(async {
        assert_eq!(price("sku-1", "EUR").await.unwrap(), 100);
        // A webhook: the price may have changed.
        price_expire("sku-1").await;
        assert_eq!(price("sku-1", "EUR").await.unwrap(), 100, "stale, at once");
        wait_until("the refreshed price", || {
            futures_now(price("sku-1", "EUR")).unwrap() == 101
        })
        .await;
        // The polls above may be stale hits too, until the refresh lands:
        // however many, one refresh.
        let stats = price_cache().stats();
        assert!(stats.stale_hits >= 1, "{stats:?}");
        assert_eq!(stats.refreshes, 1, "{stats:?}");
        assert_eq!(PRICE_LOADS.load(SeqCst), 2);
    })
    .await;
}
