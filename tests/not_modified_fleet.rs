//! A refresh its body answered "not modified" (`Previous::not_modified`)
//! tells the fleet cheaply: the copy in Redis has its horizons rewritten
//! in place (no `SET`, the value does not travel again), another instance
//! takes the kept value from Redis without asking the origin, and when
//! Redis holds another value or none the full copy is written instead.
//! Against a `redis-server` of the test's own. Run with `--features redis`.
#![cfg(feature = "redis")]

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use herdcache::cached;
use redis::AsyncCommands;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Quote {
    etag: String,
    cents: u64,
}

/// The origin: its document's version (`ETag` `"v<n>"`, `cents` 100 × n),
/// and each request's `If-None-Match`.
static VERSION: AtomicU64 = AtomicU64::new(1);
static REQUESTS: Mutex<Vec<Option<String>>> = Mutex::new(Vec::new());
static NOT_MODIFIED: AtomicUsize = AtomicUsize::new(0);

fn origin(if_none_match: Option<String>) -> Option<Quote> {
    REQUESTS.lock().unwrap().push(if_none_match.clone());
    let version = VERSION.load(SeqCst);
    let etag = format!("\"v{version}\"");
    if if_none_match.as_deref() == Some(etag.as_str()) {
        NOT_MODIFIED.fetch_add(1, SeqCst);
        return None;
    }
    Some(Quote {
        etag,
        cents: 100 * version,
    })
}

#[cached(ttl = "60s", swr = "1h", distributed = true, key = sku)]
async fn quote(sku: u64) -> Result<Quote, std::io::Error> {
    let _ = sku;
    let previous = herdcache::previous::<Quote>();
    match (
        origin(previous.as_ref().map(|p| p.value().etag.clone())),
        previous,
    ) {
        (Some(fresh), _) => Ok(fresh),
        (None, Some(previous)) => Ok(previous.not_modified()),
        (None, None) => Err(std::io::Error::other("304 without a validator")),
    }
}

/// How many times Redis ran `command` (scripts' commands included).
async fn calls(redis: &mut redis::aio::MultiplexedConnection, command: &str) -> u64 {
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(redis)
        .await
        .unwrap();
    info.lines()
        .find_map(|line| line.strip_prefix(&format!("cmdstat_{command}:calls=")))
        .and_then(|rest| rest.split(',').next())
        .map_or(0, |n| n.parse().unwrap())
}

/// The one value copy in Redis: its name and bytes.
async fn copy(redis: &mut redis::aio::MultiplexedConnection) -> Option<(String, Vec<u8>)> {
    let keys: Vec<String> = redis.keys("nm:*}").await.unwrap();
    assert!(keys.len() <= 1, "{keys:?}");
    let name = keys.into_iter().next()?;
    let bytes: Vec<u8> = redis.get(&name).await.unwrap();
    Some((name, bytes))
}

/// An envelope's `fresh_until` (ms since the epoch) and what follows its
/// horizons (the load's duration, the digest, the tags, the value).
fn split(envelope: &[u8]) -> (u64, &[u8]) {
    assert_eq!(envelope[0], 2, "format 2");
    let fresh_until = u64::from_le_bytes(envelope[1..9].try_into().unwrap());
    (fresh_until, &envelope[25..])
}

/// Waits until the wall clock's millisecond moves past `ms` (so that new
/// horizons differ from old ones), by polling the clock itself.
async fn past(ms: u64) {
    loop {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
        if u64::try_from(now.as_millis()).unwrap() > ms {
            return;
        }
        tokio::task::yield_now().await;
    }
}

#[tokio::test]
async fn not_modified_retimes_the_copy_in_redis_and_the_fleet_keeps_it() {
    let server = herdcache_test_support::RedisServer::start().unwrap();
    herdcache::Runtime::builder()
        .redis(server.url())
        .namespace("nm")
        .timeout(Duration::from_secs(5))
        .install()
        .unwrap();
    let mut redis = redis::Client::open(server.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();

    // The first load writes the copy.
    assert_eq!(quote(7).await.unwrap().cents, 100);
    let (name, first) = copy(&mut redis).await.expect("the copy");
    let (first_fresh, first_rest) = split(&first);
    let sets = calls(&mut redis, "set").await;
    assert_eq!(calls(&mut redis, "setrange").await, 0);

    // A refresh: the origin is asked with the ETag held and says "not
    // modified". Redis gets the new horizons, not the value.
    past(first_fresh.saturating_sub(60_000)).await;
    let kept = quote_refresh(7).await.unwrap();
    assert_eq!(kept.cents, 100);
    assert_eq!(
        *REQUESTS.lock().unwrap(),
        vec![None, Some("\"v1\"".to_string())]
    );
    assert_eq!(quote_cache().stats().not_modified, 1);
    assert_eq!(
        calls(&mut redis, "set").await,
        sets,
        "no SET: the value did not travel"
    );
    assert_eq!(
        calls(&mut redis, "setrange").await,
        1,
        "the horizons, in place"
    );
    let (same_name, retimed) = copy(&mut redis).await.expect("the copy");
    assert_eq!(same_name, name);
    let (retimed_fresh, retimed_rest) = split(&retimed);
    assert!(
        retimed_fresh > first_fresh,
        "{retimed_fresh} > {first_fresh}"
    );
    assert_eq!(
        retimed_rest, first_rest,
        "the digest, tags and value untouched"
    );
    let pttl: i64 = redis.pttl(&name).await.unwrap();
    assert!(
        pttl > 3_600_000,
        "the expiry moved with the horizons: {pttl} ms"
    );

    // Another instance takes the kept value from Redis: no origin call.
    herdcache::testing::isolate(async {
        let entry = quote_entry(7).await.unwrap();
        assert_eq!(entry.value().cents, 100);
        assert_eq!(entry.served(), herdcache::Served::Remote);
        assert!(entry.fresh_for() > Duration::from_secs(50));
    })
    .await;
    assert_eq!(REQUESTS.lock().unwrap().len(), 2);

    // Redis holds another value (another instance loaded version 2, then
    // the origin went back to version 1): "not modified" for version 1 does
    // not retime version 2's copy; the kept value is written whole.
    VERSION.store(2, SeqCst);
    herdcache::testing::isolate(async {
        assert_eq!(quote_refresh(7).await.unwrap().cents, 200);
    })
    .await;
    VERSION.store(1, SeqCst);
    let sets = calls(&mut redis, "set").await;
    assert_eq!(quote_refresh(7).await.unwrap().cents, 100);
    assert_eq!(NOT_MODIFIED.load(SeqCst), 2);
    assert_eq!(calls(&mut redis, "setrange").await, 1, "not retimed");
    assert_eq!(calls(&mut redis, "set").await, sets + 1, "written whole");
    let (_, rewritten) = copy(&mut redis).await.expect("the copy");
    assert_eq!(split(&rewritten).1[4..], first_rest[4..], "version 1 again");

    // No copy at all (expired, evicted): written whole as well.
    let _: () = redis.del(&name).await.unwrap();
    let sets = calls(&mut redis, "set").await;
    assert_eq!(quote_refresh(7).await.unwrap().cents, 100);
    assert_eq!(NOT_MODIFIED.load(SeqCst), 3);
    assert_eq!(calls(&mut redis, "set").await, sets + 1);
    assert!(copy(&mut redis).await.is_some());

    // Behind a deadline the load runs on a task of its own; a caller that
    // led it still says it came from Redis.
    assert_eq!(patient(9).await.unwrap(), 9);
    herdcache::testing::isolate(async {
        let entry = patient_entry(9).await.unwrap();
        assert_eq!(*entry.value(), 9);
        assert_eq!(entry.served(), herdcache::Served::Remote);
    })
    .await;
    assert_eq!(PATIENT_LOADS.load(SeqCst), 1);
}

static PATIENT_LOADS: AtomicUsize = AtomicUsize::new(0);

#[cached(ttl = "60s", fail_safe = "1h", timeout = "5s", distributed = true, key = sku)]
async fn patient(sku: u64) -> Result<u64, std::io::Error> {
    PATIENT_LOADS.fetch_add(1, SeqCst);
    Ok(sku)
}
