//! Checking return types the macro reads by name: a plain value that is a
//! `Result` or `Option` behind an alias, and whether an `#[invalidate]`d
//! write succeeded.

use std::marker::PhantomData;

/// Checks, by autoref specialisation, that a return type the macro treats
/// as a plain value is not a `Result` or `Option` behind an alias.
pub struct PlainProbe<T>(PhantomData<fn() -> T>);

impl<T> PlainProbe<T> {
    /// A probe for `T`.
    pub const fn new() -> Self {
        PlainProbe(PhantomData)
    }
}

impl<T> Default for PlainProbe<T> {
    fn default() -> Self {
        Self::new()
    }
}

/// Chosen for `Result` and `Option`: a compile error.
pub trait PlainIsResultOrOption<R> {
    /// Never callable: `R` does not implement [`NamedResultOrOption`].
    fn check_plain(&self)
    where
        R: NamedResultOrOption;
}

impl<T, E> PlainIsResultOrOption<Result<T, E>> for &&PlainProbe<Result<T, E>> {
    fn check_plain(&self)
    where
        Result<T, E>: NamedResultOrOption,
    {
    }
}

impl<T> PlainIsResultOrOption<Option<T>> for &&PlainProbe<Option<T>> {
    fn check_plain(&self)
    where
        Option<T>: NamedResultOrOption,
    {
    }
}

/// Chosen for every other type: fine.
pub trait PlainIsPlain {
    /// Does nothing.
    fn check_plain(&self) {}
}

impl<T> PlainIsPlain for &PlainProbe<T> {}

/// `#[cached]` recognises `Result` and `Option` return types by name; one
/// hidden behind an alias of another name would be cached as a plain value,
/// failures included. Implemented by no type: such a return type is one
/// error naming this trait.
#[diagnostic::on_unimplemented(
    message = "the return type of this #[cached] function is `{Self}` behind an alias whose name is not `Result` or `Option`",
    label = "#[cached] would cache this as a plain value, failures included",
    note = "#[cached] recognises `Result` and `Option` by name: write the return type as `Result<T, E>` or `Option<T>` (aliases named `…::Result<T>` work too)"
)]
pub trait NamedResultOrOption {}

/// Whether a write succeeded, for `#[invalidate]`: `Ok` and `Some` did,
/// `Err` and `None` did not, any other value did. Chosen by type through
/// autoref: [`WriteIsResultOrOption`] for a `Result` or `Option` (behind
/// any alias), else [`WriteIsPlain`].
pub struct WriteProbe<'a, T>(pub &'a T);

/// [`WriteProbe`] of a `Result` or an `Option`.
pub trait WriteIsResultOrOption {
    /// `Ok` or `Some`.
    fn succeeded(&self) -> bool;
}

impl<T, E> WriteIsResultOrOption for WriteProbe<'_, Result<T, E>> {
    fn succeeded(&self) -> bool {
        self.0.is_ok()
    }
}

impl<T> WriteIsResultOrOption for WriteProbe<'_, Option<T>> {
    fn succeeded(&self) -> bool {
        self.0.is_some()
    }
}

/// [`WriteProbe`] of any other value: returning is success.
pub trait WriteIsPlain {
    /// Always.
    fn succeeded(&self) -> bool {
        true
    }
}

impl<T> WriteIsPlain for &WriteProbe<'_, T> {}
