//! Checking, at compile time, that a function with `hard_timeout` or
//! `circuit_breaker` can turn [`Error`] into its own error type.

use std::marker::PhantomData;

use crate::error::Error;

/// Checks, by autoref specialisation, that `E: From<Error>`: one error at
/// the error type otherwise, naming the way out.
pub struct TimeoutProbe<E>(PhantomData<fn() -> E>);

impl<E> TimeoutProbe<E> {
    /// A probe for `E`.
    pub const fn new() -> Self {
        TimeoutProbe(PhantomData)
    }
}

impl<E> Default for TimeoutProbe<E> {
    fn default() -> Self {
        Self::new()
    }
}

/// Chosen first: `E` converts from [`Error`].
pub trait TimeoutConverts<E> {
    /// Makes the error of a timed-out load.
    fn timeout_error(&self) -> fn() -> E;
    /// Makes the error of a load the circuit breaker refused.
    fn unavailable_error(&self) -> fn() -> E;
}

impl<E: From<Error>> TimeoutConverts<E> for &&TimeoutProbe<E> {
    fn timeout_error(&self) -> fn() -> E {
        || E::from(Error::Timeout)
    }
    fn unavailable_error(&self) -> fn() -> E {
        || E::from(Error::OriginUnavailable)
    }
}

/// Chosen otherwise: a compile error.
pub trait TimeoutDoesNotConvert<E> {
    /// Never callable: `E` does not implement [`TimeoutError`].
    fn timeout_error(&self) -> fn() -> E
    where
        E: TimeoutError;
    /// Never callable: `E` does not implement [`BreakerError`].
    fn unavailable_error(&self) -> fn() -> E
    where
        E: BreakerError;
}

impl<E> TimeoutDoesNotConvert<E> for &TimeoutProbe<E> {
    fn timeout_error(&self) -> fn() -> E
    where
        E: TimeoutError,
    {
        unreachable!("no type implements TimeoutError")
    }
    fn unavailable_error(&self) -> fn() -> E
    where
        E: BreakerError,
    {
        unreachable!("no type implements BreakerError")
    }
}

/// A function with `hard_timeout` must have an error type that converts
/// from [`Error`](crate::Error): a caller that stops waiting gets
/// `Error::Timeout` as its error. Implemented by no type: an error type
/// without the conversion is one error naming this trait.
#[diagnostic::on_unimplemented(
    message = "`hard_timeout` needs `{Self}: From<herdcache::Error>`: a caller that stops waiting gets `herdcache::Error::Timeout` as a `{Self}`",
    label = "the error type of a function with `hard_timeout`",
    note = "add a variant such as `#[error(transparent)] Cache(#[from] herdcache::Error)`; `anyhow::Error`, `std::io::Error` (`ErrorKind::TimedOut`) and `Box<dyn Error + Send + Sync>` convert already"
)]
pub trait TimeoutError {}

/// A function with `circuit_breaker` must have an error type that converts
/// from [`Error`](crate::Error): while the breaker is open, a load fails
/// with `Error::OriginUnavailable` as its error. Implemented by no type: an
/// error type without the conversion is one error naming this trait.
#[diagnostic::on_unimplemented(
    message = "`circuit_breaker` needs `{Self}: From<herdcache::Error>`: while the breaker is open, a load fails with `herdcache::Error::OriginUnavailable` as a `{Self}`",
    label = "the error type of a function with `circuit_breaker`",
    note = "add a variant such as `#[error(transparent)] Cache(#[from] herdcache::Error)`; `anyhow::Error`, `std::io::Error` (`ErrorKind::ConnectionRefused`) and `Box<dyn Error + Send + Sync>` convert already"
)]
pub trait BreakerError {}
