use herdcache::cached;

#[cached(ttl = "1m", key = id, ttl = "2m")]
async fn twice(id: u64) -> u64 {
    id
}

fn main() {}
