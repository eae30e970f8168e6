//! The HTTP routes.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::cache;
use crate::db::Fault;
use crate::error::AppError;
use crate::rates;
use crate::web::{self, Conditional, IdempotencyKeyHeader, Problem};
use crate::AppState;

/// Every route.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/users/{id}", get(get_user).put(put_user))
        .route("/users/{id}/balance", get(get_balance))
        .route("/users/{id}/payments", get(list_payments))
        .route("/orgs/{id}/members", get(get_members))
        .route("/rates/{currency}", get(get_rate))
        .route("/admin/rates/{currency}/refresh", post(refresh_rate))
        .route("/payments", post(post_payment))
        .route("/admin/db-fault", post(set_db_fault).get(get_db_fault))
        .route("/metrics", get(metrics))
        .route("/debug/cache", get(debug_cache))
        .route("/healthz", get(|| async { "ok" }))
        .fallback(|| async { Problem::not_found("no such route") })
        .layer(axum::middleware::map_response(as_problem))
        .with_state(state)
}

/// Every error as `application/problem+json`: the ones axum answers
/// itself (405 for a method a route lacks, a path or body it could not
/// read: 400, 413) come as plain text or with no body, so they are
/// rewritten here, their text as the detail. Other errors are left alone.
async fn as_problem(response: Response) -> Response {
    let status = response.status();
    let plain = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_none_or(|kind| kind.as_bytes().starts_with(b"text/plain"));
    if !(status.is_client_error() || status.is_server_error()) || !plain {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    // axum's texts are one line; a longer body keeps only the title.
    let text = axum::body::to_bytes(body, 16 * 1024)
        .await
        .map(|bytes| String::from_utf8_lossy(&bytes).trim().to_owned())
        .unwrap_or_default();
    let title = status.canonical_reason().unwrap_or("Error");
    let detail = if text.is_empty() {
        title.to_owned()
    } else {
        text
    };
    let (problem, body) = Problem::new(status, title)
        .with_detail(detail)
        .into_response()
        .into_parts();
    // The response's own headers and extensions stay (`Allow` is added
    // by axum after this layer); what described the old body goes.
    for gone in [
        header::CONTENT_LENGTH,
        header::CONTENT_ENCODING,
        header::ETAG,
    ] {
        parts.headers.remove(gone);
    }
    for (name, value) in &problem.headers {
        parts.headers.insert(name.clone(), value.clone());
    }
    Response::from_parts(parts, body)
}

/// A positive id from the path, or a 400.
fn id(raw: &str) -> Result<i64, AppError> {
    match raw.parse::<i64>() {
        Ok(id) if id > 0 => Ok(id),
        _ => Err(AppError::BadRequest(format!(
            "`{raw}` is not an id: expected a positive integer"
        ))),
    }
}

/// A JSON body, or a 400 saying what is wrong with it.
fn json<T: DeserializeOwned>(body: &Bytes) -> Result<T, AppError> {
    serde_json::from_slice(body).map_err(|e| AppError::BadRequest(format!("bad JSON body: {e}")))
}

/// A currency code from the path (three ASCII letters, any case), or a
/// 400; and the upstream, or a 503 when `RATES_ORIGIN` is not set.
fn rate_request<'a>(
    state: &'a AppState,
    raw: &str,
) -> Result<(String, &'a rates::RatesOrigin), AppError> {
    if raw.len() != 3 || !raw.bytes().all(|b| b.is_ascii_alphabetic()) {
        return Err(AppError::BadRequest(format!(
            "`{raw}` is not a currency: expected three letters (ISO 4217)"
        )));
    }
    let origin = state.rates.as_ref().ok_or_else(|| {
        AppError::Http(
            Problem::new(StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable")
                .with_detail("no rates upstream: set RATES_ORIGIN"),
        )
    })?;
    Ok((raw.to_ascii_uppercase(), origin))
}

/// A rate, cached and revalidated upstream with `If-None-Match`; the same
/// for every client, so `Cache-Control: public`.
async fn get_rate(
    State(state): State<AppState>,
    Path(raw): Path<String>,
    conditional: Conditional,
) -> Result<Response, AppError> {
    let (currency, origin) = rate_request(&state, &raw)?;
    let rate = rates::rate_entry(currency, origin).await?;
    Ok(web::respond_public(rate, &conditional))
}

/// Revalidates a rate upstream now (what the refresh after its ttl does):
/// the rate as it now stands.
async fn refresh_rate(
    State(state): State<AppState>,
    Path(raw): Path<String>,
) -> Result<Response, AppError> {
    let (currency, origin) = rate_request(&state, &raw)?;
    let rate = rates::rate_refresh(currency, origin).await?;
    Ok(Json(rate).into_response())
}

async fn get_user(
    State(state): State<AppState>,
    Path(raw): Path<String>,
    conditional: Conditional,
) -> Result<Response, AppError> {
    let id = id(&raw)?;
    let user = cache::user_entry(state.profile, id, &state.db).await?;
    let user = cache::transpose(user).ok_or_else(|| AppError::NotFound(format!("no user {id}")))?;
    Ok(web::respond(user, &conditional))
}

#[derive(Deserialize)]
struct UserChange {
    name: String,
    email: String,
}

async fn put_user(
    State(state): State<AppState>,
    Path(raw): Path<String>,
    conditional: Conditional,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, AppError> {
    let id = id(&raw)?;
    let change: UserChange = json(&body)?;
    if change.name.trim().is_empty() || !change.email.contains('@') {
        return Err(AppError::Unprocessable(
            "name must not be empty and email must contain @".to_owned(),
        ));
    }
    // The current row, from the database: If-Match is judged against it.
    let current = state
        .db
        .user(id)
        .await?
        .ok_or_else(|| AppError::NotFound(format!("no user {id}")))?;
    let current_etag = web::etag_of(&current);
    conditional.if_match(Some(&current_etag))?;
    conditional.if_none_match(Some(&current_etag))?;
    // With If-Match naming a version, only that version may be
    // overwritten (`*` asks only that the user exists).
    let pinned = headers
        .get(header::IF_MATCH)
        .is_some_and(|field| field.as_bytes().trim_ascii() != b"*");
    let version = pinned.then_some(current.version);
    let user = cache::update_user(
        id,
        current.org_id,
        version,
        &change.name,
        &change.email,
        &state.db,
    )
    .await?;
    let etag = HeaderValue::from_str(&web::etag_of(&user))
        .unwrap_or_else(|_| HeaderValue::from_static("\"\""));
    Ok(([(header::ETAG, etag)], Json(user)).into_response())
}

async fn get_balance(
    State(state): State<AppState>,
    Path(raw): Path<String>,
    conditional: Conditional,
) -> Result<Response, AppError> {
    let id = id(&raw)?;
    let balance = cache::transpose(cache::balance_entry(id, &state.db).await?)
        .ok_or_else(|| AppError::NotFound(format!("no account for user {id}")))?;
    #[derive(Serialize)]
    struct Balance {
        user_id: i64,
        balance_cents: i64,
    }
    let balance = balance.map(|balance_cents| Balance {
        user_id: id,
        balance_cents,
    });
    Ok(web::respond(balance, &conditional))
}

async fn list_payments(
    State(state): State<AppState>,
    Path(raw): Path<String>,
) -> Result<Response, AppError> {
    let id = id(&raw)?;
    Ok(Json(state.db.payments(id).await?).into_response())
}

async fn get_members(
    State(state): State<AppState>,
    Path(raw): Path<String>,
    conditional: Conditional,
) -> Result<Response, AppError> {
    let id = id(&raw)?;
    let members = cache::transpose(cache::org_members_entry(id, &state.db).await?)
        .ok_or_else(|| AppError::NotFound(format!("no org {id}")))?;
    Ok(web::respond(members, &conditional))
}

#[derive(Deserialize)]
struct PaymentRequest {
    user_id: i64,
    amount_cents: i64,
}

/// One charge per `Idempotency-Key` (a missing or malformed key is a 400
/// problem); a replay answers as the first did, marked
/// `Idempotent-Replayed: true`.
async fn post_payment(
    State(state): State<AppState>,
    IdempotencyKeyHeader(key): IdempotencyKeyHeader,
    body: Bytes,
) -> Result<Response, AppError> {
    let request: PaymentRequest = json(&body)?;
    if request.amount_cents <= 0 || request.user_id <= 0 {
        return Err(AppError::Unprocessable(
            "user_id and amount_cents must be positive".to_owned(),
        ));
    }
    let charged =
        cache::charge_idempotent(&key, request.user_id, request.amount_cents, &state.db).await;
    Ok(charged
        .map(|outcome| outcome.map(|payment| (StatusCode::CREATED, Json(payment))))
        .into_response())
}

#[derive(Serialize, Deserialize)]
struct FaultSetting {
    mode: Fault,
}

async fn set_db_fault(State(state): State<AppState>, body: Bytes) -> Result<Response, AppError> {
    let setting: FaultSetting = json(&body)?;
    state.db.set_fault(setting.mode);
    tracing::info!(mode = ?setting.mode, "database fault switch");
    Ok(Json(setting).into_response())
}

async fn get_db_fault(State(state): State<AppState>) -> Json<FaultSetting> {
    Json(FaultSetting {
        mode: state.db.fault(),
    })
}

async fn metrics(State(state): State<AppState>) -> Response {
    // Refresh the gauges herdcache updates on read (evictions), then render.
    let _ = herdcache::stats();
    state.metrics.run_upkeep();
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        )],
        state.metrics.render(),
    )
        .into_response()
}

async fn debug_cache(State(state): State<AppState>) -> Json<serde_json::Value> {
    let functions: serde_json::Map<String, serde_json::Value> = herdcache::stats()
        .into_iter()
        .map(|(name, s)| {
            let value = serde_json::json!({
                "hits": s.hits,
                "misses": s.misses,
                "hit_ratio": s.hit_ratio(),
                "coalesced": s.coalesced,
                "loads": s.loads,
                "load_errors": s.load_errors,
                "stale_hits": s.stale_hits,
                "refreshes": s.refreshes,
                "refresh_errors": s.refresh_errors,
                "fail_safe_hits": s.fail_safe_hits,
                "invalidations": s.invalidations,
                "evictions": s.evictions,
                "l2_hits": s.l2_hits,
                "l2_misses": s.l2_misses,
                "l2_errors": s.l2_errors,
                "remote_fills": s.remote_fills,
                "load_p50_us": s.load_p50.as_micros() as u64,
                "load_p95_us": s.load_p95.as_micros() as u64,
                "load_p99_us": s.load_p99.as_micros() as u64,
            });
            (name, value)
        })
        .collect();
    Json(serde_json::json!({
        "db_queries": state.db.queries(),
        "db_fault": state.db.fault(),
        "functions": functions,
    }))
}
