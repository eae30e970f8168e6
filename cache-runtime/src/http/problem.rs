//! [`Problem`]: an error response as RFC 9457 problem details.

use std::fmt;

use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

/// An error answer: `application/problem+json` (RFC 9457) with `type`,
/// `title`, `status` and, when set, `detail`; and any extra headers (a
/// `Retry-After`).
///
/// ```
/// # use herdcache_runtime as herdcache;
/// use herdcache::http::Problem;
/// use axum::http::StatusCode;
///
/// let problem = Problem::not_found("no user 42");
/// assert_eq!(problem.status(), StatusCode::NOT_FOUND);
/// assert_eq!(problem.title(), "Not Found");
/// assert_eq!(problem.to_string(), "404 Not Found: no user 42");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    // Boxed: a `Result<_, Problem>` stays two words wide.
    details: Box<Details>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Details {
    status: StatusCode,
    problem_type: String,
    title: String,
    detail: Option<String>,
    headers: HeaderMap,
}

impl Problem {
    /// A problem of type `about:blank`, answered with `status`. With that
    /// type, `title` should be the status's phrase (as the shorthands do).
    pub fn new(status: StatusCode, title: impl Into<String>) -> Self {
        Problem {
            details: Box::new(Details {
                status,
                problem_type: "about:blank".to_owned(),
                title: title.into(),
                detail: None,
                headers: HeaderMap::new(),
            }),
        }
    }

    /// A problem of `status` titled with its phrase, explained by `detail`.
    fn of(status: StatusCode, detail: impl Into<String>) -> Self {
        Problem::new(status, status.canonical_reason().unwrap_or("Error")).with_detail(detail)
    }

    /// `400 Bad Request`, explained by `detail`.
    pub fn bad_request(detail: impl Into<String>) -> Self {
        Problem::of(StatusCode::BAD_REQUEST, detail)
    }

    /// `404 Not Found`, explained by `detail`.
    pub fn not_found(detail: impl Into<String>) -> Self {
        Problem::of(StatusCode::NOT_FOUND, detail)
    }

    /// `409 Conflict`, explained by `detail`.
    pub fn conflict(detail: impl Into<String>) -> Self {
        Problem::of(StatusCode::CONFLICT, detail)
    }

    /// `412 Precondition Failed`, explained by `detail`.
    pub fn precondition_failed(detail: impl Into<String>) -> Self {
        Problem::of(StatusCode::PRECONDITION_FAILED, detail)
    }

    /// `503 Service Unavailable`, explained by `detail`.
    pub fn service_unavailable(detail: impl Into<String>) -> Self {
        Problem::of(StatusCode::SERVICE_UNAVAILABLE, detail)
    }

    /// With the explanation `detail`, for this occurrence.
    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.details.detail = Some(detail.into());
        self
    }

    /// Of the type `uri` (a URI naming the kind of problem), in place of
    /// `about:blank`.
    pub fn with_type(mut self, uri: impl Into<String>) -> Self {
        self.details.problem_type = uri.into();
        self
    }

    /// With the header `name: value` on the response (replacing an earlier
    /// one of that name): `Retry-After`, say.
    ///
    /// ```
    /// # use herdcache_runtime as herdcache;
    /// use herdcache::http::Problem;
    /// use axum::http::{header::RETRY_AFTER, HeaderValue};
    ///
    /// let busy = Problem::service_unavailable("the origin is down")
    ///     .with_header(RETRY_AFTER, HeaderValue::from(30_u64));
    /// ```
    pub fn with_header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.details.headers.insert(name, value);
        self
    }

    /// The status answered.
    pub fn status(&self) -> StatusCode {
        self.details.status
    }

    /// The `type` member (`about:blank` unless set).
    pub fn problem_type(&self) -> &str {
        &self.details.problem_type
    }

    /// The `title` member.
    pub fn title(&self) -> &str {
        &self.details.title
    }

    /// The `detail` member, if any.
    pub fn detail(&self) -> Option<&str> {
        self.details.detail.as_deref()
    }

    /// The extra headers.
    pub fn headers(&self) -> &HeaderMap {
        &self.details.headers
    }

    /// The JSON body.
    fn body(&self) -> serde_json::Value {
        let details = &self.details;
        let mut body = serde_json::json!({
            "type": details.problem_type,
            "title": details.title,
            "status": details.status.as_u16(),
        });
        if let Some(detail) = &details.detail {
            body["detail"] = detail.as_str().into();
        }
        body
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.status().as_u16(), self.title())?;
        match self.detail() {
            Some(detail) => write!(f, ": {detail}"),
            None => Ok(()),
        }
    }
}

impl std::error::Error for Problem {}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let body = self.body().to_string();
        let Details {
            status, headers, ..
        } = *self.details;
        let mut response = (status, headers, body).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_body_has_its_members_and_no_empty_detail() {
        let bare = Problem::new(StatusCode::IM_A_TEAPOT, "Teapot");
        assert_eq!(
            bare.body(),
            serde_json::json!({"type": "about:blank", "title": "Teapot", "status": 418})
        );
        assert_eq!(bare.to_string(), "418 Teapot");
        let typed = Problem::conflict("taken").with_type("https://example.com/taken");
        assert_eq!(
            typed.body(),
            serde_json::json!({
                "type": "https://example.com/taken",
                "title": "Conflict",
                "status": 409,
                "detail": "taken",
            })
        );
    }
}
