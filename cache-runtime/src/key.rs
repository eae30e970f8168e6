//! Checking, at compile time, that each part of a key can be one, with an
//! error that names the argument and the way out.
//!
//! `(&&&KeyProbe::of(&part)).key_part(part)` resolves by autoref
//! specialisation: to [`ValidKeyPart`] (the part itself) when the part is
//! `Hash + Eq + Clone + Send + Sync + 'static`, else to [`InvalidKeyPart`],
//! whose bound fails with a message naming `key = …`. The invalid branch
//! yields a placeholder that satisfies every bound, so this is the only
//! error the user sees, not one per missing trait.

use std::hash::Hash;
use std::marker::PhantomData;

/// Probes the type of one key part.
pub struct KeyProbe<T>(PhantomData<fn() -> T>);

impl<T> KeyProbe<T> {
    /// A probe for the type of `part`.
    pub fn of(_part: &T) -> Self {
        KeyProbe(PhantomData)
    }
}

/// Chosen first: the part can be a key.
pub trait ValidKeyPart<T> {
    /// The part itself.
    fn key_part(&self, part: T) -> T;
}

impl<T: Hash + Eq + Clone + Send + Sync + 'static> ValidKeyPart<T> for &&KeyProbe<T> {
    #[inline]
    fn key_part(&self, part: T) -> T {
        part
    }
}

/// Chosen otherwise: a compile error.
pub trait InvalidKeyPart<T> {
    /// Never callable: `T` does not implement [`CacheKeyPart`].
    fn key_part(&self, part: T) -> NotAKey
    where
        T: CacheKeyPart;
}

impl<T> InvalidKeyPart<T> for &KeyProbe<T> {
    fn key_part(&self, _part: T) -> NotAKey
    where
        T: CacheKeyPart,
    {
        NotAKey
    }
}

/// What an invalid part becomes, so that no further error follows.
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
pub struct NotAKey;

/// Implemented by no type: its only use is the error message below.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be part of a cache key",
    label = "this is part of the key of this #[cached] function",
    note = "a key part must be `Hash + Eq + Clone + Send + Sync + 'static`; without `key = ...` every argument but `self` is part of the key, so name the ones that identify the value, e.g. `key = user_id` or `key = (org, page)`"
)]
pub trait CacheKeyPart {}
