//! Single flight: at most one load per key at a time.
//!
//! A [`Flight`] is one load in progress. The first caller of a cold key
//! leads it; later callers join and wait for its outcome. Flights live in a
//! [`FlightMap`], sharded so that different keys rarely share a lock and
//! never wait on each other's loads. A flight is *attached* while the map
//! holds it: only an attached flight may store its value, which is how an
//! invalidation (which detaches it) keeps a load that began before it out of
//! the cache.

use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::{BuildHasher, Hash};
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};

use event_listener::Event;

use crate::outcome::SharedFailure;
use crate::tags::Stamps;

/// What a finished flight hands to the callers that joined it.
pub(crate) enum Landing<V> {
    /// The loader produced a value.
    Value(V),
    /// The loader produced an uncached failure, shared for the waiters.
    Failure(SharedFailure),
    /// The leader was dropped or panicked before finishing: try again.
    Abandoned,
}

impl<V: Clone> Clone for Landing<V> {
    fn clone(&self) -> Self {
        match self {
            Landing::Value(v) => Landing::Value(v.clone()),
            Landing::Failure(f) => Landing::Failure(f.clone()),
            Landing::Abandoned => Landing::Abandoned,
        }
    }
}

/// One load in progress.
pub(crate) struct Flight<V> {
    /// Written once; waiters read it without a lock, so thousands of them
    /// clone the value side by side.
    landing: OnceLock<Landing<V>>,
    landed: Event,
    waiters: AtomicUsize,
    /// The versions of the load's tags, once its leader read them.
    stamps: OnceLock<Stamps>,
    /// What answered the load (an [`Answered`] as a byte), so that its
    /// waiters say how they were served.
    answered_by: AtomicU8,
}

/// What answered a load: its body, fail-safe's fallback, or the Redis
/// tier. Set before its value lands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Answered {
    /// The body (or nothing yet).
    Body,
    /// Fail-safe's fallback: the load failed.
    FailSafe,
    /// The Redis tier: another instance's value.
    Remote,
}

impl<V: Clone> Flight<V> {
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(Flight {
            landing: OnceLock::new(),
            landed: Event::new(),
            waiters: AtomicUsize::new(0),
            stamps: OnceLock::new(),
            answered_by: AtomicU8::new(Answered::Body as u8),
        })
    }

    /// Records what answered this load: set before its value lands.
    pub(crate) fn mark_answered_by(&self, by: Answered) {
        self.answered_by.store(by as u8, Ordering::Release);
    }

    /// What answered this load.
    pub(crate) fn answered_by(&self) -> Answered {
        match self.answered_by.load(Ordering::Acquire) {
            b if b == Answered::FailSafe as u8 => Answered::FailSafe,
            b if b == Answered::Remote as u8 => Answered::Remote,
            _ => Answered::Body,
        }
    }

    /// Records the versions of the load's tags (a load without tags skips it).
    pub(crate) fn set_stamps(&self, stamps: &Stamps) {
        if !matches!(stamps, Stamps::None) {
            let _ = self.stamps.set(*stamps);
        }
    }

    /// The versions of the load's tags, once its leader read them.
    pub(crate) fn stamps(&self) -> Option<&Stamps> {
        self.stamps.get()
    }

    /// Whether a caller arriving now may take this load's value: not once
    /// one of its tags was invalidated or expired since the load began.
    fn joinable(&self) -> bool {
        self.stamps.get().is_none_or(|stamps| !stamps.moved())
    }

    /// How many callers joined. Final once the flight is detached, since
    /// callers join only through the map.
    pub(crate) fn waiters(&self) -> usize {
        self.waiters.load(Ordering::Acquire)
    }

    pub(crate) fn add_waiter(&self) {
        self.waiters.fetch_add(1, Ordering::AcqRel);
    }

    /// A caller that stopped waiting (a deadline passed).
    pub(crate) fn remove_waiter(&self) {
        self.waiters.fetch_sub(1, Ordering::AcqRel);
    }

    /// Publishes the outcome and wakes every waiter. The first outcome
    /// stands: a leader lands once, and its guard lands `Abandoned` only if
    /// it never did.
    pub(crate) fn land(&self, landing: Landing<V>) {
        let _ = self.landing.set(landing);
        self.landed.notify(usize::MAX);
    }

    /// What landed, if anything has: without waiting.
    pub(crate) fn landing(&self) -> Option<Landing<V>> {
        self.landing.get().cloned()
    }

    /// Waits for the outcome.
    pub(crate) async fn wait(&self) -> Landing<V> {
        loop {
            if let Some(landing) = self.landing() {
                return landing;
            }
            // Listen before checking again, so a landing between the check
            // and the listen is not missed.
            let listener = self.landed.listen();
            if let Some(landing) = self.landing() {
                return landing;
            }
            listener.await;
        }
    }
}

/// The attached flights of one shard.
type Attached<K, V> = HashMap<K, Arc<Flight<V>>>;

/// The flights of one cache, by key.
pub(crate) struct FlightMap<K, V> {
    shards: Box<[Mutex<Attached<K, V>>]>,
    hasher: RandomState,
}

/// A caller's part in a load.
pub(crate) enum Role<V> {
    /// Start the load.
    Lead(Arc<Flight<V>>),
    /// Wait for the load another caller leads.
    Join(Arc<Flight<V>>),
}

/// A locked shard: the critical section in which a flight is looked up,
/// attached, detached or checked before storing.
pub(crate) struct Shard<'a, K, V>(MutexGuard<'a, Attached<K, V>>);

impl<K: Hash + Eq + Clone, V: Clone> FlightMap<K, V> {
    pub(crate) fn new() -> Self {
        let shards = std::thread::available_parallelism()
            .map_or(8, |n| n.get() * 4)
            .next_power_of_two()
            .clamp(8, 256);
        FlightMap {
            shards: (0..shards).map(|_| Mutex::new(HashMap::new())).collect(),
            hasher: RandomState::new(),
        }
    }

    pub(crate) fn lock(&self, key: &K) -> Shard<'_, K, V> {
        let index = self.hasher.hash_one(key) as usize & (self.shards.len() - 1);
        Shard(lock(&self.shards[index]))
    }

    /// Detaches every flight (none of them will store its value) and keeps
    /// every shard locked until the guards are dropped. Shards are always
    /// locked in index order, and nothing else holds two at once.
    pub(crate) fn detach_all_locked(&self) -> Vec<MutexGuard<'_, Attached<K, V>>> {
        self.shards
            .iter()
            .map(|shard| {
                let mut shard = lock(shard);
                shard.clear();
                shard
            })
            .collect()
    }
}

impl<K: Hash + Eq + Clone, V: Clone> Shard<'_, K, V> {
    /// Joins the attached flight of `key`, or attaches a new one to lead.
    pub(crate) fn join_or_lead(&mut self, key: &K) -> Role<V> {
        if let Some(flight) = self.0.get(key) {
            if flight.joinable() {
                flight.add_waiter();
                return Role::Join(flight.clone());
            }
            // Its value would be one loaded before a tag moved: lead anew,
            // detaching it (it still answers the callers that joined it).
        }
        let flight = Flight::new();
        self.0.insert(key.clone(), flight.clone());
        Role::Lead(flight)
    }

    /// Attaches a new flight to lead, detaching any flight already there.
    pub(crate) fn lead_anew(&mut self, key: &K) -> Arc<Flight<V>> {
        let flight = Flight::new();
        self.0.insert(key.clone(), flight.clone());
        flight
    }

    /// Detaches `flight` if it is the one attached for `key`; says whether it was.
    pub(crate) fn detach_if(&mut self, key: &K, flight: &Arc<Flight<V>>) -> bool {
        match self.0.get(key) {
            Some(attached) if Arc::ptr_eq(attached, flight) => {
                self.0.remove(key);
                true
            }
            _ => false,
        }
    }

    /// Whether `flight` is the one attached for `key` (the shared tier's
    /// look-up asks; a build without it does not).
    #[allow(dead_code)]
    pub(crate) fn holds(&self, key: &K, flight: &Arc<Flight<V>>) -> bool {
        self.0
            .get(key)
            .is_some_and(|attached| Arc::ptr_eq(attached, flight))
    }

    /// Whether a flight is attached for `key`.
    pub(crate) fn is_attached(&self, key: &K) -> bool {
        self.0.contains_key(key)
    }

    /// Detaches whatever flight is attached for `key`.
    pub(crate) fn detach(&mut self, key: &K) {
        self.0.remove(key);
    }
}

/// Locks a shard, ignoring poison. The only user code its critical sections
/// run is a key's `Hash`, `Eq` and `Clone`; if one panics, the `HashMap` is
/// still consistent (at worst a flight stays attached until invalidated), so
/// the panic must not wedge every later caller of the shard.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
