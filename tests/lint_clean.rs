//! Generated code raises no lint in the user's crate: this file denies every
//! rustc warning and clippy's default and pedantic groups (CI runs clippy
//! over the tests), with the shapes that used to lint.
#![deny(warnings, clippy::all, clippy::pedantic)]

use herdcache::{cached, cached_impl, idempotent, invalidate};

/// A one-line body (it used to raise `unused_braces`).
#[cached(ttl = "60s")]
async fn plus_one(id: u64) -> u64 {
    id + 1
}

#[cached(ttl = "60s")]
async fn nothing(id: u64) -> Option<u64> {
    (id > 1).then_some(id)
}

#[cached(ttl = "60s", key = id)]
async fn fallible(id: u64, _db: &str) -> Result<u64, std::io::Error> {
    Ok(id)
}

#[cached(ttl = "60s")]
async fn unit(_id: u64) {}

/// Places passed by value in a key expression are cloned, Copy ones too.
#[cached(ttl = "60s", key = (Some(id), [id, id]))]
async fn wrapped_key(id: u64) -> u64 {
    id
}

/// Background policies copy every argument, `_db` included.
#[cached(ttl = "60s", swr = "30s", key = id)]
async fn refreshed(id: u64, _db: &str) -> u64 {
    id
}

/// Deadlines copy them before the body takes them.
#[cached(ttl = "60s", fail_safe = "1m", timeout = "1s", hard_timeout = "2s")]
async fn bounded(name: String) -> Result<String, std::io::Error> {
    Ok(name)
}

/// Tags: a template, a constant, a `String` argument, an expression.
#[cached(ttl = "60s", swr = "10s", key = id, tags = ["user:{id}", "all", org, vec![format!("o:{id}")]])]
async fn tagged(id: u64, org: String) -> u64 {
    id + u64::try_from(org.len()).unwrap_or(0)
}

/// A write that busts keys and tags after success; `?` in its body.
#[invalidate(plus_one(id), tagged(id), tags = ["user:{id}", org])]
async fn write(id: u64, org: String) -> Result<u64, std::io::Error> {
    let parsed: u64 = org
        .len()
        .to_string()
        .parse()
        .map_err(std::io::Error::other)?;
    Ok(id + parsed)
}

/// A distributed function: its codec probes and helpers lint-free too.
#[cfg(feature = "redis")]
#[cached(ttl = "60s", distributed = true, version = 2, tags = ["sku:{sku}"])]
async fn shared(sku: u64, region: String) -> Result<String, std::io::Error> {
    Ok(format!("{sku}@{region}"))
}

/// A `mut` argument the body mutates: the body is in `_uncached`, and the
/// function and `_refresh` only pass the argument on (no `unused_mut`).
#[cached(ttl = "60s", key = id)]
async fn mutated(id: u64, mut seen: Vec<u64>) -> usize {
    seen.push(id);
    seen.len()
}

/// An argument under `#[cfg]`: the body is inlined (a call cannot pass an
/// argument that may not exist).
#[cached(ttl = "60s", key = id)]
async fn configured(id: u64, #[cfg(not(any()))] extra: u64) -> u64 {
    id + extra
}

/// Retries copy every argument for each attempt: a `String`, a `&str`, a
/// `Copy` one; with swr, from the refresh's own copies.
#[cached(ttl = "60s", swr = "10s", retry = 3, retry_if = is_transient, key = id)]
async fn retried(id: u64, name: String, _db: &str) -> Result<String, std::io::Error> {
    Ok(format!("{id}:{name}"))
}

fn is_transient(error: &std::io::Error) -> bool {
    error.kind() == std::io::ErrorKind::TimedOut
}

/// The breaker, with its defaults and with an expression.
/// With the breaker alone the one attempt takes the arguments: one that
/// is not `Clone` is fine.
#[cached(ttl = "60s", circuit_breaker = true, key = id)]
async fn guarded(id: u64, token: Token) -> Result<u64, std::io::Error> {
    Ok(id + token.0)
}

struct Token(u64);

#[cached(ttl = "60s", retry = 2, circuit_breaker = herdcache::CircuitBreaker::new().min_calls(5))]
async fn guarded_retried(id: u64, extra: u64) -> Result<u64, std::io::Error> {
    Ok(id + extra)
}

/// An idempotent write: a key the body never reads, a scope, a borrowed
/// and an owned argument, a unit outcome.
#[idempotent(key = idem_key, scope = customer, ttl = "1h", name = "lint.charge")]
#[expect(unused_variables, reason = "the body's own expectation, kept on it")]
async fn charge(idem_key: &str, customer: u64, memo: String) -> Result<(), WriteError> {
    let length = memo.len();
    Ok(())
}

#[derive(Clone, Debug)]
enum WriteError {
    Idempotency(herdcache::IdempotencyError),
}

impl WriteError {
    fn status(&self) -> u16 {
        match self {
            WriteError::Idempotency(error) => error.http_status(),
        }
    }
}

impl From<herdcache::IdempotencyError> for WriteError {
    fn from(error: herdcache::IdempotencyError) -> Self {
        WriteError::Idempotency(error)
    }
}

#[derive(Clone)]
struct Repo {
    tenant: u64,
}

impl Repo {
    #[cached(ttl = "60s", key = (self.tenant, id))]
    async fn get(&self, id: u64) -> u64 {
        self.tenant + id
    }

    #[idempotent(key = key, fingerprint = [id], name = "lint.repo.put")]
    async fn put(&self, key: &str, id: u64) -> Result<u64, WriteError> {
        Ok(self.tenant + id)
    }

    #[cached(ttl = "60s", retry = 2, key = (self.tenant, id))]
    async fn get_retried(&self, id: u64, _db: &str) -> Result<u64, std::io::Error> {
        Ok(self.tenant + id)
    }
}

trait Store {
    async fn find(&self, id: u64) -> u64;
}

#[cached_impl]
impl Store for Repo {
    #[cached(ttl = "60s")]
    async fn find(&self, id: u64) -> u64 {
        self.tenant * id
    }
}

#[tokio::test]
async fn every_shape_compiles_without_a_warning() {
    assert_eq!(plus_one(1).await, 2);
    assert_eq!(nothing(2).await, Some(2));
    assert_eq!(fallible(3, "db").await.unwrap(), 3);
    unit(4).await;
    assert_eq!(wrapped_key(6).await, 6);
    assert_eq!(mutated(7, vec![1]).await, 2);
    assert_eq!(configured(7, 1).await, 8);
    assert_eq!(refreshed(5, "db").await, 5);
    assert_eq!(bounded("x".to_owned()).await.unwrap(), "x");
    let repo = Repo { tenant: 10 };
    assert_eq!(repo.get(1).await, 11);
    assert_eq!(repo.get_retried(1, "db").await.unwrap(), 11);
    assert_eq!(retried(1, "a".to_owned(), "db").await.unwrap(), "1:a");
    assert_eq!(guarded(2, Token(1)).await.unwrap(), 3);
    charge("k", 1, "memo".to_owned()).await.unwrap();
    let refused = charge("", 1, String::new()).await.unwrap_err();
    assert_eq!(refused.status(), 400);
    assert_eq!(repo.put("k", 1).await.unwrap(), 11);
    assert_eq!(guarded_retried(2, 1).await.unwrap(), 3);
    assert_eq!(repo.find(2).await, 20);
    assert_eq!(tagged(1, "ab".to_owned()).await, 3);
    assert_eq!(write(1, "ab".to_owned()).await.unwrap(), 3);
    #[cfg(feature = "redis")]
    {
        // No Redis installed: the function works from memory.
        assert_eq!(shared(1, "eu".to_owned()).await.unwrap(), "1@eu");
        shared_invalidate(1, "eu".to_owned()).await;
    }
}
