//! The fleet keeps its word under faults: an invalidation acknowledged while
//! its instance is cut off from Redis (a partition, a blackhole, a Redis
//! restart) is kept and replayed, so that after the heal every instance,
//! old or new, serves the new value. Instance A talks to Redis through a
//! fault-injecting proxy; B and C directly. Run with `--features redis`.
#![cfg(feature = "redis")]

use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::sync::Arc;
use std::time::Duration;

use herdcache_runtime::{CacheConfig, Clock, Codec, FnCache, ManualClock, RedisTier, Runtime};
use herdcache_test_support::{FaultProxy, RedisServer};

mod common;
use common::*;

/// A tier; through a proxy, calls time out fast (the faults make them fail).
fn tier(url: String, namespace: &str, timeout: Duration) -> Arc<RedisTier> {
    Runtime::builder()
        .redis(url)
        .namespace(namespace)
        .timeout(timeout)
        .build()
        .unwrap()
}

/// How long a call through the proxy may take: short, so that a cut or a
/// blackhole fails it quickly.
const THROUGH_PROXY: Duration = Duration::from_millis(250);
/// Direct calls: generous, a loaded machine must not time them out.
const DIRECT: Duration = Duration::from_secs(5);

/// One instance: its own cache, tier and bus.
fn instance(
    name: &str,
    tier: Arc<RedisTier>,
    clock: &Arc<ManualClock>,
) -> &'static FnCache<u64, String> {
    let cache = FnCache::new(
        CacheConfig::new(name, TTL)
            .fail_safe(Duration::from_secs(3600))
            .distributed()
            .clock(Clock::Manual(clock.clone())),
    )
    .with_redis(tier, Codec::of(1));
    let cache: &'static FnCache<u64, String> = Box::leak(Box::new(cache));
    cache.listen_bus();
    cache
}

/// An origin whose value is `v<version>`.
fn origin(version: &Arc<AtomicU64>) -> Origin {
    let version = Arc::clone(version);
    Origin::new(move |_| Ok(format!("v{}", version.load(SeqCst))))
}

/// A fleet of A (through `proxy`) and B, both serving key 8 = v1, and the
/// origin's version.
struct Fleet {
    server: RedisServer,
    proxy: FaultProxy,
    a: &'static FnCache<u64, String>,
    a_tier: Arc<RedisTier>,
    b: &'static FnCache<u64, String>,
    b_tier: Arc<RedisTier>,
    version: Arc<AtomicU64>,
    origin: Origin,
    clock: Arc<ManualClock>,
    name: String,
}

impl Fleet {
    async fn start(
        name: &str,
        configure: impl FnOnce(RedisServer) -> (RedisServer, Arc<RedisTier>, FaultProxy),
    ) -> Fleet {
        let (server, a_tier, proxy) = configure(RedisServer::start().unwrap());
        let clock = ManualClock::new();
        let b_tier = tier(server.url(), name, DIRECT);
        let a = instance(name, a_tier.clone(), &clock);
        let b = instance(name, b_tier.clone(), &clock);
        wait_until("both hear the bus", || {
            a_tier.bus_connected() && b_tier.bus_connected()
        })
        .await;
        let version = Arc::new(AtomicU64::new(1));
        let origin = origin(&version);
        let fleet = Fleet {
            server,
            proxy,
            a,
            a_tier,
            b,
            b_tier,
            version,
            origin,
            clock,
            name: name.to_owned(),
        };
        assert_eq!(fleet.call(fleet.a, 8).await, "v1");
        assert_eq!(fleet.call(fleet.b, 8).await, "v1");
        assert_eq!(fleet.origin.loads(), 1, "B read A's value from Redis");
        fleet
    }

    async fn default(name: &str) -> Fleet {
        Fleet::start(name, |server| {
            let proxy = FaultProxy::start(server.port()).unwrap();
            let a_tier = tier(proxy.url(), name, THROUGH_PROXY);
            (server, a_tier, proxy)
        })
        .await
    }

    async fn call(&self, cache: &'static FnCache<u64, String>, key: u64) -> String {
        call(cache, key, &self.origin, hooks()).await.unwrap()
    }

    /// A new instance, straight to Redis: what Redis serves now.
    fn newcomer(&self) -> &'static FnCache<u64, String> {
        instance(
            &self.name,
            tier(self.server.url(), &self.name, DIRECT),
            &self.clock,
        )
    }

    /// After the heal: A's kept operations reach Redis.
    async fn flushed(&self) {
        assert_eq!(
            finishes("the replay", self.a_tier.flush(Duration::from_secs(30))).await,
            0,
            "every kept invalidation reached Redis"
        );
        assert_eq!(self.a.stats().fleet_pending, 0);
    }

    /// B and a new instance C serve `v2`, and so does A.
    async fn everyone_serves_v2(&self, key: u64) {
        wait_until("B heard the replayed message", || {
            self.b.get_fresh(&key).as_deref() != Some("v1")
        })
        .await;
        let c = self.newcomer();
        assert_eq!(
            self.call(c, key).await,
            "v2",
            "a new instance is not served v1 from Redis"
        );
        assert_eq!(self.call(self.b, key).await, "v2", "B");
        assert_eq!(self.call(self.a, key).await, "v2", "A");
    }
}

async fn finishes<F: std::future::Future>(what: &str, future: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(60), future)
        .await
        .unwrap_or_else(|_| panic!("{what} hung"))
}

/// The operator's scenario: A is cut off, invalidates key 8 (it returns),
/// the proxy heals; B and a new instance C then serve v2, not v1.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_loses_no_key_invalidation() {
    let fleet = Fleet::default("partition-key").await;
    fleet.version.store(2, SeqCst);
    fleet.proxy.cut();
    finishes("the invalidation", fleet.a.invalidate(&8)).await;
    assert_eq!(fleet.a.stats().fleet_pending, 1, "kept for replay");
    assert!(fleet.a.stats().l2_errors >= 1, "and counted");
    // A's own next call is right while cut off: the Redis copy is not used.
    assert_eq!(fleet.call(fleet.a, 8).await, "v2");
    // Coalesced: ten more invalidations of the key are still one.
    for _ in 0..10 {
        fleet.a.invalidate(&8).await;
    }
    assert_eq!(fleet.a.stats().fleet_pending, 1);
    // Meanwhile Redis still holds v1: a newcomer would get it (the bound:
    // until the partition heals).
    fleet.proxy.heal();
    fleet.flushed().await;
    fleet.everyone_serves_v2(8).await;
}

/// The control: with the replay switched off (as before it existed), the
/// same scenario serves v1 from Redis after the heal. It proves the test
/// above tests something.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_replay_the_same_partition_re_grants_the_old_value() {
    let fleet = Fleet::default("partition-off").await;
    fleet.a_tier.replay_switch(false);
    fleet.version.store(2, SeqCst);
    fleet.proxy.cut();
    fleet.a.invalidate(&8).await;
    assert_eq!(fleet.a.stats().fleet_pending, 0, "nothing kept");
    fleet.proxy.heal();
    let c = fleet.newcomer();
    assert_eq!(fleet.call(c, 8).await, "v1", "the lost invalidation");
    assert_eq!(fleet.call(fleet.b, 8).await, "v1");
}

/// `invalidate_all` while cut off: kept, A distrusts the function's Redis
/// copies meanwhile, and after the heal B and a newcomer serve v2.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_loses_no_invalidate_all() {
    let fleet = Fleet::default("partition-all").await;
    assert_eq!(fleet.call(fleet.a, 9).await, "v1");
    assert_eq!(fleet.call(fleet.b, 9).await, "v1");
    fleet.version.store(2, SeqCst);
    fleet.proxy.cut();
    finishes("invalidate_all", fleet.a.invalidate_all()).await;
    assert_eq!(fleet.a.stats().fleet_pending, 1);
    assert_eq!(fleet.call(fleet.a, 8).await, "v2");
    assert_eq!(fleet.call(fleet.a, 9).await, "v2");
    fleet.proxy.heal();
    fleet.flushed().await;
    fleet.everyone_serves_v2(8).await;
    fleet.everyone_serves_v2(9).await;
}

/// A blackholed connection (calls time out, nothing is refused): the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blackhole_loses_no_invalidation() {
    let fleet = Fleet::default("blackhole").await;
    fleet.version.store(2, SeqCst);
    fleet.proxy.blackhole();
    let started = std::time::Instant::now();
    finishes("the invalidation", fleet.a.invalidate(&8)).await;
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "bounded by the tier's timeout"
    );
    assert_eq!(fleet.a.stats().fleet_pending, 1);
    assert_eq!(fleet.call(fleet.a, 8).await, "v2");
    fleet.proxy.heal();
    fleet.flushed().await;
    fleet.everyone_serves_v2(8).await;
}

/// Redis restarts without persistence while A's invalidation is pending:
/// the replay reaches the new, empty server, and nobody serves v1.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_restart_without_persistence_while_invalidations_are_pending() {
    let fleet = Fleet::default("restart").await;
    fleet.version.store(2, SeqCst);
    fleet.proxy.cut();
    fleet.a.invalidate(&8).await;
    assert_eq!(fleet.a.stats().fleet_pending, 1);
    let port = fleet.server.port();
    fleet.server.stop();
    let restarted = RedisServer::start_on(port).unwrap();
    fleet.proxy.heal();
    fleet.flushed().await;
    // B's bus reconnected (its memory dropped), and Redis is empty.
    wait_until("B hears the bus again", || fleet.b_tier.bus_connected()).await;
    fleet.everyone_serves_v2(8).await;
    drop(restarted);
}

/// More pending invalidations than the tier keeps: they become one that
/// ends every copy in the namespace, and none is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overflowing_the_pending_set_loses_nothing() {
    let fleet = Fleet::start("overflow", |server| {
        let proxy = FaultProxy::start(server.port()).unwrap();
        let a_tier = Runtime::builder()
            .redis(proxy.url())
            .namespace("overflow")
            .timeout(THROUGH_PROXY)
            .pending_limit(3)
            .build()
            .unwrap();
        (server, a_tier, proxy)
    })
    .await;
    for key in 1..=5 {
        assert_eq!(fleet.call(fleet.a, key).await, "v1");
        assert_eq!(fleet.call(fleet.b, key).await, "v1");
    }
    fleet.version.store(2, SeqCst);
    fleet.proxy.cut();
    for key in 1..=5 {
        fleet.a.invalidate(&key).await;
    }
    assert_eq!(
        fleet.a.stats().fleet_pending,
        1,
        "one operation: everything"
    );
    for key in 1..=5 {
        assert_eq!(
            fleet.call(fleet.a, key).await,
            "v2",
            "A distrusts every copy"
        );
    }
    fleet.proxy.heal();
    fleet.flushed().await;
    for key in 1..=5 {
        fleet.everyone_serves_v2(key).await;
    }
}

/// A tag invalidated while the process's tier is cut off: the tag's bump
/// is kept, and after the heal a new instance is not served the old value.
/// (The tier is the process's, installed: this is the only test of this
/// binary that installs one.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_loses_no_tag_invalidation() {
    let server = RedisServer::start().unwrap();
    let proxy = FaultProxy::start(server.port()).unwrap();
    let a_tier = tier(proxy.url(), "partition-tag", THROUGH_PROXY);
    Runtime::install(a_tier.clone()).unwrap();
    let clock = ManualClock::new();
    let a = instance("partition-tag", a_tier.clone(), &clock);
    let version = Arc::new(AtomicU64::new(1));
    let origin = origin(&version);
    let tagged = || {
        let mut tags = herdcache_runtime::Tags::new();
        tags.push("user:8");
        hooks().tags(tags)
    };
    assert_eq!(call(a, 8, &origin, tagged()).await.unwrap(), "v1");
    version.store(2, SeqCst);
    proxy.cut();
    finishes(
        "the tag invalidation",
        herdcache_runtime::invalidate_tag("user:8"),
    )
    .await;
    assert_eq!(a.stats().fleet_pending, 1, "kept for replay");
    assert_eq!(a.stats().fleet_failures, 1, "and counted");
    assert_eq!(
        call(a, 8, &origin, tagged()).await.unwrap(),
        "v2",
        "A is right meanwhile"
    );
    proxy.heal();
    assert_eq!(
        finishes("the replay", a_tier.flush(Duration::from_secs(30))).await,
        0
    );
    let c = instance(
        "partition-tag",
        tier(server.url(), "partition-tag", DIRECT),
        &clock,
    );
    assert_eq!(
        call(c, 8, &origin, tagged()).await.unwrap(),
        "v2",
        "the copy A's load wrote before carries the old tag version"
    );
}

/// Redis answers again after the breaker opened: when it turns half-open,
/// 100 concurrent misses send one probe, not 100 (the others work from
/// their body). Redis is held busy while they arrive (`DEBUG SLEEP`), so
/// every call that was let through is counted by it afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_half_open_breaker_admits_one_probe_among_a_hundred_misses() {
    let server = RedisServer::start_with(&["--enable-debug-command", "yes"]).unwrap();
    let open_for = Duration::from_millis(300);
    let tier = Runtime::builder()
        .redis(server.url())
        .namespace("probe")
        .timeout(Duration::from_millis(100))
        .breaker(1, open_for)
        .build()
        .unwrap();
    let clock = ManualClock::new();
    let cache = instance("probe", tier.clone(), &clock);
    let version = Arc::new(AtomicU64::new(1));
    let origin = origin(&version);
    // A first load: the epochs are known, the connections made.
    call(cache, 0, &origin, hooks()).await.unwrap();
    let mut raw = redis::Client::open(server.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let processed = |info: String| -> u64 {
        info.lines()
            .find_map(|line| line.strip_prefix("total_commands_processed:"))
            .and_then(|count| count.trim().parse().ok())
            .unwrap()
    };
    // Redis stalls: one timeout opens the breaker.
    let staller = raw.clone();
    let stall = |seconds: f64| {
        let mut raw = staller.clone();
        tokio::spawn(async move {
            let _: redis::RedisResult<()> = redis::cmd("DEBUG")
                .arg("SLEEP")
                .arg(seconds)
                .query_async(&mut raw)
                .await;
        })
    };
    let stalled = stall(0.3);
    tokio::time::sleep(Duration::from_millis(50)).await;
    call(cache, 1, &origin, hooks()).await.unwrap();
    assert!(tier.breaker_open(), "opened by the timeout");
    stalled.await.unwrap();
    tokio::time::sleep(open_for + Duration::from_millis(50)).await;
    let before: String = redis::cmd("INFO")
        .arg("stats")
        .query_async(&mut raw)
        .await
        .unwrap();
    // Half-open now. Redis is busy for a moment while 100 misses arrive:
    // what they send is processed after it, and counted.
    let stalled = stall(0.3);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let misses: Vec<_> = (100..200u64)
        .map(|key| {
            let origin = origin.clone();
            tokio::spawn(async move { call(cache, key, &origin, hooks()).await })
        })
        .collect();
    for miss in misses {
        assert!(miss.await.unwrap().is_ok(), "no caller fails");
    }
    stalled.await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let after: String = redis::cmd("INFO")
        .arg("stats")
        .query_async(&mut raw)
        .await
        .unwrap();
    // The probe's read (value and version in one pipeline, its tag's
    // version), the DEBUG SLEEP and the INFO itself: a handful, not 100s.
    let sent = processed(after) - processed(before);
    assert!(
        sent <= 8,
        "one probe went through, not one per miss: {sent} commands"
    );
    drop(server);
}

/// A load in flight across a Redis restart (without persistence) writes
/// back a copy of the old value into the new, empty server, after an
/// invalidation the old server acknowledged and the restart forgot. The
/// copy carries the key's version from the old server; the new server's
/// starts from the clock, not from 0 again, so the copy never matches.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_back_across_a_redis_restart_does_not_bring_back_an_invalidated_value() {
    let server = RedisServer::start().unwrap();
    let port = server.port();
    let clock = ManualClock::new();
    let a = instance(
        "restart-aba",
        tier(server.url(), "restart-aba", DIRECT),
        &clock,
    );
    // B does not hear the bus: its load in flight is not told of A's
    // invalidation (as when the message is late).
    let b_tier = tier(server.url(), "restart-aba", DIRECT);
    let b: &'static FnCache<u64, String> = Box::leak(Box::new(
        FnCache::new(
            CacheConfig::new("restart-aba", TTL)
                .distributed()
                .clock(Clock::Manual(clock.clone())),
        )
        .with_redis(b_tier, Codec::of(1)),
    ));
    let mut slow = Origin::new(|n| Ok(if n == 0 { "v1" } else { "v2" }.to_owned()));
    slow.gate = Gate::closed();
    // B's load of key 8 reads the key's version, then waits at the origin.
    let loading = {
        let slow = slow.clone();
        tokio::spawn(async move { call(b, 8, &slow, hooks()).await })
    };
    wait_until("B is loading", || slow.loads() == 1).await;
    // The origin changes; A invalidates (the old server bumps the version).
    a.invalidate(&8).await;
    assert_eq!(a.stats().fleet_pending, 0, "the old server took it");
    // Redis restarts empty.
    server.stop();
    let restarted = RedisServer::start_on(port).unwrap();
    // B's connections find the new server (their first call fails).
    let open = Origin::new(|_| Ok("other".to_owned()));
    let mut raw = redis::Client::open(restarted.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    for other in 1_000..1_100u64 {
        call(b, other, &open, hooks()).await.unwrap();
        let name = b.redis_key(&other).await.unwrap();
        let written: Option<Vec<u8>> = redis::AsyncCommands::get(&mut raw, &name).await.unwrap();
        if written.is_some() {
            break;
        }
    }
    // B's load ends with the old value and writes it back to the new server.
    slow.gate.release();
    assert_eq!(loading.await.unwrap().unwrap(), "v1");
    let name = b.redis_key(&8).await.unwrap();
    let mut written = false;
    for _ in 0..1_000 {
        let copy: Option<Vec<u8>> = redis::AsyncCommands::get(&mut raw, &name).await.unwrap();
        if copy.is_some() {
            written = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(written, "B's write-back reached the new server");
    // A new instance is not served it.
    let c = instance(
        "restart-aba",
        tier(restarted.url(), "restart-aba", DIRECT),
        &clock,
    );
    assert_eq!(call(c, 8, &slow, hooks()).await.unwrap(), "v2");
}

/// Events' messages and fields, as text.
#[derive(Clone, Default)]
struct Logged(Arc<std::sync::Mutex<Vec<String>>>);

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Logged {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        struct Text(String);
        impl tracing::field::Visit for Text {
            fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
                self.0.push_str(&format!(" {}={value:?}", field.name()));
            }
        }
        let mut text = Text(String::new());
        event.record(&mut text);
        self.0.lock().unwrap().push(text.0);
    }
}

/// A process that ends with invalidations still kept waits for them (its
/// guard's drop) up to its bound, then says how many are left and for which
/// functions, never the key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ending_with_invalidations_kept_says_how_many_and_for_which_functions() {
    use tracing_subscriber::layer::SubscriberExt;
    let fleet = Fleet::default("exit-log").await;
    fleet.proxy.cut();
    fleet.a.invalidate(&8).await;
    assert_eq!(fleet.a.stats().fleet_pending, 1);
    let logged = Logged::default();
    let subscriber = tracing_subscriber::registry().with(logged.clone());
    let guard = fleet.a_tier.flush_on_drop(Duration::from_millis(300));
    let started = std::time::Instant::now();
    tracing::subscriber::with_default(subscriber, || drop(guard));
    assert!(started.elapsed() >= Duration::from_millis(300), "it waited");
    let lines = logged.0.lock().unwrap().clone();
    let said = lines
        .iter()
        .find(|line| line.contains("pending=1"))
        .unwrap_or_else(|| panic!("no line says what is pending: {lines:?}"));
    assert!(said.contains("exit-log: 1"), "{said}");
    assert!(
        !said.contains("[8]") && !said.contains("key="),
        "no key: {said}"
    );
    // Healed, the same guard finds nothing left and says nothing.
    fleet.proxy.heal();
    let logged = Logged::default();
    let subscriber = tracing_subscriber::registry().with(logged.clone());
    let guard = fleet.a_tier.flush_on_drop(Duration::from_secs(30));
    tracing::subscriber::with_default(subscriber, || drop(guard));
    assert_eq!(fleet.a.stats().fleet_pending, 0, "replayed while it waited");
    let lines = logged.0.lock().unwrap().clone();
    assert!(
        lines.iter().all(|line| !line.contains("pending=")),
        "{lines:?}"
    );
}
