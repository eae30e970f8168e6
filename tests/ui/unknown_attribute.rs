use herdcache::cached;

#[cached(tll = "1m")]
async fn typo(id: u64) -> u64 {
    id
}

#[cached(ttl = "1m", swr = "30s")]
async fn not_yet(id: u64) -> u64 {
    id
}

fn main() {}
