//! One load per key however many callers arrive; different keys never wait
//! on each other; a dropped or panicking leader leaves nobody hanging.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::time::{Duration, Instant};

use common::{finishes, wait_until, Gate};
use herdcache::cached;

static STAMPEDE_LOADS: AtomicUsize = AtomicUsize::new(0);
static STAMPEDE_GATE: Gate = Gate::new();

#[cached(ttl = "60s")]
async fn stampede(key: u64) -> u64 {
    STAMPEDE_LOADS.fetch_add(1, SeqCst);
    STAMPEDE_GATE.pass().await;
    key * 2
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_callers_of_one_cold_key_run_the_loader_once() {
    let callers: Vec<_> = (0..10_000).map(|_| tokio::spawn(stampede(7))).collect();
    // Every caller but the leader has joined the load in flight.
    wait_until("9 999 callers joined the load", || {
        stampede_cache().stats().coalesced == 9_999
    })
    .await;
    STAMPEDE_GATE.open();
    for caller in callers {
        assert_eq!(finishes("a caller", caller).await.unwrap(), 14);
    }
    assert_eq!(STAMPEDE_LOADS.load(SeqCst), 1);
    let stats = stampede_cache().stats();
    assert_eq!(
        (stats.loads, stats.misses, stats.coalesced),
        (1, 10_000, 9_999)
    );
}

static DISTINCT_STARTED: AtomicUsize = AtomicUsize::new(0);
static DISTINCT_GATE: Gate = Gate::new();

#[cached(ttl = "60s")]
async fn distinct(key: u64) -> u64 {
    DISTINCT_STARTED.fetch_add(1, SeqCst);
    DISTINCT_GATE.pass().await;
    key
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loads_of_different_keys_run_at_the_same_time() {
    let callers: Vec<_> = (0..100).map(|key| tokio::spawn(distinct(key))).collect();
    // If one key's load waited on another's, they could not all be started
    // while the gate is shut.
    wait_until("all 100 loads started at once", || {
        DISTINCT_STARTED.load(SeqCst) == 100
    })
    .await;
    DISTINCT_GATE.open();
    for (key, caller) in callers.into_iter().enumerate() {
        assert_eq!(caller.await.unwrap(), key as u64);
    }
}

#[cached(ttl = "60s")]
async fn slow(key: u64) -> u64 {
    tokio::time::sleep(Duration::from_millis(50)).await;
    key
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_cold_keys_with_a_50ms_loader_finish_together() {
    let started = Instant::now();
    let callers: Vec<_> = (0..100).map(|key| tokio::spawn(slow(key))).collect();
    for caller in callers {
        caller.await.unwrap();
    }
    // One after another would take 5 s; together, about 50 ms.
    let elapsed = started.elapsed();
    assert!(elapsed < Duration::from_millis(2_500), "took {elapsed:?}");
    assert_eq!(slow_cache().stats().loads, 100);
}

static DROPPED_CALLS: AtomicUsize = AtomicUsize::new(0);

#[cached(ttl = "60s")]
async fn dropped_leader(key: u64) -> u64 {
    if DROPPED_CALLS.fetch_add(1, SeqCst) == 0 {
        // The first load never finishes: its caller will be dropped.
        std::future::pending::<()>().await;
    }
    key + 1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_leading_caller_hands_the_load_to_a_waiter() {
    let leader = tokio::spawn(dropped_leader(1));
    wait_until("the leader started loading", || {
        DROPPED_CALLS.load(SeqCst) == 1
    })
    .await;
    let waiters: Vec<_> = (0..10).map(|_| tokio::spawn(dropped_leader(1))).collect();
    wait_until("10 callers joined", || {
        dropped_leader_cache().stats().coalesced == 10
    })
    .await;
    leader.abort();
    assert!(leader.await.unwrap_err().is_cancelled());
    for waiter in waiters {
        assert_eq!(finishes("a waiter", waiter).await.unwrap(), 2);
    }
    // One waiter led a second load; the rest joined it.
    assert_eq!(DROPPED_CALLS.load(SeqCst), 2);
    assert_eq!(dropped_leader(1).await, 2);
    assert_eq!(DROPPED_CALLS.load(SeqCst), 2, "the value was stored");
}

static PANIC_CALLS: AtomicUsize = AtomicUsize::new(0);
static PANIC_GATE: Gate = Gate::new();

#[cached(ttl = "60s")]
async fn panicking(key: u64) -> u64 {
    if PANIC_CALLS.fetch_add(1, SeqCst) == 0 {
        PANIC_GATE.pass().await;
        panic!("the loader blew up");
    }
    key * 10
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_loader_poisons_nothing() {
    let leader = tokio::spawn(panicking(3));
    wait_until("the leader started loading", || {
        PANIC_CALLS.load(SeqCst) == 1
    })
    .await;
    let waiters: Vec<_> = (0..10).map(|_| tokio::spawn(panicking(3))).collect();
    wait_until("10 callers joined", || {
        panicking_cache().stats().coalesced == 10
    })
    .await;
    PANIC_GATE.open();
    assert!(leader.await.unwrap_err().is_panic());
    for waiter in waiters {
        assert_eq!(finishes("a waiter", waiter).await.unwrap(), 30);
    }
    assert_eq!(PANIC_CALLS.load(SeqCst), 2);
    // The key works as if nothing happened.
    assert_eq!(panicking(3).await, 30);
    let stats = panicking_cache().stats();
    assert_eq!((stats.loads, stats.load_errors, stats.hits), (2, 1, 1));
}

static LANDING_LOADS: AtomicUsize = AtomicUsize::new(0);

#[cached(ttl = "60s")]
async fn instant(key: u64) -> u64 {
    LANDING_LOADS.fetch_add(1, SeqCst);
    tokio::task::yield_now().await;
    key
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callers_arriving_while_a_load_lands_never_start_a_second_one() {
    // The load finishes while callers are still arriving: each must find
    // either the flight or the stored value, never a gap between the two.
    const ROUNDS: u64 = 300;
    for round in 0..ROUNDS {
        let callers: Vec<_> = (0..64).map(|_| tokio::spawn(instant(round))).collect();
        for caller in callers {
            assert_eq!(caller.await.unwrap(), round);
        }
    }
    assert_eq!(LANDING_LOADS.load(SeqCst), ROUNDS as usize);
}
