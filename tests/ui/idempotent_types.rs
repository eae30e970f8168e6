use herdcache::idempotent;

#[derive(Debug, Clone)]
struct PayError;

// The error type cannot hold the protocol's errors: one error at it.
#[idempotent(key = key)]
async fn a(key: &str) -> Result<u64, PayError> {
    Ok(key.len() as u64)
}

#[derive(Debug, Clone)]
struct KeyError;

impl From<herdcache::IdempotencyError> for KeyError {
    fn from(_: herdcache::IdempotencyError) -> Self {
        KeyError
    }
}

// A key that is not text: one error at it.
#[idempotent(key = key)]
async fn b(key: u64) -> Result<u64, KeyError> {
    Ok(key)
}

#[derive(Debug)]
struct Opaque;

impl From<herdcache::IdempotencyError> for Opaque {
    fn from(_: herdcache::IdempotencyError) -> Self {
        Opaque
    }
}

// An error that duplicates cannot share (neither `Clone` nor
// `From<SharedError>`): one error, naming both ways out.
#[idempotent(key = key)]
async fn c(key: &str) -> Result<u64, Opaque> {
    Ok(key.len() as u64)
}

#[derive(Hash)]
struct Pool;

// An argument that cannot be copied onto the run's own task: one error at it.
#[idempotent(key = key)]
async fn d(key: &str, pool: &Pool) -> Result<u64, KeyError> {
    let _ = pool;
    Ok(key.len() as u64)
}

#[derive(Clone)]
struct Connection;

// An argument in the fingerprint that is not `Hash`: one error at it.
#[idempotent(key = key)]
async fn e(key: &str, amount: u64, db: &Connection) -> Result<u64, KeyError> {
    let _ = db;
    Ok(amount)
}

fn main() {}
