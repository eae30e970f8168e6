use herdcache::cached;

// Not `Clone`: a background refresh cannot copy `self`.
struct Repo;

impl Repo {
    #[cached(ttl = "1m", swr = "30s")]
    async fn get(&self, id: u64) -> u64 {
        id
    }
}

struct Pool;

// An argument the key leaves out must still be copied for a refresh.
#[cached(ttl = "1m", early_refresh = 1.0, key = id)]
async fn load(id: u64, pool: &Pool) -> u64 {
    let _ = pool;
    id
}

fn main() {}
