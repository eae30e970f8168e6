use herdcache::cached;

#[derive(Debug)]
enum RepoError {
    Down,
}

impl std::fmt::Display for RepoError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{self:?}")
    }
}

impl Clone for RepoError {
    fn clone(&self) -> Self {
        RepoError::Down
    }
}

// The error type cannot hold `herdcache::Error::OriginUnavailable`: one
// error at it.
#[cached(ttl = "1m", circuit_breaker = true)]
async fn a(id: u64) -> Result<u64, RepoError> {
    Ok(id)
}

fn wrong_type(_: &std::io::Error) -> bool {
    true
}

// `retry_if` takes the function's own error: one error at the path.
#[cached(ttl = "1m", retry = 2, retry_if = wrong_type)]
async fn b(id: u64) -> Result<u64, RepoError> {
    Ok(id)
}

fn settings() -> u32 {
    5
}

// The settings' expression has the wrong type: one error at it.
#[cached(ttl = "1m", circuit_breaker = settings())]
async fn c(id: u64) -> Result<u64, std::io::Error> {
    Ok(id)
}

fn main() {}
