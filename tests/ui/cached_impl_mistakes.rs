use herdcache::{cached, cached_impl};

struct Repo;

// `#[cached]` with no arguments: one error, at that attribute.
#[cached_impl]
impl Repo {
    #[cached]
    async fn get(&self, id: u64) -> u64 {
        id
    }

    #[cached(ttl = "1m")]
    async fn fine(&self, id: u64) -> u64 {
        id
    }
}

fn main() {}
