//! Choosing, at compile time, how callers that joined a failing load each
//! get the error.

use std::any::Any;
use std::fmt;
use std::marker::PhantomData;

use crate::outcome::{FailureShare, SharedError};

/// Picks how an error type is shared, at compile time, by autoref
/// specialisation: `(&&&&ShareProbe::<E>::new()).failure_share()` resolves to
/// [`ShareByClone`] when `E: Clone`, else to [`ShareBySharedError`] when
/// `E: From<SharedError> + Send + Sync`, else to [`ShareByMessage`] when
/// `E: From<SharedError>`, else to [`ShareNotPossible`], whose bound fails
/// with a message naming both ways out.
pub struct ShareProbe<E>(PhantomData<fn() -> E>);

impl<E> ShareProbe<E> {
    /// A probe for `E`.
    pub const fn new() -> Self {
        ShareProbe(PhantomData)
    }
}

impl<E> Default for ShareProbe<E> {
    fn default() -> Self {
        Self::new()
    }
}

/// Chosen first: the error is `Clone`.
pub trait ShareByClone<E> {
    /// How the error is shared.
    fn failure_share(&self) -> FailureShare<E>;
}

impl<E: Clone + Send + Sync + 'static> ShareByClone<E> for &&&ShareProbe<E> {
    fn failure_share(&self) -> FailureShare<E> {
        FailureShare::by_clone()
    }
}

/// Chosen second: the error converts from [`SharedError`] and can move into it.
pub trait ShareBySharedError<E> {
    /// How the error is shared.
    fn failure_share(&self) -> FailureShare<E>;
}

impl<E: From<SharedError> + fmt::Display + fmt::Debug + Send + Sync + 'static> ShareBySharedError<E>
    for &&ShareProbe<E>
{
    fn failure_share(&self) -> FailureShare<E> {
        FailureShare::by_shared_error()
    }
}

/// Chosen third: the error converts from [`SharedError`] but is not `Send + Sync`.
pub trait ShareByMessage<E> {
    /// How the error is shared.
    fn failure_share(&self) -> FailureShare<E>;
}

impl<E: From<SharedError> + fmt::Display + fmt::Debug + Any> ShareByMessage<E> for &ShareProbe<E> {
    fn failure_share(&self) -> FailureShare<E> {
        FailureShare::by_shared_message()
    }
}

/// Chosen last: the error can be shared neither way, which is a compile error.
pub trait ShareNotPossible<E> {
    /// Never callable: `E` does not implement [`ShareableError`].
    fn failure_share(&self) -> FailureShare<E>
    where
        E: ShareableError;
}

impl<E> ShareNotPossible<E> for ShareProbe<E> {
    fn failure_share(&self) -> FailureShare<E>
    where
        E: ShareableError,
    {
        unreachable!("no type implements ShareableError")
    }
}

/// A cached function's error type must be `Clone` or convert from
/// [`SharedError`](crate::SharedError), so that each caller that joined a
/// failing load gets its own. Implemented by no type: an error type that
/// can do neither is one error naming this trait and both ways out.
#[diagnostic::on_unimplemented(
    message = "the error type `{Self}` of a #[cached] function must be `Clone` or convert from `herdcache::SharedError`",
    label = "callers that join a failing load each need their own `{Self}`",
    note = "either derive or implement `Clone` for `{Self}` (wrapping a foreign error in `Arc<{Self}>` works), or implement `From<herdcache::SharedError> for {Self}` (e.g. a variant `#[error(transparent)] Shared(#[from] herdcache::SharedError)`); `anyhow::Error`, `std::io::Error` and `Box<dyn Error + Send + Sync>` already do"
)]
pub trait ShareableError {}
