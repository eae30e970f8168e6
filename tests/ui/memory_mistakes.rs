use herdcache::cached;

#[cached(ttl = "1m", memory = "fast")]
async fn unknown_tier(id: u64) -> u64 {
    id
}

#[cached(ttl = "1m", memory = quick)]
async fn not_a_string(id: u64) -> u64 {
    id
}

fn main() {}
