//! The `http` feature through a real `axum::Router`, called in process:
//! the 200 of a `Cached` entry, conditional GETs and HEADs (304, 412),
//! `If-Match` on writes, problem details, each `IdempotencyError` as a
//! response, the `Idempotency-Key` extractor, and `Idempotent-Replayed`.

use std::collections::BTreeMap;
use std::sync::OnceLock;
use std::time::Duration;

use axum::body::{to_bytes, Body, Bytes};
use axum::extract::Path;
use axum::http::header::{self, HeaderMap, ACCEPT_LANGUAGE, AUTHORIZATION};
use axum::http::{Method, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use herdcache_runtime::__private::{IdemConfig, Idempotency, StableDigest};
use herdcache_runtime::http::{Cached, Conditional, IdempotencyKeyHeader, Problem};
use herdcache_runtime::{Entry, IdempotencyError, Idempotent, Served, MAX_KEY_BYTES};
use serde::{Deserialize, Serialize};
use tower::ServiceExt;

#[derive(Serialize)]
struct User {
    id: u64,
    name: &'static str,
}

/// Fresh for 57.9 s more, with `swr = 30s` and `fail_safe = 10m`.
fn user_entry() -> Entry<User> {
    Entry::new(User { id: 1, name: "ada" }, Served::Hit)
        .with_age(Duration::from_secs(2))
        .with_fresh_for(Duration::from_millis(57_900))
        .with_windows(Duration::from_secs(30), Duration::from_secs(600))
}

/// Stale, no windows.
fn price_entry() -> Entry<u32> {
    Entry::new(1999, Served::Stale)
}

const USER_CACHE_CONTROL: &str =
    "private, max-age=57, stale-while-revalidate=30, stale-if-error=600";

async fn user(conditional: Conditional) -> Response {
    Cached::private(user_entry())
        .vary(ACCEPT_LANGUAGE)
        .vary(AUTHORIZATION)
        .vary(ACCEPT_LANGUAGE)
        .respond(&conditional)
}

async fn put_user(conditional: Conditional) -> Result<StatusCode, Problem> {
    conditional.if_match(Some(&user_entry().etag()))?;
    Ok(StatusCode::NO_CONTENT)
}

async fn put_absent(conditional: Conditional) -> Result<StatusCode, Problem> {
    conditional.if_match(None)?;
    Ok(StatusCode::CREATED)
}

async fn refusal(Path(which): Path<String>) -> IdempotencyError {
    match which.as_str() {
        "missing" => IdempotencyError::MissingKey,
        "invalid" => IdempotencyError::InvalidKey { reason: "too odd" },
        "in-progress" => IdempotencyError::InProgress {
            retry_after: Duration::from_millis(2_100),
        },
        "in-progress-soon" => IdempotencyError::InProgress {
            retry_after: Duration::from_millis(20),
        },
        "mismatch" => IdempotencyError::PayloadMismatch,
        _ => IdempotencyError::Unavailable,
    }
}

/// The pay handler's error: what of a refusal its response needs, kept
/// with serde (records shared by a fleet need it, with `--all-features`).
#[derive(Clone, Debug, Serialize, Deserialize)]
enum PayError {
    Mismatch,
    Other(String),
}

impl IntoResponse for PayError {
    fn into_response(self) -> Response {
        match self {
            PayError::Mismatch => IdempotencyError::PayloadMismatch.into_response(),
            PayError::Other(why) => Problem::bad_request(why).into_response(),
        }
    }
}

fn pay_records() -> &'static Idempotency<String, PayError> {
    static RECORDS: OnceLock<Idempotency<String, PayError>> = OnceLock::new();
    RECORDS.get_or_init(|| Idempotency::new(IdemConfig::new("pay")))
}

async fn pay(
    IdempotencyKeyHeader(key): IdempotencyKeyHeader,
    Path(amount): Path<u32>,
) -> Idempotent<Result<String, PayError>> {
    let to_error = |error: IdempotencyError| match error {
        IdempotencyError::PayloadMismatch => PayError::Mismatch,
        other => PayError::Other(other.to_string()),
    };
    pay_records()
        .run(
            Ok(key),
            0,
            StableDigest::new().add(&amount).finish(),
            to_error,
            move || async move { Ok(format!("charged {amount}")) },
        )
        .await
}

fn app() -> Router {
    Router::new()
        .route("/user", get(user).put(put_user))
        .route("/absent", axum::routing::put(put_absent))
        .route(
            "/price",
            get(|conditional: Conditional| async move {
                Cached::public(price_entry()).respond(&conditional)
            }),
        )
        .route("/plain", get(|| async { Cached::public(price_entry()) }))
        .route(
            "/unwritable",
            // postcard writes tuple keys; JSON cannot.
            get(|conditional: Conditional| async move {
                let map = BTreeMap::from([((1_u8, 2_u8), 3_u8)]);
                Cached::private(Entry::new(map, Served::Hit)).respond(&conditional)
            }),
        )
        .route("/refusal/{which}", get(refusal))
        .route(
            "/key",
            post(|IdempotencyKeyHeader(key): IdempotencyKeyHeader| async move { key }),
        )
        .route(
            "/maybe-key",
            post(|key: Option<IdempotencyKeyHeader>| async move {
                key.map_or_else(|| "none".to_owned(), |key| format!("key {}", key.0))
            }),
        )
        .route("/pay/{amount}", post(pay))
}

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl Answer {
    fn header(&self, name: &str) -> &str {
        match self.headers.get(name) {
            Some(value) => value.to_str().unwrap(),
            None => panic!("no {name} header in {:?}", self.headers),
        }
    }

    fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

async fn call(method: Method, uri: &str, headers: &[(&str, &str)]) -> Answer {
    let mut request = Request::builder().method(method).uri(uri);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = app()
        .oneshot(request.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let body = to_bytes(response.into_body(), usize::MAX).await.unwrap();
    Answer {
        status,
        headers,
        body,
    }
}

async fn get_with(uri: &str, headers: &[(&str, &str)]) -> Answer {
    call(Method::GET, uri, headers).await
}

/// `Sun, 06 Nov 1994 08:49:37 GMT`'s shape.
fn assert_imf_fixdate(date: &str) {
    let parts: Vec<&str> = date.split(' ').collect();
    let digits = |part: &str, len| part.len() == len && part.bytes().all(|b| b.is_ascii_digit());
    let ok = parts.len() == 6
        && ["Mon,", "Tue,", "Wed,", "Thu,", "Fri,", "Sat,", "Sun,"].contains(&parts[0])
        && digits(parts[1], 2)
        && [
            "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
        ]
        .contains(&parts[2])
        && digits(parts[3], 4)
        && parts[4].len() == 8
        && parts[4].split(':').all(|n| digits(n, 2))
        && parts[5] == "GMT";
    assert!(ok, "not an IMF-fixdate: {date}");
}

#[tokio::test]
async fn the_200_carries_json_a_strong_etag_cache_control_date_and_vary() {
    let answer = get_with("/user", &[]).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.json(), serde_json::json!({"id": 1, "name": "ada"}));
    assert_eq!(answer.header("content-type"), "application/json");
    assert_eq!(
        answer.header("content-length"),
        answer.body.len().to_string()
    );
    let etag = answer.header("etag");
    assert_eq!(etag, user_entry().etag());
    assert_eq!(etag.len(), 34);
    assert!(etag.starts_with('"') && etag.ends_with('"'), "{etag}");
    assert!(etag[1..33].bytes().all(|b| b.is_ascii_hexdigit()), "{etag}");
    assert_eq!(answer.header("cache-control"), USER_CACHE_CONTROL);
    assert_eq!(answer.header("vary"), "accept-language, authorization");
    assert_imf_fixdate(answer.header("date"));

    let price = get_with("/price", &[]).await;
    assert_eq!(price.header("cache-control"), "public, max-age=0");
    assert!(!price.headers.contains_key("vary"));
    assert_eq!(price.body, "1999");
}

#[tokio::test]
async fn a_matching_if_none_match_is_a_304_with_the_200s_headers() {
    let first = get_with("/user", &[]).await;
    let etag = first.header("etag");
    let again = get_with("/user", &[("if-none-match", etag)]).await;
    assert_eq!(again.status, StatusCode::NOT_MODIFIED);
    assert!(again.body.is_empty());
    for name in ["etag", "cache-control", "vary"] {
        assert_eq!(again.header(name), first.header(name), "{name}");
    }
    assert_imf_fixdate(again.header("date"));
    assert_eq!(
        again.header("content-length"),
        first.body.len().to_string(),
        "a 304's Content-Length is the 200's, never 0"
    );
    assert!(!again.headers.contains_key("content-type"));
}

#[tokio::test]
async fn if_none_match_compares_weakly_and_reads_lists() {
    let etag = user_entry().etag();
    let weak = format!("W/{etag}");
    let in_list = format!(r#""nope", W/"a,b", {etag} , "other""#);
    for field in [weak.as_str(), "*", in_list.as_str(), " * "] {
        let answer = get_with("/user", &[("if-none-match", field)]).await;
        assert_eq!(answer.status, StatusCode::NOT_MODIFIED, "{field}");
    }
    // A comma inside quotes does not split a tag: `"x,<etag>"` is one tag.
    let inner = etag.trim_matches('"');
    let quoted_comma = format!(r#""x,{inner}""#);
    for field in [
        r#""nope", W/"a,b""#,
        quoted_comma.as_str(),
        "garbage",
        &etag[1..],
    ] {
        let answer = get_with("/user", &[("if-none-match", field)]).await;
        assert_eq!(answer.status, StatusCode::OK, "{field}");
        assert_eq!(answer.json()["name"], "ada");
    }
}

#[tokio::test]
async fn two_if_none_match_lines_are_one_list() {
    let etag = user_entry().etag();
    let answer = get_with(
        "/user",
        &[("if-none-match", "\"nope\""), ("if-none-match", &etag)],
    )
    .await;
    assert_eq!(answer.status, StatusCode::NOT_MODIFIED);
}

#[tokio::test]
async fn if_modified_since_is_ignored() {
    let future = "Fri, 01 Jan 2100 00:00:00 GMT";
    let with_tag = get_with(
        "/user",
        &[("if-none-match", "\"nope\""), ("if-modified-since", future)],
    )
    .await;
    assert_eq!(with_tag.status, StatusCode::OK, "If-None-Match decides");
    let alone = get_with("/user", &[("if-modified-since", future)]).await;
    assert_eq!(alone.status, StatusCode::OK, "no Last-Modified to compare");
}

#[tokio::test]
async fn head_has_the_headers_and_no_body() {
    let get = get_with("/user", &[]).await;
    let head = call(Method::HEAD, "/user", &[]).await;
    assert_eq!(head.status, StatusCode::OK);
    assert!(head.body.is_empty());
    for name in [
        "etag",
        "cache-control",
        "vary",
        "content-type",
        "content-length",
    ] {
        assert_eq!(head.header(name), get.header(name), "{name}");
    }
    let etag = user_entry().etag();
    let conditional = call(Method::HEAD, "/user", &[("if-none-match", &etag)]).await;
    assert_eq!(conditional.status, StatusCode::NOT_MODIFIED);
}

#[tokio::test]
async fn into_response_is_the_unconditional_200() {
    let etag = price_entry().etag();
    let answer = get_with("/plain", &[("if-none-match", &etag)]).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.header("etag"), etag);
    assert_eq!(answer.header("cache-control"), "public, max-age=0");
    assert_imf_fixdate(answer.header("date"));
    assert_eq!(answer.body, "1999");
}

#[tokio::test]
async fn a_value_json_cannot_write_is_a_500_problem() {
    for method in [Method::GET, Method::HEAD] {
        let answer = call(method.clone(), "/unwritable", &[]).await;
        assert_eq!(answer.status, StatusCode::INTERNAL_SERVER_ERROR, "{method}");
        assert_eq!(answer.header("content-type"), "application/problem+json");
    }
    let body = get_with("/unwritable", &[]).await.json();
    assert_eq!(body["status"], 500);
    assert_eq!(body["detail"], "the value could not be written as JSON");
}

#[tokio::test]
async fn if_match_on_a_write_is_strong() {
    let etag = user_entry().etag();
    let put = |field: String| async move {
        let headers = [("if-match", field.as_str())];
        call(Method::PUT, "/user", &headers).await
    };
    assert_eq!(
        call(Method::PUT, "/user", &[]).await.status,
        StatusCode::NO_CONTENT,
        "no If-Match: the write goes on"
    );
    for ok in [etag.clone(), "*".to_owned(), format!("\"old\", {etag}")] {
        assert_eq!(put(ok.clone()).await.status, StatusCode::NO_CONTENT, "{ok}");
    }
    // The ETag of the value before someone else's write: stale.
    let stale = Entry::new(User { id: 1, name: "bob" }, Served::Hit).etag();
    assert_ne!(stale, etag);
    for failing in [format!("W/{etag}"), stale, "junk".to_owned()] {
        let answer = put(failing.clone()).await;
        assert_eq!(answer.status, StatusCode::PRECONDITION_FAILED, "{failing}");
        assert_eq!(answer.header("content-type"), "application/problem+json");
        assert_eq!(answer.json()["status"], 412);
        assert_eq!(answer.json()["title"], "Precondition Failed");
    }
}

#[tokio::test]
async fn if_match_on_an_absent_resource_never_matches() {
    let absent = |field: &'static str| async move {
        call(Method::PUT, "/absent", &[("if-match", field)])
            .await
            .status
    };
    assert_eq!(absent("*").await, StatusCode::PRECONDITION_FAILED);
    assert_eq!(absent("\"v1\"").await, StatusCode::PRECONDITION_FAILED);
    assert_eq!(
        call(Method::PUT, "/absent", &[]).await.status,
        StatusCode::CREATED
    );
}

#[tokio::test]
async fn a_get_with_a_failing_if_match_is_a_412() {
    let answer = get_with("/user", &[("if-match", "\"old\"")]).await;
    assert_eq!(answer.status, StatusCode::PRECONDITION_FAILED);
    let etag = user_entry().etag();
    let answer = get_with("/user", &[("if-match", &etag)]).await;
    assert_eq!(answer.status, StatusCode::OK);
}

#[tokio::test]
async fn each_refusal_is_its_problem() {
    let cases = [
        ("missing", 400, "Bad Request"),
        ("invalid", 400, "Bad Request"),
        ("in-progress", 409, "Conflict"),
        ("mismatch", 422, "Unprocessable Entity"),
        ("unavailable", 503, "Service Unavailable"),
    ];
    for (which, status, title) in cases {
        let answer = get_with(&format!("/refusal/{which}"), &[]).await;
        assert_eq!(answer.status.as_u16(), status, "{which}");
        assert_eq!(answer.header("content-type"), "application/problem+json");
        let body = answer.json();
        assert_eq!(body["type"], "about:blank", "{which}");
        assert_eq!(body["title"], title, "{which}");
        assert_eq!(body["status"], status, "{which}");
        assert!(body["detail"].as_str().unwrap().len() > 10, "{which}");
    }
    let invalid = get_with("/refusal/invalid", &[]).await;
    assert!(invalid.json()["detail"]
        .as_str()
        .unwrap()
        .ends_with("too odd"));
    let busy = get_with("/refusal/in-progress", &[]).await;
    assert_eq!(busy.header("retry-after"), "3", "rounded up");
    let soon = get_with("/refusal/in-progress-soon", &[]).await;
    assert_eq!(soon.header("retry-after"), "1", "at least a second");
    assert!(!get_with("/refusal/mismatch", &[])
        .await
        .headers
        .contains_key("retry-after"));
}

#[test]
fn a_refusal_converts_to_its_problem() {
    let problem = Problem::from(IdempotencyError::InProgress {
        retry_after: Duration::from_secs(5),
    });
    assert_eq!(problem.status(), StatusCode::CONFLICT);
    assert_eq!(problem.headers()[header::RETRY_AFTER], "5");
    assert!(problem.to_string().starts_with("409 Conflict: "));
    let error: &dyn std::error::Error = &problem;
    assert!(error.to_string().contains("Idempotency-Key"));
}

async fn post_key(uri: &str, values: &[&str]) -> Answer {
    let headers: Vec<_> = values.iter().map(|v| ("idempotency-key", *v)).collect();
    call(Method::POST, uri, &headers).await
}

#[tokio::test]
async fn the_key_header_takes_a_string_or_a_token() {
    let long_token = "k".repeat(MAX_KEY_BYTES);
    let cases = [
        (r#""abc""#, "abc"),
        (r#" "a \"b\" \\c" "#, r#"a "b" \c"#),
        (
            "8e03978e-40d5-43e8-bc93-6894a57f9324",
            "8e03978e-40d5-43e8-bc93-6894a57f9324",
        ),
        (&long_token, &long_token),
    ];
    for (value, key) in cases {
        let answer = post_key("/key", &[value]).await;
        assert_eq!(answer.status, StatusCode::OK, "{value}");
        assert_eq!(answer.body, key.to_owned(), "{value}");
    }
}

#[tokio::test]
async fn the_key_header_refuses_what_is_not_a_key() {
    let missing = post_key("/key", &[]).await;
    assert_eq!(missing.status, StatusCode::BAD_REQUEST);
    assert_eq!(missing.header("content-type"), "application/problem+json");
    assert!(missing.json()["detail"]
        .as_str()
        .unwrap()
        .contains("needs an Idempotency-Key"));

    let too_long = format!("\"{}\"", "k".repeat(MAX_KEY_BYTES + 1));
    for values in [
        vec!["\"\""],
        vec![""],
        vec![too_long.as_str()],
        vec!["\"no closing quote"],
        vec![r#""bad \n escape""#],
        vec![r#""a" trailing"#],
        vec!["two words"],
        vec!["a", "b"],
    ] {
        let answer = post_key("/key", &values).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{values:?}");
        let detail = answer.json()["detail"].as_str().unwrap().to_owned();
        assert!(detail.contains("is invalid"), "{values:?}: {detail}");
    }

    // Non-ASCII bytes, which `&str` headers cannot carry.
    let request = Request::post("/key")
        .header(
            "idempotency-key",
            axum::http::HeaderValue::from_bytes("\"caf\u{e9}\"".as_bytes()).unwrap(),
        )
        .body(Body::empty())
        .unwrap();
    let response = app().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn an_optional_key_header_is_none_when_absent_and_refused_when_bad() {
    assert_eq!(post_key("/maybe-key", &[]).await.body, "none");
    assert_eq!(post_key("/maybe-key", &["\"k1\""]).await.body, "key k1");
    let bad = post_key("/maybe-key", &["\"\""]).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn a_replayed_outcome_says_so() {
    let first = post_key("/pay/5", &["\"order-17\""]).await;
    assert_eq!(first.status, StatusCode::OK);
    assert_eq!(first.body, "charged 5");
    assert!(!first.headers.contains_key("idempotent-replayed"));

    let retry = post_key("/pay/5", &["\"order-17\""]).await;
    assert_eq!(retry.body, "charged 5");
    assert_eq!(retry.header("idempotent-replayed"), "true");

    let other = post_key("/pay/500", &["\"order-17\""]).await;
    assert_eq!(other.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(!other.headers.contains_key("idempotent-replayed"));
}
