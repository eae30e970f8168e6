use herdcache::cached;

#[async_trait::async_trait]
trait UserStore {
    async fn get(&self, id: u64) -> Option<String>;
}

struct PgRepo;

// `#[async_trait]` runs first and rewrites the method: one error, naming
// the impl-level attribute.
#[async_trait::async_trait]
impl UserStore for PgRepo {
    #[cached(ttl = "1m")]
    async fn get(&self, id: u64) -> Option<String> {
        Some(id.to_string())
    }
}

// `#[herdcache::cached_impl]` under `#[async_trait]` is too late.
struct Replica;

#[async_trait::async_trait]
#[herdcache::cached_impl]
impl UserStore for Replica {
    #[cached(ttl = "1m")]
    async fn get(&self, id: u64) -> Option<String> {
        Some(id.to_string())
    }
}

trait NativeStore {
    async fn find(&self, id: u64) -> Option<String>;
}

// A native trait impl: the helpers cannot be members of the trait.
impl NativeStore for PgRepo {
    #[cached(ttl = "1m")]
    async fn find(&self, id: u64) -> Option<String> {
        Some(id.to_string())
    }
}

fn main() {}
