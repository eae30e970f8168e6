//! A real service on herdcache: users, orgs and payments on SQLite, cached
//! reads with swr and fail-safe, writes that bust them, idempotent
//! payments, a Redis fleet, Prometheus metrics.
//!
//! [`app`] builds the router (what the integration tests serve on a free
//! loopback port); [`serve`] runs it until Ctrl-C or SIGTERM.

#![forbid(unsafe_code)]

pub mod cache;
pub mod config;
pub mod db;
pub mod error;
pub mod rates;
pub mod routes;
pub mod web;

use std::sync::OnceLock;

use axum::Router;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tokio::net::TcpListener;

pub use config::{Config, Profile};
pub use db::{Db, Fault};

/// What every handler sees.
#[derive(Clone, Debug)]
pub struct AppState {
    /// The database.
    pub db: Db,
    /// The Prometheus recorder's handle, for `/metrics`.
    pub metrics: PrometheusHandle,
    /// The user loader's freshness.
    pub profile: Profile,
    /// The upstream rates API, when `RATES_ORIGIN` is set.
    pub rates: Option<rates::RatesOrigin>,
}

/// herdcache's load-latency histogram, and its buckets (seconds).
pub const LOAD_DURATION: &str = "herdcache_load_duration_seconds";
/// The top buckets reach past the rates client's 5 s timeout.
const LOAD_BUCKETS: [f64; 16] = [
    0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
    10.0,
];

/// The process's Prometheus recorder, installed once (before any cached
/// function is first called: herdcache registers its metrics then).
pub fn metrics_handle() -> Result<PrometheusHandle, String> {
    static HANDLE: OnceLock<Result<PrometheusHandle, String>> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Full(LOAD_DURATION.to_owned()), &LOAD_BUCKETS)
                .map_err(|e| e.to_string())?
                .install_recorder()
                .map_err(|e| e.to_string())
        })
        .clone()
}

/// Installs herdcache's Redis tier from `config.redis_url`, once a process.
fn install_redis(config: &Config) -> Result<(), String> {
    static INSTALLED: OnceLock<Result<(), String>> = OnceLock::new();
    let Some(url) = &config.redis_url else {
        return Ok(());
    };
    INSTALLED
        .get_or_init(|| {
            herdcache::Runtime::builder()
                .redis(url.clone())
                .namespace(config.namespace.clone())
                .install()
                .map_err(|e| format!("the Redis tier at {url}: {e}"))
        })
        .clone()
}

/// The service's state: the metrics recorder, the Redis tier (if
/// configured), the database migrated and seeded, the fault switch set.
pub async fn state(config: &Config) -> Result<AppState, String> {
    let metrics = metrics_handle()?;
    install_redis(config)?;
    let db = Db::open(
        &config.database_url,
        config.seed_users,
        config.db_latency,
        config.db_timeout,
    )
    .await
    .map_err(|e| format!("the database at {}: {e}", config.database_url))?;
    db.set_fault(config.db_fault);
    Ok(AppState {
        db,
        metrics,
        profile: config.profile,
        rates: config.rates_origin.as_deref().map(rates::RatesOrigin::new),
    })
}

/// The service's router.
pub async fn app(config: &Config) -> Result<Router, String> {
    Ok(routes::router(state(config).await?))
}

/// Serves `router` on `listener` until Ctrl-C or SIGTERM, then lets the
/// requests in flight finish.
pub async fn serve(listener: TcpListener, router: Router) -> std::io::Result<()> {
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown())
        .await
}

async fn shutdown() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down: finishing the requests in flight");
}

/// Logs to stderr, filtered by `RUST_LOG` (default `info`).
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// The binary's `main`, shared with the load generator's child mode: reads
/// the environment, binds, prints `listening on http://<addr>` on stdout
/// (what a parent process waits for) and serves until a signal.
pub async fn run_from_env() -> Result<(), String> {
    init_tracing();
    let config = Config::from_env()?;
    let router = app(&config).await?;
    let listener = TcpListener::bind(config.addr)
        .await
        .map_err(|e| format!("binding {}: {e}", config.addr))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    tracing::info!(%addr, profile = ?config.profile, redis = config.redis_url.is_some(), seed_users = config.seed_users, "serving");
    println!("listening on http://{addr}");
    let _fleet = herdcache::flush_fleet_on_drop(std::time::Duration::from_secs(2));
    serve(listener, router).await.map_err(|e| e.to_string())
}
