//! `#[idempotent]`'s records in Redis, against a `redis-server` of the
//! test's own. Two tiers built separately in this process stand for two
//! instances of a fleet (each `Idempotency` has its own single flight and
//! connection). Leases and expiry are judged by Redis `TIME`, so these
//! tests run on the real clock; every wait is for a condition, bounded.
//! Needs the `redis` feature (`required-features` in Cargo.toml).

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::time::{Duration, Instant};

use herdcache_runtime::__private::{IdemConfig, Idempotency, StableDigest};
use herdcache_runtime::requirements::IdempotencyKey;
use herdcache_runtime::{IdempotencyError, Idempotent, RedisTier, Runtime};
use herdcache_test_support::{FaultProxy, RedisServer};
use tokio::sync::Semaphore;

#[derive(Debug, Clone, PartialEq)]
enum Failure {
    Refused(IdempotencyError),
    Op(String),
}

fn refused(error: IdempotencyError) -> Failure {
    Failure::Refused(error)
}

type Records = &'static Idempotency<String, Failure>;

fn tier_at(url: String, namespace: &str, timeout: Duration) -> Arc<RedisTier> {
    Runtime::builder()
        .redis(url)
        .namespace(namespace)
        .timeout(timeout)
        // The faults here are the test's: no breaker in the way.
        .breaker(1_000_000, Duration::from_millis(1))
        .build()
        .unwrap()
}

/// One instance: its own tier (and connection) and its own records.
fn instance(server: &RedisServer, namespace: &str, config: IdemConfig<Failure>) -> Records {
    // Generous: a loaded 2-core machine must not time calls out.
    let tier = tier_at(server.url(), namespace, Duration::from_secs(5));
    Box::leak(Box::new(Idempotency::new(config).with_tier(tier)))
}

fn config() -> IdemConfig<Failure> {
    IdemConfig::new("pay").wait(Duration::from_secs(10))
}

fn fingerprint(request: &str) -> u128 {
    StableDigest::new().add(request).finish()
}

/// An operation that counts its runs and waits at a gate the test opens.
#[derive(Clone)]
struct Op {
    runs: Arc<AtomicUsize>,
    gate: Arc<Semaphore>,
}

impl Op {
    fn closed() -> Self {
        Op {
            runs: Arc::default(),
            gate: Arc::new(Semaphore::new(0)),
        }
    }
    fn open() -> Self {
        let op = Op::closed();
        op.open_gate();
        op
    }
    fn open_gate(&self) {
        self.gate.add_permits(Semaphore::MAX_PERMITS / 2);
    }
    fn runs(&self) -> usize {
        self.runs.load(SeqCst)
    }
}

async fn pay(
    idem: Records,
    key: &str,
    request: &str,
    op: &Op,
    receipt: &str,
) -> Idempotent<Result<String, Failure>> {
    let op = op.clone();
    let receipt = receipt.to_owned();
    idem.run(
        key.idempotency_key(),
        0,
        fingerprint(request),
        refused,
        move || async move {
            op.runs.fetch_add(1, SeqCst);
            op.gate.acquire().await.unwrap().forget();
            Ok(receipt)
        },
    )
    .await
}

async fn until(what: &str, condition: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

async fn raw(server: &RedisServer) -> redis::aio::MultiplexedConnection {
    redis::Client::open(server.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

async fn keys(server: &RedisServer) -> Vec<String> {
    let mut redis = raw(server).await;
    redis::cmd("KEYS")
        .arg("*")
        .query_async(&mut redis)
        .await
        .unwrap()
}

/// The only record in the server.
async fn the_record(server: &RedisServer) -> String {
    let mut keys = keys(server).await;
    assert_eq!(keys.len(), 1, "{keys:?}");
    keys.remove(0)
}

async fn hset(server: &RedisServer, key: &str, field: &str, value: &[u8]) {
    let mut redis = raw(server).await;
    let _: i64 = redis::cmd("HSET")
        .arg(key)
        .arg(field)
        .arg(value)
        .query_async(&mut redis)
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_duplicates_on_each_of_two_instances_run_once() {
    let server = RedisServer::start().unwrap();
    let a = instance(&server, "fleet", config());
    let b = instance(&server, "fleet", config());
    let op = Op::closed();
    let mut callers = Vec::new();
    for idem in [a, b] {
        for _ in 0..50 {
            let op = op.clone();
            callers.push(tokio::spawn(async move {
                pay(idem, "k-fleet", "charge 5", &op, "receipt").await
            }));
        }
    }
    until(
        "every duplicate joined its instance's flight, and one claim runs",
        || a.stats().joined == 49 && b.stats().joined == 49 && op.runs() >= 1,
    )
    .await;
    assert_eq!(op.runs(), 1, "the other instance's leader waits, not runs");
    op.open_gate();
    let mut started = 0;
    for caller in callers {
        let answer = caller.await.unwrap();
        assert_eq!(answer.outcome(), &Ok("receipt".to_owned()));
        if !answer.replayed() {
            started += 1;
        }
    }
    assert_eq!(started, 1, "one caller in the fleet started the run");
    assert_eq!(op.runs(), 1);
    assert_eq!(a.stats().runs + b.stats().runs, 1);
    assert_eq!(a.stats().replays + b.stats().replays, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_instance_waits_for_the_outcome() {
    let server = RedisServer::start().unwrap();
    let a = instance(&server, "wait", config());
    let b = instance(&server, "wait", config());
    let op = Op::closed();
    let first = {
        let op = op.clone();
        tokio::spawn(async move { pay(a, "k-wait", "charge", &op, "receipt").await })
    };
    until("a runs it", || op.runs() == 1).await;
    let mut duplicate = {
        let op = op.clone();
        tokio::spawn(async move { pay(b, "k-wait", "charge", &op, "other").await })
    };
    // b is still waiting while a runs...
    assert!(
        tokio::time::timeout(Duration::from_millis(100), &mut duplicate)
            .await
            .is_err()
    );
    op.open_gate();
    // ... and gets a's outcome, without running it.
    let replayed = duplicate.await.unwrap();
    assert!(replayed.replayed());
    assert_eq!(replayed.into_inner(), Ok("receipt".to_owned()));
    assert!(!first.await.unwrap().replayed());
    assert_eq!(op.runs(), 1);
    // A retry on b later replays from Redis.
    let retry = pay(b, "k-wait", "charge", &op, "other").await;
    assert!(retry.replayed());
    assert_eq!(retry.into_inner(), Ok("receipt".to_owned()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_instance_is_told_in_progress_after_its_wait() {
    let server = RedisServer::start().unwrap();
    let a = instance(&server, "busy", config());
    let b = instance(
        &server,
        "busy",
        config()
            .wait(Duration::from_millis(200))
            .lease(Duration::from_secs(10)),
    );
    let op = Op::closed();
    let first = {
        let op = op.clone();
        tokio::spawn(async move { pay(a, "k-busy", "charge", &op, "receipt").await })
    };
    until("a runs it", || op.runs() == 1).await;
    let started = Instant::now();
    let answer = pay(b, "k-busy", "charge", &op, "other").await;
    assert!(started.elapsed() >= Duration::from_millis(200), "b waited");
    match answer.into_inner() {
        Err(Failure::Refused(IdempotencyError::InProgress { retry_after })) => {
            assert!(retry_after > Duration::ZERO && retry_after <= Duration::from_secs(10));
        }
        other => panic!("expected InProgress, got {other:?}"),
    }
    assert_eq!(b.stats().in_progress, 1);
    // Another request with the key is refused while it runs, too.
    let mismatch = pay(b, "k-busy", "charge 500", &op, "other").await;
    assert_eq!(
        mismatch.into_inner(),
        Err(Failure::Refused(IdempotencyError::PayloadMismatch))
    );
    op.open_gate();
    first.await.unwrap();
    // And after it completed.
    let mismatch = pay(b, "k-busy", "charge 500", &op, "other").await;
    assert_eq!(
        mismatch.into_inner(),
        Err(Failure::Refused(IdempotencyError::PayloadMismatch))
    );
    assert_eq!(op.runs(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_error_releases_the_claim_for_the_fleet() {
    let server = RedisServer::start().unwrap();
    let a = instance(&server, "err", config());
    let b = instance(&server, "err", config());
    let failed = a
        .run(
            "k-err".idempotency_key(),
            0,
            fingerprint("charge"),
            refused,
            || async { Err::<String, _>(Failure::Op("declined".into())) },
        )
        .await;
    assert_eq!(failed.into_inner(), Err(Failure::Op("declined".into())));
    assert!(keys(&server).await.is_empty(), "the claim was released");
    let op = Op::open();
    let retry = pay(b, "k-err", "charge", &op, "receipt").await;
    assert!(!retry.replayed());
    assert_eq!(op.runs(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_whose_lease_ran_out_is_taken_over() {
    let server = RedisServer::start().unwrap();
    // a reaches Redis through a proxy the test cuts: a pod cut off (or
    // dead) mid-run, whose heartbeat stops.
    let proxy = FaultProxy::start(server.port()).unwrap();
    let a_tier = tier_at(proxy.url(), "lease", Duration::from_millis(200));
    let lease = Duration::from_millis(300);
    let a: Records = Box::leak(Box::new(
        Idempotency::new(config().lease(lease)).with_tier(a_tier),
    ));
    let b = instance(&server, "lease", config().lease(lease));
    let a_op = Op::closed();
    let a_call = {
        let op = a_op.clone();
        tokio::spawn(async move { pay(a, "k-lease", "charge", &op, "receipt A").await })
    };
    until("a runs it", || a_op.runs() == 1).await;
    proxy.cut();
    // b waits (up to 10 s) and takes over once the lease, no longer
    // extended, has run out by Redis's clock.
    let b_op = Op::open();
    let taken = pay(b, "k-lease", "charge", &b_op, "receipt B").await;
    assert!(!taken.replayed());
    assert_eq!(taken.into_inner(), Ok("receipt B".to_owned()));
    assert_eq!(b.stats().takeovers, 1);
    // a's run still finishes for its caller; its outcome does not replace
    // b's record.
    a_op.open_gate();
    assert_eq!(
        a_call.await.unwrap().into_inner(),
        Ok("receipt A".to_owned())
    );
    let c = instance(&server, "lease", config());
    let retry = pay(c, "k-lease", "charge", &Op::open(), "receipt C").await;
    assert!(retry.replayed());
    assert_eq!(retry.into_inner(), Ok("receipt B".to_owned()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fenced_holder_cannot_overwrite_the_newer_claim() {
    let server = RedisServer::start().unwrap();
    // A long lease: no heartbeat fires during the test, so the test decides
    // when a's lease is over (by moving it into the past, as its expiry
    // would).
    let a = instance(&server, "fence", config().lease(Duration::from_secs(60)));
    let b = instance(&server, "fence", config().lease(Duration::from_secs(60)));
    let a_op = Op::closed();
    let a_call = {
        let op = a_op.clone();
        tokio::spawn(async move { pay(a, "k-fence", "charge", &op, "receipt A").await })
    };
    until("a runs it", || a_op.runs() == 1).await;
    let record = the_record(&server).await;
    hset(&server, &record, "l", b"0").await;
    // Only the same request takes over a claim whose lease is over.
    let other = pay(b, "k-fence", "charge 500", &Op::open(), "other").await;
    assert_eq!(
        other.into_inner(),
        Err(Failure::Refused(IdempotencyError::PayloadMismatch))
    );
    let b_op = Op::open();
    let taken = pay(b, "k-fence", "charge", &b_op, "receipt B").await;
    assert!(!taken.replayed());
    assert_eq!(b.stats().takeovers, 1);
    a_op.open_gate();
    // a's caller gets what a ran...
    assert_eq!(
        a_call.await.unwrap().into_inner(),
        Ok("receipt A".to_owned())
    );
    // ... counted as fenced, and b's outcome is what the fleet replays.
    assert_eq!(a.stats().fenced, 1);
    let retry = pay(a, "k-fence", "charge", &Op::open(), "receipt C").await;
    assert!(retry.replayed());
    assert_eq!(retry.into_inner(), Ok("receipt B".to_owned()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_expires_by_its_own_timestamp() {
    let server = RedisServer::start().unwrap();
    let a = instance(&server, "expiry", config());
    let op = Op::open();
    assert!(!pay(a, "k-exp", "charge", &op, "r").await.replayed());
    assert!(pay(a, "k-exp", "charge", &op, "r").await.replayed());
    // Redis still keeps the key (its PEXPIRE is a day away), but the
    // record says it ended.
    let record = the_record(&server).await;
    hset(&server, &record, "x", b"1").await;
    assert!(!pay(a, "k-exp", "another request", &op, "r")
        .await
        .replayed());
    assert_eq!(op.runs(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_redis_refuses_unless_fail_open() {
    let server = RedisServer::start().unwrap();
    let url = server.url();
    server.stop();
    let tier = || tier_at(url.clone(), "down", Duration::from_millis(200));
    let closed: Records = Box::leak(Box::new(Idempotency::new(config()).with_tier(tier())));
    let op = Op::open();
    let answer = pay(closed, "k-down", "charge", &op, "receipt").await;
    assert_eq!(
        answer.into_inner(),
        Err(Failure::Refused(IdempotencyError::Unavailable))
    );
    assert_eq!(op.runs(), 0, "fail closed: nothing ran");
    assert_eq!(closed.stats().unavailable, 1);
    let open: Records = Box::leak(Box::new(
        Idempotency::new(config().fail_open(true)).with_tier(tier()),
    ));
    let answer = pay(open, "k-down", "charge", &op, "receipt").await;
    assert!(!answer.replayed());
    assert_eq!(answer.into_inner(), Ok("receipt".to_owned()));
    assert_eq!(op.runs(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fleet_function_without_a_tier_is_refused() {
    // No tier is installed in this test binary.
    let idem: Records = Box::leak(Box::new(Idempotency::new(config().fleet(true))));
    let op = Op::open();
    let answer = pay(idem, "k-none", "charge", &op, "receipt").await;
    assert_eq!(
        answer.into_inner(),
        Err(Failure::Refused(IdempotencyError::Unavailable))
    );
    assert_eq!(op.runs(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_names_hold_neither_key_nor_scope_text() {
    let server = RedisServer::start().unwrap();
    let a = instance(&server, "names", config());
    let scope = StableDigest::new().add("tenant-acme").finish();
    let answer = a
        .run(
            "order-SECRET-42".idempotency_key(),
            scope,
            fingerprint("charge"),
            refused,
            || async { Ok("receipt".to_owned()) },
        )
        .await;
    assert!(answer.outcome().is_ok());
    let record = the_record(&server).await;
    let digest = record
        .strip_prefix("names:idem:")
        .unwrap_or_else(|| panic!("{record}"));
    assert_eq!(digest.len(), 32);
    assert!(digest.chars().all(|c| c.is_ascii_hexdigit()), "{record}");
    for text in ["SECRET", "order", "acme", "tenant", "pay"] {
        assert!(!record.contains(text), "{record} holds {text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_record_is_unavailable_and_never_runs() {
    let server = RedisServer::start().unwrap();
    let a = instance(&server, "corrupt", config());
    let op = Op::open();
    pay(a, "k-bad", "charge", &op, "receipt").await;
    let record = the_record(&server).await;
    let refused_now = |answer: Idempotent<Result<String, Failure>>| {
        assert!(!answer.replayed());
        assert_eq!(
            answer.into_inner(),
            Err(Failure::Refused(IdempotencyError::Unavailable))
        );
    };
    // An outcome postcard cannot read.
    hset(&server, &record, "o", &[1, 0, 0xff, 0xff, 0xff]).await;
    refused_now(pay(a, "k-bad", "charge", &op, "again").await);
    // An outcome of another format.
    hset(&server, &record, "o", b"junk").await;
    refused_now(pay(a, "k-bad", "charge", &op, "again").await);
    // A state this code never writes.
    hset(&server, &record, "s", b"?").await;
    refused_now(pay(a, "k-bad", "charge", &op, "again").await);
    // Not a hash at all.
    let mut redis = raw(&server).await;
    let _: () = redis::cmd("SET")
        .arg(&record)
        .arg("x")
        .query_async(&mut redis)
        .await
        .unwrap();
    refused_now(pay(a, "k-bad", "charge", &op, "again").await);
    assert_eq!(op.runs(), 1);
    assert_eq!(a.stats().corrupt, 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_heartbeat_keeps_a_long_runs_claim() {
    let server = RedisServer::start().unwrap();
    // A run four leases long: without the heartbeat, b would take it over.
    let lease = Duration::from_millis(300);
    let a = instance(&server, "beat", config().lease(lease));
    let b = instance(
        &server,
        "beat",
        config().lease(lease).wait(Duration::from_millis(1200)),
    );
    let a_op = Op::closed();
    let a_call = {
        let op = a_op.clone();
        tokio::spawn(async move { pay(a, "k-beat", "charge", &op, "receipt A").await })
    };
    until("a runs it", || a_op.runs() == 1).await;
    let b_op = Op::open();
    let answer = pay(b, "k-beat", "charge", &b_op, "receipt B").await;
    assert!(
        matches!(
            answer.outcome(),
            Err(Failure::Refused(IdempotencyError::InProgress { .. }))
        ),
        "{answer:?}"
    );
    assert_eq!(b_op.runs(), 0);
    assert_eq!(b.stats().takeovers, 0);
    a_op.open_gate();
    assert!(!a_call.await.unwrap().replayed());
    let retry = pay(b, "k-beat", "charge", &b_op, "receipt B").await;
    assert_eq!(retry.into_inner(), Ok("receipt A".to_owned()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn durations_past_what_redis_holds_are_a_century() {
    let server = RedisServer::start().unwrap();
    let a = instance(
        &server,
        "max",
        config()
            .ttl(Duration::MAX)
            .wait(Duration::MAX)
            .lease(Duration::MAX),
    );
    let op = Op::open();
    assert!(!pay(a, "k-max", "charge", &op, "r").await.replayed());
    assert!(pay(a, "k-max", "charge", &op, "r").await.replayed());
    assert_eq!(op.runs(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_loser_of_a_claim_race_with_another_request_is_a_mismatch() {
    let server = RedisServer::start().unwrap();
    let a = instance(&server, "race", config());
    let b = instance(&server, "race", config());
    let op = Op::closed();
    let racers: Vec<_> = [(a, "charge 5"), (b, "charge 500")]
        .into_iter()
        .map(|(idem, request)| {
            let op = op.clone();
            tokio::spawn(async move { pay(idem, "k-race", request, &op, request).await })
        })
        .collect();
    until("one claim runs and the other was refused", || {
        op.runs() == 1 && racers.iter().filter(|racer| racer.is_finished()).count() == 1
    })
    .await;
    op.open_gate();
    let mut answers = Vec::new();
    for racer in racers {
        answers.push(racer.await.unwrap().into_inner());
    }
    let mismatches = answers
        .iter()
        .filter(|answer| **answer == Err(Failure::Refused(IdempotencyError::PayloadMismatch)))
        .count();
    assert_eq!(mismatches, 1, "{answers:?}");
    assert_eq!(op.runs(), 1);
}
