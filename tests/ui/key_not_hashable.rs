use herdcache::cached;

/// A connection pool: not `Hash`, not `Eq`.
#[derive(Clone)]
struct Pool;

#[derive(Clone)]
struct User;

// No `key`: every argument is the key, the pool included.
#[cached(ttl = "1m")]
async fn get_user(id: u64, db: &Pool) -> Option<User> {
    let _ = (id, db);
    Some(User)
}

fn main() {}
