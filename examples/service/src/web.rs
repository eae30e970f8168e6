//! The HTTP conventions the service needs, kept in one thin module so
//! `herdcache::http` (its `Problem`, `Conditional` and `Cached`) can take
//! their place: problem+json (RFC 9457), entity tags and the conditional
//! headers of RFC 9110.

use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// An error answered as `application/problem+json`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// The status.
    pub status: StatusCode,
    /// A short, human-readable summary of the problem type.
    pub title: String,
    /// What went wrong with this request.
    pub detail: String,
    /// Extra headers (`Retry-After`).
    pub retry_after: Option<u64>,
}

impl Problem {
    /// A problem with `status`, its reason phrase as title, and `detail`.
    pub fn new(status: StatusCode, detail: impl Into<String>) -> Self {
        Problem {
            status,
            title: status.canonical_reason().unwrap_or("Error").to_owned(),
            detail: detail.into(),
            retry_after: None,
        }
    }
}

#[derive(Serialize)]
struct ProblemBody<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    title: &'a str,
    status: u16,
    detail: &'a str,
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let body = ProblemBody {
            kind: "about:blank",
            title: &self.title,
            status: self.status.as_u16(),
            detail: &self.detail,
        };
        let body = serde_json::to_vec(&body).unwrap_or_default();
        let mut response = (
            self.status,
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/problem+json"),
            )],
            body,
        )
            .into_response();
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

/// The strong entity tag of a value: herdcache's digest of it, so the
/// same on every instance (what `Entry::etag` gives).
pub fn etag_of<T: Serialize>(value: &T) -> String {
    herdcache::Entry::new(value, herdcache::Served::Hit).etag()
}

/// The entity tags of an `If-None-Match` or `If-Match` list: `None` for an
/// absent header, `Some(["*"])` for `*`.
fn tags(headers: &HeaderMap, name: header::HeaderName) -> Option<Vec<String>> {
    let mut found = None;
    for value in headers.get_all(name) {
        let list = found.get_or_insert_with(Vec::new);
        let Ok(text) = value.to_str() else {
            continue;
        };
        list.extend(
            text.split(',')
                .map(str::trim)
                .filter(|tag| !tag.is_empty())
                .map(str::to_owned),
        );
    }
    found
}

fn opaque(tag: &str) -> &str {
    tag.strip_prefix("W/").unwrap_or(tag)
}

/// `If-None-Match` against the current tag (weak comparison): true when
/// the client's copy is current, so the answer is 304.
pub fn not_modified(headers: &HeaderMap, current: &str) -> bool {
    match tags(headers, header::IF_NONE_MATCH) {
        None => false,
        Some(list) => list
            .iter()
            .any(|tag| tag == "*" || opaque(tag) == opaque(current)),
    }
}

/// `If-Match` against the current tag (strong comparison): `Err(412)`
/// when the client's copy is stale. `current: None`: there is no
/// representation, which only an absent header matches.
pub fn if_match(headers: &HeaderMap, current: Option<&str>) -> Result<(), Problem> {
    let Some(list) = tags(headers, header::IF_MATCH) else {
        return Ok(());
    };
    let matches = match current {
        None => false,
        Some(current) => list
            .iter()
            .any(|tag| tag == "*" || (!tag.starts_with("W/") && tag == current)),
    };
    if matches {
        Ok(())
    } else {
        Err(Problem::new(
            StatusCode::PRECONDITION_FAILED,
            "If-Match does not match the current representation: fetch it again",
        ))
    }
}
