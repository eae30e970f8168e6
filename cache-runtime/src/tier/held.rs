//! How a tier holds an entry: whole ([`Entry`]), or, for a function whose
//! only horizon is freshness, as a [`Plain`] entry of the payload, that
//! horizon and the tag stamps.

use super::{Entry, Payload};
use crate::clock::Nanos;
use crate::tags::Stamps;

/// How a tier holds an entry: whole, or in a smaller form.
pub(crate) trait Held<V>: Clone + Send + Sync + 'static {
    fn hold(entry: Entry<V>) -> Self;
    fn entry(self) -> Entry<V>;
    /// Past this instant the entry is never served.
    fn last_horizon(&self) -> Nanos;
    /// The versions of its tags when its load began.
    fn stamps(&self) -> &Stamps;
}

impl<V: Clone + Send + Sync + 'static> Held<V> for Entry<V> {
    #[inline(always)]
    fn hold(entry: Entry<V>) -> Self {
        entry
    }

    #[inline(always)]
    fn entry(self) -> Entry<V> {
        self
    }

    #[inline(always)]
    fn last_horizon(&self) -> Nanos {
        self.fail_safe_until
    }

    fn stamps(&self) -> &Stamps {
        &self.tags
    }
}

/// An entry of a function without swr, fail-safe, early refresh or a
/// Redis tier: its only horizon is freshness, it is never refreshed in the
/// background and its load time is never read, so it keeps just the
/// payload, `fresh_until` and the tag stamps (48 bytes for a `u64` value
/// where [`Entry`] takes 88). On moka, only under one lifetime for every
/// entry (a global ttl: no jitter, negative entries or per-value ttl) on
/// the system clock, so that moka itself drops it at that horizon.
#[derive(Clone)]
pub(crate) struct Plain<V> {
    payload: Payload<V>,
    fresh_until: Nanos,
    tags: Stamps,
}

impl<V> Plain<V> {
    /// The payload and the tag stamps: all a hit reads.
    #[inline(always)]
    pub(crate) fn into_parts(self) -> (Payload<V>, Stamps) {
        (self.payload, self.tags)
    }
}

impl<V: Clone + Send + Sync + 'static> Held<V> for Plain<V> {
    /// Keeps `fresh_until` alone: the only horizon a one-horizon function
    /// serves by. (Its stale and fail-safe horizons equal it, except in a
    /// hand-made cache given horizons it was not configured for, which a
    /// plain function would not serve past freshness anyway.)
    #[inline(always)]
    fn hold(entry: Entry<V>) -> Self {
        Plain {
            payload: entry.payload,
            fresh_until: entry.fresh_until,
            tags: entry.tags,
        }
    }

    #[inline(always)]
    fn entry(self) -> Entry<V> {
        Entry {
            payload: self.payload,
            fresh_until: self.fresh_until,
            stale_until: self.fresh_until,
            fail_safe_until: self.fresh_until,
            load_nanos: 0,
            lifetime: 0,
            loaded_at: super::UNKNOWN_LOAD,
            refreshing: false,
            tags: self.tags,
        }
    }

    #[inline(always)]
    fn last_horizon(&self) -> Nanos {
        self.fresh_until
    }

    fn stamps(&self) -> &Stamps {
        &self.tags
    }
}
