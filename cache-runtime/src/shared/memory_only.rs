//! The shared tier's entry points, for a build without the `redis` feature:
//! no function has a Redis tier ([`L2`] has no value), so each does nothing.

use std::hash::Hash;
use std::marker::PhantomData;
use std::time::Duration;

use super::{FnCache, LeaderGuard};
use crate::expiry::Horizons;
use crate::tags::Tags;

/// Has no value: a cache without the `redis` feature never has a Redis tier.
pub(crate) struct L2<K, V>(Never, PhantomData<fn() -> (K, V)>);

enum Never {}

/// A write-back a load leaves: never one.
#[derive(Default)]
pub(crate) struct WriteSlot {
    _none: (),
}

/// A fleet operation begun: never one.
pub(crate) type Begun = ();

/// Nothing to tell the fleet.
pub(super) async fn announce(_begun: Begun) {}

impl<K, V> FnCache<K, V>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    pub(super) async fn read_versions(
        &self,
        _guard: &LeaderGuard<'_, K, V>,
        _tags: &Tags,
        _with_value: bool,
    ) {
        self.no_l2();
    }

    pub(super) async fn read_l2(&self, _guard: &LeaderGuard<'_, K, V>) -> Option<V> {
        self.no_l2();
        None
    }

    pub(super) fn l2_payload(&self, _guard: &LeaderGuard<'_, K, V>, _value: &V) -> Option<Vec<u8>> {
        None
    }

    pub(super) fn prepare_l2_write(
        &self,
        _guard: &LeaderGuard<'_, K, V>,
        _payload: Option<Vec<u8>>,
        _horizons: Horizons,
        _took: Duration,
    ) {
    }

    pub(super) async fn finish_l2(&self, _slot: &WriteSlot, _kept: bool) {}

    pub(super) async fn begin_key(&self, _key: &K, _expire: bool) -> Begun {}

    pub(super) async fn begin_all(&self) -> Begun {}

    pub(super) fn bus_messages(&self) -> u64 {
        0
    }

    pub(super) fn fleet_pending(&self) -> u64 {
        0
    }

    pub(super) fn fleet_failures(&self) -> u64 {
        0
    }

    pub(super) fn l2_breaker_open(&self) -> bool {
        false
    }

    /// No tier to back it with.
    pub(crate) fn with_installed_redis(self, _codec: crate::redis::Codec<K, V>) -> Self {
        self
    }

    /// No bus to hear.
    pub(crate) fn listen_bus(&'static self) {}

    fn no_l2(&self) {
        if let Some(L2(never, _)) = &self.l2 {
            match *never {}
        }
    }
}
