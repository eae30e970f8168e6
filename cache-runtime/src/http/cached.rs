//! [`Cached`]: an [`Entry`] as an HTTP response, with its validator, its
//! freshness for HTTP caches, and the answer to a conditional GET.

use std::time::{Duration, SystemTime};

use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::date::http_date;
use super::{Conditional, Problem};
use crate::Entry;

/// Who may store the response: the `private` or `public` of
/// `Cache-Control`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Audience {
    Private,
    Public,
}

/// An [`Entry`] as a response: its value as JSON, its ETag, and a
/// `Cache-Control` from its freshness and windows. See the
/// [module page](super) for the mapping.
///
/// ```
/// # use herdcache_runtime as herdcache;
/// use std::time::Duration;
/// use axum::{http::header::ACCEPT_LANGUAGE, response::Response};
/// use herdcache::{http::{Cached, Conditional}, Entry, Served};
///
/// async fn get_user(conditional: Conditional) -> Response {
///     // In a service: `user_entry(id).await` from `#[cached]`.
///     let entry = Entry::new("ada", Served::Hit).with_fresh_for(Duration::from_secs(60));
///     Cached::private(entry).vary(ACCEPT_LANGUAGE).respond(&conditional)
/// }
/// let app: axum::Router = axum::Router::new().route("/me", axum::routing::get(get_user));
/// ```
#[derive(Clone, Debug)]
#[must_use = "a Cached does nothing until it is turned into a response"]
pub struct Cached<T> {
    entry: Entry<T>,
    audience: Audience,
    vary: Vec<HeaderName>,
}

impl<T> Cached<T> {
    /// `entry` for one user's eyes: `Cache-Control: private`, stored by
    /// the browser only. Per-user data must use this.
    pub fn private(entry: Entry<T>) -> Self {
        Cached::with_audience(entry, Audience::Private)
    }

    /// `entry` for everyone: `Cache-Control: public`, stored by shared
    /// caches (CDNs, proxies) too. Only for data that is the same for
    /// every user.
    pub fn public(entry: Entry<T>) -> Self {
        Cached::with_audience(entry, Audience::Public)
    }

    fn with_audience(entry: Entry<T>, audience: Audience) -> Self {
        Cached {
            entry,
            audience,
            vary: Vec::new(),
        }
    }

    /// Adds `name` to `Vary`: the request header the value depends on
    /// (`Accept-Language`, `Authorization`, …), so that caches keep one
    /// copy per value of it. Repeatable; a name given twice counts once.
    pub fn vary(mut self, name: HeaderName) -> Self {
        if !self.vary.contains(&name) {
            self.vary.push(name);
        }
        self
    }

    /// The `Cache-Control` value: `private` or `public`, `max-age` (the
    /// freshness left), then `stale-while-revalidate` and
    /// `stale-if-error` when the function has those windows.
    fn cache_control(&self) -> String {
        let audience = match self.audience {
            Audience::Private => "private",
            Audience::Public => "public",
        };
        let mut value = format!("{audience}, max-age={}", self.entry.fresh_for().as_secs());
        let windows = [
            ("stale-while-revalidate", self.entry.stale_window()),
            ("stale-if-error", self.entry.fail_safe_window()),
        ];
        for (directive, window) in windows {
            if window >= Duration::from_secs(1) {
                value.push_str(&format!(", {directive}={}", window.as_secs()));
            }
        }
        value
    }

    /// The headers a 200 and a 304 share: `ETag`, `Cache-Control`, `Vary`
    /// and `Date`.
    fn validator_headers(&self, etag: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        let mut put = |name: HeaderName, value: &str| {
            // Every value is ASCII we wrote: hex, digits, names, a date.
            if let Ok(value) = HeaderValue::from_str(value) {
                headers.insert(name, value);
            }
        };
        put(header::ETAG, etag);
        put(header::CACHE_CONTROL, &self.cache_control());
        if !self.vary.is_empty() {
            let names: Vec<&str> = self.vary.iter().map(HeaderName::as_str).collect();
            put(header::VARY, &names.join(", "));
        }
        put(header::DATE, &http_date(SystemTime::now()));
        headers
    }
}

impl<T: Serialize> Cached<T> {
    /// The answer to the request `conditional` describes.
    ///
    /// For GET and HEAD, the preconditions in RFC 9110 §13.2.2's order:
    /// `If-Match` (strong) that fails is `412`; then `If-None-Match`
    /// (weak; `*` matches) that matches is `304 Not Modified`, no body,
    /// with the headers the 200 would carry. `If-Modified-Since` is
    /// ignored: an entry has no `Last-Modified`. Otherwise the 200 of
    /// [`IntoResponse`] (HEAD: its headers, no body).
    ///
    /// Any other method gets the 200 as is: a write's preconditions are
    /// judged against the resource before the write
    /// ([`Conditional::if_match`], [`Conditional::if_none_match`]), not
    /// against the value it answers with.
    ///
    /// A value that fails to serialize as JSON is a `500` [`Problem`],
    /// and an `error` event (target `herdcache`).
    pub fn respond(self, conditional: &Conditional) -> Response {
        let method = conditional.method();
        let Some((json, etag)) = self.body_and_etag() else {
            return json_failed();
        };
        if method == Method::GET || method == Method::HEAD {
            if let Err(failed) = conditional.if_match(Some(&etag)) {
                return failed.into_response();
            }
            if conditional.none_match_matches(&etag) {
                return self.not_modified(&etag, json.len());
            }
        }
        let with_body = method != Method::HEAD;
        self.ok(&etag, json, with_body)
    }

    /// The value as JSON and its strong ETag: [`Entry::etag`] (for a
    /// value postcard cannot write, the digest of its JSON, so that two
    /// values never share a tag).
    fn body_and_etag(&self) -> Option<(Vec<u8>, String)> {
        let json = match serde_json::to_vec(self.entry.value()) {
            Ok(json) => json,
            Err(error) => {
                // The cause is for the logs, not the client.
                tracing::error!(
                    target: "herdcache",
                    %error,
                    "herdcache: a cached value could not be written as JSON"
                );
                return None;
            }
        };
        Some((json, self.entry.etag()))
    }

    /// The 304: the 200's headers, no body. Its `Content-Length` is the
    /// 200's (RFC 9110 §8.6), so that axum does not write a `0`.
    fn not_modified(self, etag: &str, length: usize) -> Response {
        let mut headers = self.validator_headers(etag);
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
        let mut response = Response::new(Body::empty());
        *response.status_mut() = StatusCode::NOT_MODIFIED;
        *response.headers_mut() = headers;
        response
    }

    /// The 200: the value as JSON (its body left out for a HEAD).
    fn ok(self, etag: &str, json: Vec<u8>, with_body: bool) -> Response {
        let mut headers = self.validator_headers(etag);
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(json.len()));
        let body = if with_body {
            Body::from(json)
        } else {
            Body::empty()
        };
        let mut response = Response::new(body);
        *response.headers_mut() = headers;
        response
    }
}

/// The `500` for a value that could not be written as JSON.
fn json_failed() -> Response {
    Problem::new(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error")
        .with_detail("the value could not be written as JSON")
        .into_response()
}

/// The unconditional 200, whatever the request asked.
impl<T: Serialize> IntoResponse for Cached<T> {
    fn into_response(self) -> Response {
        match self.body_and_etag() {
            Some((json, etag)) => self.ok(&etag, json, true),
            None => json_failed(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Served;

    fn entry(fresh: u64, swr: u64, fail_safe: u64) -> Entry<u8> {
        Entry::new(1, Served::Hit)
            .with_fresh_for(Duration::from_millis(fresh))
            .with_windows(Duration::from_millis(swr), Duration::from_millis(fail_safe))
    }

    #[test]
    fn cache_control_in_whole_seconds_windows_when_nonzero() {
        assert_eq!(
            Cached::private(entry(59_900, 0, 0)).cache_control(),
            "private, max-age=59"
        );
        assert_eq!(
            Cached::public(entry(0, 30_000, 600_000)).cache_control(),
            "public, max-age=0, stale-while-revalidate=30, stale-if-error=600"
        );
        assert_eq!(
            Cached::public(entry(1_000, 999, 2_000)).cache_control(),
            "public, max-age=1, stale-if-error=2"
        );
    }

    /// A map of unknown length: JSON writes it, postcard cannot.
    struct Loose(u8);

    impl Serialize for Loose {
        fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            use serde::ser::SerializeMap;
            let mut map = serializer.serialize_map(None)?;
            map.serialize_entry("n", &self.0)?;
            map.end()
        }
    }

    #[test]
    fn a_value_postcard_cannot_write_is_tagged_by_its_json() {
        let etag = |n| {
            let response = Cached::private(Entry::new(Loose(n), Served::Hit)).into_response();
            assert_eq!(response.status(), StatusCode::OK);
            response.headers()[header::ETAG]
                .to_str()
                .unwrap()
                .to_owned()
        };
        let (one, two) = (etag(1), etag(2));
        assert_ne!(one, two, "two values never share a tag");
        assert_ne!(one, format!("\"{:032x}\"", 0));
        assert_eq!(one, etag(1), "the same value, the same tag");
        let entry = Entry::new(Loose(1), Served::Hit);
        assert_eq!(one, entry.etag(), "what a write compares against");
        let mut headers = HeaderMap::new();
        headers.insert(header::IF_NONE_MATCH, HeaderValue::from_str(&one).unwrap());
        let conditional = Conditional::from_headers(Method::GET, &headers);
        let respond = |n| Cached::private(Entry::new(Loose(n), Served::Hit)).respond(&conditional);
        assert_eq!(respond(1).status(), StatusCode::NOT_MODIFIED);
        assert_eq!(respond(2).status(), StatusCode::OK);
    }
}
