//! A slow payment service, a client that retries on timeout, and the same
//! payments made twice: once against the service as most are written (no
//! idempotency, a fixed retry delay), once with `#[herdcache::idempotent]`
//! on the charge and full-jitter backoff in the client.
//!
//! The service is slower than the client's patience: its p95 (scaled down
//! here: up to 600 ms) is above the client's timeout (250 ms). A request
//! the client gave up on still runs to the end on the server. Without an
//! idempotency key, each retry is a new charge; with one, the retries join
//! the charge in flight or replay its receipt, and the customer is charged
//! once. The balance is a cached read, busted by each charge.
//!
//! Run: `cargo run --example payments`

use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use herdcache::{cached, idempotent, IdempotencyError, Retry};

const PAYMENTS: u64 = 20;
const CLIENT_TIMEOUT: Duration = Duration::from_millis(250);
const ATTEMPTS: u32 = 6;

#[derive(Clone, Debug)]
enum PayError {
    Idempotency(IdempotencyError),
}

impl From<IdempotencyError> for PayError {
    fn from(error: IdempotencyError) -> Self {
        PayError::Idempotency(error)
    }
}

#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
struct Receipt {
    charge: u64,
}

/// The ledger: every debit the bank made, by customer.
static DEBITS: Mutex<Vec<u64>> = Mutex::new(Vec::new());
static CHARGE_IDS: AtomicU64 = AtomicU64::new(0);
/// When each retry reached the service (ms since the run began).
static ARRIVALS: Mutex<Vec<u64>> = Mutex::new(Vec::new());

/// The bank's side of a charge: slow, and it debits once it is called.
async fn debit(customer: u64) -> Receipt {
    let latency = 100 + pseudo_random() % 500;
    tokio::time::sleep(Duration::from_millis(latency)).await;
    DEBITS.lock().unwrap().push(customer);
    Receipt {
        charge: CHARGE_IDS.fetch_add(1, SeqCst),
    }
}

fn pseudo_random() -> u64 {
    static STATE: AtomicU64 = AtomicU64::new(0x9E37_79B9_7F4A_7C15);
    let mut x = STATE.fetch_add(0x9E37_79B9_7F4A_7C15, SeqCst);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// The balance page: cached, busted by every charge.
#[cached(ttl = "60s")]
async fn balance(customer: u64) -> u64 {
    let debits = DEBITS.lock().unwrap();
    1_000 - debits.iter().filter(|debit| **debit == customer).count() as u64 * 10
}

/// The service as usually written: every request is a charge.
async fn charge_plain(customer: u64) -> Result<Receipt, PayError> {
    let receipt = debit(customer).await;
    balance_invalidate(customer).await;
    Ok(receipt)
}

/// The same service with herdcache: one charge per idempotency key.
#[idempotent(key = idem_key, scope = customer, ttl = "24h", name = "payments.charge")]
async fn charge(idem_key: &str, customer: u64, amount: u64) -> Result<Receipt, PayError> {
    let receipt = debit(customer).await;
    balance_invalidate(customer).await;
    Ok(receipt)
}

/// One HTTP request: the server handles it to the end even if the client
/// stops waiting. `Err(Some(wait))`: 409, retry after `wait`.
async fn request(
    started: Instant,
    idempotent: bool,
    customer: u64,
    key: String,
    retry: bool,
) -> Result<Receipt, Option<Duration>> {
    if retry {
        ARRIVALS
            .lock()
            .unwrap()
            .push(started.elapsed().as_millis() as u64);
    }
    let handler = tokio::spawn(async move {
        if idempotent {
            charge(&key, customer, 10).await
        } else {
            charge_plain(customer).await
        }
    });
    match tokio::time::timeout(CLIENT_TIMEOUT, handler).await {
        Ok(Ok(Ok(receipt))) => Ok(receipt),
        Ok(Ok(Err(PayError::Idempotency(IdempotencyError::InProgress { retry_after })))) => {
            Err(Some(retry_after))
        }
        _ => Err(None),
    }
}

/// The client: up to `ATTEMPTS` tries, with a fixed delay or full jitter.
/// The receipt's charge id, if the client got one.
async fn pay(started: Instant, idempotent: bool, customer: u64) -> Option<u64> {
    let key = format!("order-{customer}");
    let backoff = Retry::attempts(ATTEMPTS)
        .base(Duration::from_millis(100))
        .cap(Duration::from_secs(1));
    for attempt in 1..=ATTEMPTS {
        let hint = match request(started, idempotent, customer, key.clone(), attempt > 1).await {
            Ok(receipt) => return Some(receipt.charge),
            Err(hint) => hint,
        };
        let wait = match hint {
            Some(retry_after) => retry_after,
            None if idempotent => backoff.backoff(attempt),
            None => Duration::from_millis(100),
        };
        tokio::time::sleep(wait).await;
    }
    None
}

async fn run(idempotent: bool) {
    DEBITS.lock().unwrap().clear();
    ARRIVALS.lock().unwrap().clear();
    let started = Instant::now();
    let payments: Vec<_> = (0..PAYMENTS)
        .map(|customer| tokio::spawn(pay(started, idempotent, customer)))
        .collect();
    let mut paid = 0;
    for payment in payments {
        paid += u64::from(payment.await.unwrap().is_some());
    }
    // Let the requests the client gave up on finish on the server.
    tokio::time::sleep(Duration::from_millis(700)).await;
    let debits = DEBITS.lock().unwrap().len() as u64;
    let arrivals = ARRIVALS.lock().unwrap().clone();
    // Retries landing in the same 10 ms: retries in lockstep.
    let mut slots = std::collections::BTreeMap::new();
    for at in &arrivals {
        *slots.entry(at / 10).or_insert(0u32) += 1;
    }
    let busiest = slots.values().max().copied().unwrap_or(0);
    let mut lowest = u64::MAX;
    for customer in 0..PAYMENTS {
        lowest = lowest.min(balance(customer).await);
    }
    println!(
        "  {PAYMENTS} payments, {paid} confirmed to the client, {} retries (at most {busiest} in the same 10 ms), {debits} charges ({} too many), lowest balance {lowest}",
        arrivals.len(),
        debits.saturating_sub(PAYMENTS),
    );
}

#[tokio::main]
async fn main() {
    println!("Without herdcache (no idempotency key, retry every 100 ms):");
    run(false).await;
    println!("With #[herdcache::idempotent] (one key per payment, full-jitter backoff):");
    run(true).await;
    let stats = herdcache::idempotency_stats();
    println!(
        "  herdcache: {} runs, {} duplicates joined a run in flight, {} replayed a stored receipt",
        stats.runs, stats.joined, stats.replays
    );
}
