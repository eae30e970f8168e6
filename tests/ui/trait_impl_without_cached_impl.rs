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

trait GenericStore<T> {
    async fn load(&self, id: T) -> Option<String>;
}

/// Doc comments, attributes and generics before the impl change nothing.
#[allow(dead_code)]
impl<T: Send + Sync + 'static> GenericStore<u64> for Vec<T> {
    #[cached(ttl = "1m")]
    async fn load(&self, id: u64) -> Option<String> {
        Some(id.to_string())
    }
}

fn main() {}
