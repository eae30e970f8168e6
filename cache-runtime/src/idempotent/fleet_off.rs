//! The fleet half of `#[idempotent]` without the `redis` feature (the crate
//! root picks this file): there is never a Redis tier, so records are kept
//! per process, and a `fleet = true` function refuses every call.

use std::future::Future;
use std::marker::PhantomData;

use crate::idempotent::{Idempotency, Landing};

/// What an idempotent function's outcome must be: `Clone + Send + Sync +
/// 'static` (every duplicate gets a copy). With the `redis` feature it must
/// also be `serde::Serialize + DeserializeOwned`. The same of an error type
/// whose errors are stored (`store_err`).
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be the outcome of an idempotent function: it needs `Clone + Send + Sync + 'static`",
    label = "the outcome of this idempotent function",
    note = "derive `Clone`, or return an `Arc` of it"
)]
pub trait StoredOutcome: Clone + Send + Sync + 'static {}

impl<T: Clone + Send + Sync + 'static> StoredOutcome for T {}

/// How an `Ok` value would travel: never, without Redis.
pub(crate) struct OkWire<T>(PhantomData<fn() -> T>);

impl<T: StoredOutcome> OkWire<T> {
    pub(crate) fn new() -> Self {
        OkWire(PhantomData)
    }
}

/// How a final error would travel: never, without Redis.
pub(crate) struct ErrWire<E>(PhantomData<fn() -> E>);

impl<E: StoredOutcome> ErrWire<E> {
    pub(crate) fn new() -> Self {
        ErrWire(PhantomData)
    }
}

/// Has no value: there is no Redis tier without the feature.
pub(crate) enum Fleet {}

/// Never a tier.
pub(crate) fn installed_fleet() -> Option<Fleet> {
    None
}

/// Never called: there is no [`Fleet`] to call it with.
pub(crate) async fn drive<T, E, Op, Fut>(
    _idempotency: &'static Idempotency<T, E>,
    fleet: &'static Fleet,
    _id: &(u128, String),
    _fingerprint: u128,
    _operation: Op,
) -> Landing<T, E>
where
    Op: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = Result<T, E>> + Send + 'static,
{
    match *fleet {}
}
