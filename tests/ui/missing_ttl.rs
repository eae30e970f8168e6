use herdcache::cached;

// The function is still emitted: calling it adds no second error.
#[cached(key = id)]
async fn get(id: u64) -> u64 {
    id
}

fn main() {
    let _ = get(1);
}
