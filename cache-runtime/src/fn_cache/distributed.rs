//! The Redis tier behind a `distributed` function: the read a load makes
//! before running the body, the write-back of a loaded value, and the
//! delete an invalidation sends.
//!
//! Within one process an invalidation is never undone by a write-back:
//! each write-back records its key stripe's epoch when the value is stored
//! in memory, and sends its `SET` only if no invalidation of the stripe
//! came since, holding the stripe's lock while it does; an invalidation
//! bumps the epoch, then takes the lock to send its `DEL`. All commands go
//! over one connection, which Redis executes in order, so a `SET` sent
//! before the `DEL` is deleted by it. (Across instances, a write-back of a
//! load that began before another instance's invalidation can still land
//! after its `DEL`; the fleet-wide guarantee needs versions that Redis
//! keeps, which this tier does not have yet.)

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hash};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use super::landing::entry_of;
use super::{FnCache, LeaderGuard};
use crate::clock::{nanos, Nanos};
use crate::expiry::Horizons;
use crate::flight::Landing;
use crate::redis::{
    digest, key_name, tag_digest, unix_now_ms, Codec, Envelope, Heard, Locked, Message, Read,
    RedisTier,
};
use crate::stats::Counter;
use crate::tags::Tags;

/// Where the key's own version sits in an envelope's version list.
const KEY_VERSION: u128 = 0;

/// Stripes of keys that serialise write-backs against invalidations.
const STRIPES: usize = 64;

/// One function's Redis tier.
pub(crate) struct L2<K, V> {
    tier: Arc<RedisTier>,
    codec: Codec<K, V>,
    stripes: Box<[Stripe]>,
    hasher: RandomState,
}

#[derive(Default)]
struct Stripe {
    /// Bumped by every invalidation of a key of the stripe.
    epoch: AtomicU64,
    /// Held while a write-back or an invalidation talks to Redis.
    lock: tokio::sync::Mutex<()>,
}

/// A write-back a load leaves for its leader to send.
pub(crate) struct PendingWrite {
    name: String,
    bytes: Vec<u8>,
    px: u64,
    stripe: usize,
    epoch: u64,
}

/// What one look at Redis found.
enum Looked<V> {
    Fresh(V),
    Nothing,
    /// Redis failed, or an invalidation superseded the load: run the body.
    Unavailable,
}

/// What a leader leaves for Redis once its load is over: the write-back,
/// and the fleet lock to release (`Mutex`es so the guard stays `Sync`).
#[derive(Default)]
pub(crate) struct WriteSlot {
    write: Mutex<Option<PendingWrite>>,
    lock: Mutex<Option<HeldLock>>,
    /// The versions in Redis of the load's tags when it began (a tagged
    /// distributed function): what its write-back carries, and what a copy
    /// read from Redis must still match.
    tags: Mutex<Option<Vec<(u128, u64)>>>,
    /// The tags' versions could not be read: Redis is not used by this load.
    unusable: AtomicBool,
    /// The value, read with the versions (`None` inside: none in Redis).
    prefetched: Mutex<Option<Option<Vec<u8>>>>,
}

/// The fleet lock of a key this instance loads. While held, a task extends
/// it every third of its life; dropping it (the load finished, or its
/// leader was cancelled or panicked) stops that, and an unreleased lock
/// then expires.
pub(crate) struct HeldLock {
    name: String,
    token: String,
    done: Arc<AtomicBool>,
}

impl Drop for HeldLock {
    fn drop(&mut self) {
        self.done.store(true, Ordering::Release);
    }
}

impl WriteSlot {
    fn put(&self, write: PendingWrite) {
        *self.write.lock().unwrap_or_else(PoisonError::into_inner) = Some(write);
    }

    fn hold_lock(&self, tier: &Arc<RedisTier>, name: String, token: String) {
        let done = Arc::new(AtomicBool::new(false));
        let (tier, lock, held, stop) = (
            Arc::clone(tier),
            name.clone(),
            token.clone(),
            Arc::clone(&done),
        );
        let every = tier.lock_ttl() / 3;
        crate::background::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                if stop.load(Ordering::Acquire) || !tier.extend_lock(&lock, &held).await {
                    return;
                }
            }
        });
        *self.lock.lock().unwrap_or_else(PoisonError::into_inner) =
            Some(HeldLock { name, token, done });
    }

    fn tag_versions(&self) -> Option<Vec<(u128, u64)>> {
        self.tags
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn take(&self) -> (Option<PendingWrite>, Option<HeldLock>) {
        let write = self
            .write
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let lock = self
            .lock
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        (write, lock)
    }
}

impl<K, V> FnCache<K, V>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// This cache, backed by `tier`: loads ask Redis first and write their
    /// values back. Make the cache with [`CacheConfig::distributed`]
    /// (`crate::CacheConfig::distributed`) so that values filled from
    /// Redis keep only the rest of their life.
    pub fn with_redis(mut self, tier: Arc<RedisTier>, codec: Codec<K, V>) -> Self {
        self.l2 = Some(L2 {
            tier,
            codec,
            stripes: (0..STRIPES).map(|_| Stripe::default()).collect(),
            hasher: RandomState::new(),
        });
        self
    }

    /// The Redis key of `key`'s entry (`{ns}:{name}:v{version}:{<digest>}`),
    /// for inspection; `None` without a Redis tier.
    pub fn redis_key(&self, key: &K) -> Option<String> {
        let l2 = self.l2.as_ref()?;
        self.l2_name(l2, key).map(|(name, _)| name)
    }

    /// Before a load of a distributed function runs (any kind): the
    /// versions its key and its tags have in Redis now, which its copy in
    /// Redis will carry; an invalidation of the key or a tag anywhere in the
    /// fleet bumps one, so a copy written by a load that began before it is
    /// never served, wherever and whenever it lands. Without them (Redis
    /// failed) nothing is read from or written to Redis for this load.
    ///
    /// With `with_value` (a load that reads Redis before its body), the
    /// value is read in the same round trip (its key shares the version's
    /// slot) for the first look.
    pub(super) async fn read_versions(
        &self,
        guard: &LeaderGuard<'_, K, V>,
        tags: &Tags,
        with_value: bool,
    ) {
        let Some(l2) = self.l2.as_ref() else { return };
        let Some((name, _)) = self.l2_name(l2, &guard.key) else {
            return;
        };
        let key_version = format!("{name}:ver");
        let digests: Vec<u128> = tags.names().map(tag_digest).collect();
        let value = with_value.then_some(name.as_str());
        match l2.tier.versions(value, &key_version, &digests).await {
            Some((value, versions)) => {
                if with_value {
                    *guard
                        .write
                        .prefetched
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner) = Some(value);
                }
                // The key's version first, as the digest 0 (no tag's).
                let listed: Vec<(u128, u64)> = std::iter::once(KEY_VERSION)
                    .chain(digests)
                    .zip(versions)
                    .collect();
                *guard
                    .write
                    .tags
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner) = Some(listed);
            }
            None => {
                self.counters.incr(Counter::L2Errors);
                guard.write.unusable.store(true, Ordering::Release);
            }
        }
    }

    /// Whether this cache's Redis tier skips Redis now (breaker open).
    pub(super) fn l2_breaker_open(&self) -> bool {
        self.l2.as_ref().is_some_and(|l2| l2.tier.breaker_open())
    }

    /// Hears the bus: another instance's invalidation or expiry of a key
    /// of this function (same name and `version`) drops or expires it in
    /// this cache's memory, and after the bus reconnects (messages may have
    /// been lost) the whole memory is dropped. Made caches of `#[cached]`
    /// functions listen from the start; call this on one made by hand.
    pub fn listen_bus(&'static self) {
        let Some(l2) = self.l2.as_ref() else { return };
        let decode = l2.codec.key_from_bytes;
        l2.tier.listen(
            self.name.clone(),
            l2.codec.version,
            Box::new(move |heard| match heard {
                Heard::Key(bytes, expire) => {
                    if let Some(key) = decode(bytes) {
                        if expire {
                            self.expire(&key);
                        } else {
                            self.invalidate(&key);
                        }
                    }
                }
                Heard::Everything => self.invalidate_all(),
            }),
        );
        l2.tier.start_bus();
    }

    /// Backs this cache with the process's installed tier, if there is one.
    pub(crate) fn with_installed_redis(self, codec: Codec<K, V>) -> Self {
        match crate::redis::installed() {
            Some(tier) => self.with_redis(tier, codec),
            None => self,
        }
    }

    /// The Redis key of `key`, and its stripe.
    fn l2_name(&self, l2: &L2<K, V>, key: &K) -> Option<(String, usize)> {
        let bytes = (l2.codec.key_bytes)(key)?;
        let name = key_name(
            l2.tier.namespace(),
            &self.name,
            l2.codec.version,
            &digest(&bytes),
        );
        let stripe = (l2.hasher.hash_one(key) as usize) % STRIPES;
        Some((name, stripe))
    }

    /// Before a foreground load runs its body: the value Redis holds for
    /// the key, if it is fresh (stored in memory with the rest of its life
    /// and handed to the callers that joined). A value past its freshness
    /// but within its stale or fail-safe window is stored as this
    /// instance's fallback, and the body runs.
    ///
    /// With nothing fresh there, the fleet's single flight: take the key's
    /// lock (`SET NX PX`) and run the body, or, while another instance
    /// holds it, wait for its value: woken by the holder's "filled" message
    /// on the bus, with a poll (2 ms doubling to 50 ms) as the backstop;
    /// run the body only once the lock is gone without a value.
    pub(super) async fn read_l2(&self, guard: &LeaderGuard<'_, K, V>) -> Option<V> {
        let l2 = self.l2.as_ref()?;
        if guard.write.unusable.load(Ordering::Acquire) {
            return None;
        }
        l2.tier.start_bus();
        let (name, _) = self.l2_name(l2, &guard.key)?;
        let lock = format!("{name}:lock");
        let mut pause = Duration::from_millis(2);
        let mut first = true;
        let fill = l2.tier.fill_of(&name);
        loop {
            // Listening before looking: a fill between the look and the
            // wait still wakes it.
            let filled = fill.notified();
            tokio::pin!(filled);
            filled.as_mut().enable();
            match self.look_up_l2(l2, &name, guard, first).await {
                Looked::Fresh(value) => return Some(value),
                Looked::Unavailable => return None,
                Looked::Nothing => {}
            }
            first = false;
            if !l2.tier.fleet_lock() {
                return None;
            }
            match l2.tier.lock(&lock).await {
                // Ours: this instance loads, and releases it after the write-back.
                Locked::Taken(token) => {
                    guard.write.hold_lock(&l2.tier, lock, token);
                    return None;
                }
                Locked::Failed => {
                    guard.write.unusable.store(true, Ordering::Release);
                    return None;
                }
                Locked::HeldElsewhere => {}
            }
            // Another instance loads: its value will appear.
            tokio::select! {
                () = &mut filled => {}
                () = tokio::time::sleep(pause) => {
                    pause = (pause * 2).min(Duration::from_millis(50));
                }
            }
        }
    }

    /// One look at Redis for the key: a fresh value (filled into memory),
    /// or nothing fresh (a stale one kept as the fallback), or Redis
    /// unavailable. Counted as a hit, miss or error on the first look only.
    async fn look_up_l2(
        &self,
        l2: &L2<K, V>,
        name: &str,
        guard: &LeaderGuard<'_, K, V>,
        count: bool,
    ) -> Looked<V> {
        let counted = |counter| {
            if count {
                self.counters.incr(counter);
            }
        };
        let prefetched = guard
            .write
            .prefetched
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let read = match prefetched {
            // Read with the versions, in the same round trip.
            Some(Some(bytes)) => Read::Hit(bytes),
            Some(None) => Read::Miss,
            None => l2.tier.get(name).await,
        };
        let bytes = match read {
            Read::Hit(bytes) => bytes,
            Read::Miss => {
                counted(Counter::L2Misses);
                return Looked::Nothing;
            }
            Read::Failed => {
                // Redis is slow or down: this load does not wait for it again.
                self.counters.incr(Counter::L2Errors);
                guard.write.unusable.store(true, Ordering::Release);
                return Looked::Unavailable;
            }
        };
        let decoded = Envelope::decode(&bytes).and_then(|(envelope, payload)| {
            Some((envelope, (l2.codec.from_value_bytes)(payload)?))
        });
        let Some((envelope, value)) = decoded else {
            // Corrupt, truncated or foreign: a miss; the load overwrites it.
            counted(Counter::L2Corrupt);
            counted(Counter::L2Misses);
            return Looked::Nothing;
        };
        // A tag invalidated (or expired) anywhere since that copy's load
        // began: not served, and the load overwrites it.
        if envelope.tags != guard.write.tag_versions().unwrap_or_default() {
            counted(Counter::L2Misses);
            return Looked::Nothing;
        }
        let now = self.clock.now_nanos();
        let now_ms = unix_now_ms();
        let at = |ms: u64| now.saturating_add(ms.saturating_sub(now_ms).saturating_mul(1_000_000));
        let fail_safe_until = at(envelope.fail_safe_until_ms);
        if fail_safe_until <= now {
            counted(Counter::L2Misses);
            return Looked::Nothing;
        }
        let horizons = Horizons {
            fresh_until: at(envelope.fresh_until_ms),
            stale_until: at(envelope.stale_until_ms),
            fail_safe_until,
            lifetime: Duration::from_nanos(fail_safe_until - now),
        };
        let fresh = now < horizons.fresh_until;
        let stored = value.clone();
        let load_nanos: Nanos = u64::from(envelope.load_micros).saturating_mul(1_000);
        {
            let (key, flight) = (&guard.key, &guard.flight);
            let mut shard = self.flights.lock(key);
            // An invalidation since the load began: not this value, and
            // nothing to wait for.
            let attached = if fresh {
                shard.detach_if(key, flight)
            } else {
                shard.holds(key, flight)
            };
            if !attached {
                return Looked::Unavailable;
            }
            guard.stamps.keep_for(nanos(horizons.lifetime));
            let tags = guard.stamps.stamps().clone();
            self.memory
                .insert(key.clone(), entry_of(stored, horizons, load_nanos, tags));
        }
        if !fresh {
            counted(Counter::L2Misses);
            return Looked::Nothing;
        }
        self.counters.incr(Counter::L2Hits);
        if guard.flight.waiters() > 0 {
            guard.flight.land(Landing::Value(value.clone()));
        }
        Looked::Fresh(value)
    }

    /// After a load stored `value` in memory: the write-back its leader
    /// sends, with the entry's horizons as wall-clock times and a Redis
    /// expiry at the last one. The caller holds the key's shard lock (the
    /// stripe's epoch is read in the same critical section as the store).
    pub(super) fn prepare_l2_write(
        &self,
        guard: &LeaderGuard<'_, K, V>,
        value: &V,
        horizons: Horizons,
        took: Duration,
    ) {
        let Some(l2) = self.l2.as_ref() else { return };
        if guard.write.unusable.load(Ordering::Acquire) {
            return;
        }
        let tags = guard.write.tag_versions().unwrap_or_default();
        if tags.len() > 255 {
            return;
        }
        let Some((name, stripe)) = self.l2_name(l2, &guard.key) else {
            return;
        };
        let Some(payload) = (l2.codec.value_bytes)(value) else {
            return;
        };
        if payload.len() > l2.tier.max_payload() {
            tracing::debug!(target: "herdcache", function = %self.name, bytes = payload.len(), "value too large for Redis: kept in memory only");
            return;
        }
        let now = self.clock.now_nanos();
        let now_ms = unix_now_ms();
        let ms = |horizon: Nanos| now_ms.saturating_add(horizon.saturating_sub(now) / 1_000_000);
        let envelope = Envelope {
            fresh_until_ms: ms(horizons.fresh_until),
            stale_until_ms: ms(horizons.stale_until),
            fail_safe_until_ms: ms(horizons.fail_safe_until),
            load_micros: u32::try_from(took.as_micros()).unwrap_or(u32::MAX),
            tags,
        };
        let px = envelope.fail_safe_until_ms.saturating_sub(now_ms).max(1);
        let epoch = l2.stripes[stripe].epoch.load(Ordering::Acquire);
        guard.write.put(PendingWrite {
            name,
            bytes: envelope.encode(&payload),
            px,
            stripe,
            epoch,
        });
    }

    /// After a load: its write-back, then the release of its fleet lock
    /// (after the write, so that waiting instances find the value).
    pub(super) async fn finish_l2(&self, slot: &WriteSlot) {
        let (write, lock) = slot.take();
        if let Some(write) = write {
            self.send_l2_write(write).await;
        }
        if let (Some(l2), Some(lock)) = (self.l2.as_ref(), lock) {
            l2.tier.unlock(&lock.name, &lock.token).await;
        }
    }

    /// Sends a write-back, unless an invalidation of its stripe came since
    /// its value was stored.
    async fn send_l2_write(&self, write: PendingWrite) {
        let Some(l2) = self.l2.as_ref() else { return };
        {
            let stripe = &l2.stripes[write.stripe];
            let _serial = stripe.lock.lock().await;
            if stripe.epoch.load(Ordering::Acquire) != write.epoch {
                return;
            }
            if !l2.tier.set(&write.name, &write.bytes, write.px).await {
                self.counters.incr(Counter::L2Errors);
                return;
            }
        }
        // Instances waiting for this key's value look again now.
        let filled = Message::Filled {
            node: l2.tier.node(),
            key: write.name,
        };
        l2.tier.publish(&filled).await;
    }

    /// Deletes the key's entry in Redis, and tells the other instances to
    /// drop (`expire`: expire) their copy in memory.
    pub(super) async fn delete_l2(&self, key: &K, expire: bool) {
        let Some(l2) = self.l2.as_ref() else { return };
        let Some(bytes) = (l2.codec.key_bytes)(key) else {
            return;
        };
        let Some((name, stripe)) = self.l2_name(l2, key) else {
            return;
        };
        let stripe = &l2.stripes[stripe];
        stripe.epoch.fetch_add(1, Ordering::AcqRel);
        {
            let _serial = stripe.lock.lock().await;
            // The key's version outlives every copy that may carry an older
            // one: the longest life a value has, and an hour for its load.
            let keep = self
                .expiry
                .longest_lifetime()
                .saturating_add(Duration::from_secs(3600));
            if !l2
                .tier
                .delete_and_bump(&name, &format!("{name}:ver"), keep)
                .await
            {
                self.counters.incr(Counter::L2Errors);
            }
        }
        let message = Message::Key {
            node: l2.tier.node(),
            function: self.name.clone(),
            version: l2.codec.version,
            key: bytes,
            expire,
        };
        if !l2.tier.publish(&message).await {
            self.counters.incr(Counter::L2Errors);
        }
    }
}
