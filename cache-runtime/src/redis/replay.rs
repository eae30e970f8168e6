//! The tier's side of fleet operations: the epochs in key names, running an
//! operation against Redis, keeping the ones Redis did not take and
//! replaying them (see `pending`), and waiting until none is left.

use std::sync::atomic::Ordering;
use std::sync::{Arc, PoisonError};
use std::time::{Duration, Instant};

use super::{
    digest, function_prefix, key_name, tag_digest, version_key, Epochs, Message, Op, Queued,
    RedisTier,
};

/// The first pause between replays; it doubles to [`LONGEST_PAUSE`], each
/// drawn at random below it (full jitter), and a Redis call that succeeds
/// meanwhile cuts it short.
const FIRST_PAUSE: Duration = Duration::from_millis(20);
const LONGEST_PAUSE: Duration = Duration::from_secs(1);

impl RedisTier {
    fn namespace_epoch_key(&self) -> String {
        format!("{}:epoch", self.namespace)
    }

    fn known(&self) -> std::sync::MutexGuard<'_, super::KnownEpochs> {
        self.epochs.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The epochs in the key names of the function with this prefix, as
    /// this instance knows them (`None` until a load read them).
    pub(crate) fn known_epochs(&self, prefix: &str) -> Option<Epochs> {
        let known = self.known();
        Some(Epochs {
            namespace: known.namespace?,
            function: *known.functions.get(prefix)?,
        })
    }

    /// The epochs of the function with this prefix: known, else read from
    /// Redis (after start-up, a reconnect of the bus, or a message saying
    /// one moved); `None` when Redis did not answer.
    pub(crate) async fn epochs(&self, prefix: &str) -> Option<Epochs> {
        self.epochs_through(prefix, false).await
    }

    /// [`epochs`](Self::epochs), read past an open breaker when
    /// `past_breaker` (an invalidation's replay must not wait for reads to
    /// be let through again).
    async fn epochs_through(&self, prefix: &str, past_breaker: bool) -> Option<Epochs> {
        if let Some(epochs) = self.known_epochs(prefix) {
            return Some(epochs);
        }
        let get = |key: String| {
            let command = redis::cmd("GET").arg(key).clone();
            let send = |mut connection: super::Connection| async move {
                command.query_async::<Option<u64>>(&mut connection).await
            };
            async move {
                if past_breaker {
                    self.attempt_anyway(send).await
                } else {
                    self.attempt(send).await
                }
            }
        };
        let (namespace, function) = futures_util::future::join(
            get(self.namespace_epoch_key()),
            get(format!("{prefix}:epoch")),
        )
        .await;
        let read = Epochs {
            namespace: namespace?.unwrap_or_default(),
            function: function?.unwrap_or_default(),
        };
        Some(self.learn(prefix, read))
    }

    /// Merges epochs read from Redis into what this instance knows, and
    /// returns the result. Epochs only move forward: whichever is newer,
    /// what this instance knows now (its own `invalidate_all`, or another
    /// read, landed while this one was on its way) or what this read found,
    /// wins. A read answered before a bump but applied after must not take
    /// it back (the soak caught one: a load then read an old epoch's copy).
    fn learn(&self, prefix: &str, read: Epochs) -> Epochs {
        let mut known = self.known();
        let namespace = known
            .namespace
            .unwrap_or(read.namespace)
            .max(read.namespace);
        known.namespace = Some(namespace);
        let function = known
            .functions
            .entry(prefix.to_owned())
            .or_insert(read.function);
        *function = (*function).max(read.function);
        Epochs {
            namespace,
            function: *function,
        }
    }

    /// Forgets the epochs of the function with this prefix (`None`: every
    /// epoch): the next load reads them again.
    pub(crate) fn forget_epochs(&self, prefix: Option<&str>) {
        let mut known = self.known();
        match prefix {
            Some(prefix) => {
                known.functions.remove(prefix);
            }
            None => {
                known.namespace = None;
                known.functions.clear();
            }
        }
    }

    /// The first step of `op` (its version bump and delete in Redis).
    /// When Redis does not take it, it is kept for replay (bus message
    /// included), and until then this instance distrusts what it would end:
    /// false, and the caller does not send the message itself.
    pub(crate) async fn begin(self: &Arc<Self>, op: &Op) -> bool {
        if self.replay_off.load(Ordering::Relaxed) {
            return self.run_in_redis(op).await;
        }
        if self.run_in_redis(op).await {
            return true;
        }
        self.keep(op.clone());
        false
    }

    /// The last step of `op`: its bus message; kept for replay (whole) when
    /// Redis does not take it.
    pub(crate) async fn announce_or_keep(self: &Arc<Self>, op: Op) {
        if !self.announce(&op).await && !self.replay_off.load(Ordering::Relaxed) {
            self.keep(op);
        }
    }

    /// `op` against Redis, bypassing the breaker (an invalidation must not
    /// be skipped because reads failed); whether Redis took it.
    async fn run_in_redis(&self, op: &Op) -> bool {
        match op {
            Op::Key {
                function,
                version,
                key,
                keep,
                ..
            } => {
                let prefix = function_prefix(&self.namespace, function, *version);
                let Some(epochs) = self.epochs_through(&prefix, true).await else {
                    return false;
                };
                let digest = digest(key);
                // The copy under the epochs this instance knows is deleted;
                // the version, which every copy carries, is what ends them all.
                let name = key_name(&prefix, epochs, &digest);
                self.delete_and_bump(&name, &version_key(&prefix, &digest), *keep)
                    .await
            }
            Op::Tag { tag, .. } => self.bump_tag(tag_digest(tag)).await,
            Op::All { function, version } => {
                let prefix = function_prefix(&self.namespace, function, *version);
                let Some(epoch) = self.incr(format!("{prefix}:epoch")).await else {
                    return false;
                };
                // The new epoch is this instance's at once: its next load
                // reads and writes under the new names. Never back to an
                // older one (a replay's bump answered after a newer one).
                let mut known = self.known();
                let function = known.functions.entry(prefix).or_insert(epoch);
                *function = (*function).max(epoch);
                true
            }
            Op::Everything => {
                let Some(epoch) = self.incr(self.namespace_epoch_key()).await else {
                    return false;
                };
                let mut known = self.known();
                known.namespace = Some(known.namespace.unwrap_or(epoch).max(epoch));
                true
            }
        }
    }

    /// `INCR key` (from [`first_version`](super::first_version) when
    /// absent), bypassing the breaker: the new value.
    async fn incr(&self, key: String) -> Option<u64> {
        let mut pipe = redis::pipe();
        pipe.cmd("SET")
            .arg(&key)
            .arg(super::first_version())
            .arg("NX")
            .ignore();
        pipe.cmd("INCR").arg(&key);
        self.attempt_anyway(|mut connection| async move {
            pipe.query_async::<(u64,)>(&mut connection)
                .await
                .map(|(epoch,)| epoch)
        })
        .await
    }

    /// The bus message of `op`; whether Redis took it.
    async fn announce(&self, op: &Op) -> bool {
        let node = self.node;
        let message = match op.clone() {
            Op::Key {
                function,
                version,
                key,
                expire,
                ..
            } => Message::Key {
                node,
                function,
                version,
                key,
                expire,
            },
            Op::Tag { tag, gone } => Message::Tags {
                node,
                tags: vec![tag],
                gone,
            },
            Op::All { function, version } => Message::All {
                node,
                function,
                version,
            },
            Op::Everything => Message::Everything { node },
        };
        self.publish(&message).await
    }

    /// Keeps `op` for replay, says so once per outage, and makes sure the
    /// replay runs.
    fn keep(self: &Arc<Self>, op: Op) {
        self.fleet_failures.fetch_add(1, Ordering::Relaxed);
        #[cfg(feature = "metrics")]
        metrics::counter!("herdcache_fleet_failures_total", "namespace" => self.namespace.clone())
            .increment(1);
        let function = op.function().map(str::to_owned);
        match self.pending.keep(op) {
            Queued::First => tracing::warn!(
                target: "herdcache",
                url = %self.url,
                function = function.as_deref().unwrap_or("(tags)"),
                "a fleet invalidation could not reach Redis: kept, and replayed once Redis answers; until then this instance does not use the Redis copies it ends"
            ),
            Queued::Overflowed => tracing::warn!(
                target: "herdcache",
                url = %self.url,
                "more fleet invalidations are pending than the tier keeps: they become one that ends every copy in the namespace and every tagged entry of the fleet"
            ),
            Queued::More => {}
        }
        self.pending_gauge();
        if !self.replaying.swap(true, Ordering::AcqRel) {
            super::spawn(Arc::clone(self).replay());
        }
    }

    fn pending_gauge(&self) {
        #[cfg(feature = "metrics")]
        metrics::gauge!("herdcache_fleet_pending", "namespace" => self.namespace.clone())
            .set(self.pending.len() as f64);
    }

    /// Replays what was kept, oldest first, until none is left: each one's
    /// Redis step, then its message. A failure pauses the replay (jittered
    /// backoff, cut short when Redis answers another call).
    async fn replay(self: Arc<Self>) {
        let mut pause = FIRST_PAUSE;
        loop {
            let mut stalled = false;
            while let Some(next) = self.pending.next() {
                if self.replay_off.load(Ordering::Relaxed)
                    || !(self.run_in_redis(&next.op).await && self.announce(&next.op).await)
                {
                    stalled = true;
                    break;
                }
                pause = FIRST_PAUSE;
                self.pending.settle(&next);
                self.pending_gauge();
            }
            if !stalled {
                self.replaying.store(false, Ordering::Release);
                // One kept after the last look, before the flag fell: its
                // keeper saw the replay running, so this one goes on.
                if self.pending.len() == 0 {
                    tracing::info!(target: "herdcache", url = %self.url, "every kept fleet invalidation reached Redis");
                    return;
                }
                if self.replaying.swap(true, Ordering::AcqRel) {
                    // Another replay took over.
                    return;
                }
                continue;
            }
            let wait = jittered(pause);
            tokio::select! {
                () = self.replay_wake.notified() => {}
                () = tokio::time::sleep(wait) => {}
            }
            pause = (pause * 2).min(LONGEST_PAUSE);
        }
    }

    /// Fleet operations (invalidations and expiries of keys, tags and
    /// functions, by this process) that Redis did not take at first, each
    /// then kept for replay: since the tier was made.
    pub fn fleet_failures(&self) -> u64 {
        self.fleet_failures.load(Ordering::Relaxed)
    }

    /// Fleet operations kept for replay now (0 while Redis takes them).
    pub fn pending_operations(&self) -> usize {
        self.pending.len()
    }

    /// Waits until every fleet operation kept for replay has reached
    /// Redis, or `timeout` passed: the number still pending (0: all
    /// reached it). When some are left, logs how many, by function (never
    /// key text). For a graceful shutdown, or a write that must be seen by
    /// the whole fleet before it answers.
    pub async fn flush(&self, timeout: Duration) -> usize {
        let deadline = Instant::now() + timeout;
        while self.pending.len() > 0 && Instant::now() < deadline {
            self.replay_wake.notify_one();
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        self.warn_pending("fleet invalidations still pending: Redis has not taken them")
    }

    /// A guard that, when dropped, waits up to `timeout` for the kept
    /// operations (blocking its thread; the replay runs on the tier's own)
    /// and logs how many are left, by function: see [`FlushOnDrop`].
    pub fn flush_on_drop(self: &Arc<Self>, timeout: Duration) -> FlushOnDrop {
        FlushOnDrop {
            tier: Some(Arc::clone(self)),
            timeout,
        }
    }

    /// Logs (`warn`) how many operations are still kept, by function (never
    /// key text), if any; returns how many.
    fn warn_pending(&self, message: &str) -> usize {
        let left = self.pending.len();
        if left > 0 {
            let by_function: Vec<String> = self
                .pending
                .by_function()
                .into_iter()
                .map(|(function, count)| {
                    format!("{}: {count}", function.as_deref().unwrap_or("(tags)"))
                })
                .collect();
            tracing::warn!(
                target: "herdcache",
                url = %self.url,
                pending = left,
                functions = %by_function.join(", "),
                "{message}"
            );
        }
        left
    }

    /// Switches the replay of kept operations off (or on again): a failed
    /// fleet operation is then lost, as it was before they were kept. For
    /// proving that a history checker catches the stale reads that follows;
    /// never in production.
    #[doc(hidden)]
    pub fn replay_switch(&self, on: bool) {
        self.replay_off.store(!on, Ordering::Relaxed);
    }

    /// Whether a load of `function`'s key with these bytes, carrying these
    /// tags, must leave Redis alone: an operation that would end its copy
    /// is pending.
    #[inline]
    pub(crate) fn distrusts(
        &self,
        function: &str,
        version: u32,
        key: &[u8],
        tags: &[u128],
    ) -> bool {
        self.pending.distrusts(function, version, key, tags)
    }
}

/// A pause drawn at random in `[pause / 2, pause]`.
fn jittered(pause: Duration) -> Duration {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(Instant::now().elapsed().as_nanos());
    let fraction = (hasher.finish() % 1_000) as u32;
    pause / 2 + pause / 2 * fraction / 1_000
}

/// Waits until every fleet operation the process's Redis tier kept for
/// replay has reached Redis, or `timeout` passed: the number still pending
/// (0 without a tier, or once all reached it). See
/// [`RedisTier::flush`].
pub async fn flush_fleet(timeout: Duration) -> usize {
    match super::installed_now() {
        Some(tier) => tier.flush(timeout).await,
        None => 0,
    }
}

/// Waits for the fleet operations kept for replay when the process ends:
/// keep it in `main` (`let _fleet = herdcache::flush_fleet_on_drop(..)`).
/// When dropped it blocks its thread up to `timeout` while the tier's own
/// thread replays them, then logs (`warn`) how many are left and for which
/// functions, never key text. The process's tier is looked up then, so it
/// can be made before `install`.
pub fn flush_fleet_on_drop(timeout: Duration) -> FlushOnDrop {
    FlushOnDrop {
        tier: None,
        timeout,
    }
}

/// See [`flush_fleet_on_drop`] and [`RedisTier::flush_on_drop`].
#[must_use = "it waits for kept fleet invalidations when dropped: bind it (`let _fleet = ..`) for the life of `main`"]
pub struct FlushOnDrop {
    /// `None`: the process's tier, when dropped.
    tier: Option<Arc<RedisTier>>,
    timeout: Duration,
}

impl Drop for FlushOnDrop {
    fn drop(&mut self) {
        let Some(tier) = self.tier.take().or_else(super::installed_now) else {
            return;
        };
        let deadline = Instant::now() + self.timeout;
        while tier.pending.len() > 0 && Instant::now() < deadline {
            tier.replay_wake.notify_one();
            std::thread::sleep(Duration::from_millis(5));
        }
        tier.warn_pending(
            "the process ends with fleet invalidations Redis has not taken: the other instances may serve what they ended until it expires",
        );
    }
}

/// Tags whose bump Redis took, whose bus message is still to send.
pub(crate) type BegunTags = Option<(Arc<RedisTier>, Vec<String>)>;

/// The first step of ending `tags` for the fleet: each one's version bumped
/// in Redis, or kept for replay (and its copies distrusted until then).
pub(crate) async fn begin_tags(tags: &[String], gone: bool) -> BegunTags {
    let tier = super::installed()?;
    let begun = futures_util::future::join_all(tags.iter().map(|tag| {
        let (tier, op) = (
            Arc::clone(&tier),
            Op::Tag {
                tag: tag.clone(),
                gone,
            },
        );
        async move { tier.begin(&op).await.then_some(op) }
    }))
    .await;
    let taken = begun
        .into_iter()
        .flatten()
        .filter_map(|op| match op {
            Op::Tag { tag, .. } => Some(tag),
            _ => None,
        })
        .collect();
    Some((tier, taken))
}

/// The last step: one bus message for the tags Redis took; each kept for
/// replay if Redis does not take it.
pub(crate) async fn announce_tags(begun: BegunTags, gone: bool) {
    let Some((tier, tags)) = begun else { return };
    if tags.is_empty() {
        return;
    }
    let message = Message::Tags {
        node: tier.node,
        tags: tags.clone(),
        gone,
    };
    if !tier.publish(&message).await && !tier.replay_off.load(Ordering::Relaxed) {
        for tag in tags {
            tier.keep(Op::Tag { tag, gone });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn epochs(namespace: u64, function: u64) -> Epochs {
        Epochs {
            namespace,
            function,
        }
    }

    /// Two loads read the epochs after they were forgotten; the one answered
    /// before a bump is applied last. What this instance knows stays the
    /// newer, and so does what each load uses from then on.
    #[test]
    fn a_late_read_of_the_epochs_never_takes_them_back() {
        let tier = super::super::Runtime::builder()
            .redis("redis://127.0.0.1:1")
            .build()
            .unwrap();
        assert_eq!(tier.learn("f", epochs(1, 3)), epochs(1, 3));
        assert_eq!(tier.learn("f", epochs(1, 2)), epochs(1, 3), "the late read");
        assert_eq!(tier.known_epochs("f"), Some(epochs(1, 3)));
        tier.forget_epochs(Some("f"));
        assert_eq!(tier.known_epochs("f"), None);
        assert_eq!(tier.learn("f", epochs(2, 2)), epochs(2, 2));
        assert_eq!(tier.learn("f", epochs(1, 4)), epochs(2, 4));
    }
}
