//! Without the `redis` feature, `distributed = true` is one compile error
//! that names the feature. The names generated code uses exist, so that
//! this is the only error.

use std::marker::PhantomData;

/// Implemented by nothing: the bound that makes `distributed = true` an
/// error without the `redis` feature.
#[diagnostic::on_unimplemented(
    message = "`distributed = true` needs herdcache's `redis` feature",
    label = "this function is `distributed`",
    note = "enable it: herdcache = {{ version = \"…\", features = [\"redis\"] }}"
)]
pub trait RedisFeature {}

/// Stands in for the Redis codec of a `distributed` function.
pub struct Codec<K, V>(PhantomData<fn() -> (K, V)>);

impl<K, V> Clone for Codec<K, V> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<K, V> Copy for Codec<K, V> {}

impl<K: RedisFeature, V> Codec<K, V> {
    /// Never callable: `K` is never [`RedisFeature`].
    pub fn new(_version: u32, _key: Wire<K>, _value: Wire<V>) -> Self {
        Codec(PhantomData)
    }
}

/// Stands in for how a key or a value travels.
pub struct Wire<T>(pub(crate) PhantomData<fn() -> T>);

/// Tags whose bump the Redis tier took: never any without the feature.
pub(crate) type BegunTags = ();

/// Without a Redis tier, tags end in memory only.
pub(crate) async fn begin_tags(_tags: &[String], _gone: bool) -> BegunTags {}

/// Nothing to tell the fleet.
pub(crate) async fn announce_tags(_begun: BegunTags, _gone: bool) {}

/// Waits until every fleet invalidation the process's Redis tier kept for
/// replay has reached Redis: without the `redis` feature there is none, and
/// this returns 0 at once.
pub async fn flush_fleet(_timeout: std::time::Duration) -> usize {
    0
}

/// Waits for kept fleet invalidations when dropped: without the `redis`
/// feature there are none.
pub fn flush_fleet_on_drop(_timeout: std::time::Duration) -> FlushOnDrop {
    FlushOnDrop(())
}

/// See [`flush_fleet_on_drop`].
#[must_use = "it waits for kept fleet invalidations when dropped: bind it (`let _fleet = ..`) for the life of `main`"]
pub struct FlushOnDrop(());
