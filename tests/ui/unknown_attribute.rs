use herdcache::cached;

#[cached(tll = "1m")]
async fn typo(id: u64) -> u64 {
    id
}

#[cached(ttl = "1m", tags = ["users"])]
async fn not_yet(id: u64) -> u64 {
    id
}

fn main() {}
