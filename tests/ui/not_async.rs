use herdcache::cached;

#[cached(ttl = "1m")]
fn sync_fn(id: u64) -> u64 {
    id
}

fn main() {}
