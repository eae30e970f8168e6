//! The bus: one pub/sub channel per namespace (`{ns}:bus`) that carries key
//! invalidations of `distributed` functions and tag invalidations and
//! expiries, never values, so that they reach every instance's memory. A
//! node ignores its own messages.
//!
//! Messages may be lost while the subscription is down, so when it comes
//! back each node drops the memory copies of its distributed entries and
//! ends every tagged entry (their tags are bumped as if invalidated): a
//! reconnect costs misses, never a stale value.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures_util::StreamExt;
use serde::{Deserialize, Serialize};

use super::RedisTier;

/// What travels on the bus.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) enum Message {
    /// Drop (or expire) this key of this function.
    Key {
        node: u64,
        function: String,
        version: u32,
        key: Vec<u8>,
        expire: bool,
    },
    /// Invalidate (`gone`) or expire these tags.
    Tags {
        node: u64,
        tags: Vec<String>,
        gone: bool,
    },
    /// A value was written at this Redis key (a digest, no user text):
    /// instances waiting for it look again.
    Filled { node: u64, key: String },
    /// Every entry of this function ended (`invalidate_all`): drop them
    /// from memory, and read its epoch again.
    All {
        node: u64,
        function: String,
        version: u32,
    },
    /// Every copy in the namespace ended (kept operations overflowed):
    /// drop every distributed and tagged entry, read every epoch again.
    Everything { node: u64 },
}

/// What a listening cache hears.
pub(crate) enum Heard<'a> {
    /// Drop (`expire`: expire) the key with these bytes, in memory.
    Key(&'a [u8], bool),
    /// Messages may have been lost: drop every entry in memory.
    Everything,
}

/// What a distributed cache does with what it hears (in memory only: never
/// in Redis again, nor on the bus).
pub(crate) type KeyListener = Box<dyn Fn(Heard<'_>) + Send + Sync>;

/// Instances waiting for a key's value, by Redis key.
#[derive(Default)]
pub(crate) struct Fills(Mutex<HashMap<String, Arc<tokio::sync::Notify>>>);

impl Fills {
    /// The notifier of `key`, while someone holds it.
    pub(crate) fn of(&self, key: &str) -> Fill<'_> {
        let notify = self
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(key.to_owned())
            .or_default()
            .clone();
        Fill {
            fills: self,
            key: key.to_owned(),
            notify,
        }
    }

    fn wake(&self, key: &str) {
        let fills = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(notify) = fills.get(key) {
            notify.notify_waiters();
        }
    }
}

/// A waiter's hold on a key's notifier; the last one removes it.
pub(crate) struct Fill<'a> {
    fills: &'a Fills,
    key: String,
    notify: Arc<tokio::sync::Notify>,
}

impl Fill<'_> {
    pub(crate) fn notified(&self) -> tokio::sync::futures::Notified<'_> {
        self.notify.notified()
    }
}

impl Drop for Fill<'_> {
    fn drop(&mut self) {
        let mut fills = self.fills.0.lock().unwrap_or_else(PoisonError::into_inner);
        // This one and the map's: nobody else waits.
        if Arc::strong_count(&self.notify) == 2 {
            fills.remove(&self.key);
        }
    }
}

/// The caches listening on a tier, by function name and key space.
#[derive(Default)]
pub(crate) struct Listeners(Mutex<HashMap<(String, u32), Vec<KeyListener>>>);

impl Listeners {
    pub(crate) fn add(&self, function: String, version: u32, listener: KeyListener) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry((function, version))
            .or_default()
            .push(listener);
    }

    /// Tells the listeners of one function what was heard.
    fn of_function<'a>(&self, function: &str, version: u32, heard: impl Fn() -> Heard<'a>) {
        let listeners = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        for listener in listeners
            .get(&(function.to_owned(), version))
            .into_iter()
            .flatten()
        {
            listener(heard());
        }
    }

    /// Tells every listener to drop everything (after a reconnect).
    fn everything(&self) {
        let listeners = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        for listener in listeners.values().flatten() {
            listener(Heard::Everything);
        }
    }
}

impl RedisTier {
    pub(crate) fn channel(&self) -> String {
        format!("{}:bus", self.namespace)
    }

    /// Publishes `message`; whether Redis took it.
    pub(crate) async fn publish(&self, message: &Message) -> bool {
        let Ok(bytes) = postcard::to_allocvec(message) else {
            return false;
        };
        let command = redis::cmd("PUBLISH").arg(self.channel()).arg(bytes).clone();
        // Invalidations are sent even while the breaker is open (fills, which
        // only save polls, are not).
        let send = |mut connection: super::Connection| async move {
            command.query_async::<i64>(&mut connection).await
        };
        match message {
            Message::Filled { .. } => self.attempt(send).await.is_some(),
            Message::Key { .. }
            | Message::Tags { .. }
            | Message::All { .. }
            | Message::Everything { .. } => self.attempt_anyway(send).await.is_some(),
        }
    }

    /// Starts the subscriber once, on the tier's own runtime.
    pub(crate) fn start_bus(self: &Arc<Self>) {
        if self.bus_started.load(Ordering::Acquire) {
            return;
        }
        if self
            .bus_started
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            super::spawn(Arc::clone(self).subscribe_forever());
        }
    }

    /// Messages from other instances applied so far.
    pub fn bus_messages_heard(&self) -> u64 {
        self.heard.load(Ordering::Acquire)
    }

    /// Whether the bus is subscribed now.
    pub fn bus_connected(&self) -> bool {
        self.subscribed.load(Ordering::Acquire)
    }

    /// Subscribes, applies messages, and re-subscribes after a drop (with
    /// backoff: 50 ms doubling to 1 s), dropping what may have been missed
    /// meanwhile: within about a second of a heal, nothing missed is served.
    async fn subscribe_forever(self: Arc<Self>) {
        let mut pause = Duration::from_millis(50);
        let mut connected_before = false;
        loop {
            if let Ok(mut pubsub) = self.backend.pubsub_client().get_async_pubsub().await {
                if pubsub.subscribe(self.channel()).await.is_ok() {
                    pause = Duration::from_millis(50);
                    if connected_before {
                        self.drop_what_may_be_missed();
                    }
                    connected_before = true;
                    self.subscribed.store(true, Ordering::Release);
                    let mut messages = pubsub.into_on_message();
                    while let Some(message) = messages.next().await {
                        if let Ok(message) =
                            postcard::from_bytes::<Message>(message.get_payload_bytes())
                        {
                            self.apply(message);
                        }
                    }
                    self.subscribed.store(false, Ordering::Release);
                    tracing::warn!(target: "herdcache", url = %self.url, "the Redis bus dropped: reconnecting");
                }
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_secs(1));
        }
    }

    fn apply(&self, message: Message) {
        match message {
            Message::Key { node, .. }
            | Message::Tags { node, .. }
            | Message::Filled { node, .. }
            | Message::All { node, .. }
            | Message::Everything { node }
                if node == self.node => {}
            Message::Filled { key, .. } => {
                self.heard.fetch_add(1, Ordering::Release);
                self.fills.wake(&key);
            }
            Message::Key {
                function,
                version,
                key,
                expire,
                ..
            } => {
                self.listeners
                    .of_function(&function, version, || Heard::Key(&key, expire));
                self.heard.fetch_add(1, Ordering::Release);
            }
            Message::Tags { tags, gone, .. } => {
                crate::tags::bump_tags_of(0, tags.iter(), gone);
                self.heard.fetch_add(1, Ordering::Release);
            }
            Message::All {
                function, version, ..
            } => {
                self.forget_epochs(Some(&super::function_prefix(
                    &self.namespace,
                    &function,
                    version,
                )));
                self.listeners
                    .of_function(&function, version, || Heard::Everything);
                self.heard.fetch_add(1, Ordering::Release);
            }
            Message::Everything { .. } => {
                self.drop_what_may_be_missed();
                self.heard.fetch_add(1, Ordering::Release);
            }
        }
    }

    /// After a reconnect: every distributed function's memory copies, and
    /// every tagged entry, may be stale.
    fn drop_what_may_be_missed(&self) {
        self.forget_epochs(None);
        self.listeners.everything();
        crate::tags::bump_all();
    }
}
