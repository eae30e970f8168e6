//! Work that outlives the caller who started it: refreshes under `swr` and
//! early refresh. It runs on the tokio runtime of the calling task, from a
//! future that owns copies of the arguments, and is single-flight with the
//! foreground (it leads an attached flight that later callers join).

use std::future::Future;
use std::pin::Pin;

/// A load that owns everything it needs, ready to be spawned.
pub type BackgroundLoad<R> = Pin<Box<dyn Future<Output = R> + Send + 'static>>;

/// Runs `work` on the current tokio runtime; `false` outside of one (the
/// value then stays stale, and the first caller past its stale window loads
/// in the foreground).
pub(crate) fn spawn(work: impl Future<Output = ()> + Send + 'static) -> bool {
    match tokio::runtime::Handle::try_current() {
        Ok(runtime) => {
            runtime.spawn(work);
            true
        }
        Err(_) => false,
    }
}

/// Makes the owned copy of one argument a background load needs, checked at
/// compile time by autoref specialisation (as keys are): an argument behind
/// a reference is copied with `ToOwned` (`&str` as `String`), any other
/// with `Clone`, and the copy must be `Send + 'static`. Otherwise one error
/// at the argument says why.
pub struct CopyProbe<T: ?Sized>(std::marker::PhantomData<fn(&T)>);

impl<T: ?Sized> CopyProbe<T> {
    /// A probe for the type of `argument`.
    pub fn of(_argument: &T) -> Self {
        CopyProbe(std::marker::PhantomData)
    }
}

/// Chosen first: the argument can be copied.
pub trait CanCopy<T: ?Sized> {
    /// The owned copy.
    type Copy;
    /// An owned copy of `argument`.
    fn copy(&self, argument: &T) -> Self::Copy;
}

impl<T> CanCopy<T> for &&CopyProbe<T>
where
    T: ?Sized + ToOwned,
    T::Owned: Send + Sync + 'static,
{
    type Copy = T::Owned;

    #[inline]
    fn copy(&self, argument: &T) -> T::Owned {
        argument.to_owned()
    }
}

/// Chosen otherwise: a compile error.
pub trait CannotCopy<T: ?Sized> {
    /// Never callable: `T` does not implement [`BackgroundCopy`].
    fn copy(&self, argument: &T) -> NotCopied
    where
        T: BackgroundCopy;
}

impl<T: ?Sized> CannotCopy<T> for &CopyProbe<T> {
    fn copy(&self, _argument: &T) -> NotCopied
    where
        T: BackgroundCopy,
    {
        NotCopied
    }
}

/// What an argument that cannot be copied becomes, so no further error follows.
#[derive(Clone, Copy, Debug)]
pub struct NotCopied;

/// Implemented by no type: its only use is the error message below.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be copied into a background refresh",
    label = "swr and early_refresh run the body later, on the runtime, from a copy of this argument",
    note = "the copy is made with `Clone` (`ToOwned` behind a reference: `&str` becomes a `String`) and must be `Send + Sync + 'static`; for `&self`, derive `Clone` on the type (a repository holding a pool usually can), or drop `swr`/`early_refresh`"
)]
pub trait BackgroundCopy {}
