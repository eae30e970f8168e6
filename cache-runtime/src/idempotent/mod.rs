//! The runtime of `#[idempotent]`: a record per (function, scope, key) that
//! makes a retried request replay the outcome of the first one instead of
//! running it again.
//!
//! A record is absent, then *in progress* (claimed by one run, with the
//! request's fingerprint), then *completed* (the fingerprint and the stored
//! outcome) until `ttl` after completion. Expiry is judged from the record's
//! own timestamp, so a record the store keeps a little longer is still
//! treated as gone. The same key with another fingerprint is
//! [`IdempotencyError::PayloadMismatch`] on every path: against a run in
//! progress, a completed record, and after losing a claim race.
//!
//! `Ok` is stored and replayed (`()` is an outcome like any other). `Err`
//! releases the claim, so that a retry runs again, unless the function's
//! `store_err` says the error is final; then it is stored and replayed. A
//! panic releases the claim. Duplicates in one process join the run in
//! progress (single flight) and get the same outcome. The operation runs in
//! a tokio task of its own, so it finishes, and its outcome is stored for
//! the retry, even if every caller goes away: a client that disconnects
//! half way through a payment must not make the payment half happen.
//!
//! With a Redis tier the records live in Redis and are shared by the fleet
//! (`idempotent/fleet.rs`); without one they are per process, in this
//! module's map.

use std::any::{Any, TypeId};
use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::task::Poll;
use std::time::Duration;

use event_listener::Event;
use tokio::time::Instant;

use crate::idem_fleet::{self, ErrWire, Fleet, OkWire, StoredOutcome};
use crate::outcome::{FailureShare, SharedFailure};

/// The longest idempotency key accepted, in bytes.
pub const MAX_KEY_BYTES: usize = 255;

/// Why an idempotent call was refused, or could not be decided. The
/// operation did not run for any of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdempotencyError {
    /// The request carried no idempotency key (or an empty one).
    MissingKey,
    /// The key is not acceptable.
    InvalidKey {
        /// What is wrong with it.
        reason: &'static str,
    },
    /// Another instance runs this key's request and did not finish within
    /// the function's `wait`: try again after `retry_after`.
    InProgress {
        /// A hint for the client (for a `Retry-After` header): when the
        /// running request's current lease runs out.
        retry_after: Duration,
    },
    /// The key was used before with a different request.
    PayloadMismatch,
    /// The records could not be read or written (Redis unreachable, a
    /// record that cannot be decoded, no Redis tier for a `fleet = true`
    /// function, no tokio runtime), so the operation was not run: running
    /// it without a record could run it twice.
    Unavailable,
}

impl IdempotencyError {
    /// The HTTP status a server should answer with: 400 for a missing or
    /// invalid key, 409 for a request in progress, 422 for a key reused
    /// with another request, 503 when the records are unavailable.
    pub fn http_status(&self) -> u16 {
        match self {
            IdempotencyError::MissingKey | IdempotencyError::InvalidKey { .. } => 400,
            IdempotencyError::InProgress { .. } => 409,
            IdempotencyError::PayloadMismatch => 422,
            IdempotencyError::Unavailable => 503,
        }
    }
}

impl fmt::Display for IdempotencyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IdempotencyError::MissingKey => write!(f, "the idempotency key is missing"),
            IdempotencyError::InvalidKey { reason } => {
                write!(f, "the idempotency key is invalid: {reason}")
            }
            IdempotencyError::InProgress { retry_after } => write!(
                f,
                "a request with this idempotency key is in progress: retry after {retry_after:?}"
            ),
            IdempotencyError::PayloadMismatch => {
                write!(f, "this idempotency key was used with a different request")
            }
            IdempotencyError::Unavailable => write!(
                f,
                "idempotency records are unavailable: the request was not run"
            ),
        }
    }
}

impl std::error::Error for IdempotencyError {}

/// For functions whose error type is `std::io::Error`: a missing or invalid
/// key is `InvalidInput`, a request in progress `WouldBlock`, a key reused
/// with another request `InvalidData`, unavailable records `NotConnected`.
impl From<IdempotencyError> for std::io::Error {
    fn from(error: IdempotencyError) -> Self {
        let kind = match error {
            IdempotencyError::MissingKey | IdempotencyError::InvalidKey { .. } => {
                std::io::ErrorKind::InvalidInput
            }
            IdempotencyError::InProgress { .. } => std::io::ErrorKind::WouldBlock,
            IdempotencyError::PayloadMismatch => std::io::ErrorKind::InvalidData,
            IdempotencyError::Unavailable => std::io::ErrorKind::NotConnected,
        };
        std::io::Error::new(kind, error)
    }
}

/// What an idempotency key can be made from: text, or an `Option` of text
/// (a header that may be absent: `None` is [`IdempotencyError::MissingKey`]).
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be an idempotency key",
    label = "the idempotency key",
    note = "use text: `&str`, `String`, `Cow<str>`, `Arc<str>`, `Box<str>`, or an `Option` of one (a header that may be absent)"
)]
pub trait IdempotencyKey {
    /// The key, checked: empty is [`IdempotencyError::MissingKey`]; longer
    /// than [`MAX_KEY_BYTES`] or holding a control character is
    /// [`IdempotencyError::InvalidKey`].
    ///
    /// # Errors
    /// As above.
    fn idempotency_key(&self) -> Result<String, IdempotencyError>;
}

/// `key` checked (see [`IdempotencyKey::idempotency_key`]), owned.
fn checked_key(key: &str) -> Result<String, IdempotencyError> {
    check_key(key).map(|()| key.to_owned())
}

fn check_key(key: &str) -> Result<(), IdempotencyError> {
    if key.is_empty() {
        Err(IdempotencyError::MissingKey)
    } else if key.len() > MAX_KEY_BYTES {
        Err(IdempotencyError::InvalidKey {
            reason: "longer than 255 bytes",
        })
    } else if key.chars().any(char::is_control) {
        Err(IdempotencyError::InvalidKey {
            reason: "contains a control character",
        })
    } else {
        Ok(())
    }
}

impl IdempotencyKey for str {
    fn idempotency_key(&self) -> Result<String, IdempotencyError> {
        checked_key(self)
    }
}

impl IdempotencyKey for String {
    fn idempotency_key(&self) -> Result<String, IdempotencyError> {
        checked_key(self)
    }
}

impl IdempotencyKey for Cow<'_, str> {
    fn idempotency_key(&self) -> Result<String, IdempotencyError> {
        checked_key(self)
    }
}

impl IdempotencyKey for Arc<str> {
    fn idempotency_key(&self) -> Result<String, IdempotencyError> {
        checked_key(self)
    }
}

impl IdempotencyKey for Box<str> {
    fn idempotency_key(&self) -> Result<String, IdempotencyError> {
        checked_key(self)
    }
}

impl<T: IdempotencyKey + ?Sized> IdempotencyKey for &T {
    fn idempotency_key(&self) -> Result<String, IdempotencyError> {
        (**self).idempotency_key()
    }
}

impl<T: IdempotencyKey> IdempotencyKey for Option<T> {
    fn idempotency_key(&self) -> Result<String, IdempotencyError> {
        match self {
            Some(key) => key.idempotency_key(),
            None => Err(IdempotencyError::MissingKey),
        }
    }
}

/// An idempotent call's outcome, and whether it was replayed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Idempotent<R> {
    outcome: R,
    replayed: bool,
}

impl<R> Idempotent<R> {
    /// Whether this caller got an outcome it did not run: a stored one, or
    /// that of a duplicate it joined. `false` for the caller that started
    /// the run, and for a refusal (whose error says why).
    pub fn replayed(&self) -> bool {
        self.replayed
    }

    /// The outcome.
    pub fn outcome(&self) -> &R {
        &self.outcome
    }

    /// The outcome, owned.
    pub fn into_inner(self) -> R {
        self.outcome
    }
}

impl<R> Idempotent<R> {
    /// The same answer with its outcome mapped (what generated code uses to
    /// hand the function's own error back).
    #[doc(hidden)]
    pub fn map<U>(self, map: impl FnOnce(R) -> U) -> Idempotent<U> {
        Idempotent {
            outcome: map(self.outcome),
            replayed: self.replayed,
        }
    }
}

/// An idempotent function's error as the engine carries it: shared by
/// every duplicate that gets it, the way a `#[cached]` function's error
/// reaches callers that joined a failing load ([`FailureShare`]: a clone,
/// or `E::from(SharedError)` with its message for an error that is not
/// `Clone`). The first caller to read it gets the error itself. What
/// generated code wraps the function's error in.
#[doc(hidden)]
pub struct IdemFailure<E> {
    first: Arc<Mutex<Option<E>>>,
    /// The shared form, for every later reader; `None` for an error made
    /// for one caller (a refusal), read once.
    shared: Option<(SharedFailure, Unshare<E>)>,
}

/// How a later reader gets its copy of a shared error.
type Unshare<E> = fn(&SharedFailure) -> E;

impl<E> Clone for IdemFailure<E> {
    fn clone(&self) -> Self {
        IdemFailure {
            first: Arc::clone(&self.first),
            shared: self.shared.clone(),
        }
    }
}

impl<E> fmt::Debug for IdemFailure<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("IdemFailure")
    }
}

impl<E> IdemFailure<E> {
    /// `error`, in the shared form `share` makes.
    pub fn new(share: FailureShare<E>, error: E) -> Self {
        // An error that would move into a `SharedError`: the first reader
        // (the run's own caller, or the first duplicate) keeps it, the
        // others get its message.
        let (shared, first) = match share.capture() {
            Some(capture) => (capture(&error), error),
            None => share.share(error),
        };
        IdemFailure {
            first: Arc::new(Mutex::new(Some(first))),
            shared: Some((shared, share.unshare_fn())),
        }
    }

    /// `error` for the one caller it is made for (a refusal): returned as
    /// it is, never shared.
    pub fn own(error: E) -> Self {
        IdemFailure {
            first: Arc::new(Mutex::new(Some(error))),
            shared: None,
        }
    }

    /// This caller's copy of the error.
    ///
    /// # Panics
    /// An error made by [`own`](Self::own), read twice.
    pub fn get(&self) -> E {
        let first = self
            .first
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        match (first, &self.shared) {
            (Some(error), _) => error,
            (None, Some((shared, unshare))) => unshare(shared),
            (None, None) => unreachable!("an error made for one caller is read once"),
        }
    }
}

/// What the idempotent functions of this process did, summed over all of
/// them (see [`idempotency_stats`]). With the `metrics` feature each is
/// also a counter `herdcache_idempotent_<field>_total` labelled with the
/// function's `name`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct IdempotencyStats {
    /// Operations started by this process.
    pub runs: u64,
    /// Callers answered with a stored outcome.
    pub replays: u64,
    /// Callers that joined a run in progress in this process.
    pub joined: u64,
    /// Callers refused because their key was used with another request.
    pub mismatches: u64,
    /// Callers refused because another instance was still running the
    /// request after `wait`.
    pub in_progress: u64,
    /// Outcomes not stored because the run's claim had been taken over
    /// (its lease ran out): the newer claim's record was left intact.
    pub fenced: u64,
    /// Callers refused because the records were unavailable.
    pub unavailable: u64,
    /// Claims released (an `Err` that is not final, a panic) so that a
    /// retry runs again.
    pub released: u64,
    /// Claims whose lease had run out taken over by a duplicate.
    pub takeovers: u64,
    /// Callers refused for a missing or invalid key.
    pub rejected_keys: u64,
    /// Outcomes Redis did not take (unreachable until the retries gave up).
    pub store_failures: u64,
    /// Records that could not be decoded.
    pub corrupt: u64,
}

/// What each counter of [`IdempotencyStats`] counts: its index.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Count {
    Runs,
    Replays,
    Joined,
    Mismatches,
    InProgress,
    Fenced,
    Unavailable,
    Released,
    Takeovers,
    RejectedKeys,
    StoreFailures,
    Corrupt,
}

/// The number of counters.
pub(crate) const COUNTS: usize = 12;

/// Each counter's field name, in [`Count`]'s order (the metric's name is
/// `herdcache_idempotent_<field>_total`).
#[cfg_attr(not(feature = "metrics"), allow(dead_code))]
pub(crate) const COUNT_NAMES: [&str; COUNTS] = [
    "runs",
    "replays",
    "joined",
    "mismatches",
    "in_progress",
    "fenced",
    "unavailable",
    "released",
    "takeovers",
    "rejected_keys",
    "store_failures",
    "corrupt",
];

/// The process's totals.
static TOTALS: [AtomicU64; COUNTS] = [const { AtomicU64::new(0) }; COUNTS];

/// What the idempotent functions of this process did so far, summed over
/// all of them.
pub fn idempotency_stats() -> IdempotencyStats {
    stats_of(&TOTALS)
}

fn stats_of(counts: &[AtomicU64; COUNTS]) -> IdempotencyStats {
    let read = |count: Count| counts[count as usize].load(Ordering::Relaxed);
    IdempotencyStats {
        runs: read(Count::Runs),
        replays: read(Count::Replays),
        joined: read(Count::Joined),
        mismatches: read(Count::Mismatches),
        in_progress: read(Count::InProgress),
        fenced: read(Count::Fenced),
        unavailable: read(Count::Unavailable),
        released: read(Count::Released),
        takeovers: read(Count::Takeovers),
        rejected_keys: read(Count::RejectedKeys),
        store_failures: read(Count::StoreFailures),
        corrupt: read(Count::Corrupt),
    }
}

/// One function's counters; each also adds to the process's totals.
pub(crate) struct Counters {
    counts: [AtomicU64; COUNTS],
    #[cfg(feature = "metrics")]
    exported: crate::metrics::IdemExported,
}

impl Counters {
    fn new(name: &str) -> Self {
        #[cfg(not(feature = "metrics"))]
        let _ = name;
        Counters {
            counts: [const { AtomicU64::new(0) }; COUNTS],
            #[cfg(feature = "metrics")]
            exported: crate::metrics::IdemExported::new(name),
        }
    }

    pub(crate) fn add(&self, count: Count) {
        self.counts[count as usize].fetch_add(1, Ordering::Relaxed);
        TOTALS[count as usize].fetch_add(1, Ordering::Relaxed);
        #[cfg(feature = "metrics")]
        self.exported.add(count as usize);
    }
}

/// A 128-bit digest of values, the same in every process running the same
/// build: what generated code makes a request's fingerprint (and a scope)
/// from. xxh3-128 over the stream of bytes the values' [`Hash`] impls write,
/// with integers written little-endian and `usize`/`isize` widened to 64
/// bits, so that the platform does not change it.
///
/// It relies on the `Hash` impls of the types fed to it writing the same
/// bytes for the same values, which std's do within one Rust release (and
/// have for years), but which std does not promise across releases: a fleet
/// should run one build (one compiler) at a time, or a request retried
/// across a rolling upgrade may be refused as
/// [`PayloadMismatch`](IdempotencyError::PayloadMismatch). A derived `Hash`
/// is stable as long as the type's fields and their order are.
#[derive(Clone)]
pub struct StableDigest(xxhash_rust::xxh3::Xxh3);

impl StableDigest {
    /// An empty digest.
    pub fn new() -> Self {
        StableDigest(xxhash_rust::xxh3::Xxh3::new())
    }

    /// `value` added to the digest.
    // Named for what generated code reads (`.add(&a).add(&b)`); it takes a
    // reference to any `Hash` value, which `std::ops::Add` could not.
    #[allow(clippy::should_implement_trait)]
    #[must_use]
    pub fn add<V: Hash + ?Sized>(mut self, value: &V) -> Self {
        value.hash(&mut Feed(&mut self.0));
        self
    }

    /// [`add`](Self::add) for a part of a request's fingerprint: a value
    /// that is not `Hash` is one error naming the way out.
    #[must_use]
    pub fn add_part<V: FingerprintPart + ?Sized>(self, value: &V) -> Self {
        self.add(value)
    }

    /// The digest of everything added.
    pub fn finish(&self) -> u128 {
        self.0.digest128()
    }
}

impl Default for StableDigest {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for StableDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StableDigest({:032x})", self.finish())
    }
}

/// A [`Hasher`] that feeds xxh3, with integers in one byte order whatever
/// the platform's (the defaults write native-endian bytes).
struct Feed<'a>(&'a mut xxhash_rust::xxh3::Xxh3);

impl Hasher for Feed<'_> {
    fn finish(&self) -> u64 {
        self.0.digest()
    }
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
    fn write_u8(&mut self, n: u8) {
        self.write(&[n]);
    }
    fn write_u16(&mut self, n: u16) {
        self.write(&n.to_le_bytes());
    }
    fn write_u32(&mut self, n: u32) {
        self.write(&n.to_le_bytes());
    }
    fn write_u64(&mut self, n: u64) {
        self.write(&n.to_le_bytes());
    }
    fn write_u128(&mut self, n: u128) {
        self.write(&n.to_le_bytes());
    }
    fn write_usize(&mut self, n: usize) {
        self.write_u64(n as u64);
    }
    fn write_i8(&mut self, n: i8) {
        self.write(&n.to_le_bytes());
    }
    fn write_i16(&mut self, n: i16) {
        self.write(&n.to_le_bytes());
    }
    fn write_i32(&mut self, n: i32) {
        self.write(&n.to_le_bytes());
    }
    fn write_i64(&mut self, n: i64) {
        self.write(&n.to_le_bytes());
    }
    fn write_i128(&mut self, n: i128) {
        self.write(&n.to_le_bytes());
    }
    fn write_isize(&mut self, n: isize) {
        self.write_i64(n as i64);
    }
}

/// How long a completed record is kept by default.
pub const DEFAULT_TTL: Duration = Duration::from_secs(24 * 3600);
/// How long a duplicate on another instance waits for the outcome by
/// default.
pub const DEFAULT_WAIT: Duration = Duration::from_secs(2);
/// How long a claim lives without its heartbeat by default.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(10);

/// One idempotent function's settings, built by generated code.
pub struct IdemConfig<E> {
    pub(crate) name: &'static str,
    pub(crate) ttl: Duration,
    pub(crate) wait: Duration,
    pub(crate) lease: Duration,
    pub(crate) fail_open: bool,
    pub(crate) fleet: bool,
    pub(crate) store_err: Option<fn(&E) -> bool>,
    /// How a final error travels to Redis: set with `store_err`, which is
    /// the only place that needs `E` to be serializable.
    pub(crate) err_wire: Option<ErrWire<E>>,
}

impl<E> IdemConfig<E> {
    /// The settings of the function called `name` (its label in logs and
    /// metrics), with the defaults: records kept 24 hours, a duplicate on
    /// another instance waiting up to 2 s, a lease of 10 s, fail closed,
    /// records per process when no Redis tier is installed, and every
    /// `Err` released.
    pub fn new(name: &'static str) -> Self {
        IdemConfig {
            name,
            ttl: DEFAULT_TTL,
            wait: DEFAULT_WAIT,
            lease: DEFAULT_LEASE,
            fail_open: false,
            fleet: false,
            store_err: None,
            err_wire: None,
        }
    }

    /// How long a completed record is kept (and replayed), from its
    /// completion.
    #[must_use]
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl.max(Duration::from_millis(1));
        self
    }

    /// How long a duplicate on another instance waits for the running
    /// request's outcome before it is told
    /// [`InProgress`](IdempotencyError::InProgress).
    #[must_use]
    pub fn wait(mut self, wait: Duration) -> Self {
        self.wait = wait;
        self
    }

    /// How long a claim in Redis lives without its heartbeat (sent every
    /// third of it while the operation runs): an instance that dies mid-run
    /// holds its requests' keys this long at most, after which a duplicate
    /// takes over. At least 30 ms.
    #[must_use]
    pub fn lease(mut self, lease: Duration) -> Self {
        self.lease = lease.max(Duration::from_millis(30));
        self
    }

    /// Whether the operation runs, unrecorded, when Redis cannot be
    /// reached (default `false`: it is refused with
    /// [`Unavailable`](IdempotencyError::Unavailable)).
    #[must_use]
    pub fn fail_open(mut self, fail_open: bool) -> Self {
        self.fail_open = fail_open;
        self
    }

    /// Whether the records must be the fleet's: with `true` and no Redis
    /// tier installed, every call is refused with
    /// [`Unavailable`](IdempotencyError::Unavailable) instead of keeping
    /// records per process.
    #[must_use]
    pub fn fleet(mut self, fleet: bool) -> Self {
        self.fleet = fleet;
        self
    }

    /// Which errors are final: stored and replayed like an `Ok`, where
    /// other errors release the claim. Needs `E` to be a
    /// [`StoredOutcome`] (with Redis, serializable), which nothing else
    /// asks of `E`.
    #[must_use]
    pub fn store_err(mut self, is_final: fn(&E) -> bool) -> Self
    where
        E: StoredOutcome,
    {
        self.store_err = Some(is_final);
        self.err_wire = Some(ErrWire::new());
        self
    }

    /// Whether `error` is stored.
    fn is_final(&self, error: &E) -> bool {
        self.store_err.is_some_and(|is_final| is_final(error))
    }
}

impl<E> fmt::Debug for IdemConfig<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IdemConfig")
            .field("name", &self.name)
            .field("ttl", &self.ttl)
            .field("wait", &self.wait)
            .field("lease", &self.lease)
            .field("fail_open", &self.fail_open)
            .field("fleet", &self.fleet)
            .field("store_err", &self.store_err.is_some())
            .finish()
    }
}

/// The `static` an idempotent function declares: its way to its
/// [`Idempotency`], made at the first call from the function's
/// `fn() -> IdemConfig<E>` and kept for the life of the process.
pub struct IdemSlot {
    first: OnceLock<(TypeId, &'static (dyn Any + Send + Sync))>,
    /// Other instantiations: a `static` in a generic impl's method is one
    /// static for all of them, and their `T` and `E` may differ.
    others: Mutex<Vec<(TypeId, &'static (dyn Any + Send + Sync))>>,
}

impl IdemSlot {
    /// An empty slot.
    pub const fn new() -> Self {
        IdemSlot {
            first: OnceLock::new(),
            others: Mutex::new(Vec::new()),
        }
    }

    /// The function's records, made by `config` at the first call.
    pub fn get<T, E>(&'static self, config: fn() -> IdemConfig<E>) -> &'static Idempotency<T, E>
    where
        T: StoredOutcome,
        E: IdempotentError,
    {
        let wanted = TypeId::of::<Idempotency<T, E>>();
        let make = || -> &'static (dyn Any + Send + Sync) {
            Box::leak(Box::new(Idempotency::<T, E>::new(config())))
        };
        let &(id, first) = self.first.get_or_init(|| (wanted, make()));
        if id == wanted {
            if let Some(found) = first.downcast_ref() {
                return found;
            }
        }
        let mut others = self
            .others
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let found = match others.iter().find(|(id, _)| *id == wanted) {
            Some(&(_, found)) => found,
            None => {
                let made = make();
                others.push((wanted, made));
                made
            }
        };
        found
            .downcast_ref()
            .expect("herdcache: an idempotency slot holds the type it was asked for")
    }
}

impl Default for IdemSlot {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for IdemSlot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IdemSlot")
            .field("made", &self.first.get().is_some())
            .finish()
    }
}

/// A record's identity within its function: the scope and the key.
type Id = (u128, String);

/// What a run leaves for the callers waiting on it.
pub(crate) enum Landing<T, E> {
    /// This process ran the operation: its outcome.
    Ran(Result<T, E>),
    /// Another instance ran it: the stored outcome. (Made by the fleet
    /// half only, which a build without Redis replaces by a stand-in.)
    #[allow(dead_code)]
    Replayed(Result<T, E>),
    /// Not run: why. (Made by the fleet half only.)
    #[allow(dead_code)]
    Refused(IdempotencyError),
    /// The operation panicked: the payload, for the caller that started it.
    Panicked(Mutex<Option<Box<dyn Any + Send>>>),
    /// The run's task was dropped before it finished (its runtime shut
    /// down).
    Abandoned,
}

/// One run in progress in this process: what duplicates join.
struct Flight<T, E> {
    fingerprint: u128,
    landing: OnceLock<Landing<T, E>>,
    landed: Event,
}

impl<T, E> Flight<T, E> {
    fn new(fingerprint: u128) -> Self {
        Flight {
            fingerprint,
            landing: OnceLock::new(),
            landed: Event::new(),
        }
    }

    fn land(&self, landing: Landing<T, E>) {
        let _ = self.landing.set(landing);
        self.landed.notify(usize::MAX);
    }

    async fn wait(&self) -> &Landing<T, E> {
        loop {
            if let Some(landing) = self.landing.get() {
                return landing;
            }
            // Listen before looking again, so that a landing in between
            // is not missed.
            let listener = self.landed.listen();
            if let Some(landing) = self.landing.get() {
                return landing;
            }
            listener.await;
        }
    }
}

/// What a caller does about a run: join the one in progress, or lead a new
/// one (its record inserted already).
enum Turn<T, E> {
    Join(Arc<Flight<T, E>>),
    Lead(Arc<Flight<T, E>>),
}

/// A record in this process: a run in progress, or a completed one (only
/// without a Redis tier; with one, completed records live in Redis).
enum Record<T, E> {
    Running(Arc<Flight<T, E>>),
    Done {
        fingerprint: u128,
        outcome: Result<T, E>,
        until: Instant,
    },
}

struct Records<T, E> {
    map: HashMap<Id, Record<T, E>>,
    /// The size at which the next claim drops the expired records.
    sweep_at: usize,
}

/// The fewest records at which expired ones are swept.
const SWEEP_FLOOR: usize = 1024;

/// One idempotent function's records and runs, reached through its
/// [`IdemSlot`].
pub struct Idempotency<T, E> {
    pub(crate) config: IdemConfig<E>,
    /// Read by the fleet half only (a stand-in without Redis).
    #[allow(dead_code)]
    pub(crate) ok_wire: OkWire<T>,
    records: Mutex<Records<T, E>>,
    /// The Redis tier, decided at the first call (or set by `with_tier`).
    pub(crate) fleet: OnceLock<Option<Fleet>>,
    pub(crate) counters: Counters,
    warned: AtomicBool,
}

impl<T, E> fmt::Debug for Idempotency<T, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Idempotency")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl<T, E> Idempotency<T, E>
where
    T: StoredOutcome,
    E: IdempotentError,
{
    /// The records of a function with these settings (generated code goes
    /// through an [`IdemSlot`]; a test may make its own and leak it).
    pub fn new(config: IdemConfig<E>) -> Self {
        let counters = Counters::new(config.name);
        Idempotency {
            config,
            ok_wire: OkWire::new(),
            records: Mutex::new(Records {
                map: HashMap::new(),
                sweep_at: SWEEP_FLOOR,
            }),
            fleet: OnceLock::new(),
            counters,
            warned: AtomicBool::new(false),
        }
    }

    /// This function's counts (the process's totals are
    /// [`idempotency_stats`]).
    pub fn stats(&self) -> IdempotencyStats {
        stats_of(&self.counters.counts)
    }

    fn lock(&self) -> MutexGuard<'_, Records<T, E>> {
        // The map is consistent at every unlock: the only user code run
        // under the lock is `T`'s and `E`'s `Clone` and `Drop`, and a panic
        // in them leaves no half-made change.
        self.records
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Runs `operation` once for `key` within `scope`, or replays the
    /// outcome of the run that did. `fingerprint` identifies the request
    /// (a [`StableDigest`] of its arguments): the same key with another is
    /// refused. A refusal is `Err(to_error(why))`, with `replayed()` false;
    /// the operation did not run.
    pub async fn run<Op, Fut>(
        &'static self,
        key: Result<String, IdempotencyError>,
        scope: u128,
        fingerprint: u128,
        to_error: fn(IdempotencyError) -> E,
        operation: Op,
    ) -> Idempotent<Result<T, E>>
    where
        Op: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, E>> + Send + 'static,
    {
        let refuse = |error: IdempotencyError| {
            self.counters.add(match error {
                IdempotencyError::MissingKey | IdempotencyError::InvalidKey { .. } => {
                    Count::RejectedKeys
                }
                IdempotencyError::InProgress { .. } => Count::InProgress,
                IdempotencyError::PayloadMismatch => Count::Mismatches,
                IdempotencyError::Unavailable => Count::Unavailable,
            });
            Idempotent {
                outcome: Err(to_error(error)),
                replayed: false,
            }
        };
        // A key built by hand is checked as one from `IdempotencyKey` is.
        let key = match key.and_then(|key| check_key(&key).map(|()| key)) {
            Ok(key) => key,
            Err(error) => return refuse(error),
        };
        let fleet = match self.fleet() {
            Ok(fleet) => fleet,
            Err(error) => return refuse(error),
        };
        let id: Id = (scope, key);
        let mut operation = Some(operation);
        loop {
            let turn = {
                let mut records = self.lock();
                match records.map.get(&id) {
                    Some(Record::Done {
                        fingerprint: stored,
                        outcome,
                        until,
                    }) if *until > Instant::now() => {
                        if *stored != fingerprint {
                            return refuse(IdempotencyError::PayloadMismatch);
                        }
                        self.counters.add(Count::Replays);
                        return Idempotent {
                            outcome: outcome.clone(),
                            replayed: true,
                        };
                    }
                    Some(Record::Running(flight)) => {
                        if flight.fingerprint != fingerprint {
                            return refuse(IdempotencyError::PayloadMismatch);
                        }
                        Turn::Join(Arc::clone(flight))
                    }
                    // Absent, or completed and expired: this caller runs it.
                    _ => {
                        if records.map.len() >= records.sweep_at {
                            let now = Instant::now();
                            records.map.retain(|_, record| match record {
                                Record::Running(_) => true,
                                Record::Done { until, .. } => *until > now,
                            });
                            records.sweep_at = (records.map.len() * 2).max(SWEEP_FLOOR);
                        }
                        let flight = Arc::new(Flight::new(fingerprint));
                        records
                            .map
                            .insert(id.clone(), Record::Running(Arc::clone(&flight)));
                        Turn::Lead(flight)
                    }
                }
            };
            match turn {
                Turn::Join(flight) => {
                    self.counters.add(Count::Joined);
                    match flight.wait().await {
                        Landing::Ran(outcome) | Landing::Replayed(outcome) => {
                            return Idempotent {
                                outcome: outcome.clone(),
                                replayed: true,
                            }
                        }
                        Landing::Refused(error) => return refuse(error.clone()),
                        // Released: one of the duplicates runs it again.
                        Landing::Panicked(_) => continue,
                        Landing::Abandoned => return refuse(IdempotencyError::Unavailable),
                    }
                }
                Turn::Lead(flight) => {
                    let operation = operation
                        .take()
                        .expect("a caller leads at most once: it returns after");
                    // In a task of its own: the run finishes, and its
                    // outcome is stored, whatever happens to this caller.
                    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
                        self.finish(&id, &flight, Landing::Abandoned);
                        self.warn_once(
                            "an idempotent function was called outside a tokio runtime: refused",
                        );
                        return refuse(IdempotencyError::Unavailable);
                    };
                    let driven = Arc::clone(&flight);
                    let driver_id = id.clone();
                    runtime.spawn(async move {
                        let mut guard = DriverGuard {
                            idempotency: self,
                            id: driver_id,
                            flight: driven,
                            landed: false,
                        };
                        let landing = match fleet {
                            None => self.run_here(&guard.id, &guard.flight, operation).await,
                            Some(fleet) => {
                                idem_fleet::drive(self, fleet, &guard.id, fingerprint, operation)
                                    .await
                            }
                        };
                        guard.landed = true;
                        self.finish(&guard.id, &guard.flight, landing);
                    });
                    return match flight.wait().await {
                        Landing::Ran(outcome) => Idempotent {
                            outcome: outcome.clone(),
                            replayed: false,
                        },
                        Landing::Replayed(outcome) => {
                            self.counters.add(Count::Replays);
                            Idempotent {
                                outcome: outcome.clone(),
                                replayed: true,
                            }
                        }
                        Landing::Refused(error) => refuse(error.clone()),
                        Landing::Panicked(payload) => {
                            let payload = payload
                                .lock()
                                .unwrap_or_else(std::sync::PoisonError::into_inner)
                                .take();
                            match payload {
                                // The caller that started the run panics as
                                // a direct call would have.
                                Some(payload) => std::panic::resume_unwind(payload),
                                None => refuse(IdempotencyError::Unavailable),
                            }
                        }
                        Landing::Abandoned => refuse(IdempotencyError::Unavailable),
                    };
                }
            }
        }
    }

    /// The Redis tier this function's records live in, `None` for records
    /// per process, or the refusal of a `fleet = true` function without
    /// one.
    fn fleet(&'static self) -> Result<Option<&'static Fleet>, IdempotencyError> {
        match self.fleet.get_or_init(idem_fleet::installed_fleet) {
            Some(fleet) => Ok(Some(fleet)),
            None if self.config.fleet => {
                self.warn_once("no Redis tier is installed and the function is `fleet = true`: every call is refused as Unavailable");
                Err(IdempotencyError::Unavailable)
            }
            None => {
                self.warn_once("no Redis tier is installed: idempotency records are kept per process, so a retry that reaches another instance runs again");
                Ok(None)
            }
        }
    }

    fn warn_once(&self, message: &'static str) {
        if !self.warned.swap(true, Ordering::Relaxed) {
            tracing::warn!(target: "herdcache", function = self.config.name, "{message}");
        }
    }

    /// Runs the operation with the record in this process's map.
    async fn run_here<Op, Fut>(
        &self,
        id: &Id,
        flight: &Arc<Flight<T, E>>,
        operation: Op,
    ) -> Landing<T, E>
    where
        Op: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        match self.run_operation(operation).await {
            Ok(outcome) => {
                let keep = match &outcome {
                    Ok(_) => true,
                    Err(error) => self.is_final(error),
                };
                let mut records = self.lock();
                let ours = matches!(records.map.get(id), Some(Record::Running(running)) if Arc::ptr_eq(running, flight));
                if ours {
                    if keep {
                        // A ttl past what `Instant` holds is kept "for
                        // ever" (thirty years) rather than a panic.
                        let now = Instant::now();
                        let until = now
                            .checked_add(self.config.ttl)
                            .unwrap_or_else(|| now + Duration::from_secs(30 * 365 * 86_400));
                        records.map.insert(
                            id.clone(),
                            Record::Done {
                                fingerprint: flight.fingerprint,
                                outcome: outcome.clone(),
                                until,
                            },
                        );
                    } else {
                        records.map.remove(id);
                        self.counters.add(Count::Released);
                    }
                }
                Landing::Ran(outcome)
            }
            Err(payload) => {
                self.counters.add(Count::Released);
                Landing::Panicked(Mutex::new(Some(payload)))
            }
        }
    }

    /// Runs `operation`, counted, catching a panic in it.
    pub(crate) async fn run_operation<Op, Fut>(
        &self,
        operation: Op,
    ) -> std::thread::Result<Result<T, E>>
    where
        Op: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        self.counters.add(Count::Runs);
        catch_unwind(async move { operation().await }).await
    }

    /// Ends a run: its running record goes (unless it was replaced by the
    /// completed one), then its duplicates are woken.
    fn finish(&self, id: &Id, flight: &Arc<Flight<T, E>>, landing: Landing<T, E>) {
        {
            let mut records = self.lock();
            if matches!(records.map.get(id), Some(Record::Running(running)) if Arc::ptr_eq(running, flight))
            {
                records.map.remove(id);
            }
        }
        flight.land(landing);
    }

    /// Whether `error` is stored (for the fleet half).
    pub(crate) fn is_final(&self, error: &E) -> bool {
        self.config.is_final(error)
    }
}

/// Held by a run's task: if the task is dropped before the run lands (its
/// runtime shut down), the record is released and the duplicates are told.
struct DriverGuard<T, E>
where
    T: StoredOutcome,
    E: IdempotentError,
{
    idempotency: &'static Idempotency<T, E>,
    id: Id,
    flight: Arc<Flight<T, E>>,
    landed: bool,
}

impl<T, E> Drop for DriverGuard<T, E>
where
    T: StoredOutcome,
    E: IdempotentError,
{
    fn drop(&mut self) {
        if !self.landed {
            self.idempotency
                .finish(&self.id, &self.flight, Landing::Abandoned);
        }
    }
}

/// Runs `future`, catching a panic in it (free unless it panics).
pub(crate) async fn catch_unwind<F: Future>(future: F) -> std::thread::Result<F::Output> {
    let mut future = std::pin::pin!(future);
    std::future::poll_fn(|cx| {
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| future.as_mut().poll(cx))) {
            Ok(Poll::Ready(output)) => Poll::Ready(Ok(output)),
            Ok(Poll::Pending) => Poll::Pending,
            Err(panic) => Poll::Ready(Err(panic)),
        }
    })
    .await
}

/// What the error type of an idempotent function must be: `Clone + Send +
/// Sync + 'static`, because every duplicate that joined a failed run gets
/// its own copy of the error. Implemented for every such type.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be the error of an idempotent function: it needs `Clone + Send + Sync + 'static`",
    label = "every duplicate that joined a failed run gets a copy of this error",
    note = "use an error enum that derives `Clone` (with a variant `#[from] herdcache::IdempotencyError`); `std::io::Error` and `anyhow::Error` are not `Clone`: keep their message, or an `Arc` of them, in a variant of your own"
)]
pub trait IdempotentError: Clone + Send + Sync + 'static {}

impl<E: Clone + Send + Sync + 'static> IdempotentError for E {}

/// What an argument must be to be part of an idempotent request's
/// fingerprint (every argument but the key, the scope and `self`, unless
/// `fingerprint = [..]` names them): `Hash`. Implemented for every such
/// type.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be part of an idempotent request's fingerprint: it is not `Hash`",
    label = "part of the fingerprint: what makes two calls the same request",
    note = "name the arguments that identify the request with `fingerprint = [amount, currency]` (a connection or a pool does not), or derive `Hash`"
)]
pub trait FingerprintPart: Hash {}

impl<T: Hash + ?Sized> FingerprintPart for T {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_checked() {
        assert_eq!("".idempotency_key(), Err(IdempotencyError::MissingKey));
        assert_eq!(
            None::<String>.idempotency_key(),
            Err(IdempotencyError::MissingKey)
        );
        assert_eq!(Some("k-1").idempotency_key(), Ok("k-1".to_owned()));
        assert_eq!(
            "a".repeat(256).idempotency_key(),
            Err(IdempotencyError::InvalidKey {
                reason: "longer than 255 bytes"
            })
        );
        assert!("a".repeat(255).idempotency_key().is_ok());
        assert_eq!(
            "a\nb".idempotency_key(),
            Err(IdempotencyError::InvalidKey {
                reason: "contains a control character"
            })
        );
        let shared: Arc<str> = Arc::from("k");
        // Through `&T`, as generated code passes a borrowed argument.
        fn through<K: IdempotencyKey>(key: K) -> Result<String, IdempotencyError> {
            key.idempotency_key()
        }
        assert_eq!(through(&shared), Ok("k".to_owned()));
        assert_eq!(Cow::Borrowed("k").idempotency_key(), Ok("k".to_owned()));
        assert_eq!(Box::<str>::from("k").idempotency_key(), Ok("k".to_owned()));
    }

    #[test]
    fn errors_map_to_statuses_and_io_kinds() {
        use std::io::ErrorKind;
        let cases = [
            (IdempotencyError::MissingKey, 400, ErrorKind::InvalidInput),
            (
                IdempotencyError::InvalidKey { reason: "r" },
                400,
                ErrorKind::InvalidInput,
            ),
            (
                IdempotencyError::InProgress {
                    retry_after: Duration::from_secs(1),
                },
                409,
                ErrorKind::WouldBlock,
            ),
            (
                IdempotencyError::PayloadMismatch,
                422,
                ErrorKind::InvalidData,
            ),
            (IdempotencyError::Unavailable, 503, ErrorKind::NotConnected),
        ];
        for (error, status, kind) in cases {
            assert_eq!(error.http_status(), status, "{error}");
            assert_eq!(std::io::Error::from(error).kind(), kind);
        }
    }

    #[test]
    fn the_digest_is_stable_and_tells_values_apart() {
        let a = StableDigest::new().add("order-1").add(&42u64).finish();
        assert_eq!(a, StableDigest::new().add("order-1").add(&42u64).finish());
        assert_ne!(a, StableDigest::new().add("order-1").add(&43u64).finish());
        // `str`'s Hash ends each string, so parts do not run together.
        assert_ne!(
            StableDigest::new().add("ab").add("c").finish(),
            StableDigest::new().add("a").add("bc").finish()
        );
        // A fixed value: the digest must not change between builds of the
        // same compiler (a change here breaks records kept across a deploy).
        assert_eq!(
            StableDigest::new().add(&1u32).finish(),
            xxhash_rust::xxh3::xxh3_128(&1u32.to_le_bytes())
        );
    }
}
