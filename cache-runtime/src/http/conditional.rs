//! [`Conditional`]: a request's method and precondition headers, and the
//! entity-tag comparisons of RFC 9110 §8.8.3 and §13.1.

use std::convert::Infallible;

use axum::extract::FromRequestParts;
use axum::http::{header, request::Parts, HeaderMap, HeaderName, Method};

use super::Problem;

/// The request's method and its `If-None-Match`, `If-Match` and
/// `If-Modified-Since` headers: an extractor that never rejects.
///
/// Hand it to [`Cached::respond`](super::Cached::respond) for reads, and
/// check writes with [`if_match`](Self::if_match) and
/// [`if_none_match`](Self::if_none_match) before writing.
///
/// ```
/// # use herdcache_runtime as herdcache;
/// use herdcache::http::Conditional;
/// use axum::http::{HeaderMap, HeaderValue, Method};
///
/// let mut headers = HeaderMap::new();
/// headers.insert("if-match", HeaderValue::from_static("\"v2\""));
/// let conditional = Conditional::from_headers(Method::PUT, &headers);
/// assert!(conditional.if_match(Some("\"v2\"")).is_ok());
/// assert!(conditional.if_match(Some("\"v1\"")).is_err()); // 412
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Conditional {
    method: Method,
    if_none_match: Option<String>,
    if_match: Option<String>,
    if_modified_since: Option<String>,
}

impl Conditional {
    /// What `method` and `headers` ask (the extractor's work, for code
    /// outside an axum handler).
    pub fn from_headers(method: Method, headers: &HeaderMap) -> Self {
        Conditional {
            method,
            if_none_match: field(headers, &header::IF_NONE_MATCH),
            if_match: field(headers, &header::IF_MATCH),
            if_modified_since: field(headers, &header::IF_MODIFIED_SINCE),
        }
    }

    /// The request's method.
    pub fn method(&self) -> &Method {
        &self.method
    }

    /// Checks `If-Match` before a write: `current` is the ETag of the
    /// resource as it is now, `None` when it does not exist.
    ///
    /// The comparison is strong: a weak tag (`W/"…"`) never matches, and
    /// `*` matches any existing resource. No `If-Match` header passes; a
    /// malformed one matches nothing.
    ///
    /// # Errors
    /// A `412 Precondition Failed` [`Problem`] when the header does not
    /// match `current`: the write must not happen.
    pub fn if_match(&self, current: Option<&str>) -> Result<(), Problem> {
        let Some(field) = &self.if_match else {
            return Ok(());
        };
        let exists = current.is_some();
        // An unquoted `current` is no entity-tag: it matches nothing.
        let current = current.and_then(EntityTag::parse);
        let matched = match parse_list(field) {
            Some(EntityTags::Any) => exists,
            Some(EntityTags::List(tags)) => {
                current.is_some_and(|current| tags.iter().any(|tag| tag.strong_eq(current)))
            }
            None => false,
        };
        if matched {
            Ok(())
        } else if !exists {
            Err(Problem::precondition_failed(
                "If-Match names a representation, and the resource does not exist",
            ))
        } else {
            Err(Problem::precondition_failed(
                "If-Match does not match the current representation's ETag",
            ))
        }
    }

    /// Checks `If-None-Match` before a write: `current` is the ETag of the
    /// resource as it is now, `None` when it does not exist.
    ///
    /// The comparison is weak, and `*` matches any existing resource, so
    /// `If-None-Match: *` makes a write that only creates. No header
    /// passes; a malformed one matches nothing.
    ///
    /// ```
    /// # use herdcache_runtime as herdcache;
    /// use herdcache::http::Conditional;
    /// use axum::http::{HeaderMap, HeaderValue, Method};
    ///
    /// let mut headers = HeaderMap::new();
    /// headers.insert("if-none-match", HeaderValue::from_static("*"));
    /// let conditional = Conditional::from_headers(Method::PUT, &headers);
    /// assert!(conditional.if_none_match(None).is_ok()); // creates
    /// assert!(conditional.if_none_match(Some("\"v1\"")).is_err()); // 412
    /// ```
    ///
    /// # Errors
    /// A `412 Precondition Failed` [`Problem`] when the header matches
    /// `current` (RFC 9110 §13.1.2: on a method other than GET or HEAD a
    /// match fails the request).
    pub fn if_none_match(&self, current: Option<&str>) -> Result<(), Problem> {
        let Some(current) = current else {
            return Ok(());
        };
        if self.none_match_matches(current) {
            Err(Problem::precondition_failed(
                "If-None-Match matches the current representation",
            ))
        } else {
            Ok(())
        }
    }

    /// Whether `If-None-Match` is present and matches `etag` (weakly):
    /// a GET or HEAD then answers `304 Not Modified`. A malformed header
    /// matches nothing.
    pub(crate) fn none_match_matches(&self, etag: &str) -> bool {
        let Some(field) = &self.if_none_match else {
            return false;
        };
        match (parse_list(field), EntityTag::parse(etag)) {
            (Some(EntityTags::Any), _) => true,
            (Some(EntityTags::List(tags)), Some(current)) => {
                tags.iter().any(|tag| tag.weak_eq(current))
            }
            _ => false,
        }
    }

    /// The request's `If-Modified-Since`, as sent. [`Cached`] reads it
    /// never: an entry carries no `Last-Modified`, and its ETag is the
    /// better validator.
    ///
    /// [`Cached`]: super::Cached
    pub fn if_modified_since(&self) -> Option<&str> {
        self.if_modified_since.as_deref()
    }
}

/// `name`'s lines joined into one list, or `None` when absent. Bytes that
/// are not UTF-8 become U+FFFD: such a tag matches none of ours.
fn field(headers: &HeaderMap, name: &HeaderName) -> Option<String> {
    let lines: Vec<_> = headers
        .get_all(name)
        .iter()
        .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned())
        .collect();
    (!lines.is_empty()).then(|| lines.join(", "))
}

impl<S: Send + Sync> FromRequestParts<S> for Conditional {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(Conditional::from_headers(
            parts.method.clone(),
            &parts.headers,
        ))
    }
}

/// An entity-tag: `"opaque"`, or `W/"opaque"` when weak.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct EntityTag<'a> {
    pub(crate) weak: bool,
    /// Between the quotes.
    pub(crate) opaque: &'a str,
}

impl<'a> EntityTag<'a> {
    /// `text` (around optional whitespace) as one entity-tag.
    pub(crate) fn parse(text: &'a str) -> Option<Self> {
        match EntityTag::parse_prefix(text.trim_matches(is_ows))? {
            (tag, "") => Some(tag),
            _ => None,
        }
    }

    /// The entity-tag `text` starts with, and what follows it.
    fn parse_prefix(text: &'a str) -> Option<(Self, &'a str)> {
        let (weak, rest) = match text.strip_prefix("W/") {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        let rest = rest.strip_prefix('"')?;
        let end = rest.find('"')?;
        let opaque = &rest[..end];
        opaque
            .chars()
            .all(is_etagc)
            .then_some((EntityTag { weak, opaque }, &rest[end + 1..]))
    }

    /// Strong comparison: both strong, the same opaque tag.
    pub(crate) fn strong_eq(self, other: EntityTag<'_>) -> bool {
        !self.weak && !other.weak && self.opaque == other.opaque
    }

    /// Weak comparison: the same opaque tag, weak or not.
    pub(crate) fn weak_eq(self, other: EntityTag<'_>) -> bool {
        self.opaque == other.opaque
    }
}

/// An `If-Match` or `If-None-Match` field: `*`, or a list.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum EntityTags<'a> {
    /// `*`: any current representation.
    Any,
    /// The tags listed (maybe none).
    List(Vec<EntityTag<'a>>),
}

/// `field` parsed, or `None` when malformed. Commas separate members
/// outside quotes only; empty members are skipped (RFC 9110 §5.6.1).
pub(crate) fn parse_list(field: &str) -> Option<EntityTags<'_>> {
    let field = field.trim_matches(is_ows);
    if field == "*" {
        return Some(EntityTags::Any);
    }
    let mut tags = Vec::new();
    let mut rest = field;
    loop {
        rest = rest.trim_start_matches(|c| is_ows(c) || c == ',');
        if rest.is_empty() {
            return Some(EntityTags::List(tags));
        }
        let (tag, after) = EntityTag::parse_prefix(rest)?;
        tags.push(tag);
        rest = after.trim_start_matches(is_ows);
        if !rest.is_empty() {
            rest = rest.strip_prefix(',')?;
        }
    }
}

fn is_ows(c: char) -> bool {
    c == ' ' || c == '\t'
}

/// `etagc`: `!`, `#` to `~`, or obs-text (any non-ASCII character here).
fn is_etagc(c: char) -> bool {
    c == '!' || ('#'..='~').contains(&c) || !c.is_ascii()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn strong(opaque: &str) -> EntityTag<'_> {
        EntityTag {
            weak: false,
            opaque,
        }
    }

    fn weak(opaque: &str) -> EntityTag<'_> {
        EntityTag { weak: true, opaque }
    }

    #[test]
    fn lists_parse_with_commas_in_quotes_and_empty_members() {
        assert_eq!(parse_list(" * "), Some(EntityTags::Any));
        assert_eq!(parse_list(""), Some(EntityTags::List(vec![])));
        assert_eq!(
            parse_list(r#""a", W/"b,c" ,, "" ,"d""#),
            Some(EntityTags::List(vec![
                strong("a"),
                weak("b,c"),
                strong(""),
                strong("d")
            ]))
        );
        assert_eq!(
            parse_list("\t\"x\"\t,\tW/\"y\""),
            Some(EntityTags::List(vec![strong("x"), weak("y")]))
        );
    }

    #[test]
    fn malformed_lists_are_none() {
        for field in [
            "abc",
            r#""a" "b""#,
            r#""unterminated"#,
            r#"w/"lowercase-weak""#,
            r#""a", *"#,
            r#""has space""#,
            r#""a"x"#,
            "W/ \"gap\"",
        ] {
            assert_eq!(parse_list(field), None, "{field}");
        }
    }

    #[test]
    fn comparisons() {
        assert!(strong("a").strong_eq(strong("a")));
        assert!(!weak("a").strong_eq(strong("a")));
        assert!(!strong("a").strong_eq(weak("a")));
        assert!(weak("a").weak_eq(strong("a")));
        assert!(!weak("a").weak_eq(weak("b")));
        assert_eq!(EntityTag::parse(" W/\"v\" "), Some(weak("v")));
        assert_eq!(EntityTag::parse("\"v\", \"w\""), None);
    }

    #[test]
    fn header_lines_join_into_one_list() {
        let mut headers = HeaderMap::new();
        headers.append("if-none-match", HeaderValue::from_static("\"a\""));
        headers.append("if-none-match", HeaderValue::from_static("\"b\""));
        headers.append("if-modified-since", HeaderValue::from_static("x"));
        let conditional = Conditional::from_headers(Method::GET, &headers);
        assert!(conditional.none_match_matches("\"b\""));
        assert!(!conditional.none_match_matches("\"c\""));
        assert_eq!(conditional.if_modified_since(), Some("x"));
        assert!(conditional.if_match(None).is_ok(), "no If-Match passes");
    }

    #[test]
    fn if_match_star_needs_a_resource_and_a_list_a_strong_match() {
        let mut headers = HeaderMap::new();
        headers.insert("if-match", HeaderValue::from_static("*"));
        let any = Conditional::from_headers(Method::PUT, &headers);
        assert!(any.if_match(Some("unquoted but existing")).is_ok());
        let absent = any.if_match(None).unwrap_err();
        assert_eq!(absent.status(), axum::http::StatusCode::PRECONDITION_FAILED);
        assert!(absent.detail().unwrap().contains("does not exist"));

        headers.insert("if-match", HeaderValue::from_static("\"v\""));
        let listed = Conditional::from_headers(Method::PUT, &headers);
        assert!(listed.if_match(Some("\"v\"")).is_ok());
        assert!(listed.if_match(Some("v")).is_err(), "not an entity-tag");
        assert!(listed.if_match(Some("W/\"v\"")).is_err(), "weak");
    }

    #[test]
    fn if_none_match_on_a_write_fails_on_a_weak_match_and_star_on_any() {
        let mut headers = HeaderMap::new();
        headers.insert(
            "if-none-match",
            HeaderValue::from_static("W/\"v1\", \"v2\""),
        );
        let listed = Conditional::from_headers(Method::PUT, &headers);
        let failed = listed.if_none_match(Some("\"v1\"")).unwrap_err();
        assert_eq!(failed.status(), axum::http::StatusCode::PRECONDITION_FAILED);
        assert!(listed.if_none_match(Some("\"v2\"")).is_err());
        assert!(listed.if_none_match(Some("\"v3\"")).is_ok());
        assert!(listed.if_none_match(None).is_ok(), "nothing to match");

        headers.insert("if-none-match", HeaderValue::from_static("*"));
        let any = Conditional::from_headers(Method::PUT, &headers);
        assert!(any.if_none_match(Some("\"v3\"")).is_err());
        assert!(any.if_none_match(None).is_ok(), "create only");
        let none = Conditional::from_headers(Method::PUT, &HeaderMap::new());
        assert!(
            none.if_none_match(Some("\"v1\"")).is_ok(),
            "no header passes"
        );
    }
}
