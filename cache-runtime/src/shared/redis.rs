//! The shared tier's entry points for the engine (a child module of
//! `fn_cache`, declared through `shared_tier_module!`): before a load
//! (`read_versions`), look up and the fleet's single flight (`read_l2`),
//! write back (`l2_payload`, `prepare_l2_write`, `finish_l2`), and end a
//! key or the whole function (`begin_key`, `begin_all`, then `announce`).
//! Without the `redis` feature, `memory_only.rs` stands in.
//!
//! An invalidation is never undone by a write-back, in this process or any
//! other: a load reads its key's and its tags' versions in Redis before its
//! body, its copy carries them, and an invalidation bumps them (in Redis
//! first, then in memory, then on the bus), so a copy from a load that
//! began before it never matches again, wherever and whenever it lands.

use std::hash::Hash;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use super::landing::entry_of;
use super::{FnCache, LeaderGuard};
use crate::clock::{nanos, Nanos};
use crate::expiry::Horizons;
use crate::flight::Landing;
use crate::redis::{
    digest, function_prefix, key_name, tag_digest, unix_now_ms, version_key, Codec, Envelope,
    Heard, Locked, Message, Op, Read, RedisTier,
};
use crate::stats::Counter;
use crate::tags::Tags;

/// Where the key's own version sits in an envelope's version list.
const KEY_VERSION: u128 = 0;

/// One function's Redis tier.
pub(crate) struct L2<K, V> {
    tier: Arc<RedisTier>,
    codec: Codec<K, V>,
    /// `{ns}:{name}:v{version}`: the start of its keys in Redis.
    prefix: String,
}

/// A fleet operation whose first step was taken, and whose bus message the
/// caller sends once its memory is done (`None`: nothing to send).
pub(crate) type Begun = Option<(Arc<RedisTier>, Op)>;

/// A write-back a load leaves for its leader to send.
pub(crate) struct PendingWrite {
    name: String,
    bytes: Vec<u8>,
    px: u64,
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
    /// The key's name in Redis when the load began (its epochs then) and
    /// its bytes: the write-back goes there, or nowhere.
    name: Mutex<Option<(String, Vec<u8>)>>,
}

/// The fleet lock of a key this instance loads. While held, a task extends
/// it every third of its life; dropping it (the load finished, or its
/// leader was cancelled or panicked) stops that, and an unreleased lock
/// then expires.
pub(crate) struct HeldLock {
    name: String,
    token: String,
    done: Arc<AtomicBool>,
    tier: Arc<RedisTier>,
    released: bool,
}

impl HeldLock {
    /// Releases it now (compare-and-delete).
    async fn release(mut self) {
        self.released = true;
        self.tier.unlock(&self.name, &self.token).await;
    }
}

impl Drop for HeldLock {
    fn drop(&mut self) {
        self.done.store(true, Ordering::Release);
        // Not released (its leader was cancelled, panicked, or its Redis
        // write failed): release it off the caller's path, so that the
        // other instances do not wait out its life.
        if !self.released {
            let (tier, name, token) = (
                Arc::clone(&self.tier),
                std::mem::take(&mut self.name),
                std::mem::take(&mut self.token),
            );
            crate::redis::spawn(async move { tier.unlock(&name, &token).await });
        }
    }
}

impl WriteSlot {
    fn put(&self, write: PendingWrite) {
        *self.write.lock().unwrap_or_else(PoisonError::into_inner) = Some(write);
    }

    fn hold_lock(&self, tier: &Arc<RedisTier>, name: String, token: String) {
        let done = Arc::new(AtomicBool::new(false));
        let (extender, lock, held, stop) = (
            Arc::clone(tier),
            name.clone(),
            token.clone(),
            Arc::clone(&done),
        );
        // At least every millisecond: a tiny lock_ttl must not spin.
        let every = (tier.lock_ttl() / 3).max(Duration::from_millis(1));
        let until = std::time::Instant::now() + tier.max_wait();
        crate::redis::spawn(async move {
            let mut missed = 0;
            loop {
                tokio::time::sleep(every).await;
                // Past `max_wait` the others stop waiting: let it expire.
                if stop.load(Ordering::Acquire) || std::time::Instant::now() > until {
                    return;
                }
                // Held no more (expired, taken), or Redis failing twice in
                // a row: stop extending.
                if extender.extend_lock(&lock, &held).await {
                    missed = 0;
                } else {
                    missed += 1;
                    if missed == 2 {
                        return;
                    }
                }
            }
        });
        *self.lock.lock().unwrap_or_else(PoisonError::into_inner) = Some(HeldLock {
            name,
            token,
            done,
            tier: Arc::clone(tier),
            released: false,
        });
    }

    fn name(&self) -> Option<String> {
        self.name
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .map(|(name, _)| name.clone())
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
    /// values back. Make the cache with
    /// [`CacheConfig::distributed`](crate::CacheConfig::distributed) so that
    /// values filled from Redis keep only the rest of their life.
    pub fn with_redis(mut self, tier: Arc<RedisTier>, codec: Codec<K, V>) -> Self {
        let prefix = function_prefix(tier.namespace(), &self.name, codec.version);
        tier.note_life(self.expiry.longest_lifetime());
        self.l2 = Some(L2 {
            tier,
            codec,
            prefix,
        });
        self
    }

    /// The Redis key of `key`'s entry
    /// (`{ns}:{name}:v{version}:e{epochs}:{<digest>}`), for inspection;
    /// `None` without a Redis tier, or when Redis does not answer the
    /// function's epochs (read once, then known).
    pub async fn redis_key(&self, key: &K) -> Option<String> {
        let l2 = self.l2.as_ref()?;
        let epochs = l2.tier.epochs(&l2.prefix).await?;
        self.l2_name(l2, epochs, key)
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
        let Some(bytes) = (l2.codec.key.to_bytes)(&guard.key) else {
            return;
        };
        // In one order everywhere: tags may come from a set.
        let mut digests: Vec<u128> = tags.names().map(tag_digest).collect();
        digests.sort_unstable();
        digests.dedup();
        // An invalidation of this key, a tag or the function that did not
        // reach Redis yet: its copies there may be stale, and are left alone.
        if l2
            .tier
            .distrusts(&self.name, l2.codec.version, &bytes, &digests)
        {
            guard.write.unusable.store(true, Ordering::Release);
            return;
        }
        let Some(epochs) = l2.tier.epochs(&l2.prefix).await else {
            self.counters.incr(Counter::L2Errors);
            guard.write.unusable.store(true, Ordering::Release);
            return;
        };
        let digest = digest(&bytes);
        let name = key_name(&l2.prefix, epochs, &digest);
        let key_version = version_key(&l2.prefix, &digest);
        let value = with_value.then_some(name.as_str());
        // The key's version outlives every copy that may carry it.
        let keep = self
            .expiry
            .longest_lifetime()
            .saturating_add(l2.tier.longest_load());
        match l2.tier.versions(value, &key_version, keep, &digests).await {
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
                *guard
                    .write
                    .name
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner) = Some((name, bytes));
            }
            None => {
                self.counters.incr(Counter::L2Errors);
                guard.write.unusable.store(true, Ordering::Release);
            }
        }
    }

    /// Bus messages from other instances its Redis tier applied (0 without).
    pub(super) fn bus_messages(&self) -> u64 {
        self.l2
            .as_ref()
            .map_or(0, |l2| l2.tier.bus_messages_heard())
    }

    /// Fleet operations its Redis tier keeps for replay (0 without).
    pub(super) fn fleet_pending(&self) -> u64 {
        self.l2
            .as_ref()
            .map_or(0, |l2| l2.tier.pending_operations() as u64)
    }

    /// Fleet operations its Redis tier had to keep, since start (0 without).
    pub(super) fn fleet_failures(&self) -> u64 {
        self.l2.as_ref().map_or(0, |l2| l2.tier.fleet_failures())
    }

    /// Whether this cache's Redis tier skips Redis now (breaker open).
    pub(super) fn l2_breaker_open(&self) -> bool {
        self.l2.as_ref().is_some_and(|l2| l2.tier.breaker_open())
    }

    /// Hears the bus: another instance's invalidation or expiry of a key
    /// of this function (same name and `version`) drops or expires it in
    /// this cache's memory, and its `invalidate_all` or a reconnect of the
    /// bus (messages may have been lost) drops the whole memory. What is
    /// heard is applied to memory only: never sent on again. Made caches of `#[cached]`
    /// functions listen from the start; call this on one made by hand.
    pub fn listen_bus(&'static self) {
        let Some(l2) = self.l2.as_ref() else { return };
        let decode = l2.codec.key.from_bytes;
        l2.tier.listen(
            self.name.clone(),
            l2.codec.version,
            Box::new(move |heard| match heard {
                Heard::Key(bytes, expire) => {
                    if let Some(key) = decode(bytes) {
                        if expire {
                            self.expire_here(&key);
                        } else {
                            self.invalidate_here(&key);
                        }
                    }
                }
                Heard::Everything => self.invalidate_all_here(),
            }),
        );
        l2.tier.start_bus();
    }

    /// Backs this cache with the process's installed tier, if there is one.
    pub(crate) fn with_installed_redis(self, codec: Codec<K, V>) -> Self {
        match crate::redis::installed() {
            Some(tier) => self.with_redis(tier, codec),
            None => {
                // Once per function (its cache is made once): a fleet that
                // forgot its URL would otherwise load once per instance,
                // silently.
                tracing::warn!(
                    target: "herdcache",
                    function = %self.name,
                    "`distributed` function with no Redis tier (no `Runtime::install`, no \
                     HERDCACHE_REDIS_URL): its values stay in this process"
                );
                self
            }
        }
    }

    /// The Redis key of `key` under these epochs.
    fn l2_name(&self, l2: &L2<K, V>, epochs: crate::redis::Epochs, key: &K) -> Option<String> {
        let bytes = (l2.codec.key.to_bytes)(key)?;
        Some(key_name(&l2.prefix, epochs, &digest(&bytes)))
    }

    /// Before a load (any but `<fn>_refresh`) runs its body: the value
    /// Redis holds for the key, if it is fresh (stored in memory with the
    /// rest of its life and handed to the callers that joined). A value
    /// past its freshness but within its stale or fail-safe window is
    /// stored as this instance's fallback, and the body runs.
    ///
    /// With nothing fresh there, the fleet's single flight: take the key's
    /// lock (`SET NX PX`) and run the body, or, while another instance
    /// holds it, wait for its value: woken by the holder's "filled" message
    /// on the bus, with a poll (2 ms doubling to 50 ms) as the backstop;
    /// run the body only once the lock is gone without a value, or once it
    /// waited `max_wait` (a holder whose load is stuck).
    pub(super) async fn read_l2(&self, guard: &LeaderGuard<'_, K, V>) -> Option<V> {
        let l2 = self.l2.as_ref()?;
        if guard.write.unusable.load(Ordering::Acquire) {
            return None;
        }
        l2.tier.start_bus();
        let name = guard.write.name()?;
        let lock = format!("{name}:lock");
        let mut pause = Duration::from_millis(2);
        let mut first = true;
        let waiting_since = std::time::Instant::now();
        let fill = l2.tier.fill_of(&name);
        loop {
            // Listening before looking: a fill between the look and the
            // wait still wakes it.
            let filled = fill.notified();
            tokio::pin!(filled);
            filled.as_mut().enable();
            match self.look_up_l2(l2, &name, guard, first).await {
                Looked::Fresh(value) => {
                    // Found after waiting for the instance that held the
                    // lock: a load this one did not run.
                    if !first {
                        self.counters.incr(Counter::RemoteFills);
                    }
                    return Some(value);
                }
                Looked::Unavailable => return None,
                Looked::Nothing => {}
            }
            first = false;
            if !l2.tier.fleet_lock() {
                return None;
            }
            if waiting_since.elapsed() > l2.tier.max_wait() {
                return None;
            }
            match l2.tier.lock(&lock).await {
                // Ours: this instance loads, and releases it after the
                // write-back; unless the holder before it filled the value
                // just now.
                Locked::Taken(token) => {
                    guard.write.hold_lock(&l2.tier, lock, token);
                    if let Looked::Fresh(value) = self.look_up_l2(l2, &name, guard, false).await {
                        // The holder before filled it just now.
                        self.counters.incr(Counter::RemoteFills);
                        if let (_, Some(held)) = guard.write.take() {
                            held.release().await;
                        }
                        return Some(value);
                    }
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
            Some((envelope, (l2.codec.value.from_bytes)(payload)?))
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
        // Never longer than this instance would keep one of its own values
        // (a corrupt payload, or a writer whose clock runs ahead).
        let longest = now.saturating_add(nanos(self.expiry.longest_lifetime()));
        let at = |ms: u64| {
            now.saturating_add(ms.saturating_sub(now_ms).saturating_mul(1_000_000))
                .min(longest)
        };
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
            // The envelope has no load time: the freshness horizon less the
            // function's ttl (exact without jitter).
            loaded_at: at(envelope.fresh_until_ms).saturating_sub(nanos(self.expiry.ttl())),
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
            let tags = *guard.stamps.stamps();
            self.memory
                .insert(key.clone(), entry_of(stored, horizons, load_nanos, tags));
        }
        if !fresh {
            counted(Counter::L2Misses);
            return Looked::Nothing;
        }
        self.counters.incr(Counter::L2Hits);
        guard
            .flight
            .mark_answered_by(crate::flight::Answered::Remote);
        if guard.flight.waiters() > 0 {
            guard.flight.land(Landing::Value(value.clone()));
        }
        Looked::Fresh(value)
    }

    /// The payload a load's value would travel as, made before the store
    /// takes its lock (`Serialize` is user code); `None` when nothing goes
    /// to Redis for this load.
    pub(super) fn l2_payload(&self, guard: &LeaderGuard<'_, K, V>, value: &V) -> Option<Vec<u8>> {
        let l2 = self.l2.as_ref()?;
        if guard.write.unusable.load(Ordering::Acquire) {
            return None;
        }
        let payload = (l2.codec.value.to_bytes)(value)?;
        if payload.len() > l2.tier.max_payload() {
            tracing::debug!(target: "herdcache", function = %self.name, bytes = payload.len(), "value too large for Redis: kept in memory only");
            return None;
        }
        Some(payload)
    }

    /// After a load stored its value in memory: the write-back its leader
    /// sends, with the entry's horizons as wall-clock times and a Redis
    /// expiry at the last one.
    pub(super) fn prepare_l2_write(
        &self,
        guard: &LeaderGuard<'_, K, V>,
        payload: Option<Vec<u8>>,
        horizons: Horizons,
        took: Duration,
    ) {
        let (Some(_), Some(payload)) = (self.l2.as_ref(), payload) else {
            return;
        };

        let tags = guard.write.tag_versions().unwrap_or_default();
        if tags.len() > 255 {
            return;
        }
        let Some(name) = guard.write.name() else {
            return;
        };
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
        guard.write.put(PendingWrite {
            name,
            bytes: envelope.encode(&payload),
            px,
        });
    }

    /// After a load: its write-back, then (if it held the fleet lock) the
    /// lock's release and a "filled" message for the instances waiting.
    /// A failed write ends it: Redis is slow or down, and the caller does
    /// not wait for it again (the lock is released off its path).
    ///
    /// After a load its body answered "not modified" (`kept`), the copy
    /// in Redis, when it is the same value (by digest), only has its
    /// horizons and expiry rewritten: the value does not travel again.
    /// The other instances take the new horizons from Redis when their
    /// own copy goes stale: their swr and early refreshes find it fresh
    /// there instead of asking the origin.
    pub(super) async fn finish_l2(&self, slot: &WriteSlot, kept: bool) {
        let Some(l2) = self.l2.as_ref() else { return };
        let (write, lock) = slot.take();
        let Some(write) = write else { return };
        let versions: Vec<(u128, u64)> = slot
            .tag_versions()
            .unwrap_or_default()
            .into_iter()
            .skip(1)
            .collect();
        let tags: Vec<u128> = versions.iter().map(|(digest, _)| *digest).collect();
        // An invalidation that did not reach Redis since the load began:
        // the copy is not written (Redis may still hold what it ends).
        if l2.tier.pending_operations() > 0 {
            let key = slot
                .name
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .as_ref()
                .map(|(_, bytes)| bytes.clone())
                .unwrap_or_default();
            if l2.tier.distrusts(&self.name, l2.codec.version, &key, &tags) {
                return;
            }
        }
        // The tags' versions outlive the copy: kept for its life and the
        // longest load, before it is written.
        let life = Duration::from_millis(write.px).saturating_add(l2.tier.longest_load());
        if !versions.is_empty() {
            match l2.tier.keep_tags(&versions, life).await {
                Some(true) => {}
                // A tag moved (or its version is gone) since the load
                // began: the copy would never be served.
                Some(false) => return,
                None => {
                    self.counters.incr(Counter::L2Errors);
                    return;
                }
            }
        }
        let retimed = if kept {
            l2.tier.retime(&write.name, &write.bytes, write.px).await
        } else {
            Some(false)
        };
        match retimed {
            Some(true) => {
                tracing::debug!(target: "herdcache", function = %self.name, "not modified: the copy in Redis retimed in place");
            }
            Some(false) => {
                if !l2.tier.set(&write.name, &write.bytes, write.px).await {
                    self.counters.incr(Counter::L2Errors);
                    return;
                }
            }
            None => {
                self.counters.incr(Counter::L2Errors);
                return;
            }
        }
        if let Some(lock) = lock {
            lock.release().await;
            let filled = Message::Filled {
                node: l2.tier.node(),
                key: write.name,
            };
            l2.tier.publish(&filled).await;
        }
    }

    /// The first step of ending `key` for the fleet (`expire` or not): its
    /// version bumped and its copy deleted in Redis, or, when Redis does
    /// not take it, the operation kept for replay (and its copies
    /// distrusted until then). Before memory: a miss in between must not
    /// find the old copy there.
    pub(super) async fn begin_key(&self, key: &K, expire: bool) -> Begun {
        let l2 = self.l2.as_ref()?;
        let bytes = (l2.codec.key.to_bytes)(key)?;
        // The key's version outlives every copy that may carry an older
        // one: the longest life a value has, and the longest load.
        let keep = self
            .expiry
            .longest_lifetime()
            .saturating_add(l2.tier.longest_load());
        let op = Op::Key {
            function: self.name.clone(),
            version: l2.codec.version,
            key: bytes,
            keep,
            expire,
        };
        self.begin(l2, op).await
    }

    /// The first step of ending every entry of the function for the fleet:
    /// its epoch bumped (every copy's key name moves), or kept for replay.
    pub(super) async fn begin_all(&self) -> Begun {
        let l2 = self.l2.as_ref()?;
        let op = Op::All {
            function: self.name.clone(),
            version: l2.codec.version,
        };
        self.begin(l2, op).await
    }

    async fn begin(&self, l2: &L2<K, V>, op: Op) -> Begun {
        if l2.tier.begin(&op).await {
            Some((Arc::clone(&l2.tier), op))
        } else {
            self.counters.incr(Counter::L2Errors);
            None
        }
    }
}

/// The last step of a fleet operation begun: its bus message, once memory
/// is done (kept for replay if Redis does not take it).
pub(super) async fn announce(begun: Begun) {
    if let Some((tier, op)) = begun {
        tier.announce_or_keep(op).await;
    }
}
