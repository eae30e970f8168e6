//! The HTTP conventions the service uses, from `herdcache::http`:
//! problem+json (RFC 9457), the conditional headers of RFC 9110 (`ETag`,
//! 304, 412), `Cache-Control` from an entry's freshness and windows, and
//! the `Idempotency-Key` header. Plus what the service adds: `X-Cache`.

use axum::http::{HeaderName, HeaderValue};
use axum::response::Response;
use serde::Serialize;

pub use herdcache::http::{Cached, Conditional, IdempotencyKeyHeader, Problem};
use herdcache::{Entry, Served};

/// How the cache answered: `hit`, `stale`, `fail_safe`, `loaded`,
/// `coalesced` or `remote` (`Served::name`).
pub const X_CACHE: HeaderName = HeaderName::from_static("x-cache");

/// The strong entity tag of a value: herdcache's digest of it, the same on
/// every instance, and the one `Cached` sends for the same value.
pub fn etag_of<T: Serialize>(value: &T) -> String {
    Entry::new(value, Served::Hit).etag()
}

/// A cached value's answer to the request `conditional` describes (200
/// with `ETag` and `Cache-Control`, or 304), marked with how it was served.
pub fn respond<T: Serialize>(entry: Entry<T>, conditional: &Conditional) -> Response {
    let served = entry.served();
    mark(Cached::private(entry).respond(conditional), served)
}

/// [`respond`] for data that is the same for every client (shared caches
/// may keep it: `Cache-Control: public`).
pub fn respond_public<T: Serialize>(entry: Entry<T>, conditional: &Conditional) -> Response {
    let served = entry.served();
    mark(Cached::public(entry).respond(conditional), served)
}

fn mark(mut response: Response, served: Served) -> Response {
    response
        .headers_mut()
        .insert(X_CACHE, HeaderValue::from_static(served.name()));
    response
}
