//! Checking, at compile time, that each argument a background load needs
//! can be copied into it (swr, early refresh, the timeouts).

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
    /// An owned copy of an argument passed by value.
    fn copy_owned(&self, argument: &T) -> Self::Copy;
    /// An owned copy of an argument passed by reference, lent on as `&copy`.
    fn copy_borrowed(&self, argument: &T) -> Self::Copy;
}

impl<T> CanCopy<T> for &&CopyProbe<T>
where
    T: ?Sized + ToOwned,
    T::Owned: Send + Sync + 'static,
{
    type Copy = T::Owned;

    #[inline]
    fn copy_owned(&self, argument: &T) -> T::Owned {
        argument.to_owned()
    }

    #[inline]
    fn copy_borrowed(&self, argument: &T) -> T::Owned {
        argument.to_owned()
    }
}

/// Chosen otherwise: a compile error. Its results have the types the call
/// of `<fn>_uncached` expects, so that no second error follows the first.
pub trait CannotCopy<T: ?Sized> {
    /// Never callable: `T` does not implement [`BackgroundCopy`].
    fn copy_owned(&self, argument: &T) -> T
    where
        T: BackgroundCopy + Sized;
    /// Never callable: `T` does not implement [`BackgroundCopy`].
    fn copy_borrowed(&self, argument: &T) -> &'static T
    where
        T: BackgroundCopy;
}

impl<T: ?Sized> CannotCopy<T> for &CopyProbe<T> {
    fn copy_owned(&self, _argument: &T) -> T
    where
        T: BackgroundCopy + Sized,
    {
        unreachable!("no type implements BackgroundCopy")
    }

    fn copy_borrowed(&self, _argument: &T) -> &'static T
    where
        T: BackgroundCopy,
    {
        unreachable!("no type implements BackgroundCopy")
    }
}

/// An argument of a function with `swr`, `early_refresh` or a timeout must
/// be copyable into the background load (`Clone`, or `ToOwned` behind a
/// reference, and `Send + Sync + 'static`). Implemented by no type: one that
/// is not is one error naming this trait.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be copied into a task of its own",
    label = "swr, early_refresh, the timeouts and #[idempotent] run the body on a task of its own, from a copy of this argument",
    note = "the copy is made with `Clone` (`ToOwned` behind a reference: `&str` becomes a `String`) and must be `Send + Sync + 'static`; for `&self`, derive `Clone` on the type (a repository holding a pool usually can), or drop the background policy"
)]
pub trait BackgroundCopy {}
