//! Configuration from the environment, each variable with a documented
//! default (see the README's table).

use std::net::SocketAddr;
use std::time::Duration;

use crate::db::Fault;

/// Which freshness the user loader runs with: the attribute's ttl is a
/// compile-time literal, so the profiles are three loaders.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Profile {
    /// ttl 60 s, swr 30 s, fail-safe 10 min.
    Default,
    /// ttl 1 s, swr 2 s, fail-safe 10 min, a 100 ms soft timeout: expiry
    /// every second, absorbed.
    Short,
    /// ttl 1 s, no swr, a 100 ms soft timeout: expiry every second, paid
    /// by the callers.
    ShortNoSwr,
}

impl Profile {
    fn parse(text: &str) -> Result<Self, String> {
        match text {
            "default" => Ok(Profile::Default),
            "short" => Ok(Profile::Short),
            "short-noswr" => Ok(Profile::ShortNoSwr),
            other => Err(format!(
                "CACHE_PROFILE={other:?}: expected default, short or short-noswr"
            )),
        }
    }
}

/// The service's settings.
#[derive(Clone, Debug)]
pub struct Config {
    /// `SERVICE_ADDR`, default `127.0.0.1:3000` (port 0: any free port).
    pub addr: SocketAddr,
    /// `DATABASE_URL`, default `sqlite::memory:` (a fresh database each
    /// start, one connection). A file (`sqlite://service.db?mode=rwc`) is
    /// what two instances share.
    pub database_url: String,
    /// `HERDCACHE_REDIS_URL`: when set, the Redis tier (a fleet).
    pub redis_url: Option<String>,
    /// `HERDCACHE_NAMESPACE`, default `service`: the Redis keys' prefix.
    pub namespace: String,
    /// `SEED_USERS`, default 10 000 (50 users an org).
    pub seed_users: u32,
    /// `DB_LATENCY_MS`, default 2: added to every database call.
    pub db_latency: Duration,
    /// `DB_TIMEOUT_MS`, default 1000: how long a call hangs in `hang` mode.
    pub db_timeout: Duration,
    /// `DB_FAULT`, default `ok`: the fault switch at start (`ok`, `fail`, `hang`).
    pub db_fault: Fault,
    /// `CACHE_PROFILE`, default `default`: the user loader's freshness.
    pub profile: Profile,
    /// `RATES_ORIGIN`, default unset: the upstream rates API behind
    /// `/rates/{currency}` (`http://host:port`); unset, that route is 503.
    pub rates_origin: Option<String>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            addr: SocketAddr::from(([127, 0, 0, 1], 3000)),
            database_url: "sqlite::memory:".to_owned(),
            redis_url: None,
            namespace: "service".to_owned(),
            seed_users: 10_000,
            db_latency: Duration::from_millis(2),
            db_timeout: Duration::from_millis(1000),
            db_fault: Fault::Ok,
            profile: Profile::Default,
            rates_origin: None,
        }
    }
}

impl Config {
    /// Reads the environment; an unparsable value is an error naming it.
    pub fn from_env() -> Result<Self, String> {
        let mut config = Config::default();
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        if let Some(addr) = var("SERVICE_ADDR") {
            config.addr = addr
                .parse()
                .map_err(|e| format!("SERVICE_ADDR={addr:?}: {e}"))?;
        }
        if let Some(url) = var("DATABASE_URL") {
            config.database_url = url;
        }
        config.redis_url = var("HERDCACHE_REDIS_URL");
        if let Some(namespace) = var("HERDCACHE_NAMESPACE") {
            config.namespace = namespace;
        }
        if let Some(n) = var("SEED_USERS") {
            config.seed_users = n.parse().map_err(|e| format!("SEED_USERS={n:?}: {e}"))?;
        }
        if let Some(ms) = var("DB_LATENCY_MS") {
            let ms: u64 = ms
                .parse()
                .map_err(|e| format!("DB_LATENCY_MS={ms:?}: {e}"))?;
            config.db_latency = Duration::from_millis(ms);
        }
        if let Some(ms) = var("DB_TIMEOUT_MS") {
            let ms: u64 = ms
                .parse()
                .map_err(|e| format!("DB_TIMEOUT_MS={ms:?}: {e}"))?;
            config.db_timeout = Duration::from_millis(ms);
        }
        if let Some(fault) = var("DB_FAULT") {
            config.db_fault = Fault::parse(&fault)
                .ok_or(format!("DB_FAULT={fault:?}: expected ok, fail or hang"))?;
        }
        if let Some(profile) = var("CACHE_PROFILE") {
            config.profile = Profile::parse(&profile)?;
        }
        if let Some(origin) = var("RATES_ORIGIN") {
            if !origin.starts_with("http://") && !origin.starts_with("https://") {
                return Err(format!(
                    "RATES_ORIGIN={origin:?}: expected an http:// or https:// URL"
                ));
            }
            config.rates_origin = Some(origin);
        }
        Ok(config)
    }
}
