//! Failures are not cached, and callers that joined a failing load each get
//! an error without the loader running again, whatever the error type.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};

use common::{finishes, wait_until, Gate};
use herdcache::{cached, SharedError};

static ANYHOW_LOADS: AtomicUsize = AtomicUsize::new(0);
static ANYHOW_GATE: Gate = Gate::new();

#[derive(Debug, thiserror::Error)]
#[error("database unavailable (attempt {0})")]
struct DbDown(usize);

#[cached(ttl = "60s")]
async fn anyhow_failure(id: u64) -> anyhow::Result<String> {
    let attempt = ANYHOW_LOADS.fetch_add(1, SeqCst);
    ANYHOW_GATE.pass().await;
    Err(anyhow::Error::new(DbDown(attempt)).context(format!("loading user {id}")))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_load_shared_by_100_callers_with_anyhow_runs_once() {
    let callers: Vec<_> = (0..100).map(|_| tokio::spawn(anyhow_failure(5))).collect();
    wait_until("99 callers joined", || {
        anyhow_failure_cache().stats().coalesced == 99
    })
    .await;
    ANYHOW_GATE.open();
    for caller in callers {
        let error = finishes("a caller", caller).await.unwrap().unwrap_err();
        assert_eq!(error.to_string(), "loading user 5");
        assert_eq!(
            format!("{error:#}"),
            "loading user 5: database unavailable (attempt 0)"
        );
        // Every caller of a shared failure, the leader too, gets the shared
        // error, and through it the original.
        let shared = error.downcast_ref::<SharedError>().expect("shared");
        let original = shared.downcast_ref::<anyhow::Error>().expect("original");
        assert!(matches!(original.downcast_ref::<DbDown>(), Some(DbDown(0))));
    }
    assert_eq!(ANYHOW_LOADS.load(SeqCst), 1);
    let stats = anyhow_failure_cache().stats();
    assert_eq!((stats.loads, stats.load_errors), (1, 1));
}

static FLAKY_LOADS: AtomicUsize = AtomicUsize::new(0);

#[cached(ttl = "60s")]
async fn flaky(id: u64) -> Result<u64, std::io::Error> {
    match FLAKY_LOADS.fetch_add(1, SeqCst) {
        0 | 1 => Err(std::io::Error::new(
            std::io::ErrorKind::ConnectionRefused,
            "origin down",
        )),
        _ => Ok(id),
    }
}

#[tokio::test]
async fn errors_are_not_cached() {
    assert!(flaky(1).await.is_err());
    assert!(flaky(1).await.is_err());
    assert_eq!(flaky(1).await.unwrap(), 1);
    assert_eq!(flaky(1).await.unwrap(), 1);
    assert_eq!(
        FLAKY_LOADS.load(SeqCst),
        3,
        "each failure was retried, the success cached"
    );
    let stats = flaky_cache().stats();
    assert_eq!((stats.loads, stats.load_errors, stats.hits), (3, 2, 1));
}

static IO_GATE: Gate = Gate::new();
static IO_LOADS: AtomicUsize = AtomicUsize::new(0);

#[cached(ttl = "60s")]
async fn io_failure(path: &str) -> std::io::Result<Vec<u8>> {
    IO_LOADS.fetch_add(1, SeqCst);
    IO_GATE.pass().await;
    Err(std::io::Error::new(
        std::io::ErrorKind::NotFound,
        format!("{path}: no such file"),
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn io_errors_reach_every_waiter_with_their_kind() {
    let callers: Vec<_> = (0..20)
        .map(|_| tokio::spawn(async { io_failure("/etc/missing").await }))
        .collect();
    wait_until("19 callers joined", || {
        io_failure_cache().stats().coalesced == 19
    })
    .await;
    IO_GATE.open();
    for caller in callers {
        let error = caller.await.unwrap().unwrap_err();
        assert_eq!(error.kind(), std::io::ErrorKind::NotFound);
        assert_eq!(error.to_string(), "/etc/missing: no such file");
    }
    assert_eq!(IO_LOADS.load(SeqCst), 1);
}

/// An application error holding a non-`Clone` source takes shared failures
/// through a `From<SharedError>` variant.
#[derive(Debug, thiserror::Error)]
enum AppError {
    #[error("not found")]
    NotFound,
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Shared(#[from] SharedError),
}

impl AppError {
    /// The error as the load returned it: the pattern the docs recommend.
    fn original(&self) -> &AppError {
        match self {
            AppError::Shared(shared) => shared.downcast_ref::<AppError>().unwrap_or(self),
            other => other,
        }
    }
}

static APP_GATE: Gate = Gate::new();
static APP_LOADS: AtomicUsize = AtomicUsize::new(0);

#[cached(ttl = "60s")]
async fn app_failure(id: u64) -> Result<u64, AppError> {
    APP_LOADS.fetch_add(1, SeqCst);
    APP_GATE.pass().await;
    Err(std::io::Error::other(format!("record {id} is corrupt")).into())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_error_enum_with_a_shared_variant_works() {
    let callers: Vec<_> = (0..10).map(|_| tokio::spawn(app_failure(9))).collect();
    wait_until("9 callers joined", || {
        app_failure_cache().stats().coalesced == 9
    })
    .await;
    APP_GATE.open();
    for caller in callers {
        let error = caller.await.unwrap().unwrap_err();
        assert_eq!(error.to_string(), "io: record 9 is corrupt");
        // `match` on the original behaves the same for every caller.
        match error.original() {
            AppError::Io(io) => assert_eq!(io.to_string(), "record 9 is corrupt"),
            other => panic!("expected the original io error, got {other:?}"),
        }
    }
    assert_eq!(APP_LOADS.load(SeqCst), 1);
}

static MISSING_GATE: Gate = Gate::new();
static MISSING_LOADS: AtomicUsize = AtomicUsize::new(0);

#[cached(ttl = "60s")]
async fn missing(id: u64) -> Result<u64, AppError> {
    MISSING_LOADS.fetch_add(1, SeqCst);
    MISSING_GATE.pass().await;
    Err(AppError::NotFound).map(|()| id)
}

/// The issue a user hit: 1 caller got `NotFound` and 99 an opaque shared
/// error, so `NotFound => 404` turned into 503s under load.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_coalesced_caller_can_match_the_original_error() {
    let status = |error: &AppError| match error.original() {
        AppError::NotFound => 404,
        _ => 503,
    };
    let callers: Vec<_> = (0..100).map(|_| tokio::spawn(missing(4))).collect();
    wait_until("99 callers joined", || {
        missing_cache().stats().coalesced == 99
    })
    .await;
    MISSING_GATE.open();
    for caller in callers {
        let error = finishes("a caller", caller).await.unwrap().unwrap_err();
        assert_eq!(status(&error), 404);
    }
    assert_eq!(MISSING_LOADS.load(SeqCst), 1);
    // Alone, a caller gets its error as the body returned it.
    assert!(matches!(missing(5).await, Err(AppError::NotFound)));
}

#[derive(Clone, Debug, PartialEq)]
enum Lookup {
    RateLimited,
}

static CLONE_GATE: Gate = Gate::new();

#[cached(ttl = "60s")]
async fn clone_failure(id: u64) -> Result<u64, Lookup> {
    CLONE_GATE.pass().await;
    let _ = id;
    Err(Lookup::RateLimited)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clone_error_reaches_every_waiter_as_itself() {
    let callers: Vec<_> = (0..10).map(|_| tokio::spawn(clone_failure(1))).collect();
    wait_until("9 callers joined", || {
        clone_failure_cache().stats().coalesced == 9
    })
    .await;
    CLONE_GATE.open();
    for caller in callers {
        assert_eq!(caller.await.unwrap(), Err(Lookup::RateLimited));
    }
    assert_eq!(clone_failure_cache().stats().loads, 1);
}

static OPTION_LOADS: AtomicUsize = AtomicUsize::new(0);

#[cached(ttl = "60s")]
async fn find(id: u64) -> Option<String> {
    OPTION_LOADS.fetch_add(1, SeqCst);
    id.is_multiple_of(2).then(|| format!("even {id}"))
}

#[tokio::test]
async fn none_is_not_cached_and_some_is() {
    assert_eq!(find(1).await, None);
    assert_eq!(find(1).await, None);
    assert_eq!(find(2).await.as_deref(), Some("even 2"));
    assert_eq!(find(2).await.as_deref(), Some("even 2"));
    assert_eq!(OPTION_LOADS.load(SeqCst), 3);
    // `None` is not an error.
    assert_eq!(find_cache().stats().load_errors, 0);
}

static BOXED_LOADS: AtomicUsize = AtomicUsize::new(0);

#[cached(ttl = "60s")]
async fn boxed(id: u64) -> Result<u64, Box<dyn std::error::Error + Send + Sync>> {
    if BOXED_LOADS.fetch_add(1, SeqCst) == 0 {
        // `?` converts into the boxed error inside the cached body.
        let parsed: u64 = "not a number".parse()?;
        return Ok(parsed);
    }
    Ok(id)
}

#[tokio::test]
async fn question_mark_and_boxed_errors_work_in_the_body() {
    assert!(boxed(4).await.is_err());
    assert_eq!(boxed(4).await.unwrap(), 4);
}

static MACRO_LOADS: AtomicUsize = AtomicUsize::new(0);

/// A return type passed through `macro_rules!` arrives as a token group:
/// still a `Result`, so errors are still not cached.
macro_rules! cached_lookup {
    ($name:ident -> $ret:ty) => {
        #[cached(ttl = "60s")]
        async fn $name(id: u64) -> $ret {
            if MACRO_LOADS.fetch_add(1, SeqCst) == 0 {
                return Err(Lookup::RateLimited);
            }
            Ok(id)
        }
    };
}

cached_lookup!(through_a_macro -> Result<u64, Lookup>);

#[tokio::test]
async fn a_result_through_a_macro_is_still_a_result() {
    assert_eq!(through_a_macro(1).await, Err(Lookup::RateLimited));
    assert_eq!(through_a_macro(1).await, Ok(1), "the error was not cached");
    assert_eq!(through_a_macro(1).await, Ok(1));
    assert_eq!(MACRO_LOADS.load(SeqCst), 2);
}
