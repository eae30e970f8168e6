//! `#[idempotent]` as users write it, records in memory (no Redis tier
//! installed): one run per key and scope, duplicates join or replay,
//! mismatched payloads refused, errors released unless final, a dropped
//! caller's run finished and stored.

mod common;

use common::{join_all, wait_until, Gate};
use std::time::Duration;

use herdcache::{idempotent, IdempotencyError};
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};

/// Stored when final (`store_err`): with the `redis` feature, serde too.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
enum PayError {
    Declined,
    Timeout,
    // Never final, so never stored.
    #[serde(skip)]
    Idempotency(IdempotencyError),
}

impl From<IdempotencyError> for PayError {
    fn from(error: IdempotencyError) -> Self {
        PayError::Idempotency(error)
    }
}

impl PayError {
    fn is_final(&self) -> bool {
        *self == PayError::Declined
    }
}

#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
struct Receipt {
    charge: usize,
    amount: u64,
}

static CHARGES: AtomicUsize = AtomicUsize::new(0);

#[idempotent(key = idem_key, scope = customer, name = "tests.charge")]
async fn charge(idem_key: &str, customer: u64, amount: u64) -> Result<Receipt, PayError> {
    let charge = CHARGES.fetch_add(1, SeqCst);
    Ok(Receipt { charge, amount })
}

static BOOKINGS: AtomicUsize = AtomicUsize::new(0);

#[idempotent(key = idem_key, name = "tests.book")]
async fn book(idem_key: &str, amount: u64) -> Result<Receipt, PayError> {
    let charge = BOOKINGS.fetch_add(1, SeqCst);
    tokio::task::yield_now().await;
    Ok(Receipt { charge, amount })
}

#[tokio::test]
async fn a_hundred_concurrent_duplicates_run_once_and_share_the_outcome() {
    let before = BOOKINGS.load(SeqCst);
    let calls = (0..100).map(|_| book_idempotent("order-1", 10)).collect();
    let outcomes = join_all(calls).await;
    assert_eq!(BOOKINGS.load(SeqCst) - before, 1);
    let first = outcomes[0].outcome().clone().unwrap();
    assert!(outcomes
        .iter()
        .all(|outcome| *outcome.outcome() == Ok(first.clone())));
    let fresh = outcomes
        .iter()
        .filter(|outcome| !outcome.replayed())
        .count();
    assert_eq!(fresh, 1, "one caller ran it; the others joined");

    // A retry later replays, marked as such, and runs nothing.
    let retry = book_idempotent("order-1", 10).await;
    assert!(retry.replayed());
    assert_eq!(retry.into_inner(), Ok(first));
    assert_eq!(BOOKINGS.load(SeqCst) - before, 1);
}

#[tokio::test]
async fn another_payload_under_the_same_key_is_a_mismatch_and_scope_separates_tenants() {
    let receipt = charge("order-2", 7, 10).await.unwrap();
    assert_eq!(
        charge("order-2", 7, 11).await,
        Err(PayError::Idempotency(IdempotencyError::PayloadMismatch))
    );
    // Another customer's "order-2" is another record.
    let other = charge("order-2", 8, 11).await.unwrap();
    assert_ne!(other.charge, receipt.charge);
    assert_eq!(charge("order-2", 7, 10).await, Ok(receipt));
}

static HELD: AtomicUsize = AtomicUsize::new(0);
static HOLD: Gate = Gate::new();

#[idempotent(key = idem_key, name = "tests.hold")]
async fn hold(idem_key: &str, amount: u64) -> Result<u64, PayError> {
    HELD.fetch_add(1, SeqCst);
    HOLD.pass().await;
    Ok(amount)
}

#[tokio::test]
async fn a_mismatch_is_refused_while_the_first_runs_too() {
    let first = tokio::spawn(hold("order-3", 999));
    // The body runs after the claim: from here the record is in progress.
    wait_until("the first run started", || HELD.load(SeqCst) == 1).await;
    assert_eq!(
        hold("order-3", 5).await,
        Err(PayError::Idempotency(IdempotencyError::PayloadMismatch))
    );
    HOLD.open();
    assert_eq!(first.await.unwrap(), Ok(999));
    assert_eq!(HELD.load(SeqCst), 1);
}

static DROPPED_RUNS: AtomicUsize = AtomicUsize::new(0);
static DROPPED_GATE: Gate = Gate::new();

#[idempotent(key = key, name = "tests.dropped")]
async fn slow_transfer(key: String, amount: u64) -> Result<u64, PayError> {
    DROPPED_RUNS.fetch_add(1, SeqCst);
    DROPPED_GATE.pass().await;
    Ok(amount)
}

#[tokio::test]
async fn a_caller_dropped_mid_operation_does_not_cancel_it() {
    let caller = tokio::spawn(slow_transfer("t-1".to_owned(), 40));
    wait_until("the run started", || DROPPED_RUNS.load(SeqCst) == 1).await;
    caller.abort();
    assert!(caller.await.unwrap_err().is_cancelled());
    DROPPED_GATE.open();
    // The retry gets the run's outcome; the operation ran once.
    let retry = slow_transfer_idempotent("t-1".to_owned(), 40).await;
    assert_eq!(retry.outcome(), &Ok(40));
    assert!(retry.replayed());
    assert_eq!(DROPPED_RUNS.load(SeqCst), 1);
}

static PAY_RUNS: AtomicUsize = AtomicUsize::new(0);

#[idempotent(key = key, name = "tests.pay", store_err = PayError::is_final)]
async fn pay(key: Option<String>, outcome: u8) -> Result<(), PayError> {
    PAY_RUNS.fetch_add(1, SeqCst);
    match outcome {
        0 => Ok(()),
        1 => Err(PayError::Timeout),
        _ => Err(PayError::Declined),
    }
}

#[tokio::test]
async fn errors_release_unless_final_and_a_unit_outcome_replays() {
    // A transient error releases the key: the retry runs (and may differ).
    assert_eq!(pay(Some("p-1".into()), 1).await, Err(PayError::Timeout));
    assert_eq!(pay(Some("p-1".into()), 1).await, Err(PayError::Timeout));
    assert_eq!(PAY_RUNS.load(SeqCst), 2);
    // A final error is stored and replayed.
    assert_eq!(pay(Some("p-2".into()), 2).await, Err(PayError::Declined));
    let replay = pay_idempotent(Some("p-2".into()), 2).await;
    assert!(replay.replayed());
    assert_eq!(replay.into_inner(), Err(PayError::Declined));
    assert_eq!(PAY_RUNS.load(SeqCst), 3);
    // `()` is an outcome: stored, replayed, never a reason to run again.
    assert_eq!(pay(Some("p-3".into()), 0).await, Ok(()));
    assert!(pay_idempotent(Some("p-3".into()), 0).await.replayed());
    assert_eq!(PAY_RUNS.load(SeqCst), 4);
}

#[tokio::test]
async fn bad_keys_are_refused_before_anything_runs() {
    let before = PAY_RUNS.load(SeqCst);
    assert_eq!(
        pay(None, 0).await,
        Err(PayError::Idempotency(IdempotencyError::MissingKey))
    );
    assert_eq!(
        pay(Some(String::new()), 0).await,
        Err(PayError::Idempotency(IdempotencyError::MissingKey))
    );
    let long = "k".repeat(300);
    assert!(matches!(
        pay(Some(long), 0).await,
        Err(PayError::Idempotency(IdempotencyError::InvalidKey { .. }))
    ));
    assert!(matches!(
        pay(Some("a\nb".into()), 0).await,
        Err(PayError::Idempotency(IdempotencyError::InvalidKey { .. }))
    ));
    assert_eq!(PAY_RUNS.load(SeqCst), before);
    assert_eq!(IdempotencyError::MissingKey.http_status(), 400);
    assert_eq!(IdempotencyError::PayloadMismatch.http_status(), 422);
}

#[derive(Clone)]
struct Ledger {
    bank: &'static str,
}

impl Ledger {
    #[idempotent(key = key, fingerprint = [amount], name = "tests.ledger.post")]
    async fn post(&self, key: &str, amount: u64, note: &str) -> Result<String, PayError> {
        Ok(format!("{} posted {amount} ({note})", self.bank))
    }
}

#[tokio::test]
async fn a_method_runs_from_a_clone_of_self_and_fingerprints_what_it_names() {
    let ledger = Ledger { bank: "acme" };
    assert_eq!(
        ledger.post("l-1", 5, "first").await.unwrap(),
        "acme posted 5 (first)"
    );
    // `note` is not in the fingerprint: the same request, replayed.
    let again = ledger.post_idempotent("l-1", 5, "second").await;
    assert!(again.replayed());
    assert_eq!(again.into_inner().unwrap(), "acme posted 5 (first)");
}

// The seed scenario, end to end on tokio's paused clock: a payment
// service slower than its client's 250 ms timeout, a client retrying with
// one idempotency key per payment, a balance read busted by each charge.
// The service keeps running a request its client gave up on, so without
// the key each retry is a second charge; with it, one charge a payment.

static SEED_DEBITS: std::sync::Mutex<Vec<u64>> = std::sync::Mutex::new(Vec::new());

async fn seed_debit(customer: u64, latency_ms: u64) -> u64 {
    tokio::time::sleep(Duration::from_millis(latency_ms)).await;
    let mut debits = SEED_DEBITS.lock().unwrap();
    debits.push(customer);
    debits.len() as u64
}

#[herdcache::cached(ttl = "60s")]
async fn seed_balance(customer: u64) -> u64 {
    let debits = SEED_DEBITS.lock().unwrap();
    1_000 - 10 * debits.iter().filter(|debit| **debit == customer).count() as u64
}

async fn seed_plain(customer: u64, latency_ms: u64) -> Result<u64, PayError> {
    let receipt = seed_debit(customer, latency_ms).await;
    seed_balance_invalidate(customer).await;
    Ok(receipt)
}

#[idempotent(key = key, scope = customer, fingerprint = [], name = "tests.seed.charge")]
async fn seed_charge(key: String, customer: u64, latency_ms: u64) -> Result<u64, PayError> {
    let receipt = seed_debit(customer, latency_ms).await;
    seed_balance_invalidate(customer).await;
    Ok(receipt)
}

/// Each customer's attempts reach a server that takes 400 ms on the
/// first try (past the client's 250 ms) and 100 ms after.
async fn seed_client(customer: u64, idempotent: bool) -> u64 {
    for attempt in 1..=4u64 {
        let latency = if attempt == 1 { 400 } else { 100 };
        let key = format!("seed-{customer}");
        let handler = tokio::spawn(async move {
            if idempotent {
                seed_charge(key, customer, latency).await
            } else {
                seed_plain(customer, latency).await
            }
        });
        if let Ok(Ok(Ok(receipt))) = tokio::time::timeout(Duration::from_millis(250), handler).await
        {
            return receipt;
        }
        tokio::time::sleep(herdcache::Retry::attempts(4).backoff(attempt as u32)).await;
    }
    panic!("the payment never went through");
}

#[tokio::test(start_paused = true)]
async fn the_customer_is_charged_once_with_herdcache_and_more_without() {
    let charged = |customer: u64| {
        SEED_DEBITS
            .lock()
            .unwrap()
            .iter()
            .filter(|debit| **debit == customer)
            .count()
    };
    // Without the key: the first request still lands after the client
    // gave up, and the retry charges again.
    assert_eq!(seed_balance(1).await, 1_000);
    seed_client(1, false).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(charged(1), 2, "charged twice without an idempotency key");
    assert_eq!(seed_balance(1).await, 980, "the cached balance was busted");

    // With it: the retry joins the first charge (or replays it).
    assert_eq!(seed_balance(2).await, 1_000);
    seed_client(2, true).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(charged(2), 1, "charged once");
    assert_eq!(seed_balance(2).await, 990, "the cached balance was busted");
}

static ANYHOW_RUNS: AtomicUsize = AtomicUsize::new(0);
static ANYHOW_GATE: Gate = Gate::new();

/// An error that is not `Clone` (`anyhow::Error`, `std::io::Error`): every
/// duplicate gets it as a `#[cached]` function's joined callers do.
#[idempotent(key = key, name = "tests.anyhow")]
async fn transfer(key: &str, amount: u64) -> anyhow::Result<u64> {
    ANYHOW_RUNS.fetch_add(1, SeqCst);
    ANYHOW_GATE.pass().await;
    if amount > 100 {
        anyhow::bail!("the bank is down");
    }
    if amount == 0 {
        return Err(NothingToMove.into());
    }
    Ok(amount)
}

#[derive(Debug, PartialEq)]
struct NothingToMove;

impl std::fmt::Display for NothingToMove {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("nothing to move")
    }
}

impl std::error::Error for NothingToMove {}

#[tokio::test]
async fn an_error_that_is_not_clone_reaches_every_duplicate() {
    ANYHOW_GATE.open();
    let calls = (0..10).map(|_| transfer("a-1", 500)).collect();
    let outcomes = join_all(calls).await;
    assert_eq!(ANYHOW_RUNS.load(SeqCst), 1);
    for outcome in &outcomes {
        let error = outcome.as_ref().unwrap_err();
        assert!(error.to_string().contains("the bank is down"), "{error}");
    }
    // Released: the retry runs again.
    assert!(transfer("a-1", 500).await.is_err());
    assert_eq!(ANYHOW_RUNS.load(SeqCst), 2);
    // A caller alone gets the error as the body returned it.
    let alone = transfer("a-2", 0).await.unwrap_err();
    assert_eq!(alone.downcast_ref::<NothingToMove>(), Some(&NothingToMove));
    // A refusal reaches its caller as the protocol's error itself.
    let refused = transfer("", 5).await.unwrap_err();
    assert_eq!(
        refused.downcast_ref::<IdempotencyError>(),
        Some(&IdempotencyError::MissingKey)
    );
}
