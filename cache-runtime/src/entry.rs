//! [`Entry`]: a cached value with what the cache knows of it (how the call
//! was served, its age, its freshness and windows, a digest), the answer of
//! a generated `<fn>_entry(..)`.

use std::time::Duration;

/// How a call was answered: from memory, by a load, or from the Redis tier.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Served {
    /// A fresh value from this instance's memory.
    Hit,
    /// A value past its freshness, within its `swr` window (a refresh runs
    /// in the background), or the old value a `timeout` answered with (the
    /// load goes on in the background).
    Stale,
    /// An old value kept by `fail_safe`, because the load failed (for
    /// this caller or the one it joined) or did not answer within the
    /// function's `hard_timeout`.
    FailSafe,
    /// This call ran the body.
    Loaded,
    /// This call joined a load another caller led.
    Coalesced,
    /// The value came from the Redis tier (another instance loaded it).
    Remote,
}

impl Served {
    /// The lowercase name (`"hit"`, `"stale"`, `"fail_safe"`, `"loaded"`,
    /// `"coalesced"`, `"remote"`), for logs and response headers.
    pub fn name(self) -> &'static str {
        match self {
            Served::Hit => "hit",
            Served::Stale => "stale",
            Served::FailSafe => "fail_safe",
            Served::Loaded => "loaded",
            Served::Coalesced => "coalesced",
            Served::Remote => "remote",
        }
    }

    /// True when no body ran for this call on this instance (a hit, stale
    /// or fail-safe answer, or a copy from Redis).
    pub fn from_cache(self) -> bool {
        !matches!(self, Served::Loaded | Served::Coalesced)
    }
}

impl std::fmt::Display for Served {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A cached value and what the cache knows of it: the answer of the
/// `<fn>_entry(..)` that `#[cached]` writes beside every function (with the
/// function's arguments; `Result<Entry<T>, E>` or `Option<Entry<T>>` when
/// the function returns a `Result` or an `Option`).
///
/// ```
/// # use herdcache_runtime as herdcache;
/// use std::time::Duration;
/// use herdcache::{Entry, Served};
///
/// let entry = Entry::new(42_u64, Served::Hit)
///     .with_age(Duration::from_secs(3))
///     .with_fresh_for(Duration::from_secs(57))
///     .with_windows(Duration::from_secs(30), Duration::from_secs(600));
/// assert_eq!(*entry.value(), 42);
/// assert!(entry.served().from_cache());
/// assert_eq!(entry.fresh_for(), Duration::from_secs(57));
/// ```
///
/// The durations are read when the call returns, on the cache's clock
/// (a test's `ManualClock` included), to the millisecond of the coarse
/// clock hits read:
///
/// - [`age`](Self::age): since the value was loaded (by this instance or,
///   for a value from Redis, by the one that loaded it);
/// - [`fresh_for`](Self::fresh_for): how long it stays fresh; zero once
///   stale;
/// - [`stale_window`](Self::stale_window): the function's `swr`, how long
///   past freshness it may still be served while a refresh runs;
/// - [`fail_safe_window`](Self::fail_safe_window): the function's
///   `fail_safe`, how long past that it may be served when loads fail.
///
/// With serde (the `redis` or `http` feature), [`digest`](Self::digest)
/// and [`etag`](Self::etag) name the value by its bytes: the same on every
/// instance for the same value, so a strong HTTP `ETag`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry<T> {
    value: T,
    served: Served,
    age: Duration,
    fresh_for: Duration,
    stale_window: Duration,
    fail_safe_window: Duration,
}

impl<T> Entry<T> {
    /// An entry of `value`, served as `served`, with no age, no freshness
    /// left and no windows (set them with the `with_` methods): for tests
    /// and caches written by hand.
    pub fn new(value: T, served: Served) -> Self {
        Entry {
            value,
            served,
            age: Duration::ZERO,
            fresh_for: Duration::ZERO,
            stale_window: Duration::ZERO,
            fail_safe_window: Duration::ZERO,
        }
    }

    /// With the age `age`.
    pub fn with_age(mut self, age: Duration) -> Self {
        self.age = age;
        self
    }

    /// Fresh for `fresh_for` more.
    pub fn with_fresh_for(mut self, fresh_for: Duration) -> Self {
        self.fresh_for = fresh_for;
        self
    }

    /// With the stale window `swr` and the fail-safe window `fail_safe`.
    pub fn with_windows(mut self, swr: Duration, fail_safe: Duration) -> Self {
        self.stale_window = swr;
        self.fail_safe_window = fail_safe;
        self
    }

    /// The value.
    pub fn value(&self) -> &T {
        &self.value
    }

    /// The value, owned.
    pub fn into_value(self) -> T {
        self.value
    }

    /// How this call was answered.
    pub fn served(&self) -> Served {
        self.served
    }

    /// How long ago the value was loaded.
    pub fn age(&self) -> Duration {
        self.age
    }

    /// How long the value stays fresh from now; zero when it is stale (or
    /// a fail-safe fallback).
    pub fn fresh_for(&self) -> Duration {
        self.fresh_for
    }

    /// The function's `swr`: how long past its freshness a value is still
    /// served while one refresh runs (HTTP's `stale-while-revalidate`).
    pub fn stale_window(&self) -> Duration {
        self.stale_window
    }

    /// The function's `fail_safe`: how long past that a value is still
    /// served when its loads fail (HTTP's `stale-if-error`).
    pub fn fail_safe_window(&self) -> Duration {
        self.fail_safe_window
    }

    /// The same entry around `map(value)`.
    pub fn map<U>(self, map: impl FnOnce(T) -> U) -> Entry<U> {
        Entry {
            value: map(self.value),
            served: self.served,
            age: self.age,
            fresh_for: self.fresh_for,
            stale_window: self.stale_window,
            fail_safe_window: self.fail_safe_window,
        }
    }

    /// The same entry around a reference to its value.
    pub fn as_ref(&self) -> Entry<&T> {
        Entry {
            value: &self.value,
            served: self.served,
            age: self.age,
            fresh_for: self.fresh_for,
            stale_window: self.stale_window,
            fail_safe_window: self.fail_safe_window,
        }
    }
}

/// What the engine says of a call's value, before the value is put in an
/// [`Entry`]: made by `FnCache::entry_meta`, used by generated code.
#[doc(hidden)]
#[derive(Clone, Copy, Debug)]
pub struct EntryMeta {
    pub(crate) served: Served,
    pub(crate) age: Duration,
    pub(crate) fresh_for: Duration,
    pub(crate) stale_window: Duration,
    pub(crate) fail_safe_window: Duration,
}

impl EntryMeta {
    /// How the call was served.
    pub fn served(&self) -> Served {
        self.served
    }

    /// `value` in an entry.
    pub fn entry<T>(self, value: T) -> Entry<T> {
        Entry {
            value,
            served: self.served,
            age: self.age,
            fresh_for: self.fresh_for,
            stale_window: self.stale_window,
            fail_safe_window: self.fail_safe_window,
        }
    }
}

/// An outcome with its value put in an [`Entry`]: `Result<Entry<T>, E>`,
/// `Option<Entry<T>>`, or `Entry<T>` for a plain value. Used by generated
/// code.
#[doc(hidden)]
pub trait WithEntry {
    /// The outcome with its value in an entry.
    type Entried;
    /// Puts the value (if any) in an entry described by `meta`.
    fn with_entry(self, meta: EntryMeta) -> Self::Entried;
}

impl<T, E> WithEntry for Result<T, E> {
    type Entried = Result<Entry<T>, E>;
    #[inline]
    fn with_entry(self, meta: EntryMeta) -> Self::Entried {
        self.map(|value| meta.entry(value))
    }
}

impl<T> WithEntry for Option<T> {
    type Entried = Option<Entry<T>>;
    #[inline]
    fn with_entry(self, meta: EntryMeta) -> Self::Entried {
        self.map(|value| meta.entry(value))
    }
}

impl<T> WithEntry for crate::outcome::Plain<T> {
    type Entried = Entry<T>;
    #[inline]
    fn with_entry(self, meta: EntryMeta) -> Self::Entried {
        meta.entry(self.0)
    }
}

#[cfg(feature = "serde")]
impl<T: serde::Serialize> Entry<T> {
    /// The xxh3-128 digest of the value's postcard bytes: the same in every
    /// process, build and platform for the same value (postcard's encoding
    /// is specified), so the same on every instance of a fleet. Computed
    /// when called (a serialization), never on the hit path. A value whose
    /// serialization depends on more than its content (a `HashMap`'s
    /// iteration order) digests differently on each instance: use a
    /// `BTreeMap` where that matters. A value postcard cannot write (a map
    /// of unknown length, as `#[serde(flatten)]` makes) digests its JSON
    /// with the `http` feature, and is `0` without it: do not use that `0`
    /// as a validator.
    pub fn digest(&self) -> u128 {
        digest_of(&self.value)
    }

    /// The digest as a strong HTTP entity tag: 32 hex digits in quotes
    /// (`"9f86d081884c7d659a2feaa0c55ad015"`).
    pub fn etag(&self) -> String {
        format!("\"{:032x}\"", self.digest())
    }
}

/// The digest [`Entry::digest`] gives `value`: of its postcard bytes, or,
/// with the `http` feature, of its JSON (seeded apart) when postcard
/// cannot write it; else `0`.
#[cfg(feature = "serde")]
pub(crate) fn digest_of<T: serde::Serialize + ?Sized>(value: &T) -> u128 {
    if let Some(digest) = try_digest_of(value) {
        return digest;
    }
    #[cfg(feature = "http")]
    if let Ok(json) = serde_json::to_vec(value) {
        return xxhash_rust::xxh3::xxh3_128_with_seed(&json, 1);
    }
    0
}

/// The digest of `value`'s postcard bytes, `None` when postcard cannot
/// write it.
#[cfg(feature = "serde")]
fn try_digest_of<T: serde::Serialize + ?Sized>(value: &T) -> Option<u128> {
    postcard::to_allocvec(value)
        .ok()
        .map(|bytes| xxhash_rust::xxh3::xxh3_128(&bytes))
}

#[cfg(all(test, feature = "serde"))]
mod tests {
    use super::*;

    #[test]
    fn the_digest_is_the_values_and_stable() {
        let a = Entry::new(("ada", 36_u8), Served::Hit);
        let b = Entry::new(("ada", 36_u8), Served::Remote);
        let c = Entry::new(("ada", 37_u8), Served::Hit);
        assert_eq!(
            a.digest(),
            b.digest(),
            "how it was served is not part of it"
        );
        assert_ne!(a.digest(), c.digest());
        // Pinned: a fleet mixing builds must agree.
        assert_eq!(
            Entry::new(7_u32, Served::Hit).digest(),
            xxhash_rust::xxh3::xxh3_128(&[7])
        );
        let etag = a.etag();
        assert_eq!(etag.len(), 34);
        assert!(etag.starts_with('"') && etag.ends_with('"'));
    }
}
