use herdcache::cached;

#[cached(ttl = "1m")]
async fn generic<T: ToString>(value: T) -> String {
    value.to_string()
}

#[cached(ttl = "1m")]
async fn pattern((a, b): (u32, u32)) -> u32 {
    a + b
}

#[cached(ttl = "1m")]
async fn opaque(id: u64) -> impl Clone {
    id
}

fn main() {}
