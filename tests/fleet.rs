//! Instances as separate OS processes: this test binary runs itself again
//! as children (the `fleet_child` test, which does nothing unless
//! `HERDCACHE_FLEET_ROLE` is set), each with its own memory and its own
//! Redis connection, against a `redis-server` the parent starts. The
//! origin's calls are counted in Redis, so they add up across processes.
//! One test drives every scenario in turn: the runtime it installs is
//! process-wide.
//! Run with `--features redis`.
#![cfg(feature = "redis")]

mod common;

use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::time::{Duration, Instant};

use herdcache::cached;
use redis::AsyncCommands;

static LOCAL_LOADS: AtomicUsize = AtomicUsize::new(0);

fn url() -> String {
    std::env::var("HERDCACHE_FLEET_URL").expect("set by the parent")
}

async fn redis() -> redis::aio::MultiplexedConnection {
    common::redis_at(&url()).await
}

/// The origin: slow, and counted in Redis across every process.
async fn origin(sku: u64) -> String {
    LOCAL_LOADS.fetch_add(1, SeqCst);
    let calls: u64 = redis().await.incr("fleet:origin-calls", 1).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    format!("price of {sku} #{calls}")
}

#[cached(ttl = "1h", distributed = true)]
async fn price(sku: u64) -> String {
    origin(sku).await
}

#[cached(ttl = "1h", distributed = true, tags = ["fleet:sku:{sku}"])]
async fn stock(sku: u64) -> String {
    origin(sku).await
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// What a child process does, by its role; it prints `RESULT <...>` lines.
#[test]
fn fleet_child() {
    let Ok(role) = std::env::var("HERDCACHE_FLEET_ROLE") else {
        return;
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        // The reader is configured by the environment alone
        // (HERDCACHE_REDIS_URL, HERDCACHE_NAMESPACE), the others in code.
        if role != "reader" {
            // The dropper connects as an ACL user the parent can lock out.
            let url = std::env::var("HERDCACHE_FLEET_CHILD_URL").unwrap_or_else(|_| url());
            herdcache::Runtime::builder()
                .redis(url)
                .namespace("fleet")
                .timeout(Duration::from_secs(5))
                .install()
                .unwrap();
        }
        let mut redis = redis().await;
        match role.as_str() {
            // 200 concurrent callers on one cold key, once every child is ready.
            "stampede" => {
                let _: u64 = redis.incr("fleet:ready", 1).await.unwrap();
                common::wait_for_key(&mut redis, "fleet:go").await;
                let callers: Vec<_> = (0..200).map(|_| tokio::spawn(price(1))).collect();
                let mut answers = std::collections::BTreeSet::new();
                for caller in callers {
                    answers.insert(caller.await.unwrap());
                }
                println!("RESULT answers={}", answers.len());
            }
            // One call: was the loader run here?
            "reader" => {
                let value = price(1).await;
                println!(
                    "RESULT value={value} local_loads={}",
                    LOCAL_LOADS.load(SeqCst)
                );
            }
            // Holds a key and a tagged key in memory, then reports how long
            // after the parent's invalidations they were gone.
            "watcher" => {
                price(2).await;
                stock(3).await;
                assert_eq!(price_cache().len() + stock_cache().len(), 2);
                let _: () = redis.set("fleet:watching", 1).await.unwrap();
                let mut report = Vec::new();
                for what in ["key", "tag"] {
                    // Served from memory, a call answers at once; once the
                    // invalidation arrived it loads (300 ms) instead.
                    let deadline = Instant::now() + Duration::from_secs(10);
                    while Instant::now() < deadline {
                        let call = async {
                            match what {
                                "key" => price(2).await,
                                _ => stock(3).await,
                            }
                        };
                        if tokio::time::timeout(Duration::from_millis(20), call)
                            .await
                            .is_err()
                        {
                            break;
                        }
                        tokio::time::sleep(Duration::from_millis(1)).await;
                    }
                    let gone_at = now_ms().saturating_sub(20);
                    let sent_at: u64 = redis
                        .get(format!("fleet:{what}-invalidated-at"))
                        .await
                        .unwrap_or(u64::MAX);
                    report.push(format!("{what}_ms={}", gone_at.saturating_sub(sent_at)));
                }
                println!("RESULT {}", report.join(" "));
            }
            // Holds a key and a tagged key in memory while its Redis links
            // are cut; the parent invalidates both meanwhile (the messages
            // are lost to it), then lets it reconnect.
            "dropper" => {
                let old_price = price(5).await;
                let old_stock = stock(6).await;
                let _: () = redis.set("fleet:dropper-ready", 1).await.unwrap();
                // Cut off: the invalidations never reached this process.
                common::wait_for_key(&mut redis, "fleet:invalidated-while-cut").await;
                let stale_while_cut = price(5).await == old_price && stock(6).await == old_stock;
                // Linked again: nothing from before the cut is served.
                common::wait_for_key(&mut redis, "fleet:relinked").await;
                tokio::time::sleep(Duration::from_millis(200)).await;
                let price_kept = price(5).await == old_price;
                let stock_kept = stock(6).await == old_stock;
                println!(
                    "RESULT stale_while_cut={} price_kept={} stock_kept={}",
                    u8::from(stale_while_cut),
                    u8::from(price_kept),
                    u8::from(stock_kept)
                );
            }
            other => panic!("unknown role {other}"),
        }
    });
}

/// This test binary again, as a child of `role`.
fn child_command(role: &str, server: &herdcache_test_support::RedisServer) -> Command {
    let mut command = Command::new(std::env::current_exe().unwrap());
    command
        .args([
            "--exact",
            "fleet_child",
            "--nocapture",
            "--test-threads",
            "1",
        ])
        .env("HERDCACHE_FLEET_ROLE", role)
        .env("HERDCACHE_FLEET_URL", server.url())
        .env("HERDCACHE_REDIS_URL", server.url())
        .env("HERDCACHE_NAMESPACE", "fleet")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

fn child(role: &str, server: &herdcache_test_support::RedisServer) -> std::process::Child {
    child_command(role, server).spawn().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn processes_share_values_loads_and_invalidations() {
    let server = herdcache_test_support::RedisServer::start().unwrap();
    std::env::set_var("HERDCACHE_FLEET_URL", server.url());
    let mut redis = redis().await;

    // 2 processes × 200 callers on one cold key: one origin call.
    let stampeders = [child("stampede", &server), child("stampede", &server)];
    while redis.get::<_, Option<u64>>("fleet:ready").await.unwrap() != Some(2) {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let _: () = redis.set("fleet:go", 1).await.unwrap();
    for stampeder in stampeders {
        assert_eq!(
            common::result_field(
                &common::child_result(stampeder.wait_with_output().unwrap()),
                "answers"
            ),
            1
        );
    }
    let calls: u64 = redis.get("fleet:origin-calls").await.unwrap();
    assert_eq!(calls, 1, "one origin call for 2 processes × 200 callers");

    // A process that never loaded it, configured by its environment, is
    // served without its loader.
    let reader = common::child_result(child("reader", &server).wait_with_output().unwrap());
    assert_eq!(common::result_field(&reader, "local_loads"), 0, "{reader}");

    // This process invalidates a key and a tag; the other's memory drops
    // them within 100 ms.
    herdcache::Runtime::builder()
        .redis(server.url())
        .namespace("fleet")
        .timeout(Duration::from_secs(5))
        .install()
        .unwrap();
    let watcher = child("watcher", &server);
    common::wait_for_key(&mut redis, "fleet:watching").await;
    let _: () = redis
        .set("fleet:key-invalidated-at", now_ms())
        .await
        .unwrap();
    price_invalidate(2).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let _: () = redis
        .set("fleet:tag-invalidated-at", now_ms())
        .await
        .unwrap();
    herdcache::invalidate_tag("fleet:sku:3").await;
    let report = common::child_result(watcher.wait_with_output().unwrap());
    println!("invalidation seen by the other process after: {report}");
    assert!(common::result_field(&report, "key_ms") < 100, "{report}");
    assert!(common::result_field(&report, "tag_ms") < 100, "{report}");

    a_process_whose_bus_dropped_serves_nothing_invalidated_meanwhile(&server).await;
}

/// The Redis clients of ACL user `user`, one per line (`CLIENT LIST`
/// filtered here: Redis 7.0 has no `USER` filter).
async fn clients_of(redis: &mut redis::aio::MultiplexedConnection, user: &str) -> String {
    let all: String = redis::cmd("CLIENT")
        .arg("LIST")
        .query_async(redis)
        .await
        .unwrap();
    let mine = format!(" user={user} ");
    all.lines()
        .filter(|line| line.contains(&mine))
        .collect::<Vec<_>>()
        .join("\n")
}

async fn acl(redis: &mut redis::aio::MultiplexedConnection, args: &[&str]) {
    let _: () = redis::cmd("ACL")
        .arg("SETUSER")
        .arg(args)
        .query_async(redis)
        .await
        .unwrap();
}

/// A process whose bus dropped serves nothing invalidated meanwhile, once
/// it is linked again. (Part of the one fleet test: the runtime this
/// process installs is process-wide.)
async fn a_process_whose_bus_dropped_serves_nothing_invalidated_meanwhile(
    server: &herdcache_test_support::RedisServer,
) {
    let mut redis = redis().await;
    acl(
        &mut redis,
        &["child", "on", ">child-secret", "~*", "&*", "+@all"],
    )
    .await;
    let dropper = child_command("dropper", server)
        .env(
            "HERDCACHE_FLEET_CHILD_URL",
            format!("redis://child:child-secret@127.0.0.1:{}", server.port()),
        )
        .spawn()
        .unwrap();
    common::wait_for_key(&mut redis, "fleet:dropper-ready").await;
    // Cut the child off: its user disabled, its connections (the bus
    // included) killed.
    assert!(
        clients_of(&mut redis, "child").await.contains("sub=1"),
        "the child listens"
    );
    acl(&mut redis, &["child", "off"]).await;
    let _: u64 = redis::cmd("CLIENT")
        .arg(&["KILL", "USER", "child"][..])
        .query_async(&mut redis)
        .await
        .unwrap();
    assert_eq!(clients_of(&mut redis, "child").await.trim(), "", "cut off");
    // Invalidate both while it cannot hear; give a message time to arrive.
    price_invalidate(5).await;
    herdcache::invalidate_tag("fleet:sku:6").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let _: () = redis.set("fleet:invalidated-while-cut", 1).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Let it back in, and tell it once its bus listens again.
    acl(&mut redis, &["child", "on"]).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while !clients_of(&mut redis, "child").await.contains("sub=1") {
        assert!(Instant::now() < deadline, "the child's bus never came back");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let _: () = redis.set("fleet:relinked", 1).await.unwrap();
    let report = common::child_result(dropper.wait_with_output().unwrap());
    assert_eq!(
        common::result_field(&report, "stale_while_cut"),
        1,
        "the messages were lost: {report}"
    );
    assert_eq!(common::result_field(&report, "price_kept"), 0, "{report}");
    assert_eq!(common::result_field(&report, "stock_kept"), 0, "{report}");
}
