use herdcache::cached;

// `None` is an answer, not a failure: nothing to retry.
#[cached(ttl = "1m", retry = 3)]
async fn a(id: u64) -> Option<u64> {
    Some(id)
}

// A plain value cannot fail: nothing for a breaker to count.
#[cached(ttl = "1m", circuit_breaker = true)]
async fn b(id: u64) -> u64 {
    id
}

// At least one call, at most 100.
#[cached(ttl = "1m", retry = 0)]
async fn c(id: u64) -> Result<u64, std::io::Error> {
    Ok(id)
}

// A number, not a string.
#[cached(ttl = "1m", retry = "3")]
async fn d(id: u64) -> Result<u64, std::io::Error> {
    Ok(id)
}

// The backoff's shape needs retries to shape.
#[cached(ttl = "1m", retry_base = "50ms")]
async fn e(id: u64) -> Result<u64, std::io::Error> {
    Ok(id)
}

// `retry_if` with neither retries nor a breaker.
#[cached(ttl = "1m", retry_if = is_transient)]
async fn f(id: u64) -> Result<u64, std::io::Error> {
    Ok(id)
}

// The cap below the base.
#[cached(ttl = "1m", retry = 3, retry_base = "1s", retry_cap = "100ms")]
async fn g(id: u64) -> Result<u64, std::io::Error> {
    Ok(id)
}

// An exclusive borrow cannot be copied for a second attempt.
#[cached(ttl = "1m", retry = 3, key = id)]
async fn h(id: u64, seen: &mut Vec<u64>) -> Result<u64, std::io::Error> {
    seen.push(id);
    Ok(id)
}

// `retry_if` is a path, `circuit_breaker` a flag or settings.
#[cached(ttl = "1m", retry = 2, retry_if = |e| true, circuit_breaker = "yes")]
async fn i(id: u64) -> Result<u64, std::io::Error> {
    Ok(id)
}

// An argument under `#[cfg]` cannot be passed to every attempt.
#[cached(ttl = "1m", circuit_breaker = true, key = id)]
async fn j(id: u64, #[cfg(not(any()))] extra: u64) -> Result<u64, std::io::Error> {
    Ok(id + extra)
}

#[derive(Clone)]
struct Repo;

impl Repo {
    // `self: &mut Self` is an exclusive borrow too.
    #[cached(ttl = "1m", retry = 2, key = id)]
    async fn k(self: &mut Self, id: u64) -> Result<u64, std::io::Error> {
        Ok(id)
    }
}

fn is_transient(_: &std::io::Error) -> bool {
    true
}

fn main() {}
