use herdcache::cached;

// Three mistakes, three errors, reported together.
#[cached(ttl = "forever", jitter = 2, max_capacity = 0)]
async fn all_wrong(id: u64) -> u64 {
    id
}

fn main() {}
