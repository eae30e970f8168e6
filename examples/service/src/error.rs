//! The service's error, and how each answers over HTTP.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use herdcache::IdempotencyError;

use crate::db::{ChargeError, DbError};
use crate::web::Problem;

/// Every error a handler or loader returns. `Clone`: callers that joined
/// a failing load each get a copy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AppError {
    /// The database did not answer.
    Db(DbError),
    /// No such resource.
    NotFound(String),
    /// A request the service cannot read.
    BadRequest(String),
    /// A request it can read but not carry out.
    Unprocessable(String),
    /// The client's copy is stale (`If-Match`).
    PreconditionFailed,
    /// The idempotency protocol refused the request.
    Idempotency(IdempotencyError),
    /// An HTTP precondition or header refused it (412, a bad key).
    Http(Problem),
    /// An upstream API failed or is not configured.
    Upstream(String),
}

impl From<Problem> for AppError {
    fn from(problem: Problem) -> Self {
        AppError::Http(problem)
    }
}

impl From<DbError> for AppError {
    fn from(error: DbError) -> Self {
        AppError::Db(error)
    }
}

impl From<IdempotencyError> for AppError {
    fn from(error: IdempotencyError) -> Self {
        AppError::Idempotency(error)
    }
}

impl From<ChargeError> for AppError {
    fn from(error: ChargeError) -> Self {
        match error {
            ChargeError::NoAccount => AppError::NotFound("no such account".to_owned()),
            ChargeError::InsufficientFunds => {
                AppError::Unprocessable("insufficient funds".to_owned())
            }
            ChargeError::Db(error) => AppError::Db(error),
        }
    }
}

impl std::fmt::Display for AppError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AppError::Db(error) => error.fmt(f),
            AppError::NotFound(what)
            | AppError::BadRequest(what)
            | AppError::Unprocessable(what)
            | AppError::Upstream(what) => f.write_str(what),
            AppError::PreconditionFailed => f.write_str("the resource changed since it was read"),
            AppError::Idempotency(error) => error.fmt(f),
            AppError::Http(problem) => problem.fmt(f),
        }
    }
}

impl std::error::Error for AppError {}

impl AppError {
    /// The problem+json answer.
    pub fn problem(&self) -> Problem {
        let status = match self {
            AppError::Db(DbError::Timeout) => StatusCode::GATEWAY_TIMEOUT,
            AppError::Db(_) => StatusCode::SERVICE_UNAVAILABLE,
            AppError::NotFound(_) => StatusCode::NOT_FOUND,
            AppError::BadRequest(_) => StatusCode::BAD_REQUEST,
            AppError::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            AppError::PreconditionFailed => StatusCode::PRECONDITION_FAILED,
            AppError::Upstream(_) => StatusCode::BAD_GATEWAY,
            AppError::Idempotency(error) => return Problem::from(error.clone()),
            AppError::Http(problem) => return problem.clone(),
        };
        Problem::new(status, status.canonical_reason().unwrap_or("Error"))
            .with_detail(self.to_string())
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        if matches!(self, AppError::Db(_) | AppError::Upstream(_)) {
            tracing::warn!(error = %self, "request failed");
        }
        self.problem().into_response()
    }
}
