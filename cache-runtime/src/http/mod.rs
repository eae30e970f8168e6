//! HTTP caching and idempotency for axum 0.8 (feature `http`).
//!
//! A cached function's [`Entry`](crate::Entry) already knows what HTTP
//! caches ask: a validator (its digest), how long it stays fresh, how long
//! it may be served stale. [`Cached`] writes that down; [`Conditional`]
//! reads the request's preconditions; [`Problem`] answers errors as
//! RFC 9457 problem details.
//!
//! | the entry | the response |
//! |---|---|
//! | [`value`](crate::Entry::value) | the JSON body, `Content-Type: application/json` |
//! | [`etag`](crate::Entry::etag) | `ETag: "<32 hex digits>"`, strong: the same value has it on every instance |
//! | [`fresh_for`](crate::Entry::fresh_for) | `Cache-Control: max-age=<whole seconds>` (0 once stale) |
//! | [`stale_window`](crate::Entry::stale_window) (`swr`) | `stale-while-revalidate=<secs>` (RFC 5861), when at least a second |
//! | [`fail_safe_window`](crate::Entry::fail_safe_window) (`fail_safe`) | `stale-if-error=<secs>`, when at least a second |
//! | [`Cached::private`] / [`Cached::public`] | `private` (per-user data) or `public` first in `Cache-Control` |
//! | [`Cached::vary`] | `Vary` |
//!
//! Every response also carries `Date`. A GET or HEAD whose `If-None-Match`
//! matches the ETag (weak comparison, `*`, or any member of a list) gets
//! `304 Not Modified` with the same `ETag`, `Cache-Control`, `Vary` and
//! `Date`, and no body; a failing `If-Match` gets `412`.
//! `If-Modified-Since` is ignored, as RFC 9110 allows when
//! `If-None-Match` is present and because an entry carries no
//! `Last-Modified`. Writes check `If-Match` with
//! [`Conditional::if_match`] (strong comparison) before writing.
//!
//! ```
//! # use herdcache_runtime as herdcache;
//! use std::time::Duration;
//! use axum::{extract::Path, response::Response, routing::{get, put}, Router};
//! use herdcache::http::{Cached, Conditional, Problem};
//! use herdcache::{Entry, Served};
//!
//! // In a service, `#[cached]` writes `price_entry` beside `price`.
//! async fn price_entry(sku: &str) -> Entry<u32> {
//!     Entry::new(sku.len() as u32, Served::Hit)
//!         .with_fresh_for(Duration::from_secs(60))
//!         .with_windows(Duration::from_secs(30), Duration::from_secs(600))
//! }
//!
//! async fn read(Path(sku): Path<String>, conditional: Conditional) -> Response {
//!     Cached::public(price_entry(&sku).await).respond(&conditional)
//! }
//!
//! async fn write(Path(sku): Path<String>, conditional: Conditional) -> Result<(), Problem> {
//!     let current = price_entry(&sku).await.etag();
//!     conditional.if_match(Some(&current))?; // 412 if someone wrote first
//!     // ... write, then invalidate the entry.
//!     Ok(())
//! }
//!
//! let app: Router = Router::new().route("/price/{sku}", get(read).put(write));
//! ```
//!
//! For `#[idempotent]` writes: [`IdempotencyKeyHeader`] reads the
//! `Idempotency-Key` header; an [`IdempotencyError`](crate::IdempotencyError)
//! is a response (`400`, `409` with `Retry-After`, `422`, `503`, each a
//! problem); and an [`Idempotent`](crate::Idempotent) outcome is its
//! response, with `Idempotent-Replayed: true` when it was replayed.

mod cached;
mod conditional;
mod date;
mod idempotency;
mod problem;

pub use cached::Cached;
pub use conditional::Conditional;
pub use idempotency::IdempotencyKeyHeader;
pub use problem::Problem;
