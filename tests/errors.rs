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
    let mut original = 0;
    for caller in callers {
        let error = finishes("a caller", caller).await.unwrap().unwrap_err();
        assert_eq!(error.to_string(), "loading user 5");
        assert_eq!(
            format!("{error:#}"),
            "loading user 5: database unavailable (attempt 0)"
        );
        // The leader keeps its own error; the others get the shared one.
        if error.downcast_ref::<DbDown>().is_some() {
            original += 1;
        } else {
            assert!(error.downcast_ref::<SharedError>().is_some());
        }
    }
    assert_eq!(original, 1);
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
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Shared(#[from] SharedError),
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
    let (mut io, mut shared) = (0, 0);
    for caller in callers {
        match caller.await.unwrap().unwrap_err() {
            AppError::Io(_) => io += 1,
            AppError::Shared(e) => {
                assert_eq!(e.to_string(), "io: record 9 is corrupt");
                shared += 1;
            }
        }
    }
    assert_eq!((io, shared), (1, 9));
    assert_eq!(APP_LOADS.load(SeqCst), 1);
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
    (id % 2 == 0).then(|| format!("even {id}"))
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
