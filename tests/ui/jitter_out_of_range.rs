use herdcache::cached;

#[cached(ttl = "1m", jitter = 1.5)]
async fn too_much(id: u64) -> u64 {
    id
}

#[cached(ttl = "1m", jitter = -0.1)]
async fn negative(id: u64) -> u64 {
    id
}

#[cached(ttl = "1m", jitter = "10%")]
async fn not_a_number(id: u64) -> u64 {
    id
}

fn main() {}
