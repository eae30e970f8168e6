//! Checking a `#[cached]` function's value type once, at its return type.
//!
//! The cached value is cloned out on every hit and shared between threads,
//! so it must be `Clone + Send + Sync + 'static`. Were each engine call to
//! require that, a value type missing one bound would be reported at every
//! call the generated code makes (three to sixteen errors, in terms of
//! herdcache's internals). Instead the macro probes the return type once,
//! `(&&&ValueProbe::<R>::new()).through()`, by autoref specialisation:
//!
//! - a cacheable value resolves to [`Direct`], which passes the outcome to
//!   the engine as it is (every method an identity, inlined away);
//! - any other resolves to [`Refused`], whose bound fails with one message at
//!   the return type, and which hands the engine a placeholder value that
//!   satisfies every bound, so that no second error follows.
//!
//! The generated code reaches the engine only through the [`Through`] the
//! probe chose.

use std::future::Future;
use std::hash::Hash;
use std::marker::PhantomData;

use crate::background::BackgroundLoad;
use crate::config::{CacheConfig, LoadHooks};
use crate::fn_cache::FnCache;
use crate::outcome::{FailureShare, Outcome, Plain};
use crate::redis::Codec;
use crate::registry::Slot;

/// How a function's outcome `R` passes through the engine.
pub trait Through<R: Outcome>: Copy {
    /// The outcome the engine stores and returns.
    type Engine: Outcome<Value: Clone + Send + Sync + 'static>;

    /// The function's outcome, for the engine.
    fn into_engine(self, outcome: R) -> Self::Engine;
    /// The engine's outcome, for the caller.
    fn to_caller(self, outcome: Self::Engine) -> R;
    /// What the engine does with an outcome: share a failure, cache it, a
    /// value's own ttl.
    fn hooks(
        self,
        hooks: LoadHooks<R::Value, R::Failure>,
    ) -> LoadHooks<<Self::Engine as Outcome>::Value, <Self::Engine as Outcome>::Failure>;

    /// The function's cache in `scope`, made from `config` on first use.
    /// Always inlined, as [`Slot::cache`]: on the hit path.
    #[inline(always)]
    fn cache<K>(
        self,
        slot: &'static Slot,
        scope: &'static str,
        config: fn() -> CacheConfig,
        codec: Option<Codec<K, <Self::Engine as Outcome>::Value>>,
    ) -> &'static FnCache<K, <Self::Engine as Outcome>::Value>
    where
        K: Hash + Eq + Clone + Send + Sync + 'static,
    {
        slot.cache(scope, config, codec)
    }

    /// The function's body as the engine's loader.
    fn loader<F: Future<Output = R>>(self, body: F) -> impl Future<Output = Self::Engine> {
        async move { self.into_engine(body.await) }
    }

    /// The function's body, from owned copies of its arguments, as a load
    /// the engine can run in the background.
    fn background<F>(self, body: F) -> Option<BackgroundLoad<Self::Engine>>
    where
        F: Future<Output = R> + Send + 'static,
        Self: Send + 'static,
        Self::Engine: Send + 'static,
    {
        Some(Box::pin(async move { self.into_engine(body.await) }))
    }
}

/// Probes the value type of an outcome `R`.
pub struct ValueProbe<R>(PhantomData<fn() -> R>);

impl<R> ValueProbe<R> {
    /// A probe for `R`.
    pub const fn new() -> Self {
        ValueProbe(PhantomData)
    }
}

impl<R> Default for ValueProbe<R> {
    fn default() -> Self {
        Self::new()
    }
}

/// Chosen first: the value can be cached.
pub trait CacheableValue<R> {
    /// The way through the engine.
    fn through(&self) -> Direct<R>;
}

impl<R> CacheableValue<R> for &&ValueProbe<R>
where
    R: Outcome<Value: Clone + Send + Sync + 'static>,
{
    #[inline]
    fn through(&self) -> Direct<R> {
        Direct(PhantomData)
    }
}

/// Chosen second, for a value that is `Clone` but not `Send + Sync` (an
/// `Rc`, a `RefCell` inside): a compile error at the return type that says
/// so, not advice to wrap it in an `Arc` (which would not be `Send` either).
pub trait NotSharedValue<R: Outcome> {
    /// Never callable: the value does not implement [`SharedValue`].
    fn through(&self) -> Refused<R>
    where
        R::Value: SharedValue;
}

impl<R> NotSharedValue<R> for &ValueProbe<R>
where
    R: Outcome<Value: Clone + 'static>,
{
    fn through(&self) -> Refused<R>
    where
        R::Value: SharedValue,
    {
        Refused(PhantomData)
    }
}

/// A value that is `Clone` must also be `Send + Sync` to be cached (it is
/// cloned out to callers on any thread). Implemented by no type: an `Rc` or
/// `RefCell` inside the value is one error naming this trait.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be the value of a #[cached] function: it is `Clone`, but not `Send + Sync`",
    label = "the value returned here is stored and cloned out to every caller, from any thread",
    note = "use `std::sync::Arc` instead of `Rc`, and `Mutex` or `RwLock` instead of `RefCell` or `Cell`, in `{Self}`"
)]
pub trait SharedValue {}

/// Chosen otherwise: a compile error at the return type.
pub trait NotCacheableValue<R: Outcome> {
    /// Never callable: the value does not implement [`CachedValue`].
    fn through(&self) -> Refused<R>
    where
        R::Value: CachedValue;
}

impl<R: Outcome> NotCacheableValue<R> for ValueProbe<R> {
    fn through(&self) -> Refused<R>
    where
        R::Value: CachedValue,
    {
        Refused(PhantomData)
    }
}

/// A cached function's value must be `Clone + Send + Sync + 'static`.
/// Implemented by no type: a value that lacks a bound is one error naming
/// this trait and the way out (derive `Clone`, or return an `Arc`).
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be the value of a #[cached] function: it must be `Clone + Send + Sync + 'static`",
    label = "the value returned here is stored and cloned out to every caller, from any thread",
    note = "derive `Clone` if the type is cheap to copy; otherwise return `std::sync::Arc<{Self}>`, so a hit clones a pointer (and use `Arc`/`Mutex` instead of `Rc`/`RefCell` inside)"
)]
pub trait CachedValue {}

/// The way through for a cacheable value: the outcome as it is.
pub struct Direct<R>(PhantomData<fn() -> R>);

impl<R> Clone for Direct<R> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<R> Copy for Direct<R> {}

impl<R> Through<R> for Direct<R>
where
    R: Outcome<Value: Clone + Send + Sync + 'static>,
{
    type Engine = R;

    #[inline]
    fn into_engine(self, outcome: R) -> R {
        outcome
    }
    #[inline]
    fn to_caller(self, outcome: R) -> R {
        outcome
    }
    #[inline]
    fn hooks(self, hooks: LoadHooks<R::Value, R::Failure>) -> LoadHooks<R::Value, R::Failure> {
        hooks
    }
}

/// The way through for a value that cannot be cached: only ever compiled
/// beside the error that says so, never run.
pub struct Refused<R>(PhantomData<fn() -> R>);

impl<R> Clone for Refused<R> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<R> Copy for Refused<R> {}

/// What a refused value becomes, so that no further error follows.
#[derive(Clone, Debug)]
pub struct NotAValue;

impl<R: Outcome> Through<R> for Refused<R> {
    type Engine = Plain<NotAValue>;

    fn into_engine(self, _: R) -> Plain<NotAValue> {
        unreachable!("a refused value type does not compile")
    }
    fn to_caller(self, _: Plain<NotAValue>) -> R {
        unreachable!("a refused value type does not compile")
    }
    fn hooks(
        self,
        _: LoadHooks<R::Value, R::Failure>,
    ) -> LoadHooks<NotAValue, std::convert::Infallible> {
        LoadHooks::new(FailureShare::never())
    }
}

#[cfg(test)]
#[allow(clippy::needless_borrow)]
mod tests {
    use super::*;

    #[test]
    fn a_cacheable_value_goes_through_as_it_is() {
        let through = (&&&ValueProbe::<Result<u32, String>>::new()).through();
        assert_eq!(through.into_engine(Ok(7)), Ok(7));
        assert_eq!(through.to_caller(Err("no".into())), Err("no".to_owned()));
    }
}
