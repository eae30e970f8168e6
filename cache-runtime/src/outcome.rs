//! What a loader returns, and how one failed load reaches every caller that
//! was waiting on it.
//!
//! `Ok`/`Some`/a plain value is cached. `Err`/`None` is not, and callers that
//! joined the failing load each need their own copy of the failure without
//! running the loader again. A caller alone keeps its error. With waiters,
//! an error is shared by cloning it when it is `Clone`; otherwise it moves
//! into a [`SharedError`] and every caller of the load, the first included,
//! gets `E::from(shared)`, from which `downcast_ref` recovers the original.
//! (An error that is not `Send + Sync` cannot move: the first caller keeps
//! it and the others get its message.)

use std::any::Any;
use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::sync::Arc;

/// A loader's result, split into the value to cache or the failure to pass on.
pub trait Outcome: Sized {
    /// What is cached and cloned out on a hit. (The engine requires
    /// `Clone + Send + Sync + 'static` where it stores it; the trait does
    /// not, so that a bad value type is reported once, by the value check.)
    type Value;
    /// What an uncached outcome carries: the error of a `Result`, `()` for `None`.
    type Failure;
    /// Whether a failure counts as a load error (`Err` does, `None` does not).
    const FAILURE_IS_ERROR: bool;

    /// The value to cache, or the failure.
    fn into_parts(self) -> Result<Self::Value, Self::Failure>;
    /// Rebuilds the outcome from a cached value.
    fn from_value(value: Self::Value) -> Self;
    /// Rebuilds the outcome from a failure.
    fn from_failure(failure: Self::Failure) -> Self;
}

impl<T, E> Outcome for Result<T, E> {
    type Value = T;
    type Failure = E;
    const FAILURE_IS_ERROR: bool = true;

    #[inline]
    fn into_parts(self) -> Result<T, E> {
        self
    }
    #[inline]
    fn from_value(value: T) -> Self {
        Ok(value)
    }
    #[inline]
    fn from_failure(failure: E) -> Self {
        Err(failure)
    }
}

impl<T> Outcome for Option<T> {
    type Value = T;
    type Failure = ();
    const FAILURE_IS_ERROR: bool = false;

    #[inline]
    fn into_parts(self) -> Result<T, ()> {
        self.ok_or(())
    }
    #[inline]
    fn from_value(value: T) -> Self {
        Some(value)
    }
    #[inline]
    fn from_failure((): ()) -> Self {
        None
    }
}

/// A return type that is neither `Result` nor `Option`: always cached.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plain<T>(pub T);

impl<T> Outcome for Plain<T> {
    type Value = T;
    type Failure = Infallible;
    const FAILURE_IS_ERROR: bool = false;

    #[inline]
    fn into_parts(self) -> Result<T, Infallible> {
        Ok(self.0)
    }
    #[inline]
    fn from_value(value: T) -> Self {
        Plain(value)
    }
    #[inline]
    fn from_failure(failure: Infallible) -> Self {
        match failure {}
    }
}

/// Wraps a loader whose output is a plain value.
pub async fn plain<F: Future>(loader: F) -> Plain<F::Output> {
    Plain(loader.await)
}

/// A failure as it travels from the loading caller to the waiting ones.
pub type SharedFailure = Arc<dyn Any + Send + Sync>;

/// How a failure of type `F` is handed to callers that joined the load.
pub struct FailureShare<F> {
    /// Makes the shared form and gives back what the leading caller returns.
    share: fn(F) -> (SharedFailure, F),
    unshare: fn(&SharedFailure) -> F,
    /// For a share that moves the error into a `SharedError`: a shared
    /// form carrying its message, so that an `#[idempotent]` run's own
    /// caller can keep the error itself.
    capture: Option<fn(&F) -> SharedFailure>,
}

impl<F> Clone for FailureShare<F> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<F> Copy for FailureShare<F> {}

impl<F> FailureShare<F> {
    /// The shared form of `failure` for the waiters, and the failure the
    /// leading caller returns.
    pub(crate) fn share(&self, failure: F) -> (SharedFailure, F) {
        (self.share)(failure)
    }
    /// The function that makes a waiter's copy.
    pub(crate) fn unshare_fn(&self) -> fn(&SharedFailure) -> F {
        self.unshare
    }
    /// A shared form carrying the failure's message, if this share would
    /// move the failure itself into it.
    pub(crate) fn capture(&self) -> Option<fn(&F) -> SharedFailure> {
        self.capture
    }
    pub(crate) fn unshare(&self, shared: &SharedFailure) -> F {
        (self.unshare)(shared)
    }
}

impl FailureShare<()> {
    /// `None` needs nothing to be shared.
    pub fn unit() -> Self {
        FailureShare {
            share: |()| (Arc::new(()), ()),
            unshare: |_| (),
            capture: None,
        }
    }
}

impl FailureShare<Infallible> {
    /// A plain value never fails.
    pub fn never() -> Self {
        FailureShare {
            share: |never| match never {},
            unshare: |_| unreachable!("a plain loader has no failure to share"),
            capture: None,
        }
    }
}

impl<E: Clone + Send + Sync + 'static> FailureShare<E> {
    /// Every waiting caller gets a clone of the error; the leader keeps it.
    pub fn by_clone() -> Self {
        FailureShare {
            share: |error| (Arc::new(error.clone()), error),
            unshare: |shared| {
                shared
                    .downcast_ref::<E>()
                    .expect("a shared failure keeps its type")
                    .clone()
            },
            capture: None,
        }
    }
}

/// `E::from` the [`SharedError`] a waiter received.
fn from_shared<E: From<SharedError>>(shared: &SharedFailure) -> E {
    E::from(
        shared
            .downcast_ref::<SharedError>()
            .expect("a shared failure keeps its type")
            .clone(),
    )
}

impl<E: From<SharedError> + fmt::Display + fmt::Debug + Send + Sync + 'static> FailureShare<E> {
    /// The error moves into a [`SharedError`] that every caller of the load
    /// gets as `E::from(shared)`, the leader included, so that all of them
    /// can reach the original with [`SharedError::downcast_ref`].
    pub fn by_shared_error() -> Self {
        FailureShare {
            share: |error| {
                let shared = SharedError::new(error);
                (Arc::new(shared.clone()), E::from(shared))
            },
            unshare: from_shared,
            capture: Some(|error| Arc::new(SharedError::capture(error))),
        }
    }
}

impl<E: From<SharedError> + fmt::Display + fmt::Debug + Any> FailureShare<E> {
    /// For an error that is not `Send + Sync`: waiters get
    /// `E::from(SharedError)` carrying its message; the leader keeps it.
    pub fn by_shared_message() -> Self {
        FailureShare {
            share: |error| (Arc::new(SharedError::capture(&error)), error),
            unshare: from_shared,
            capture: None,
        }
    }
}

/// How one failed load's error reaches every caller that joined it, and
/// what those callers receive when the error type is not `Clone`.
///
/// A caller alone gets its error as the body returned it. When callers
/// joined the failing load (or a negative rule caches the error), each gets
/// an error without the body running again, chosen by the error type `E`
/// at compile time:
///
/// | `E` is | every caller of that load gets |
/// |---|---|
/// | `Clone` | a clone. **The simplest path**: wrap a foreign error as `Arc<sqlx::Error>` to make your error `Clone` |
/// | `From<SharedError> + Send + Sync` | `E::from(shared)`, the first caller included: the original moved into this `SharedError`, which [`downcast_ref`](Self::downcast_ref) gives back |
/// | `From<SharedError>`, not `Send + Sync` | the first caller keeps its error; the others get `E::from(shared)` with its message only (`downcast_ref` is `None`) |
/// | neither | a compile error at `E` that names both ways out. (`sqlx::Error` is such a type: return `Arc<sqlx::Error>`, `anyhow::Error`, or your own error enum.) |
///
/// `anyhow::Error`, `std::io::Error` and `Box<dyn Error + Send + Sync>`
/// convert from `SharedError` already. Your own enum takes it with a
/// variant such as
/// `#[error(transparent)] Shared(#[from] herdcache::SharedError)`
/// (thiserror) or a `From` impl.
///
/// It prints like the original error: its message (`{}`), its chain (`{:#}`,
/// as `anyhow` prints it, also reachable through `source()`), its `Debug`
/// form, and the [`io_kind`](Self::io_kind) of an `io::Error`. It holds the
/// original behind an `Arc` (cloning is cheap). Match on the original, so
/// that a `NotFound` stays a 404 under load:
///
/// ```
/// use herdcache_runtime::SharedError;
///
/// #[derive(Debug)]
/// enum RepoError {
///     NotFound,
///     Unavailable(std::io::Error),
///     Shared(SharedError),
/// }
/// # impl std::fmt::Display for RepoError {
/// #     fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result { write!(f, "{self:?}") }
/// # }
/// impl From<SharedError> for RepoError {
///     fn from(shared: SharedError) -> Self {
///         RepoError::Shared(shared)
///     }
/// }
///
/// /// The error as the load returned it, whether or not this caller shared it.
/// fn original(error: &RepoError) -> &RepoError {
///     match error {
///         RepoError::Shared(shared) => shared.downcast_ref::<RepoError>().unwrap_or(error),
///         other => other,
///     }
/// }
///
/// fn status(error: &RepoError) -> u16 {
///     match original(error) {
///         RepoError::NotFound => 404,
///         _ => 503,
///     }
/// }
/// # let shared = SharedError::new(RepoError::NotFound);
/// # assert_eq!(status(&RepoError::from(shared)), 404);
/// ```
#[derive(Clone)]
pub struct SharedError(Arc<SharedErrorInner>);

struct SharedErrorInner {
    message: String,
    chain: String,
    debug: String,
    io_kind: Option<std::io::ErrorKind>,
    /// The rest of the chain, so that reporters that walk `source()` (as
    /// `anyhow` does for `{:#}`) print what the original printed.
    source: Option<SharedError>,
    /// The error itself, when it could be moved in (`Send + Sync`).
    original: Option<Box<dyn Any + Send + Sync>>,
}

impl SharedError {
    /// Takes `error` in: it prints like it, and [`downcast_ref`](Self::downcast_ref)
    /// gives it back.
    pub fn new<E: fmt::Display + fmt::Debug + Send + Sync + 'static>(error: E) -> Self {
        let mut shared = Self::capture(&error);
        Arc::get_mut(&mut shared.0)
            .expect("a new SharedError is not shared yet")
            .original = Some(Box::new(error));
        shared
    }

    /// Captures how `error` prints (and its kind, if it is a `std::io::Error`),
    /// without the error itself.
    pub fn capture<E: fmt::Display + fmt::Debug + Any>(error: &E) -> Self {
        let io_kind = (error as &dyn Any)
            .downcast_ref::<std::io::Error>()
            .map(std::io::Error::kind);
        Self::from_parts(
            error.to_string(),
            format!("{error:#}"),
            format!("{error:?}"),
            io_kind,
        )
    }

    fn from_parts(
        message: String,
        chain: String,
        debug: String,
        io_kind: Option<std::io::ErrorKind>,
    ) -> Self {
        // `{:#}` of an error with causes reads "message: cause: …".
        let source = chain
            .strip_prefix(message.as_str())
            .and_then(|rest| rest.strip_prefix(": "))
            .filter(|rest| !rest.is_empty())
            .map(|rest| Self::from_parts(rest.to_owned(), rest.to_owned(), rest.to_owned(), None));
        SharedError(Arc::new(SharedErrorInner {
            message,
            chain,
            debug,
            io_kind,
            source,
            original: None,
        }))
    }

    /// The original error, if it is a `T`. `None` for another type, and for
    /// an error type that is not `Send + Sync` (only its message is shared).
    pub fn downcast_ref<T: Any>(&self) -> Option<&T> {
        self.0.original.as_deref()?.downcast_ref()
    }

    /// The original error's message.
    pub fn message(&self) -> &str {
        &self.0.message
    }

    /// The original error's kind, when it was a `std::io::Error`.
    pub fn io_kind(&self) -> Option<std::io::ErrorKind> {
        self.0.io_kind
    }
}

/// `std::io::Error` is the most common error type and cannot be `Clone`:
/// callers that joined a failing load get an `io::Error` of the same kind
/// and message.
impl From<SharedError> for std::io::Error {
    fn from(shared: SharedError) -> Self {
        let kind = shared.io_kind().unwrap_or(std::io::ErrorKind::Other);
        std::io::Error::new(kind, shared)
    }
}

impl fmt::Display for SharedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if f.alternate() {
            f.write_str(&self.0.chain)
        } else {
            f.write_str(&self.0.message)
        }
    }
}

impl fmt::Debug for SharedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.debug)
    }
}

impl std::error::Error for SharedError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0
            .source
            .as_ref()
            .map(|source| source as &(dyn std::error::Error + 'static))
    }
}

#[cfg(test)]
// The probes' borrows are the point: removing one changes which impl the
// autoref specialisation picks.
#[allow(clippy::needless_borrow)]
mod tests {
    use super::*;
    use crate::probe::{ShareByClone, ShareBySharedError, ShareProbe};

    #[derive(Clone, Debug, PartialEq)]
    struct Cloneable(u32);

    #[derive(Debug)]
    enum NotClone {
        Io(std::io::Error),
        Shared(SharedError),
    }
    impl fmt::Display for NotClone {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            match self {
                NotClone::Io(e) => write!(f, "io: {e}"),
                NotClone::Shared(e) => e.fmt(f),
            }
        }
    }
    impl From<SharedError> for NotClone {
        fn from(e: SharedError) -> Self {
            NotClone::Shared(e)
        }
    }

    #[test]
    fn a_clone_error_is_shared_by_cloning() {
        let share = (&&&&ShareProbe::<Cloneable>::new()).failure_share();
        let (shared, own) = share.share(Cloneable(7));
        assert_eq!(own, Cloneable(7));
        assert_eq!(share.unshare(&shared), Cloneable(7));
    }

    #[test]
    fn a_non_clone_error_moves_into_a_shared_error_every_caller_gets() {
        let share = (&&&&ShareProbe::<NotClone>::new()).failure_share();
        let original = NotClone::Io(std::io::Error::other("disk on fire"));
        let (shared, own) = share.share(original);
        for copy in [own, share.unshare(&shared)] {
            match copy {
                NotClone::Shared(e) => {
                    assert_eq!(e.to_string(), "io: disk on fire");
                    // The original is reachable, typed.
                    match e.downcast_ref::<NotClone>() {
                        Some(NotClone::Io(io)) => assert_eq!(io.to_string(), "disk on fire"),
                        other => panic!("expected the original error, got {other:?}"),
                    }
                    assert!(e.downcast_ref::<std::io::Error>().is_none());
                }
                other => panic!("expected the shared error, got {other:?}"),
            }
        }
    }

    #[test]
    fn an_io_error_is_shared_with_its_kind() {
        let share = (&&&&ShareProbe::<std::io::Error>::new()).failure_share();
        let original = std::io::Error::new(std::io::ErrorKind::NotFound, "no such user");
        let (shared, _) = share.share(original);
        let copy = share.unshare(&shared);
        assert_eq!(copy.kind(), std::io::ErrorKind::NotFound);
        assert_eq!(copy.to_string(), "no such user");
    }

    #[test]
    fn a_shared_error_keeps_the_chain_as_sources() {
        #[derive(Debug)]
        struct Chained;
        impl fmt::Display for Chained {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                if f.alternate() {
                    f.write_str("loading user 5: pool timed out")
                } else {
                    f.write_str("loading user 5")
                }
            }
        }
        let shared = SharedError::capture(&Chained);
        let source = std::error::Error::source(&shared).expect("a source");
        assert_eq!(source.to_string(), "pool timed out");
        assert!(source.source().is_none());
    }

    #[test]
    fn a_shared_error_prints_like_the_original() {
        let original = std::io::Error::other("boom");
        let shared = SharedError::capture(&original);
        assert_eq!(shared.to_string(), "boom");
        assert_eq!(format!("{shared:#}"), format!("{original:#}"));
        assert_eq!(format!("{shared:?}"), format!("{original:?}"));
        assert_eq!(shared.message(), "boom");
    }
}
