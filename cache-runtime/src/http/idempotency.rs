//! `#[idempotent]` over HTTP: [`IdempotencyKeyHeader`], the refusals of
//! [`IdempotencyError`] as problem details, and a replay's
//! `Idempotent-Replayed` header.

use axum::extract::{FromRequestParts, OptionalFromRequestParts};
use axum::http::{header, request::Parts, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use super::Problem;
use crate::{IdempotencyError, Idempotent, MAX_KEY_BYTES};

/// The request header carrying the key.
const IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");
/// The response header of a replayed outcome.
const IDEMPOTENT_REPLAYED: HeaderName = HeaderName::from_static("idempotent-replayed");

/// The `Idempotency-Key` request header: an extractor.
///
/// Accepts the structured-field string the IETF draft specifies
/// (`Idempotency-Key: "8e03978e-40d5"`, with `\"` and `\\` escapes,
/// printable ASCII) and a bare token (`Idempotency-Key: 8e03978e-40d5`:
/// letters, digits and ``!#$%&'*+-.^_`|~:/``). A missing header is
/// rejected with [`IdempotencyError::MissingKey`]; an empty key, one
/// longer than [`MAX_KEY_BYTES`], more than one header, or anything else
/// with [`IdempotencyError::InvalidKey`]: both `400` problems. As an
/// `Option<IdempotencyKeyHeader>`, a missing header is `None`.
///
/// ```
/// # use herdcache_runtime as herdcache;
/// use herdcache::http::IdempotencyKeyHeader;
///
/// async fn pay(IdempotencyKeyHeader(key): IdempotencyKeyHeader) -> String {
///     // In a service: `pay_idempotent(&key, ..).await`.
///     key
/// }
/// let app: axum::Router = axum::Router::new().route("/pay", axum::routing::post(pay));
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct IdempotencyKeyHeader(pub String);

impl IdempotencyKeyHeader {
    /// The key of `parts`' headers: `None` when there is none.
    fn read(parts: &Parts) -> Result<Option<Self>, IdempotencyError> {
        let mut values = parts.headers.get_all(IDEMPOTENCY_KEY).iter();
        let Some(value) = values.next() else {
            return Ok(None);
        };
        if values.next().is_some() {
            return Err(invalid("sent more than once"));
        }
        parse_key(value.as_bytes()).map(|key| Some(IdempotencyKeyHeader(key)))
    }
}

impl<S: Send + Sync> FromRequestParts<S> for IdempotencyKeyHeader {
    type Rejection = IdempotencyError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        IdempotencyKeyHeader::read(parts)?.ok_or(IdempotencyError::MissingKey)
    }
}

impl<S: Send + Sync> OptionalFromRequestParts<S> for IdempotencyKeyHeader {
    type Rejection = IdempotencyError;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        IdempotencyKeyHeader::read(parts)
    }
}

fn invalid(reason: &'static str) -> IdempotencyError {
    IdempotencyError::InvalidKey { reason }
}

/// The key a header value carries: an sf-string or a bare token, around
/// optional whitespace.
fn parse_key(value: &[u8]) -> Result<String, IdempotencyError> {
    let value = value.trim_ascii();
    if !value.is_ascii() {
        return Err(invalid("not ASCII"));
    }
    let key = match value.strip_prefix(b"\"") {
        Some(quoted) => parse_sf_string(quoted)?,
        None if value.iter().all(|&b| is_token_char(b)) => {
            String::from_utf8_lossy(value).into_owned()
        }
        None => return Err(invalid("neither a quoted string nor a token")),
    };
    if key.is_empty() {
        Err(invalid("empty"))
    } else if key.len() > MAX_KEY_BYTES {
        Err(invalid("longer than 255 bytes"))
    } else {
        Ok(key)
    }
}

/// The sf-string (RFC 8941 §3.3.3) whose opening quote was just read: up
/// to the closing quote, which must end the value.
fn parse_sf_string(quoted: &[u8]) -> Result<String, IdempotencyError> {
    let mut key = String::new();
    let mut bytes = quoted.iter();
    while let Some(&byte) = bytes.next() {
        match byte {
            b'\\' => match bytes.next() {
                Some(&escaped @ (b'"' | b'\\')) => key.push(char::from(escaped)),
                _ => return Err(invalid("a backslash escapes only '\"' and '\\'")),
            },
            b'"' if bytes.as_slice().is_empty() => return Ok(key),
            b'"' => return Err(invalid("text after the closing quote")),
            b' '..=b'~' => key.push(char::from(byte)),
            _ => return Err(invalid("a control character")),
        }
    }
    Err(invalid("no closing quote"))
}

/// A token's characters, wherever they stand: RFC 9110's `tchar`, `:` and
/// `/` (so a UUID, which starts with a digit, is one).
fn is_token_char(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~:/".contains(&byte)
}

/// A refusal as its problem: 400 for a missing or invalid key, 409 with
/// `Retry-After` for a request in progress, 422 for a key reused with
/// another request, 503 when the records are unavailable.
impl From<IdempotencyError> for Problem {
    fn from(error: IdempotencyError) -> Self {
        match error {
            IdempotencyError::MissingKey => {
                Problem::bad_request("this request needs an Idempotency-Key header")
            }
            IdempotencyError::InvalidKey { reason } => {
                Problem::bad_request(format!("the Idempotency-Key header is invalid: {reason}"))
            }
            IdempotencyError::InProgress { retry_after } => {
                // Rounded up: a client that waits as told finds it done.
                let secs =
                    (retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0)).max(1);
                Problem::conflict(format!(
                    "a request with this Idempotency-Key is in progress: retry after {secs} s"
                ))
                .with_header(header::RETRY_AFTER, HeaderValue::from(secs))
            }
            IdempotencyError::PayloadMismatch => Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                StatusCode::UNPROCESSABLE_ENTITY
                    .canonical_reason()
                    .unwrap_or("Unprocessable Content"),
            )
            .with_detail("this Idempotency-Key was used with a different request"),
            IdempotencyError::Unavailable => Problem::service_unavailable(
                "idempotency records are unavailable, so the request was not run: retry later",
            ),
        }
    }
}

/// The refusal's [`Problem`] (see `From<IdempotencyError> for Problem`).
impl IntoResponse for IdempotencyError {
    fn into_response(self) -> Response {
        Problem::from(self).into_response()
    }
}

/// The outcome's response, with `Idempotent-Replayed: true` when this
/// caller got an outcome it did not run.
///
/// ```
/// # use herdcache_runtime as herdcache;
/// use axum::http::StatusCode;
/// use herdcache::{http::Problem, Idempotent};
///
/// // What `#[idempotent]`'s `<fn>_idempotent(..)` returns, in a handler:
/// async fn pay() -> Idempotent<Result<(StatusCode, String), Problem>> {
///     # unimplemented!()
/// }
/// let app: axum::Router = axum::Router::new().route("/pay", axum::routing::post(pay));
/// ```
impl<T: IntoResponse, E: IntoResponse> IntoResponse for Idempotent<Result<T, E>> {
    fn into_response(self) -> Response {
        let replayed = self.replayed();
        let mut response = match self.into_inner() {
            Ok(done) => done.into_response(),
            Err(failed) => failed.into_response(),
        };
        if replayed {
            response
                .headers_mut()
                .insert(IDEMPOTENT_REPLAYED, HeaderValue::from_static("true"));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepted_forms() {
        let ok = |value: &[u8]| parse_key(value).unwrap();
        assert_eq!(ok(br#""abc""#), "abc");
        assert_eq!(ok(br#"  "a b\"c\\d"  "#), r#"a b"c\d"#);
        assert_eq!(
            ok(b"8e03978e-40d5-43e8-bc93-6894a57f9324"),
            "8e03978e-40d5-43e8-bc93-6894a57f9324"
        );
        assert_eq!(ok(b"urn:key/1"), "urn:key/1");
        assert_eq!(ok(&[b'k'; MAX_KEY_BYTES]).len(), MAX_KEY_BYTES);
    }

    #[test]
    fn rejected_forms() {
        let long = [b'k'; MAX_KEY_BYTES + 1];
        for value in [
            &b""[..],
            b"\"\"",
            &long,
            b"\"unterminated",
            b"\"a\";p=1",
            b"\"a\\n\"",
            b"\"tab\there\"",
            b"two words",
            b"a,b",
            "\"caf\u{e9}\"".as_bytes(),
        ] {
            assert!(
                matches!(parse_key(value), Err(IdempotencyError::InvalidKey { .. })),
                "{}",
                String::from_utf8_lossy(value)
            );
        }
    }
}
