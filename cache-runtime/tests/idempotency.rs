//! `#[idempotent]`'s runtime with records per process (no Redis tier): one
//! run per key, replays, payload mismatches, what releases a claim, runs
//! that outlive their callers, scopes, keys, expiry and stats. Time is
//! tokio's paused clock. Runs with and without `--features redis` (no tier
//! is installed here, so records stay in the process either way).

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::time::Duration;

use herdcache_runtime::__private::{IdemConfig, Idempotency, StableDigest};
use herdcache_runtime::requirements::{IdempotencyKey, StoredOutcome};
use herdcache_runtime::{idempotency_stats, IdempotencyError, Idempotent};
use tokio::sync::Semaphore;

/// The error of the functions under test: a refusal, or the operation's.
#[derive(Debug, Clone, PartialEq)]
enum Failure {
    Refused(IdempotencyError),
    Op(String),
}

fn refused(error: IdempotencyError) -> Failure {
    Failure::Refused(error)
}

/// A function's records, living as long as the test binary (as a
/// generated function's do).
fn records<T, E>(config: IdemConfig<E>) -> &'static Idempotency<T, E>
where
    T: StoredOutcome,
    E: Clone + Send + Sync + 'static,
{
    Box::leak(Box::new(Idempotency::new(config)))
}

fn key(text: &str) -> Result<String, IdempotencyError> {
    text.idempotency_key()
}

fn fingerprint(request: &str) -> u128 {
    StableDigest::new().add(request).finish()
}

/// An operation that counts its runs and waits at a gate the test opens.
#[derive(Clone)]
struct Op {
    runs: Arc<AtomicUsize>,
    finished: Arc<AtomicUsize>,
    gate: Arc<Semaphore>,
}

impl Op {
    fn open() -> Self {
        let op = Op::closed();
        op.open_gate();
        op
    }

    fn closed() -> Self {
        Op {
            runs: Arc::default(),
            finished: Arc::default(),
            gate: Arc::new(Semaphore::new(0)),
        }
    }

    fn open_gate(&self) {
        self.gate.add_permits(Semaphore::MAX_PERMITS / 2);
    }

    fn runs(&self) -> usize {
        self.runs.load(SeqCst)
    }

    /// The operation, answering `answer` with the number of its run.
    fn answering<T: Send + 'static>(
        &self,
        answer: impl FnOnce(usize) -> T + Send + 'static,
    ) -> impl FnOnce() -> std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send>> + Send + 'static
    {
        let op = self.clone();
        move || {
            Box::pin(async move {
                let n = op.runs.fetch_add(1, SeqCst);
                op.gate.acquire().await.unwrap().forget();
                let answer = answer(n);
                op.finished.fetch_add(1, SeqCst);
                answer
            })
        }
    }
}

/// Lets spawned tasks run until `condition` holds (the clock is paused, so
/// this never waits on wall time).
async fn until(what: &str, condition: impl Fn() -> bool) {
    for _ in 0..100_000 {
        if condition() {
            return;
        }
        tokio::task::yield_now().await;
    }
    panic!("never: {what}");
}

type Records = &'static Idempotency<String, Failure>;

async fn pay(
    idem: Records,
    k: &str,
    request: &str,
    op: &Op,
) -> Idempotent<Result<String, Failure>> {
    idem.run(
        key(k),
        0,
        fingerprint(request),
        refused,
        op.answering(|n| Ok(format!("receipt {n}"))),
    )
    .await
}

#[tokio::test(start_paused = true)]
async fn a_hundred_concurrent_duplicates_run_once_and_all_get_the_outcome() {
    let idem: Records = records(IdemConfig::new("pay"));
    let op = Op::closed();
    let callers: Vec<_> = (0..100)
        .map(|_| {
            let op = op.clone();
            tokio::spawn(async move { pay(idem, "k-100", "charge 5", &op).await })
        })
        .collect();
    until("99 duplicates joined the run", || idem.stats().joined == 99).await;
    assert_eq!(op.runs(), 1);
    op.open_gate();
    let mut leaders = 0;
    for caller in callers {
        let answer = caller.await.unwrap();
        assert_eq!(answer.outcome(), &Ok("receipt 0".to_owned()));
        if !answer.replayed() {
            leaders += 1;
        }
    }
    assert_eq!(
        leaders, 1,
        "only the caller that started the run is not replayed"
    );
    assert_eq!(op.runs(), 1);
    let stats = idem.stats();
    assert_eq!((stats.runs, stats.joined), (1, 99));
}

#[tokio::test(start_paused = true)]
async fn a_retry_after_completion_replays_without_running() {
    let idem: Records = records(IdemConfig::new("pay"));
    let op = Op::open();
    let first = pay(idem, "k-retry", "charge 5", &op).await;
    assert!(!first.replayed());
    let retry = pay(idem, "k-retry", "charge 5", &op).await;
    assert!(retry.replayed());
    assert_eq!(retry.into_inner(), Ok("receipt 0".to_owned()));
    assert_eq!(op.runs(), 1);
    assert_eq!(idem.stats().replays, 1);
}

#[tokio::test(start_paused = true)]
async fn another_request_with_the_key_is_a_mismatch_in_progress_and_after() {
    let idem: Records = records(IdemConfig::new("pay"));
    let op = Op::closed();
    let first = {
        let op = op.clone();
        tokio::spawn(async move { pay(idem, "k-mis", "charge 5", &op).await })
    };
    until("the first run started", || op.runs() == 1).await;
    let other = Op::open();
    let during = pay(idem, "k-mis", "charge 500", &other).await;
    assert_eq!(
        during.outcome(),
        &Err(Failure::Refused(IdempotencyError::PayloadMismatch))
    );
    assert!(!during.replayed());
    op.open_gate();
    first.await.unwrap();
    let after = pay(idem, "k-mis", "charge 500", &other).await;
    assert_eq!(
        after.into_inner(),
        Err(Failure::Refused(IdempotencyError::PayloadMismatch))
    );
    assert_eq!(other.runs(), 0, "a mismatched request never runs");
    assert_eq!(idem.stats().mismatches, 2);
}

#[tokio::test(start_paused = true)]
async fn an_error_releases_the_claim_so_a_retry_runs_again() {
    let idem: Records = records(IdemConfig::new("pay"));
    let op = Op::open();
    let run = |n: usize| {
        idem.run(
            key("k-err"),
            0,
            fingerprint("charge"),
            refused,
            op.answering(move |_| {
                if n == 0 {
                    Err(Failure::Op("card declined".into()))
                } else {
                    Ok("receipt".to_owned())
                }
            }),
        )
    };
    let failed = run(0).await;
    assert_eq!(failed.outcome(), &Err(Failure::Op("card declined".into())));
    assert!(!failed.replayed());
    let retried = run(1).await;
    assert_eq!(retried.outcome(), &Ok("receipt".to_owned()));
    assert!(
        !retried.replayed(),
        "the retry ran: the error was not stored"
    );
    assert_eq!(op.runs(), 2);
    assert_eq!(idem.stats().released, 1);
}

#[tokio::test(start_paused = true)]
async fn a_final_error_is_stored_and_replayed() {
    let idem: &'static Idempotency<String, String> =
        records(IdemConfig::new("pay").store_err(|error| error.starts_with("final")));
    let op = Op::open();
    let run = |answer: Result<String, String>| {
        idem.run(
            key("k-final"),
            0,
            fingerprint("charge"),
            |error| error.to_string(),
            op.answering(move |_| answer),
        )
    };
    let first = run(Err("final: fraud".into())).await;
    assert!(!first.replayed());
    let retry = run(Ok("never".into())).await;
    assert!(retry.replayed());
    assert_eq!(retry.into_inner(), Err("final: fraud".to_owned()));
    assert_eq!(op.runs(), 1);
}

#[tokio::test(start_paused = true)]
async fn joined_duplicates_get_the_same_error() {
    let idem: Records = records(IdemConfig::new("pay"));
    let op = Op::closed();
    let callers: Vec<_> = (0..5)
        .map(|_| {
            let op = op.clone();
            tokio::spawn(async move {
                idem.run(
                    key("k-join-err"),
                    0,
                    fingerprint("charge"),
                    refused,
                    op.answering(|_| Err::<String, _>(Failure::Op("declined".into()))),
                )
                .await
            })
        })
        .collect();
    until("4 joined", || idem.stats().joined == 4).await;
    op.open_gate();
    for caller in callers {
        assert_eq!(
            caller.await.unwrap().into_inner(),
            Err(Failure::Op("declined".into()))
        );
    }
    assert_eq!(op.runs(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_panic_releases_the_claim_and_reaches_the_caller_that_started_it() {
    let idem: Records = records(IdemConfig::new("pay"));
    let op = Op::open();
    let panicking = op.answering(|_| -> Result<String, Failure> { panic!("bug in the handler") });
    let first = tokio::spawn(async move {
        idem.run(key("k-panic"), 0, fingerprint("charge"), refused, panicking)
            .await
    });
    assert!(first.await.unwrap_err().is_panic());
    let retry = pay(idem, "k-panic", "charge", &op).await;
    assert!(
        !retry.replayed(),
        "the retry runs: the panic released the claim"
    );
    assert_eq!(retry.into_inner(), Ok("receipt 1".to_owned()));
    assert_eq!(op.runs(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_caller_that_goes_away_does_not_cancel_the_run_and_its_retry_gets_the_outcome() {
    let idem: Records = records(IdemConfig::new("pay"));
    let op = Op::closed();
    // The client disconnects: its call is dropped mid-operation.
    let gone = tokio::time::timeout(
        Duration::from_millis(10),
        pay(idem, "k-gone", "charge 5", &op),
    )
    .await;
    assert!(gone.is_err());
    assert_eq!(op.runs(), 1);
    op.open_gate();
    until("the run finished on its own", || {
        op.finished.load(SeqCst) == 1
    })
    .await;
    let retry = pay(idem, "k-gone", "charge 5", &op).await;
    assert!(retry.replayed());
    assert_eq!(retry.into_inner(), Ok("receipt 0".to_owned()));
    assert_eq!(op.runs(), 1);
}

#[tokio::test(start_paused = true)]
async fn the_scope_separates_tenants() {
    let idem: Records = records(IdemConfig::new("pay"));
    let op = Op::open();
    let tenant = |scope: &str| StableDigest::new().add(scope).finish();
    for scope in ["acme", "globex"] {
        let answer = idem
            .run(
                key("k-1"),
                tenant(scope),
                fingerprint("charge 5"),
                refused,
                op.answering(|n| Ok(format!("receipt {n}"))),
            )
            .await;
        assert!(!answer.replayed(), "{scope} runs its own key-1");
    }
    assert_eq!(op.runs(), 2);
}

#[tokio::test(start_paused = true)]
async fn unit_is_an_outcome_and_replays() {
    let idem: &'static Idempotency<(), Failure> = records(IdemConfig::new("notify"));
    let op = Op::open();
    for replayed in [false, true] {
        let answer = idem
            .run(
                key("k-unit"),
                0,
                fingerprint("notify"),
                refused,
                op.answering(|_| Ok(())),
            )
            .await;
        assert_eq!(answer.replayed(), replayed);
        assert_eq!(answer.into_inner(), Ok(()));
    }
    assert_eq!(op.runs(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_missing_or_invalid_key_is_refused_before_anything_runs() {
    let idem: Records = records(IdemConfig::new("pay"));
    let op = Op::open();
    let cases = [
        (None::<&str>.idempotency_key(), IdempotencyError::MissingKey),
        ("".idempotency_key(), IdempotencyError::MissingKey),
        (
            "x".repeat(300).idempotency_key(),
            IdempotencyError::InvalidKey {
                reason: "longer than 255 bytes",
            },
        ),
        (
            "bell\u{7}".idempotency_key(),
            IdempotencyError::InvalidKey {
                reason: "contains a control character",
            },
        ),
        // A key made by hand is checked too.
        (
            Ok("line\nbreak".to_owned()),
            IdempotencyError::InvalidKey {
                reason: "contains a control character",
            },
        ),
    ];
    for (key, error) in cases {
        let answer = idem
            .run(
                key,
                0,
                fingerprint("charge"),
                refused,
                op.answering(|_| Ok("ran".to_owned())),
            )
            .await;
        assert!(!answer.replayed());
        assert_eq!(answer.into_inner(), Err(Failure::Refused(error)));
    }
    assert_eq!(op.runs(), 0);
    assert_eq!(idem.stats().rejected_keys, 5);
}

#[tokio::test(start_paused = true)]
async fn a_record_runs_again_once_its_ttl_is_over() {
    let idem: Records = records(IdemConfig::new("pay").ttl(Duration::from_secs(60)));
    let op = Op::open();
    assert!(!pay(idem, "k-ttl", "charge", &op).await.replayed());
    tokio::time::advance(Duration::from_secs(59)).await;
    assert!(pay(idem, "k-ttl", "charge", &op).await.replayed());
    tokio::time::advance(Duration::from_secs(2)).await;
    let again = pay(idem, "k-ttl", "charge", &op).await;
    assert!(
        !again.replayed(),
        "60 s after completion the record is gone"
    );
    assert_eq!(again.into_inner(), Ok("receipt 1".to_owned()));
    // Expired, a record no longer holds its request either.
    tokio::time::advance(Duration::from_secs(61)).await;
    assert!(!pay(idem, "k-ttl", "another request", &op).await.replayed());
    assert_eq!(op.runs(), 3);
}

#[tokio::test(start_paused = true)]
async fn a_fleet_function_without_a_redis_tier_is_refused() {
    let idem: Records = records(IdemConfig::new("pay").fleet(true));
    let op = Op::open();
    let answer = pay(idem, "k-fleet", "charge", &op).await;
    assert_eq!(
        answer.into_inner(),
        Err(Failure::Refused(IdempotencyError::Unavailable))
    );
    assert_eq!(op.runs(), 0);
    assert_eq!(idem.stats().unavailable, 1);
}

#[tokio::test(start_paused = true)]
async fn stats_count_each_path() {
    let idem: Records = records(IdemConfig::new("stats"));
    let before = idempotency_stats();
    let op = Op::open();
    pay(idem, "k-s1", "a", &op).await; // a run
    pay(idem, "k-s1", "a", &op).await; // a replay
    pay(idem, "k-s1", "b", &op).await; // a mismatch
    idem.run(Err(IdempotencyError::MissingKey), 0, 1, refused, || async {
        Ok("never".to_owned())
    })
    .await; // a rejected key
    idem.run(key("k-s2"), 0, 1, refused, || async {
        Err::<String, _>(Failure::Op("no".into()))
    })
    .await; // a run, released
    let stats = idem.stats();
    assert_eq!(stats.runs, 2);
    assert_eq!(stats.replays, 1);
    assert_eq!(stats.mismatches, 1);
    assert_eq!(stats.rejected_keys, 1);
    assert_eq!(stats.released, 1);
    assert_eq!(stats.joined, 0);
    assert_eq!(stats.unavailable, 0);
    // The process's totals include this function's (other tests add theirs).
    let after = idempotency_stats();
    assert!(after.runs >= before.runs + 2);
    assert!(after.replays > before.replays);
    assert!(after.mismatches > before.mismatches);
}

#[tokio::test(start_paused = true)]
async fn durations_past_what_an_instant_holds_do_not_panic() {
    let idem: Records = records(
        IdemConfig::new("pay")
            .ttl(Duration::MAX)
            .wait(Duration::MAX)
            .lease(Duration::MAX),
    );
    let op = Op::open();
    assert!(!pay(idem, "k-max", "charge", &op).await.replayed());
    assert!(pay(idem, "k-max", "charge", &op).await.replayed());
}
