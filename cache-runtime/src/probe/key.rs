//! Checking, at compile time, that each part of a key can be one, with an
//! error that names the argument and the way out.
//!
//! `(&&&KeyProbe::of(part)).key_part(part)` resolves by autoref
//! specialisation: to [`ValidKeyPart`] when the part's owned form
//! (`ToOwned::Owned`: `String` for `str`, `T` for a `Clone` type) is
//! `Hash + Eq + Clone + Send + Sync + 'static`, else to [`InvalidKeyPart`],
//! whose bound fails with a message naming `key = ...`. The probe looks at
//! the borrowed argument, before any copy is made, so an argument that cannot
//! even be cloned (`&AppState`, `&dyn Repo`) gets the same message. The
//! invalid branch yields a placeholder that satisfies every bound, so no
//! error about missing traits follows. (A part that borrows, and so is not
//! `'static`, still reaches the valid branch and gets rustc's lifetime error.)

use std::hash::Hash;
use std::marker::PhantomData;

/// Probes the type of one key part.
pub struct KeyProbe<T: ?Sized>(PhantomData<fn(&T)>);

impl<T: ?Sized> KeyProbe<T> {
    /// A probe for the type of `part`.
    pub fn of(_part: &T) -> Self {
        KeyProbe(PhantomData)
    }
}

/// Chosen first: the part can be a key.
pub trait ValidKeyPart<T: ?Sized> {
    /// The owned key part.
    type Part;
    /// An owned copy of an argument, for the key.
    fn key_part(&self, part: &T) -> Self::Part;
    /// A value the key expression produced, kept as it is.
    fn key_value(&self, part: T) -> T
    where
        T: Sized;
}

impl<T> ValidKeyPart<T> for &&KeyProbe<T>
where
    T: ?Sized + ToOwned,
    T::Owned: Hash + Eq + Clone + Send + Sync + 'static,
{
    type Part = T::Owned;

    #[inline]
    fn key_part(&self, part: &T) -> T::Owned {
        part.to_owned()
    }

    #[inline]
    fn key_value(&self, part: T) -> T
    where
        T: Sized,
    {
        part
    }
}

/// Chosen otherwise: a compile error.
pub trait InvalidKeyPart<T: ?Sized> {
    /// Never callable: `T` does not implement [`CacheKeyPart`].
    fn key_part(&self, part: &T) -> NotAKey
    where
        T: CacheKeyPart;
    /// Never callable: `T` does not implement [`CacheKeyPart`].
    fn key_value(&self, part: T) -> NotAKey
    where
        T: CacheKeyPart + Sized;
}

impl<T: ?Sized> InvalidKeyPart<T> for &KeyProbe<T> {
    fn key_part(&self, _part: &T) -> NotAKey
    where
        T: CacheKeyPart,
    {
        NotAKey
    }

    fn key_value(&self, _part: T) -> NotAKey
    where
        T: CacheKeyPart + Sized,
    {
        NotAKey
    }
}

/// What an invalid part becomes, so that no further error follows.
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
pub struct NotAKey;

/// A key part must have an owned form (`Clone`, or `ToOwned` like `str`)
/// that is `Hash + Eq + Clone + Send + Sync + 'static`. Implemented by no
/// type: a part that lacks a bound is one error naming this trait and the
/// way out (name the arguments that identify the value in `key = ..`).
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be part of a cache key",
    label = "this is part of the key of this #[cached] function",
    note = "a key part must have an owned form (`Clone`, or `ToOwned` like `str`) that is `Hash + Eq + Clone + Send + Sync + 'static`; without `key = ...` every argument but `self` is part of the key, so name the ones that identify the value, e.g. `key = user_id` or `key = (org, page)`"
)]
pub trait CacheKeyPart {}

/// Reads a place that is the receiver of a method in a key expression
/// (`req.id.into_bytes()`, `page.max(1)`) without moving it: a `Copy` value
/// is copied, anything else is lent. A `&self` method then reads it as
/// before, and a method that consumes a value that is not `Copy` is one
/// error at the expression ("cannot move out of a shared reference", with
/// `.clone()` as the fix) rather than a use-after-move in the body.
pub struct ReceiverProbe<T>(PhantomData<fn(&T)>);

impl<T> ReceiverProbe<T> {
    /// A probe for the type of `place`.
    pub fn of(_place: &T) -> Self {
        ReceiverProbe(PhantomData)
    }
}

/// Chosen first: a `Copy` receiver, copied.
pub trait CopiedReceiver<T> {
    /// The place's value.
    fn receiver(&self, place: &T) -> T;
}

impl<T: Copy> CopiedReceiver<T> for &&ReceiverProbe<T> {
    #[inline(always)]
    fn receiver(&self, place: &T) -> T {
        *place
    }
}

/// Chosen otherwise: the receiver, lent.
pub trait LentReceiver<T> {
    /// The place, borrowed.
    fn receiver<'a>(&self, place: &'a T) -> &'a T;
}

impl<T> LentReceiver<T> for &ReceiverProbe<T> {
    #[inline(always)]
    fn receiver<'a>(&self, place: &'a T) -> &'a T {
        place
    }
}
