//! The Redis tier (feature `redis`): values shared by every instance of a
//! fleet, for functions marked `distributed = true`.
//!
//! Read path: memory → Redis → the body. A load first asks Redis (inside
//! the single flight, so one instance's callers make one Redis read); a
//! value there that is still fresh fills memory with its remaining life,
//! and one that is only stale or within its fail-safe window is kept as
//! that instance's fallback while the body runs. A loaded value is written
//! back with its horizons and a Redis expiry (`PX`) at its last one.
//!
//! Redis is never on the critical path of correctness: every call has a
//! timeout, failures open a circuit breaker (calls then skip Redis until it
//! closes), and an unreachable Redis leaves every function working from
//! memory and its body. A payload that cannot be decoded is a miss, counted
//! and overwritten by the load that follows.

mod bus;
mod codec;
mod local;
mod pending;
mod replay;

pub(crate) use replay::{announce_tags, begin_tags};
pub use replay::{flush_fleet, flush_fleet_on_drop, FlushOnDrop};

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use redis::aio::ConnectionManager;

pub(crate) use bus::{Heard, Message};
pub(crate) use codec::{
    digest, function_prefix, key_name, tag_digest, unix_now_ms, version_key, Envelope, Epochs,
};
pub use codec::{Codec, Wire};
pub(crate) use pending::Op;
pub(crate) use pending::DEFAULT_PENDING_LIMIT;
use pending::{Pending, Queued};

/// The default bound of one Redis call.
pub(crate) const DEFAULT_REDIS_TIMEOUT: Duration = Duration::from_millis(50);
/// The default size above which a value is not written to Redis.
pub(crate) const DEFAULT_MAX_PAYLOAD: usize = 1 << 20;

/// The process's Redis tier (feature `redis`), configured once at start-up:
/// what shares the values, loads and invalidations of every
/// `distributed = true` function across the instances of a fleet, through
/// Redis or Redis Cluster. N instances behind a paid API make one origin
/// call per key, not N.
///
/// ```no_run
/// # use herdcache_runtime as herdcache;
/// # use std::time::Duration;
/// # fn main() -> Result<(), herdcache::InstallError> {
/// herdcache::Runtime::builder()
///     .redis("redis://cache.internal:6379") // AUTH and ACL users go in the URL
///     .namespace("billing")                 // the prefix of every key
///     .install()?;
/// // In `main`: at exit, wait for invalidations Redis has not taken yet.
/// let _fleet = herdcache::flush_fleet_on_drop(Duration::from_secs(2));
/// # Ok(()) }
/// ```
///
/// A Redis Cluster: [`redis_cluster`](RuntimeBuilder::redis_cluster) with
/// some of its nodes' URLs. Without `install`, the first `distributed`
/// function reads `HERDCACHE_REDIS_URL` (several comma-separated URLs: a
/// cluster's nodes), `HERDCACHE_NAMESPACE` and
/// `HERDCACHE_REDIS_CONNECTION_PER_RUNTIME` from the environment. Install
/// before the first distributed call. With no tier at all, a `distributed`
/// function stays in its process and says so once (a `warn` event, target
/// `herdcache`). Each knob, with its default, is a method of
/// [`RuntimeBuilder`].
///
/// A function opts in with `#[cached(.., distributed = true)]`; `version = 2`
/// moves it to a new key space when its value's shape changes. Its key and
/// value must be `serde::Serialize + Deserialize` (the bus carries keys): a
/// type that cannot travel is one compile error at `distributed`, naming
/// the type and the traits. Without the feature, `distributed = true` is one
/// error naming the feature.
///
/// How the tier behaves (reads, the fleet's single flight, Redis off the
/// critical path, keys, invalidation, faults, Cluster, TLS, known limits):
/// the [`fleet`](crate::fleet) module.
pub struct Runtime;

impl Runtime {
    /// A builder for the process's Redis tier.
    pub fn builder() -> RuntimeBuilder {
        RuntimeBuilder::default()
    }

    /// Makes `tier` (from [`RuntimeBuilder::build`]) the process's Redis
    /// tier.
    ///
    /// # Errors
    /// When a tier was installed (or read from the environment) already.
    pub fn install(tier: Arc<RedisTier>) -> Result<(), InstallError> {
        let series = Arc::clone(&tier);
        INSTALLED
            .set(Some(tier))
            .map_err(|_| InstallError::AlreadyInstalled)?;
        series.start_series();
        Ok(())
    }
}

/// See [`Runtime`].
#[derive(Clone)]
pub struct RuntimeBuilder {
    url: Option<String>,
    /// Nodes of a Redis Cluster (instead of `url`).
    cluster: Vec<String>,
    namespace: String,
    timeout: Duration,
    max_payload: usize,
    breaker_failures: u32,
    breaker_open_for: Duration,
    lock_ttl: Duration,
    fleet_lock: bool,
    max_wait: Duration,
    per_runtime: bool,
    pending_limit: usize,
    longest_load: Duration,
}

impl Default for RuntimeBuilder {
    fn default() -> Self {
        RuntimeBuilder {
            url: None,
            cluster: Vec::new(),
            namespace: "herdcache".to_owned(),
            timeout: DEFAULT_REDIS_TIMEOUT,
            max_payload: DEFAULT_MAX_PAYLOAD,
            breaker_failures: 5,
            breaker_open_for: Duration::from_secs(1),
            lock_ttl: Duration::from_secs(10),
            fleet_lock: true,
            max_wait: Duration::from_secs(30),
            per_runtime: true,
            pending_limit: DEFAULT_PENDING_LIMIT,
            longest_load: DEFAULT_LONGEST_LOAD,
        }
    }
}

/// Never prints the URL's password.
impl fmt::Debug for RuntimeBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RuntimeBuilder")
            .field("url", &self.url.as_deref().map(redacted))
            .field(
                "cluster",
                &self
                    .cluster
                    .iter()
                    .map(|url| redacted(url))
                    .collect::<Vec<_>>(),
            )
            .field("namespace", &self.namespace)
            .field("timeout", &self.timeout)
            .field("max_payload", &self.max_payload)
            .field("breaker_failures", &self.breaker_failures)
            .field("breaker_open_for", &self.breaker_open_for)
            .field("lock_ttl", &self.lock_ttl)
            .field("fleet_lock", &self.fleet_lock)
            .field("max_wait", &self.max_wait)
            .field("connection_per_runtime", &self.per_runtime)
            .field("pending_limit", &self.pending_limit)
            .field("longest_load", &self.longest_load)
            .finish()
    }
}

impl RuntimeBuilder {
    /// The Redis server: `redis://[user:password@]host:port[/db]`. AUTH and
    /// ACL users go in the URL.
    pub fn redis(mut self, url: impl Into<String>) -> Self {
        self.url = Some(url.into());
        self
    }

    /// A Redis Cluster, by some of its nodes' URLs (the client finds the
    /// rest). Every key of an entry (its value, lock and version) shares a
    /// slot; tag versions live on their own slots.
    pub fn redis_cluster<I>(mut self, nodes: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        self.cluster = nodes.into_iter().map(Into::into).collect();
        self
    }

    /// The prefix of every key and channel, so that applications sharing a
    /// Redis do not share entries (default `herdcache`).
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = namespace.into();
        self
    }

    /// How long one Redis call may take before it counts as failed
    /// (default 50 ms).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Values whose payload is larger are not written to Redis (default
    /// 1 MiB).
    pub fn max_payload(mut self, bytes: usize) -> Self {
        self.max_payload = bytes;
        self
    }

    /// The circuit breaker: after `failures` failed calls in a row, skip
    /// Redis for `open_for`, then let one call probe; its success closes
    /// the breaker, its failure opens it again (default 5, 1 s).
    pub fn breaker(mut self, failures: u32, open_for: Duration) -> Self {
        self.breaker_failures = failures.max(1);
        self.breaker_open_for = open_for;
        self
    }

    /// How long an instance's claim to load a key for the fleet lasts if
    /// its holder dies (default 10 s); while the load runs the holder
    /// extends it every third of this, up to `max_wait`.
    pub fn lock_ttl(mut self, lock_ttl: Duration) -> Self {
        self.lock_ttl = lock_ttl.max(Duration::from_millis(1));
        self
    }

    /// How long an instance waits for another's load of a key (default
    /// 30 s) before it runs the body itself, and how long a holder extends
    /// its lock: a load stuck past it no longer holds the fleet back.
    pub fn max_wait(mut self, max_wait: Duration) -> Self {
        self.max_wait = max_wait;
        self
    }

    /// Whether a cold key's load takes the fleet's lock (default true).
    /// Without it each instance loads on its own (one load per instance,
    /// not per fleet): for an origin cheaper than two Redis round trips.
    pub fn fleet_lock(mut self, on: bool) -> Self {
        self.fleet_lock = on;
        self
    }

    /// Whether each tokio runtime that calls Redis again gets a connection
    /// of its own, driven on it (default true): a read then does not wake
    /// the tier's thread and wait to be woken back, which costs more than a
    /// loopback round trip on a small VM. The connection is made by a task
    /// of that runtime, and on a runtime built without I/O that task panics
    /// (tokio prints the panic once; the runtime then uses the shared
    /// connection): turn this off where a panic hook must never run, or to
    /// keep to the tier's own connections (one for calls, one for the
    /// bus). In the environment: `HERDCACHE_REDIS_CONNECTION_PER_RUNTIME=false`.
    pub fn connection_per_runtime(mut self, on: bool) -> Self {
        self.per_runtime = on;
        self
    }

    /// How many fleet operations Redis did not take this instance keeps
    /// for replay (default 10 000): invalidations and
    /// expiries of keys and tags, and `invalidate_all`s, coalesced by what
    /// they end. Past it, they become one operation that ends every copy in
    /// the namespace and every tagged entry in the fleet: misses, never a
    /// lost invalidation. See [`RedisTier`] for the guarantee.
    pub fn pending_limit(mut self, operations: usize) -> Self {
        self.pending_limit = operations.max(1);
        self
    }

    /// How much longer than a copy its versions in Redis (its key's and its
    /// tags') are kept (default an hour), to cover a load between reading
    /// them and writing its copy. A load slower than this may write a copy
    /// whose key version has expired meanwhile: a miss for the fleet, never
    /// a stale value (a version is made again from the clock, so an old
    /// copy never matches it).
    pub fn longest_load(mut self, longest: Duration) -> Self {
        // Within what Redis takes as an expiry.
        self.longest_load = longest.clamp(
            Duration::from_millis(1),
            Duration::from_secs(100 * 365 * 86_400),
        );
        self
    }

    /// The tier, without installing it (for tests, and to build a cache by
    /// hand).
    ///
    /// # Errors
    /// Without a URL, or with one the `redis` crate cannot parse.
    pub fn build(self) -> Result<Arc<RedisTier>, InstallError> {
        let bad = |url: &str, error: redis::RedisError| {
            InstallError::BadUrl(redacted(url), error.to_string())
        };
        let (backend, url) = if self.cluster.is_empty() {
            let url = self.url.clone().ok_or(InstallError::NoUrl)?;
            let client = redis::Client::open(url.as_str()).map_err(|error| bad(&url, error))?;
            (Backend::Single(client), redacted(&url))
        } else {
            let first = &self.cluster[0];
            let cluster = redis::cluster::ClusterClient::new(self.cluster.clone())
                .map_err(|error| bad(first, error))?;
            // Pub/sub: PUBLISH reaches every node of a cluster, so one
            // node's subscription hears the whole bus.
            let node = redis::Client::open(first.as_str()).map_err(|error| bad(first, error))?;
            let urls: Vec<String> = self.cluster.iter().map(|url| redacted(url)).collect();
            (Backend::Cluster(Box::new(cluster), node), urls.join(","))
        };
        Ok(Arc::new(RedisTier {
            backend,
            connection: tokio::sync::OnceCell::new(),
            locals: local::Locals::default(),
            per_runtime: self.per_runtime,
            namespace: self.namespace,
            timeout: self.timeout,
            max_payload: self.max_payload,
            breaker: Breaker::new(
                self.breaker_failures,
                self.breaker_open_for,
                self.timeout.saturating_mul(2),
            ),
            url,
            lock_ttl: self.lock_ttl,
            fleet_lock: self.fleet_lock,
            max_wait: self.max_wait,
            node: node_id(),
            tokens: AtomicU64::new(0),
            listeners: bus::Listeners::default(),
            fills: bus::Fills::default(),
            bus_started: AtomicBool::new(false),
            subscribed: AtomicBool::new(false),
            heard: AtomicU64::new(0),
            fleet_failures: AtomicU64::new(0),
            credentials_refused: AtomicBool::new(false),
            pending: Pending::new(self.pending_limit),
            replaying: AtomicBool::new(false),
            replay_wake: tokio::sync::Notify::new(),
            replay_off: AtomicBool::new(false),
            longest_load: self.longest_load,
            longest_life_ms: AtomicU64::new(0),
            epochs: Mutex::new(KnownEpochs::default()),
        }))
    }

    /// Makes this the process's Redis tier, for every `distributed`
    /// function made from now on.
    ///
    /// # Errors
    /// As [`build`](Self::build), or when a tier was installed already.
    pub fn install(self) -> Result<(), InstallError> {
        Runtime::install(self.build()?)
    }
}

/// Why [`RuntimeBuilder::install`] failed.
#[derive(Debug)]
pub enum InstallError {
    /// No URL was given.
    NoUrl,
    /// The URL (password redacted) could not be parsed.
    BadUrl(String, String),
    /// The process's tier was decided already: installed, read from
    /// `HERDCACHE_REDIS_URL`, or found absent by a call that needed it (a
    /// `distributed` function's first call, `invalidate_tag`,
    /// `expire_tag`). Install first thing in `main`.
    AlreadyInstalled,
}

impl fmt::Display for InstallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InstallError::NoUrl => write!(f, "no Redis URL: call `.redis(url)`"),
            InstallError::BadUrl(url, error) => {
                write!(f, "bad Redis URL {url}: {error}; ")?;
                if url.contains("://") || url.starts_with("redis") {
                    write!(f, "expected `redis://[user:password@]host[:port][/db]`, `rediss://..` (the `redis-tls` feature) or `redis+unix:///path`")
                } else {
                    write!(f, "a URL starts with its scheme: `redis://{url}`")
                }
            }
            InstallError::AlreadyInstalled => {
                write!(f, "herdcache's Redis tier was decided already: installed, read from HERDCACHE_REDIS_URL, or found absent by an earlier distributed call or tag invalidation; install before any of them")
            }
        }
    }
}

impl std::error::Error for InstallError {}

/// The process's tier: installed, else from the environment, else none.
static INSTALLED: OnceLock<Option<Arc<RedisTier>>> = OnceLock::new();

/// An environment switch: anything but `false`, `0`, `no` or `off` is on.
fn switched_on(value: &str) -> bool {
    !matches!(
        value.trim().to_ascii_lowercase().as_str(),
        "false" | "0" | "no" | "off"
    )
}

/// The process's tier if one was installed or read from the environment
/// already (never deciding it).
pub(crate) fn installed_now() -> Option<Arc<RedisTier>> {
    INSTALLED.get().cloned().flatten()
}

/// The tier `distributed` functions use, decided once.
pub(crate) fn installed() -> Option<Arc<RedisTier>> {
    INSTALLED
        .get_or_init(|| {
            let url = std::env::var("HERDCACHE_REDIS_URL").ok()?;
            // Several comma-separated URLs: the nodes of a Redis Cluster.
            let mut builder = if url.contains(',') {
                Runtime::builder().redis_cluster(url.split(',').map(str::trim).map(str::to_owned))
            } else {
                Runtime::builder().redis(url)
            };
            if let Ok(namespace) = std::env::var("HERDCACHE_NAMESPACE") {
                builder = builder.namespace(namespace);
            }
            if let Ok(value) = std::env::var("HERDCACHE_REDIS_CONNECTION_PER_RUNTIME") {
                builder = builder.connection_per_runtime(switched_on(&value));
            }
            match builder.build() {
                Ok(tier) => {
                    tier.start_series();
                    Some(tier)
                }
                Err(error) => {
                    tracing::warn!(target: "herdcache", %error, "HERDCACHE_REDIS_URL ignored: distributed functions stay in memory");
                    None
                }
            }
        })
        .clone()
}

/// A random id for this process's lock tokens.
fn node_id() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(std::process::id().into());
    hasher.write_u128(unix_now_ms().into());
    hasher.finish()
}

/// `redis://user:secret@host` as `redis://user:***@host`.
fn redacted(url: &str) -> String {
    // Credentials start after the scheme, or at the start of a URL written
    // without one (`user:secret@host`, an error to report, not to leak).
    let start = url.find("://").map_or(0, |scheme| scheme + 3);
    match url.rfind('@') {
        Some(at) if at >= start => {
            let credentials = &url[start..at];
            match credentials.find(':') {
                Some(colon) => format!(
                    "{}{}:***{}",
                    &url[..start],
                    &credentials[..colon],
                    &url[at..]
                ),
                None => format!("{}***{}", &url[..start], &url[at..]),
            }
        }
        _ => url.to_owned(),
    }
}

/// A connection to Redis shared by every distributed function, with its
/// timeout and circuit breaker.
///
/// # What the fleet guarantees, under faults
///
/// An invalidation is `<fn>_invalidate`, `<fn>_expire`, `invalidate_tag`,
/// `expire_tag` or an `invalidate_all` (of one function or every one).
/// Once it returns, no call **on the instance that made it** sees a value
/// whose load began before it (for an expiry: sees it as fresh), whatever
/// Redis does. Every other instance, and every instance started later,
/// stops serving such a value within the bound of the fault in force:
///
/// | fault | the instance that invalidated | other and new instances |
/// |---|---|---|
/// | none | at once | Redis copies at once (a copy carries its key's and tags' versions, read in the same round trip as the value); memory copies once the bus message arrives (a publish: milliseconds) |
/// | its own link to Redis cut, refused, reset, blackholed, or slower than `timeout` | at once: the operation is kept, and until its replay this instance neither reads nor writes the Redis copies it ends (the key, entries with the tag, the function) | once the link heals and the replay lands: kept operations replay in order (version bump, delete, bus message) as soon as Redis answers, retried with jittered backoff from 20 ms up to 1 s and cut short by any call that succeeds; [`flush`](Self::flush) / `flush_fleet` wait for them |
/// | a reader's link cut | — | its bus subscription drops; it resubscribes within about a second of the heal (backoff capped at 1 s) and then drops every distributed memory copy and ends every tagged entry; its Redis reads check versions throughout |
/// | a reader's link blackholed | — | the bus messages wait in the connection and arrive on the heal |
/// | Redis paused (a long fork, `SIGSTOP`) | as its own link failing, for every instance | as above, once Redis answers |
/// | Redis restarted without persistence | at once; kept operations replay against the new server | nothing old is served: copies and versions go together, and a version starts again from the clock, not from 0, so a write-back in flight across the restart (stamped by the old server) never matches; every bus subscription drops and flushes memory on reconnect |
/// | Redis restarted from a snapshot, or a failover to a replica, that missed the last writes | at once | a version bump lost with the writes before it can let a copy written before it be served again, until that copy expires: bounded by what the persistence or replication lost (`appendfsync always`, `WAIT` or `min-replicas-to-write` where that matters) |
/// | more kept operations than [`pending_limit`](RuntimeBuilder::pending_limit) | at once: every Redis copy is distrusted | they become one that bumps the namespace's epoch (part of every key name) and tells the fleet to drop every distributed and tagged entry: misses, never a stale value |
/// | the process exits with operations kept | — | those are lost: keep `let _fleet = flush_fleet_on_drop(timeout)` in `main` (or call `flush_fleet(timeout)` at shutdown); it waits for them and logs how many are left, by function (never key text) |
///
/// Kept operations are counted in `Stats::fleet_pending` (and the
/// `herdcache_fleet_pending` gauge with `metrics`); a `warn` event says when
/// the first is kept and an `info` one when all reached Redis. A call waits
/// for Redis at most one `timeout` per Redis call it makes (a handful) and,
/// when another instance loads the key, at most `max_wait`.
///
/// # What stays in Redis
///
/// Everything the tier writes expires once nothing can read it, so Redis
/// plateaus under a stream of distinct keys and tags:
///
/// | key | lives |
/// |---|---|
/// | a copy `{ns}:{name}:v{version}:e{ns_epoch}.{fn_epoch}:{<digest>}` | to its last horizon (fail-safe, else stale, else fresh) |
/// | a key's version `…:{<digest>}:ver` | the function's longest value life plus [`longest_load`](RuntimeBuilder::longest_load) after its last read or bump |
/// | a tag's version `{ns}:tag:<digest>` | from the first read or bump that finds none, for as long as the longest-lived copy stamped with it (each write-back extends it to its copy's life plus `longest_load` before it writes, if it still has the copy's version), and at least the longest value life of the bumping instance's distributed functions plus `longest_load` after its last bump |
/// | a fleet lock | `lock_ttl`, extended while its load runs |
/// | the namespace's and each function's epoch | kept (one key each) |
///
/// A version absent (expired, or evicted by a `maxmemory` policy) is made
/// again from the wall clock by the next read or bump:
/// past every version it had, so a copy stamped before can never match it.
/// Expiry and eviction cost misses, never a stale value. A function
/// deployed later with longer lives keeps the versions its copies carry
/// alive itself, as it writes them.
///
/// Upgrading a fleet from a release before 2026-12-04 (which read an
/// absent tag version as 0): while old and new instances run together, an
/// old instance can serve a copy it stamped 0 once the tag's version key
/// expires. A bump keeps the key for the longest value life of the bumping
/// instance's own distributed functions plus `longest_load`, which covers
/// the copies of every function both releases run; finish the rollout
/// within that span, or drain old instances first.
pub struct RedisTier {
    backend: Backend,
    /// Driven on the tier's own runtime: for its own tasks, and for callers
    /// whose runtime has no connection of its own (yet).
    connection: tokio::sync::OnceCell<Connection>,
    /// A connection per calling runtime, driven there.
    locals: local::Locals,
    /// Whether `locals` is used.
    per_runtime: bool,
    namespace: String,
    timeout: Duration,
    max_payload: usize,
    breaker: Breaker,
    url: String,
    /// How long a fleet lock lives unless released.
    lock_ttl: Duration,
    /// Whether cold keys take the fleet's lock.
    fleet_lock: bool,
    /// The longest wait for another instance's load.
    max_wait: Duration,
    /// This process's id in lock tokens and bus messages.
    node: u64,
    tokens: AtomicU64,
    /// The caches that hear the bus.
    listeners: bus::Listeners,
    /// Loads waiting for another instance's value, by Redis key.
    fills: bus::Fills,
    bus_started: AtomicBool,
    subscribed: AtomicBool,
    /// Messages from other instances applied.
    heard: AtomicU64,
    /// Fleet operations Redis did not take at first (each then kept).
    fleet_failures: AtomicU64,
    /// Redis refused the URL's credentials, and it was said once.
    credentials_refused: AtomicBool,
    /// Fleet operations Redis did not take, kept for replay.
    pending: Pending,
    /// The replay task runs.
    replaying: AtomicBool,
    /// Wakes the replay task: Redis answered a call.
    replay_wake: tokio::sync::Notify,
    /// Replays switched off: a test of the soak's checker only.
    replay_off: AtomicBool,
    /// The epochs this instance knows (read from Redis when unknown).
    epochs: Mutex<KnownEpochs>,
    /// See [`RuntimeBuilder::longest_load`].
    longest_load: Duration,
    /// The longest life of a value of this instance's distributed
    /// functions, in ms.
    longest_life_ms: AtomicU64,
}

/// The namespace's epoch and each function's, by the function's prefix:
/// forgotten when the bus reconnects or says one moved, so that the next
/// load reads them again.
#[derive(Default)]
struct KnownEpochs {
    namespace: Option<u64>,
    functions: HashMap<String, u64>,
}

/// Never prints the URL's password.
impl fmt::Debug for RedisTier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisTier")
            .field("url", &self.url)
            .field("namespace", &self.namespace)
            .field("breaker_open", &self.breaker.is_open())
            .finish_non_exhaustive()
    }
}

/// The runtime the tier's own tasks run on: the connection's drivers, the
/// bus's subscription, lock extension and release. A thread of its own, so
/// that they outlive whichever runtime made the first call (a
/// `#[tokio::test]`'s, say), and callers on any runtime share them.
fn tier_runtime() -> &'static tokio::runtime::Handle {
    static RUNTIME: OnceLock<tokio::runtime::Handle> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        let (handle_tx, handle_rx) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("herdcache-redis".into())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("herdcache: the Redis tier's runtime");
                let _ = handle_tx.send(runtime.handle().clone());
                runtime.block_on(std::future::pending::<()>());
            })
            .expect("herdcache: spawning the Redis tier's thread");
        handle_rx
            .recv()
            .expect("herdcache: the Redis tier's runtime started")
    })
}

/// Runs `work` on the tier's own runtime.
pub(crate) fn spawn(work: impl std::future::Future<Output = ()> + Send + 'static) {
    tier_runtime().spawn(work);
}

/// A single Redis, or a Cluster (and a node of it for the bus).
#[derive(Clone)]
enum Backend {
    Single(redis::Client),
    Cluster(Box<redis::cluster::ClusterClient>, redis::Client),
}

impl Backend {
    async fn connect(&self) -> redis::RedisResult<Connection> {
        match self {
            // Few retries: a call waits at most the tier's timeout anyway,
            // and a refused password must come back as itself, not as a
            // timeout after six backed-off attempts. (A failed connect is
            // tried again by the next call; a dropped one, by the manager.)
            Backend::Single(client) => ConnectionManager::new_with_config(
                client.clone(),
                redis::aio::ConnectionManagerConfig::new()
                    .set_number_of_retries(1)
                    .set_min_delay(Duration::from_millis(10)),
            )
            .await
            .map(Connection::Single),
            Backend::Cluster(cluster, _) => cluster
                .get_async_connection()
                .await
                .map(|connection| Connection::Cluster(Box::new(connection))),
        }
    }

    /// The client the bus subscribes with.
    pub(crate) fn pubsub_client(&self) -> &redis::Client {
        match self {
            Backend::Single(client) | Backend::Cluster(_, client) => client,
        }
    }
}

/// The shared connection: it reconnects by itself in both cases.
#[derive(Clone)]
pub(crate) enum Connection {
    Single(ConnectionManager),
    Cluster(Box<redis::cluster_async::ClusterConnection>),
}

impl redis::aio::ConnectionLike for Connection {
    fn req_packed_command<'a>(
        &'a mut self,
        cmd: &'a redis::Cmd,
    ) -> redis::RedisFuture<'a, redis::Value> {
        match self {
            Connection::Single(connection) => connection.req_packed_command(cmd),
            Connection::Cluster(connection) => connection.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> redis::RedisFuture<'a, Vec<redis::Value>> {
        match self {
            Connection::Single(connection) => {
                connection.req_packed_commands(pipeline, offset, count)
            }
            Connection::Cluster(connection) => {
                connection.req_packed_commands(pipeline, offset, count)
            }
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Connection::Single(connection) => connection.get_db(),
            Connection::Cluster(connection) => connection.get_db(),
        }
    }
}

/// Whether this instance took a key's fleet lock.
pub(crate) enum Locked {
    /// Taken, with this token.
    Taken(String),
    HeldElsewhere,
    Failed,
}

/// What a Redis read found.
pub(crate) enum Read {
    Hit(Vec<u8>),
    Miss,
    /// The call failed, timed out, or was skipped by the open breaker.
    Failed,
}

impl RedisTier {
    /// Makes the tier's gauges and counter exist, at 0, once it is the
    /// process's: a dashboard then sees a healthy tier, not a missing
    /// series. (Not at `build`: a second `install`, which fails, must not
    /// zero the series of the tier in use.)
    fn start_series(&self) {
        #[cfg(feature = "metrics")]
        {
            let namespace = || ("namespace", self.namespace.clone());
            metrics::gauge!("herdcache_l2_breaker_open", &[namespace()]).set(0.0);
            metrics::gauge!("herdcache_fleet_pending", &[namespace()]).set(0.0);
            metrics::counter!("herdcache_fleet_failures_total", &[namespace()]).increment(0);
        }
    }

    pub(crate) fn namespace(&self) -> &str {
        &self.namespace
    }

    pub(crate) fn node(&self) -> u64 {
        self.node
    }

    /// A hold on the "filled" notifier of the Redis key `key`.
    pub(crate) fn fill_of(&self, key: &str) -> bus::Fill<'_> {
        self.fills.of(key)
    }

    pub(crate) fn listen(&self, function: String, version: u32, listener: bus::KeyListener) {
        self.listeners.add(function, version, listener);
    }

    pub(crate) fn max_payload(&self) -> usize {
        self.max_payload
    }

    /// Whether the breaker is open: Redis is being skipped.
    pub fn breaker_open(&self) -> bool {
        self.breaker.is_open()
    }

    /// Runs `command` within the timeout, through the breaker, on the
    /// calling runtime's own connection or the shared one.
    async fn call<T: redis::FromRedisValue>(&self, command: redis::Cmd) -> Option<T> {
        self.attempt(
            |mut connection| async move { command.query_async::<T>(&mut connection).await },
        )
        .await
    }

    /// Runs `send` within the timeout, through the breaker (skipped while it
    /// is open, counted by it either way), on the calling runtime's own
    /// connection or the shared one.
    pub(crate) async fn attempt<T, F, Fut>(&self, send: F) -> Option<T>
    where
        F: FnOnce(Connection) -> Fut,
        Fut: std::future::Future<Output = redis::RedisResult<T>>,
    {
        if !self.breaker.allows() {
            return None;
        }
        self.attempt_anyway(send).await
    }

    /// [`attempt`](Self::attempt) even while the breaker is open: for
    /// invalidations, which must not be skipped because reads failed.
    pub(crate) async fn attempt_anyway<T, F, Fut>(&self, send: F) -> Option<T>
    where
        F: FnOnce(Connection) -> Fut,
        Fut: std::future::Future<Output = redis::RedisResult<T>>,
    {
        let attempt = async {
            // The caller's runtime's own connection, once it has one: no
            // thread hop (see `local`).
            if self.per_runtime {
                if let Some(connection) = self.locals.here(&self.backend, tier_runtime()) {
                    return send(connection).await;
                }
            }
            let connection = self
                .connection
                .get_or_try_init(|| async {
                    // Made on the tier's runtime, where its driver lives.
                    let backend = self.backend.clone();
                    tier_runtime()
                        .spawn(async move { backend.connect().await })
                        .await
                        .map_err(|error| redis::RedisError::from(std::io::Error::other(error)))?
                })
                .await?;
            send(connection.clone()).await
        };
        match tokio::time::timeout(self.timeout, attempt).await {
            Ok(Ok(value)) => {
                // Redis answers: what was kept for it goes now.
                if self.pending.len() > 0 {
                    self.replay_wake.notify_one();
                }
                // Accepted again: a later refusal is said again.
                if self.credentials_refused.load(Ordering::Relaxed) {
                    self.credentials_refused.store(false, Ordering::Relaxed);
                }
                if self.breaker.succeeded() {
                    tracing::info!(target: "herdcache", url = %self.url, "Redis answers again: the breaker is closed");
                    #[cfg(feature = "metrics")]
                    metrics::gauge!("herdcache_l2_breaker_open", "namespace" => self.namespace.clone()).set(0.0);
                }
                Some(value)
            }
            Ok(Err(error)) => {
                let refused = refuses_credentials(&error);
                if refused {
                    self.refused_credentials(&error);
                }
                self.failed(&error.to_string(), refused);
                None
            }
            Err(_) => {
                self.failed("timed out", false);
                None
            }
        }
    }

    /// Says once, clearly, that the URL's user or password is wrong: the
    /// breaker's own warning would only say that calls keep failing.
    fn refused_credentials(&self, error: &redis::RedisError) {
        if !self.credentials_refused.swap(true, Ordering::AcqRel) {
            tracing::warn!(
                target: "herdcache",
                url = %self.url,
                %error,
                "Redis refused the user or password in its URL: distributed functions work from memory"
            );
        }
    }

    /// Counts a failure; when it opens the breaker, says so, unless the
    /// failure is a refused password (`quiet`), which was said already and
    /// more clearly.
    fn failed(&self, why: &str, quiet: bool) {
        if self.breaker.failed() {
            #[cfg(feature = "metrics")]
            metrics::gauge!("herdcache_l2_breaker_open", "namespace" => self.namespace.clone())
                .set(1.0);
            if quiet {
                return;
            }
            tracing::warn!(
                target: "herdcache",
                url = %self.url,
                error = why,
                "Redis calls keep failing: the breaker is open, distributed functions work from memory"
            );
        }
    }

    pub(crate) async fn get(&self, key: &str) -> Read {
        match self
            .call::<Option<Vec<u8>>>(redis::cmd("GET").arg(key).clone())
            .await
        {
            Some(Some(bytes)) => Read::Hit(bytes),
            Some(None) => Read::Miss,
            None => Read::Failed,
        }
    }

    /// `SET key bytes PX ttl`; whether it was written.
    pub(crate) async fn set(&self, key: &str, bytes: &[u8], px: u64) -> bool {
        let command = redis::cmd("SET")
            .arg(key)
            .arg(bytes)
            .arg("PX")
            .arg(px.max(1))
            .clone();
        self.call::<()>(command).await.is_some()
    }

    /// A copy's horizons and expiry rewritten in place, when the copy is
    /// still what `envelope` (a freshly encoded one) carries: the same
    /// value by its digest, with the same tag versions. A refresh the
    /// origin answered "not modified" so does not send the value again:
    /// the call carries the script, the compared header (format byte,
    /// digest, version count and versions) and 24 bytes of horizons.
    /// `Some(false)`: the copy is gone or differs; `None`: Redis did not
    /// answer.
    pub(crate) async fn retime(&self, key: &str, envelope: &[u8], px: u64) -> Option<bool> {
        const COMPARE_AND_RETIME: &str =
            "local head = redis.call('GETRANGE', KEYS[1], 0, ARGV[1] - 1) \
            if string.len(head) == tonumber(ARGV[1]) and string.sub(head, 1, 1) == ARGV[2] \
                and string.sub(head, 30) == ARGV[3] then \
            redis.call('SETRANGE', KEYS[1], 1, ARGV[4]) \
            redis.call('PEXPIRE', KEYS[1], ARGV[5]) return 1 else return 0 end";
        // The digest, the tag count and the tags: all that must match.
        let tags = usize::from(*envelope.get(codec::DIGEST.end)?);
        let checked_end = codec::DIGEST.end + 1 + tags * 24;
        let checked = envelope.get(codec::DIGEST.start..checked_end)?;
        let horizons = envelope.get(codec::HORIZONS)?;
        let command = redis::cmd("EVAL")
            .arg(COMPARE_AND_RETIME)
            .arg(1)
            .arg(key)
            .arg(checked_end)
            .arg(&envelope[..1])
            .arg(checked)
            .arg(horizons)
            .arg(px.max(1))
            .clone();
        self.call::<i64>(command).await.map(|done| done == 1)
    }

    /// `SET lock token NX PX lock_ttl`: whether this instance took the
    /// fleet's lock of a key.
    pub(crate) async fn lock(&self, lock: &str) -> Locked {
        let token = format!(
            "{:016x}-{}",
            self.node,
            self.tokens.fetch_add(1, Ordering::Relaxed)
        );
        let command = redis::cmd("SET")
            .arg(lock)
            .arg(&token)
            .arg("NX")
            .arg("PX")
            .arg(
                u64::try_from(self.lock_ttl.as_millis())
                    .unwrap_or(u64::MAX)
                    .max(1),
            )
            .clone();
        match self.call::<Option<String>>(command).await {
            Some(Some(_)) => Locked::Taken(token),
            Some(None) => Locked::HeldElsewhere,
            None => Locked::Failed,
        }
    }

    /// Releases a lock this instance holds: deleted only if it still holds
    /// `token` (it may have expired and been taken by another).
    pub(crate) async fn unlock(&self, lock: &str, token: &str) {
        const COMPARE_AND_DELETE: &str = "if redis.call('GET', KEYS[1]) == ARGV[1] then \
            return redis.call('DEL', KEYS[1]) else return 0 end";
        let command = redis::cmd("EVAL")
            .arg(COMPARE_AND_DELETE)
            .arg(1)
            .arg(lock)
            .arg(token)
            .clone();
        let _ = self.call::<i64>(command).await;
    }

    /// Extends a lock this instance holds by its full life; false once it
    /// holds it no more (or Redis did not answer).
    pub(crate) async fn extend_lock(&self, lock: &str, token: &str) -> bool {
        const COMPARE_AND_EXTEND: &str = "if redis.call('GET', KEYS[1]) == ARGV[1] then \
            return redis.call('PEXPIRE', KEYS[1], ARGV[2]) else return 0 end";
        let command = redis::cmd("EVAL")
            .arg(COMPARE_AND_EXTEND)
            .arg(1)
            .arg(lock)
            .arg(token)
            .arg(
                u64::try_from(self.lock_ttl.as_millis())
                    .unwrap_or(u64::MAX)
                    .max(1),
            )
            .clone();
        self.call::<i64>(command).await == Some(1)
    }

    pub(crate) fn max_wait(&self) -> Duration {
        self.max_wait
    }

    pub(crate) fn fleet_lock(&self) -> bool {
        self.fleet_lock
    }

    pub(crate) fn lock_ttl(&self) -> Duration {
        self.lock_ttl
    }

    /// The key of a tag's version: `{ns}:tag:{hex digest}`.
    fn tag_key(&self, digest: u128) -> String {
        format!("{}:tag:{digest:032x}", self.namespace)
    }

    /// The versions in Redis of a key (at `key_version`) and of the tags
    /// with these digests (each made if absent), in that order, and with
    /// `value` the bytes at that key (`None`: nothing there), read in the
    /// same round trip as the key's version (they share a slot); `None`
    /// when Redis did not answer.
    ///
    /// A key's version absent (its first load, or after it expired or Redis
    /// restarted) is created, from the wall clock ([`first_version`]), kept
    /// for `keep`, in a second round trip; any copy read with it is a miss
    /// (it was stamped with a version that no longer exists). A healthy
    /// read of a key loaded before costs the one pipeline.
    pub(crate) async fn versions(
        &self,
        value: Option<&str>,
        key_version: &str,
        keep: Duration,
        digests: &[u128],
    ) -> Option<(Option<Vec<u8>>, Vec<u64>)> {
        let first = async {
            let read = match value {
                Some(value) => {
                    let mut pipe = redis::pipe();
                    pipe.cmd("GET").arg(value).cmd("GET").arg(key_version);
                    self.attempt(|mut connection| async move {
                        pipe.query_async::<(Option<Vec<u8>>, Option<u64>)>(&mut connection)
                            .await
                    })
                    .await?
                }
                None => (
                    None,
                    self.call::<Option<u64>>(redis::cmd("GET").arg(key_version).clone())
                        .await?,
                ),
            };
            match read {
                (value, Some(version)) => Some((value, version)),
                (_, None) => {
                    let mut pipe = redis::pipe();
                    pipe.cmd("SET")
                        .arg(key_version)
                        .arg(first_version())
                        .arg("NX")
                        .arg("PX")
                        .arg(millis(keep))
                        .ignore();
                    pipe.cmd("GET").arg(key_version);
                    let (version,) = self
                        .attempt(|mut connection| async move {
                            pipe.query_async::<(Option<u64>,)>(&mut connection).await
                        })
                        .await?;
                    // Gone again at once (evicted, or a tiny `keep`): this
                    // load leaves Redis alone rather than carry a 0.
                    Some((None, version?))
                }
            }
        };
        // One GET per tag, sent together (their keys may sit on different
        // Cluster slots, so not one MGET). A tag's version absent (never
        // bumped nor read, or expired, or evicted) is created as a key's is,
        // from the clock: no copy is ever stamped with a version a tag could
        // read again once its key is gone.
        let tag = |digest: u128| async move {
            let key = self.tag_key(digest);
            if let Some(version) = self
                .call::<Option<u64>>(redis::cmd("GET").arg(&key).clone())
                .await?
            {
                return Some(version);
            }
            let mut pipe = redis::pipe();
            pipe.cmd("SET")
                .arg(&key)
                .arg(first_version())
                .arg("NX")
                .arg("PX")
                .arg(millis(keep))
                .ignore();
            pipe.cmd("GET").arg(&key);
            let (version,) = self
                .attempt(|mut connection| async move {
                    pipe.query_async::<(Option<u64>,)>(&mut connection).await
                })
                .await?;
            version
        };
        let tags = futures_util::future::join_all(digests.iter().map(|digest| tag(*digest)));
        let (first, tags) = futures_util::future::join(first, tags).await;
        let (value, key) = first?;
        let mut versions = vec![key];
        for tag in tags {
            versions.push(tag?);
        }
        Some((value, versions))
    }

    /// How long versions outlive the copies that carry them.
    pub(crate) fn longest_load(&self) -> Duration {
        self.longest_load
    }

    /// Bumps the version in Redis of the tag with this digest (invalidated
    /// or expired), bypassing the breaker: every copy in Redis stamped
    /// before is no longer served. Whether Redis took it.
    ///
    /// Absent (never read, expired or evicted), the version starts from the
    /// clock ([`first_version`]) as a read would make it. It is kept for at
    /// least the longest life of a value of this instance's distributed
    /// functions plus `longest_load` (a copy's write-back extends it
    /// further), so a tag never touched again leaves Redis. (That first
    /// span also covers, for the functions this instance runs, copies an
    /// older release wrote, which read an absent version as 0.)
    pub(crate) async fn bump_tag(&self, digest: u128) -> bool {
        const BUMP: &str = "redis.call('SET',KEYS[1],ARGV[1],'NX') redis.call('INCR',KEYS[1]) \
            local left=redis.call('PTTL',KEYS[1]) \
            if left==-1 or left<tonumber(ARGV[2]) then redis.call('PEXPIRE',KEYS[1],ARGV[2]) end \
            return 1";
        let keep = self
            .longest_life_ms
            .load(Ordering::Relaxed)
            .saturating_add(millis(self.longest_load));
        let command = redis::cmd("EVAL")
            .arg(BUMP)
            .arg(1)
            .arg(self.tag_key(digest))
            .arg(first_version())
            .arg(keep)
            .clone();
        self.attempt_anyway(|mut connection| async move {
            command.query_async::<i64>(&mut connection).await
        })
        .await
        .is_some()
    }

    /// Before a copy stamped with these tags' versions is written: keeps
    /// each for at least `keep` (never shorter than it is kept already), if
    /// it still has the version the copy carries. `Some(false)` when one
    /// moved or is gone (the copy would be dead: not worth writing),
    /// `None` when Redis did not answer.
    pub(crate) async fn keep_tags(&self, tags: &[(u128, u64)], keep: Duration) -> Option<bool> {
        const KEEP: &str = "if redis.call('GET',KEYS[1])~=ARGV[1] then return 0 end \
            local left=redis.call('PTTL',KEYS[1]) \
            if left==-1 or left<tonumber(ARGV[2]) then redis.call('PEXPIRE',KEYS[1],ARGV[2]) end \
            return 1";
        let keep = millis(keep);
        let kept = futures_util::future::join_all(tags.iter().map(|(digest, version)| {
            let command = redis::cmd("EVAL")
                .arg(KEEP)
                .arg(1)
                .arg(self.tag_key(*digest))
                .arg(version.to_string())
                .arg(keep)
                .clone();
            self.attempt(|mut connection| async move {
                command.query_async::<i64>(&mut connection).await
            })
        }))
        .await;
        let mut all = true;
        for kept in kept {
            all &= kept? == 1;
        }
        Some(all)
    }

    /// Notes the longest life a value of one of this instance's distributed
    /// functions has (see [`bump_tag`](Self::bump_tag)).
    pub(crate) fn note_life(&self, life: Duration) {
        self.longest_life_ms
            .fetch_max(millis(life), Ordering::Relaxed);
    }

    /// `DEL key` and `INCR version` (kept for `keep`), in one pipeline;
    /// whether Redis answered.
    pub(crate) async fn delete_and_bump(&self, key: &str, version: &str, keep: Duration) -> bool {
        let mut pipe = redis::pipe();
        pipe.cmd("DEL").arg(key).ignore();
        // Absent (a Redis that restarted empty): from the clock, not from 0.
        pipe.cmd("SET")
            .arg(version)
            .arg(first_version())
            .arg("NX")
            .ignore();
        pipe.cmd("INCR").arg(version).ignore();
        pipe.cmd("PEXPIRE").arg(version).arg(millis(keep)).ignore();
        self.attempt_anyway(|mut connection| async move {
            pipe.query_async::<()>(&mut connection).await
        })
        .await
        .is_some()
    }
}

/// How long a load may take and still write to Redis, by default: an hour.
pub(crate) const DEFAULT_LONGEST_LOAD: Duration = Duration::from_secs(3600);

/// The value a key's version or an epoch starts from when Redis has none:
/// the wall clock in microseconds, never 0 or 1.
///
/// A Redis that restarts without persistence forgets every version; a load
/// in flight across the restart then writes back a copy stamped with the
/// version it read from the old server. Counted from 0 again, the new
/// server's version could reach that stamp (an invalidation acknowledged
/// by the old server, lost, and the copy served again); started from the
/// clock, it is far past every value the old server gave out (one bump a
/// microsecond would be needed to catch up).
pub(crate) fn first_version() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(2, |since| {
            u64::try_from(since.as_micros()).unwrap_or(u64::MAX)
        })
        .max(2)
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis())
        .unwrap_or(u64::MAX)
        .max(1)
}

/// Whether `error` is Redis refusing the credentials (a wrong password, an
/// unknown or disabled ACL user, or none given where one is required).
fn refuses_credentials(error: &redis::RedisError) -> bool {
    error.kind() == redis::ErrorKind::AuthenticationFailed
        || matches!(error.code(), Some("WRONGPASS" | "NOAUTH"))
}

/// Consecutive failures open it for a while; then one call probes
/// (half-open: the others still skip Redis), and its success closes it, its
/// failure opens it again.
struct Breaker {
    failures: AtomicU32,
    threshold: u32,
    /// Process-relative nanos until which calls are skipped; 0 once closed.
    open_until: AtomicU64,
    open_for: Duration,
    /// When the half-open probe started (0: none). A probe that never
    /// finished (its caller went away) is given up after `probe_for`.
    probe_started: AtomicU64,
    probe_for: Duration,
    origin: Instant,
}

impl Breaker {
    fn new(threshold: u32, open_for: Duration, probe_for: Duration) -> Self {
        Breaker {
            failures: AtomicU32::new(0),
            threshold,
            open_until: AtomicU64::new(0),
            open_for,
            probe_started: AtomicU64::new(0),
            probe_for,
            origin: Instant::now(),
        }
    }

    fn now(&self) -> u64 {
        // Never 0: 0 means "none" in `probe_started`.
        u64::try_from(self.origin.elapsed().as_nanos())
            .unwrap_or(u64::MAX)
            .max(1)
    }

    fn is_open(&self) -> bool {
        self.now() < self.open_until.load(Ordering::Acquire)
    }

    /// Whether a call may go to Redis: always while closed; never while
    /// open; once half-open, to one probe at a time.
    #[inline]
    fn allows(&self) -> bool {
        let until = self.open_until.load(Ordering::Acquire);
        if until == 0 {
            return true;
        }
        let now = self.now();
        if now < until {
            return false;
        }
        let probe = self.probe_started.load(Ordering::Acquire);
        if probe != 0 && now.saturating_sub(probe) < crate::clock::nanos(self.probe_for) {
            return false;
        }
        self.probe_started
            .compare_exchange(probe, now, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    /// Counts a success; true when the breaker had opened before it.
    fn succeeded(&self) -> bool {
        let was_open = self.failures.swap(0, Ordering::AcqRel) >= self.threshold;
        if was_open {
            self.open_until.store(0, Ordering::Release);
            self.probe_started.store(0, Ordering::Release);
        }
        was_open
    }

    /// Counts a failure; true when it opened the breaker.
    fn failed(&self) -> bool {
        let failures = self.failures.fetch_add(1, Ordering::AcqRel) + 1;
        if failures < self.threshold {
            return false;
        }
        let until = self
            .now()
            .saturating_add(u64::try_from(self.open_for.as_nanos()).unwrap_or(u64::MAX));
        self.open_until.store(until, Ordering::Release);
        self.probe_started.store(0, Ordering::Release);
        failures == self.threshold
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_reach_debug_output() {
        let builder = Runtime::builder().redis("redis://app:s3cret@cache:6379/2");
        let shown = format!("{builder:?}");
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(shown.contains("redis://app:***@cache:6379/2"), "{shown}");
        let tier = builder.build().unwrap();
        assert!(!format!("{tier:?}").contains("s3cret"));
        assert_eq!(redacted("redis://:pw@h"), "redis://:***@h");
        assert_eq!(redacted("rediss://h:6380"), "rediss://h:6380");
        assert_eq!(redacted("app:s3cret@cache:6379"), "app:***@cache:6379");
    }

    #[test]
    fn a_bad_url_says_what_is_expected() {
        let error = |url: &str| {
            Runtime::builder()
                .redis(url)
                .build()
                .unwrap_err()
                .to_string()
        };
        let no_scheme = error("cache.internal:6379");
        assert!(
            no_scheme.ends_with("a URL starts with its scheme: `redis://cache.internal:6379`"),
            "{no_scheme}"
        );
        // A scheme without `//` is not given a second one.
        let half = error("redis:cache");
        assert!(!half.contains("redis://redis:"), "{half}");
        assert!(half.contains("expected `redis://"), "{half}");
        let bad = error("redis://cache:port");
        assert!(
            bad.contains("expected `redis://[user:password@]host[:port][/db]`"),
            "{bad}"
        );
    }

    /// A `redis-server` of the test's own, and a tier on it (a generous
    /// timeout: a loaded machine must not time calls out).
    fn server_and_tier(
        configure: impl FnOnce(RuntimeBuilder) -> RuntimeBuilder,
    ) -> (herdcache_test_support::RedisServer, Arc<RedisTier>) {
        let server = herdcache_test_support::RedisServer::start().expect("redis-server on PATH");
        let builder = Runtime::builder()
            .redis(server.url())
            .timeout(Duration::from_secs(5));
        let tier = configure(builder).build().unwrap();
        (server, tier)
    }

    fn current_thread() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    /// Reads from `runtime` until its own connection is ready (or 5 s).
    fn read_until_local(tier: &RedisTier, runtime: &tokio::runtime::Runtime, ready: usize) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while tier.locals.ready() < ready && Instant::now() < deadline {
            runtime.block_on(async {
                assert!(matches!(tier.get("herdcache-test").await, Read::Hit(_)));
            });
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn clients(server: &herdcache_test_support::RedisServer) -> usize {
        let mut connection = redis::Client::open(server.url())
            .unwrap()
            .get_connection()
            .unwrap();
        let list: String = redis::cmd("CLIENT")
            .arg("LIST")
            .query(&mut connection)
            .unwrap();
        // Less this connection itself.
        list.lines().count() - 1
    }

    #[test]
    fn each_runtime_that_reads_gets_a_connection_driven_on_it() {
        let (server, tier) = server_and_tier(|builder| builder);
        let first = current_thread();
        first.block_on(async {
            assert!(tier.set("herdcache-test", b"v", 60_000).await);
        });
        read_until_local(&tier, &first, 1);
        assert_eq!(tier.locals.ready(), 1, "the first runtime's own connection");
        let before = clients(&server);
        // Reads from that runtime now go through its own connection: no new
        // connection, and they answer.
        read_until_local(&tier, &first, 1);
        assert_eq!(clients(&server), before);
        // A second runtime gets one of its own.
        let second = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        read_until_local(&tier, &second, 2);
        assert_eq!(tier.locals.ready(), 2);
        assert_eq!(clients(&server), before + 1);
        server.stop();
    }

    /// A current-thread runtime's own connection is driven only while its
    /// thread runs it: `Handle::block_on` from another thread meanwhile
    /// reads through the shared connection instead of waiting forever.
    #[test]
    fn another_thread_s_block_on_never_waits_on_a_runtime_nobody_drives() {
        let (server, tier) = server_and_tier(|builder| builder);
        let runtime = current_thread();
        runtime.block_on(async {
            assert!(tier.set("herdcache-test", b"v", 60_000).await);
        });
        read_until_local(&tier, &runtime, 1);
        assert_eq!(tier.locals.ready(), 1);
        let (handle, reader) = (runtime.handle().clone(), Arc::clone(&tier));
        let (done, answered) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let read = handle.block_on(async { reader.get("herdcache-test").await });
            let _ = done.send(matches!(read, Read::Hit(_)));
        });
        assert_eq!(
            answered.recv_timeout(Duration::from_secs(20)),
            Ok(true),
            "answered through the shared connection"
        );
        drop(runtime);
        server.stop();
    }

    #[test]
    fn connections_per_runtime_can_be_turned_off() {
        assert!(!switched_on("false") && !switched_on(" OFF ") && !switched_on("0"));
        assert!(switched_on("true") && switched_on("1") && switched_on("yes"));
        let (server, tier) = server_and_tier(|builder| builder.connection_per_runtime(false));
        let runtime = current_thread();
        for _ in 0..20 {
            runtime.block_on(async {
                assert!(!matches!(tier.get("herdcache-test").await, Read::Failed));
            });
            std::thread::sleep(Duration::from_millis(2));
        }
        assert_eq!(tier.locals.ready(), 0, "the shared connection only");
        server.stop();
    }

    /// A runtime that calls once (one made per request, say) never
    /// connects.
    #[test]
    fn a_runtime_that_calls_once_makes_no_connection() {
        let (server, tier) = server_and_tier(|builder| builder);
        for _ in 0..5 {
            let once = current_thread();
            once.block_on(async {
                assert!(!matches!(tier.get("herdcache-test").await, Read::Failed));
            });
        }
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(tier.locals.ready(), 0);
        server.stop();
    }

    #[test]
    fn a_runtime_without_io_reads_through_the_shared_connection() {
        let (server, tier) = server_and_tier(|builder| builder);
        let no_io = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        no_io.block_on(async {
            assert!(tier.set("herdcache-test", b"v", 60_000).await);
        });
        for _ in 0..20 {
            no_io.block_on(async {
                assert!(matches!(tier.get("herdcache-test").await, Read::Hit(_)));
            });
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(
            tier.locals.ready(),
            0,
            "it cannot host one, and reads still answer"
        );
        assert_eq!(tier.locals.unable(), 1, "and it is known");
        server.stop();
    }

    #[test]
    fn the_breaker_opens_after_consecutive_failures_and_closes_after_its_time() {
        let breaker = Breaker::new(3, Duration::from_millis(50), Duration::from_secs(60));
        assert!(!breaker.failed());
        breaker.succeeded();
        assert!(!breaker.failed());
        assert!(!breaker.failed());
        assert!(breaker.allows(), "two in a row after a success");
        assert!(breaker.failed(), "the third opens it");
        assert!(!breaker.allows());
        std::thread::sleep(Duration::from_millis(60));
        assert!(breaker.allows(), "half-open: a probe goes through");
        breaker.failed();
        assert!(!breaker.allows(), "a failed probe opens it again");
        std::thread::sleep(Duration::from_millis(60));
        assert!(breaker.allows(), "the next probe");
        assert!(breaker.succeeded(), "its success closes it");
        assert!(breaker.allows() && breaker.allows(), "closed: every call");
    }

    /// 100 misses at once when the breaker turns half-open: one of them
    /// probes Redis, the 99 others skip it.
    #[test]
    fn a_half_open_breaker_admits_one_probe_among_a_hundred_callers() {
        let breaker = Arc::new(Breaker::new(
            1,
            Duration::from_millis(20),
            Duration::from_secs(60),
        ));
        breaker.failed();
        assert!(!breaker.allows());
        std::thread::sleep(Duration::from_millis(30));
        let start = Arc::new(std::sync::Barrier::new(100));
        let admitted: usize = (0..100)
            .map(|_| {
                let (breaker, start) = (Arc::clone(&breaker), Arc::clone(&start));
                std::thread::spawn(move || {
                    start.wait();
                    usize::from(breaker.allows())
                })
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|caller| caller.join().unwrap())
            .sum();
        assert_eq!(admitted, 1, "one probe");
        // A probe whose caller went away is given up after its bound.
        let short = Breaker::new(1, Duration::from_millis(1), Duration::from_millis(20));
        short.failed();
        std::thread::sleep(Duration::from_millis(5));
        assert!(short.allows(), "the probe");
        assert!(!short.allows(), "while it runs");
        std::thread::sleep(Duration::from_millis(30));
        assert!(short.allows(), "a probe lost is replaced");
    }
}
