use herdcache::cached;

// A soft timeout serves a fallback: there is none without swr or fail_safe.
#[cached(ttl = "1m", timeout = "300ms")]
async fn a(id: u64) -> Result<u64, std::io::Error> {
    Ok(id)
}

// `swr = false` is no fallback either.
#[cached(ttl = "1m", swr = false, timeout = "300ms")]
async fn a2(id: u64) -> Result<u64, std::io::Error> {
    Ok(id)
}

// The soft timeout must come before the hard one.
#[cached(ttl = "1m", fail_safe = "10m", timeout = "5s", hard_timeout = "1s")]
async fn b(id: u64) -> Result<u64, std::io::Error> {
    Ok(id)
}

// `None` is no error: a timed-out caller would have nothing to get.
#[cached(ttl = "1m", hard_timeout = "1s")]
async fn c(id: u64) -> Option<u64> {
    Some(id)
}

#[derive(Debug)]
enum RepoError {
    Down,
}

impl From<herdcache::SharedError> for RepoError {
    fn from(_: herdcache::SharedError) -> Self {
        RepoError::Down
    }
}

impl std::fmt::Display for RepoError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{self:?}")
    }
}

// The error type cannot hold `herdcache::Error::Timeout`: one error at it.
#[cached(ttl = "1m", hard_timeout = "1s")]
async fn d(id: u64) -> Result<u64, RepoError> {
    Ok(id)
}

fn main() {}
