//! Conditional refresh: a load that refreshes a value the cache holds can
//! read that value ([`previous`]) and answer "not modified"
//! ([`Previous::not_modified`]), the origin's `ETag` / `304` round trip.

use std::any::Any;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

tokio::task_local! {
    /// The load running on this task: the value it refreshes, if any.
    static LOAD: Option<Revalidation>;
}

/// What a load that refreshes a value carries to its body.
pub(crate) struct Revalidation {
    previous: Box<dyn Any + Send + Sync>,
    not_modified: Arc<AtomicBool>,
}

impl Revalidation {
    /// A load refreshing `previous`, and the flag its body sets when the
    /// origin says the value did not change.
    pub(crate) fn new<V: Send + Sync + 'static>(previous: V) -> (Self, Arc<AtomicBool>) {
        let not_modified = Arc::new(AtomicBool::new(false));
        let revalidation = Revalidation {
            previous: Box::new(previous),
            not_modified: not_modified.clone(),
        };
        (revalidation, not_modified)
    }
}

/// Runs `load` with `revalidation` visible to [`previous`] (none: a load
/// of a value the cache does not hold, which also hides an enclosing
/// load's from a cached function called inside it).
pub(crate) async fn scope<F: std::future::Future>(
    revalidation: Option<Revalidation>,
    load: F,
) -> F::Output {
    LOAD.scope(revalidation, load).await
}

/// The value the cache holds for the key a body is loading, when the load
/// refreshes one (an `swr` or early refresh, a load past freshness while
/// the value is kept for `fail_safe` or `swr`, `_refresh`): for a
/// conditional request to the origin. `None` outside a cached function's
/// body, on a first load, or when `T` is not the function's value type
/// (the `T` of a `Result<T, E>` or `Option<T>`).
///
/// ```
/// # use herdcache_runtime as herdcache;
/// #[derive(Clone)]
/// struct Page { etag: String, body: String }
///
/// // Inside `#[cached(ttl = "1m", swr = "1h")] async fn page(url: String) -> Result<Page, E>`:
/// # async fn fetch(url: &str, if_none_match: Option<&str>) -> Option<Page> { None }
/// # async fn body(url: String) -> Result<Page, std::io::Error> {
/// let previous = herdcache::previous::<Page>();
/// let if_none_match = previous.as_ref().map(|p| p.value().etag.as_str());
/// match fetch(&url, if_none_match).await {
///     // 304 Not Modified: keep the value, with new horizons.
///     None => match previous {
///         Some(previous) => Ok(previous.not_modified()),
///         None => Err(std::io::Error::other("304 to an unconditional request")),
///     },
///     Some(page) => Ok(page),
/// }
/// # }
/// ```
///
/// The value is a clone, made when the load starts (only when the cache
/// holds one: a first load pays nothing).
pub fn previous<T: Clone + 'static>() -> Option<Previous<T>> {
    LOAD.try_with(|load| {
        let load = load.as_ref()?;
        let value = load.previous.downcast_ref::<T>()?.clone();
        Some(Previous {
            value,
            not_modified: load.not_modified.clone(),
        })
    })
    .ok()
    .flatten()
}

/// The value a load refreshes, from [`previous`].
#[derive(Debug)]
pub struct Previous<T> {
    value: T,
    not_modified: Arc<AtomicBool>,
}

impl<T> Previous<T> {
    /// The value the cache holds.
    pub fn value(&self) -> &T {
        &self.value
    }

    /// The value, owned, without marking anything: for a body that builds
    /// a new value from the old one.
    pub fn into_value(self) -> T {
        self.value
    }

    /// The origin says nothing changed: returns the value for the body to
    /// return (`Ok(previous.not_modified())`), and marks the load as a
    /// revalidation. The cache keeps the value with new horizons, as if
    /// loaded now, and counts it in `Stats::not_modified`. Its copy in
    /// Redis, when it still holds this value (by digest) with the same tag
    /// versions, has its horizons and expiry rewritten in place; otherwise
    /// the value is written whole.
    pub fn not_modified(self) -> T {
        self.not_modified.store(true, Ordering::Relaxed);
        self.value
    }
}
