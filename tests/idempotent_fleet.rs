//! `#[idempotent]` across a fleet: this test binary runs itself again as
//! children (the `idem_child` test, which does nothing unless
//! `HERDCACHE_IDEM_ROLE` is set), separate OS processes sharing a
//! `redis-server` the parent starts. The operation's runs are counted in
//! Redis, so they add up across processes. Run with `--features redis`.
#![cfg(feature = "redis")]

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use herdcache::{idempotent, IdempotencyError};
use redis::AsyncCommands;

fn url() -> String {
    std::env::var("HERDCACHE_IDEM_URL").expect("set by the parent")
}

async fn redis() -> redis::aio::MultiplexedConnection {
    common::redis_at(&url()).await
}

#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
struct Receipt {
    run: u64,
    pid: u32,
}

#[derive(Debug)]
struct PayError(IdempotencyError);

impl From<IdempotencyError> for PayError {
    fn from(error: IdempotencyError) -> Self {
        PayError(error)
    }
}

impl Clone for PayError {
    fn clone(&self) -> Self {
        PayError(self.0.clone())
    }
}

/// The operation: slow, its runs counted in Redis across processes.
async fn operation(counter: &str, takes: Duration) -> Result<Receipt, PayError> {
    let run: u64 = redis().await.incr(counter, 1).await.unwrap();
    tokio::time::sleep(takes).await;
    Ok(Receipt {
        run,
        pid: std::process::id(),
    })
}

#[idempotent(key = key, scope = customer, name = "fleet.charge")]
async fn charge(key: &str, customer: u64, amount: u64) -> Result<Receipt, PayError> {
    operation("idem:charge-runs", Duration::from_millis(300)).await
}

/// A slow operation, waited for patiently ...
#[idempotent(key = key, name = "fleet.slow", wait = "20s")]
async fn slow(key: &str, amount: u64) -> Result<Receipt, PayError> {
    operation("idem:slow-runs", Duration::from_secs(2)).await
}

/// ... and impatiently: the same records (the same `name`).
#[idempotent(key = key, name = "fleet.slow", wait = "200ms")]
async fn slow_impatient(key: &str, amount: u64) -> Result<Receipt, PayError> {
    operation("idem:slow-runs", Duration::from_secs(2)).await
}

/// Fail closed (the default) and open, for a Redis that is down.
#[idempotent(key = key, name = "fleet.closed")]
async fn closed(key: &str) -> Result<u32, PayError> {
    Ok(std::process::id())
}

#[idempotent(key = key, name = "fleet.open", fail_open = true)]
async fn open(key: &str) -> Result<u32, PayError> {
    Ok(std::process::id())
}

/// A run whose holder may lose its lease: a short one, a long operation.
#[idempotent(key = key, name = "fleet.leased", lease = "1s")]
async fn leased(key: &str) -> Result<Receipt, PayError> {
    let mut redis = redis().await;
    let run: u64 = redis.incr("idem:leased-runs", 1).await.unwrap();
    let _: () = redis
        .set(format!("idem:leased-run-{run}"), 1)
        .await
        .unwrap();
    // The first run outlasts its lease once it is cut off; a taker's is quick.
    let takes = if run == 1 { 5_000 } else { 50 };
    tokio::time::sleep(Duration::from_millis(takes)).await;
    Ok(Receipt {
        run,
        pid: std::process::id(),
    })
}

/// What a child process does, by its role; it prints one `RESULT` line.
#[test]
fn idem_child() {
    let Ok(role) = std::env::var("HERDCACHE_IDEM_ROLE") else {
        return;
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let tier_url = std::env::var("HERDCACHE_IDEM_TIER_URL").unwrap_or_else(|_| url());
        herdcache::Runtime::builder()
            .redis(tier_url)
            .namespace("idem")
            .timeout(Duration::from_millis(500))
            .install()
            .unwrap();
        match role.as_str() {
            // 50 concurrent duplicates, once every child is ready.
            "duplicates" => {
                let mut redis = redis().await;
                let _: u64 = redis.incr("idem:ready", 1).await.unwrap();
                common::wait_for_key(&mut redis, "idem:go").await;
                let calls: Vec<_> = (0..50)
                    .map(|_| tokio::spawn(charge_idempotent("order-1", 7, 500)))
                    .collect();
                let (mut ran, mut receipts) = (0, std::collections::BTreeSet::new());
                for call in calls {
                    let outcome = call.await.unwrap();
                    ran += u32::from(!outcome.replayed());
                    let receipt = outcome.into_inner().expect("every duplicate gets the outcome");
                    receipts.insert((receipt.run, receipt.pid));
                }
                let (run, pid) = receipts.iter().next().copied().unwrap();
                println!(
                    "RESULT ran={ran} receipts={} run={run} pid={pid}",
                    receipts.len()
                );
            }
            // Starts the slow operation, and reports its receipt.
            "holder" => {
                let receipt = slow("slow-1", 5).await.unwrap();
                println!("RESULT run={} pid={}", receipt.run, receipt.pid);
            }
            // Arrives while the holder runs: InProgress after `wait`; then,
            // once it finished, its outcome, replayed.
            "waiter" => {
                let mut redis = redis().await;
                common::wait_for_key(&mut redis, "idem:slow-runs").await;
                let started = Instant::now();
                let early = slow_impatient_idempotent("slow-1", 5).await;
                let waited = started.elapsed().as_millis();
                let retry_after = match early.into_inner() {
                    Err(PayError(IdempotencyError::InProgress { retry_after })) => {
                        retry_after.as_millis()
                    }
                    other => panic!("expected InProgress, got {other:?}"),
                };
                let later = slow_idempotent("slow-1", 5).await;
                let replayed = later.replayed();
                let receipt = later.into_inner().unwrap();
                println!(
                    "RESULT waited_ms={waited} retry_after_ms={retry_after} replayed={} run={} pid={}",
                    u8::from(replayed),
                    receipt.run,
                    receipt.pid
                );
            }
            // Redis down: fail closed runs nothing; fail open runs.
            "down" => {
                let closed = closed("d-1").await;
                let refused = matches!(closed, Err(PayError(IdempotencyError::Unavailable)));
                let opened = open("d-1").await.is_ok();
                println!("RESULT refused={} ran_open={}", u8::from(refused), u8::from(opened));
            }
            // Runs the long operation through a proxy the parent cuts: its
            // lease runs out, another process takes over, and its
            // completion must not overwrite the taker's outcome.
            "stalled" => {
                let receipt = leased("lease-1").await.unwrap();
                let stats = herdcache::idempotency_stats();
                println!("RESULT run={} fenced={}", receipt.run, stats.fenced);
            }
            "taker" | "reader" => {
                let outcome = leased_idempotent("lease-1").await;
                let replayed = outcome.replayed();
                let receipt = outcome.into_inner().unwrap();
                println!(
                    "RESULT run={} pid={} replayed={}",
                    receipt.run,
                    receipt.pid,
                    u8::from(replayed)
                );
            }
            other => panic!("unknown role {other}"),
        }
    });
}

fn child_command(role: &str, url: &str) -> Command {
    let mut command = Command::new(std::env::current_exe().unwrap());
    command
        .args([
            "--exact",
            "idem_child",
            "--nocapture",
            "--test-threads",
            "1",
        ])
        .env("HERDCACHE_IDEM_ROLE", role)
        .env("HERDCACHE_IDEM_URL", url)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_run_an_operation_once_and_share_its_outcome() {
    let server = herdcache_test_support::RedisServer::start().unwrap();
    let mut redis = common::redis_at(&server.url()).await;

    // 2 processes × 50 concurrent duplicates: one run, one outcome.
    let children: Vec<_> = (0..2)
        .map(|_| child_command("duplicates", &server.url()).spawn().unwrap())
        .collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    while redis.get::<_, Option<u64>>("idem:ready").await.unwrap() != Some(2) {
        assert!(Instant::now() < deadline, "the children never got ready");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let _: () = redis.set("idem:go", 1).await.unwrap();
    let results: Vec<String> = children
        .into_iter()
        .map(|child| common::child_result(child.wait_with_output().unwrap()))
        .collect();
    let runs: u64 = redis.get("idem:charge-runs").await.unwrap();
    assert_eq!(runs, 1, "{results:?}");
    assert_eq!(
        results
            .iter()
            .map(|r| common::result_field(r, "ran"))
            .sum::<u64>(),
        1,
        "{results:?}"
    );
    for result in &results {
        assert_eq!(common::result_field(result, "receipts"), 1, "{result}");
    }
    assert_eq!(
        common::result_field(&results[0], "pid"),
        common::result_field(&results[1], "pid")
    );
    assert_eq!(
        common::result_field(&results[0], "run"),
        common::result_field(&results[1], "run")
    );
    // No key or scope text in Redis's key names.
    let keys: Vec<String> = redis.keys("*").await.unwrap();
    assert!(keys.iter().all(|key| !key.contains("order-1")), "{keys:?}");

    // A duplicate in another process while the first runs: InProgress
    // after its `wait`, then the outcome once it finished.
    let holder = child_command("holder", &server.url()).spawn().unwrap();
    let waiter = child_command("waiter", &server.url()).spawn().unwrap();
    let holder = common::child_result(holder.wait_with_output().unwrap());
    let waiter = common::child_result(waiter.wait_with_output().unwrap());
    assert!(
        common::result_field(&waiter, "waited_ms") >= 150,
        "{waiter}"
    );
    assert!(
        common::result_field(&waiter, "retry_after_ms") > 0,
        "{waiter}"
    );
    assert_eq!(common::result_field(&waiter, "replayed"), 1, "{waiter}");
    assert_eq!(
        common::result_field(&waiter, "run"),
        common::result_field(&holder, "run")
    );
    assert_eq!(
        common::result_field(&waiter, "pid"),
        common::result_field(&holder, "pid")
    );
    let runs: u64 = redis.get("idem:slow-runs").await.unwrap();
    assert_eq!(runs, 1);

    // Redis down (nothing listens on the tier's port): fail closed refuses
    // and runs nothing; `fail_open` runs.
    let down = herdcache_test_support::RedisServer::start().unwrap();
    let down_url = down.url();
    down.stop();
    let child = child_command("down", &server.url())
        .env("HERDCACHE_IDEM_TIER_URL", down_url)
        .spawn()
        .unwrap();
    let down = common::child_result(child.wait_with_output().unwrap());
    assert_eq!(common::result_field(&down, "refused"), 1, "{down}");
    assert_eq!(common::result_field(&down, "ran_open"), 1, "{down}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_holder_whose_lease_ran_out_cannot_overwrite_the_new_holders_outcome() {
    let server = herdcache_test_support::RedisServer::start().unwrap();
    let proxy = herdcache_test_support::FaultProxy::start(server.port()).unwrap();
    let mut redis = common::redis_at(&server.url()).await;
    let stalled = child_command("stalled", &server.url())
        .env("HERDCACHE_IDEM_TIER_URL", proxy.url())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while redis
        .get::<_, Option<u8>>("idem:leased-run-1")
        .await
        .unwrap()
        .is_none()
    {
        assert!(Instant::now() < deadline, "the first run never started");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // Cut off: its heartbeat cannot reach Redis, and the 1 s lease ends.
    proxy.cut();
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let taker = common::child_result(
        child_command("taker", &server.url())
            .spawn()
            .unwrap()
            .wait_with_output()
            .unwrap(),
    );
    assert_eq!(
        common::result_field(&taker, "run"),
        2,
        "the next duplicate took over: {taker}"
    );
    proxy.heal();
    // The stalled holder finishes; its completion is fenced off.
    let stalled = common::child_result(stalled.wait_with_output().unwrap());
    assert_eq!(common::result_field(&stalled, "run"), 1, "{stalled}");
    assert_eq!(common::result_field(&stalled, "fenced"), 1, "{stalled}");
    // Every later duplicate replays the taker's outcome.
    let reader = common::child_result(
        child_command("reader", &server.url())
            .spawn()
            .unwrap()
            .wait_with_output()
            .unwrap(),
    );
    assert_eq!(common::result_field(&reader, "replayed"), 1, "{reader}");
    assert_eq!(common::result_field(&reader, "run"), 2, "{reader}");
    assert_eq!(
        common::result_field(&reader, "pid"),
        common::result_field(&taker, "pid"),
        "{reader}"
    );
}
