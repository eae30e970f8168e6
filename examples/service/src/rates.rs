//! Exchange rates from an upstream HTTP API, revalidated rather than
//! re-downloaded: a refresh sends the held value's `ETag` as
//! `If-None-Match`, and a `304 Not Modified` keeps the value for another
//! ttl ([`herdcache::previous`], [`herdcache::Previous::not_modified`]).
//! The upstream is `RATES_ORIGIN`; without it `/rates/{currency}` is 503.

use std::time::Duration;

use herdcache::cached;
use reqwest::header::{ETAG, IF_NONE_MATCH};
use reqwest::StatusCode;
use serde::{Deserialize, Serialize};

use crate::error::AppError;

/// The upstream rates API: `GET {base}/rates/{currency}` answers
/// `{"currency": .., "per_usd": ..}` with an `ETag`, and `304` to a
/// matching `If-None-Match`.
#[derive(Clone, Debug)]
pub struct RatesOrigin {
    client: reqwest::Client,
    base: String,
}

impl RatesOrigin {
    /// The API at `base` (`http://host:port`, no trailing slash needed).
    pub fn new(base: &str) -> Self {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .unwrap_or_default();
        RatesOrigin {
            client,
            base: base.trim_end_matches('/').to_owned(),
        }
    }
}

/// A rate as the upstream sent it, with the upstream's `ETag` for the
/// next revalidation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Rate {
    /// The ISO 4217 code.
    pub currency: String,
    /// Units of the currency one US dollar buys.
    pub per_usd: f64,
    /// The upstream's validator for this representation, if it sent one.
    /// (Always written, `null` included: a field that is sometimes left
    /// out would not read back from postcard, the Redis tier's format.)
    #[serde(default)]
    pub upstream_etag: Option<String>,
}

/// What the upstream's body carries.
#[derive(Deserialize)]
struct Body {
    currency: String,
    per_usd: f64,
}

/// A rate: fresh for a minute, then served stale for ten while one
/// refresh revalidates it upstream (a `304` costs the upstream no body
/// and keeps the value), and for an hour when the upstream fails. Shared
/// by the fleet on Redis: a kept rate has only its horizons rewritten
/// there, and the other instances take them from Redis.
#[cached(
    ttl = "60s",
    swr = "10m",
    fail_safe = "1h",
    key = currency,
    distributed = true,
    name = "service.rate"
)]
pub async fn rate(currency: String, origin: &RatesOrigin) -> Result<Rate, AppError> {
    let previous = herdcache::previous::<Rate>();
    let url = format!("{}/rates/{currency}", origin.base);
    let mut request = origin.client.get(&url);
    if let Some(tag) = previous
        .as_ref()
        .and_then(|p| p.value().upstream_etag.clone())
    {
        request = request.header(IF_NONE_MATCH, tag);
    }
    let response = request
        .send()
        .await
        .map_err(|e| AppError::Upstream(format!("GET {url}: {e}")))?;
    match response.status() {
        StatusCode::NOT_MODIFIED => match previous {
            Some(previous) => Ok(previous.not_modified()),
            None => Err(AppError::Upstream(format!(
                "GET {url}: 304 to a request without If-None-Match"
            ))),
        },
        StatusCode::NOT_FOUND => Err(AppError::NotFound(format!("no rate for {currency}"))),
        status if status.is_success() => {
            let upstream_etag = response
                .headers()
                .get(ETAG)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let body: Body = response
                .json()
                .await
                .map_err(|e| AppError::Upstream(format!("GET {url}: {e}")))?;
            Ok(Rate {
                currency: body.currency,
                per_usd: body.per_usd,
                upstream_etag,
            })
        }
        status => Err(AppError::Upstream(format!("GET {url}: {status}"))),
    }
}
