use herdcache::cached;

// Not a duration or a bool.
#[cached(ttl = "1m", swr = 30)]
async fn a(id: u64) -> u64 {
    id
}

// Not a positive number.
#[cached(ttl = "1m", early_refresh = 0)]
async fn b(id: u64) -> u64 {
    id
}

// A plain value cannot fail: nothing to cache negatively or to fall back from.
#[cached(ttl = "1m", negative_ttl = "5s", fail_safe = "10m")]
async fn c(id: u64) -> u64 {
    id
}

// `negative` is a rule over an error; `None` has none.
#[cached(ttl = "1m", negative = rules::not_found)]
async fn d(id: u64) -> Option<u64> {
    Some(id)
}

// Nothing to throttle.
#[cached(ttl = "1m", fail_safe_throttle = "5s")]
async fn e(id: u64) -> Result<u64, std::io::Error> {
    Ok(id)
}

// Not a path.
#[cached(ttl = "1m", ttl_for = "lifetime")]
async fn f(id: u64) -> Result<u64, std::io::Error> {
    Ok(id)
}

// A background refresh cannot copy an exclusive borrow.
#[cached(ttl = "1m", swr = "30s", key = id)]
async fn g(id: u64, buffer: &mut Vec<u8>) -> u64 {
    buffer.push(1);
    id
}

fn main() {}
